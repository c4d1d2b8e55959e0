//! `Session`: one client's protocol state, and every transition of it. Sans-IO: it receives
//! typed commands and events from the connection layer, queues replies in its outbox, and asks
//! the event loop for what only the loop can do through a returned `Effect`.
//!
//! ```text
//!  login:   AwaitingUser --USER--> AwaitingPass --PASS(anonymous)--------------> LoggedIn
//!                                       |--PASS(user)--> Verifying --ok--------> LoggedIn
//!                                                             |------failed----> AwaitingUser
//!                                                             `--home missing--> AwaitingUser
//!  data:    Idle --PASV/EPSV--> Opening --listening()--> Passive --RETR/STOR/LIST--> Transferring
//!           Idle --PORT/EPRT--> Active ----------------------------RETR/STOR/LIST--> Transferring
//!           Transferring --finished()--> Idle                                    (226/425/426/451)
//! ```
//! While `Verifying`, and while `Transferring` (except for harmless commands), the connection
//! holds further commands back, so pipelined commands are answered in order.

use super::addr;
use super::command::{Command, Protection, Repr, VERBS};
use super::event::{Completion, Direction, SessionEvent, TransferRecord};
use super::reply::{Code, Reply};
use crate::auth::{self, Account};
use crate::fs::listing::{self, Facts, Format, Listing};
use crate::fs::transfer::{Job, Sink, Source, TransferError};
use crate::fs::{Entry, Root, VPath};
use crate::throttle;
use log::{error, info, warn};
use std::fs;
use std::io::{self, Seek, SeekFrom};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Instant;

/// What every session shares: the served tree and the login and passive-mode policy.
#[derive(Debug)]
pub struct Settings {
    pub root: Root,
    /// Whether `anonymous`/`ftp` may log in (always read-only).
    pub anonymous: bool,
    /// The IPv4 address `PASV` advertises, for servers behind NAT.
    pub pasv_address: Option<Ipv4Addr>,
    /// Failed logins after which the session is closed.
    pub max_login_failures: u32,
    /// Binary transfers move inside the kernel (`sendfile`, `splice`) instead of through our buffer.
    pub zero_copy: bool,
    /// Bytes per second each session's transfers may move (`--max-rate-per-session`).
    pub max_rate_per_session: Option<u64>,
    /// Whether `AUTH TLS` is offered (a certificate is configured).
    pub tls: bool,
    /// No login before `AUTH TLS`, and no transfer in clear (`PROT C`).
    pub require_tls: bool,
}

/// Where the data connection of a transfer comes from.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    /// The session's passive listener (already opened by `Effect::Listen`).
    Passive,
    /// Connect out to the client (`PORT`/`EPRT`).
    Active(SocketAddr),
}

/// A request from the session to the event loop.
pub enum Effect {
    None,
    /// Check this password off the loop, then call `verified`.
    Verify {
        user: String,
        password: String,
    },
    /// Open a passive listener (replacing any data connection), then call `listening`.
    Listen,
    /// Carry out this transfer, then call `finished`.
    Start(Job, Target),
    /// Close the data connection or passive listener, if any, without reporting back
    /// (`ABOR`, `REIN`: the session has replied already).
    CloseData,
    /// Start TLS on the control connection once the `234` queued now has been sent.
    StartTls,
}

enum Login {
    AwaitingUser,
    AwaitingPass { user: String },
    Verifying { user: String },
    LoggedIn(Account),
}

enum DataChannel {
    Idle,
    Opening { extended: bool },
    Passive,
    Active(SocketAddr),
    Transferring(Transfer),
}

/// `"path"` with embedded quotes doubled, as RFC 959 (appendix II) has `257` replies quote.
fn quoted(path: &VPath) -> Vec<u8> {
    let mut out = vec![b'"'];
    for &b in path.as_bytes() {
        out.extend_from_slice(if b == b'"' { b"\"\"" } else { std::slice::from_ref(&b) });
    }
    out.push(b'"');
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Store {
    Replace,
    Append,
    Unique,
}

/// What is being transferred, for the log line and the `TransferRecord` when it ends.
struct Transfer {
    verb: &'static str,
    path: VPath,
    started: Instant,
    /// `None` for listings, which are not file transfers.
    direction: Option<Direction>,
    ascii: bool,
}

pub struct Session {
    pub id: u64,
    peer: SocketAddr,
    local: SocketAddr,
    settings: Arc<Settings>,
    login: Login,
    /// The logged-in user's `/`: the served root, or their home.
    root: Root,
    cwd: VPath,
    repr: Repr,
    data: DataChannel,
    epsv_all: bool,
    /// `REST` offset for the next `RETR`/`STOR`.
    rest: u64,
    /// Set by `RNFR`, used by an immediately following `RNTO`.
    rename_from: Option<VPath>,
    /// `OPTS MLST` selection.
    facts: Facts,
    login_failures: u32,
    quitting: bool,
    outbox: Vec<Reply>,
    /// Bytes per second this session's transfers may move; chosen at login.
    rate_limit: Option<u64>,
    /// The control connection is TLS (after `AUTH TLS`, or from the start on the implicit port).
    control_tls: bool,
    /// `PBSZ` was sent, as RFC 2228 requires before `PROT`.
    pbsz: bool,
    protection: Protection,
    /// Logins and ended transfers, for the loop's metrics and transfer log.
    events: Vec<SessionEvent>,
}

type Handled = Result<Effect, Reply>;

impl Session {
    /// A new session; its outbox already holds the greeting.
    pub fn new(id: u64, peer: SocketAddr, local: SocketAddr, settings: Arc<Settings>) -> Session {
        let mut session = Session {
            id,
            peer,
            local,
            root: settings.root.clone(),
            settings,
            login: Login::AwaitingUser,
            cwd: VPath::root(),
            repr: Repr::Binary,
            data: DataChannel::Idle,
            epsv_all: false,
            rest: 0,
            rename_from: None,
            facts: Facts::ALL,
            login_failures: 0,
            quitting: false,
            outbox: Vec::new(),
            rate_limit: None,
            control_tls: false,
            pbsz: false,
            protection: Protection::Clear,
            events: Vec::new(),
        };
        session.reply(Code::ServiceReady, "mioftpd ready.");
        session
    }

    /// Replies queued since the last call.
    pub fn take_replies(&mut self) -> Vec<Reply> {
        std::mem::take(&mut self.outbox)
    }

    /// Logins and ended transfers since the last call (an empty `Vec` does not allocate).
    pub fn take_events(&mut self) -> Vec<SessionEvent> {
        std::mem::take(&mut self.events)
    }

    /// After `QUIT`: the connection closes once the outbox is flushed.
    pub fn is_quitting(&self) -> bool {
        self.quitting
    }

    /// Bytes per second this session's transfers may move (`None`: no limit of its own; the
    /// global limit still applies).
    pub fn rate_limit(&self) -> Option<u64> {
        self.rate_limit
    }

    /// The tree this session serves: the root, or the logged-in user's home.
    pub fn root(&self) -> &Root {
        &self.root
    }

    pub fn user(&self) -> Option<&str> {
        match &self.login {
            Login::LoggedIn(account) => Some(&account.name),
            _ => None,
        }
    }

    /// Login and data-channel state, for trace logs.
    pub fn state_name(&self) -> String {
        let login = match self.login {
            Login::AwaitingUser => "awaiting-user",
            Login::AwaitingPass { .. } => "awaiting-pass",
            Login::Verifying { .. } => "verifying",
            Login::LoggedIn(_) => "logged-in",
        };
        let data = match self.data {
            DataChannel::Idle => "no-data",
            DataChannel::Opening { .. } => "opening",
            DataChannel::Passive => "passive",
            DataChannel::Active(_) => "active",
            DataChannel::Transferring(_) => "transferring",
        };
        format!("{login}, {data}")
    }

    /// Whether `cmd` may run now, or must wait for a pending login check or transfer to end.
    pub fn can_handle_now(&self, cmd: &Command) -> bool {
        match (&self.login, &self.data) {
            (Login::Verifying { .. }, _) => false,
            (_, DataChannel::Transferring(_)) => matches!(cmd, Command::Noop | Command::Abor | Command::Stat(_)),
            _ => true,
        }
    }

    pub fn handle(&mut self, cmd: Command) -> Effect {
        let logged_in = matches!(self.login, Login::LoggedIn(_));
        if !matches!(cmd, Command::Rnto(_)) {
            self.rename_from = None; // RNTO must follow RNFR directly
        }
        let result = if !logged_in && !cmd.allowed_before_login() {
            Err(Reply::new(Code::NotLoggedIn, "Please login with USER and PASS."))
        } else if self.settings.require_tls && !self.control_tls && matches!(cmd, Command::User(_) | Command::Pass(_)) {
            Err(Reply::new(Code::NotLoggedIn, "TLS required: send AUTH TLS first."))
        } else {
            self.dispatch(cmd)
        };
        result.unwrap_or_else(|reply| {
            self.outbox.push(reply);
            Effect::None
        })
    }

    fn dispatch(&mut self, cmd: Command) -> Handled {
        use Command::*;
        match cmd {
            User(name) => self.user_cmd(name),
            Pass(password) => self.pass(password),
            Quit => {
                self.quitting = true;
                self.ok(Code::Closing, "Goodbye.")
            }
            Noop => self.ok(Code::CommandOkay, "NOOP ok."),
            Syst => self.ok(Code::SystemType, "UNIX Type: L8"),
            Feat => {
                let mlst = format!("MLST {}", self.facts.feat());
                let mut features =
                    vec!["EPRT", "EPSV", "MDTM", "MFMT", &mlst, "PASV", "REST STREAM", "SIZE", "TVFS", "UTF8"];
                if self.settings.tls {
                    features.extend(["AUTH TLS", "PBSZ", "PROT"]);
                }
                self.ok(Code::SystemStatus, format!("Features:\n{}\nEnd", features.join("\n")))
            }
            Help(None) => {
                let verbs: Vec<&str> = VERBS.iter().map(|(verb, _)| *verb).collect();
                let rows: Vec<String> = verbs.chunks(12).map(|row| row.join(" ")).collect();
                self.ok(
                    Code::HelpMessage,
                    format!("The following commands are recognized:\n{}\nHelp OK.", rows.join("\n")),
                )
            }
            Help(Some(verb)) => match VERBS.iter().find(|(v, _)| *v == verb) {
                Some((_, syntax)) => self.ok(Code::HelpMessage, format!("Syntax: {syntax}")),
                None => Err(Reply::new(Code::NotImplemented, format!("Unknown command {verb}."))),
            },
            Acct => self.ok(Code::NotImplementedSuperfluous, "ACCT not needed."),
            Allo => self.ok(Code::NotImplementedSuperfluous, "ALLO not needed."),
            Rein => self.reinitialize(),
            Abor => self.abort(),
            Stat(None) => self.status(),
            Stat(Some(arg)) => self.stat_path(&arg),
            Site(args) => self.site(&args),
            Rest(offset) => {
                self.rest = offset;
                self.ok(Code::PendingFurtherInfo, format!("Restarting at {offset}. Send STOR or RETR."))
            }
            Rnfr(arg) => {
                let path = self.cwd.join(&arg);
                self.writable_entry(&path)?.kind().map_err(|e| Reply::from_io(&e))?;
                self.rename_from = Some(path);
                self.ok(Code::PendingFurtherInfo, "Ready for RNTO.")
            }
            Rnto(arg) => {
                let from =
                    self.rename_from.take().ok_or_else(|| Reply::new(Code::BadSequence, "RNFR required first."))?;
                let (from, to) = (self.writable_entry(&from)?, self.writable_entry(&self.cwd.join(&arg))?);
                from.rename_to(&to).map_err(|e| Reply::from_io(&e))?;
                self.ok(Code::FileActionOkay, "Rename successful.")
            }
            Appe(arg) => self.store(&arg, Store::Append),
            Stou(arg) => self.store(arg.as_deref().unwrap_or(b"file"), Store::Unique),
            Mlst(arg) => self.mlst(arg.as_deref()),
            Mlsd(arg) => self.list(arg, Format::Machine { facts: self.facts, writable: self.can_write() }),
            Mfmt(time, arg) => {
                let path = self.cwd.join(&arg);
                self.writable_entry(&path)?;
                self.root.open(&path).and_then(|f| f.set_modified(time)).map_err(|e| Reply::from_io(&e))?;
                let mut text = format!("Modify={}; ", listing::mdtm(time)).into_bytes();
                text.extend_from_slice(&arg);
                self.ok(Code::FileStatus, text)
            }
            Opts(option) => self.opts(&option),
            Pwd => {
                let text = [quoted(&self.cwd), b" is the current directory.".to_vec()].concat();
                self.ok(Code::PathCreated, text)
            }
            Cwd(arg) => self.cwd(&arg),
            Cdup => self.cwd(b".."),
            Type(repr) => {
                self.repr = repr;
                let name = if repr == Repr::Ascii { "ASCII" } else { "Binary" };
                self.ok(Code::CommandOkay, format!("Switching to {name} mode."))
            }
            Mode => self.ok(Code::CommandOkay, "Mode set to S."),
            Stru => self.ok(Code::CommandOkay, "Structure set to F."),
            Pasv => self.passive(false),
            Epsv => self.passive(true),
            EpsvAll => {
                self.epsv_all = true;
                self.ok(Code::CommandOkay, "EPSV ALL ok.")
            }
            Port(target) => self.active(target),
            List(arg) => self.list(arg, Format::Long),
            Nlst(arg) => self.list(arg, Format::Names),
            Retr(arg) => self.retr(&arg),
            Stor(arg) => self.store(&arg, Store::Replace),
            Size(arg) => {
                let meta = self.regular_file(&arg)?;
                self.ok(Code::FileStatus, meta.len().to_string())
            }
            Mdtm(arg) => {
                let meta = self.regular_file(&arg)?;
                self.ok(Code::FileStatus, listing::mdtm(meta.modified().map_err(|e| Reply::from_io(&e))?))
            }
            Mkd(arg) => {
                let path = self.cwd.join(&arg);
                self.writable_entry(&path)?.create_dir().map_err(|e| Reply::from_io(&e))?;
                self.ok(Code::PathCreated, [quoted(&path), b" created.".to_vec()].concat())
            }
            Rmd(arg) => {
                let path = self.cwd.join(&arg);
                self.writable_entry(&path)?.remove_dir().map_err(|e| Reply::from_io(&e))?;
                self.ok(Code::FileActionOkay, "Directory removed.")
            }
            Dele(arg) => {
                let path = self.cwd.join(&arg);
                self.writable_entry(&path)?.remove_file().map_err(|e| Reply::from_io(&e))?;
                self.ok(Code::FileActionOkay, "File deleted.")
            }
            AuthTls => self.auth_tls(),
            Pbsz => {
                self.require_control_tls("PBSZ")?;
                self.pbsz = true;
                self.ok(Code::CommandOkay, "PBSZ=0")
            }
            Prot(level) => self.prot(level),
            Ccc => {
                self.require_control_tls("CCC")?;
                Err(Reply::new(Code::DeniedByPolicy, "CCC refused: the control connection stays protected."))
            }
        }
    }

    // ---- TLS (RFC 4217) ----

    fn auth_tls(&mut self) -> Handled {
        if !self.settings.tls {
            return Err(Reply::new(Code::ParameterNotImplemented, "AUTH TLS is not available: no certificate."));
        }
        if self.control_tls {
            return Err(Reply::new(Code::BadSequence, "TLS is already on."));
        }
        if self.is_logged_in() {
            return Err(Reply::new(Code::BadSequence, "AUTH TLS must come before login."));
        }
        // A user name sent in clear does not carry over into the protected session.
        self.login = Login::AwaitingUser;
        self.reply(Code::SecurityExchangeDone, "AUTH TLS successful.");
        self.tls_started();
        Ok(Effect::StartTls)
    }

    /// The control connection is (about to be) TLS: `AUTH TLS`, or the implicit TLS port.
    pub fn tls_started(&mut self) {
        self.control_tls = true;
    }

    fn require_control_tls(&self, verb: &str) -> Result<(), Reply> {
        if self.control_tls {
            Ok(())
        } else {
            Err(Reply::new(Code::BadSequence, format!("{verb} needs AUTH TLS first.")))
        }
    }

    fn prot(&mut self, level: Protection) -> Handled {
        self.require_control_tls("PROT")?;
        if !self.pbsz {
            return Err(Reply::new(Code::BadSequence, "PROT needs PBSZ first."));
        }
        if level == Protection::Clear && self.settings.require_tls {
            return Err(Reply::new(Code::DeniedByPolicy, "PROT C refused: data must be protected (PROT P)."));
        }
        self.protection = level;
        let name = if level == Protection::Private { "P" } else { "C" };
        self.ok(Code::CommandOkay, format!("Protection level set to {name}."))
    }

    /// Whether data connections opened now must be TLS (`PROT P`).
    pub fn protects_data(&self) -> bool {
        self.protection == Protection::Private
    }

    fn reply(&mut self, code: Code, text: impl Into<Vec<u8>>) {
        self.outbox.push(Reply::new(code, text));
    }

    fn ok(&mut self, code: Code, text: impl Into<Vec<u8>>) -> Handled {
        self.reply(code, text);
        Ok(Effect::None)
    }

    // ---- login ----

    fn user_cmd(&mut self, name: String) -> Handled {
        if matches!(self.login, Login::LoggedIn(_)) {
            return Err(Reply::new(Code::NotLoggedIn, "Can't change to another user."));
        }
        let text = if auth::is_anonymous_name(&name) && self.settings.anonymous {
            "Anonymous login ok, send your e-mail address as password."
        } else {
            "Please specify the password."
        };
        self.login = Login::AwaitingPass { user: name };
        self.ok(Code::NeedPassword, text)
    }

    fn pass(&mut self, password: String) -> Handled {
        let user = match std::mem::replace(&mut self.login, Login::AwaitingUser) {
            Login::AwaitingPass { user } => user,
            Login::LoggedIn(account) => {
                self.login = Login::LoggedIn(account);
                return self.ok(Code::LoggedIn, "Already logged in.");
            }
            other => {
                self.login = other;
                return Err(Reply::new(Code::BadSequence, "Login with USER first."));
            }
        };
        let anonymous = auth::is_anonymous_name(&user) && self.settings.anonymous;
        self.login = Login::Verifying { user: user.clone() };
        if anonymous {
            self.verified(Some(Account::anonymous())); // nothing to check: no trip to the verifier
            return Ok(Effect::None);
        }
        Ok(Effect::Verify { user, password })
    }

    /// The answer to `Effect::Verify`.
    pub fn verified(&mut self, account: Option<Account>) {
        let user = match std::mem::replace(&mut self.login, Login::AwaitingUser) {
            Login::Verifying { user } => user,
            other => {
                self.login = other;
                return;
            }
        };
        match account {
            Some(account) => {
                // Opened at each login (a path lookup and one open, like a CWD), not when the users
                // file is loaded: a home created later works without a reload, and idle accounts
                // hold no descriptors.
                let root = match &account.home {
                    None => self.settings.root.clone(),
                    Some(home) => match self.settings.root.home(home) {
                        Ok(root) => root,
                        // The admin's mistake: the log says where; the client is not told the path.
                        Err(e) => {
                            error!("[#{}] login {} refused: home {}: {e}", self.id, account.name, home.display());
                            return self.reply(Code::NotLoggedIn, "Home directory not available.");
                        }
                    },
                };
                let access = if account.writable { "read-write" } else { "read-only" };
                let tls = if self.control_tls { ", TLS" } else { "" };
                let home =
                    account.home.as_ref().map(|_| format!(", home {}", root.dir().display())).unwrap_or_default();
                info!("[#{}] login {} from {} ({access}{home}{tls})", self.id, account.name, self.peer.ip());
                self.reply(Code::LoggedIn, "Login successful.");
                self.root = root;
                self.rate_limit = throttle::stricter(self.settings.max_rate_per_session, account.max_rate);
                self.login = Login::LoggedIn(account);
                self.events.push(SessionEvent::LoggedIn);
            }
            None => {
                self.events.push(SessionEvent::LoginFailed);
                self.login_failures += 1;
                warn!("[#{}] login failed for {:?} from {} ({})", self.id, user, self.peer.ip(), self.login_failures);
                if self.login_failures >= self.settings.max_login_failures {
                    self.reply(Code::ServiceNotAvailable, "Too many failed logins; closing.");
                    self.quitting = true;
                } else {
                    self.reply(Code::NotLoggedIn, "Login incorrect.");
                }
            }
        }
    }

    /// The server's address as this client reached it.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn is_logged_in(&self) -> bool {
        matches!(self.login, Login::LoggedIn(_))
    }

    pub fn is_transferring(&self) -> bool {
        matches!(self.data, DataChannel::Transferring(_))
    }

    /// The server is shutting down: an idle session is told so and closed.
    pub fn shutting_down(&mut self) {
        if !self.quitting {
            self.reply(Code::ServiceNotAvailable, "Server shutting down.");
            self.quitting = true;
        }
    }

    /// The session was silent too long: say so before the connection closes.
    pub fn timed_out(&mut self) {
        info!("[#{}] timed out", self.id);
        self.reply(Code::ServiceNotAvailable, "Timeout; closing control connection.");
        self.quitting = true;
    }

    fn opts(&mut self, option: &str) -> Handled {
        let words: Vec<String> = option.split_whitespace().map(str::to_ascii_uppercase).collect();
        match words.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["UTF8", "ON"] | ["UTF8"] => self.ok(Code::CommandOkay, "Always in UTF8 mode."),
            ["UTF8", _] => Err(Reply::new(Code::ParameterNotImplemented, "UTF8 cannot be turned off.")),
            ["MLST"] | ["MLST", _] => {
                self.facts = Facts::parse(option.split_whitespace().nth(1).unwrap_or(""));
                self.ok(Code::CommandOkay, format!("MLST OPTS {}", self.facts.selected()))
            }
            _ => Err(Reply::new(Code::ParameterSyntaxError, "Option not understood.")),
        }
    }

    // ---- paths ----

    fn cwd(&mut self, arg: &[u8]) -> Handled {
        let path = self.cwd.join(arg);
        if !self.root.metadata(&path).map_err(|e| Reply::from_io(&e))?.is_dir() {
            return Err(Reply::new(Code::FileUnavailable, "Not a directory."));
        }
        self.cwd = path;
        self.ok(Code::FileActionOkay, "Directory successfully changed.")
    }

    fn regular_file(&self, arg: &[u8]) -> Result<fs::Metadata, Reply> {
        let meta = self.root.metadata(&self.cwd.join(arg)).map_err(|e| Reply::from_io(&e))?;
        if !meta.is_file() {
            return Err(Reply::new(Code::FileUnavailable, "Not a regular file."));
        }
        Ok(meta)
    }

    /// The directory entry `path` names, for a modifying command, if this account may write.
    fn writable_entry(&self, path: &VPath) -> Result<Entry, Reply> {
        if !self.can_write() {
            return Err(Reply::new(Code::FileUnavailable, "Permission denied."));
        }
        self.root.entry(path).map_err(|e| Reply::from_io(&e))
    }

    fn can_write(&self) -> bool {
        matches!(&self.login, Login::LoggedIn(account) if account.writable)
    }

    // ---- data connections ----

    fn passive(&mut self, extended: bool) -> Handled {
        if self.epsv_all && !extended {
            return Err(Reply::new(Code::BadSequence, "Only EPSV is allowed after EPSV ALL."));
        }
        if !extended && self.pasv_ip().is_none() {
            return Err(Reply::new(Code::CantOpenDataConnection, "PASV is IPv4 only; use EPSV."));
        }
        self.data = DataChannel::Opening { extended };
        Ok(Effect::Listen)
    }

    fn pasv_ip(&self) -> Option<Ipv4Addr> {
        self.settings.pasv_address.or(match addr::canonical(self.local.ip()) {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(_) => None,
        })
    }

    /// The answer to `Effect::Listen`: the passive listener's port, or why there is none.
    pub fn listening(&mut self, port: io::Result<u16>) {
        let DataChannel::Opening { extended } = self.data else {
            return;
        };
        match (port, self.pasv_ip()) {
            (Ok(port), _) if extended => {
                self.data = DataChannel::Passive;
                self.reply(Code::EnteringExtendedPassive, addr::format_epsv(port));
            }
            (Ok(port), Some(ip)) => {
                self.data = DataChannel::Passive;
                self.reply(Code::EnteringPassive, addr::format_pasv(ip, port));
            }
            (result, _) => {
                self.data = DataChannel::Idle;
                let why = result.err().map_or_else(|| "no IPv4 address".to_string(), |e| e.to_string());
                warn!("[#{}] cannot open a passive listener: {why}", self.id);
                self.reply(Code::CantOpenDataConnection, "Can't open passive connection.");
            }
        }
    }

    fn active(&mut self, target: SocketAddr) -> Handled {
        if self.epsv_all {
            return Err(Reply::new(Code::BadSequence, "Only EPSV is allowed after EPSV ALL."));
        }
        if let Err(why) = addr::bounce_check(target, self.peer.ip()) {
            warn!("[#{}] refused active connection to {target}: {why}", self.id);
            return Err(Reply::new(Code::ParameterNotImplemented, why));
        }
        // A passive listener opened earlier would otherwise stay open, unused, until the next transfer.
        let effect = if matches!(self.data, DataChannel::Passive) { Effect::CloseData } else { Effect::None };
        self.data = DataChannel::Active(target);
        self.reply(Code::CommandOkay, "PORT command successful. Consider using PASV.");
        Ok(effect)
    }

    /// Queues `150` and asks the loop to run `job` over the prepared data connection.
    fn start(&mut self, job: Job, verb: &'static str, path: VPath) -> Handled {
        let target = self.data_target()?;
        let text = if verb == "STOU" {
            // RFC 1123 §4.1.2.9: the one preliminary reply names the file chosen.
            [b"FILE: ".as_slice(), path.file_name()].concat()
        } else {
            let mode = if self.repr == Repr::Ascii { "ASCII" } else { "BINARY" };
            [format!("Opening {mode} mode data connection for ").as_bytes(), path.as_bytes(), b"."].concat()
        };
        self.reply(Code::FileStatusOkay, text);
        let direction = match &job {
            Job::Send(Source::Listing(_)) => None,
            Job::Send(_) => Some(Direction::Out),
            Job::Receive(_) => Some(Direction::In),
        };
        let ascii = self.repr == Repr::Ascii;
        self.data = DataChannel::Transferring(Transfer { verb, path, started: Instant::now(), direction, ascii });
        Ok(Effect::Start(job, target))
    }

    fn data_target(&self) -> Result<Target, Reply> {
        if self.settings.require_tls && !self.protects_data() {
            return Err(Reply::new(Code::ProtLevelRefused, "Data connections need PROT P here."));
        }
        match self.data {
            DataChannel::Passive => Ok(Target::Passive),
            DataChannel::Active(addr) => Ok(Target::Active(addr)),
            _ => Err(Reply::new(Code::CantOpenDataConnection, "Use PORT or PASV first.")),
        }
    }

    fn list(&mut self, arg: Option<Vec<u8>>, format: Format) -> Handled {
        self.data_target()?;
        let mut arg = arg;
        let mut path = arg.as_deref().map_or_else(|| self.cwd.clone(), |a| self.cwd.join(a));
        let mut pattern = None;
        // `NLST *.txt` (mget) and `LIST dir/a?c`: a wildcard in the last component, when no file
        // has that literal name, lists the matching entries of the directory.
        if let Some(a) = arg.as_deref()
            && listing::is_glob(path.file_name())
            && !matches!(format, Format::Machine { .. })
            && self.root.metadata(&path).is_err()
        {
            pattern = Some(path.file_name().to_vec());
            let a = a.strip_suffix(b"/").unwrap_or(a); // `NLST sub/*.txt/` names the same pattern
            let dir = a.iter().rposition(|&b| b == b'/').map(|i| a[..i.max(1)].to_vec());
            path = path.parent();
            arg = dir;
        }
        let root = &self.root;
        if matches!(format, Format::Machine { .. }) && !root.metadata(&path).map_err(|e| Reply::from_io(&e))?.is_dir() {
            return Err(Reply::new(Code::ParameterSyntaxError, "MLSD needs a directory; use MLST for a file."));
        }
        let mut listing = Listing::open(root, &path, arg.as_deref(), format).map_err(|e| Reply::from_io(&e))?;
        if let Some(pattern) = pattern {
            listing.only_matching(pattern);
        }
        let verb = match format {
            Format::Long => "LIST",
            Format::Names => "NLST",
            Format::Machine { .. } => "MLSD",
        };
        self.start(Job::Send(Source::Listing(Box::new(listing))), verb, path)
    }

    fn retr(&mut self, arg: &[u8]) -> Handled {
        let offset = std::mem::take(&mut self.rest);
        self.data_target()?;
        let path = self.cwd.join(arg);
        let mut file = self.root.open(&path).map_err(|e| Reply::from_io(&e))?;
        let meta = file.metadata().map_err(|e| Reply::from_io(&e))?;
        if !meta.is_file() {
            return Err(Reply::new(Code::FileUnavailable, "Not a regular file."));
        }
        if offset > 0 {
            file.seek(SeekFrom::Start(offset))
                .map_err(|_| Reply::new(Code::RequestedActionNotTaken, "Invalid restart position."))?;
        }
        let size = meta.len().saturating_sub(offset);
        self.start(Job::Send(Source::file(file, size, self.repr == Repr::Ascii, self.settings.zero_copy)), "RETR", path)
    }

    fn store(&mut self, arg: &[u8], how: Store) -> Handled {
        let offset = std::mem::take(&mut self.rest);
        self.data_target()?;
        let ascii = self.repr == Repr::Ascii;
        let io_reply = |e: io::Error| match e.kind() {
            io::ErrorKind::InvalidInput => Reply::new(Code::RequestedActionNotTaken, format!("{e}.")),
            _ => Reply::from_io(&e),
        };
        let (sink, path, verb) = match how {
            Store::Replace if offset == 0 => {
                let path = self.cwd.join(arg);
                (Sink::replace(self.writable_entry(&path)?, ascii).map_err(io_reply)?, path, "STOR")
            }
            Store::Replace | Store::Append => {
                let path = self.cwd.join(arg);
                let (at, verb) = if how == Store::Append { (None, "APPE") } else { (Some(offset), "STOR") };
                (Sink::resume(self.writable_entry(&path)?, at, ascii).map_err(io_reply)?, path, verb)
            }
            Store::Unique => {
                let (sink, path) = self.unique_sink(&self.cwd.join(arg), ascii)?;
                (sink, path, "STOU")
            }
        };
        self.start(Job::Receive(sink.zero_copy(self.settings.zero_copy)), verb, path)
    }

    /// `base`, or `base.1`, `base.2`… — the first name that does not exist yet.
    fn unique_sink(&self, base: &VPath, ascii: bool) -> Result<(Sink, VPath), Reply> {
        for n in 0..1000 {
            let path = match n {
                0 => base.clone(),
                n => base.parent().join(&[base.file_name(), format!(".{n}").as_bytes()].concat()),
            };
            match Sink::unique(self.writable_entry(&path)?, ascii) {
                Ok(sink) => return Ok((sink, path)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Reply::from_io(&e)),
            }
        }
        Err(Reply::new(Code::FileUnavailable, "No unique name available."))
    }

    fn abort(&mut self) -> Handled {
        self.rest = 0;
        match std::mem::replace(&mut self.data, DataChannel::Idle) {
            DataChannel::Transferring(transfer) => {
                let secs = transfer.started.elapsed().as_secs_f64();
                info!("{}: aborted by the client after {secs:.3} s", self.describe(&transfer));
                self.reply(Code::TransferAborted, "Transfer aborted.");
                self.reply(Code::ClosingDataConnection, "Abort successful.");
                self.transfer_ended(transfer, Completion::Aborted, None);
                Ok(Effect::CloseData)
            }
            DataChannel::Idle => self.ok(Code::ClosingDataConnection, "No transfer to abort."),
            _ => {
                self.reply(Code::DataConnectionOpen, "No transfer to abort; data connection closed.");
                Ok(Effect::CloseData)
            }
        }
    }

    fn reinitialize(&mut self) -> Handled {
        if let Some(user) = self.user() {
            info!("[#{}] {user} logged out (REIN)", self.id);
        }
        self.login = Login::AwaitingUser;
        self.rate_limit = None;
        self.root = self.settings.root.clone();
        self.cwd = VPath::root();
        self.repr = Repr::Binary;
        self.data = DataChannel::Idle;
        self.epsv_all = false;
        self.rest = 0;
        self.facts = Facts::ALL;
        self.reply(Code::ServiceReady, "Ready for new user.");
        Ok(Effect::CloseData)
    }

    fn status(&mut self) -> Handled {
        let user = self.user().map_or_else(|| "Not logged in".to_string(), |u| format!("Logged in as {u}"));
        let repr = if self.repr == Repr::Ascii { "ASCII" } else { "BINARY" };
        let data = match &self.data {
            DataChannel::Transferring(t) => format!("{} {} in progress", t.verb, t.path.display()),
            DataChannel::Passive => "passive listener open".into(),
            DataChannel::Active(addr) => format!("active, to {addr}"),
            DataChannel::Idle | DataChannel::Opening { .. } => "no data connection".into(),
        };
        let peer = self.peer.ip();
        let text = format!(
            "mioftpd status:\nConnected from {peer}\n{user}\nTYPE: {repr}; STRU: F; MODE: S\nData: {data}\nEnd of status."
        );
        self.ok(Code::SystemStatus, text)
    }

    /// `STAT path`: a listing over the control connection. Capped, because unlike a data
    /// connection a reply is built whole before it is sent.
    fn stat_path(&mut self, arg: &[u8]) -> Handled {
        const MAX_STAT_BYTES: usize = 256 * 1024;
        let path = self.cwd.join(arg);
        let root = &self.root;
        let mut listing = Listing::open(root, &path, Some(arg), Format::Long).map_err(|e| Reply::from_io(&e))?;
        let mut text = [b"Status of ".as_slice(), path.as_bytes(), b":\n"].concat();
        let mut chunk = vec![0u8; listing::MAX_LINE * 4];
        loop {
            let n = listing.produce(&mut chunk).map_err(|e| Reply::from_io(&e))?;
            if n == 0 {
                break;
            }
            text.extend(chunk[..n].iter().filter(|&&b| b != b'\r'));
            if text.len() > MAX_STAT_BYTES {
                text.extend_from_slice(b"... (listing truncated; use LIST)\n");
                break;
            }
        }
        text.extend_from_slice(b"End of status.");
        self.ok(Code::FileStatus, text)
    }

    fn site(&mut self, args: &str) -> Handled {
        let mut words = args.trim_start().splitn(3, ' ');
        match words.next().map(str::to_ascii_uppercase).as_deref() {
            Some("HELP") => self.ok(Code::HelpMessage, "SITE commands: CHMOD HELP"),
            Some("CHMOD") => {
                let usage = || Reply::new(Code::ParameterSyntaxError, "Syntax: SITE CHMOD <octal mode> <path>");
                let (Some(mode), Some(arg)) = (words.next(), words.next()) else { return Err(usage()) };
                let mode = u32::from_str_radix(mode, 8).ok().filter(|m| *m <= 0o7777).ok_or_else(usage)?;
                let path = self.cwd.join(arg.as_bytes());
                self.writable_entry(&path)?;
                // fchmod on a descriptor opened beneath the root: a path-based chmod would follow a
                // symlink swapped in meanwhile.
                let file = self.root.open(&path).map_err(|e| Reply::from_io(&e))?;
                file.set_permissions(fs::Permissions::from_mode(mode)).map_err(|e| Reply::from_io(&e))?;
                self.ok(Code::CommandOkay, "SITE CHMOD command ok.")
            }
            _ => Err(Reply::new(Code::ParameterNotImplemented, "Unknown SITE command; try SITE HELP.")),
        }
    }

    /// `MLST path`: the facts of one entry, over the control connection.
    fn mlst(&mut self, arg: Option<&[u8]>) -> Handled {
        let path = arg.map_or_else(|| self.cwd.clone(), |a| self.cwd.join(a));
        let meta = self.root.metadata(&path).map_err(|e| Reply::from_io(&e))?;
        let mut line = Vec::new();
        listing::facts_line(&mut line, path.as_bytes(), &meta, None, self.facts, self.can_write());
        let text = [b"Listing ".as_slice(), path.as_bytes(), b"\n", &line, b"\nEnd."].concat();
        self.ok(Code::FileActionOkay, text)
    }

    /// The answer to `Effect::Start`: how the transfer ended.
    pub fn finished(&mut self, result: Result<u64, TransferError>) {
        let DataChannel::Transferring(transfer) = std::mem::replace(&mut self.data, DataChannel::Idle) else {
            return;
        };
        let secs = transfer.started.elapsed().as_secs_f64();
        let what = self.describe(&transfer);
        let (completion, bytes) = match &result {
            Ok(bytes) => (Completion::Complete, Some(*bytes)),
            Err(TransferError::Connect(_)) => (Completion::NoConnection, Some(0)),
            Err(TransferError::Network(_)) => (Completion::Aborted, None),
            Err(TransferError::Local(_)) => (Completion::Failed, None),
        };
        match result {
            Ok(bytes) => {
                let rate = bytes as f64 / secs.max(1e-6) / (1024.0 * 1024.0);
                info!("{what}: {bytes} bytes in {secs:.3} s ({rate:.1} MiB/s)");
                self.reply(Code::ClosingDataConnection, "Transfer complete.");
            }
            Err(TransferError::Connect(e)) => {
                warn!("{what}: data connection failed: {e}");
                self.reply(Code::CantOpenDataConnection, "Can't open data connection.");
            }
            Err(TransferError::Network(e)) => {
                warn!("{what}: aborted after {secs:.3} s: {e}");
                self.reply(Code::TransferAborted, "Connection closed; transfer aborted.");
            }
            Err(TransferError::Local(e)) => {
                warn!("{what}: local error: {e}");
                self.outbox.push(Reply::from_io(&e));
            }
        }
        self.transfer_ended(transfer, completion, bytes);
    }

    /// The control connection is closing while a transfer runs (the client went away, or the
    /// server stops): the transfer ends with it.
    pub fn connection_lost(&mut self) {
        if let DataChannel::Transferring(transfer) = std::mem::replace(&mut self.data, DataChannel::Idle) {
            let secs = transfer.started.elapsed().as_secs_f64();
            info!("{}: cut off after {secs:.3} s", self.describe(&transfer));
            self.transfer_ended(transfer, Completion::Aborted, None);
        }
    }

    /// `[#4] alice@192.0.2.7 RETR /big.bin`: who moved what, for the transfer's log lines.
    fn describe(&self, transfer: &Transfer) -> String {
        let user = self.user().unwrap_or("-");
        format!("[#{}] {user}@{} {} {}", self.id, self.peer.ip(), transfer.verb, transfer.path.display())
    }

    /// Reports an ended file transfer to the loop (listings are not reported).
    fn transfer_ended(&mut self, transfer: Transfer, completion: Completion, bytes: Option<u64>) {
        let (Some(direction), Login::LoggedIn(account)) = (transfer.direction, &self.login) else {
            return;
        };
        self.events.push(SessionEvent::TransferEnded(TransferRecord {
            direction,
            path: transfer.path,
            ascii: transfer.ascii,
            user: account.name.clone(),
            anonymous: auth::is_anonymous_name(&account.name) && self.settings.anonymous,
            peer: self.peer.ip(),
            started: transfer.started,
            bytes,
            completion,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ftp::command::parse;

    struct Fixture {
        session: Session,
        dir: std::path::PathBuf,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }

    fn fixture(name: &str, anonymous: bool) -> Fixture {
        fixture_with(name, anonymous, |_| {})
    }

    fn fixture_with(name: &str, anonymous: bool, adjust: impl FnOnce(&mut Settings)) -> Fixture {
        let dir = std::env::temp_dir().join(format!("mioftpd-session-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("file.txt"), b"hello\n").unwrap();
        let mut settings = Settings {
            root: Root::new(&dir).unwrap(),
            anonymous,
            pasv_address: None,
            max_login_failures: 3,
            zero_copy: true,
            max_rate_per_session: Some(1 << 20),
            tls: false,
            require_tls: false,
        };
        adjust(&mut settings);
        let settings = Arc::new(settings);
        let peer = "127.0.0.1:40000".parse().unwrap();
        let local = "127.0.0.1:2121".parse().unwrap();
        let mut session = Session::new(1, peer, local, settings);
        assert_eq!(codes(&mut session), [220]);
        Fixture { session, dir }
    }

    fn codes(session: &mut Session) -> Vec<u16> {
        session.take_replies().iter().map(|r| r.code as u16).collect()
    }

    /// Sends one line; returns the reply codes and whether an effect was requested.
    fn send(session: &mut Session, line: &str) -> (Vec<u16>, Effect) {
        let effect = match parse(line.as_bytes()) {
            Ok(cmd) => session.handle(cmd),
            Err(reply) => {
                session.outbox.push(reply);
                Effect::None
            }
        };
        (codes(session), effect)
    }

    fn code_of(session: &mut Session, line: &str) -> Vec<u16> {
        send(session, line).0
    }

    fn login_anonymous(session: &mut Session) {
        assert_eq!(code_of(session, "USER anonymous"), [331]);
        assert_eq!(code_of(session, "PASS guest@"), [230]);
    }

    #[test]
    fn commands_before_login_get_530() {
        let mut f = fixture("prelogin", true);
        let s = &mut f.session;
        for line in ["PWD", "CWD sub", "LIST", "RETR file.txt", "PASV", "MKD x"] {
            assert_eq!(code_of(s, line), [530], "{line}");
        }
        assert_eq!(code_of(s, "SYST"), [215]);
        assert_eq!(code_of(s, "FEAT"), [211]);
        assert_eq!(code_of(s, "NOOP"), [200]);
        assert_eq!(code_of(s, "PASS x"), [503]);
    }

    #[test]
    fn auth_tls_then_pbsz_then_prot() {
        let mut f = fixture_with("tls-seq", true, |s| s.tls = true);
        let s = &mut f.session;
        assert_eq!(code_of(s, "USER anonymous"), [331]);
        let (codes, effect) = send(s, "AUTH TLS");
        assert_eq!(codes, [234]);
        assert!(matches!(effect, Effect::StartTls));
        assert_eq!(code_of(s, "PASS guest@"), [503], "a USER sent in clear must not carry over");
        assert_eq!(code_of(s, "AUTH TLS"), [503]);
        assert_eq!(code_of(s, "PROT P"), [503], "PBSZ comes first");
        assert_eq!(code_of(s, "PBSZ 0"), [200]);
        assert_eq!(code_of(s, "PROT P"), [200]);
        assert!(s.protects_data());
        assert_eq!(code_of(s, "PROT C"), [200]);
        assert!(!s.protects_data());
        assert_eq!(code_of(s, "CCC"), [534]);
        login_anonymous(s);
        assert_eq!(code_of(s, "AUTH TLS"), [503]);
    }

    #[test]
    fn require_tls_refuses_clear_logins_and_clear_data() {
        let mut f = fixture_with("tls-req", true, |s| {
            s.tls = true;
            s.require_tls = true;
        });
        let s = &mut f.session;
        assert_eq!(code_of(s, "USER anonymous"), [530]);
        assert_eq!(code_of(s, "AUTH TLS"), [234]);
        login_anonymous(s);
        assert_eq!(code_of(s, "PBSZ 0"), [200]);
        assert_eq!(code_of(s, "PROT C"), [534]);
        assert_eq!(code_of(s, "PORT 127,0,0,1,200,10"), [200]);
        assert_eq!(code_of(s, "LIST"), [521], "PROT is still C");
        assert_eq!(code_of(s, "PROT P"), [200]);
        assert!(matches!(send(s, "LIST").1, Effect::Start(..)));
    }

    #[test]
    fn anonymous_is_read_only() {
        let mut f = fixture("anon", true);
        let s = &mut f.session;
        login_anonymous(s);
        assert_eq!(s.user(), Some("anonymous"));
        assert_eq!(code_of(s, "MKD new"), [550]);
        assert_eq!(code_of(s, "DELE file.txt"), [550]);
        assert!(f.dir.join("file.txt").exists());
        assert!(!f.dir.join("new").exists());
    }

    #[test]
    fn anonymous_disabled_goes_to_the_verifier() {
        let mut f = fixture("noanon", false);
        let s = &mut f.session;
        assert_eq!(code_of(s, "USER anonymous"), [331]);
        let (codes_now, effect) = send(s, "PASS x");
        assert!(codes_now.is_empty());
        assert!(matches!(effect, Effect::Verify { ref user, .. } if user == "anonymous"));
        assert!(!s.can_handle_now(&Command::Pwd), "commands wait for the verdict");
        s.verified(None);
        assert_eq!(codes(s), [530]);
        assert_eq!(code_of(s, "PWD"), [530]);
    }

    #[test]
    fn repeated_login_failures_end_the_session() {
        let mut f = fixture("failures", false);
        let s = &mut f.session;
        for _ in 0..2 {
            code_of(s, "USER alice");
            send(s, "PASS bad");
            s.verified(None);
            assert_eq!(codes(s), [530]);
        }
        assert!(!s.is_quitting());
        code_of(s, "USER alice");
        send(s, "PASS bad");
        s.verified(None);
        assert_eq!(codes(s), [421]);
        assert!(s.is_quitting());
    }

    #[test]
    fn named_user_login_and_writes() {
        let mut f = fixture("named", false);
        let s = &mut f.session;
        code_of(s, "USER alice");
        let (_, effect) = send(s, "PASS pw");
        assert!(matches!(effect, Effect::Verify { ref password, .. } if password == "pw"));
        s.verified(Some(Account { name: "alice".into(), writable: true, ..Account::default() }));
        assert_eq!(codes(s), [230]);
        assert_eq!(code_of(s, "MKD new dir"), [257]);
        assert!(f.dir.join("new dir").is_dir());
        assert_eq!(code_of(s, "RMD new dir"), [250]);
        assert_eq!(code_of(s, "DELE file.txt"), [250]);
        assert!(!f.dir.join("file.txt").exists());
        assert_eq!(code_of(s, "DELE file.txt"), [550]);
        assert_eq!(code_of(s, "USER bob"), [530]);
    }

    #[test]
    fn a_home_becomes_the_users_root_and_a_missing_one_refuses_the_login() {
        let mut f = fixture("home", true);
        fs::write(f.dir.join("sub/inner.txt"), b"inner").unwrap();
        let s = &mut f.session;
        let alice = |home: &str| Account { name: "alice".into(), home: Some(home.into()), ..Account::default() };
        code_of(s, "USER alice");
        send(s, "PASS pw");
        s.verified(Some(alice("missing")));
        assert_eq!(codes(s), [530]);
        assert!(!s.is_logged_in());
        code_of(s, "USER alice");
        send(s, "PASS pw");
        s.verified(Some(alice("sub")));
        assert_eq!(codes(s), [230]);
        assert_eq!(code_of(s, "SIZE /inner.txt"), [213]);
        assert_eq!(code_of(s, "SIZE ../file.txt"), [550], "the served root is outside the home");
        assert_eq!(code_of(s, "REIN"), [220]);
        login_anonymous(s);
        assert_eq!(code_of(s, "SIZE /file.txt"), [213], "REIN goes back to the served root");
    }

    #[test]
    fn navigation_stays_inside_the_root() {
        let mut f = fixture("nav", true);
        let s = &mut f.session;
        login_anonymous(s);
        assert_eq!(code_of(s, "CWD sub"), [250]);
        s.handle(Command::Pwd);
        assert_eq!(s.take_replies()[0].text, b"\"/sub\" is the current directory.");
        assert_eq!(code_of(s, "CDUP"), [250]);
        assert_eq!(code_of(s, "CWD ../../.."), [250]);
        assert_eq!(s.cwd, VPath::root());
        assert_eq!(code_of(s, "CWD /nonexistent"), [550]);
        assert_eq!(code_of(s, "CWD file.txt"), [550]);
        assert_eq!(code_of(s, "SIZE ../../../../etc/passwd"), [550]);
        assert_eq!(code_of(s, "SIZE file.txt"), [213]);
        assert_eq!(code_of(s, "SIZE sub"), [550]);
        assert_eq!(code_of(s, "MDTM file.txt"), [213]);
    }

    #[test]
    fn pwd_quotes_double_quotes() {
        let mut f = fixture("pwd", true);
        fs::create_dir(f.dir.join("a\"b")).unwrap();
        let s = &mut f.session;
        login_anonymous(s);
        assert_eq!(code_of(s, "CWD a\"b"), [250]);
        s.handle(Command::Pwd);
        assert_eq!(s.take_replies()[0].text, b"\"/a\"\"b\" is the current directory.");
    }

    #[test]
    fn passive_then_retr_then_finished() {
        let mut f = fixture("pasv", true);
        let s = &mut f.session;
        login_anonymous(s);
        assert_eq!(code_of(s, "RETR file.txt"), [425], "no data channel yet");
        let (none, effect) = send(s, "PASV");
        assert!(none.is_empty() && matches!(effect, Effect::Listen));
        s.listening(Ok(1025));
        let replies = s.take_replies();
        assert_eq!(replies[0].text, b"Entering Passive Mode (127,0,0,1,4,1).");
        assert_eq!(code_of(s, "RETR missing"), [550]);
        let (codes_now, effect) = send(s, "RETR file.txt");
        assert_eq!(codes_now, [150]);
        assert!(matches!(effect, Effect::Start(Job::Send(_), Target::Passive)));
        assert!(s.can_handle_now(&Command::Noop));
        assert!(!s.can_handle_now(&Command::Pwd));
        s.finished(Ok(6));
        assert_eq!(codes(s), [226]);
        assert_eq!(code_of(s, "RETR file.txt"), [425], "a passive connection serves one transfer");
    }

    #[test]
    fn epsv_and_listen_failure() {
        let mut f = fixture("epsv", true);
        let s = &mut f.session;
        login_anonymous(s);
        send(s, "EPSV");
        s.listening(Ok(50000));
        assert_eq!(s.take_replies()[0].text, b"Entering Extended Passive Mode (|||50000|).");
        send(s, "PASV");
        s.listening(Err(io::ErrorKind::AddrInUse.into()));
        assert_eq!(codes(s), [425]);
        assert_eq!(code_of(s, "EPSV ALL"), [200]);
        assert_eq!(code_of(s, "PASV"), [503]);
        assert_eq!(code_of(s, "PORT 127,0,0,1,100,0"), [503]);
    }

    #[test]
    fn port_bounce_is_refused() {
        let mut f = fixture("port", true);
        let s = &mut f.session;
        login_anonymous(s);
        assert_eq!(code_of(s, "PORT 10,0,0,1,100,0"), [504]);
        assert_eq!(code_of(s, "PORT 127,0,0,1,0,21"), [504]);
        assert_eq!(code_of(s, "EPRT |1|127.0.0.1|40001|"), [200]);
        let (codes_now, effect) = send(s, "LIST");
        assert_eq!(codes_now, [150]);
        assert!(matches!(effect, Effect::Start(_, Target::Active(a)) if a.port() == 40001));
        s.finished(Err(TransferError::Connect(io::ErrorKind::ConnectionRefused.into())));
        assert_eq!(codes(s), [425]);
    }

    #[test]
    fn failed_transfers_map_to_426_and_451() {
        let mut f = fixture("fail", true);
        let s = &mut f.session;
        login_anonymous(s);
        for (error, code) in [
            (TransferError::Network(io::ErrorKind::ConnectionReset.into()), 426),
            (TransferError::Local(io::Error::other("disk")), 451),
            (TransferError::Local(io::ErrorKind::StorageFull.into()), 452),
        ] {
            send(s, "EPSV");
            s.listening(Ok(50000));
            s.take_replies();
            send(s, "RETR file.txt");
            s.take_replies();
            s.finished(Err(error));
            assert_eq!(codes(s), [code]);
        }
    }

    fn transfer_events(s: &mut Session) -> Vec<TransferRecord> {
        s.take_events()
            .into_iter()
            .filter_map(|e| match e {
                SessionEvent::TransferEnded(record) => Some(record),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn logins_are_reported() {
        let mut f = fixture("login-events", true);
        let s = &mut f.session;
        login_anonymous(s);
        assert!(matches!(s.take_events()[..], [SessionEvent::LoggedIn]));
        let mut f = fixture("login-failure-events", false);
        let s = &mut f.session;
        code_of(s, "USER alice");
        send(s, "PASS bad");
        s.verified(None);
        assert!(matches!(s.take_events()[..], [SessionEvent::LoginFailed]));
        assert!(s.take_events().is_empty(), "taken once");
    }

    #[test]
    fn file_transfers_are_reported_when_they_end_and_listings_are_not() {
        let mut f = fixture("transfer-events", true);
        let s = &mut f.session;
        login_anonymous(s);
        s.take_events();
        let passive = |s: &mut Session| {
            send(s, "EPSV");
            s.listening(Ok(50000));
        };
        passive(s);
        send(s, "LIST");
        s.finished(Ok(100));
        assert!(transfer_events(s).is_empty(), "a listing is not a file transfer");

        passive(s);
        code_of(s, "TYPE A");
        send(s, "RETR file.txt");
        assert!(transfer_events(s).is_empty(), "reported when it ends, not when it starts");
        s.finished(Ok(7));
        let [r] = &transfer_events(s)[..] else { panic!("one record") };
        assert_eq!(
            (r.direction, r.completion, r.bytes, r.ascii),
            (Direction::Out, Completion::Complete, Some(7), true)
        );
        assert_eq!((r.path.as_bytes(), &r.user[..], r.anonymous), (&b"/file.txt"[..], "anonymous", true));
        assert_eq!(r.peer, "127.0.0.1".parse::<IpAddr>().unwrap());

        passive(s);
        send(s, "RETR file.txt");
        code_of(s, "ABOR");
        let [r] = &transfer_events(s)[..] else { panic!("one record") };
        assert_eq!((r.completion, r.bytes), (Completion::Aborted, None), "the loop knows the bytes");

        for (error, completion) in [
            (TransferError::Connect(io::ErrorKind::ConnectionRefused.into()), Completion::NoConnection),
            (TransferError::Network(io::ErrorKind::ConnectionReset.into()), Completion::Aborted),
            (TransferError::Local(io::Error::other("disk")), Completion::Failed),
        ] {
            passive(s);
            send(s, "RETR file.txt");
            s.finished(Err(error));
            let [r] = &transfer_events(s)[..] else { panic!("one record") };
            assert_eq!(r.completion, completion);
        }

        passive(s);
        send(s, "RETR file.txt");
        s.connection_lost();
        let [r] = &transfer_events(s)[..] else { panic!("one record") };
        assert_eq!(r.completion, Completion::Aborted);
        s.connection_lost();
        assert!(transfer_events(s).is_empty(), "only a running transfer is cut off");
    }

    #[test]
    fn the_session_rate_limit_is_chosen_at_login() {
        let mut f = fixture("rate", true);
        let s = &mut f.session;
        assert_eq!(s.rate_limit(), None);
        login_anonymous(s);
        assert_eq!(s.rate_limit(), Some(1 << 20), "the per-session setting");
        assert_eq!(code_of(s, "REIN"), [220]);
        assert_eq!(s.rate_limit(), None);
        for (own, chosen) in [(Some(1000), Some(1000)), (Some(1 << 30), Some(1 << 20)), (None, Some(1 << 20))] {
            code_of(s, "REIN");
            code_of(s, "USER carol");
            send(s, "PASS pw");
            s.verified(Some(Account { name: "carol".into(), max_rate: own, ..Account::default() }));
            assert_eq!(codes(s), [230]);
            assert_eq!(s.rate_limit(), chosen, "the stricter of the user's own {own:?} and the per-session one");
        }
    }

    #[test]
    fn quit_and_misc() {
        let mut f = fixture("misc", true);
        let s = &mut f.session;
        assert_eq!(code_of(s, "OPTS UTF8 ON"), [200]);
        assert_eq!(code_of(s, "OPTS FOO"), [501]);
        assert_eq!(code_of(s, "HELP"), [214]);
        login_anonymous(s);
        assert_eq!(code_of(s, "TYPE A"), [200]);
        assert_eq!(code_of(s, "STRU F"), [200]);
        assert_eq!(code_of(s, "MODE S"), [200]);
        assert!(!s.is_quitting());
        assert_eq!(code_of(s, "QUIT"), [221]);
        assert!(s.is_quitting());
    }
}
