//! `retr` and `small`: every client keeps one logged-in session and downloads the same file
//! over and over (PASV/EPSV + RETR each time). The two differ only in their defaults (a 1 GiB
//! file against a 4 KiB one) and in which numbers matter: MiB/s for one, transfers/s for the
//! other. Every download must bring exactly the file's `SIZE` in bytes.

use super::{READ_BUFFER, Target, close_session, header, open_session, transfer_rows};
use crate::client::{Client, Transfer};
use crate::procfs::Probe;
use crate::report::Report;
use crate::runner::{self, Ctx, Plan};
use std::time::Instant;

pub fn run(
    scenario: &'static str,
    target: &Target,
    plan: &Plan,
    probe: Option<&Probe>,
    file: &str,
) -> Result<Report, String> {
    let size = file_size(target, file).map_err(|e| format!("{file} on {}: {e}", target.addr))?;
    let run = runner::run(
        plan,
        probe,
        |ctx| open_session(ctx, target),
        |ctx, session| download(ctx, target, session, file, size),
    );
    let mut report = header(scenario, target, plan.clients);
    report.text("file", "file", file).int("file_size", "file size", size, "B");
    transfer_rows(&mut report, &run);
    let transfers = run.window_ops().count() as f64;
    report.maybe(
        "cpu_s_per_1000_transfers",
        "server CPU per 1000 transfers",
        run.window.cpu_seconds.filter(|_| transfers > 0.0).map(|cpu| cpu / transfers * 1000.0),
        "s",
        3,
    );
    report.errors(run.errors(), run.messages());
    Ok(report)
}

/// The size every download must have, asked once before the run.
fn file_size(target: &Target, file: &str) -> std::io::Result<u64> {
    let mut client = target.login_binary()?;
    let size = client.size(file)?;
    client.quit()?;
    Ok(size)
}

/// One client's loop. A short download is an error but leaves the session usable; a failed
/// one drops the session and the next turn logs in again.
fn download(ctx: &mut Ctx, target: &Target, mut session: Option<Client>, file: &str, size: u64) {
    let mut buf = vec![0u8; READ_BUFFER];
    while ctx.running() {
        let Some(client) = session.as_mut() else {
            session = open_session(ctx, target);
            continue;
        };
        let start = Instant::now();
        match client.retr(file, &mut buf, |n| ctx.progress(n)) {
            Ok(Transfer::Complete(n)) if n == size => ctx.done(start, n),
            Ok(Transfer::Complete(n)) => ctx.error(format!("RETR {file}: {n} bytes, expected {size}")),
            Ok(Transfer::Stopped(_)) => {
                // The window is over; the reply to this RETR will never be read.
                ctx.abandoned();
                return;
            }
            Err(e) => {
                ctx.error(format!("{file}: {e}"));
                session = None;
                ctx.backoff();
            }
        }
    }
    close_session(ctx, session);
}
