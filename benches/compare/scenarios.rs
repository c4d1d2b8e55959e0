//! The scenarios, each one run of the `ftpbench` binary against one server, and the numbers
//! of its JSON result that the table reports.

use crate::procs::{self, Guard};
use crate::settings::Settings;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Retr1,
    Retr16,
    Stor1,
    Stor8,
    Small,
    Sessions,
    Idle,
}

/// One number of a scenario's result.
pub struct Metric {
    /// The key in ftpbench's JSON.
    pub key: &'static str,
    pub label: &'static str,
    pub unit: &'static str,
    pub higher_is_better: bool,
    pub decimals: usize,
    /// Drawn in the SVG chart.
    pub chart: bool,
}

const fn metric(key: &'static str, label: &'static str, unit: &'static str, higher: bool, decimals: usize) -> Metric {
    Metric { key, label, unit, higher_is_better: higher, decimals, chart: false }
}

const fn charted(m: Metric) -> Metric {
    Metric { chart: true, ..m }
}

const THROUGHPUT: Metric = charted(metric("mib_per_s", "throughput", "MiB/s", true, 0));
const CPU_PER_GIB: Metric = metric("cpu_s_per_gib", "server CPU per GiB", "s", false, 3);
const FAIRNESS: Metric = metric("fairness", "fairness slowest/fastest", "", true, 2);

const RETR1: &[Metric] = &[THROUGHPUT, CPU_PER_GIB];
const RETR16: &[Metric] = &[THROUGHPUT, charted(CPU_PER_GIB), FAIRNESS];
const STOR1: &[Metric] = &[THROUGHPUT, CPU_PER_GIB];
const STOR8: &[Metric] = &[THROUGHPUT, charted(CPU_PER_GIB), FAIRNESS];
const SMALL: &[Metric] = &[
    charted(metric("transfers_per_s", "transfers", "/s", true, 0)),
    metric("transfer_p99_ms", "transfer time p99", "ms", false, 2),
    charted(metric("cpu_s_per_1000_transfers", "server CPU per 1000 transfers", "s", false, 3)),
];
const SESSIONS: &[Metric] = &[
    charted(metric("sessions_per_s", "sessions", "/s", true, 0)),
    metric("session_p99_ms", "session time p99", "ms", false, 2),
    charted(metric("cpu_s_per_1000_sessions", "server CPU per 1000 sessions", "s", false, 3)),
];
const IDLE: &[Metric] = &[
    metric("rss_per_session_kib", "RSS per idle session", "KiB", false, 1),
    charted(metric("pss_per_session_kib", "PSS per idle session", "KiB", false, 1)),
    metric("opened_per_s", "sessions opened", "/s", true, 0),
    metric("cpu_s_per_1000_sessions", "server CPU per 1000 sessions", "s", false, 3),
];

/// Time ftpbench gets on top of its warm-up and window (logins, the SIZE check, a stor run's
/// verification of every upload) before it is considered hung and stopped.
const SLACK: Duration = Duration::from_secs(120);

impl Kind {
    pub const ALL: [Kind; 7] =
        [Kind::Retr1, Kind::Retr16, Kind::Stor1, Kind::Stor8, Kind::Small, Kind::Sessions, Kind::Idle];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Retr1 => "retr1",
            Kind::Retr16 => "retr16",
            Kind::Stor1 => "stor1",
            Kind::Stor8 => "stor8",
            Kind::Small => "small",
            Kind::Sessions => "sessions",
            Kind::Idle => "idle",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    pub fn title(self, settings: &Settings) -> String {
        let big = size_name(settings.big_file_size);
        let stor = size_name(settings.stor_size);
        match self {
            Kind::Retr1 => format!("RETR 1 client ({big})"),
            Kind::Retr16 => format!("RETR 16 clients ({big})"),
            Kind::Stor1 => format!("STOR 1 client ({stor})"),
            Kind::Stor8 => format!("STOR 8 clients ({stor})"),
            Kind::Small => "small RETR 64 clients (4 KiB)".to_string(),
            Kind::Sessions => "sessions 32 clients (login, PWD, LIST, QUIT)".to_string(),
            Kind::Idle => format!("idle {} sessions (fresh server)", settings.idle_sessions),
        }
    }

    pub fn metrics(self) -> &'static [Metric] {
        match self {
            Kind::Retr1 => RETR1,
            Kind::Retr16 => RETR16,
            Kind::Stor1 => STOR1,
            Kind::Stor8 => STOR8,
            Kind::Small => SMALL,
            Kind::Sessions => SESSIONS,
            Kind::Idle => IDLE,
        }
    }

    /// Measured against a freshly started server of its own: memory freed by earlier load
    /// stays in a process, and would make its sessions look cheaper.
    pub fn needs_fresh_server(self) -> bool {
        self == Kind::Idle
    }

    fn clients(self) -> u32 {
        match self {
            Kind::Retr1 | Kind::Stor1 => 1,
            Kind::Retr16 => 16,
            Kind::Stor8 => 8,
            Kind::Small => 64,
            Kind::Sessions => 32,
            // Threads that open the idle sessions.
            Kind::Idle => 16,
        }
    }

    /// ftpbench's scenario and its own flags.
    fn args(self, settings: &Settings, root: &Path) -> Vec<String> {
        let mut args: Vec<String> = match self {
            Kind::Retr1 | Kind::Retr16 => vec!["retr".into(), "--file".into(), format!("/{}", settings.big_file_name)],
            Kind::Stor1 | Kind::Stor8 => {
                let per_client = (settings.stor_budget / settings.stor_size / self.clients() as u64).max(2);
                vec![
                    "stor".into(),
                    "--size".into(),
                    settings.stor_size.to_string(),
                    "--verify-dir".into(),
                    root.display().to_string(),
                    "--max-ops".into(),
                    per_client.to_string(),
                ]
            }
            Kind::Small => vec!["small".into(), "--file".into(), "/bench-4k.bin".into()],
            Kind::Sessions => vec!["sessions".into()],
            Kind::Idle => vec![
                "idle".into(),
                "--sessions".into(),
                settings.idle_sessions.to_string(),
                "--hold".into(),
                settings.idle_hold.as_secs_f64().to_string(),
                "--open-within".into(),
                settings.idle_open_within.as_secs().to_string(),
            ],
        };
        args.extend(["--clients".into(), self.clients().to_string()]);
        args
    }

    /// How long one run may take before it is stopped as hung.
    fn time_limit(self, settings: &Settings) -> Duration {
        match self {
            Kind::Idle => settings.idle_open_within + settings.idle_hold + SLACK,
            _ => settings.warmup + settings.seconds + SLACK,
        }
    }
}

/// `1 GiB`, `256 MiB`, `4 KiB`.
pub fn size_name(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b % 1024 == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// What one ftpbench run gave.
pub struct Outcome {
    /// 0 clean, 1 completed with errors counted, 2 could not run; `None`: stopped (hung or
    /// interrupted).
    pub exit_code: Option<i32>,
    /// Its JSON line, when it got that far.
    pub result: Option<serde_json::Value>,
    pub seconds: f64,
}

/// Where and as whom ftpbench connects.
pub struct Target<'a> {
    pub port: u16,
    pub user: &'a str,
    pub password: &'a str,
    pub server_pid: u32,
    /// Explicit FTPS (`ftpbench --tls`, TLS 1.2: see ftpbench's `--tls-version`).
    pub tls: bool,
}

/// Runs ftpbench once; its output goes to `log`, its JSON line to `scratch` (then read back).
pub fn run(
    ftpbench: &Path,
    kind: Kind,
    settings: &Settings,
    target: &Target,
    root: &Path,
    scratch: &Path,
    log: &Path,
) -> Result<Outcome, String> {
    let _ = fs::remove_file(scratch);
    let mut command = Command::new(ftpbench);
    command.args(kind.args(settings, root));
    #[rustfmt::skip]
    command.args([
        "--host", "127.0.0.1", "--port", &target.port.to_string(),
        "--user", target.user, "--pass", target.password,
        "--seconds", &settings.seconds.as_secs_f64().to_string(),
        "--warmup", &settings.warmup.as_secs_f64().to_string(),
        "--server-pid", &target.server_pid.to_string(),
        "--json", &scratch.display().to_string(),
    ]);
    if target.tls {
        command.arg("--tls");
    }
    let start = Instant::now();
    let mut child = Guard::spawn("ftpbench", &mut command, log)?;
    let status = child.wait(kind.time_limit(settings));
    // Stops it if it is still running (hung, or Ctrl-C).
    drop(child);
    procs::check_interrupt()?;
    let result = fs::read_to_string(scratch)
        .ok()
        .and_then(|text| text.lines().last().and_then(|line| serde_json::from_str(line).ok()));
    Ok(Outcome { exit_code: status.and_then(|s| s.code()), result, seconds: start.elapsed().as_secs_f64() })
}
