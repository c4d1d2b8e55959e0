//! The `mioftpd` binary: parse the command line (and the `--config` file), then either manage
//! the users file, check a configuration, or run the server until it is stopped.

use mioftpd::config::{Subcommands, UsersAction};
use mioftpd::{Server, auth, check_config, config_file};
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = config_file::parse_args(std::env::args_os()).unwrap_or_else(|e| e.exit());
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let result = match cli.command {
        Some(Subcommands::Users { action: UsersAction::Add { file, name, read_only, read_write, home, rate } }) => {
            let access = (read_only || read_write).then_some(read_write);
            add_user(&file, &name, Changes { writable: access, home, max_rate: rate })
        }
        Some(Subcommands::CheckConfig { file }) => check_config::check(&file).map(|report| print!("{report}")),
        None => {
            raise_fd_limit(&cli.config);
            Server::bind(&cli.config)
                .and_then(|mut server| {
                    server.handle_signals()?;
                    server.run()
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

/// Each session can hold four descriptors (control, data, file, and its home directory if the
/// user has one), and the common soft limit of 1024 would cap a server at a few hundred
/// sessions: raise it to the hard limit, as far as the configured sessions need.
fn raise_fd_limit(config: &mioftpd::Config) {
    let want = (config.max_sessions as u64 * 4 + 64) as libc::rlim_t;
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

/// What `users add` was told to set; what it was not told keeps its old value (or the default,
/// for a new user: read-write, the served root, no rate limit).
struct Changes {
    writable: Option<bool>,
    home: Option<PathBuf>,
    max_rate: Option<u64>,
}

/// `mioftpd users add FILE NAME [--read-only|--read-write] [--home DIR] [--rate RATE]`: the
/// password comes from standard input, without echo when that is a terminal, so
/// `echo secret | mioftpd users add users.txt alice` works too.
fn add_user(file: &Path, name: &str, changes: Changes) -> Result<(), String> {
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
    let before = auth::Users::parse(&existing).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut account = before.account(name).cloned().unwrap_or_else(|| auth::Account {
        name: name.to_string(),
        writable: true,
        ..auth::Account::default()
    });
    account.writable = changes.writable.unwrap_or(account.writable);
    account.home = changes.home.or(account.home);
    account.max_rate = changes.max_rate.or(account.max_rate);
    let hash = auth::hash_password(&password)?;
    let updated = auth::upsert_line(&existing, &account, &hash);
    auth::Users::parse(&updated).map_err(|e| format!("{}: {e}", file.display()))?;
    std::fs::write(file, updated).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    let verb = if before.account(name).is_some() { "saved" } else { "added" };
    eprintln!("{verb} {name} ({}) in {}", account.flags(), file.display());
    Ok(())
}
