//! The flags after `cargo bench --bench compare --`, and the settings they come to.

use crate::peers;
use crate::scenarios;
use clap::Parser;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "compare",
    about = "mioftpd side by side with other FTP servers on 127.0.0.1, through ftpbench.",
    after_help = "Example: cargo bench --bench compare -- --rounds 1 --seconds 3 --servers mioftpd,vsftpd \
                  --scenarios retr1,small --idle-sessions 2000"
)]
pub struct Args {
    /// Rounds; every round runs every scenario on every server, the median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// Measured window of each scenario, in seconds [default: 10, or 1 with --quick].
    #[arg(long, value_parser = parse_seconds)]
    seconds: Option<Duration>,
    /// Servers, comma-separated: mioftpd, mioftpd-buffered (--no-zero-copy), mioftpd-tls, vsftpd,
    /// vsftpd-tls, pure-ftpd, pyftpdlib, unftp. The -tls ones offer explicit FTPS and are loaded
    /// over it (ftpbench --tls).
    #[arg(long, value_delimiter = ',', default_value = "mioftpd,vsftpd,pure-ftpd,pyftpdlib,unftp")]
    servers: Vec<String>,
    /// Scenarios, comma-separated: retr1, retr16, stor1, stor8, small, sessions, idle [default: all].
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Sessions the idle scenario holds open [default: 10000, or 200 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=18000))]
    idle_sessions: Option<u32>,
    /// Tiny sizes and short windows: a smoke run of the whole machinery.
    #[arg(long)]
    quick: bool,
    /// Passed by `cargo bench` itself; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.parse().map_err(|_| format!("expected seconds, got {text:?}"))?;
    if !(0.2..=600.0).contains(&secs) {
        return Err(format!("seconds must be between 0.2 and 600, got {text}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub struct Settings {
    pub rounds: u32,
    pub servers: Vec<peers::Kind>,
    pub scenarios: Vec<scenarios::Kind>,
    pub seconds: Duration,
    pub warmup: Duration,
    pub quick: bool,
    pub big_file_name: String,
    pub big_file_size: u64,
    pub stor_size: u64,
    /// Most bytes one `stor` run may leave on tmpfs (that is, in memory): ftpbench checks and
    /// deletes the uploads only at the end, so each client's uploads are capped to fit
    /// (`--max-ops`), and a fast server's run ends before its window does.
    pub stor_budget: u64,
    pub idle_sessions: u32,
    pub idle_hold: Duration,
    pub idle_open_within: Duration,
    pub ceiling_seconds: u32,
    /// The flags as given (without cargo's `--bench`), for the command line printed.
    pub flags: Vec<String>,
}

impl Settings {
    pub fn from_command_line() -> Result<Settings, String> {
        let argv: Vec<String> = std::env::args().collect();
        // Exits on --help or a malformed flag: nothing has been set up yet.
        let args = Args::parse_from(&argv);
        let mut servers = Vec::new();
        for name in &args.servers {
            let kind = peers::Kind::parse(name.trim()).ok_or_else(|| format!("unknown server {name:?}"))?;
            if !servers.contains(&kind) {
                servers.push(kind);
            }
        }
        let mut scenarios = Vec::new();
        for name in &args.scenarios {
            let kind = scenarios::Kind::parse(name.trim()).ok_or_else(|| format!("unknown scenario {name:?}"))?;
            if !scenarios.contains(&kind) {
                scenarios.push(kind);
            }
        }
        if servers.is_empty() {
            return Err("--servers names no server".to_string());
        }
        if scenarios.is_empty() {
            scenarios = scenarios::Kind::ALL.to_vec();
        }
        // Table order, whatever the order given.
        servers.sort();
        scenarios.sort_by_key(|k| scenarios::Kind::ALL.iter().position(|a| a == k));
        let quick = args.quick;
        let (big_file_name, big_file_size, stor_size) =
            if quick { ("bench-8m.bin", 8 << 20, 4 << 20) } else { ("bench-1g.bin", 1 << 30, 256 << 20) };
        Ok(Settings {
            rounds: args.rounds,
            servers,
            scenarios,
            seconds: args.seconds.unwrap_or(Duration::from_secs(if quick { 1 } else { 10 })),
            warmup: Duration::from_millis(if quick { 300 } else { 1000 }),
            quick,
            big_file_name: big_file_name.to_string(),
            big_file_size,
            stor_size,
            stor_budget: stor_budget(),
            idle_sessions: args.idle_sessions.unwrap_or(if quick { 200 } else { 10_000 }),
            idle_hold: Duration::from_secs(if quick { 1 } else { 5 }),
            idle_open_within: Duration::from_secs(180),
            ceiling_seconds: if quick { 1 } else { 3 },
            flags: argv.into_iter().skip(1).filter(|arg| arg != "--bench").collect(),
        })
    }

    /// What `stor_budget` says about a run.
    pub fn stor_note(&self) -> String {
        let uploads = |clients: u64| (self.stor_budget / self.stor_size / clients).max(2);
        format!(
            "STOR: at most {} uploads for 1 client, {} per client for 8 ({} GiB of tmpfs per run): \
             a fast server's run ends before its window does.",
            uploads(1),
            uploads(8),
            self.stor_budget >> 30
        )
    }

    /// The command that reproduces this run.
    pub fn command_line(&self) -> String {
        let mut line = "cargo bench --bench compare".to_string();
        if !self.flags.is_empty() {
            line.push_str(" --");
            for flag in &self.flags {
                line.push(' ');
                line.push_str(flag);
            }
        }
        line
    }
}

/// Half the memory available now, between 1 and 12 GiB.
fn stor_budget() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let available_kib = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemAvailable:")?.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    (available_kib * 1024 / 2).clamp(1 << 30, 12 << 30)
}
