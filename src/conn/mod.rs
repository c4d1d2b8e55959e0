//! What a slab slot holds: the state machine of one socket. Control connections, passive
//! listeners and data connections share one slab and one `Token` space; each `ready` call does
//! what its socket and state allow and returns an `Outcome` for the loop to act on. Only the loop
//! (`server.rs`) inserts, links or removes slots.

pub mod awaiting_header;
pub mod control;
pub mod data;
pub mod passive;

use crate::fs::transfer::TransferError;
use crate::ftp::Effect;
use mio::Token;
use mio::net::TcpStream;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use awaiting_header::{AwaitingHeader, PROXY_HEADER_TIMEOUT, Purpose};
pub use control::Control;
pub use data::Data;
pub use passive::Passive;

// Most slots are control connections, so storing them inline in the slab costs nothing extra;
// boxing them would add an allocation per session to shrink the rarer data slots.
#[allow(clippy::large_enum_variant)]
pub enum Conn {
    Control(Control),
    Passive(Passive),
    Data(Data),
    /// Behind a load balancer: a control or data connection before its PROXY header.
    AwaitingHeader(AwaitingHeader),
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
    /// The PROXY header arrived and names this client.
    HeaderRead(SocketAddr),
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
            Conn::AwaitingHeader(h) => Some(h.accepted_at + PROXY_HEADER_TIMEOUT),
        }
    }

    /// The deadline passed: what the loop should do with this slot.
    pub fn expire(&mut self) -> Outcome {
        match self {
            Conn::Control(control) => control.expire(),
            Conn::Passive(passive) => passive.expire(),
            Conn::Data(data) => data.expire(),
            Conn::AwaitingHeader(awaiting) => awaiting.expire(),
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
            Conn::AwaitingHeader(awaiting) => awaiting.ready(),
        }
    }

    /// The control slot this slot belongs to (`None` for a control slot, and for a connection
    /// before its PROXY header, which no session knows of yet).
    pub fn owner(&self) -> Option<Token> {
        match self {
            Conn::Control(_) | Conn::AwaitingHeader(_) => None,
            Conn::Passive(passive) => Some(passive.owner),
            Conn::Data(data) => Some(data.owner),
        }
    }

    pub fn session_id(&self) -> u64 {
        match self {
            Conn::Control(control) => control.session.id,
            Conn::Passive(passive) => passive.session_id,
            Conn::Data(data) => data.session_id,
            Conn::AwaitingHeader(awaiting) => awaiting.session_id(),
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
            Conn::AwaitingHeader(awaiting) => format!("awaiting-proxy-header({:?})", awaiting.purpose),
        }
    }
}
