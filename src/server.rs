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
//!
//! Watching: the loop owns the `Metrics` (counted as things happen, plus the time each turn
//! works) and the transfer log; sessions report logins and ended transfers as `SessionEvent`s,
//! which the loop takes after each turn of a control slot and whenever it tells one a
//! transfer ended. The metrics endpoint's listener and scrapes are slots like any other.
//!
//! With `--workers N` there are N servers, each on its own thread, sharing the control port
//! (`SO_REUSEPORT`, see `bind_workers` and `workers.rs`). Behind a load balancer
//! (`--proxy-protocol`) every accepted socket first sits in an `AwaitingHeader` slot until its
//! PROXY header names the client (`header_read`).

use crate::auth::Users;
use crate::buffer::{interrupted, would_block};
use crate::config::Config;
use crate::conn::data::TURN_BUDGET;
use crate::conn::transport::Transport;
use crate::conn::{AwaitingHeader, Conn, Control, Data, MetricsListener, Outcome, Passive, Purpose, Scrape, Timeouts};
use crate::credential_cache::CredentialCache;
use crate::fs::Root;
use crate::fs::transfer::{Job, TransferError};
use crate::ftp::event::{Completion, Direction, SessionEvent, TransferRecord};
use crate::ftp::session::Target;
use crate::ftp::{Effect, Session, Settings};
use crate::metrics::{Gauges, Metrics};
use crate::privileges;
use crate::session_limits::{Refusal, SessionLimits};
use crate::throttle::{Bucket, Buckets, Grant};
use crate::timer::{self, Timers};
use crate::tls::{Binding, Tls};
use crate::upload_hook::{Upload, UploadHooks};
use crate::verifier::{Request, Verdict, Verifier};
use crate::xferlog::Xferlog;
use log::{debug, info, trace, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Tokens outside the slab's key range (slab keys never get near `usize::MAX`).
const LISTENER: Token = Token(usize::MAX);
const WAKER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);
const IMPLICIT_TLS_LISTENER: Token = Token(usize::MAX - 3);
const CHILDREN: Token = Token(usize::MAX - 4);

/// Pending connections the kernel may queue before we accept them. Large, because a storm of
/// connects that overflows the backlog leaves clients waiting for a greeting that never comes.
const BACKLOG: i32 = 4096;

/// Metrics scrapes open at once per loop; one more is closed at once.
const MAX_SCRAPES: usize = 16;

pub struct Server {
    poll: Poll,
    events: Events,
    listener: TcpListener,
    local_addr: SocketAddr,
    /// `--implicit-tls`: sessions accepted here are TLS from the first byte.
    implicit_tls_listener: Option<TcpListener>,
    /// `--tls-cert`: FTPS offered (`AUTH TLS`).
    tls: Option<Tls>,
    conns: Slab<Conn>,
    /// Slots to run again next turn without waiting for an event.
    again: Vec<Token>,
    settings: Arc<Settings>,
    verifier: Verifier,
    pasv_ports: RangeInclusive<u16>,
    next_pasv_port: u16,
    next_session_id: u64,
    /// Which of how many workers this is; workers number their sessions apart (worker `i` of
    /// `n` uses ids `i+1`, `i+1+n`, …), so `[#N]` names one session in the whole log.
    worker: Worker,
    /// `--proxy-protocol`: every accepted connection starts with a PROXY header.
    proxy_protocol: bool,
    /// `AwaitingHeader` slots: held to `--max-sessions` (per worker), since the session limits
    /// can count a connection only once its header names the client.
    awaiting_headers: usize,
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
    /// Shared by all workers.
    limits: Arc<SessionLimits>,
    /// SIGTERM/SIGINT/SIGHUP, once `handle_signals` is called (the binary does; tests do not).
    signals: Option<Signals>,
    /// Re-read on SIGHUP.
    users_file: Option<PathBuf>,
    /// Set by the first SIGTERM/SIGINT: no new sessions; idle ones close; transfers get until
    /// this instant to finish.
    draining: Option<Instant>,
    shutdown_grace: Duration,
    metrics: Metrics,
    /// Where `--metrics` is served (its listener is a slot of `conns`).
    metrics_addr: Option<SocketAddr>,
    /// Scrape connections open now (at most `MAX_SCRAPES`).
    scrapes: usize,
    xferlog: Option<Xferlog>,
    /// `--max-rate`: the bucket every data connection draws from.
    global_rate: Option<Bucket>,
    /// Throttled data slots waiting for tokens, each due when its reservation is paid for.
    rate_wakeups: Timers<Token>,
    /// `--on-upload`, and the SIGCHLD notifications that tell it a hook exited.
    upload_hooks: Option<UploadHooks>,
    children: Option<Signals>,
}

#[derive(Clone, Copy, Debug)]
struct Worker {
    index: usize,
    count: usize,
}

/// What the workers of one process share, built once before any of them.
struct Shared {
    settings: Arc<Settings>,
    limits: Arc<SessionLimits>,
    users: Users,
    tls: Option<Tls>,
}

/// One worker's listening sockets.
struct Listeners {
    control: TcpListener,
    implicit_tls: Option<TcpListener>,
    metrics: Option<TcpListener>,
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
        let mut servers = Server::bind_workers(config, 1)?;
        servers.pop().ok_or_else(|| io::Error::other("no server was bound"))
    }

    /// `count` servers on one control port: validates `config`, loads the users file, binds
    /// every listener (sharing the port through `SO_REUSEPORT` when `count > 1`), and only then
    /// drops privileges (`--run-as`) and builds the servers, whose password checkers are
    /// threads: so nothing runs on another thread while the process is still root.
    pub fn bind_workers(config: &Config, count: usize) -> io::Result<Vec<Server>> {
        let root =
            Root::new(&config.root).map_err(|e| context(e, format!("cannot serve {}", config.root.display())))?;
        let users = match &config.users {
            Some(path) => Users::load(path)?,
            None => Users::default(),
        };
        let tls = Tls::from_config(config).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let control = listen_all(config.listen, count)?;
        let implicit_tls = match config.implicit_tls {
            Some(addr) => listen_all(addr, count)?.into_iter().map(Some).collect(),
            None => (0..count).map(|_| None).collect::<Vec<_>>(),
        };
        // Every worker serves its own figures (nothing is shared between loops): worker i on the
        // given port + i, so Prometheus scrapes N targets. Port 0 lets each worker pick one.
        let metrics = (0..count)
            .map(|i| match config.metrics {
                Some(addr) => {
                    let port = if addr.port() == 0 { 0 } else { addr.port().saturating_add(i as u16) };
                    let addr = SocketAddr::new(addr.ip(), port);
                    listen(addr, false).map(Some).map_err(|e| context(e, format!("cannot serve metrics on {addr}")))
                }
                None => Ok(None),
            })
            .collect::<io::Result<Vec<_>>>()?;
        // One descriptor per worker, each appending whole lines (`O_APPEND`), so their lines
        // never mix. Opened before dropping privileges, so a root-owned log directory works.
        let xferlogs = (0..count)
            .map(|_| match &config.xferlog {
                Some(path) => Xferlog::open(path)
                    .map(Some)
                    .map_err(|e| context(e, format!("cannot open transfer log {}", path.display()))),
                None => Ok(None),
            })
            .collect::<io::Result<Vec<_>>>()?;
        if let Some(user) = &config.run_as {
            privileges::run_as(user)?;
        }
        let settings = Settings {
            root,
            anonymous: config.anonymous_allowed(),
            pasv_address: config.pasv_address,
            max_login_failures: config.max_login_failures,
            zero_copy: !config.no_zero_copy,
            tls: tls.is_some(),
            require_tls: config.require_tls,
            max_rate_per_session: config.max_rate_per_session,
        };
        let shared = Shared {
            settings: Arc::new(settings),
            limits: Arc::new(SessionLimits::new(config.max_sessions, config.max_per_ip)),
            users,
            tls,
        };
        let per_worker = control.into_iter().zip(implicit_tls).zip(metrics).zip(xferlogs);
        per_worker
            .enumerate()
            .map(|(index, (((listener, implicit_tls), metrics), xferlog))| {
                let listeners = Listeners { control: listener, implicit_tls, metrics };
                Server::new(config, listeners, xferlog, Worker { index, count }, &shared)
            })
            .collect()
    }

    fn new(
        config: &Config,
        listeners: Listeners,
        xferlog: Option<Xferlog>,
        worker: Worker,
        shared: &Shared,
    ) -> io::Result<Server> {
        let Listeners { control: mut listener, implicit_tls: mut implicit_tls_listener, metrics } = listeners;
        let local_addr = listener.local_addr()?;
        let poll = Poll::new()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        if let Some(implicit) = implicit_tls_listener.as_mut() {
            poll.registry().register(implicit, IMPLICIT_TLS_LISTENER, Interest::READABLE)?;
        }
        let mut conns = Slab::new();
        let metrics_addr = match metrics {
            Some(mut listener) => {
                let entry = conns.vacant_entry();
                poll.registry().register(&mut listener, Token(entry.key()), Interest::READABLE)?;
                let addr = listener.local_addr()?;
                entry.insert(Conn::MetricsListener(MetricsListener { listener, retry_at: None }));
                Some(addr)
            }
            None => None,
        };
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let pasv_ports = config.pasv_ports.clone().unwrap_or_else(ephemeral_ports);
        let cache = CredentialCache::new(Duration::from_secs(config.credential_cache_secs))?;
        let verifier = Verifier::spawn(shared.users.clone(), cache, waker.clone())?;
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
        Ok(Server {
            poll,
            events: Events::with_capacity(1024),
            listener,
            local_addr,
            implicit_tls_listener,
            tls: shared.tls.clone(),
            conns,
            again: Vec::new(),
            settings: shared.settings.clone(),
            verifier,
            // A random start, so that servers started together do not probe the same ports.
            next_pasv_port: *pasv_ports.start() + (getrandom::u32().unwrap_or(0) % span(&pasv_ports)) as u16,
            pasv_ports,
            next_session_id: worker.index as u64 + 1,
            worker,
            proxy_protocol: config.proxy_protocol,
            awaiting_headers: 0,
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
            limits: shared.limits.clone(),
            signals: None,
            users_file: config.users.clone(),
            draining: None,
            shutdown_grace: Duration::from_secs(config.shutdown_grace),
            metrics: Metrics::default(),
            metrics_addr,
            scrapes: 0,
            xferlog,
            // Loops share nothing, so each gets an equal part of the global rate.
            global_rate: config
                .max_rate
                .map(|rate| Bucket::new((rate / worker.count as u64).max(1), TURN_BUDGET as u64, Instant::now())),
            rate_wakeups: Timers::default(),
            upload_hooks,
            children,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where implicit FTPS is served (`--implicit-tls`), if it is.
    pub fn implicit_tls_addr(&self) -> Option<SocketAddr> {
        self.implicit_tls_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Where the metrics are served, if `--metrics` was given (with its port if that was 0).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn handle(&self) -> Handle {
        Handle { stop: self.stop.clone(), waker: self.waker.clone(), open_slots: self.open_slots.clone() }
    }

    /// Makes SIGTERM and SIGINT shut the server down gracefully (a second signal: at once),
    /// and SIGHUP reload what can change without a restart (`reload`).
    pub fn handle_signals(&mut self) -> io::Result<()> {
        let mut signals = Signals::new([libc::SIGTERM, libc::SIGINT, libc::SIGHUP])?;
        self.poll.registry().register(&mut signals, SIGNALS, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    /// Runs until `Handle::stop`, or until a graceful shutdown has finished.
    pub fn run(&mut self) -> io::Result<()> {
        // Logged here, not at bind, so that whoever waits for this line (an admin, a test, a
        // supervisor) knows that signal handlers are in place too.
        let tls = match (&self.tls, self.implicit_tls_addr()) {
            (None, _) => "off".to_string(),
            (Some(_), implicit) => format!(
                "{}{}",
                if self.settings.require_tls { "required" } else { "offered" },
                implicit.map(|a| format!(", implicit on {a}")).unwrap_or_default()
            ),
        };
        let worker = match self.worker {
            Worker { count: 1, .. } => String::new(),
            Worker { index, count } => format!(", worker {} of {count}", index + 1),
        };
        info!(
            "serving {} on {} (anonymous {}, TLS {tls}{}{worker})",
            self.settings.root.dir().display(),
            self.local_addr,
            if self.settings.anonymous { "read-only" } else { "off" },
            if self.proxy_protocol { ", PROXY protocol required" } else { "" },
        );
        if let Some(addr) = self.metrics_addr {
            info!("metrics on http://{addr}/metrics");
        }
        privileges::warn_if_root();
        while !self.stop.load(Ordering::SeqCst) {
            self.run_once(None)?;
        }
        // Whatever is still open is cut off now; closing it here puts transfers that were still
        // running into the transfer log.
        let open: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in open {
            self.close(Token(key));
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
                let turn_began = Instant::now();
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
                        LISTENER => self.accept_all(false),
                        IMPLICIT_TLS_LISTENER => self.accept_all(true),
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
                self.metrics.loop_turn(turn_began.elapsed());
                Ok(())
            }
        };
        self.events = events;
        // The metrics listener is not a connection: leak checks wait for the rest to close.
        self.open_slots
            .store(self.conns.len().saturating_sub(usize::from(self.metrics_addr.is_some())), Ordering::SeqCst);
        result
    }

    fn take_signals(&mut self) {
        let received: Vec<i32> = self.signals.as_mut().map(|s| s.pending().collect()).unwrap_or_default();
        for signal in received {
            if signal == libc::SIGHUP {
                self.reload();
                continue;
            }
            if self.draining.is_some() {
                warn!("second signal {signal}: stopping now");
                self.stop.store(true, Ordering::SeqCst);
                return;
            }
            let count = |kind: fn(&Conn) -> bool| self.conns.iter().filter(|(_, c)| kind(c)).count();
            let sessions = count(|c| matches!(c, Conn::Control(_)));
            let transfers = count(|c| matches!(c, Conn::Data(_)));
            info!(
                "signal {signal}: shutting down; {sessions} sessions, {transfers} data connections, up to {} s for transfers",
                self.shutdown_grace.as_secs()
            );
            let _ = self.poll.registry().deregister(&mut self.listener);
            if let Some(implicit) = self.implicit_tls_listener.as_mut() {
                let _ = self.poll.registry().deregister(implicit);
            }
            self.draining = Some(Instant::now() + self.shutdown_grace);
        }
    }

    /// SIGHUP: re-reads each part that can change under running sessions, on its own. A part
    /// that fails to load keeps what it had and says why; sessions are never dropped. A new
    /// reloadable part gets a `reload_…` method called here, logging the same way.
    fn reload(&mut self) {
        info!("SIGHUP: reloading");
        self.reload_users();
        self.reload_tls();
        self.reopen_xferlog();
    }

    /// New transfer-log lines go to the file now at the log's path (after a rotation).
    fn reopen_xferlog(&mut self) {
        let Some(log) = self.xferlog.as_mut() else { return };
        match log.reopen() {
            Ok(path) => info!("reload: transfer log {}", path.display()),
            Err(e) => warn!("reload: cannot reopen the transfer log: {e}; writing to the old file"),
        }
    }

    /// New TLS sessions use the certificate and key as they are now (a renewed certificate);
    /// sessions already running keep theirs.
    fn reload_tls(&mut self) {
        let Some(tls) = &self.tls else { return };
        match tls.reload() {
            Ok(tls) => {
                info!("reload: TLS certificate {}", tls.cert_file().display());
                self.tls = Some(tls);
            }
            Err(e) => warn!("reload: {e}; keeping the certificate loaded before"),
        }
    }

    /// New logins are checked against the users file as it is now; sessions already logged
    /// in keep their account until they end.
    fn reload_users(&mut self) {
        let Some(path) = &self.users_file else {
            return info!("reload: no users file to reload");
        };
        match Users::load(path) {
            Ok(users) => {
                info!("reload: users file {}: {} users", path.display(), users.len());
                self.verifier.replace_users(users);
            }
            Err(e) => warn!("reload: {e}; keeping the users loaded before"),
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
        // The metrics endpoint keeps serving while the FTP side drains, and does not hold it up.
        let ftp_slots = self.conns.iter().filter(|(_, conn)| !conn.is_metrics()).count();
        if ftp_slots == 0 || self.draining.is_some_and(|end| now >= end) {
            info!("shutdown complete ({ftp_slots} connections cut off)");
            self.stop.store(true, Ordering::SeqCst);
        }
    }

    /// Accepts until `WouldBlock`: the listener is edge-triggered too.
    fn accept_all(&mut self, implicit_tls: bool) {
        loop {
            let accepted = match (&self.implicit_tls_listener, implicit_tls) {
                (Some(listener), true) => listener.accept(),
                _ => self.listener.accept(),
            };
            match accepted {
                Ok((stream, peer)) if self.proxy_protocol => {
                    self.await_header(stream, peer, Purpose::Control { implicit_tls })
                }
                Ok((stream, peer)) => self.open_session(stream, peer, implicit_tls),
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => {}
                // Typically out of file descriptors. The queued connections stay in the backlog and
                // no new edge will announce them, so try again shortly.
                Err(e) => {
                    warn!("accept failed: {e}; retrying in 100 ms");
                    let listener = if implicit_tls { IMPLICIT_TLS_LISTENER } else { LISTENER };
                    self.deadlines.schedule(Instant::now() + Duration::from_millis(100), listener);
                    return;
                }
            }
        }
    }

    /// A new control connection from `peer`: the socket's peer, or the client a PROXY header
    /// named. On the implicit TLS port, TLS starts at once.
    fn open_session(&mut self, mut stream: TcpStream, peer: SocketAddr, implicit_tls: bool) {
        if let Err(refusal) = self.limits.admit(peer.ip()) {
            self.metrics.rejected(refusal);
            return refuse(stream, peer, refusal.text());
        }
        // Replies are small and latency-bound: without NODELAY, a reply that follows a data
        // transfer can wait ~40 ms for the client's delayed ACK.
        let _ = stream.set_nodelay(true);
        // Clients send ABOR with its last byte as TCP urgent data (ftplib) or a Telnet DM that
        // way (tnftp); inline, that byte stays in the stream instead of vanishing out of band.
        let _ = socket2::SockRef::from(&stream).set_out_of_band_inline(true);
        let local = match stream.local_addr() {
            Ok(local) => local,
            Err(e) => {
                self.limits.release(peer.ip());
                return debug!("connection from {peer} gone before setup: {e}");
            }
        };
        let id = self.next_session_id;
        self.next_session_id += self.worker.count as u64;
        let entry = self.conns.vacant_entry();
        let token = Token(entry.key());
        if let Err(e) = self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE) {
            self.limits.release(peer.ip());
            return warn!("[#{id}] cannot register connection from {peer}: {e}");
        }
        let mut session = Session::new(id, peer, local, self.settings.clone());
        let transport = match self.tls.as_ref().filter(|_| implicit_tls).map(|tls| tls.control_session(id)) {
            None => Transport::plain(stream),
            Some(Ok(tls)) => {
                session.tls_started(); // the greeting waits in TLS's buffer for the handshake
                Transport::with_tls(stream, tls)
            }
            Some(Err(e)) => {
                self.limits.release(peer.ip());
                return warn!("[#{id}] cannot start TLS for {peer}: {e}");
            }
        };
        info!("[#{id}] connect from {peer}{}", if implicit_tls { " (implicit TLS)" } else { "" });
        entry.insert(Conn::Control(Control::new(transport, session)));
        self.metrics.session_opened();
        self.arm(token);
        trace!("[#{id}] {token:?}: new control slot");
        self.again.push(token); // sends the greeting
    }

    /// Behind a load balancer, an accepted connection waits here for its PROXY header.
    fn await_header(&mut self, mut stream: TcpStream, from: SocketAddr, purpose: Purpose) {
        if self.awaiting_headers >= self.limits.max_sessions() {
            self.metrics.rejected(Refusal::TooManySessions);
            return refuse(stream, from, Refusal::TooManySessions.text());
        }
        let entry = self.conns.vacant_entry();
        let token = Token(entry.key());
        if let Err(e) = self.poll.registry().register(&mut stream, token, Interest::READABLE) {
            return warn!("cannot register connection from {from}: {e}");
        }
        entry.insert(Conn::AwaitingHeader(AwaitingHeader::new(stream, from, purpose)));
        self.awaiting_headers += 1;
        self.arm(token);
        trace!("{token:?}: awaiting a PROXY header from {from} ({purpose:?})");
        self.again.push(token); // the header usually comes with the connection
    }

    /// A passive listener behind a load balancer accepted a connection: which client it is
    /// for, only its PROXY header can say. The listener stays open until that client comes.
    fn await_data_header(&mut self, passive: Token, stream: TcpStream) {
        // More connections may be queued, and no new readiness edge would announce them.
        self.again.push(passive);
        let session_id = self.conns.get(passive.0).map_or(0, Conn::session_id);
        match stream.peer_addr() {
            Ok(from) => self.await_header(stream, from, Purpose::Data { passive, session_id }),
            Err(e) => debug!("[#{session_id}] data connection gone before its PROXY header: {e}"),
        }
    }

    /// The PROXY header named `client`: the connection becomes what it was accepted for.
    fn header_read(&mut self, token: Token, client: SocketAddr) {
        let Some(Conn::AwaitingHeader(_)) = self.conns.get(token.0) else { return };
        let Conn::AwaitingHeader(mut awaiting) = self.conns.remove(token.0) else { return };
        self.awaiting_headers -= 1;
        // What the connection becomes registers it anew, under its own token and interests.
        if let Err(e) = self.poll.registry().deregister(&mut awaiting.stream) {
            return warn!("cannot deregister connection from {}: {e}", awaiting.from);
        }
        debug!("{}: PROXY header names {client}", awaiting.from);
        match awaiting.purpose {
            Purpose::Control { implicit_tls } => self.open_session(awaiting.stream, client, implicit_tls),
            Purpose::Data { passive, session_id } => match self.conns.get(passive.0) {
                Some(Conn::Passive(p)) if p.session_id == session_id && p.admits(client) => {
                    debug!("[#{session_id}] data connection from {client} (PROXY header)");
                    self.promote_to_data(passive, awaiting.stream);
                }
                Some(Conn::Passive(p)) if p.session_id == session_id => p.refuse(client),
                _ => debug!("[#{session_id}] data connection from {client} after its passive port closed"),
            },
        }
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
        let events = conn.take_session_events();
        if let Some(before) = before {
            trace!("[#{}] {token:?} {before} → {}: {}", conn.session_id(), conn.state(), outcome_name(&outcome));
        }
        // Before the outcome is acted on: an `ABOR`'s data connection is still open to tell how
        // many bytes it moved.
        if !events.is_empty() {
            let data = self.control(token).and_then(|c| c.data);
            self.observe(events, data);
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
    /// needs a new entry now, and so does one that appeared on a slot with no entry (the metrics
    /// listener's retry after a failed accept).
    fn rearm_if_sooner(&mut self, token: Token) {
        let Some(conn) = self.conns.get(token.0) else { return };
        let armed = self.armed.get(token.0).copied().flatten();
        if let Some(deadline) = conn.deadline(&self.timeouts)
            && armed.is_none_or(|armed| deadline < armed)
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
            Outcome::Accepted(stream) if self.proxy_protocol => self.await_data_header(token, stream),
            Outcome::Accepted(stream) => self.promote_to_data(token, stream),
            Outcome::HeaderRead(client) => self.header_read(token, client),
            Outcome::Finished(result) => {
                let owner = self.conns.get(token.0).and_then(Conn::owner);
                // Told before the slot closes, so that a transfer cut short is logged with the
                // bytes its data connection moved.
                if let Some(owner) = owner {
                    self.tell_finished(owner, result);
                }
                self.close(token);
            }
            Outcome::NewScrape(stream) => {
                self.open_scrape(stream);
                self.again.push(token); // accept the next one queued, if any
            }
            Outcome::RenderMetrics => {
                let text = self.render_metrics();
                if let Some(Conn::Scrape(scrape)) = self.conns.get_mut(token.0) {
                    scrape.respond(text);
                }
                self.again.push(token);
            }
        }
    }

    /// Counts what sessions report, and logs ended transfers. `data` is the session's data
    /// slot, which knows how many bytes a transfer cut short had moved.
    fn observe(&mut self, events: Vec<SessionEvent>, data: Option<Token>) {
        for event in events {
            match event {
                SessionEvent::LoggedIn => self.metrics.login(true),
                SessionEvent::LoginFailed => self.metrics.login(false),
                SessionEvent::TransferEnded(mut record) => {
                    if record.bytes.is_none() {
                        record.bytes =
                            Some(data.and_then(|d| self.conns.get(d.0)).and_then(Conn::bytes_moved).unwrap_or(0));
                    }
                    self.metrics.transfer(&record);
                    if let Some(log) = &mut self.xferlog {
                        log.write(&record);
                    }
                }
            }
        }
    }

    fn render_metrics(&self) -> String {
        let mut gauges = Gauges::default();
        for (_, conn) in &self.conns {
            match conn {
                Conn::Control(_) => gauges.sessions += 1,
                Conn::Data(_) => gauges.data_connections += 1,
                Conn::Passive(_) => gauges.passive_listeners += 1,
                _ => {}
            }
        }
        self.metrics.render(gauges)
    }

    fn open_scrape(&mut self, mut stream: TcpStream) {
        // Scrapers are a few monitoring systems; more at once is a misconfiguration or an
        // attack, and must not take descriptors from FTP clients.
        if self.scrapes >= MAX_SCRAPES {
            return debug!("metrics: {MAX_SCRAPES} scrapes open already; closing another");
        }
        let entry = self.conns.vacant_entry();
        let token = Token(entry.key());
        if let Err(e) = self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE) {
            return warn!("metrics: cannot register a scrape: {e}");
        }
        entry.insert(Conn::Scrape(Scrape::new(stream)));
        self.scrapes += 1;
        self.arm(token);
        trace!("{token:?}: new scrape slot");
        self.again.push(token); // the request may be there already
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
            Effect::StartTls => self.start_control_tls(control),
        }
    }

    fn start_control_tls(&mut self, token: Token) {
        let (Some(tls), Some(Conn::Control(c))) = (self.tls.as_ref(), self.conns.get_mut(token.0)) else {
            return;
        };
        match tls.control_session(c.session.id) {
            Ok(session) => {
                debug!("[#{}] starting TLS", c.session.id);
                c.start_tls(session);
            }
            Err(e) => {
                warn!("[#{}] cannot start TLS: {e}", c.session.id);
                self.close(token);
            }
        }
    }

    /// What a data connection opened for this session now must prove, if it is to be TLS.
    fn data_binding(&self, control: Token) -> Option<Binding> {
        let (Some(tls), Some(Conn::Control(c))) = (self.tls.as_ref(), self.conns.get(control.0)) else {
            return None;
        };
        c.session.protects_data().then(|| Binding {
            session_id: c.session.id,
            control_version: c.transport.tls().and_then(|t| t.protocol_version()),
            allow_unresumed: tls.allow_unresumed_data,
        })
    }

    /// The data connection's stream: TLS when the session's binding asks for it.
    fn data_transport(&self, stream: TcpStream, binding: Option<&Binding>) -> io::Result<Transport> {
        match binding {
            Some(_) => Ok(Transport::with_tls(stream, data_tls_session(self.tls.as_ref())?)),
            None => Ok(Transport::plain(stream)),
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
                *token == LISTENER
                    || *token == IMPLICIT_TLS_LISTENER
                    || (conns.contains(token.0) && armed.get(token.0).copied().flatten() == Some(at))
            });
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        for (_, verdict) in self.delayed_verdicts.expired(now) {
            self.deliver_verdict(verdict);
        }
        self.wake_throttled(now);
        for (at, token) in self.deadlines.expired(now) {
            if token == LISTENER || token == IMPLICIT_TLS_LISTENER {
                // A retry after a failed accept; a shutdown since then accepts nobody new.
                if self.draining.is_none() {
                    self.accept_all(token == IMPLICIT_TLS_LISTENER);
                }
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

    fn open_passive(&mut self, control: Token) -> io::Result<u16> {
        let c = self.control(control).ok_or(io::ErrorKind::NotConnected)?;
        let (local_ip, peer_ip, session_id) = (c.session.local().ip(), c.session.peer().ip(), c.session.id);
        let binding = self.data_binding(control);
        let (mut listener, port) = self.bind_passive(local_ip)?;
        let entry = self.conns.vacant_entry();
        let token = Token(entry.key());
        self.poll.registry().register(&mut listener, token, Interest::READABLE)?;
        let opened_at = Instant::now();
        let behind_proxy = self.proxy_protocol;
        entry.insert(Conn::Passive(Passive {
            listener,
            owner: control,
            session_id,
            peer_ip,
            job: None,
            binding,
            opened_at,
            behind_proxy,
        }));
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
        let (owner, session_id, job, binding) =
            (passive.owner, passive.session_id, passive.job.take(), passive.binding);
        let transport = self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE);
        let transport = transport.and_then(|()| self.data_transport(stream, binding.as_ref()));
        let transport = match transport {
            Ok(transport) => transport,
            Err(e) => {
                self.close(token);
                return self.tell_finished(owner, Err(TransferError::Connect(e)));
            }
        };
        // Replacing the slot drops (closes) the listener, which also takes it out of the poll set.
        self.conns[token.0] = Conn::Data(Data::accepted(transport, owner, session_id, job, binding));
        self.arm(token);
        trace!("[#{session_id}] {token:?}: passive → data");
        self.ready(token); // a parked job starts now, not a turn later
    }

    fn start_passive(&mut self, control: Token, job: Job) {
        let data = self.control(control).and_then(|c| c.data);
        // `PROT` may have changed since `PASV`: the transfer command decides whether its data
        // connection is TLS (as in vsftpd), not the protection in force when the port opened.
        let binding = self.data_binding(control);
        match data.and_then(|d| self.conns.get_mut(d.0)) {
            // The client has not connected yet: park the job until it does.
            Some(Conn::Passive(passive)) => {
                passive.binding = binding;
                passive.job = Some(job);
            }
            // Connected already: move the first bytes now, so that a small file is done before
            // the control connection next writes, and its 150 and 226 leave in one packet.
            Some(Conn::Data(data_conn)) if data_conn.is_idle() => {
                let tls = self.tls.as_ref();
                let protected = data_conn.protect(binding, || data_tls_session(tls));
                if let Err(e) = protected {
                    self.close_data_of(control);
                    return self.tell_finished(control, Err(TransferError::Connect(e)));
                }
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
        let binding = self.data_binding(control);
        let token = Token(self.conns.vacant_key());
        let registered = self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE);
        let transport = match registered.and_then(|()| self.data_transport(stream, binding.as_ref())) {
            Ok(transport) => transport,
            Err(e) => return self.tell_finished(control, Err(TransferError::Connect(e))),
        };
        self.conns.insert(Conn::Data(Data::connecting(transport, control, session_id, job, binding)));
        self.arm(token);
        trace!("[#{session_id}] {token:?}: connecting to {addr}");
        if let Some(c) = self.control(control) {
            c.data = Some(token);
        }
    }

    fn tell_finished(&mut self, control: Token, result: Result<u64, TransferError>) {
        let Some(Conn::Control(c)) = self.conns.get_mut(control.0) else { return };
        c.session.finished(result);
        let (events, data) = (c.session.take_events(), c.data);
        if let Some(hooks) = self.upload_hooks.as_mut() {
            for record in events.iter().filter_map(completed_upload) {
                hooks.submit(Upload {
                    session_id: c.session.id,
                    user: record.user.clone(),
                    path: record.path.clone(),
                    real_path: c.session.root().real_path(&record.path),
                    bytes: record.bytes.unwrap_or(0),
                });
            }
        }
        self.again.push(control);
        self.observe(events, data);
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
            Conn::Control(mut c) => {
                c.session.connection_lost();
                let events = c.session.take_events();
                self.observe(events, c.data);
                self.limits.release(c.session.peer().ip());
                drop(c.transport);
                let user = c.session.user().map(|u| format!("{u}@")).unwrap_or_default();
                info!("[#{}] closed ({user}{})", c.session.id, c.session.peer().ip());
                if let Some(data) = c.data {
                    self.close(data);
                }
            }
            Conn::Passive(p) => self.unlink(p.owner, token),
            Conn::Data(d) => self.unlink(d.owner, token),
            Conn::AwaitingHeader(_) => self.awaiting_headers -= 1,
            Conn::Scrape(_) => self.scrapes -= 1,
            Conn::MetricsListener(_) => {}
        }
        trace!("{token:?}: slot closed");
    }

    fn unlink(&mut self, owner: Token, data: Token) {
        if let Some(c) = self.control(owner).filter(|c| c.data == Some(data)) {
            c.data = None;
        }
    }
}

/// An upload that got its `226`: what `--on-upload` runs for.
fn completed_upload(event: &SessionEvent) -> Option<&TransferRecord> {
    match event {
        SessionEvent::TransferEnded(record)
            if record.direction == Direction::In && record.completion == Completion::Complete =>
        {
            Some(record)
        }
        _ => None,
    }
}

/// A server-side TLS session for a data connection (a binding exists only when TLS is configured).
fn data_tls_session(tls: Option<&Tls>) -> io::Result<rustls::ServerConnection> {
    match tls {
        Some(tls) => tls.data_session().map_err(io::Error::other),
        None => Err(io::Error::other("TLS is not configured")),
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
        Outcome::NewScrape(_) => "new-scrape",
        Outcome::RenderMetrics => "render-metrics",
        Outcome::HeaderRead(_) => "header-read",
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

/// `count` listeners on `addr`, sharing its port (`SO_REUSEPORT`) when there are several; with
/// port 0, the first one picks the port and the others join it.
fn listen_all(addr: SocketAddr, count: usize) -> io::Result<Vec<TcpListener>> {
    let shared_port = count > 1;
    let first = listen(addr, shared_port).map_err(|e| context(e, format!("cannot listen on {addr}")))?;
    let bound = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..count {
        listeners.push(listen(bound, true).map_err(|e| context(e, format!("cannot listen on {bound}")))?);
    }
    Ok(listeners)
}

/// A non-blocking listener with a large backlog (mio's own `bind` uses 128). `shared_port`:
/// other workers' listeners bind the same port, and the kernel spreads connections over them.
fn listen(addr: SocketAddr, shared_port: bool) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if shared_port {
        socket.set_reuse_port(true)?;
    }
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
