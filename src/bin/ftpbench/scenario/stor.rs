//! `stor`: every client keeps one logged-in session and uploads `size` bytes to a new file each
//! time (`bench-stor-CLIENT-N.bin`). After each upload `SIZE` must report exactly `size`; with
//! `--verify-dir` every completed file is also read back from disk and compared byte for byte.
//! Afterwards the files are removed (locally with `--verify-dir`, else by `DELE`), unless `--keep`.

use super::{Target, close_session, header, open_session, transfer_rows};
use crate::client::{Client, Transfer};
use crate::pattern::{FileId, Pattern};
use crate::procfs::Probe;
use crate::report::Report;
use crate::runner::{self, Ctx, Plan};
use std::io;
use std::path::Path;
use std::time::Instant;

/// What one client uploaded.
#[derive(Default)]
struct Uploads {
    /// Confirmed with 226 and the right `SIZE`.
    complete: Vec<FileId>,
    /// Every name an upload was started to, complete or not: all of them are cleaned up.
    started: Vec<FileId>,
}

pub fn run(
    target: &Target,
    plan: &Plan,
    probe: Option<&Probe>,
    size: u64,
    verify_dir: Option<&Path>,
    keep: bool,
) -> Result<Report, String> {
    if let Some(dir) = verify_dir
        && !dir.is_dir()
    {
        return Err(format!("--verify-dir {}: not a directory", dir.display()));
    }
    // Fail early, as a setup error, if the account cannot log in at all.
    target.login_binary().and_then(Client::quit).map_err(|e| format!("login to {}: {e}", target.addr))?;
    let run =
        runner::run(plan, probe, |ctx| open_session(ctx, target), |ctx, session| upload(ctx, target, session, size));
    let mut report = header("stor", target, plan.clients);
    report.int("file_size", "upload size", size, "B");
    transfer_rows(&mut report, &run);
    report.errors(run.errors(), run.messages());

    let complete: Vec<FileId> = run.clients.iter().flat_map(|(_, u)| u.complete.iter().copied()).collect();
    let started: Vec<FileId> = run.clients.iter().flat_map(|(_, u)| u.started.iter().copied()).collect();
    if let Some(dir) = verify_dir {
        let mut pattern = Pattern::new();
        let failures: Vec<String> =
            complete.iter().filter_map(|&id| pattern.verify(&dir.join(id.name()), id, size).err()).collect();
        report.int("verified", "files verified on disk", (complete.len() - failures.len()) as u64, "");
        report.errors(failures.len() as u64, failures);
    }
    if !keep {
        let failures = match verify_dir {
            Some(dir) => remove_local(dir, &started),
            None => remove_remote(target, &complete, &started),
        };
        report.int("removed", "files cleaned up", (started.len() - failures.len()) as u64, "");
        report.errors(failures.len() as u64, failures);
    }
    Ok(report)
}

/// One client's loop.
fn upload(ctx: &mut Ctx, target: &Target, mut session: Option<Client>, size: u64) -> Uploads {
    let mut pattern = Pattern::new();
    let mut uploads = Uploads::default();
    let mut iteration = 0u32;
    while ctx.running() {
        let Some(client) = session.as_mut() else {
            session = open_session(ctx, target);
            continue;
        };
        let id = FileId { client: ctx.index as u32, iteration };
        iteration += 1;
        uploads.started.push(id);
        let name = id.name();
        let start = Instant::now();
        let result = client.stor(&name, |data| pattern.write(data, id, size, |n| ctx.progress(n)));
        match result {
            Ok(Transfer::Complete(n)) => {
                ctx.done(start, n);
                // The server's count, not ours: what it stored is what matters.
                match client.size(&name) {
                    Ok(stored) if stored == size => uploads.complete.push(id),
                    Ok(stored) => ctx.error(format!("STOR {name}: server stored {stored} bytes, sent {size}")),
                    Err(e) => ctx.error(format!("{name} after STOR: {e}")),
                }
            }
            Ok(Transfer::Stopped(_)) => {
                // The window is over: the upload was reset, and the session is left behind.
                ctx.abandoned();
                return uploads;
            }
            Err(e) => {
                ctx.error(format!("{name}: {e}"));
                session = None;
                ctx.backoff();
            }
        }
    }
    close_session(ctx, session);
    uploads
}

/// Removes the uploads from the local directory that the server stores them in. A missing
/// file is fine for an upload that did not complete.
fn remove_local(dir: &Path, started: &[FileId]) -> Vec<String> {
    started
        .iter()
        .filter_map(|id| match std::fs::remove_file(dir.join(id.name())) {
            Ok(()) => None,
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => Some(format!("remove {}: {e}", id.name())),
        })
        .collect()
}

/// Removes the uploads with `DELE` over one session: every complete upload must go; an
/// incomplete one may never have been created (550).
fn remove_remote(target: &Target, complete: &[FileId], started: &[FileId]) -> Vec<String> {
    let mut client = match target.login() {
        Ok(client) => client,
        Err(e) => return vec![format!("login to delete the uploads: {e}")],
    };
    let mut failures = Vec::new();
    for id in started {
        let name = id.name();
        match client.dele(&name) {
            Ok(reply) if reply.code == 250 => {}
            Ok(reply) if reply.code == 550 && !complete.contains(id) => {}
            Ok(reply) => failures.push(format!("DELE {name}: {} {}", reply.code, reply.text)),
            Err(e) => {
                // The session is gone: the rest cannot be deleted over it either.
                failures.push(format!("{name}: {e}"));
                return failures;
            }
        }
    }
    if let Err(e) = client.quit() {
        failures.push(format!("after DELE: {e}"));
    }
    failures
}
