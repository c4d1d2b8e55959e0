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
    /// Event loops, each on its own thread, sharing the control port (SO_REUSEPORT); a session
    /// stays on the loop that accepted it.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_workers)]
    pub workers: usize,
    /// Every connection, control and passive data, starts with a PROXY protocol header (v1 or
    /// v2) from a load balancer, naming the real client; connections without one are closed.
    #[arg(long)]
    pub proxy_protocol: bool,
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
            workers: 1,
            proxy_protocol: false,
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

/// Loops beyond the number of cores only add contention; the bound catches typos.
const MAX_WORKERS: usize = 256;

fn parse_workers(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_WORKERS).contains(&n) => Ok(n),
        _ => Err(format!("expected a number from 1 to {MAX_WORKERS}")),
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
    fn cli_defaults_and_subcommand() {
        let cli = Cli::try_parse_from(["mioftpd"]).unwrap();
        assert_eq!(cli.config.listen, "127.0.0.1:2121".parse().unwrap());
        assert!(cli.config.anonymous_allowed());
        let cli = Cli::try_parse_from(["mioftpd", "--users", "u.txt"]).unwrap();
        assert!(!cli.config.anonymous_allowed());
        let cli = Cli::try_parse_from(["mioftpd", "users", "add", "u.txt", "alice", "--read-only"]).unwrap();
        assert!(matches!(cli.command, Some(Subcommands::Users { action: UsersAction::Add { read_only: true, .. } })));
        assert!(Cli::try_parse_from(["mioftpd", "--listen", "nonsense"]).is_err());
        assert_eq!(cli.config.workers, 1);
        assert!(!cli.config.proxy_protocol);
        let cli = Cli::try_parse_from(["mioftpd", "--workers", "2", "--proxy-protocol"]).unwrap();
        assert_eq!((cli.config.workers, cli.config.proxy_protocol), (2, true));
        for bad in ["0", "-1", "257", "two"] {
            assert!(Cli::try_parse_from(["mioftpd", "--workers", bad]).is_err(), "{bad}");
        }
    }
}
