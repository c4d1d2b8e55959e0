//! Runs the clients of one scenario, one OS thread each, against one measured window. The
//! generator may block; only the server has to be event-driven.
//!
//! Timeline: every client sets up (connects, logs in), then all start together; the first
//! `warmup` is not measured; the window then lasts `window`, or until every client has stopped
//! on its own (iteration cap); then all clients are told to stop. A transfer still running at
//! that moment is abandoned (reset), not waited for, so a run takes `warmup + window` however
//! slow the server is.
//!
//! Bytes are counted as they move, per client, and read at both edges of the window: throughput
//! includes the part of a transfer that fell inside it. Latencies are those of the operations
//! that ended inside the window.

use crate::procfs::Probe;
use std::fmt::Display;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

pub struct Plan {
    pub clients: usize,
    pub warmup: Duration,
    pub window: Duration,
    /// Most operations (successful or not) one client starts: every loop ends by itself.
    pub max_ops: u64,
}

/// A client's byte counter on its own cache line: each client bumps its own once per chunk,
/// and counters sharing a line would make the clients contend for it.
#[repr(align(64))]
#[derive(Default)]
struct Counter(AtomicU64);

struct Shared {
    stop: AtomicBool,
    ready: Barrier,
    finished: AtomicUsize,
    bytes: Vec<Counter>,
}

/// One completed operation.
pub struct Op {
    pub end: Instant,
    pub duration: Duration,
    pub bytes: u64,
}

/// What one client did over the whole run, warm-up included.
#[derive(Default)]
pub struct ClientLog {
    pub ops: Vec<Op>,
    pub errors: u64,
    /// The first few error messages; the rest are only counted.
    pub messages: Vec<String>,
    /// Operations cut off by the end of the window.
    pub abandoned: u64,
}

/// Error messages kept per client.
const KEPT_MESSAGES: usize = 3;
/// Pause after an error, so a server that refuses is not hammered in a tight loop.
const BACKOFF: Duration = Duration::from_millis(100);
/// How often the coordinator checks whether every client has already finished.
const TICK: Duration = Duration::from_millis(10);

/// A client thread's view of the run.
pub struct Ctx<'a> {
    pub index: usize,
    shared: &'a Shared,
    max_ops: u64,
    pub log: ClientLog,
}

impl Ctx<'_> {
    /// Whether to start another operation.
    pub fn running(&self) -> bool {
        !self.stopping() && (self.log.ops.len() as u64 + self.log.errors) < self.max_ops
    }

    pub fn stopping(&self) -> bool {
        self.shared.stop.load(Relaxed)
    }

    /// Counts `n` bytes moved and says whether to go on: the progress callback of transfers.
    pub fn progress(&self, n: usize) -> bool {
        self.shared.bytes[self.index].0.fetch_add(n as u64, Relaxed);
        !self.stopping()
    }

    /// Records an operation that started at `start` and has just completed.
    pub fn done(&mut self, start: Instant, bytes: u64) {
        let end = Instant::now();
        self.log.ops.push(Op { end, duration: end - start, bytes });
    }

    pub fn error(&mut self, error: impl Display) {
        self.log.errors += 1;
        if self.log.messages.len() < KEPT_MESSAGES {
            self.log.messages.push(format!("client {}: {error}", self.index));
        }
    }

    pub fn abandoned(&mut self) {
        self.log.abandoned += 1;
    }

    /// Waits a little after an error, less if the run ends meanwhile.
    pub fn backoff(&self) {
        let end = Instant::now() + BACKOFF;
        while !self.stopping() && Instant::now() < end {
            thread::sleep(TICK);
        }
    }
}

/// The measured window.
pub struct Window {
    pub start: Instant,
    pub end: Instant,
    /// Bytes each client moved inside the window.
    pub client_bytes: Vec<u64>,
    /// Server CPU seconds spent inside the window, with `--server-pid`.
    pub cpu_seconds: Option<f64>,
}

impl Window {
    pub fn seconds(&self) -> f64 {
        (self.end - self.start).as_secs_f64()
    }

    pub fn bytes(&self) -> u64 {
        self.client_bytes.iter().sum()
    }

    pub fn contains(&self, t: Instant) -> bool {
        self.start <= t && t <= self.end
    }
}

pub struct Run<T> {
    pub window: Window,
    /// Each client's log and whatever the scenario's body returned.
    pub clients: Vec<(ClientLog, T)>,
    /// Failures outside the clients (the server process vanished under the probe).
    pub problems: Vec<String>,
}

impl<T> Run<T> {
    pub fn errors(&self) -> u64 {
        self.clients.iter().map(|(log, _)| log.errors).sum::<u64>() + self.problems.len() as u64
    }

    pub fn messages(&self) -> Vec<String> {
        let mut all = self.problems.clone();
        all.extend(self.clients.iter().flat_map(|(log, _)| log.messages.iter().cloned()));
        all
    }

    pub fn abandoned(&self) -> u64 {
        self.clients.iter().map(|(log, _)| log.abandoned).sum()
    }

    /// Operations over the whole run, warm-up included.
    pub fn total_ops(&self) -> u64 {
        self.clients.iter().map(|(log, _)| log.ops.len() as u64).sum()
    }

    /// Operations that ended inside the window.
    pub fn window_ops(&self) -> impl Iterator<Item = &Op> {
        self.clients.iter().flat_map(|(log, _)| &log.ops).filter(|op| self.window.contains(op.end))
    }
}

/// Runs `plan.clients` threads: each calls `setup`, waits for the others, then runs `body`
/// until `Ctx::running` says no.
pub fn run<S, T: Send>(
    plan: &Plan,
    probe: Option<&Probe>,
    setup: impl Fn(&mut Ctx) -> S + Sync,
    body: impl Fn(&mut Ctx, S) -> T + Sync,
) -> Run<T> {
    let shared = Shared {
        stop: AtomicBool::new(false),
        ready: Barrier::new(plan.clients + 1),
        finished: AtomicUsize::new(0),
        bytes: (0..plan.clients).map(|_| Counter::default()).collect(),
    };
    let mut problems = Vec::new();
    let (window, clients) = thread::scope(|scope| {
        let threads: Vec<_> = (0..plan.clients)
            .map(|index| {
                let (shared, setup, body) = (&shared, &setup, &body);
                scope.spawn(move || {
                    let mut ctx = Ctx { index, shared, max_ops: plan.max_ops, log: ClientLog::default() };
                    let state = setup(&mut ctx);
                    shared.ready.wait();
                    let result = body(&mut ctx, state);
                    shared.finished.fetch_add(1, Relaxed);
                    (ctx.log, result)
                })
            })
            .collect();
        shared.ready.wait();
        wait_until(&shared, plan.clients, Instant::now() + plan.warmup);
        let cpu = |problems: &mut Vec<String>| {
            probe.and_then(|p| p.cpu_seconds().map_err(|e| problems.push(format!("CPU probe: {e}"))).ok())
        };
        let (start, before, cpu_before) = (Instant::now(), snapshot(&shared), cpu(&mut problems));
        wait_until(&shared, plan.clients, start + plan.window);
        let (end, after, cpu_after) = (Instant::now(), snapshot(&shared), cpu(&mut problems));
        shared.stop.store(true, Relaxed);
        let client_bytes = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        let cpu_seconds = cpu_before.zip(cpu_after).map(|(b, a)| a - b);
        // A client thread only panics on a bug in this program: pass the panic on.
        let clients = threads.into_iter().map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect();
        (Window { start, end, client_bytes, cpu_seconds }, clients)
    });
    Run { window, clients, problems }
}

fn snapshot(shared: &Shared) -> Vec<u64> {
    shared.bytes.iter().map(|c| c.0.load(Relaxed)).collect()
}

/// Sleeps until `deadline`, or until every client has finished on its own.
fn wait_until(shared: &Shared, clients: usize, deadline: Instant) {
    loop {
        let now = Instant::now();
        if now >= deadline || shared.finished.load(Relaxed) == clients {
            return;
        }
        thread::sleep(TICK.min(deadline - now));
    }
}
