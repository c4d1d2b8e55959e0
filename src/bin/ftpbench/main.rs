//! `ftpbench`: a load generator for any FTP server. Parses the command line, runs one scenario,
//! prints its table, appends its JSON line, and exits 0 only if nothing went wrong.
//!
//! Exit status: 0 clean run; 1 the run completed but counted errors (a short transfer, a
//! refused login, a session that did not answer…); 2 it could not run at all (bad arguments,
//! server unreachable, the file to download missing).
//!
//! Modules: `cli` (flags), `client` (blocking FTP client) with `passive` (227/229 parsing),
//! `stream` (a connection, plain or TLS) and `tls` (FTPS client configuration),
//! `runner` (client threads and the measured window), `scenario` (what clients do), `pattern`
//! (upload content and its check), `procfs` (the server's CPU, memory and fds), `stats`
//! (percentiles, rates) and `report` (table and JSON).

mod cli;
mod client;
mod passive;
mod pattern;
mod procfs;
mod report;
mod runner;
mod scenario;
mod stats;
mod stream;
mod tls;

use clap::Parser;
use cli::Cli;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // 10 000 idle sessions need 10 000 descriptors on this side too.
    if let Err(e) = raise_fd_limit() {
        eprintln!("ftpbench: warning: cannot raise the open-file limit: {e}");
    }
    let report = match scenario::run(&cli) {
        Ok(report) => report,
        Err(message) => {
            eprintln!("ftpbench: {message}");
            return ExitCode::from(2);
        }
    };
    print!("{}", report.table());
    if let Some(path) = &cli.common.json
        && let Err(e) = append_line(path, &report.json())
    {
        eprintln!("ftpbench: cannot write {}: {e}", path.display());
        return ExitCode::from(2);
    }
    match report.error_count() {
        0 => ExitCode::SUCCESS,
        errors => {
            eprintln!("ftpbench: {errors} errors");
            ExitCode::from(1)
        }
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit.
fn raise_fd_limit() -> std::io::Result<()> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read or write the `rlimit` we pass, which lives across
    // both calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Appends one line to `path`, creating it if needed: results of several runs accumulate as
/// JSON Lines.
fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(format!("{line}\n").as_bytes())
}
