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
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
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
