//! The `mioftpd` binary as an admin uses it: `users add`, start-up errors, a login with a
//! user it created, signals, the `--config` file and `check-config`.

mod common;
use common::*;
use std::io::Write;
use std::process::{Command, Stdio};

fn mioftpd(args: &[&str], stdin: &str) -> (bool, String) {
    let (ok, _stdout, stderr) = mioftpd_with_output(args, stdin);
    (ok, stderr)
}

/// Runs the binary to completion: (exit success, stdout, stderr).
fn mioftpd_with_output(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mioftpd"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The binary may exit before reading (a rejected argument): a broken pipe here is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn users_add_writes_hashes_that_log_in() {
    let dir = TempRoot::new("usersadd");
    let file = dir.join("users.txt");
    let file_arg = file.to_str().unwrap();
    assert!(mioftpd(&["users", "add", file_arg, "alice"], "first\n").0);
    assert!(mioftpd(&["users", "add", file_arg, "bob", "--read-only"], "bobpw\n").0);
    assert!(mioftpd(&["users", "add", file_arg, "alice"], "second\n").0, "replacing a password");
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("alice:$6$") && lines[0].ends_with(":rw"), "{text}");
    assert!(lines[1].starts_with("bob:$6$") && lines[1].ends_with(":ro"), "{text}");
    assert!(!text.contains("second") && !text.contains("bobpw"), "passwords are stored hashed");

    let server = TestServer::start_with("usersadd-login", |cfg| cfg.users = Some(file.clone()));
    let mut c = Raw::connect(server.addr);
    c.expect_cmd("USER alice", 331);
    assert_eq!(c.cmd("PASS first").0, 530, "the old password no longer works");
    c.login("alice", "second");
    let mut b = Raw::connect(server.addr);
    b.login("bob", "bobpw");
    assert_eq!(b.cmd("MKD x").0, 550);
}

#[test]
fn users_add_sets_home_and_rate_and_a_password_change_keeps_them() {
    let dir = TempRoot::new("usershome");
    let file = dir.join("users.txt");
    let file_arg = file.to_str().unwrap();
    assert!(mioftpd(&["users", "add", file_arg, "carol", "--home", "homes/carol", "--rate", "512k"], "a\n").0);
    let line = || std::fs::read_to_string(&file).unwrap().trim_end().to_string();
    assert!(line().ends_with(":rw,home=homes/carol,rate=524288"), "{}", line());
    assert!(mioftpd(&["users", "add", file_arg, "carol"], "b\n").0, "a new password");
    assert!(line().ends_with(":rw,home=homes/carol,rate=524288"), "{}", line());
    assert!(mioftpd(&["users", "add", file_arg, "carol", "--read-only"], "c\n").0);
    assert!(line().ends_with(":ro,home=homes/carol,rate=524288"), "{}", line());
    let (ok, err) = mioftpd(&["users", "add", file_arg, "carol", "--home", "../etc"], "d\n");
    assert!(!ok && err.contains("'..'"), "{err}");
    let (ok, err) = mioftpd(&["users", "add", file_arg, "carol", "--rate", "fast"], "d\n");
    assert!(!ok && err.contains("--rate"), "{err}");
    assert!(line().ends_with(":ro,home=homes/carol,rate=524288"), "refused changes leave the file alone");
}

#[test]
fn users_add_rejects_bad_input() {
    let dir = TempRoot::new("usersbad");
    let file = dir.join("users.txt");
    let (ok, err) = mioftpd(&["users", "add", file.to_str().unwrap(), "a:b"], "pw\n");
    assert!(!ok && err.contains("invalid user name"), "{err}");
    let (ok, err) = mioftpd(&["users", "add", file.to_str().unwrap(), "carol"], "\n");
    assert!(!ok && err.contains("empty password"), "{err}");
    assert!(!file.exists());
}

#[test]
fn startup_errors_are_clear() {
    let (ok, err) = mioftpd(&["--root", "/nonexistent/dir"], "");
    assert!(!ok && err.contains("cannot serve /nonexistent/dir"), "{err}");

    let dir = TempRoot::new("starterr");
    let (ok, err) = mioftpd(&["--root", dir.path.to_str().unwrap(), "--users", "/nonexistent/users"], "");
    assert!(!ok && err.contains("cannot read users file"), "{err}");

    dir.write("bad-users", b"alice:plaintext\n");
    let bad = dir.join("bad-users");
    let (ok, err) = mioftpd(&["--root", dir.path.to_str().unwrap(), "--users", bad.to_str().unwrap()], "");
    assert!(!ok && err.contains("line 1") && err.contains("unsupported hash"), "{err}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (ok, err) = mioftpd(&["--root", dir.path.to_str().unwrap(), "--listen", &addr], "");
    assert!(!ok && err.contains("cannot listen") && err.contains("in use"), "{err}");

    let (ok, err) = mioftpd(&["--pasv-ports", "9-1"], "");
    assert!(!ok && err.contains("--pasv-ports"), "{err}");
}

#[test]
fn sigterm_lets_running_transfers_finish_and_closes_idle_sessions() {
    use std::io::Read;
    let dir = TempRoot::new("sigterm");
    let content = random_bytes(32 * 1024 * 1024, 77);
    dir.write("big.bin", &content);
    let (mut child, addr, _stderr) = spawn_server(&["--root", dir.path.to_str().unwrap()]);

    let mut downloader = Raw::anonymous(addr);
    let mut idle = Raw::anonymous(addr);
    let mut data = downloader.epsv();
    downloader.expect_cmd("RETR big.bin", 150);
    let mut got = vec![0u8; 1024 * 1024];
    data.read_exact(&mut got).unwrap();

    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(idle.reply().0, 421, "an idle session is told the server is going away");
    assert!(idle.is_closed());
    data.read_to_end(&mut got).unwrap();
    assert!(got == content, "the running download completes");
    downloader.expect(226);
    assert_eq!(downloader.reply().0, 421);
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit after the drain: {status}");
}

#[test]
fn an_upload_cut_off_by_the_grace_period_leaves_the_old_file_and_no_debris() {
    use std::io::Write as _;
    let dir = TempRoot::new("sigterm-upload");
    let users = TempRoot::new("sigterm-users");
    dir.write("keep.bin", b"old");
    std::fs::write(users.join("u"), format!("alice:{}\n", mioftpd::auth::hash_password("pw").unwrap())).unwrap();
    let users_file = users.join("u");
    let args = ["--root", dir.path.to_str().unwrap(), "--users", users_file.to_str().unwrap(), "--shutdown-grace", "1"];
    let (mut child, addr, _stderr) = spawn_server(&args);
    let mut c = Raw::connect(addr);
    c.login("alice", "pw");
    let mut data = c.epsv();
    c.expect_cmd("STOR keep.bin", 150);
    data.write_all(&random_bytes(1024 * 1024, 3)).unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap(); // the upload never ends; the grace period does
    assert!(status.success(), "{status}");
    assert_eq!(dir.read("keep.bin"), b"old");
    assert_eq!(std::fs::read_dir(&dir.path).unwrap().count(), 1, "no temporary file left");
}

#[test]
fn run_as_drops_root_right_after_binding() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempRoot::new("runas");
    dir.write("public.txt", b"for everyone\n");
    dir.write("private.txt", b"root only\n");
    std::fs::set_permissions(dir.join("private.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let root = dir.path.to_str().unwrap();
    if unsafe { libc::geteuid() } != 0 {
        let (ok, err) = mioftpd(&["--root", root, "--run-as", "nobody"], "");
        assert!(!ok && err.contains("--run-as nobody needs root"), "{err}");
        println!("SKIP: not root, so only the refusal of --run-as was checked");
        return;
    }
    let (mut child, addr, mut stderr) = spawn_server(&["--root", root, "--run-as", "nobody"]);
    let mut c = Raw::anonymous(addr);
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let uids: Vec<&str> = status.lines().find(|l| l.starts_with("Uid:")).unwrap().split_whitespace().skip(1).collect();
    assert!(uids.iter().all(|u| *u == uids[0] && *u != "0"), "real, effective, saved and fs uid all dropped: {uids:?}");
    let mut data = c.epsv();
    c.expect_cmd("RETR public.txt", 150);
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut data, &mut got).unwrap();
    assert_eq!(got, b"for everyone\n");
    c.expect(226);
    let _data = c.epsv();
    assert_eq!(c.cmd("RETR private.txt").0, 550, "a root-only file stays closed to the dropped server");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let mut log = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut log).unwrap();
    assert!(!log.contains("running as root"), "{log}");

    // Without --run-as, root is warned about.
    let (mut child, _addr, stderr) = spawn_server(&["--root", root]);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let log = std::io::read_to_string(stderr).unwrap();
    assert!(log.contains("running as root"), "{log}");
}

/// A server process that is killed if the test fails before stopping it.
struct Running(std::process::Child);

impl Running {
    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
        assert_eq!(unsafe { libc::kill(self.0.id() as i32, signal) }, 0, "kill({signal})");
    }

    /// SIGTERM, then a clean exit.
    fn stop(mut self) {
        self.signal(libc::SIGTERM);
        assert!(self.0.wait().unwrap().success());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The server's log lines as they come, read on a thread so that waiting for one is bounded.
fn follow(stderr: std::io::BufReader<std::process::ChildStderr>) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (lines, log) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    log
}

/// The next log line containing `needle`.
fn wait_for(log: &std::sync::mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = log.recv_timeout(left).unwrap_or_else(|e| panic!("no log line with {needle:?}: {e}"));
        if line.contains(needle) {
            return line;
        }
    }
}

/// USER and PASS on a new connection: the code of the reply to PASS.
fn login_code(addr: std::net::SocketAddr, user: &str, password: &str) -> u16 {
    let mut c = Raw::connect(addr);
    c.expect_cmd(&format!("USER {user}"), 331);
    c.cmd(&format!("PASS {password}")).0
}

#[test]
fn sighup_reloads_the_users_file_without_dropping_sessions() {
    let dir = TempRoot::new("sighup");
    let users = TempRoot::new("sighup-users");
    let file = users.join("users");
    let hash = |password: &str| mioftpd::auth::hash_password(password).unwrap();
    std::fs::write(&file, format!("alice:{}\nbob:{}\n", hash("pw"), hash("pw"))).unwrap();
    let args = ["--root", dir.path.to_str().unwrap(), "--users", file.to_str().unwrap(), "--failed-login-delay", "50"];
    let (child, addr, stderr) = spawn_server(&args);
    let server = Running(child);
    let log = follow(stderr);

    let mut kept = server_login(addr, "alice", "pw");
    assert_eq!(login_code(addr, "alice", "pw"), 230, "a second time, from the credential cache");
    assert_eq!(login_code(addr, "bob", "pw"), 230);
    assert_eq!(login_code(addr, "carol", "pw"), 530, "not in the file yet");

    // alice removed, bob's password changed, carol added.
    std::fs::write(&file, format!("bob:{}\ncarol:{}:ro\n", hash("new"), hash("pw"))).unwrap();
    server.signal(libc::SIGHUP);
    let line = wait_for(&log, "reload: users file");
    assert!(line.contains("INFO") && line.contains(": 2 users"), "{line}");
    assert_eq!(login_code(addr, "carol", "pw"), 230, "a new user logs in");
    assert_eq!(login_code(addr, "alice", "pw"), 530, "a removed user does not, though her login was cached");
    assert_eq!(login_code(addr, "bob", "pw"), 530, "nor does an old password");
    assert_eq!(login_code(addr, "bob", "new"), 230);
    kept.expect_cmd("NOOP", 200);
    assert_eq!(kept.cmd("PWD").1, "\"/\" is the current directory.", "a session from before the reload lives on");

    std::fs::write(&file, format!("carol:{}\nbroken line\n", hash("other"))).unwrap();
    server.signal(libc::SIGHUP);
    let line = wait_for(&log, "reload:");
    assert!(line.contains("WARN") && line.contains("line 2") && line.contains("keeping"), "{line}");
    assert_eq!(login_code(addr, "carol", "pw"), 230, "a broken file keeps the users loaded before");
    assert_eq!(login_code(addr, "bob", "new"), 230);
    assert_eq!(login_code(addr, "carol", "other"), 530);
    kept.expect_cmd("QUIT", 221);
    server.stop();
}

fn server_login(addr: std::net::SocketAddr, user: &str, password: &str) -> Raw {
    let mut c = Raw::connect(addr);
    c.login(user, password);
    c
}

#[test]
fn a_config_file_sets_what_the_command_line_does_not() {
    use std::io::BufRead;
    let served = TempRoot::new("cfg-served");
    served.write("from-the-command-line.txt", b"cli");
    let other = TempRoot::new("cfg-other");
    other.write("from-the-file.txt", b"file");
    // Were the file's `listen` used, the server could not start: the command line's wins.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = format!(
        "listen = \"{}\"\nroot = \"{}\"\nmax-per-ip = 1\nanonymous = true\n",
        taken.local_addr().unwrap(),
        other.path.display()
    );
    other.write("mioftpd.toml", config.as_bytes());
    let file = other.join("mioftpd.toml");
    let (child, addr, _stderr) =
        spawn_server(&["--config", file.to_str().unwrap(), "--root", served.path.to_str().unwrap()]);
    let server = Running(child);

    let mut c = Raw::anonymous(addr);
    assert_eq!(c.download("NLST"), b"from-the-command-line.txt\r\n", "--root overrides the file's root");
    // The file's max_per_ip = 1, not the default of 100: a second session is refused.
    let second = std::net::TcpStream::connect(addr).unwrap();
    second.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut greeting = String::new();
    std::io::BufReader::new(second).read_line(&mut greeting).unwrap();
    assert!(greeting.starts_with("421 "), "{greeting}");
    c.expect_cmd("QUIT", 221);
    server.stop();
}

#[test]
fn config_file_errors_name_the_key_and_stop_the_start() {
    let dir = TempRoot::new("cfg-errors");
    let cases = [
        ("max_sesions = 5\n", "unknown key \"max_sesions\""),
        ("max_sessions = \"many\"\n", "key \"max_sessions\": invalid value \"many\": invalid digit found in string"),
        ("pasv_ports = \"9-1\"\n", "key \"pasv_ports\": invalid value \"9-1\""),
        ("anonymous = 1\n", "key \"anonymous\": expected true or false"),
        ("max_sessions = \n", "line 1"),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let name = format!("bad-{i}.toml");
        dir.write(&name, text.as_bytes());
        let file = dir.join(&name);
        let file = file.to_str().unwrap();
        let (ok, err) = mioftpd(&["--config", file, "--listen", "127.0.0.1:0"], "");
        assert!(!ok && err.contains(file) && err.contains(expected), "{text}: {err}");
        let (ok, out, err) = mioftpd_with_output(&["check-config", file], "");
        assert!(!ok && out.is_empty() && err.contains(expected), "check-config, {text}: {err}");
    }
}

#[test]
fn check_config_prints_the_effective_settings_without_hashes() {
    let root = TempRoot::new("check-root");
    std::fs::create_dir_all(root.join("homes/alice")).unwrap();
    let hash = mioftpd::auth::hash_password("pw").unwrap();
    root.write("users", format!("alice:{hash}:rw,home=homes/alice,rate=1M\nbob:{hash}:ro\n").as_bytes());
    let config = format!(
        "root = \"{}\"\nusers = \"{}\"\nmax_sessions = 7\npasv-ports = \"50000-50100\"\n",
        root.path.display(),
        root.join("users").display()
    );
    root.write("mioftpd.toml", config.as_bytes());
    let file = root.join("mioftpd.toml");
    let (ok, out, err) = mioftpd_with_output(&["check-config", file.to_str().unwrap()], "");
    assert!(ok, "{err}");
    for expected in [
        "max_sessions = 7\n",
        "pasv_ports = \"50000-50100\"\n",
        "idle_timeout = 300\n",
        "anonymous = false\n",
        "# anonymous logins: off\n",
        "# pasv_address = (not set)\n",
        ": 2 users\n",
        &format!("#   alice: read-write, home {}, at most 1048576 bytes/s\n", root.join("homes/alice").display()),
        "#   bob: read-only\n",
    ] {
        assert!(out.contains(expected), "{expected:?} in:\n{out}");
    }
    assert!(!out.contains("$6$") && !out.contains(&hash[20..]), "no password hash in:\n{out}");

    // The report is itself a configuration file that means the same.
    let settings: toml::Table = out.parse().unwrap_or_else(|e| panic!("not TOML: {e}\n{out}"));
    assert_eq!(settings["max_sessions"].as_integer(), Some(7));
    root.write("again.toml", out.as_bytes());
    let (ok, again, err) = mioftpd_with_output(&["check-config", root.join("again.toml").to_str().unwrap()], "");
    assert!(ok, "{err}");
    let body = |report: &str| report.lines().skip(1).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(body(&again), body(&out), "a round trip changes nothing");

    // What the server or a login would refuse.
    let broken = [
        (config.replace(root.path.to_str().unwrap(), "/nonexistent"), "cannot serve /nonexistent"),
        (config.clone() + "listen = \"nowhere\"\n", "key \"listen\": invalid value \"nowhere\""),
    ];
    root.write("users-bad-home", format!("carol:{hash}:home=gone\n").as_bytes());
    let bad_home = config.replace("/users\"", "/users-bad-home\"");
    root.write("users-bad-line", format!("carol:{hash}\ndave\n").as_bytes());
    let bad_line = config.replace("/users\"", "/users-bad-line\"");
    let no_account = config.clone() + "run_as = \"no-such-account-here\"\n";
    let broken = broken.into_iter().chain([
        (bad_home, "user carol: home gone"),
        (bad_line, "line 2"),
        (no_account, "run_as: no such user: no-such-account-here"),
    ]);
    for (text, expected) in broken {
        root.write("broken.toml", text.as_bytes());
        let (ok, out, err) = mioftpd_with_output(&["check-config", root.join("broken.toml").to_str().unwrap()], "");
        assert!(!ok && out.is_empty() && err.contains(expected), "{expected:?}: {err}");
    }
}

/// The DER certificate the server presents after `AUTH TLS`, as hex (Python's ssl).
fn presented_certificate(addr: std::net::SocketAddr) -> String {
    const PY: &str = "import socket, ssl, sys\n\
        s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n\
        f = s.makefile('rb'); f.readline(); s.sendall(b'AUTH TLS\\r\\n'); f.readline()\n\
        ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
        print(ctx.wrap_socket(s).getpeercert(binary_form=True).hex())\n";
    let dir = TempRoot::new("presented");
    let (ok, stdout, stderr) = run("python3", &["-c", PY, &addr.port().to_string()], b"", &dir.path);
    assert!(ok, "{stderr}");
    stdout.trim().to_string()
}

#[test]
fn sighup_reloads_the_tls_certificate() {
    if !require("python3") {
        return;
    }
    let dir = TempRoot::new("sighup-tls");
    let make = || rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let install = |made: &rcgen::CertifiedKey<rcgen::KeyPair>| {
        dir.write("cert.pem", made.cert.pem().as_bytes());
        dir.write("key.pem", made.signing_key.serialize_pem().as_bytes());
        made.cert.der().iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let first = install(&make());
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let args = [
        "--root",
        dir.path.to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let (child, addr, stderr) = spawn_server(&args);
    let server = Running(child);
    let log = follow(stderr);
    assert_eq!(presented_certificate(addr), first);

    let renewed = install(&make());
    server.signal(libc::SIGHUP);
    assert!(wait_for(&log, "reload: TLS").contains("INFO"));
    assert_eq!(presented_certificate(addr), renewed, "new sessions get the renewed certificate");

    dir.write("cert.pem", b"half-written\n");
    server.signal(libc::SIGHUP);
    let line = wait_for(&log, "reload: TLS");
    assert!(line.contains("WARN") && line.contains("keeping"), "{line}");
    assert_eq!(presented_certificate(addr), renewed, "a bad file keeps the certificate loaded before");
    server.stop();
}

#[test]
fn info_lines_carry_session_id_peer_and_user() {
    let dir = TempRoot::new("info-lines");
    dir.write("f.txt", b"twelve bytes");
    let (child, addr, stderr) = spawn_server(&["--root", dir.path.to_str().unwrap()]);
    let server = Running(child);
    let log = follow(stderr);
    let mut c = Raw::anonymous(addr);
    assert_eq!(c.download("RETR f.txt"), b"twelve bytes");
    c.expect_cmd("QUIT", 221);
    assert!(wait_for(&log, "connect from").contains("[#1] connect from 127.0.0.1:"));
    assert!(wait_for(&log, "login").contains("[#1] login anonymous from 127.0.0.1"));
    let transfer = wait_for(&log, "RETR");
    assert!(
        transfer.contains("INFO") && transfer.contains("[#1] anonymous@127.0.0.1 RETR /f.txt: 12 bytes"),
        "{transfer}"
    );
    assert!(wait_for(&log, "closed").contains("[#1] closed (anonymous@127.0.0.1)"));
    server.stop();
}

#[test]
fn sigterm_stops_every_worker_and_session_ids_stay_unique() {
    let dir = TempRoot::new("workers-sigterm");
    let (mut child, addr, stderr) = spawn_server(&["--root", dir.path.to_str().unwrap(), "--workers", "2"]);
    // 16 sessions: the kernel spreads them over both workers (all on one: 1 in 2^15).
    let mut sessions: Vec<Raw> = (0..16).map(|_| Raw::anonymous(addr)).collect();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    for c in &mut sessions {
        assert_eq!(c.reply().0, 421, "every worker drains its sessions");
    }
    assert!(child.wait().unwrap().success());
    let log = std::io::read_to_string(stderr).unwrap();
    // spawn_server took the first worker's "serving" line; the other one is here.
    assert!(log.contains(" of 2)"), "{log}");
    let mut ids: Vec<&str> =
        log.lines().filter(|l| l.contains("] connect from")).filter_map(|l| l.split("[#").nth(1)).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 16, "one id per session over both workers: {log}");
}

#[test]
fn run_as_with_workers_drops_root_in_every_thread() {
    let dir = TempRoot::new("runas-workers");
    let root = dir.path.to_str().unwrap();
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIP: not root, so --run-as cannot be tried with --workers");
        return;
    }
    let (mut child, addr, _stderr) = spawn_server(&["--root", root, "--run-as", "nobody", "--workers", "2"]);
    let mut c = Raw::anonymous(addr);
    c.expect_cmd("NOOP", 200);
    // The main thread, the second worker and each worker's password checker.
    let tasks: Vec<_> =
        std::fs::read_dir(format!("/proc/{}/task", child.id())).unwrap().map(|t| t.unwrap().path()).collect();
    assert!(tasks.len() >= 4, "{tasks:?}");
    for task in tasks {
        let status = std::fs::read_to_string(task.join("status")).unwrap();
        let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert!(uids.split_whitespace().skip(1).all(|u| u != "0"), "{}: {uids}", task.display());
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

#[test]
fn sighup_reopens_the_transfer_log_after_a_rotation() {
    let dir = TempRoot::new("xferlog-rotate");
    dir.write("served/f.txt", b"rotate me");
    let (log_file, rotated) = (dir.join("xferlog"), dir.join("xferlog.1"));
    let root = dir.join("served");
    let args = ["--root", root.to_str().unwrap(), "--xferlog", log_file.to_str().unwrap()];
    let (child, addr, stderr) = spawn_server(&args);
    let server = Running(child);
    let log = follow(stderr);
    let mut c = Raw::anonymous(addr);
    assert_eq!(c.download("RETR f.txt"), b"rotate me");
    // logrotate without copytruncate: move the file away, then signal.
    eventually("the first line", || std::fs::read_to_string(&log_file).is_ok_and(|t| t.lines().count() == 1));
    std::fs::rename(&log_file, &rotated).unwrap();
    server.signal(libc::SIGHUP);
    assert!(wait_for(&log, "reload: transfer log").contains("INFO"));
    assert_eq!(c.download("RETR f.txt"), b"rotate me");
    eventually("the second line", || std::fs::read_to_string(&log_file).is_ok_and(|t| t.lines().count() == 1));
    assert_eq!(std::fs::read_to_string(&rotated).unwrap().lines().count(), 1, "the rotated file got nothing new");
    c.expect_cmd("QUIT", 221);
    server.stop();
}
