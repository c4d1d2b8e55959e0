//! A passive-mode listener (`PASV`/`EPSV`): waits for exactly one data connection from the
//! control connection's peer, then hands the stream to the loop, which turns this slot into a
//! `Data` slot under the same token. A transfer command may arrive before or after that peer;
//! if before, its job is parked here.
//!
//! Behind a load balancer (`--proxy-protocol`) every connection comes from the balancer: each
//! is handed over, and the loop checks the client its PROXY header names with `admits`.

use super::Outcome;
use crate::buffer::{interrupted, would_block};
use crate::fs::transfer::Job;
use crate::fs::transfer::TransferError;
use crate::ftp::addr::canonical;
use crate::tls::Binding;
use log::{debug, warn};
use mio::Token;
use mio::net::TcpListener;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

pub struct Passive {
    pub listener: TcpListener,
    pub owner: Token,
    pub session_id: u64,
    /// Only this address may connect: anyone else could steal or inject the data.
    pub peer_ip: IpAddr,
    /// A transfer that is waiting for the client to connect.
    pub job: Option<Job>,
    /// Set when the data connection is to be TLS (`PROT P` at `PASV` time, and again at the
    /// transfer command, which may come after a change of `PROT`).
    pub binding: Option<Binding>,
    pub opened_at: Instant,
    /// Connections come through a load balancer that names the client in a PROXY header.
    pub behind_proxy: bool,
}

impl Passive {
    /// Nobody connected in time: a waiting transfer fails with 425; otherwise just close.
    pub fn expire(&mut self) -> Outcome {
        match self.job.take() {
            Some(_) => {
                let e = io::Error::new(io::ErrorKind::TimedOut, "the client did not connect to the passive port");
                Outcome::Finished(Err(TransferError::Connect(e)))
            }
            None => Outcome::Close,
        }
    }

    /// Whether a data connection from `client` belongs to this session.
    pub fn admits(&self, client: SocketAddr) -> bool {
        canonical(client.ip()) == canonical(self.peer_ip)
    }

    pub fn refuse(&self, client: SocketAddr) {
        warn!("[#{}] refused data connection from foreign address {client}", self.session_id);
    }

    pub fn ready(&mut self) -> Outcome {
        loop {
            match self.listener.accept() {
                Ok((stream, from)) if self.behind_proxy || self.admits(from) => {
                    debug!("[#{}] data connection from {from}", self.session_id);
                    return Outcome::Accepted(stream);
                }
                Ok((_, from)) => self.refuse(from),
                Err(e) if would_block(&e) => return Outcome::Wait,
                Err(e) if interrupted(&e) => {}
                // A connection that failed in the backlog (reset before accept): keep listening.
                Err(e) => {
                    debug!("[#{}] passive accept failed: {e}", self.session_id);
                    return Outcome::Wait;
                }
            }
        }
    }
}
