//! The sans-IO session state machine driven the way `conn::control` and the server loop drive
//! it, with the control-channel bytes fuzzed. The input is split into lines by `LineReader`; each
//! line is parsed and handed to `Session::handle`, and the `Effect`s are answered as the loop
//! would: `Listen` at once with a port (or an error), `Verify` and `Start` later — when the next
//! command has to wait for them (a transfer's `Source` is then drained through a real `Buffer`),
//! or earlier when a driver line says so. Commands the session cannot take yet are held exactly
//! like the control connection holds them, and nothing is fed after the session quits.
//!
//! Driver lines start with a NUL byte (a command line never does in practice, and the `command`
//! target covers parsing them); the byte after it picks an event:
//! - `0 v` verdict for a pending password check: `v % 3` = refused, the user (read-only),
//!   anonymous;
//! - `1 k n…` the running transfer ends: `k % 5` = drained and complete, `Ok(n)` without
//!   draining, connect failure, network failure, local error;
//! - `2` the next passive listener fails to open;
//! - `3` the session times out; `4` the server shuts down.
//!
//! Every command line runs against an IPv4 session (PASV advertises the local address) and an
//! IPv6 one (PASV advertises a configured address). Anonymous login is allowed; every account is
//! read-only, so the served tree (built once per process under the temp directory) never changes.
//!
//! Checks: nothing panics; every reply code is 1xx–5xx and every reply encodes to well-formed
//! RFC 959 lines; no reply and no listing reveals the real path of the served directory; a
//! session waits (holds commands) only while a password check or a transfer is outstanding, and
//! is transferring exactly while the driver holds its job; a read-only session never prepares an
//! upload and never answers a modifying command with success.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mioftpd::auth::Account;
use mioftpd::buffer::{Buffer, CHUNK};
use mioftpd::fs::Root;
use mioftpd::fs::transfer::{Job, Source, TransferError};
use mioftpd::ftp::command::parse;
use mioftpd::ftp::line::{Line, LineReader};
use mioftpd::ftp::session::Target;
use mioftpd::ftp::{Command, Effect, Reply, Session, Settings};
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Bump when the tree changes, so a stale tree from an older build is not reused.
const TREE: &str = "mioftpd-fuzz-session-tree-v1";

struct World {
    v4: Arc<Settings>,
    v6: Arc<Settings>,
    /// The canonical real path of the served directory, which no reply may reveal.
    real_root: Vec<u8>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = served_tree().expect("cannot build the served tree");
        let settings = |pasv_address| {
            Arc::new(Settings { root: Root::new(&dir).unwrap(), anonymous: true, pasv_address, max_login_failures: 3, zero_copy: true, tls: true, require_tls: false, max_rate_per_session: None })
        };
        let v4 = settings(None);
        let v6 = settings(Some("203.0.113.7".parse().unwrap()));
        let real_root = v4.root.dir().as_os_str().as_bytes().to_vec();
        World { v4, v6, real_root }
    })
}

/// The served tree, created once: built in a private directory, then renamed into place, so
/// fuzzing processes running side by side never see half of it.
fn served_tree() -> io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(TREE);
    if dir.join(".complete").exists() {
        return Ok(dir);
    }
    let build = std::env::temp_dir().join(format!("{TREE}.{}", std::process::id()));
    let _ = fs::remove_dir_all(&build);
    fill_tree(&build)?;
    fs::write(build.join(".complete"), b"")?;
    match fs::rename(&build, &dir) {
        Ok(()) => {}
        Err(_) if dir.join(".complete").exists() => fs::remove_dir_all(&build)?, // another process won
        Err(e) => return Err(e),
    }
    Ok(dir)
}

fn fill_tree(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir.join("sub/deeper"))?;
    fs::create_dir_all(dir.join("empty dir"))?;
    fs::write(dir.join("file.txt"), b"hello\nworld\r\nmixed\rline\n")?;
    fs::write(dir.join("empty"), b"")?;
    fs::write(dir.join("with space.txt"), b"x")?;
    fs::write(dir.join("quote\"name"), b"q")?;
    fs::write(dir.join("star*name"), b"*")?;
    fs::write(dir.join("q?mark"), b"?")?;
    fs::write(dir.join(".hidden"), b"h")?;
    fs::write(dir.join("-dash"), b"-")?;
    fs::write(dir.join("new\nline"), b"lf")?;
    fs::write(dir.join("cr\rname"), b"cr")?;
    fs::write(dir.join(OsStr::from_bytes(b"caf\xe9")), b"latin-1")?;
    fs::write(dir.join("n".repeat(255)), b"long name")?;
    // Crosses a 64 KiB chunk, and a 32 KiB TYPE A half-chunk, with CRLF and bare LF lines.
    let lines: Vec<u8> =
        (0..15000).flat_map(|i| if i % 3 == 0 { b"line\r\n".to_vec() } else { b"line\n".to_vec() }).collect();
    fs::write(dir.join("big.txt"), lines)?;
    fs::write(dir.join("sub/inner.txt"), b"inner\n")?;
    fs::write(dir.join("sub/deeper/leaf.bin"), [0u8, 1, 2, 255, b'\r', b'\n', b'\n'])?;
    symlink("sub/inner.txt", dir.join("link-in"))?;
    symlink("sub", dir.join("link-dir"))?;
    symlink("/etc", dir.join("link-out"))?;
    symlink("../..", dir.join("sub/link-up"))?;
    symlink("nowhere", dir.join("dangling"))?;
    symlink("loop", dir.join("loop"))?;
    let fifo = std::ffi::CString::new(dir.join("pipe").as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// What the event loop owes the session.
enum Pending {
    Nothing,
    Verify { user: String, password: String },
    Transfer(Source),
}

struct Driver {
    session: Session,
    pending: Pending,
    next_listen_fails: bool,
    next_port: u16,
    /// The line being handled names the real root itself, so an echo of it is no leak.
    line_names_root: bool,
}

impl Driver {
    fn new(settings: &Arc<Settings>, v6: bool) -> Driver {
        let (peer, local) = if v6 { ("[::1]:40000", "[::1]:2121") } else { ("127.0.0.1:40000", "127.0.0.1:2121") };
        let session = Session::new(1, peer.parse().unwrap(), local.parse().unwrap(), Arc::clone(settings));
        let mut driver = Driver {
            session,
            pending: Pending::Nothing,
            next_listen_fails: false,
            next_port: 1025,
            line_names_root: false,
        };
        driver.check_replies(None);
        driver
    }

    fn line(&mut self, line: &[u8]) {
        if tracing() {
            eprintln!("> {:?}   [{}]", String::from_utf8_lossy(line), self.session.state_name());
        }
        self.line_names_root = contains(line, &world().real_root);
        if let [0, event, rest @ ..] = line {
            self.event(*event, rest);
            return;
        }
        if line.first() == Some(&0) {
            return;
        }
        let cmd = match parse(line) {
            Ok(cmd) => cmd,
            Err(reply) => {
                check_reply(&reply, self.line_names_root);
                return;
            }
        };
        if !self.session.can_handle_now(&cmd) {
            // The control connection holds the command until the loop has answered.
            self.resolve_pending();
        }
        assert!(self.session.can_handle_now(&cmd), "{cmd:?} held with nothing outstanding");
        let modifying = modifies(&cmd);
        let effect = self.session.handle(cmd);
        self.apply(effect);
        self.check_replies(modifying.then_some(()));
    }

    fn event(&mut self, event: u8, rest: &[u8]) {
        let arg = rest.first().copied().unwrap_or(0);
        match event % 5 {
            0 => {
                if let Pending::Verify { user, .. } = &self.pending {
                    let account = match arg % 3 {
                        0 => None,
                        1 => Some(Account { name: user.clone(), ..Account::default() }),
                        _ => Some(Account::anonymous()),
                    };
                    self.pending = Pending::Nothing;
                    self.session.verified(account);
                }
            }
            1 => {
                if let Some(source) = self.take_transfer() {
                    let n = rest.iter().skip(1).take(8).fold(0u64, |n, &b| n << 8 | u64::from(b));
                    let result = match arg % 5 {
                        0 => drain(source),
                        1 => Ok(n),
                        2 => Err(TransferError::Connect(io::ErrorKind::ConnectionRefused.into())),
                        3 => Err(TransferError::Network(io::ErrorKind::ConnectionReset.into())),
                        _ => Err(TransferError::Local(local_error(n))),
                    };
                    self.session.finished(result);
                }
            }
            2 => self.next_listen_fails = true,
            3 => self.session.timed_out(),
            _ => self.session.shutting_down(),
        }
        self.check_replies(None);
    }

    /// The running transfer's source, if a transfer is what the loop owes.
    fn take_transfer(&mut self) -> Option<Source> {
        match std::mem::replace(&mut self.pending, Pending::Nothing) {
            Pending::Transfer(source) => Some(source),
            other => {
                self.pending = other;
                None
            }
        }
    }

    /// The default answers: a non-empty password is accepted (read-only), a transfer completes.
    fn resolve_pending(&mut self) {
        match std::mem::replace(&mut self.pending, Pending::Nothing) {
            Pending::Nothing => {}
            Pending::Verify { user, password } => {
                self.session.verified((!password.is_empty()).then_some(Account { name: user, ..Account::default() }));
            }
            Pending::Transfer(source) => self.session.finished(drain(source)),
        }
        self.check_replies(None);
    }

    fn apply(&mut self, effect: Effect) {
        match effect {
            Effect::None => {}
            Effect::Verify { user, password } => {
                assert!(matches!(self.pending, Pending::Nothing), "a second request before the first was answered");
                self.pending = Pending::Verify { user, password };
            }
            Effect::Listen => {
                // The loop opens the listener at once and answers in the same turn.
                let result = if std::mem::take(&mut self.next_listen_fails) {
                    Err(io::ErrorKind::AddrInUse.into())
                } else {
                    self.next_port = self.next_port.checked_add(1).unwrap_or(1025);
                    Ok(self.next_port)
                };
                self.session.listening(result);
            }
            Effect::Start(job, target) => {
                assert!(matches!(self.pending, Pending::Nothing), "a second request before the first was answered");
                if let Target::Active(addr) = target {
                    assert_eq!(addr.ip().to_canonical(), self.session.peer().ip().to_canonical(), "bounce");
                    assert!(addr.port() >= 1024, "active connection to privileged port {addr}");
                }
                match job {
                    Job::Send(source) => self.pending = Pending::Transfer(source),
                    Job::Receive(_) => panic!("a read-only session prepared an upload"),
                }
            }
            // The connection layer switches to TLS; the session expects nothing back.
            Effect::StartTls => {}
            Effect::CloseData => {
                // ABOR or REIN: the data connection and its job go away unreported.
                if let Pending::Transfer(_) = self.pending {
                    self.pending = Pending::Nothing;
                }
            }
        }
    }

    /// Drains the replies; with `Some(())` they answer a modifying command of a read-only
    /// session and must all be failures.
    fn check_replies(&mut self, modifying: Option<()>) {
        for reply in self.session.take_replies() {
            check_reply(&reply, self.line_names_root);
            if modifying.is_some() {
                assert!(reply.code as u16 >= 400, "a read-only session answered {}", reply.summary());
            }
        }
        let verifying = self.session.state_name().starts_with("verifying");
        assert_eq!(verifying, matches!(self.pending, Pending::Verify { .. }), "{}", self.session.state_name());
        assert_eq!(
            self.session.is_transferring(),
            matches!(self.pending, Pending::Transfer(_)),
            "{}",
            self.session.state_name()
        );
    }
}

/// Commands that change the served tree (or, `RNFR`, prepare to).
fn modifies(cmd: &Command) -> bool {
    use Command::*;
    match cmd {
        Stor(_) | Appe(_) | Stou(_) | Mkd(_) | Rmd(_) | Dele(_) | Rnfr(_) | Rnto(_) | Mfmt(..) => true,
        Site(args) => args.trim_start().get(..5).is_some_and(|verb| verb.eq_ignore_ascii_case("CHMOD")),
        _ => false,
    }
}

fn local_error(n: u64) -> io::Error {
    let kinds =
        [io::ErrorKind::StorageFull, io::ErrorKind::PermissionDenied, io::ErrorKind::NotFound, io::ErrorKind::Other];
    kinds[(n % kinds.len() as u64) as usize].into()
}

/// Runs a `Source` to its end through a data-connection-sized buffer, as `conn::data` does
/// (refill only when empty), checking what it produces.
fn drain(mut source: Source) -> Result<u64, TransferError> {
    let mut buf = Buffer::with_capacity(CHUNK);
    let mut total = 0u64;
    loop {
        match source.fill(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                assert_eq!(n, buf.len());
                assert!(!contains(buf.data(), &world().real_root), "a listing revealed the real root");
                total += n as u64;
                buf.consume(n);
            }
            Err(e) => return Err(TransferError::Local(e)),
        }
    }
}

fn check_reply(reply: &Reply, line_names_root: bool) {
    if tracing() {
        eprintln!("< {}", reply.summary());
    }
    let code = reply.code as u16;
    assert!((100..600).contains(&code), "reply code {code}");
    let mut wire = Vec::new();
    reply.encode(&mut wire);
    assert!(wire.ends_with(b"\r\n"), "{wire:?}");
    let lines: Vec<&[u8]> = wire[..wire.len() - 2].split(|&b| b == b'\n').collect();
    let last = lines.len() - 1;
    let code = code.to_string();
    for (i, line) in lines.iter().enumerate() {
        let line = if i < last { line.strip_suffix(b"\r").expect("a line without CR") } else { line };
        let head = match (i, last) {
            (0, 0) => format!("{code} "),
            (0, _) => format!("{code}-"),
            (i, l) if i == l => format!("{code} "),
            _ => " ".to_string(),
        };
        assert!(line.starts_with(head.as_bytes()), "reply line {i} {line:?} of {wire:?}");
    }
    if !line_names_root {
        assert!(!contains(&reply.text, &world().real_root), "reply revealed the real root: {}", reply.summary());
    }
}

/// `MIOFTPD_FUZZ_TRACE=1` prints every line and reply to stderr (for reading a crash input).
fn tracing() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("MIOFTPD_FUZZ_TRACE").is_some())
}

/// Whether `needle` occurs in `haystack`. Compares only where the first byte matches: a
/// `memcmp` at every offset, each one traced by libFuzzer, made this the hot spot.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else { return true };
    haystack.len() >= needle.len()
        && haystack[..=haystack.len() - needle.len()]
            .iter()
            .enumerate()
            .any(|(i, &b)| b == first && &haystack[i + 1..i + needle.len()] == rest)
}

fuzz_target!(|data: &[u8]| {
    let world = world();
    let mut reader = LineReader::new();
    reader.push(data);
    let mut drivers = [Driver::new(&world.v4, false), Driver::new(&world.v6, true)];
    while let Some(line) = reader.next_line() {
        for driver in drivers.iter_mut().filter(|d| !d.session.is_quitting()) {
            match &line {
                Line::Command(line) => driver.line(line),
                Line::TooLong => {} // answered 500 by the connection, not the session
            }
        }
    }
});
