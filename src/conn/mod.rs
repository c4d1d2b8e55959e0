//! What a slab slot holds: the state machine of one socket. Control connections, passive
//! listeners and data connections (and the metrics endpoint's listener and scrapes) share one
//! slab and one `Token` space; each `ready` call does
//! what its socket and state allow and returns an `Outcome` for the loop to act on. Only the loop
//! (`server.rs`) inserts, links or removes slots.

pub mod control;
pub mod data;
pub mod metrics;
pub mod passive;
pub mod transport;

use crate::fs::transfer::TransferError;
use crate::ftp::Effect;
use crate::ftp::event::SessionEvent;
use mio::Token;
use mio::net::TcpStream;
use std::time::{Duration, Instant};

pub use control::Control;
pub use data::Data;
pub use metrics::{MetricsListener, Scrape};
pub use passive::Passive;

// Most slots are control connections, so storing them inline in the slab costs nothing extra;
// boxing them would add an allocation per session to shrink the rarer data slots.
#[allow(clippy::large_enum_variant)]
pub enum Conn {
    Control(Control),
    Passive(Passive),
    Data(Data),
    /// `--metrics`: the HTTP listener, and one slot per scraper's connection.
    MetricsListener(MetricsListener),
    Scrape(Scrape),
}

/// What a slot asks of the loop after a `ready` call.
pub enum Outcome {
    /// Nothing until the next readiness event.
    Wait,
    /// Run me again next turn: I stopped early (turn budget, input backlog) while still ready,
    /// and with edge-triggered readiness no new event would come.
    Again,
    /// Close this slot (and for a control connection, everything it owns).
    Close,
    /// The session needs the loop to do something.
    Effect(Effect),
    /// A passive listener accepted its data connection.
    Accepted(TcpStream),
    /// A data connection's transfer ended.
    Finished(Result<u64, TransferError>),
    /// The metrics listener accepted a scraper: give it a slot, and run the listener again
    /// (more may be queued).
    NewScrape(TcpStream),
    /// A scraper asked for the metrics: render them into `Scrape::respond` and run it again.
    RenderMetrics,
}

/// How long each kind of slot may go without progress.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// From connect to a successful login.
    pub login: Duration,
    /// Between commands of a logged-in session (not counted while a transfer runs).
    pub idle: Duration,
    /// For a data connection to connect or to move a byte.
    pub data: Duration,
}

impl Conn {
    /// When this slot times out as things stand (`None`: not now; ask again later).
    pub fn deadline(&self, timeouts: &Timeouts) -> Option<Instant> {
        match self {
            Conn::Control(c) if c.session.is_transferring() => None,
            Conn::Control(c) if c.session.is_logged_in() => Some(c.last_command + timeouts.idle),
            // Commands do not extend the login window: a client cannot linger unauthenticated.
            Conn::Control(c) => Some(c.login_window_from + timeouts.login),
            Conn::Passive(p) => Some(p.opened_at + timeouts.data),
            Conn::Data(d) => Some(d.last_progress + timeouts.data),
            Conn::MetricsListener(l) => l.retry_at,
            Conn::Scrape(s) => Some(s.opened_at + metrics::EXCHANGE_TIMEOUT),
        }
    }

    /// The deadline passed: what the loop should do with this slot.
    pub fn expire(&mut self) -> Outcome {
        match self {
            Conn::Control(control) => control.expire(),
            Conn::Passive(passive) => passive.expire(),
            Conn::Data(data) => data.expire(),
            Conn::MetricsListener(listener) => listener.expire(),
            Conn::Scrape(scrape) => scrape.expire(),
        }
    }

    /// The poll reported new input (or a hang-up) on this slot's socket.
    pub fn became_readable(&mut self) {
        if let Conn::Control(control) = self {
            control.readable = true;
        }
    }

    pub fn ready(&mut self) -> Outcome {
        match self {
            Conn::Control(control) => control.ready(),
            Conn::Passive(passive) => passive.ready(),
            Conn::Data(data) => data.ready(),
            Conn::MetricsListener(listener) => listener.ready(),
            Conn::Scrape(scrape) => scrape.ready(),
        }
    }

    /// Logins and ended transfers the session of a control slot has to report.
    pub fn take_session_events(&mut self) -> Vec<SessionEvent> {
        match self {
            Conn::Control(control) => control.session.take_events(),
            _ => Vec::new(),
        }
    }

    /// Bytes a data slot has moved in its transfer so far.
    pub fn bytes_moved(&self) -> Option<u64> {
        match self {
            Conn::Data(data) => Some(data.bytes()),
            _ => None,
        }
    }

    /// Whether this slot serves the metrics endpoint rather than an FTP client.
    pub fn is_metrics(&self) -> bool {
        matches!(self, Conn::MetricsListener(_) | Conn::Scrape(_))
    }

    /// The control slot this slot belongs to (`None` for a control slot).
    pub fn owner(&self) -> Option<Token> {
        match self {
            Conn::Control(_) | Conn::MetricsListener(_) | Conn::Scrape(_) => None,
            Conn::Passive(passive) => Some(passive.owner),
            Conn::Data(data) => Some(data.owner),
        }
    }

    /// The session for logs; 0 for the metrics slots, which belong to none (ids start at 1).
    pub fn session_id(&self) -> u64 {
        match self {
            Conn::Control(control) => control.session.id,
            Conn::Passive(passive) => passive.session_id,
            Conn::Data(data) => data.session_id,
            Conn::MetricsListener(_) | Conn::Scrape(_) => 0,
        }
    }

    /// The slot's kind and state, for trace logs: `control(logged-in, passive)`, `data(sending)`…
    pub fn state(&self) -> String {
        match self {
            Conn::Control(control) => format!("control({})", control.session.state_name()),
            Conn::Passive(passive) => {
                format!("passive({})", if passive.job.is_some() { "job-waiting" } else { "listening" })
            }
            Conn::Data(data) => format!("data({})", data.state_name()),
            Conn::MetricsListener(_) => "metrics-listener".into(),
            Conn::Scrape(scrape) => format!("scrape({})", scrape.state_name()),
        }
    }
}
