//! The `mioftpd` binary as an admin uses it: `users add`, start-up errors, and a login with a
//! user it created.

mod common;
use common::*;
use std::io::Write;
use std::process::{Command, Stdio};

fn mioftpd(args: &[&str], stdin: &str) -> (bool, String) {
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
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
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
