//! The command line: one subcommand per scenario, common flags accepted before or after it.
//! Parsing only; nothing here connects anywhere.

use clap::{Args, Parser, Subcommand};
use mioftpd::units::parse_size;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "ftpbench",
    version,
    about = "Load generator for any FTP server. Benchmark on loopback only: a server you run yourself.",
    after_help = "Example: ftpbench retr --host 127.0.0.1 --port 2121 --clients 16 --seconds 10 --server-pid 1234"
)]
pub struct Cli {
    #[command(subcommand)]
    pub scenario: Scenario,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Subcommand, Debug)]
pub enum Scenario {
    /// Each client downloads FILE over and over on one session: MiB/s, transfer time, fairness.
    Retr {
        /// The file to download; it must already exist on the server.
        #[arg(long, default_value = "/bench-1g.bin")]
        file: String,
    },
    /// Each client uploads SIZE bytes to bench-stor-CLIENT-N.bin over and over: MiB/s.
    Stor {
        /// Bytes per upload (suffixes K, M, G, KiB, MiB, GiB; all powers of 1024).
        #[arg(long, default_value = "256MiB", value_parser = parse_size)]
        size: u64,
        /// The local directory that is the upload directory on the server: check every
        /// uploaded file there (size and content), then delete them locally instead of by DELE.
        #[arg(long, value_name = "DIR")]
        verify_dir: Option<PathBuf>,
        /// Leave the uploaded files on the server.
        #[arg(long)]
        keep: bool,
    },
    /// Each client downloads a small FILE over and over on one session: transfers/s, latency.
    Small {
        /// The file to download; it must already exist on the server.
        #[arg(long, default_value = "/bench-4k.bin")]
        file: String,
    },
    /// Each client loops connect, USER/PASS, PWD, LIST, QUIT: sessions/s, session time.
    Sessions,
    /// Opens SESSIONS logged-in control connections (--clients threads open them), holds them
    /// idle, checks each still answers NOOP, closes them; with --server-pid, memory per session.
    Idle {
        /// Control connections to hold open.
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        /// Seconds to hold them idle before the NOOP round.
        #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_seconds)]
        hold: Duration,
        /// Seconds allowed for opening them all.
        #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_seconds)]
        open_within: Duration,
    },
}

#[derive(Args, Debug)]
pub struct Common {
    /// Server address: a loopback address unless --allow-remote.
    #[arg(long, global = true, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, global = true, default_value_t = 2121)]
    pub port: u16,
    #[arg(long, global = true, default_value = "anonymous")]
    pub user: String,
    #[arg(long, global = true, default_value = "ftpbench@")]
    pub pass: String,
    /// Concurrent clients (one thread each); for `idle`, threads opening sessions.
    #[arg(long, global = true, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub clients: u32,
    /// Length of the measured window.
    #[arg(long, global = true, value_name = "SECS", default_value = "10", value_parser = parse_seconds)]
    pub seconds: Duration,
    /// Unmeasured time before the window.
    #[arg(long, global = true, value_name = "SECS", default_value = "1", value_parser = parse_seconds)]
    pub warmup: Duration,
    /// Append the result as one line of JSON to FILE.
    #[arg(long, global = true, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Use EPSV instead of PASV for data connections.
    #[arg(long, global = true)]
    pub epsv: bool,
    /// Explicit FTPS: AUTH TLS, then PBSZ 0 and PROT P after login; data connections in TLS,
    /// resuming the control connection's session. The server's certificate is NOT verified
    /// (the handshake signature is): for benchmarking a server you run, never for real use.
    #[arg(long, global = true)]
    pub tls: bool,
    /// TLS version with --tls. With 1.3 a session gets as many TLS data connections as the
    /// server sent it tickets (usually 2): enough for `sessions` and `idle` only.
    #[arg(long, global = true, value_name = "VERSION", default_value = "1.2")]
    pub tls_version: crate::tls::Version,
    /// The server's process id (same machine): report its CPU time, and for `idle` its memory
    /// and descriptors, summed over its child processes.
    #[arg(long, global = true, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Timeout for every connect, read and write.
    #[arg(long, global = true, value_name = "SECS", default_value = "30", value_parser = parse_seconds)]
    pub timeout: Duration,
    /// Most operations one client starts, whatever the time left.
    #[arg(long, global = true, default_value_t = 1_000_000)]
    pub max_ops: u64,
    /// Allow a server that is not on a loopback address (only one you are responsible for).
    #[arg(long, global = true)]
    pub allow_remote: bool,
}

/// Seconds, possibly fractional (`0.5`).
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.parse().map_err(|_| format!("expected seconds, got {text:?}"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("expected a non-negative number of seconds, got {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_before_or_after_the_scenario() {
        let cli = Cli::try_parse_from(["ftpbench", "--clients", "2", "retr", "--seconds", "0.5", "--epsv"]).unwrap();
        assert_eq!((cli.common.clients, cli.common.seconds, cli.common.epsv), (2, Duration::from_millis(500), true));
        assert!(matches!(cli.scenario, Scenario::Retr { ref file } if file == "/bench-1g.bin"));
        let cli = Cli::try_parse_from(["ftpbench", "stor", "--size", "1MiB"]).unwrap();
        assert!(matches!(cli.scenario, Scenario::Stor { size: 1048576, verify_dir: None, keep: false }));
        assert!(Cli::try_parse_from(["ftpbench", "retr", "--clients", "0"]).is_err());
        assert!(Cli::try_parse_from(["ftpbench", "retr", "--seconds", "-1"]).is_err());
        assert!(Cli::try_parse_from(["ftpbench"]).is_err(), "a scenario is required");
        let cli = Cli::try_parse_from(["ftpbench", "--tls", "sessions", "--tls-version", "1.3"]).unwrap();
        assert!(cli.common.tls && cli.common.tls_version == crate::tls::Version::Tls13);
        assert!(Cli::try_parse_from(["ftpbench", "sessions", "--tls", "--tls-version", "1.1"]).is_err());
    }
}
