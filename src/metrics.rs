//! `Metrics`: the loop's counters and its per-iteration time histogram, rendered in the
//! Prometheus text exposition format (version 0.0.4) when a scrape asks for them. Plain
//! integers: the loop's one thread owns and updates them, so there are no atomics and no locks,
//! and counting costs an add. No I/O; gauges that the slab already knows (open sessions, data
//! connections) are passed in at render time instead of being kept twice.

use crate::ftp::event::{Completion, Direction, TransferRecord};
use std::fmt::Write;
use std::time::Duration;

/// Why a connection was refused before it became a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// `--max-sessions` reached.
    MaxSessions,
    /// `--max-per-ip` reached for the client's address.
    MaxPerIp,
}

impl Rejection {
    const ALL: [Rejection; 2] = [Rejection::MaxSessions, Rejection::MaxPerIp];

    fn label(self) -> &'static str {
        match self {
            Rejection::MaxSessions => "max_sessions",
            Rejection::MaxPerIp => "max_per_ip",
        }
    }
}

/// Outcome labels of `mioftpd_transfers_total`, in index order.
const OUTCOMES: [&str; 3] = ["ok", "aborted", "failed"];
/// Direction labels, in index order.
const DIRECTIONS: [&str; 2] = ["out", "in"];

/// Upper bounds of the loop-iteration histogram's buckets: nanoseconds, and the `le` label.
/// 10 µs to 1 s in 1-2.5-5 steps: an idle turn takes microseconds, a turn that moves a full
/// budget of data for many clients takes milliseconds, and anything near a second is a stall.
const TURN_BUCKETS: [(u64, &str); 16] = [
    (10_000, "1e-05"),
    (25_000, "2.5e-05"),
    (50_000, "5e-05"),
    (100_000, "0.0001"),
    (250_000, "0.00025"),
    (500_000, "0.0005"),
    (1_000_000, "0.001"),
    (2_500_000, "0.0025"),
    (5_000_000, "0.005"),
    (10_000_000, "0.01"),
    (25_000_000, "0.025"),
    (50_000_000, "0.05"),
    (100_000_000, "0.1"),
    (250_000_000, "0.25"),
    (500_000_000, "0.5"),
    (1_000_000_000, "1"),
];

/// Values the slab holds anyway, counted when a scrape asks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gauges {
    pub sessions: usize,
    pub data_connections: usize,
    pub passive_listeners: usize,
}

#[derive(Debug, Default)]
pub struct Metrics {
    sessions_total: u64,
    logins_ok: u64,
    logins_failed: u64,
    transfers: [[u64; OUTCOMES.len()]; DIRECTIONS.len()],
    bytes: [u64; DIRECTIONS.len()],
    rejected: [u64; Rejection::ALL.len()],
    /// Per bucket (not cumulative; the `+Inf` bucket last), summed up at render time.
    turn_buckets: [u64; TURN_BUCKETS.len() + 1],
    turn_nanos: u64,
    turns: u64,
}

impl Metrics {
    pub fn session_opened(&mut self) {
        self.sessions_total += 1;
    }

    pub fn rejected(&mut self, why: Rejection) {
        self.rejected[why as usize] += 1;
    }

    pub fn login(&mut self, ok: bool) {
        if ok {
            self.logins_ok += 1;
        } else {
            self.logins_failed += 1;
        }
    }

    /// Counts an ended transfer and the bytes it moved (all of them, also when cut short).
    pub fn transfer(&mut self, record: &TransferRecord) {
        let direction = match record.direction {
            Direction::Out => 0,
            Direction::In => 1,
        };
        let outcome = match record.completion {
            Completion::Complete => 0,
            Completion::Aborted => 1,
            Completion::NoConnection | Completion::Failed => 2,
        };
        self.transfers[direction][outcome] += 1;
        self.bytes[direction] += record.bytes.unwrap_or(0);
    }

    /// One loop iteration took `busy` (from `poll`'s return to the end of the turn).
    pub fn loop_turn(&mut self, busy: Duration) {
        let nanos = u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX);
        let bucket = TURN_BUCKETS.iter().position(|&(bound, _)| nanos <= bound).unwrap_or(TURN_BUCKETS.len());
        self.turn_buckets[bucket] += 1;
        self.turn_nanos = self.turn_nanos.saturating_add(nanos);
        self.turns += 1;
    }

    /// The text a `GET /metrics` answers with.
    pub fn render(&self, gauges: Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let o = &mut out;
        header(o, "sessions_open", "gauge", "Control connections open now, logged in or not.");
        sample(o, "sessions_open", "", gauges.sessions as u64);
        header(o, "sessions_total", "counter", "Control connections accepted as sessions.");
        sample(o, "sessions_total", "", self.sessions_total);
        header(o, "connections_rejected_total", "counter", "Connections refused with 421 before a session began.");
        for why in Rejection::ALL {
            sample(
                o,
                "connections_rejected_total",
                &format!("reason=\"{}\"", why.label()),
                self.rejected[why as usize],
            );
        }
        header(o, "logins_total", "counter", "Login attempts by result.");
        sample(o, "logins_total", "result=\"ok\"", self.logins_ok);
        sample(o, "logins_total", "result=\"failed\"", self.logins_failed);
        header(o, "transfers_total", "counter", "File transfers (RETR, STOR, APPE, STOU) by direction and outcome.");
        for (d, direction) in DIRECTIONS.iter().enumerate() {
            for (k, outcome) in OUTCOMES.iter().enumerate() {
                let labels = format!("direction=\"{direction}\",outcome=\"{outcome}\"");
                sample(o, "transfers_total", &labels, self.transfers[d][k]);
            }
        }
        header(o, "transfer_bytes_total", "counter", "Bytes of file transfers moved, by direction (out: downloads).");
        for (d, direction) in DIRECTIONS.iter().enumerate() {
            sample(o, "transfer_bytes_total", &format!("direction=\"{direction}\""), self.bytes[d]);
        }
        header(o, "data_connections_open", "gauge", "Data connections open now (transfers and listings).");
        sample(o, "data_connections_open", "", gauges.data_connections as u64);
        header(o, "passive_listeners_open", "gauge", "Passive listeners waiting for their client to connect.");
        sample(o, "passive_listeners_open", "", gauges.passive_listeners as u64);
        header(o, "loop_iterations_total", "counter", "Turns of the event loop.");
        sample(o, "loop_iterations_total", "", self.turns);
        let name = "loop_iteration_seconds";
        header(o, name, "histogram", "Time each loop turn spent working, from poll's return to the next poll.");
        let mut cumulative = 0;
        for (count, (_, le)) in self.turn_buckets.iter().zip(TURN_BUCKETS) {
            cumulative += count;
            sample(o, "loop_iteration_seconds_bucket", &format!("le=\"{le}\""), cumulative);
        }
        sample(o, "loop_iteration_seconds_bucket", "le=\"+Inf\"", self.turns);
        let _ = writeln!(o, "mioftpd_loop_iteration_seconds_sum {}", self.turn_nanos as f64 / 1e9);
        sample(o, "loop_iteration_seconds_count", "", self.turns);
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP mioftpd_{name} {help}\n# TYPE mioftpd_{name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &str, value: u64) {
    let _ = if labels.is_empty() {
        writeln!(out, "mioftpd_{name} {value}")
    } else {
        writeln!(out, "mioftpd_{name}{{{labels}}} {value}")
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::VPath;
    use std::time::Instant;

    fn sample_of<'a>(text: &'a str, key: &str) -> &'a str {
        let line = text.lines().find(|l| l.rsplit_once(' ').is_some_and(|(k, _)| k == key));
        line.and_then(|l| l.rsplit_once(' ')).map(|(_, v)| v).unwrap_or_else(|| panic!("{key} missing:\n{text}"))
    }

    #[test]
    fn loop_turns_fall_into_cumulative_buckets() {
        let mut m = Metrics::default();
        for micros in [5, 10, 30, 2_000, 2_000_000] {
            m.loop_turn(Duration::from_micros(micros));
        }
        let text = m.render(Gauges::default());
        let bucket = |le: &str| sample_of(&text, &format!("mioftpd_loop_iteration_seconds_bucket{{le=\"{le}\"}}"));
        assert_eq!(bucket("1e-05"), "2", "a bound is inclusive");
        assert_eq!(bucket("2.5e-05"), "2");
        assert_eq!(bucket("5e-05"), "3");
        assert_eq!(bucket("0.0025"), "4");
        assert_eq!(bucket("1"), "4");
        assert_eq!(bucket("+Inf"), "5");
        assert_eq!(sample_of(&text, "mioftpd_loop_iteration_seconds_count"), "5");
        assert_eq!(sample_of(&text, "mioftpd_loop_iterations_total"), "5");
        assert_eq!(sample_of(&text, "mioftpd_loop_iteration_seconds_sum"), "2.002045");
    }

    #[test]
    fn counters_and_gauges_by_label() {
        let mut m = Metrics::default();
        m.session_opened();
        m.login(true);
        m.login(false);
        m.login(false);
        m.rejected(Rejection::MaxSessions);
        let record = |direction, completion, bytes| TransferRecord {
            direction,
            path: VPath::root(),
            ascii: false,
            user: "u".into(),
            anonymous: false,
            peer: "127.0.0.1".parse().unwrap(),
            started: Instant::now(),
            bytes,
            completion,
        };
        m.transfer(&record(Direction::Out, Completion::Complete, Some(10)));
        m.transfer(&record(Direction::Out, Completion::Aborted, Some(3)));
        m.transfer(&record(Direction::In, Completion::NoConnection, Some(0)));
        m.transfer(&record(Direction::In, Completion::Failed, Some(7)));
        let text = m.render(Gauges { sessions: 4, data_connections: 2, passive_listeners: 1 });
        for (key, value) in [
            ("mioftpd_sessions_open", "4"),
            ("mioftpd_sessions_total", "1"),
            ("mioftpd_data_connections_open", "2"),
            ("mioftpd_passive_listeners_open", "1"),
            (r#"mioftpd_logins_total{result="ok"}"#, "1"),
            (r#"mioftpd_logins_total{result="failed"}"#, "2"),
            (r#"mioftpd_connections_rejected_total{reason="max_sessions"}"#, "1"),
            (r#"mioftpd_connections_rejected_total{reason="max_per_ip"}"#, "0"),
            (r#"mioftpd_transfers_total{direction="out",outcome="ok"}"#, "1"),
            (r#"mioftpd_transfers_total{direction="out",outcome="aborted"}"#, "1"),
            (r#"mioftpd_transfers_total{direction="in",outcome="failed"}"#, "2"),
            (r#"mioftpd_transfer_bytes_total{direction="out"}"#, "13"),
            (r#"mioftpd_transfer_bytes_total{direction="in"}"#, "7"),
        ] {
            assert_eq!(sample_of(&text, key), value, "{key}");
        }
        // Every family is announced once, before its samples.
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(types, text.lines().filter(|l| l.starts_with("# HELP ")).count());
        assert_eq!(types, 10);
    }
}
