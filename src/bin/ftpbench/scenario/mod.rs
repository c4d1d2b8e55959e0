//! The scenarios: what each client does, and which numbers of it are reported. Each scenario
//! first checks once that the server answers as needed (a failure there is a setup error, not
//! a measurement), then runs its clients through `runner` (or, for `idle`, its own phases).

mod idle;
mod retr;
mod sessions;
mod stor;

use crate::cli::{Cli, Common, Scenario};
use crate::client::{Client, DataMode};
use crate::procfs::Probe;
use crate::report::Report;
use crate::runner::{Ctx, Plan, Run};
use crate::stats::{self, GIB, MIB};
use crate::tls::Tls;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Data-connection reads go into a buffer this large, so that the client side of a loopback
/// transfer costs few system calls and is not what limits a multi-GiB/s server.
pub const READ_BUFFER: usize = 256 * 1024;

/// Where and as whom every client connects.
pub struct Target {
    pub addr: SocketAddr,
    user: String,
    pass: String,
    timeout: Duration,
    mode: DataMode,
    tls: Option<Tls>,
}

impl Target {
    /// Resolves `--host`/`--port`. Only a loopback address is accepted unless `--allow-remote`:
    /// a load generator pointed at someone else's server is an attack.
    fn resolve(common: &Common) -> Result<Target, String> {
        let addr = (common.host.as_str(), common.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", common.host))?
            .next()
            .ok_or_else(|| format!("{} has no address", common.host))?;
        if !addr.ip().is_loopback() && !common.allow_remote {
            return Err(format!(
                "{addr} is not a loopback address; benchmark a server you run yourself on loopback \
                 (--allow-remote overrides this for a machine you are responsible for)"
            ));
        }
        let mode = if common.epsv { DataMode::Epsv } else { DataMode::Pasv };
        let tls = common.tls.then(|| Tls::new(common.tls_version)).transpose()?;
        let (user, pass) = (common.user.clone(), common.pass.clone());
        Ok(Target { addr, user, pass, timeout: common.timeout, mode, tls })
    }

    /// Connects and logs in.
    pub fn login(&self) -> io::Result<Client> {
        let mut client = Client::connect(self.addr, self.timeout, self.mode, self.tls.as_ref())?;
        client.login(&self.user, &self.pass)?;
        Ok(client)
    }

    /// Connects, logs in and switches to binary, ready for transfers.
    pub fn login_binary(&self) -> io::Result<Client> {
        let mut client = self.login()?;
        client.binary()?;
        Ok(client)
    }
}

/// Runs the scenario the command line names. `Err` is a setup failure (bad target, server not
/// answering as required); failures during the run are counted in the report instead.
pub fn run(cli: &Cli) -> Result<Report, String> {
    let common = &cli.common;
    let target = Target::resolve(common)?;
    let probe = common.server_pid.map(Probe::new).transpose().map_err(|e| e.to_string())?;
    let plan = Plan {
        clients: common.clients as usize,
        warmup: common.warmup,
        window: common.seconds,
        max_ops: common.max_ops,
    };
    match &cli.scenario {
        Scenario::Retr { file } => retr::run("retr", &target, &plan, probe.as_ref(), file),
        Scenario::Small { file } => retr::run("small", &target, &plan, probe.as_ref(), file),
        Scenario::Stor { size, verify_dir, keep } => {
            stor::run(&target, &plan, probe.as_ref(), *size, verify_dir.as_deref(), *keep)
        }
        Scenario::Sessions => sessions::run(&target, &plan, probe.as_ref()),
        Scenario::Idle { sessions, hold, open_within } => {
            let opening = idle::Opening { sessions: *sessions, threads: plan.clients, within: *open_within };
            idle::run(&target, &opening, *hold, probe.as_ref())
        }
    }
}

/// The rows every report starts with.
fn header(scenario: &'static str, target: &Target, clients: usize) -> Report {
    let mut report = Report::new(scenario);
    report
        .text("server", "server", target.addr.to_string())
        .text("user", "user", target.user.clone())
        .text("data_mode", "data connections", target.mode.name())
        .text("tls", "TLS", target.tls.as_ref().map_or("no", |tls| tls.version.name()))
        .int("clients", "clients", clients as u64, "");
    report
}

/// A logged-in binary session for a client, or `None` (counted as an error) if that failed.
fn open_session(ctx: &mut Ctx, target: &Target) -> Option<Client> {
    match target.login_binary() {
        Ok(client) => Some(client),
        Err(e) => {
            ctx.error(format!("login: {e}"));
            ctx.backoff();
            None
        }
    }
}

/// Ends a client's session politely; a server that does not answer QUIT is an error too.
fn close_session(ctx: &mut Ctx, session: Option<Client>) {
    if let Some(client) = session
        && let Err(e) = client.quit()
    {
        ctx.error(e);
    }
}

/// The rows of a transfer scenario (retr, small, stor): counts, throughput, per-transfer time,
/// per-client rates and server CPU cost.
fn transfer_rows<T>(report: &mut Report, run: &Run<T>) {
    let window = &run.window;
    let seconds = window.seconds();
    let (mut transfers, mut bytes, mut durations) = (0u64, 0u64, Vec::new());
    for op in run.window_ops() {
        transfers += 1;
        bytes += op.bytes;
        durations.push(op.duration);
    }
    let latency = stats::percentiles(durations);
    let client_rates: Vec<f64> =
        window.client_bytes.iter().map(|&b| stats::per_second(b as f64 / MIB, seconds)).collect();
    let spread = stats::spread(&client_rates);
    let window_gib = window.bytes() as f64 / GIB;
    report
        .num("window_s", "measured window", seconds, "s", 2)
        .int("transfers", "transfers in window", transfers, "")
        .int("bytes", "bytes of those transfers", bytes, "B")
        .int("transfers_total", "transfers incl. warm-up", run.total_ops(), "")
        .int("abandoned", "cut off at the end", run.abandoned(), "")
        .int("window_bytes", "bytes moved in window", window.bytes(), "B")
        .num("mib_per_s", "throughput", stats::per_second(window.bytes() as f64 / MIB, seconds), "MiB/s", 1)
        .num("transfers_per_s", "transfers per second", stats::per_second(transfers as f64, seconds), "/s", 1)
        .maybe("transfer_p50_ms", "transfer time p50", latency.map(|l| stats::millis(l.p50)), "ms", 3)
        .maybe("transfer_p99_ms", "transfer time p99", latency.map(|l| stats::millis(l.p99)), "ms", 3)
        .maybe("transfer_max_ms", "transfer time max", latency.map(|l| stats::millis(l.max)), "ms", 3)
        .maybe("client_min_mib_s", "slowest client", spread.map(|s| s.min), "MiB/s", 1)
        .maybe("client_max_mib_s", "fastest client", spread.map(|s| s.max), "MiB/s", 1)
        .maybe("fairness", "fairness (slowest/fastest)", spread.map(|s| s.fairness), "", 3)
        .nums("client_mib_s", "each client", client_rates, "MiB/s", 1)
        .maybe("server_cpu_s", "server CPU in window", window.cpu_seconds, "s", 2)
        .maybe(
            "cpu_s_per_gib",
            "server CPU per GiB",
            window.cpu_seconds.filter(|_| window_gib > 0.0).map(|cpu| cpu / window_gib),
            "s",
            3,
        );
}
