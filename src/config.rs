//! Command-line configuration: what to serve, where, and to whom. Parsing and validation only;
//! no sockets are opened here. Every flag of `Config` is also a key of the `--config` file
//! (see `config_file`), with nothing to add for it there.

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
    /// A TOML file of settings: each key is a flag's long name (`max_sessions = 50`); flags
    /// given on the command line win over it.
    #[arg(long = "config", value_name = "FILE")]
    pub config_file: Option<PathBuf>,
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
    /// Check a configuration file, the root and the users file it names, and each user's
    /// home; print the effective settings (no password hashes). Exit status 1 if anything is wrong.
    CheckConfig {
        /// The TOML file, as for `--config`.
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum UsersAction {
    /// Add a user, or replace its password; reads the password from standard input (one line).
    /// An existing user keeps the access, home and rate not given here.
    Add {
        /// The users file (created if missing).
        file: PathBuf,
        /// The user name.
        name: String,
        /// The user may read but not write.
        #[arg(long, conflicts_with = "read_write")]
        read_only: bool,
        /// The user may read and write (the default for a new user).
        #[arg(long)]
        read_write: bool,
        /// The user's `/`: a directory inside `--root` (relative) or instead of it (absolute).
        #[arg(long, value_name = "DIR")]
        home: Option<PathBuf>,
        /// The user's bandwidth limit in bytes per second (`512k`, `10M`).
        #[arg(long, value_name = "BYTES_PER_SEC", value_parser = crate::units::parse_rate)]
        rate: Option<u64>,
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
    /// Users file: `NAME:HASH[:FLAGS]` lines, FLAGS like `rw,home=alice,rate=10M` (see `mioftpd users add`).
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
    /// TLS certificate chain (PEM) for FTPS: enables `AUTH TLS` (RFC 4217).
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Refuse `USER` before `AUTH TLS`, and data connections without `PROT P`.
    #[arg(long)]
    pub require_tls: bool,
    /// Also listen for implicit FTPS (TLS from the first byte, as `ftps://` clients expect).
    #[arg(long, value_name = "ADDR:PORT")]
    pub implicit_tls: Option<SocketAddr>,
    /// Accept TLS data connections that do not resume the control connection's TLS session
    /// (stock Python ftplib). By default they are refused, so that nobody but the logged-in
    /// client can use a session's data connection.
    #[arg(long)]
    pub tls_allow_unresumed_data: bool,
    /// Append a line per file transfer to FILE, in the wu-ftpd/vsftpd `xferlog` format.
    #[arg(long, value_name = "FILE")]
    pub xferlog: Option<PathBuf>,
    /// Serve Prometheus metrics at `http://ADDR:PORT/metrics`, from the same event loop.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,
    /// Event loops, each on its own thread, sharing the control port (SO_REUSEPORT); a session
    /// stays on the loop that accepted it.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_count::<MAX_WORKERS>)]
    pub workers: usize,
    /// Every connection, control and passive data, starts with a PROXY protocol header (v1 or
    /// v2) from a load balancer, naming the real client; connections without one are closed.
    #[arg(long)]
    pub proxy_protocol: bool,
    /// Bytes per second all data connections together may move, e.g. `10M` (suffixes k, M, G
    /// are powers of 1024).
    #[arg(long, value_name = "BYTES_PER_S", value_parser = crate::units::parse_rate)]
    pub max_rate: Option<u64>,
    /// Bytes per second one session's data connections may move, e.g. `1M`; a user's own
    /// rate in the users file, if lower, wins.
    #[arg(long, value_name = "BYTES_PER_S", value_parser = crate::units::parse_rate)]
    pub max_rate_per_session: Option<u64>,
    /// After each completed upload, run this program (split at whitespace into program and
    /// arguments, no shell), with the file's path on disk as the last argument.
    #[arg(long, value_name = "CMD")]
    pub on_upload: Option<String>,
    /// Most `--on-upload` commands running at once; later ones wait in order.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = parse_count::<{ crate::upload_hook::MAX_QUEUED }>)]
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
            tls_cert: None,
            tls_key: None,
            require_tls: false,
            implicit_tls: None,
            tls_allow_unresumed_data: false,
            xferlog: None,
            metrics: None,
            workers: 1,
            proxy_protocol: false,
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

/// Loops beyond the number of cores only add contention; the bound catches typos.
const MAX_WORKERS: usize = 256;

/// A count of things of which there must be at least one, and at most `MAX`.
fn parse_count<const MAX: usize>(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX).contains(&n) => Ok(n),
        _ if MAX == usize::MAX => Err("expected a whole number of at least 1".into()),
        _ => Err(format!("expected a whole number from 1 to {MAX}")),
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
        let cli = Cli::try_parse_from(["mioftpd", "check-config", "c.toml"]).unwrap();
        assert!(matches!(cli.command, Some(Subcommands::CheckConfig { .. })));
        assert!(Cli::try_parse_from(["mioftpd", "users", "add", "u", "a", "--read-only", "--read-write"]).is_err());
        assert!(Cli::try_parse_from(["mioftpd", "--listen", "nonsense"]).is_err());
        let cli =
            Cli::try_parse_from(["mioftpd", "--tls-cert", "c.pem", "--tls-key", "k.pem", "--require-tls"]).unwrap();
        assert!(cli.config.require_tls);
        let cli = Cli::try_parse_from(["mioftpd", "--metrics", "127.0.0.1:9121", "--xferlog", "x.log"]).unwrap();
        assert_eq!(cli.config.metrics, Some("127.0.0.1:9121".parse().unwrap()));
        assert_eq!(cli.config.xferlog.as_deref(), Some(std::path::Path::new("x.log")));
        assert!(Cli::try_parse_from(["mioftpd", "--metrics", "9121"]).is_err());
        assert_eq!(cli.config.workers, 1);
        assert!(!cli.config.proxy_protocol);
        let cli = Cli::try_parse_from(["mioftpd", "--workers", "2", "--proxy-protocol"]).unwrap();
        assert_eq!((cli.config.workers, cli.config.proxy_protocol), (2, true));
        for bad in ["0", "-1", "257", "two"] {
            assert!(Cli::try_parse_from(["mioftpd", "--workers", bad]).is_err(), "{bad}");
        }
    }
}
