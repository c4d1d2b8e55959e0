//! Command-line configuration: what to serve, where, and to whom. Parsing and validation only;
//! no sockets are opened here.

use clap::{Args, Parser, Subcommand};
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "mioftpd", version, about = "A concurrent FTP server on one mio event loop.")]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Subcommands>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Subcommand, Debug)]
pub enum Subcommands {
    /// Manage the users file.
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
}

#[derive(Subcommand, Debug)]
pub enum UsersAction {
    /// Add a user, or replace its password; reads the password from standard input (one line).
    Add {
        /// The users file (created if missing).
        file: PathBuf,
        /// The user name.
        name: String,
        /// The user may read but not write.
        #[arg(long)]
        read_only: bool,
    },
}

#[derive(Args, Clone, Debug)]
pub struct Config {
    /// Address and port of the control listener.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:2121")]
    pub listen: SocketAddr,
    /// The directory served as `/`.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub root: PathBuf,
    /// Allow anonymous (read-only) logins as `anonymous` or `ftp`. On by default when no
    /// `--users` file is given.
    #[arg(long)]
    pub anonymous: bool,
    /// Users file: `NAME:HASH[:rw|ro]` lines (see `mioftpd users add`).
    #[arg(long, value_name = "FILE")]
    pub users: Option<PathBuf>,
    /// Ports for passive data connections, e.g. `50000-50100` (default: the system's ephemeral range).
    #[arg(long, value_name = "A-B", value_parser = parse_port_range)]
    pub pasv_ports: Option<RangeInclusive<u16>>,
    /// The IPv4 address `PASV` replies advertise (for a server behind NAT).
    #[arg(long, value_name = "IP")]
    pub pasv_address: Option<Ipv4Addr>,
    /// Seconds a logged-in session may stay silent (no command) before it is closed with 421.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub idle_timeout: u64,
    /// Seconds a connection has to log in.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub login_timeout: u64,
    /// Seconds a data connection may make no progress (including waiting for the client to
    /// connect to a passive port) before the transfer fails with 426/425.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub data_timeout: u64,
    /// Most sessions at once; further connections get 421.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub max_sessions: usize,
    /// Most sessions at once from one IP address.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_per_ip: usize,
    /// Failed logins after which a session is closed with 421.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_login_failures: u32,
    /// Milliseconds before a failed login is answered (other sessions are not delayed).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub failed_login_delay: u64,
    /// On SIGTERM/SIGINT, seconds running transfers get to finish before everything closes.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub shutdown_grace: u64,
    /// Seconds a successful login is remembered, so that the same user and password log in
    /// again without re-running the password hash (0: always hash).
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub credential_cache_secs: u64,
    /// Started as root (to bind port 21), switch to this account right after binding.
    #[arg(long, value_name = "USER")]
    pub run_as: Option<String>,
    /// Move binary transfers through a 64 KiB buffer of ours instead of inside the kernel
    /// (`sendfile` for downloads, `splice` for uploads); for comparison.
    #[arg(long)]
    pub no_zero_copy: bool,
    /// Bytes per second all data connections together may move, e.g. `10M` (suffixes k, M, G
    /// are powers of 1024).
    #[arg(long, value_name = "BYTES_PER_S", value_parser = parse_rate)]
    pub max_rate: Option<u64>,
    /// Bytes per second one session's data connections may move, e.g. `1M`.
    #[arg(long, value_name = "BYTES_PER_S", value_parser = parse_rate)]
    pub max_rate_per_session: Option<u64>,
    /// After each completed upload, run this program (split at whitespace into program and
    /// arguments, no shell), with the file's path on disk as the last argument.
    #[arg(long, value_name = "CMD")]
    pub on_upload: Option<String>,
    /// Most `--on-upload` commands running at once; later ones wait in order.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = parse_at_least_one)]
    pub on_upload_max: usize,
}

impl Config {
    /// The defaults, serving `root`; what tests start from.
    pub fn new(root: impl Into<PathBuf>) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 2121)),
            root: root.into(),
            anonymous: false,
            users: None,
            pasv_ports: None,
            pasv_address: None,
            idle_timeout: 300,
            login_timeout: 60,
            data_timeout: 120,
            max_sessions: 2000,
            max_per_ip: 100,
            max_login_failures: 3,
            failed_login_delay: 1000,
            shutdown_grace: 30,
            credential_cache_secs: 300,
            run_as: None,
            no_zero_copy: false,
            max_rate: None,
            max_rate_per_session: None,
            on_upload: None,
            on_upload_max: 4,
        }
    }

    /// Anonymous access is on when asked for, or when there is no other way to log in.
    pub fn anonymous_allowed(&self) -> bool {
        self.anonymous || self.users.is_none()
    }
}

fn parse_port_range(text: &str) -> Result<RangeInclusive<u16>, String> {
    let (low, high) = text.split_once('-').ok_or("expected A-B, e.g. 50000-50100")?;
    let low: u16 = low.trim().parse().map_err(|e| format!("bad first port: {e}"))?;
    let high: u16 = high.trim().parse().map_err(|e| format!("bad last port: {e}"))?;
    if low == 0 || low > high {
        return Err("expected 1 <= A <= B".into());
    }
    Ok(low..=high)
}

/// `1048576`, `1024k`, `1M`, `2G`: bytes per second, with binary suffixes.
fn parse_rate(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last() {
        Some((at, 'k' | 'K')) => (&text[..at], 1 << 10),
        Some((at, 'm' | 'M')) => (&text[..at], 1 << 20),
        Some((at, 'g' | 'G')) => (&text[..at], 1 << 30),
        _ => (text, 1),
    };
    let number: u64 =
        digits.parse().map_err(|_| format!("expected bytes per second such as 512k or 10M, not {text:?}"))?;
    match number.checked_mul(unit) {
        Some(0) => Err("must be more than 0 (leave the option out for no limit)".into()),
        Some(rate) => Ok(rate),
        None => Err("too large".into()),
    }
}

fn parse_at_least_one(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) | Err(_) => Err("expected a whole number of at least 1".into()),
        Ok(n) => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("50000-50100"), Ok(50000..=50100));
        assert_eq!(parse_port_range("7-7"), Ok(7..=7));
        for bad in ["", "5", "9-1", "0-5", "a-b", "1-70000"] {
            assert!(parse_port_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rates_take_binary_suffixes() {
        assert_eq!(parse_rate("1048576"), Ok(1 << 20));
        assert_eq!(parse_rate("1M"), Ok(1 << 20));
        assert_eq!(parse_rate("512k"), Ok(512 << 10));
        assert_eq!(parse_rate("512K"), Ok(512 << 10));
        assert_eq!(parse_rate("2G"), Ok(2 << 30));
        assert_eq!(parse_rate("3m"), Ok(3 << 20));
        for bad in ["", "0", "0M", "M", "1.5M", "-1", "1T", "99999999999G", "1 M"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limit_and_hook_options() {
        let cli = Cli::try_parse_from(["mioftpd"]).unwrap();
        assert_eq!((cli.config.max_rate, cli.config.on_upload_max), (None, 4));
        let cli = Cli::try_parse_from([
            "mioftpd",
            "--max-rate",
            "10M",
            "--max-rate-per-session",
            "1M",
            "--on-upload",
            "/usr/local/bin/scan --quick",
            "--on-upload-max",
            "2",
        ])
        .unwrap();
        assert_eq!((cli.config.max_rate, cli.config.max_rate_per_session), (Some(10 << 20), Some(1 << 20)));
        assert_eq!(cli.config.on_upload.as_deref(), Some("/usr/local/bin/scan --quick"));
        assert_eq!(cli.config.on_upload_max, 2);
        assert!(Cli::try_parse_from(["mioftpd", "--on-upload-max", "0"]).is_err());
        assert!(Cli::try_parse_from(["mioftpd", "--max-rate", "fast"]).is_err());
    }

    #[test]
    fn cli_defaults_and_subcommand() {
        let cli = Cli::try_parse_from(["mioftpd"]).unwrap();
        assert_eq!(cli.config.listen, "127.0.0.1:2121".parse().unwrap());
        assert!(cli.config.anonymous_allowed());
        let cli = Cli::try_parse_from(["mioftpd", "--users", "u.txt"]).unwrap();
        assert!(!cli.config.anonymous_allowed());
        let cli = Cli::try_parse_from(["mioftpd", "users", "add", "u.txt", "alice", "--read-only"]).unwrap();
        assert!(matches!(cli.command, Some(Subcommands::Users { action: UsersAction::Add { read_only: true, .. } })));
        assert!(Cli::try_parse_from(["mioftpd", "--listen", "nonsense"]).is_err());
    }
}
