//! A control connection: socket bytes → `LineReader` → `Command` → `Session`, and the session's
//! replies → output bytes → socket. It opens no files and touches no other slot: whatever the
//! session needs from the loop comes back as `Outcome::Effect`.

use super::Outcome;
use super::transport::Transport;
use crate::buffer::{interrupted, would_block};
use crate::ftp::command::{loggable, parse};
use crate::ftp::line::{Line, LineReader};
use crate::ftp::{Code, Command, Effect, Reply, Session};
use crate::throttle::Bucket;
use log::{debug, trace, warn};
use mio::Token;
use rustls::ServerConnection;
use std::io::{self, Read, Write};
use std::time::Instant;

/// Replies waiting to be sent beyond this size stop command processing: a client that sends
/// commands but never reads the answers is held back instead of growing our memory.
const MAX_OUTPUT: usize = 16 * 1024;

pub struct Control {
    pub transport: Transport,
    pub session: Session,
    /// The session's data slot (passive listener or data connection), if any.
    pub data: Option<Token>,
    /// The session's rate limit, kept across its transfers so that many small files do not
    /// each start with a full bucket; made by the loop to match `Session::rate_limit`.
    pub bucket: Option<Bucket>,
    input: LineReader,
    /// Encoded replies; `output[written..]` is still to be sent.
    output: Vec<u8>,
    written: usize,
    /// A command that arrived while the session could not take it yet.
    held: Option<Command>,
    /// The last read stopped before `WouldBlock`, so no readiness edge will remind us.
    unread: bool,
    /// Whether a read may find input: false from a `WouldBlock` until the poll reports the
    /// socket readable again. Runs without new input (a transfer ended, a verdict arrived)
    /// then skip the read that would only say `WouldBlock` once more.
    pub readable: bool,
    peer_closed: bool,
    /// When the current login window opened: at connect, and again at `REIN`.
    pub login_window_from: Instant,
    /// When the last command arrived: the idle timeout counts from here.
    pub last_command: Instant,
    /// TLS to start once the `234` reply to `AUTH TLS` has gone out in plaintext.
    starting_tls: Option<Box<ServerConnection>>,
}

impl Control {
    pub fn new(transport: Transport, session: Session) -> Control {
        Control {
            transport,
            session,
            data: None,
            bucket: None,
            input: LineReader::new(),
            output: Vec::new(),
            written: 0,
            held: None,
            unread: false,
            readable: true,
            peer_closed: false,
            login_window_from: Instant::now(),
            last_command: Instant::now(),
            starting_tls: None,
        }
    }

    /// After `AUTH TLS`: whatever the client sent behind that command in plaintext is dropped
    /// (it could be a man in the middle's injection, riding on the session about to be
    /// protected), and TLS starts as soon as the `234` reply has been sent.
    pub fn start_tls(&mut self, tls: ServerConnection) {
        let dropped = self.input.discard() + usize::from(self.held.take().is_some());
        if dropped > 0 {
            warn!("[#{}] dropped {dropped} plaintext bytes sent behind AUTH TLS", self.session.id);
        }
        self.starting_tls = Some(Box::new(tls));
        if self.written == self.output.len() {
            self.switch_to_tls();
        }
    }

    fn switch_to_tls(&mut self) {
        if let Some(tls) = self.starting_tls.take() {
            self.transport.start_tls(*tls);
            self.readable = true; // the client's hello may be waiting already
        }
    }

    /// The session ran out of time: queue the 421, make one attempt to send it, and let the
    /// loop close the connection whether or not the client is reading.
    pub fn expire(&mut self) -> Outcome {
        self.session.timed_out();
        let _ = self.write();
        Outcome::Close
    }

    /// Does whatever the socket and the session allow now.
    pub fn ready(&mut self) -> Outcome {
        if let Err(e) = self.read() {
            debug!("[#{}] control read error: {e}", self.session.id);
            return Outcome::Close;
        }
        let effect = self.process();
        // A transfer about to start holds its 150 back for a moment: the loop starts the
        // transfer right away and runs this connection again, so a small file's 226 joins the
        // 150 in one write (one packet, one wakeup of the client) instead of two.
        let starting = matches!(effect, Some(Effect::Start(..)));
        if let Err(e) = if starting { Ok(()) } else { self.write() } {
            debug!("[#{}] control write error: {e}", self.session.id);
            return Outcome::Close;
        }
        let flushed = self.written == self.output.len() && !self.transport.has_pending_output();
        if let Some(effect) = effect {
            return Outcome::Effect(effect);
        }
        if self.session.is_quitting() && flushed {
            return Outcome::Close;
        }
        let runnable = self.held.as_ref().map_or(self.input.has_line(), |cmd| self.session.can_handle_now(cmd));
        // The peer is gone: once everything it sent has been answered, end the session. A
        // pending password check is waited for; a running transfer is not (its peer is gone too,
        // as far as we can tell, and an upload cut short this way is discarded).
        let waiting_for_verdict = self.held.is_some() && !self.session.is_transferring();
        if self.peer_closed && !runnable && !self.unread && !waiting_for_verdict && flushed {
            return Outcome::Close;
        }
        // Stopped early with work left (output backlog drained, input backlog) and no readiness
        // edge to bring us back: run again next turn.
        if flushed && (runnable || (self.unread && self.input.wants_input())) {
            return Outcome::Again;
        }
        Outcome::Wait
    }

    /// Reads until `WouldBlock`, end of stream, or the line backlog is full.
    fn read(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 4096];
        self.unread = false;
        // Until TLS starts, the client's next bytes are its TLS hello: not ours to read yet.
        while !self.peer_closed && self.readable && self.starting_tls.is_none() {
            if !self.input.wants_input() {
                self.unread = true;
                return Ok(());
            }
            match self.transport.read(&mut chunk) {
                Ok(0) => self.peer_closed = true,
                Ok(n) => {
                    trace!("[#{}] control: read {n} bytes", self.session.id);
                    self.input.push(&chunk[..n]);
                }
                // Drained: mio will report the next readable edge.
                Err(e) if would_block(&e) => {
                    self.readable = false;
                    return Ok(());
                }
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Runs commands until one needs the loop, the session must wait, or output backs up.
    fn process(&mut self) -> Option<Effect> {
        let mut effect = None;
        while effect.is_none() && !self.session.is_quitting() && self.pending_output() < MAX_OUTPUT {
            let cmd = match self.held.take() {
                Some(cmd) => cmd,
                None => match self.input.next_line() {
                    None => break,
                    Some(Line::TooLong) => {
                        self.queue(&Reply::new(Code::SyntaxError, "Command line too long."));
                        continue;
                    }
                    Some(Line::Command(line)) => {
                        debug!("[#{}] > {}", self.session.id, loggable(&line));
                        self.last_command = Instant::now();
                        match parse(&line) {
                            Ok(cmd) => cmd,
                            Err(reply) => {
                                self.queue(&reply);
                                continue;
                            }
                        }
                    }
                },
            };
            if !self.session.can_handle_now(&cmd) {
                self.held = Some(cmd);
                break;
            }
            if cmd == Command::Rein {
                self.login_window_from = Instant::now();
            }
            effect = match self.session.handle(cmd) {
                Effect::None => None,
                other => Some(other),
            };
            self.flush_session();
        }
        self.flush_session();
        effect
    }

    /// Moves replies the session queued (from commands or loop events) into the output.
    fn flush_session(&mut self) {
        for reply in self.session.take_replies() {
            self.queue(&reply);
        }
    }

    fn queue(&mut self, reply: &Reply) {
        debug!("[#{}] < {}", self.session.id, reply.summary());
        reply.encode(&mut self.output);
    }

    fn pending_output(&self) -> usize {
        self.output.len() - self.written
    }

    /// Writes queued output until done or `WouldBlock`.
    fn write(&mut self) -> io::Result<()> {
        self.flush_session();
        while self.written < self.output.len() {
            match self.transport.write(&self.output[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                // The kernel buffer is full: the writable edge brings us back.
                Err(e) if would_block(&e) => return Ok(()),
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
        self.output.clear();
        self.written = 0;
        self.switch_to_tls();
        // Replies are in TLS's buffer now; out they go, as far as the socket takes them.
        match self.transport.flush() {
            Err(e) if !would_block(&e) => return Err(e),
            _ => {}
        }
        if self.output.capacity() > MAX_OUTPUT {
            self.output = Vec::new(); // a long reply's buffer is not kept by an idle session
        }
        Ok(())
    }
}
