//! Processes this benchmark starts (servers, ftpbench, iperf3) and how they are ended: each in a
//! process group of its own, stopped through a guard whose `Drop` terminates that group, so
//! nothing is left running when a scenario fails, a step returns early or Ctrl-C arrives.
//!
//! Ctrl-C (SIGINT), SIGTERM and SIGHUP only raise a flag here. Every wait in the benchmark is a
//! bounded poll that checks it, so an interrupted run unwinds normally and the guards run.

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// How often the waits below look at the child and the interrupt flag.
const TICK: Duration = Duration::from_millis(50);
/// Time a group gets to exit after SIGTERM before SIGKILL (mioftpd closes idle sessions, and a
/// forking server's children exit on their own).
const TERM_GRACE: Duration = Duration::from_secs(3);
/// Time allowed for the rest of a group to disappear after SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(3);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: the one thing that is safe inside a signal handler.
    INTERRUPTED.store(true, Relaxed);
}

/// Turns SIGINT, SIGTERM and SIGHUP into the flag that `interrupted` reads.
pub fn catch_interrupts() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic; `action` is fully initialised (zeroed,
        // then the handler and an empty mask set) and lives across the call.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Relaxed)
}

/// `Err` once the run has been interrupted: `?` then unwinds to `main` through the guards.
pub fn check_interrupt() -> Result<(), String> {
    if interrupted() { Err("interrupted".to_string()) } else { Ok(()) }
}

/// Sleeps up to `duration`, less if interrupted.
pub fn sleep(duration: Duration) {
    let end = Instant::now() + duration;
    while !interrupted() {
        let now = Instant::now();
        if now >= end {
            return;
        }
        thread::sleep(TICK.min(end - now));
    }
}

/// Raises the soft open-file limit to the hard one; children inherit it (10 000 idle sessions
/// need 10 000 descriptors in the server and as many in ftpbench).
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read or write the `rlimit` we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

/// A started process and its group. Dropping it ends the whole group.
pub struct Guard {
    name: String,
    child: Child,
    stopped: bool,
}

impl Guard {
    /// Starts `command` in a new process group, its output appended to `log`. The child also
    /// gets SIGKILL if this process dies without cleaning up (PR_SET_PDEATHSIG), so even a
    /// `kill -9` of the benchmark does not leave a listener behind.
    pub fn spawn(name: &str, command: &mut Command, log: &Path) -> Result<Guard, String> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("{name}: cannot open log {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| format!("{name}: log {}: {e}", log.display()))?;
        command.stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().map_err(|e| format!("{name}: cannot start {:?}: {e}", command.get_program()))?;
        Ok(Guard { name: name.to_string(), child, stopped: false })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for the process to exit, at most `limit` and never past an interrupt.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if interrupted() || Instant::now() >= end {
                return None;
            }
            thread::sleep(TICK);
        }
    }

    /// SIGTERM to the group, SIGKILL to whatever is left after a grace period, then reaps the
    /// child. Returns a complaint if members of the group outlived that.
    pub fn stop(&mut self) -> Result<(), String> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let group = self.child.id() as libc::pid_t;
        signal_group(group, libc::SIGTERM);
        let end = Instant::now() + TERM_GRACE;
        while Instant::now() < end && group_alive(group) {
            // Reaps the leader as soon as it exits; the rest of the group has no zombie parent.
            let _ = self.child.try_wait();
            thread::sleep(TICK);
        }
        signal_group(group, libc::SIGKILL);
        let _ = self.child.wait();
        let end = Instant::now() + KILL_GRACE;
        while group_alive(group) {
            if Instant::now() >= end {
                return Err(format!("{}: processes of group {group} still exist after SIGKILL", self.name));
            }
            thread::sleep(TICK);
        }
        Ok(())
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("compare: warning: {e}");
        }
    }
}

fn signal_group(group: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill has no memory effects; a negative pid addresses the group this guard created
    // (its id is the pid of our own child), never anyone else's processes.
    unsafe {
        libc::kill(-group, signal);
    }
}

fn group_alive(group: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(-group, 0) == 0 }
}

/// Runs a short helper command to completion (useradd, chpasswd, version queries), with `input`
/// on its standard input; its output is returned, or its error output as the `Err`.
pub fn run_tool(program: &str, args: &[&str], input: Option<&str>) -> Result<String, String> {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // A tool that exits before reading its input reports that through its status.
        let _ = stdin.write_all(text.as_bytes());
    }
    let output = child.wait_with_output().map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&output.stderr);
        Err(format!("{program} {}: {} {}", args.join(" "), output.status, err.trim()))
    }
}

/// Touches up to `want` bytes of memory once, then gives it back. On a virtual machine, guest
/// memory that was never used is backed by the host only at its first touch, and that touch is
/// slow: STOR into tmpfs measured 340-950 MiB/s at 1.1-3 s of server CPU per GiB before this,
/// and 1100-2450 MiB/s at 0.4-0.9 s after (docs/PERFORMANCE.md). Whichever server happened to
/// write into fresh memory paid for it; touching it first makes the rounds fairer, though not
/// fair: memory freed later (a deleted upload) may be reported back to the host by the balloon
/// driver and be slow again. Capped at what the machine has available, less 2 GiB. Returns the
/// bytes touched.
pub fn warm_memory(want: usize) -> usize {
    const PAGE: usize = 4096;
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let available_kib: usize = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let bytes = want.min((available_kib * 1024).saturating_sub(2 << 30));
    let mut memory: Vec<u8> = Vec::with_capacity(bytes);
    // SAFETY: the capacity is `bytes`; only one byte per page is written, through a raw pointer,
    // and the vector is dropped without ever being read.
    let base = memory.as_mut_ptr();
    for offset in (0..bytes).step_by(PAGE) {
        unsafe { base.add(offset).write_volatile(1) };
    }
    drop(memory);
    bytes
}
