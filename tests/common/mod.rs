//! Shared test harness: a real server on an ephemeral loopback port in a thread, a temporary
//! served directory, a raw line-level FTP client for exact replies, and `require` for tests
//! that drive an external client program.
#![allow(dead_code)] // each test binary uses a different part of the harness

use mioftpd::{Config, Handle, Workers};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long any single wait in a test may take before the test fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A unique directory under the system temp dir, removed on drop.
pub struct TempRoot {
    pub path: PathBuf,
}

impl TempRoot {
    pub fn new(label: &str) -> TempRoot {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "mioftpd-test-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp root");
        TempRoot { path }
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    pub fn write(&self, rel: &str, bytes: &[u8]) {
        let path = self.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, bytes).unwrap();
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A server running in a thread (its workers, with `--workers N`, in threads of their own).
/// Dropping it stops the server and, unless the test is already failing, checks that every loop
/// ended cleanly.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The implicit FTPS listener, when the config asked for one.
    pub implicit_tls: Option<SocketAddr>,
    /// Where the metrics are served, when the config asked for them (`cfg.metrics`).
    pub metrics: Option<SocketAddr>,
    pub root: TempRoot,
    /// Holds the users file of `with_users` for as long as the server runs.
    users: Option<TempRoot>,
    /// One per worker.
    pub handles: Vec<Handle>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Anonymous read-only server over a fresh temporary root.
    pub fn start(label: &str) -> TestServer {
        TestServer::start_with(label, |_| {})
    }

    /// A server whose config `adjust` may change (the root is filled in already).
    pub fn start_with(label: &str, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let root = TempRoot::new(label);
        let mut config = Config::new(&root.path);
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.failed_login_delay = 50; // tests that fail logins on purpose need not wait a second
        adjust(&mut config);
        let _ = env_logger::builder().is_test(true).try_init();
        let workers = Workers::bind(&config).expect("bind test server");
        let addr = workers.local_addr().expect("a worker");
        let (implicit_tls, metrics) = (workers.implicit_tls_addr(), workers.metrics_addrs().first().copied());
        let handles = workers.handles();
        let thread = std::thread::spawn(move || workers.run());
        TestServer { addr, implicit_tls, metrics, root, users: None, handles, thread: Some(thread) }
    }

    /// A server with users `alice` (read-write) and `bob` (read-only), both with password `pw`,
    /// plus anonymous read-only access.
    pub fn with_users(label: &str) -> TestServer {
        TestServer::with_users_and(label, |_| {})
    }

    /// `with_users`, with a config that `adjust` may change further.
    pub fn with_users_and(label: &str, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let users = TempRoot::new(&format!("{label}-users"));
        let hash = mioftpd::auth::hash_password("pw").unwrap();
        std::fs::write(users.join("users"), format!("alice:{hash}:rw\nbob:{hash}:ro\n")).unwrap();
        let mut server = TestServer::start_with(label, |cfg| {
            cfg.users = Some(users.join("users"));
            cfg.anonymous = true;
            adjust(cfg);
        });
        server.users = Some(users);
        server
    }

    /// A logged-in control connection as `user` (password `pw`, see `with_users`).
    pub fn login(&self, user: &str) -> Raw {
        let mut c = Raw::connect(self.addr);
        c.login(user, "pw");
        c
    }

    pub fn url(&self, path: &str) -> String {
        format!("ftp://{}{path}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Open slots over all workers.
    pub fn open_slots(&self) -> usize {
        self.handles.iter().map(Handle::open_slots).sum()
    }

    /// Waits until the server holds no connection at all: the leak check for the end of a test.
    pub fn assert_no_open_slots(&self) {
        let deadline = Instant::now() + PATIENCE;
        while self.open_slots() != 0 {
            assert!(Instant::now() < deadline, "server still holds {} slots", self.open_slots());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handles.iter().for_each(Handle::stop);
        if let Some(thread) = self.thread.take() {
            let result = thread.join();
            if !std::thread::panicking() {
                result.expect("server thread panicked").expect("server loop returned an error");
            }
        }
    }
}

/// A line-level client for checking exact replies.
pub struct Raw {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Raw {
    /// Connects and reads the greeting.
    pub fn connect(addr: SocketAddr) -> Raw {
        Raw::connect_with(addr, b"")
    }

    /// Connects, sends `preamble` first (a PROXY protocol header, say), and reads the greeting.
    pub fn connect_with(addr: SocketAddr, preamble: &[u8]) -> Raw {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.write_all(preamble).expect("send preamble");
        Raw::over(stream)
    }

    /// A connection made already: reads the greeting.
    pub fn over(stream: TcpStream) -> Raw {
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let mut raw = Raw { stream, reader };
        raw.expect(220);
        raw
    }

    /// Connects and logs in anonymously.
    pub fn anonymous(addr: SocketAddr) -> Raw {
        let mut raw = Raw::connect(addr);
        raw.login("anonymous", "test@");
        raw
    }

    pub fn login(&mut self, user: &str, pass: &str) {
        assert_eq!(self.cmd(&format!("USER {user}")).0, 331);
        let (code, text) = self.cmd(&format!("PASS {pass}"));
        assert_eq!(code, 230, "login {user}: {text}");
    }

    pub fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\r\n").as_bytes());
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads one whole reply (all lines of a multi-line one): its code and its text.
    pub fn reply(&mut self) -> (u16, String) {
        let first = self.line();
        let code: u16 = first.get(..3).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("bad reply {first:?}"));
        let mut text = first[4..].to_string();
        if first.as_bytes()[3] == b'-' {
            loop {
                let line = self.line();
                text.push('\n');
                text.push_str(&line);
                if line.starts_with(&format!("{code} ")) {
                    break;
                }
            }
        }
        (code, text)
    }

    fn line(&mut self) -> String {
        let mut line = Vec::new();
        let n = self.reader.read_until(b'\n', &mut line).expect("read reply");
        assert!(n > 0, "connection closed while waiting for a reply");
        assert!(line.ends_with(b"\r\n"), "reply line not CRLF-terminated: {line:?}");
        line.truncate(line.len() - 2);
        String::from_utf8_lossy(&line).into_owned()
    }

    pub fn cmd(&mut self, line: &str) -> (u16, String) {
        self.send(line);
        self.reply()
    }

    /// Sends a command and asserts the reply code; returns the text.
    pub fn expect_cmd(&mut self, line: &str, code: u16) -> String {
        let (got, text) = self.cmd(line);
        assert_eq!(got, code, "{line} → {got} {text}");
        text
    }

    pub fn expect(&mut self, code: u16) -> String {
        let (got, text) = self.reply();
        assert_eq!(got, code, "expected {code}, got {got} {text}");
        text
    }

    /// `EPSV`, then connects to the advertised port.
    pub fn epsv(&mut self) -> TcpStream {
        let text = self.expect_cmd("EPSV", 229);
        let port: u16 = text.split('|').nth(3).and_then(|p| p.parse().ok()).expect("EPSV port");
        let data = TcpStream::connect((self.stream.peer_addr().unwrap().ip(), port)).expect("data connect");
        data.set_read_timeout(Some(PATIENCE)).unwrap();
        data
    }

    /// `PASV`, returning the advertised address without connecting.
    pub fn pasv(&mut self) -> SocketAddr {
        let text = self.expect_cmd("PASV", 227);
        let inner = &text[text.find('(').unwrap() + 1..text.find(')').unwrap()];
        let n: Vec<u16> = inner.split(',').map(|x| x.parse().unwrap()).collect();
        SocketAddr::from(([n[0] as u8, n[1] as u8, n[2] as u8, n[3] as u8], n[4] * 256 + n[5]))
    }

    /// Downloads with `cmd` (RETR/LIST/NLST…) over EPSV and returns the bytes after the 226.
    pub fn download(&mut self, cmd: &str) -> Vec<u8> {
        let mut data = self.epsv();
        self.expect_cmd(cmd, 150);
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes).expect("read data");
        self.expect(226);
        bytes
    }

    /// Uploads `bytes` with `cmd` (STOR…) over EPSV and waits for the 226.
    pub fn upload(&mut self, cmd: &str, bytes: &[u8]) {
        let mut data = self.epsv();
        self.expect_cmd(cmd, 150);
        data.write_all(bytes).expect("write data");
        drop(data);
        self.expect(226);
    }

    /// Whether the server has closed the connection (reads EOF).
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0))
    }
}

/// Everything the server sends on a fresh connection until it closes it (a `421` refusal, or
/// nothing at all). A server that closes without reading what we sent resets the connection,
/// which counts as closed too.
pub fn read_until_closed(addr: SocketAddr, preamble: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(preamble).expect("send preamble");
    let mut reply = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read until the server closes: {e}"),
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

/// Starts the binary on an ephemeral port and returns it with the address it logged.
pub fn spawn_server(
    args: &[&str],
) -> (std::process::Child, std::net::SocketAddr, std::io::BufReader<std::process::ChildStderr>) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mioftpd"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains(" on 127.0.0.1:") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "server exited before listening");
    }
    let addr = line.split(" on ").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    (child, addr, stderr)
}

/// Polls `condition` until it holds; fails the test after `PATIENCE`.
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether an external client program is installed. When it is not, the test prints a SKIP
/// line and returns early — except under `CI=true`, where a missing client is a failure.
pub fn require(program: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| is_executable(&dir.join(program))))
        .unwrap_or(false);
    if !found {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{program} is required under CI=true but not installed");
        eprintln!("SKIP: {program} not installed");
    }
    found
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// Runs an external program with a time limit; returns (exit success, stdout, stderr).
pub fn run(program: &str, args: &[&str], stdin: &[u8], cwd: &Path) -> (bool, String, String) {
    use std::process::{Command, Stdio};
    let mut child = Command::new("timeout")
        .arg("60")
        .arg(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Deterministic pseudo-random bytes (xorshift), so a test file's content is reproducible
/// and not compressible or patterned.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}
