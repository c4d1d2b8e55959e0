//! `sessions`: every client loops over whole short sessions — connect, USER/PASS, PWD,
//! PASV/EPSV + LIST, QUIT — the cost of a login and a directory listing, with nothing kept.

use super::{READ_BUFFER, Target, header};
use crate::procfs::Probe;
use crate::report::Report;
use crate::runner::{self, Plan};
use crate::stats;
use std::io;
use std::time::Instant;

pub fn run(target: &Target, plan: &Plan, probe: Option<&Probe>) -> Result<Report, String> {
    let mut buf = vec![0u8; READ_BUFFER];
    // One session first: a server that cannot do this at all is a setup error.
    session(target, &mut buf).map_err(|e| format!("session with {}: {e}", target.addr))?;
    let run = runner::run(
        plan,
        probe,
        |_| (),
        |ctx, ()| {
            let mut buf = vec![0u8; READ_BUFFER];
            while ctx.running() {
                let start = Instant::now();
                match session(target, &mut buf) {
                    Ok(listed) => ctx.done(start, listed),
                    Err(e) => {
                        ctx.error(e);
                        ctx.backoff();
                    }
                }
            }
        },
    );
    let seconds = run.window.seconds();
    let durations: Vec<_> = run.window_ops().map(|op| op.duration).collect();
    let sessions = durations.len() as u64;
    let latency = stats::percentiles(durations);
    let mut report = header("sessions", target, plan.clients);
    report
        .num("window_s", "measured window", seconds, "s", 2)
        .int("sessions", "sessions in window", sessions, "")
        .int("sessions_total", "sessions incl. warm-up", run.total_ops(), "")
        .num("sessions_per_s", "sessions per second", stats::per_second(sessions as f64, seconds), "/s", 1)
        .maybe("session_p50_ms", "session time p50", latency.map(|l| stats::millis(l.p50)), "ms", 3)
        .maybe("session_p99_ms", "session time p99", latency.map(|l| stats::millis(l.p99)), "ms", 3)
        .maybe("session_max_ms", "session time max", latency.map(|l| stats::millis(l.max)), "ms", 3)
        .maybe("server_cpu_s", "server CPU in window", run.window.cpu_seconds, "s", 2)
        .maybe(
            "cpu_s_per_1000_sessions",
            "server CPU per 1000 sessions",
            run.window.cpu_seconds.filter(|_| sessions > 0).map(|cpu| cpu / sessions as f64 * 1000.0),
            "s",
            3,
        )
        .errors(run.errors(), run.messages());
    Ok(report)
}

/// One whole session; returns the listing's size.
fn session(target: &Target, buf: &mut [u8]) -> io::Result<u64> {
    let mut client = target.login()?;
    client.pwd()?;
    let listed = client.list(None, buf)?;
    client.quit()?;
    Ok(listed)
}
