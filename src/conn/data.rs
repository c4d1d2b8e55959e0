//! A data connection: connects out (active mode) or comes from a passive listener, then pumps
//! one transfer through one fixed-size buffer. It knows no reply codes: it reports how the
//! transfer ended as `Outcome::Finished` and the session turns that into 226/425/426/451.
//!
//! ```text
//! Connecting(job) --connected--> Sending | Receiving --end--> Finished
//! Idle (passive, no command yet) --start(job)--> Sending | Receiving
//! ```
//! Over TLS (`PROT P`) the handshake comes first, and the transfer starts only once it is done
//! and has resumed the control connection's TLS session (`tls::Binding`); the last bytes are
//! followed by a `close_notify` (`Finishing`). Zero-copy is for plain sockets only.
//!
//! Sending reads the next file chunk only when the buffer has been fully written to the socket;
//! receiving writes each chunk to the file as it arrives. Each `ready` call moves at most
//! `turn_budget` bytes (`TURN_BUDGET`, or less under a rate limit) and then asks to be called
//! again, so one fast transfer cannot starve the other clients of a single-threaded loop. The
//! loop sets the budget from `throttle` before each turn; a connection out of tokens is not run
//! at all until its timer, which is why it keeps its `credit` here.

use super::Outcome;
use super::transport::Transport;
use crate::buffer::{Buffer, CHUNK, ReadStop, WriteStop};
use crate::fs::transfer::{Job, Sink, Source, TransferError};
use crate::throttle::Credit;
use crate::tls::Binding;
use log::{debug, trace, warn};
use mio::Token;
use rustix::io::Errno;
use rustix::pipe::{PipeFlags, SpliceFlags};
use rustls::ServerConnection;
use std::fs::File;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Instant;

/// Bytes one data connection may move per loop turn before yielding to others.
pub const TURN_BUDGET: usize = 4 * CHUNK;

enum State {
    Connecting(Job),
    Idle,
    Sending(Source),
    Receiving(Sink),
    /// All bytes are sent; TLS's last records and `close_notify` are still to go.
    Finishing,
    Done,
}

pub struct Data {
    pub transport: Transport,
    pub owner: Token,
    pub session_id: u64,
    state: State,
    /// For TLS: what the handshake must show before any file byte moves (checked once).
    binding: Option<Binding>,
    /// Allocated when a transfer starts, so an idle session holds no transfer buffer.
    buf: Option<Buffer>,
    /// For uploads spliced into the file: the kernel moves socket pages into this pipe and
    /// from it into the file, never through our memory.
    pipe: Option<Pipe>,
    bytes: u64,
    /// When bytes last moved (or the connection began): the stall timeout counts from here.
    pub last_progress: Instant,
    /// Bytes the next `ready` call may move; set by the loop under a rate limit.
    pub turn_budget: usize,
    /// Tokens this connection reserved while it waited for them (see `throttle`).
    pub credit: Credit,
}

impl Data {
    /// An active-mode connection in progress, which will carry `job` once connected.
    pub fn connecting(transport: Transport, owner: Token, session_id: u64, job: Job, binding: Option<Binding>) -> Data {
        Data::new(transport, owner, session_id, State::Connecting(job), binding)
    }

    /// A connection accepted by a passive listener; `job` is there if the command came first.
    pub fn accepted(
        transport: Transport,
        owner: Token,
        session_id: u64,
        job: Option<Job>,
        binding: Option<Binding>,
    ) -> Data {
        let mut data = Data::new(transport, owner, session_id, State::Idle, binding);
        if let Some(job) = job {
            data.start(job);
        }
        data
    }

    fn new(transport: Transport, owner: Token, session_id: u64, state: State, binding: Option<Binding>) -> Data {
        Data {
            transport,
            owner,
            session_id,
            state,
            binding,
            buf: None,
            pipe: None,
            bytes: 0,
            last_progress: Instant::now(),
            turn_budget: TURN_BUDGET,
            credit: Credit::default(),
        }
    }

    /// Bytes moved in this transfer so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    /// Whether a transfer is connecting or under way: what rate limits apply to.
    pub fn has_job(&self) -> bool {
        matches!(self.state, State::Connecting(_) | State::Sending(_) | State::Receiving(_))
    }

    pub fn state_name(&self) -> &'static str {
        match self.state {
            State::Connecting(_) => "connecting",
            State::Idle => "idle",
            State::Sending(_) => "sending",
            State::Receiving(_) => "receiving",
            State::Finishing => "finishing",
            State::Done => "done",
        }
    }

    /// No progress for too long: a transfer fails (426, or 425 if it never connected); an idle
    /// connection that never got a command just closes.
    pub fn expire(&mut self) -> Outcome {
        let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "no progress within the data timeout");
        match self.state {
            State::Connecting(_) => Outcome::Finished(Err(TransferError::Connect(timed_out()))),
            State::Sending(_) | State::Receiving(_) | State::Finishing => {
                Outcome::Finished(Err(TransferError::Network(timed_out())))
            }
            State::Idle | State::Done => Outcome::Close,
        }
    }

    /// Gives an idle connection the protection its transfer command found, `PROT` having
    /// perhaps changed since `PASV`. A plain one can still become TLS: in `Idle` it has read
    /// nothing, so the client's hello waits in the socket. A TLS one cannot become plain.
    pub fn protect(
        &mut self,
        binding: Option<Binding>,
        tls: impl FnOnce() -> io::Result<ServerConnection>,
    ) -> io::Result<()> {
        match (self.transport.is_tls(), binding) {
            (false, Some(binding)) => {
                self.transport.start_tls(tls()?);
                self.binding = Some(binding);
                Ok(())
            }
            (true, None) => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "PROT C, but the data connection was opened under PROT P",
            )),
            _ => Ok(()),
        }
    }

    pub fn start(&mut self, job: Job) {
        self.last_progress = Instant::now();
        // The kernel cannot encrypt for us: over TLS every byte goes through our buffer.
        let job = match job {
            Job::Send(Source::ZeroCopy { file, .. }) if self.transport.is_tls() => {
                Job::Send(Source::File { file, ascii: false, prev_cr: false })
            }
            Job::Receive(sink) if self.transport.is_tls() => Job::Receive(sink.zero_copy(false)),
            job => job,
        };
        // Zero-copy transfers need no buffer; an upload that cannot get a pipe falls back to one.
        self.pipe = match &job {
            Job::Receive(sink) if sink.splice_target().is_some() => Pipe::new().ok(),
            _ => None,
        };
        self.buf = match job {
            Job::Send(Source::ZeroCopy { .. }) => None,
            Job::Receive(_) if self.pipe.is_some() => None,
            _ => Some(Buffer::with_capacity(CHUNK)),
        };
        self.state = match job {
            Job::Send(source) => State::Sending(source),
            Job::Receive(sink) => State::Receiving(sink),
        };
    }

    pub fn ready(&mut self) -> Outcome {
        if !matches!(self.state, State::Connecting(_)) {
            match self.secure() {
                Ok(true) => {}
                Ok(false) => return Outcome::Wait,
                Err(e) if self.is_idle() => {
                    warn!("[#{}] data connection closed: {e}", self.session_id);
                    return Outcome::Close;
                }
                Err(e) => return Outcome::Finished(Err(TransferError::Connect(e))),
            }
        }
        match std::mem::replace(&mut self.state, State::Done) {
            State::Connecting(job) => match self.connected() {
                Ok(true) => {
                    trace!("[#{}] data: connected", self.session_id);
                    self.start(job);
                    self.ready()
                }
                Ok(false) => {
                    self.state = State::Connecting(job);
                    Outcome::Wait
                }
                Err(e) => Outcome::Finished(Err(TransferError::Connect(e))),
            },
            State::Idle => {
                self.state = State::Idle;
                Outcome::Wait
            }
            State::Sending(Source::ZeroCopy { file, left }) => self.send_zero_copy(file, left),
            State::Sending(source) => self.send(source),
            State::Receiving(sink) if self.pipe.is_some() => self.receive_zero_copy(sink),
            State::Receiving(sink) => self.receive(sink),
            State::Finishing => self.finish(),
            State::Done => Outcome::Wait,
        }
    }

    /// For TLS: moves the handshake on and, once it is done, checks the binding to the control
    /// connection. `Ok(true)`: bytes may move.
    fn secure(&mut self) -> io::Result<bool> {
        if !self.transport.handshake()? {
            return Ok(false);
        }
        if let (Some(binding), Some(tls)) = (self.binding.take(), self.transport.tls()) {
            binding.check(tls).map_err(|why| {
                warn!("[#{}] refused a TLS data connection: {why}", self.session_id);
                io::Error::new(io::ErrorKind::PermissionDenied, why)
            })?;
            debug!("[#{}] data connection: {}", self.session_id, crate::tls::describe(tls));
        }
        Ok(true)
    }

    /// The last byte is sent: close the stream (for TLS, after `close_notify`), so the client
    /// knows it has everything.
    fn finish(&mut self) -> Outcome {
        match self.transport.finish() {
            Ok(true) => Outcome::Finished(Ok(self.bytes)),
            Ok(false) => {
                self.state = State::Finishing;
                Outcome::Wait
            }
            Err(e) => Outcome::Finished(Err(TransferError::Network(e))),
        }
    }

    /// Whether a non-blocking connect has completed (mio's recipe: `take_error`, then `peer_addr`).
    fn connected(&self) -> io::Result<bool> {
        if let Some(e) = self.transport.tcp.take_error()? {
            return Err(e);
        }
        match self.transport.tcp.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn send(&mut self, mut source: Source) -> Outcome {
        let Some(buf) = self.buf.as_mut() else {
            return Outcome::Close;
        };
        let mut moved = 0;
        loop {
            if buf.is_empty() {
                match source.fill(buf) {
                    Ok(0) => return self.finish(),
                    Ok(_) => {}
                    Err(e) => return Outcome::Finished(Err(TransferError::Local(e))),
                }
            }
            let (n, stop) = buf.write_to(&mut self.transport, self.turn_budget - moved);
            self.bytes += n as u64;
            moved += n;
            if n > 0 {
                self.last_progress = Instant::now();
            }
            match stop {
                WriteStop::Empty if moved < self.turn_budget => continue,
                // Budget spent with the socket still writable: no edge will come, so ask to be re-run.
                WriteStop::Empty | WriteStop::Limit => {
                    self.state = State::Sending(source);
                    return Outcome::Again;
                }
                WriteStop::WouldBlock => {
                    self.state = State::Sending(source);
                    return Outcome::Wait;
                }
                WriteStop::Error(e) => return Outcome::Finished(Err(TransferError::Network(e))),
            }
        }
    }

    /// `sendfile` from the file's current position (after any `REST`) until `left` bytes are
    /// sent or the file ends early, within the same per-turn budget as the buffered path.
    fn send_zero_copy(&mut self, file: File, mut left: u64) -> Outcome {
        let mut moved = 0;
        loop {
            let want = (self.turn_budget - moved).min(usize::try_from(left).unwrap_or(usize::MAX));
            let sent = if want == 0 { Ok(0) } else { rustix::fs::sendfile(&self.transport.tcp, &file, None, want) };
            match sent {
                Ok(0) => return self.finish(),
                Ok(n) => {
                    self.bytes += n as u64;
                    left -= n as u64;
                    moved += n;
                    self.last_progress = Instant::now();
                    if moved >= self.turn_budget && left > 0 {
                        self.state = State::Sending(Source::ZeroCopy { file, left });
                        return Outcome::Again;
                    }
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => {
                    self.state = State::Sending(Source::ZeroCopy { file, left });
                    return Outcome::Wait;
                }
                // One call reads the file and writes the socket; the errno tells which failed.
                Err(e @ (Errno::PIPE | Errno::CONNRESET | Errno::NOTCONN | Errno::TIMEDOUT | Errno::HOSTUNREACH)) => {
                    return Outcome::Finished(Err(TransferError::Network(e.into())));
                }
                Err(e) => return Outcome::Finished(Err(TransferError::Local(e.into()))),
            }
        }
    }

    /// The client sent its last byte: the file goes into place. Over TLS, our `close_notify`
    /// answers the client's, which clients that shut TLS down cleanly (Python's `unwrap`) wait
    /// for; one attempt is enough for a few bytes, and the file is complete either way.
    fn complete_upload(&mut self, sink: Sink) -> Outcome {
        match sink.finish() {
            Ok(()) => {
                let _ = self.transport.finish();
                Outcome::Finished(Ok(self.bytes))
            }
            Err(e) => Outcome::Finished(Err(TransferError::Local(e))),
        }
    }

    /// `splice` socket → pipe → file until the socket would block or ends, within the turn
    /// budget. The pipe is emptied into the file after every fill, so it holds nothing between
    /// turns and an error is always attributed to the side that failed.
    fn receive_zero_copy(&mut self, sink: Sink) -> Outcome {
        let (Some(pipe), Some(file)) = (&self.pipe, sink.splice_target()) else {
            return Outcome::Close;
        };
        let mut moved = 0;
        loop {
            let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
            match rustix::pipe::splice(&self.transport.tcp, None, &pipe.input, None, self.turn_budget - moved, flags) {
                Ok(0) => return self.complete_upload(sink),
                Ok(n) => {
                    if let Err(e) = pipe.drain_into(file, n) {
                        return Outcome::Finished(Err(TransferError::Local(e)));
                    }
                    self.bytes += n as u64;
                    moved += n;
                    self.last_progress = Instant::now();
                    if moved >= self.turn_budget {
                        self.state = State::Receiving(sink);
                        return Outcome::Again;
                    }
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => {
                    self.state = State::Receiving(sink);
                    return Outcome::Wait;
                }
                // Dropping `sink` here removes the partial upload.
                Err(e) => return Outcome::Finished(Err(TransferError::Network(e.into()))),
            }
        }
    }

    fn receive(&mut self, mut sink: Sink) -> Outcome {
        let Some(buf) = self.buf.as_mut() else {
            return Outcome::Close;
        };
        let mut moved = 0;
        loop {
            let (n, stop) = buf.read_from(&mut self.transport, self.turn_budget - moved);
            self.bytes += n as u64;
            moved += n;
            if n > 0 {
                self.last_progress = Instant::now();
            }
            if !buf.is_empty() {
                if let Err(e) = sink.write(buf.data_mut()) {
                    return Outcome::Finished(Err(TransferError::Local(e)));
                }
                buf.clear();
            }
            match stop {
                ReadStop::Full if moved < self.turn_budget => continue,
                ReadStop::Full | ReadStop::Limit => {
                    self.state = State::Receiving(sink);
                    return Outcome::Again;
                }
                ReadStop::WouldBlock => {
                    self.state = State::Receiving(sink);
                    return Outcome::Wait;
                }
                ReadStop::Eof => return self.complete_upload(sink),
                // Dropping `sink` here removes the partial upload.
                ReadStop::Error(e) => return Outcome::Finished(Err(TransferError::Network(e))),
            }
        }
    }
}

/// A pipe for `splice`: its write end (`input`) takes socket pages, its read end (`output`)
/// gives them to the file.
struct Pipe {
    input: OwnedFd,
    output: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let (output, input) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        // Room for a whole turn's budget in one splice; the default 64 KiB also works.
        let _ = rustix::pipe::fcntl_setpipe_size(&input, TURN_BUDGET);
        Ok(Pipe { input, output })
    }

    /// Moves exactly `n` bytes, known to be in the pipe, into `file` at its position.
    fn drain_into(&self, file: BorrowedFd<'_>, mut n: usize) -> io::Result<()> {
        while n > 0 {
            match rustix::pipe::splice(&self.output, None, file, None, n, SpliceFlags::MOVE) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(m) => n -= m,
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
