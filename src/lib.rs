//! mioftpd: a concurrent FTP server on one single-threaded mio event loop.
//!
//! ```text
//!             ┌──────────────────────── server.rs: Poll + Slab<Conn> ────────────────────────┐
//!  listener ─▶│ Token(k) ─▶ Conn::Control ─ LineReader ─▶ ftp::Session ─▶ Effect ─▶ the loop │
//!             │ Token(d) ─▶ Conn::Passive ──accept──▶ Conn::Data ─ Buffer ─ fs::Source/Sink  │
//!             └──────────────────────────────────────────────────────────────────────────────┘
//! ```
//! - `server`: the loop; the only code that touches the slab and the mio registry.
//! - `conn`: per-socket state machines (control, passive, data, PROXY header, metrics) and their TLS.
//! - `ftp`: the protocol, sans-IO (commands, replies, session state machine, addresses).
//! - `fs`: the virtual root, listings, transfer sources and sinks.
//! - `buffer`: the fixed-size buffer every byte pump goes through.
//! - `timer`: the deadline heap that sets the loop's `poll` timeout.
//! - `auth`: accounts and the users file.
//! - `verifier`: the password-checking thread.
//! - `credential_cache`: verified logins remembered, sparing the verifier repeated hashes.
//! - `tls`: FTPS certificates and the rule binding data connections to their session.
//! - `throttle`: token buckets for the bandwidth limits.
//! - `upload_hook`: `--on-upload` children, started and reaped without blocking.
//! - `config`: the command-line options.
//! - `config_file`: the `--config` TOML file, turned into those options.
//! - `check_config`: `mioftpd check-config FILE`.
//! - `units`: sizes and rates with suffixes (`10M`).
//! - `privileges`: `--run-as`.
//! - `metrics`: what the loop counts, in the Prometheus text format.
//! - `xferlog`: the transfer log.
//! - `workers`: `--workers N`, N loops on one port.
//! - `session_limits`: the session counts all loops share.
//! - `proxy_protocol`: the PROXY header a load balancer sends first (`--proxy-protocol`).

pub mod auth;
pub mod buffer;
pub mod check_config;
pub mod config;
pub mod config_file;
pub mod conn;
pub mod credential_cache;
pub mod fs;
pub mod ftp;
pub mod metrics;
pub mod privileges;
pub mod proxy_protocol;
pub mod server;
pub mod session_limits;
pub mod throttle;
pub mod timer;
pub mod tls;
pub mod units;
pub mod upload_hook;
pub mod verifier;
pub mod workers;
pub mod xferlog;

pub use config::Config;
pub use server::{Handle, Server};
pub use workers::Workers;
