//! A connection accepted behind a load balancer (`--proxy-protocol`) whose PROXY header has not
//! arrived yet. It only peeks: the header is taken off the socket once it is whole, so whatever
//! the client sent after it (pipelined commands, the first bytes of an upload) is still in the
//! socket for the control or data connection this slot becomes.
//!
//! ```text
//! accepted --whole valid header--> Outcome::HeaderRead(client) --the loop--> Control | Data
//!          --invalid bytes, EOF, or PROXY_HEADER_TIMEOUT--> closed (logged)
//! ```

use super::Outcome;
use crate::buffer::{interrupted, would_block};
use crate::proxy_protocol::{self, MAX_HEADER, Parsed};
use log::{debug, info};
use mio::Token;
use mio::net::TcpStream;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A balancer sends its header with the connection's first packet; this is plenty, and short
/// enough that connections which never send one (a client that bypasses the balancer and
/// waits for the greeting) do not linger.
pub const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// What the connection becomes once the header names its client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A control connection, on the implicit TLS port or not.
    Control { implicit_tls: bool },
    /// A data connection accepted by this passive listener of this session.
    Data { passive: Token, session_id: u64 },
}

pub struct AwaitingHeader {
    pub stream: TcpStream,
    /// The socket's peer: the balancer.
    pub from: SocketAddr,
    pub purpose: Purpose,
    pub accepted_at: Instant,
}

impl AwaitingHeader {
    pub fn new(stream: TcpStream, from: SocketAddr, purpose: Purpose) -> AwaitingHeader {
        AwaitingHeader { stream, from, purpose, accepted_at: Instant::now() }
    }

    pub fn session_id(&self) -> u64 {
        match self.purpose {
            Purpose::Control { .. } => 0,
            Purpose::Data { session_id, .. } => session_id,
        }
    }

    pub fn expire(&mut self) -> Outcome {
        info!("refused {}: no PROXY header within {} s", self.from, PROXY_HEADER_TIMEOUT.as_secs());
        Outcome::Close
    }

    /// Peeks at what has arrived; takes the header off the socket once it is whole. Each new
    /// packet is a new readable edge, so an incomplete header just waits for the next one.
    pub fn ready(&mut self) -> Outcome {
        let mut peeked = [0u8; MAX_HEADER];
        let n = loop {
            match self.stream.peek(&mut peeked) {
                Ok(0) => {
                    info!("refused {}: closed before sending a PROXY header", self.from);
                    return Outcome::Close;
                }
                Ok(n) => break n,
                Err(e) if would_block(&e) => return Outcome::Wait,
                Err(e) if interrupted(&e) => {}
                Err(e) => {
                    debug!("{}: read error while waiting for a PROXY header: {e}", self.from);
                    return Outcome::Close;
                }
            }
        };
        match proxy_protocol::parse(&peeked[..n]) {
            Ok(Parsed::Incomplete) => Outcome::Wait,
            Ok(Parsed::Header { addresses, length }) => match self.consume(length) {
                Ok(()) => Outcome::HeaderRead(addresses.client(self.from)),
                Err(e) => {
                    debug!("{}: read error while taking the PROXY header: {e}", self.from);
                    Outcome::Close
                }
            },
            Err(invalid) => {
                info!("refused {}: {invalid}", self.from);
                Outcome::Close
            }
        }
    }

    /// Reads exactly the header's bytes, which the peek has shown are in the socket already.
    fn consume(&mut self, length: usize) -> io::Result<()> {
        let mut header = [0u8; MAX_HEADER];
        self.stream.read_exact(&mut header[..length])
    }
}
