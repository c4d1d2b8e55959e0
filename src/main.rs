//! The `mioftpd` binary: parse the command line, then either manage the users file or run the
//! server until it is stopped.

use clap::Parser;
use mioftpd::config::{Cli, Subcommands, UsersAction};
use mioftpd::{Server, auth};
use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let result = match cli.command {
        Some(Subcommands::Users { action: UsersAction::Add { file, name, read_only } }) => {
            add_user(&file, &name, !read_only)
        }
        None => Server::bind(&cli.config)
            .and_then(|mut server| {
                server.handle_signals()?;
                server.run()
            })
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mioftpd: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `mioftpd users add FILE NAME [--read-only]`: the password comes from standard input, without
/// echo when that is a terminal, so `echo secret | mioftpd users add users.txt alice` works too.
fn add_user(file: &Path, name: &str, writable: bool) -> Result<(), String> {
    if name.is_empty() || name.contains([':', ' ', '\t', '\n']) {
        return Err(format!("invalid user name {name:?}: no colons or spaces"));
    }
    let password = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("Password for {name}: ")).map_err(|e| e.to_string())?
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| e.to_string())?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        return Err("empty password".into());
    }
    let existing = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
    };
    let hash = auth::hash_password(&password)?;
    let updated = auth::upsert_line(&existing, name, &hash, writable);
    auth::Users::parse(&updated).map_err(|e| format!("{}: {e}", file.display()))?;
    std::fs::write(file, updated).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    eprintln!(
        "{} {name} ({}) in {}",
        if existing.is_empty() { "added" } else { "saved" },
        if writable { "read-write" } else { "read-only" },
        file.display()
    );
    Ok(())
}
