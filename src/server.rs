//! THE LOOP. One `mio::Poll`, one control listener, and one `Slab<Conn>` holding every other
//! socket: control connections, passive listeners and data connections, each under the token
//! that is its slab key. This is the only file that registers sockets with mio and the only one
//! that inserts, links or removes slots; it never parses FTP and never opens files.
//!
//! Links: a control slot `c` owns at most one data slot `d` (`Control::data == Some(d)`), and
//! `d` names its owner (`owner == c`). A passive slot becomes a data slot under the same token
//! when its peer connects. Closing `c` closes `d`; when `d` ends on its own, `c`'s session hears
//! how (`Session::finished`).
//!
//! Readiness is edge-triggered: every slot drains its socket until `WouldBlock`, or returns
//! `Outcome::Again` to be re-run next turn (the only readiness we keep ourselves). A data slot
//! under a rate limit that runs out of tokens is the one exception: it is not run again until
//! a timer says its tokens are there (`rate_wakeups`), and then it is run whether or not an
//! event came meanwhile, since it may have left its socket ready without using it.

use crate::auth::Users;
use crate::buffer::{interrupted, would_block};
use crate::config::Config;
use crate::conn::data::TURN_BUDGET;
use crate::conn::{Conn, Control, Data, Outcome, Passive, Timeouts};
use crate::credential_cache::CredentialCache;
use crate::fs::Root;
use crate::fs::transfer::{Job, TransferError};
use crate::ftp::session::Target;
use crate::ftp::{Effect, Session, Settings};
use crate::privileges;
use crate::throttle::{Bucket, Buckets, Grant};
use crate::timer::{self, Timers};
use crate::upload_hook::{Upload, UploadHooks};
use crate::verifier::{Request, Verdict, Verifier};
use log::{debug, info, trace, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Tokens outside the slab's key range (slab keys never get near `usize::MAX`).
const LISTENER: Token = Token(usize::MAX);
const WAKER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);
const CHILDREN: Token = Token(usize::MAX - 3);

/// Pending connections the kernel may queue before we accept them. Large, because a storm of
/// connects that overflows the backlog leaves clients waiting for a greeting that never comes.
const BACKLOG: i32 = 4096;

pub struct Server {
    poll: Poll,
    events: Events,
    listener: TcpListener,
    local_addr: SocketAddr,
    conns: Slab<Conn>,
    /// Slots to run again next turn without waiting for an event.
    again: Vec<Token>,
    settings: Arc<Settings>,
    verifier: Verifier,
    pasv_ports: RangeInclusive<u16>,
    next_pasv_port: u16,
    next_session_id: u64,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    /// `conns.len()` as of the end of the last turn, for other threads (tests, leak checks).
    open_slots: Arc<AtomicUsize>,
    timeouts: Timeouts,
    /// One live entry per slot; `armed[key]` says which, so stale entries of a closed slot
    /// whose key was reused are recognised and dropped when they pop.
    deadlines: Timers<Token>,
    armed: Vec<Option<Instant>>,
    /// Failed-login verdicts held back so that guessing passwords is slow.
    delayed_verdicts: Timers<Verdict>,
    failed_login_delay: Duration,
    limits: Limits,
    sessions_per_ip: HashMap<IpAddr, usize>,
    sessions: usize,
    /// SIGTERM/SIGINT, once `handle_signals` is called (the binary does; tests do not).
    signals: Option<Signals>,
    /// Set by the first SIGTERM/SIGINT: no new sessions; idle ones close; transfers get until
    /// this instant to finish.
    draining: Option<Instant>,
    shutdown_grace: Duration,
    /// `--max-rate`: the bucket every data connection draws from.
    global_rate: Option<Bucket>,
    /// Throttled data slots waiting for tokens, each due when its reservation is paid for.
    rate_wakeups: Timers<Token>,
    /// `--on-upload`, and the SIGCHLD notifications that tell it a hook exited.
    upload_hooks: Option<UploadHooks>,
    children: Option<Signals>,
}

#[derive(Clone, Copy, Debug)]
struct Limits {
    sessions: usize,
    per_ip: usize,
}

/// Observes and stops a running server from another thread.
#[derive(Clone)]
pub struct Handle {
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    open_slots: Arc<AtomicUsize>,
}

impl Handle {
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }

    /// Open slots (control, passive and data) at the end of the server's last turn.
    pub fn open_slots(&self) -> usize {
        self.open_slots.load(Ordering::SeqCst)
    }
}

impl Server {
    /// Validates `config`, loads the users file and binds the control listener.
    pub fn bind(config: &Config) -> io::Result<Server> {
        let root =
            Root::new(&config.root).map_err(|e| context(e, format!("cannot serve {}", config.root.display())))?;
        let users = match &config.users {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| context(e, format!("cannot read users file {}", path.display())))?;
                Users::parse(&text).map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("users file {}: {e}", path.display()))
                })?
            }
            None => Users::default(),
        };
        let listener = listen(config.listen).map_err(|e| context(e, format!("cannot listen on {}", config.listen)))?;
        let local_addr = listener.local_addr()?;
        if let Some(user) = &config.run_as {
            privileges::run_as(user)?;
        }
        let poll = Poll::new()?;
        let mut listener = listener;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let pasv_ports = config.pasv_ports.clone().unwrap_or_else(ephemeral_ports);
        let cache = CredentialCache::new(Duration::from_secs(config.credential_cache_secs))?;
        let verifier = Verifier::spawn(users, cache, waker.clone())?;
        let upload_hooks =
            config.on_upload.as_deref().map(|cmd| UploadHooks::new(cmd, config.on_upload_max)).transpose()?;
        let children = match upload_hooks {
            Some(_) => {
                let mut children = Signals::new([libc::SIGCHLD])?;
                poll.registry().register(&mut children, CHILDREN, Interest::READABLE)?;
                Some(children)
            }
            None => None,
        };
        let settings = Settings {
            root,
            anonymous: config.anonymous_allowed(),
            pasv_address: config.pasv_address,
            max_login_failures: config.max_login_failures,
            zero_copy: !config.no_zero_copy,
            max_rate_per_session: config.max_rate_per_session,
        };
        Ok(Server {
            poll,
            events: Events::with_capacity(1024),
            listener,
            local_addr,
            conns: Slab::new(),
            again: Vec::new(),
            settings: Arc::new(settings),
            verifier,
            // A random start, so that servers started together do not probe the same ports.
            next_pasv_port: *pasv_ports.start() + (getrandom::u32().unwrap_or(0) % span(&pasv_ports)) as u16,
            pasv_ports,
            next_session_id: 1,
            stop: Arc::new(AtomicBool::new(false)),
            waker,
            open_slots: Arc::new(AtomicUsize::new(0)),
            timeouts: Timeouts {
                login: Duration::from_secs(config.login_timeout),
                idle: Duration::from_secs(config.idle_timeout),
                data: Duration::from_secs(config.data_timeout),
            },
            deadlines: Timers::default(),
            armed: Vec::new(),
            delayed_verdicts: Timers::default(),
            failed_login_delay: Duration::from_millis(config.failed_login_delay),
            limits: Limits { sessions: config.max_sessions, per_ip: config.max_per_ip },
            sessions_per_ip: HashMap::new(),
            sessions: 0,
            signals: None,
            draining: None,
            shutdown_grace: Duration::from_secs(config.shutdown_grace),
            global_rate: config.max_rate.map(|rate| Bucket::new(rate, TURN_BUDGET as u64, Instant::now())),
            rate_wakeups: Timers::default(),
            upload_hooks,
            children,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn handle(&self) -> Handle {
        Handle { stop: self.stop.clone(), waker: self.waker.clone(), open_slots: self.open_slots.clone() }
    }

    /// Makes SIGTERM and SIGINT shut the server down gracefully (a second signal: at once).
    pub fn handle_signals(&mut self) -> io::Result<()> {
        let mut signals = Signals::new([libc::SIGTERM, libc::SIGINT])?;
        self.poll.registry().register(&mut signals, SIGNALS, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    /// Runs until `Handle::stop`, or until a graceful shutdown has finished.
    pub fn run(&mut self) -> io::Result<()> {
        // Logged here, not at bind, so that whoever waits for this line (an admin, a test, a
        // supervisor) knows that signal handlers are in place too.
        info!(
            "serving {} on {} (anonymous {})",
            self.settings.root.dir().display(),
            self.local_addr,
            if self.settings.anonymous { "read-only" } else { "off" }
        );
        privileges::warn_if_root();
        while !self.stop.load(Ordering::SeqCst) {
            self.run_once(None)?;
        }
        if let Some((running, queued)) = self.upload_hooks.as_ref().map(UploadHooks::pending)
            && running + queued > 0
        {
            warn!("stopping with {running} upload hooks still running (left to finish) and {queued} not started");
        }
        info!("stopped");
        Ok(())
    }

    /// One turn: wait for events (at most `timeout`, not at all if slots asked to run again),
    /// handle them, then re-run the slots that asked.
    pub fn run_once(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let now = Instant::now();
        let timers = timer::earliest(self.deadlines.next_timeout(now), self.delayed_verdicts.next_timeout(now));
        let timers = timer::earliest(timers, self.draining.map(|end| end.saturating_duration_since(now)));
        let timers = timer::earliest(timers, self.rate_wakeups.next_timeout(now));
        let timeout = if self.again.is_empty() { timer::earliest(timeout, timers) } else { Some(Duration::ZERO) };
        let mut events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        let polled = self.poll.poll(&mut events, timeout);
        let result = match polled {
            // A signal interrupted the wait: nothing happened, the caller just goes round again.
            Err(e) if interrupted(&e) => Ok(()),
            Err(e) => Err(e),
            Ok(()) => {
                for event in events.iter() {
                    let token = event.token();
                    trace!(
                        "event {:?}: readable={} writable={} closed={} error={}",
                        token,
                        event.is_readable(),
                        event.is_writable(),
                        event.is_read_closed() || event.is_write_closed(),
                        event.is_error()
                    );
                    match token {
                        LISTENER => self.accept_all(),
                        WAKER => self.collect_verdicts(),
                        SIGNALS => self.take_signals(),
                        CHILDREN => self.reap_upload_hooks(),
                        token => {
                            if (event.is_readable() || event.is_read_closed() || event.is_error())
                                && let Some(conn) = self.conns.get_mut(token.0)
                            {
                                conn.became_readable();
                            }
                            self.ready(token)
                        }
                    }
                }
                for token in std::mem::take(&mut self.again) {
                    self.ready(token);
                }
                self.fire_timers(Instant::now());
                if self.draining.is_some() {
                    self.drain(Instant::now());
                }
                Ok(())
            }
        };
        self.events = events;
        self.open_slots.store(self.conns.len(), Ordering::SeqCst);
        result
    }

    fn take_signals(&mut self) {
        let received: Vec<i32> = self.signals.as_mut().map(|s| s.pending().collect()).unwrap_or_default();
        for signal in received {
            if self.draining.is_some() {
                warn!("second signal {signal}: stopping now");
                self.stop.store(true, Ordering::SeqCst);
                return;
            }
            let transfers = self.conns.iter().filter(|(_, c)| matches!(c, Conn::Data(_))).count();
            info!(
                "signal {signal}: shutting down; {} sessions, {transfers} data connections, up to {} s for transfers",
                self.sessions,
                self.shutdown_grace.as_secs()
            );
            let _ = self.poll.registry().deregister(&mut self.listener);
            self.draining = Some(Instant::now() + self.shutdown_grace);
        }
    }

    /// One step of a graceful shutdown: sessions without a transfer are told and closed;
    /// when none is left, or the grace period is over, the loop stops. An upload cut off then
    /// is discarded by its `Sink`, never left half-renamed.
    fn drain(&mut self, now: Instant) {
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter_map(|(key, conn)| match conn {
                Conn::Control(c) if !c.session.is_transferring() && !c.session.is_quitting() => Some(key),
                _ => None,
            })
            .collect();
        for key in idle {
            if let Some(c) = self.control(Token(key)) {
                c.session.shutting_down();
                self.again.push(Token(key));
            }
        }
        if self.conns.is_empty() || self.draining.is_some_and(|end| now >= end) {
            info!("shutdown complete ({} connections cut off)", self.conns.len());
            self.stop.store(true, Ordering::SeqCst);
        }
    }

    /// Accepts until `WouldBlock`: the listener is edge-triggered too.
    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => self.open_session(stream, peer),
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => {}
                // Typically out of file descriptors. The queued connections stay in the backlog and
                // no new edge will announce them, so try again shortly.
                Err(e) => {
                    warn!("accept failed: {e}; retrying in 100 ms");
                    self.deadlines.schedule(Instant::now() + Duration::from_millis(100), LISTENER);
                    return;
                }
            }
        }
    }

    fn open_session(&mut self, mut stream: TcpStream, peer: SocketAddr) {
        let from_peer = self.sessions_per_ip.get(&peer.ip()).copied().unwrap_or(0);
        if self.sessions >= self.limits.sessions {
            return refuse(stream, peer, "Too many users; try again later.");
        }
        if from_peer >= self.limits.per_ip {
            return refuse(stream, peer, "Too many connections from your address.");
        }
        // Replies are small and latency-bound: without NODELAY, a reply that follows a data
        // transfer can wait ~40 ms for the client's delayed ACK.
        let _ = stream.set_nodelay(true);
        // Clients send ABOR with its last byte as TCP urgent data (ftplib) or a Telnet DM that
        // way (tnftp); inline, that byte stays in the stream instead of vanishing out of band.
        let _ = socket2::SockRef::from(&stream).set_out_of_band_inline(true);
        let local = match stream.local_addr() {
            Ok(local) => local,
            Err(e) => return debug!("connection from {peer} gone before setup: {e}"),
        };
        let id = self.next_session_id;
        self.next_session_id += 1;
        let entry = self.conns.vacant_entry();
        let token = Token(entry.key());
        if let Err(e) = self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE) {
            return warn!("[#{id}] cannot register connection from {peer}: {e}");
        }
        info!("[#{id}] connect from {peer}");
        let session = Session::new(id, peer, local, self.settings.clone());
        entry.insert(Conn::Control(Control::new(stream, session)));
        self.sessions += 1;
        *self.sessions_per_ip.entry(peer.ip()).or_default() += 1;
        self.arm(token);
        trace!("[#{id}] {token:?}: new control slot");
        self.again.push(token); // sends the greeting
    }

    fn ready(&mut self, token: Token) {
        let Some(bytes_before) = self.grant_tokens(token) else {
            return; // a throttled data slot waiting for its tokens: its timer will run it
        };
        // The slot may have been closed earlier this turn: the event is stale, ignore it.
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        let before = log::log_enabled!(log::Level::Trace).then(|| conn.state());
        let outcome = conn.ready();
        if let Some(before) = before {
            trace!("[#{}] {token:?} {before} → {}: {}", conn.session_id(), conn.state(), outcome_name(&outcome));
        }
        let outcome = match bytes_before {
            Some(bytes_before) => self.charge_tokens(token, bytes_before, outcome),
            None => outcome,
        };
        self.route(token, outcome);
        self.rearm_if_sooner(token);
    }

    /// The rate limits over data slot `token` (`None` if it is not a data slot, or none applies).
    /// The session's bucket is made here, lazily, to match the limit its login chose.
    fn limits(&mut self, token: Token) -> Option<(&mut Data, Buckets<'_>)> {
        let owner = self.conns.get(token.0).and_then(Conn::owner)?;
        let (Conn::Data(data), Conn::Control(control)) = self.conns.get2_mut(token.0, owner.0)? else {
            return None;
        };
        let rate = control.session.rate_limit();
        if control.bucket.as_ref().map(Bucket::rate) != rate {
            control.bucket = rate.map(|rate| Bucket::new(rate, TURN_BUDGET as u64, Instant::now()));
        }
        if self.global_rate.is_none() && control.bucket.is_none() {
            return None;
        }
        Some((data, Buckets { global: self.global_rate.as_mut(), session: control.bucket.as_mut() }))
    }

    /// Before a slot's turn: `None` if it must not run now (a transfer out of tokens);
    /// otherwise `Some(bytes moved so far)` for a throttled transfer, whose turn is capped at
    /// the tokens it may spend, and `Some(None)` for everything else.
    fn grant_tokens(&mut self, token: Token) -> Option<Option<u64>> {
        let Some((data, mut limits)) = self.limits(token).filter(|(data, _)| data.has_job()) else {
            return Some(None);
        };
        match limits.grant(&mut data.credit, TURN_BUDGET, Instant::now()) {
            Grant::Bytes(n) => {
                data.turn_budget = n;
                Some(Some(data.bytes()))
            }
            Grant::SleepUntil(at) => {
                self.rate_wakeups.schedule(at, token);
                None
            }
            Grant::Asleep => None,
        }
    }

    /// After a throttled slot's turn: pays for the bytes it moved, and one that stopped only
    /// for lack of tokens sleeps on a timer instead of being re-run at once.
    fn charge_tokens(&mut self, token: Token, bytes_before: u64, outcome: Outcome) -> Outcome {
        let Some((data, mut limits)) = self.limits(token) else { return outcome };
        let moved = data.bytes() - bytes_before;
        limits.charge(&mut data.credit, moved);
        if !matches!(outcome, Outcome::Again) {
            return outcome;
        }
        match limits.grant(&mut data.credit, TURN_BUDGET, Instant::now()) {
            Grant::Bytes(_) => Outcome::Again,
            Grant::SleepUntil(at) => {
                self.rate_wakeups.schedule(at, token);
                Outcome::Wait
            }
            Grant::Asleep => Outcome::Wait,
        }
    }

    /// Runs the throttled data slots whose reserved tokens are now paid for. An entry for a
    /// slot that has since run, closed or been replaced no longer matches its slot's
    /// reservation and is dropped.
    fn wake_throttled(&mut self, now: Instant) {
        for (at, token) in self.rate_wakeups.expired(now) {
            if matches!(self.conns.get(token.0), Some(Conn::Data(data)) if data.credit.due() == Some(at)) {
                self.ready(token);
            }
        }
    }

    /// SIGCHLD: some child exited; the hooks find out which without waiting.
    fn reap_upload_hooks(&mut self) {
        if let Some(children) = self.children.as_mut() {
            children.pending().for_each(drop);
        }
        if let Some(hooks) = self.upload_hooks.as_mut() {
            hooks.reap();
        }
    }

    /// Deadlines usually move later (activity), which the lazy check handles; a deadline that
    /// moved earlier (e.g. login done: the idle timeout is shorter than the login window left)
    /// needs a new entry now.
    fn rearm_if_sooner(&mut self, token: Token) {
        let Some(conn) = self.conns.get(token.0) else { return };
        let armed = self.armed.get(token.0).copied().flatten();
        if let (Some(deadline), Some(armed)) = (conn.deadline(&self.timeouts), armed)
            && deadline < armed
        {
            self.arm(token);
        }
    }

    /// Acts on what a slot asked for.
    fn route(&mut self, token: Token, outcome: Outcome) {
        match outcome {
            Outcome::Wait => {}
            Outcome::Again => self.again.push(token),
            Outcome::Close => self.close(token),
            Outcome::Effect(effect) => {
                self.apply(token, effect);
                self.again.push(token); // let the session go on with pipelined commands
            }
            Outcome::Accepted(stream) => self.promote_to_data(token, stream),
            Outcome::Finished(result) => {
                let owner = self.conns.get(token.0).and_then(Conn::owner);
                self.close(token);
                if let Some(owner) = owner {
                    self.tell_finished(owner, result);
                }
            }
        }
    }

    /// Carries out what a session asked for.
    fn apply(&mut self, control: Token, effect: Effect) {
        match effect {
            Effect::None => {}
            Effect::Verify { user, password } => {
                let session_id = self.control(control).map_or(0, |c| c.session.id);
                if let Some(verdict) = self.verifier.submit(Request { token: control, session_id, user, password }) {
                    self.deliver_verdict(verdict);
                }
            }
            Effect::Listen => {
                self.close_data_of(control);
                let port = self.open_passive(control);
                if let Some(c) = self.control(control) {
                    c.session.listening(port);
                }
            }
            Effect::Start(job, Target::Passive) => self.start_passive(control, job),
            Effect::Start(job, Target::Active(addr)) => self.start_active(control, job, addr),
            Effect::CloseData => self.close_data_of(control),
        }
    }

    fn control(&mut self, token: Token) -> Option<&mut Control> {
        match self.conns.get_mut(token.0) {
            Some(Conn::Control(control)) => Some(control),
            _ => None,
        }
    }

    fn collect_verdicts(&mut self) {
        for verdict in self.verifier.verdicts() {
            if verdict.account.is_none() {
                self.delayed_verdicts.schedule(Instant::now() + self.failed_login_delay, verdict);
            } else {
                self.deliver_verdict(verdict);
            }
        }
    }

    fn deliver_verdict(&mut self, verdict: Verdict) {
        match self.control(verdict.token) {
            Some(c) if c.session.id == verdict.session_id => {
                c.session.verified(verdict.account);
                self.again.push(verdict.token);
            }
            _ => debug!("[#{}] login verdict for a closed session", verdict.session_id),
        }
    }

    /// Schedules `token`'s next deadline check, replacing any earlier one.
    fn arm(&mut self, token: Token) {
        let Some(conn) = self.conns.get(token.0) else { return };
        // No deadline now (a control connection during a transfer): look again after a while.
        let at = conn.deadline(&self.timeouts).unwrap_or_else(|| Instant::now() + self.timeouts.idle);
        if self.armed.len() <= token.0 {
            self.armed.resize(token.0 + 1, None);
        }
        self.armed[token.0] = Some(at);
        self.deadlines.schedule(at, token);
        // Every re-arm leaves the previous entry behind until its deadline, which for busy
        // servers means (connections per second) x (idle timeout) stale entries: shed them
        // once they outnumber the live ones, so memory follows the sessions, not the rate.
        if self.deadlines.len() > 2 * self.conns.len() + 1024 {
            let (armed, conns) = (&self.armed, &self.conns);
            self.deadlines.retain(|at, token| {
                *token == LISTENER || (conns.contains(token.0) && armed.get(token.0).copied().flatten() == Some(at))
            });
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        for (_, verdict) in self.delayed_verdicts.expired(now) {
            self.deliver_verdict(verdict);
        }
        self.wake_throttled(now);
        for (at, token) in self.deadlines.expired(now) {
            if token == LISTENER {
                self.accept_all();
                continue;
            }
            // An entry for a slot that has since been re-armed, closed, or replaced: stale.
            if self.armed.get(token.0).copied().flatten() != Some(at) || !self.conns.contains(token.0) {
                continue;
            }
            self.armed[token.0] = None;
            let Some(conn) = self.conns.get_mut(token.0) else { continue };
            match conn.deadline(&self.timeouts) {
                Some(deadline) if deadline <= now => {
                    debug!("[#{}] {token:?} {} timed out", conn.session_id(), conn.state());
                    let outcome = conn.expire();
                    self.route(token, outcome);
                }
                _ => self.arm(token), // there was activity meanwhile
            }
        }
    }

    fn forget_session_from(&mut self, ip: IpAddr) {
        self.sessions -= 1;
        if let Some(count) = self.sessions_per_ip.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                self.sessions_per_ip.remove(&ip);
            }
        }
    }

    fn open_passive(&mut self, control: Token) -> io::Result<u16> {
        let c = self.control(control).ok_or(io::ErrorKind::NotConnected)?;
        let (local_ip, peer_ip, session_id) = (c.session.local().ip(), c.session.peer().ip(), c.session.id);
        let (mut listener, port) = self.bind_passive(local_ip)?;
        let entry = self.conns.vacant_entry();
        let token = Token(entry.key());
        self.poll.registry().register(&mut listener, token, Interest::READABLE)?;
        let opened_at = Instant::now();
        entry.insert(Conn::Passive(Passive { listener, owner: control, session_id, peer_ip, job: None, opened_at }));
        self.arm(token);
        trace!("[#{session_id}] {token:?}: passive listener on port {port}");
        if let Some(c) = self.control(control) {
            c.data = Some(token);
        }
        Ok(port)
    }

    /// Binds a passive listener on the address the client reached us at, within the
    /// configured port range (trying each port once, starting after the last one used).
    fn bind_passive(&mut self, ip: IpAddr) -> io::Result<(TcpListener, u16)> {
        let range = self.pasv_ports.clone();
        for _ in 0..span(&range) {
            let port = self.next_pasv_port;
            self.next_pasv_port = if port >= *range.end() { *range.start() } else { port + 1 };
            match TcpListener::bind(SocketAddr::new(ip, port)) {
                Ok(listener) => return Ok((listener, port)),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(io::ErrorKind::AddrInUse, "every passive port is in use"))
    }

    /// The passive peer connected: the listener's slot becomes the data connection's slot.
    fn promote_to_data(&mut self, token: Token, mut stream: TcpStream) {
        let Some(Conn::Passive(passive)) = self.conns.get_mut(token.0) else {
            return;
        };
        let (owner, session_id, job) = (passive.owner, passive.session_id, passive.job.take());
        if let Err(e) = self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE) {
            self.close(token);
            return self.tell_finished(owner, Err(TransferError::Connect(e)));
        }
        // Replacing the slot drops (closes) the listener, which also takes it out of the poll set.
        self.conns[token.0] = Conn::Data(Data::accepted(stream, owner, session_id, job));
        self.arm(token);
        trace!("[#{session_id}] {token:?}: passive → data");
        self.ready(token); // a parked job starts now, not a turn later
    }

    fn start_passive(&mut self, control: Token, job: Job) {
        let data = self.control(control).and_then(|c| c.data);
        match data.and_then(|d| self.conns.get_mut(d.0)) {
            // The client has not connected yet: park the job until it does.
            Some(Conn::Passive(passive)) => passive.job = Some(job),
            // Connected already: move the first bytes now, so that a small file is done before
            // the control connection next writes, and its 150 and 226 leave in one packet.
            Some(Conn::Data(data_conn)) if data_conn.is_idle() => {
                data_conn.start(job);
                if let Some(data) = data {
                    self.ready(data);
                }
            }
            _ => {
                let e = io::Error::new(io::ErrorKind::NotConnected, "no passive connection");
                self.tell_finished(control, Err(TransferError::Connect(e)));
            }
        }
    }

    fn start_active(&mut self, control: Token, job: Job, addr: SocketAddr) {
        self.close_data_of(control);
        let Some(session_id) = self.control(control).map(|c| c.session.id) else {
            return;
        };
        let mut stream = match TcpStream::connect(addr) {
            Ok(stream) => stream,
            Err(e) => return self.tell_finished(control, Err(TransferError::Connect(e))),
        };
        let entry = self.conns.vacant_entry();
        let token = Token(entry.key());
        if let Err(e) = self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE) {
            return self.tell_finished(control, Err(TransferError::Connect(e)));
        }
        entry.insert(Conn::Data(Data::connecting(stream, control, session_id, job)));
        self.arm(token);
        trace!("[#{session_id}] {token:?}: connecting to {addr}");
        if let Some(c) = self.control(control) {
            c.data = Some(token);
        }
    }

    fn tell_finished(&mut self, control: Token, result: Result<u64, TransferError>) {
        let Some(Conn::Control(c)) = self.conns.get_mut(control.0) else { return };
        let stored = c.session.finished(result);
        let session = &c.session;
        if let (Some(stored), Some(hooks)) = (stored, self.upload_hooks.as_mut()) {
            hooks.submit(Upload {
                session_id: session.id,
                user: session.user().unwrap_or_default().to_string(),
                real_path: self.settings.root.real_path(&stored.path),
                path: stored.path,
                bytes: stored.bytes,
            });
        }
        self.again.push(control);
    }

    fn close_data_of(&mut self, control: Token) {
        if let Some(data) = self.control(control).and_then(|c| c.data.take()) {
            self.close(data);
        }
    }

    /// The only way a slot leaves the slab. Closing a control slot closes its data slot.
    fn close(&mut self, token: Token) {
        let Some(conn) = self.conns.try_remove(token.0) else {
            return;
        };
        // No `deregister`: closing a descriptor takes it out of the epoll set (we never
        // duplicate one), and that saves a system call per socket.
        match conn {
            Conn::Control(c) => {
                self.forget_session_from(c.session.peer().ip());
                drop(c.stream);
                info!("[#{}] closed{}", c.session.id, c.session.user().map(|u| format!(" ({u})")).unwrap_or_default());
                if let Some(data) = c.data {
                    self.close(data);
                }
            }
            Conn::Passive(p) => self.unlink(p.owner, token),
            Conn::Data(d) => self.unlink(d.owner, token),
        }
        trace!("{token:?}: slot closed");
    }

    fn unlink(&mut self, owner: Token, data: Token) {
        if let Some(c) = self.control(owner).filter(|c| c.data == Some(data)) {
            c.data = None;
        }
    }
}

fn outcome_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Wait => "wait",
        Outcome::Again => "again",
        Outcome::Close => "close",
        Outcome::Effect(_) => "effect",
        Outcome::Accepted(_) => "accepted",
        Outcome::Finished(_) => "finished",
    }
}

/// Passive ports when none are configured: the system's ephemeral range, walked in turn by
/// `bind_passive`. Asking the kernel for port 0 instead makes it search for a free port, and
/// with tens of thousands of TIME_WAIT sockets from finished transfers that search dominated
/// the server's CPU time (15-40 times fewer small transfers per second under load).
fn ephemeral_ports() -> RangeInclusive<u16> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut bounds = text.split_whitespace().filter_map(|n| n.parse::<u16>().ok());
    match (bounds.next(), bounds.next()) {
        (Some(low), Some(high)) if 0 < low && low <= high => low..=high,
        _ => 49152..=65535,
    }
}

fn span(range: &RangeInclusive<u16>) -> u32 {
    u32::from(*range.end() - *range.start()) + 1
}

/// A non-blocking listener with a large backlog (mio's own `bind` uses 128).
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Over a limit: the client still gets an answer (`421`) instead of a connection that hangs.
fn refuse(mut stream: TcpStream, peer: SocketAddr, text: &str) {
    info!("refused {peer}: {text}");
    // One non-blocking attempt: a fresh socket's send buffer always has room for one line.
    let _ = stream.write_all(format!("421 {text}\r\n").as_bytes());
}

fn context(err: io::Error, what: String) -> io::Error {
    io::Error::new(err.kind(), format!("{what}: {err}"))
}
