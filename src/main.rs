//! The `mioftpd` binary: parse the command line, then either manage the users file or run the
//! server until it is stopped.

use clap::Parser;
use mioftpd::config::{Cli, Subcommands, UsersAction};
use mioftpd::{Workers, auth};
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
        None => {
            raise_fd_limit(&cli.config);
            Workers::bind(&cli.config)
                .and_then(|mut workers| {
                    workers.handle_signals()?;
                    workers.run()
                })
                .map_err(|e| e.to_string())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mioftpd: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Each session can hold three descriptors (control, data, file), and the common soft limit of
/// 1024 would cap a server at a few hundred sessions: raise it to the hard limit, as far as
/// the configured sessions need.
fn raise_fd_limit(config: &mioftpd::Config) {
    let want = (config.max_sessions as u64 * 3 + 64) as libc::rlim_t;
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= want {
            return;
        }
        let before = limit.rlim_cur;
        let raised = libc::rlimit { rlim_cur: want.min(limit.rlim_max), rlim_max: limit.rlim_max };
        let now = if raised.rlim_cur > before && libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            log::info!("open-file limit raised from {before} to {}", raised.rlim_cur);
            raised.rlim_cur
        } else {
            before
        };
        if now < want {
            log::warn!(
                "open-file limit {now} is below the {want} that --max-sessions {} may need",
                config.max_sessions
            );
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
