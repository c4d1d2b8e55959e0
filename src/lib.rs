//! mioftpd: a concurrent FTP server on one single-threaded mio event loop.
//!
//! ```text
//!             ┌──────────────────────── server.rs: Poll + Slab<Conn> ────────────────────────┐
//!  listener ─▶│ Token(k) ─▶ Conn::Control ─ LineReader ─▶ ftp::Session ─▶ Effect ─▶ the loop │
//!             │ Token(d) ─▶ Conn::Passive ──accept──▶ Conn::Data ─ Buffer ─ fs::Source/Sink  │
//!             └──────────────────────────────────────────────────────────────────────────────┘
//! ```
//! - `server`: the loop; the only code that touches the slab and the mio registry.
//! - `conn`: per-socket state machines (control, passive listener, data connection).
//! - `ftp`: the protocol, sans-IO (commands, replies, session state machine, addresses).
//! - `fs`: the virtual root, listings, transfer sources and sinks.
//! - `buffer`: the fixed-size buffer every byte pump goes through.
//! - `auth`, `verifier`, `credential_cache`: accounts, the password-checking thread, and the
//!   cache that spares it repeated logins.
//! - `tls`: FTPS certificates and the rule binding data connections to their session;
//!   `conn::transport` runs rustls on the loop's sockets.
//! - `throttle`: token buckets for the bandwidth limits; `upload_hook`: `--on-upload` children.
//! - `config`: command-line options; `privileges`: `--run-as`.
//! - `metrics`, `xferlog`: what the loop counts (served by `conn::metrics`) and the transfer log.
//! - `workers`: `--workers N`, N loops on one port; `session_limits`: the session counts they share.
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
