//! `--on-upload`: an admin's program, run after each completed upload (virus scan, ingest,
//! notification). At most `max_running` run at once; later uploads wait in a bounded queue, in
//! order. Children are spawned and reaped without blocking: the loop calls `reap` when SIGCHLD
//! arrives, and `reap` only asks each child `try_wait`. No sockets, no slab.
//!
//! What the program gets:
//! - its arguments: the `--on-upload` value split at whitespace (no shell, no quoting), then the
//!   uploaded file's path on disk;
//! - its environment: the server's, plus `MIOFTPD_USER`, `MIOFTPD_PATH` (the path as the client
//!   sees it), `MIOFTPD_SIZE` (bytes received by this upload) and `MIOFTPD_SESSION` (the `[#N]`
//!   of the logs);
//! - standard input from `/dev/null`; standard output and error go to the server's standard
//!   error, beside its log, where an admin looks when a hook fails.

use crate::fs::VPath;
use log::{debug, info, warn};
use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Instant;

/// Uploads waiting for a free slot beyond this are not hooked (and say so in the log): a
/// hook slower than the uploads must not grow the server's memory without bound.
pub const MAX_QUEUED: usize = 1000;

/// A completed upload, as its hook is told about it.
#[derive(Debug)]
pub struct Upload {
    pub session_id: u64,
    pub user: String,
    /// The path as the client sees it.
    pub path: VPath,
    /// The path on disk, the program's last argument.
    pub real_path: PathBuf,
    pub bytes: u64,
}

struct Running {
    child: Child,
    upload: Upload,
    started: Instant,
}

pub struct UploadHooks {
    program: String,
    args: Vec<String>,
    max_running: usize,
    running: Vec<Running>,
    queue: VecDeque<Upload>,
}

impl UploadHooks {
    /// `command` is split at whitespace into the program and its first arguments.
    pub fn new(command: &str, max_running: usize) -> io::Result<UploadHooks> {
        let mut words = command.split_whitespace().map(str::to_string);
        let program =
            words.next().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "--on-upload: empty command"))?;
        // A program named by path is checked now, so that a typo stops the start-up instead
        // of failing every upload's hook; a bare name is looked up in PATH at each spawn.
        if program.contains('/') {
            std::fs::metadata(&program)
                .map_err(|e| io::Error::new(e.kind(), format!("--on-upload: {program}: {e}")))?;
        }
        Ok(UploadHooks {
            program,
            args: words.collect(),
            max_running: max_running.max(1),
            running: Vec::new(),
            queue: VecDeque::new(),
        })
    }

    /// Runs the hook for `upload` now if fewer than `max_running` are running, or queues it.
    pub fn submit(&mut self, upload: Upload) {
        if self.queue.len() >= MAX_QUEUED {
            return warn!(
                "[#{}] upload hook for {} dropped: {MAX_QUEUED} hooks already waiting",
                upload.session_id,
                upload.path.display()
            );
        }
        self.queue.push_back(upload);
        self.start_queued();
    }

    /// Collects the children that have exited (logging how), then starts queued hooks in the
    /// freed slots. Never waits.
    pub fn reap(&mut self) {
        let mut i = 0;
        while i < self.running.len() {
            match self.running[i].child.try_wait() {
                Ok(None) => i += 1,
                Ok(Some(status)) => log_exit(&self.running.swap_remove(i), status),
                // Only if the child was reaped elsewhere: nothing left to wait for.
                Err(e) => {
                    let gone = self.running.swap_remove(i);
                    warn!("[#{}] upload hook for {}: {e}", gone.upload.session_id, gone.upload.path.display());
                }
            }
        }
        self.start_queued();
    }

    /// Hooks running and waiting.
    pub fn pending(&self) -> (usize, usize) {
        (self.running.len(), self.queue.len())
    }

    fn start_queued(&mut self) {
        while self.running.len() < self.max_running {
            let Some(upload) = self.queue.pop_front() else { return };
            match self.spawn(&upload) {
                Ok(child) => {
                    debug!(
                        "[#{}] upload hook for {} started (pid {})",
                        upload.session_id,
                        upload.path.display(),
                        child.id()
                    );
                    self.running.push(Running { child, upload, started: Instant::now() });
                }
                Err(e) => warn!(
                    "[#{}] upload hook for {} could not start: {}: {e}",
                    upload.session_id,
                    upload.path.display(),
                    self.program
                ),
            }
        }
    }

    /// `fork`+`exec` (or `posix_spawn`): bounded work that does not wait for the program.
    fn spawn(&self, upload: &Upload) -> io::Result<Child> {
        let output = io::stderr().as_fd().try_clone_to_owned()?;
        Command::new(&self.program)
            .args(&self.args)
            .arg(&upload.real_path)
            .env("MIOFTPD_USER", &upload.user)
            .env("MIOFTPD_PATH", OsStr::from_bytes(upload.path.as_bytes()))
            .env("MIOFTPD_SIZE", upload.bytes.to_string())
            .env("MIOFTPD_SESSION", upload.session_id.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::from(output))
            .stderr(Stdio::inherit())
            .spawn()
    }
}

fn log_exit(done: &Running, status: ExitStatus) {
    let (id, path, secs) = (done.upload.session_id, done.upload.path.display(), done.started.elapsed().as_secs_f64());
    match (status.code(), status.signal()) {
        (Some(0), _) => info!("[#{id}] upload hook for {path} succeeded in {secs:.3} s"),
        (Some(code), _) => warn!("[#{id}] upload hook for {path} failed with exit code {code} after {secs:.3} s"),
        (None, signal) => {
            warn!("[#{id}] upload hook for {path} killed by signal {} after {secs:.3} s", signal.unwrap_or(0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(n: u64) -> Upload {
        Upload {
            session_id: n,
            user: "alice".into(),
            path: VPath::root().join(format!("f{n}").as_bytes()),
            real_path: PathBuf::from(format!("/nonexistent/f{n}")),
            bytes: n,
        }
    }

    /// Reaps until nothing runs or waits (bounded by the hooks' own short run time).
    fn reap_all(hooks: &mut UploadHooks) {
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        while hooks.pending() != (0, 0) {
            assert!(Instant::now() < deadline, "hooks still pending: {:?}", hooks.pending());
            std::thread::sleep(std::time::Duration::from_millis(5));
            hooks.reap();
        }
    }

    #[test]
    fn the_command_is_split_at_whitespace_and_checked() {
        let hooks = UploadHooks::new("  /bin/echo  -n  x ", 2).unwrap();
        assert_eq!((hooks.program.as_str(), hooks.args.as_slice()), ("/bin/echo", &["-n".to_string(), "x".into()][..]));
        assert!(UploadHooks::new("   ", 1).is_err());
        let missing = UploadHooks::new("/nonexistent/hook", 1).err().unwrap();
        assert!(missing.to_string().contains("/nonexistent/hook"), "{missing}");
        assert!(UploadHooks::new("true", 1).is_ok(), "a bare name is looked up at each run");
    }

    #[test]
    fn at_most_max_running_and_the_rest_in_order() {
        let mut hooks = UploadHooks::new("true", 2).unwrap();
        for n in 0..5 {
            hooks.submit(upload(n));
        }
        assert_eq!(hooks.pending(), (2, 3));
        let waiting: Vec<u64> = hooks.queue.iter().map(|u| u.session_id).collect();
        assert_eq!(waiting, [2, 3, 4]);
        reap_all(&mut hooks);
    }

    #[test]
    fn a_program_that_cannot_start_frees_its_slot() {
        let mut hooks = UploadHooks::new("mioftpd-no-such-hook-program", 1).unwrap();
        hooks.submit(upload(1));
        hooks.submit(upload(2));
        assert_eq!(hooks.pending(), (0, 0));
    }

    #[test]
    fn the_queue_is_bounded() {
        let mut hooks = UploadHooks::new("true", 1).unwrap();
        for n in 0..(MAX_QUEUED as u64 + 10) {
            hooks.submit(upload(n));
        }
        assert_eq!(hooks.pending(), (1, MAX_QUEUED));
        for running in &mut hooks.running {
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
    }
}
