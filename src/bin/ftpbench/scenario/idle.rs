//! `idle`: how many idle logged-in sessions the server holds, and what each one costs it.
//!
//! Phases: sample the server; open N sessions (a few threads, within a time limit); hold them
//! idle; sample again (the plateau); send NOOP on every session at once and read every answer
//! (all must be 200); QUIT them all the same way; wait for the server's descriptors to come
//! back down, and sample a last time. Memory per session is (plateau − before) / N.

use super::{Target, header};
use crate::client::Client;
use crate::procfs::{Probe, Sample};
use crate::report::Report;
use crate::stats;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

pub struct Opening {
    pub sessions: usize,
    pub threads: usize,
    pub within: Duration,
}

/// How long the server gets, after the last QUIT, to release what the sessions held.
const SETTLE: Duration = Duration::from_secs(5);
const SETTLE_TICK: Duration = Duration::from_millis(50);
/// Error messages kept; the rest are only counted.
const KEPT_MESSAGES: usize = 10;

/// Failures counted through the phases.
#[derive(Default)]
struct Failures {
    count: u64,
    messages: Vec<String>,
}

impl Failures {
    fn add(&mut self, message: String) {
        self.count += 1;
        if self.messages.len() < KEPT_MESSAGES {
            self.messages.push(message);
        }
    }

    fn merge(&mut self, other: Failures) {
        self.count += other.count;
        let room = KEPT_MESSAGES.saturating_sub(self.messages.len());
        self.messages.extend(other.messages.into_iter().take(room));
    }
}

pub fn run(target: &Target, opening: &Opening, hold: Duration, probe: Option<&Probe>) -> Result<Report, String> {
    // Before the trial login, so that nothing of that session is left in the baseline.
    let before = probe.map(Probe::sample).transpose().map_err(|e| e.to_string())?;
    target.login().and_then(Client::quit).map_err(|e| format!("login to {}: {e}", target.addr))?;
    let mut failures = Failures::default();

    let start = Instant::now();
    let (sessions, open_failures) = open_all(target, opening);
    let open_seconds = start.elapsed().as_secs_f64();
    failures.merge(open_failures);
    let opened = sessions.len();
    if opened < opening.sessions {
        failures.add(format!("opened {opened} of {} sessions", opening.sessions));
    }
    thread::sleep(hold);
    let plateau = probe.and_then(|p| p.sample().map_err(|e| failures.add(format!("probe at plateau: {e}"))).ok());
    let (sessions, noop_ok) = round(sessions, "NOOP", 200, &mut failures);
    let (sessions, quit_ok) = round(sessions, "QUIT", 221, &mut failures);
    drop(sessions);
    let after = probe.and_then(|p| settle(p, before).map_err(|e| failures.add(format!("probe after: {e}"))).ok());
    let cpu = before.zip(after).map(|(b, a)| a.cpu_seconds - b.cpu_seconds);

    let mut report = header("idle", target, opening.threads);
    let per_session = |field: fn(&Sample) -> Option<u64>| {
        let (b, p) = (field(&before?)?, field(&plateau?)?);
        (opened > 0).then(|| (p as f64 - b as f64) / opened as f64)
    };
    let field =
        |sample: Option<Sample>, get: fn(&Sample) -> Option<u64>| sample.as_ref().and_then(get).map(|v| v as f64);
    let rss = |s: &Sample| Some(s.rss_kib);
    let pss = |s: &Sample| s.pss_kib;
    let fds = |s: &Sample| Some(s.fds);
    report
        .int("sessions_requested", "sessions requested", opening.sessions as u64, "")
        .int("sessions_opened", "sessions opened", opened as u64, "")
        .num("open_s", "time to open them", open_seconds, "s", 2)
        .num("opened_per_s", "sessions opened per second", stats::per_second(opened as f64, open_seconds), "/s", 1)
        .num("hold_s", "held idle for", hold.as_secs_f64(), "s", 1)
        .int("noop_ok", "NOOP answered 200", noop_ok as u64, "")
        .int("quit_ok", "QUIT answered 221", quit_ok as u64, "")
        .maybe("rss_before_kib", "server RSS before", field(before, rss), "KiB", 0)
        .maybe("rss_plateau_kib", "server RSS at plateau", field(plateau, rss), "KiB", 0)
        .maybe("rss_after_kib", "server RSS after close", field(after, rss), "KiB", 0)
        .maybe("rss_per_session_kib", "RSS per session", per_session(rss), "KiB", 2)
        .maybe("pss_before_kib", "server PSS before", field(before, pss), "KiB", 0)
        .maybe("pss_plateau_kib", "server PSS at plateau", field(plateau, pss), "KiB", 0)
        .maybe("pss_after_kib", "server PSS after close", field(after, pss), "KiB", 0)
        .maybe("pss_per_session_kib", "PSS per session", per_session(pss), "KiB", 2)
        .maybe("fds_before", "server fds before", field(before, fds), "", 0)
        .maybe("fds_plateau", "server fds at plateau", field(plateau, fds), "", 0)
        .maybe("fds_after", "server fds after close", field(after, fds), "", 0)
        .maybe("server_processes", "server processes at plateau", plateau.map(|s| s.processes as f64), "", 0)
        .maybe("server_cpu_s", "server CPU, open to close", cpu, "s", 2)
        .maybe(
            "cpu_s_per_1000_sessions",
            "server CPU per 1000 sessions",
            cpu.filter(|_| opened > 0).map(|cpu| cpu / opened as f64 * 1000.0),
            "s",
            3,
        )
        .errors(failures.count, failures.messages);
    Ok(report)
}

/// Opens up to `opening.sessions` logged-in sessions from a few threads, until the time limit.
fn open_all(target: &Target, opening: &Opening) -> (Vec<Client>, Failures) {
    let next = AtomicUsize::new(0);
    let deadline = Instant::now() + opening.within;
    let threads = opening.threads.clamp(1, opening.sessions.max(1));
    thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let (mut opened, mut failures) = (Vec::new(), Failures::default());
                    while Instant::now() < deadline && next.fetch_add(1, Relaxed) < opening.sessions {
                        match target.login() {
                            Ok(client) => opened.push(client),
                            Err(e) => failures.add(format!("open: {e}")),
                        }
                    }
                    (opened, failures)
                })
            })
            .collect();
        let (mut all, mut failures) = (Vec::new(), Failures::default());
        for worker in workers {
            // A worker only panics on a bug in this program: pass the panic on.
            let (opened, failed) = worker.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            all.extend(opened);
            failures.merge(failed);
        }
        (all, failures)
    })
}

/// Sends `command` on every session, then reads every answer: one round trip's worth of
/// waiting for all of them rather than one per session. Returns the sessions that answered
/// `code` (the others are closed and counted as failures) and how many they were.
fn round(sessions: Vec<Client>, command: &str, code: u16, failures: &mut Failures) -> (Vec<Client>, usize) {
    let mut sent = Vec::with_capacity(sessions.len());
    for mut client in sessions {
        match client.send(command) {
            Ok(()) => sent.push(client),
            Err(e) => failures.add(format!("{command}: {e}")),
        }
    }
    let mut answered = Vec::with_capacity(sent.len());
    for mut client in sent {
        match client.reply() {
            Ok(reply) if reply.code == code => answered.push(client),
            Ok(reply) => failures.add(format!("{command}: {} {}", reply.code, reply.text)),
            Err(e) => failures.add(format!("{command}: {e}")),
        }
    }
    let ok = answered.len();
    (answered, ok)
}

/// Waits until the server's descriptors are back to where they were before (or `SETTLE` has
/// passed), then samples it.
fn settle(probe: &Probe, before: Option<Sample>) -> std::io::Result<Sample> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let sample = probe.sample()?;
        if before.is_none_or(|b| sample.fds <= b.fds) || Instant::now() >= deadline {
            return Ok(sample);
        }
        thread::sleep(SETTLE_TICK);
    }
}
