//! Per-user settings of the users file, over real sockets: a home directory is the user's `/`
//! (inside the root, or instead of it), jailed like the root; read-only and read-write apply
//! within it; a missing home refuses the login.

mod common;
use common::*;

/// A server over a fresh root with the users file `lines` (each `NAME:FLAGS`, password `pw`).
fn server_with(label: &str, lines: &[&str]) -> (TestServer, TempRoot) {
    let users = TempRoot::new(&format!("{label}-users"));
    let hash = mioftpd::auth::hash_password("pw").unwrap();
    let text: String = lines
        .iter()
        .map(|line| {
            let (name, flags) = line.split_once(':').unwrap();
            format!("{name}:{hash}:{flags}\n")
        })
        .collect();
    std::fs::write(users.join("users"), text).unwrap();
    let server = TestServer::start_with(label, |cfg| cfg.users = Some(users.join("users")));
    (server, users)
}

fn names(listing: &[u8]) -> Vec<String> {
    let mut names: Vec<String> = String::from_utf8_lossy(listing).lines().map(str::to_string).collect();
    names.sort();
    names
}

#[test]
fn a_user_sees_only_their_home_and_cannot_leave_it() {
    let (server, _users) = server_with("home", &["alice:rw,home=homes/alice", "carol:ro"]);
    server.root.write("top-secret.txt", b"not for alice");
    server.root.write("homes/alice/mine.txt", b"alice's");
    server.root.write("homes/bob/bobs.txt", b"bob's");
    std::os::unix::fs::symlink(server.root.join("top-secret.txt"), server.root.join("homes/alice/link-out")).unwrap();

    let mut alice = server.login("alice");
    assert_eq!(alice.cmd("PWD").1, "\"/\" is the current directory.");
    assert_eq!(names(&alice.download("NLST")), ["link-out", "mine.txt"]);
    assert_eq!(alice.download("RETR /mine.txt"), b"alice's");
    alice.expect_cmd("CWD ../../..", 250);
    assert_eq!(alice.cmd("PWD").1, "\"/\" is the current directory.", "'..' stops at the home");
    assert_eq!(names(&alice.download("NLST ..")), ["../link-out", "../mine.txt"], "the home again");
    for line in ["SIZE ../top-secret.txt", "SIZE /../bob/bobs.txt", "CWD ../bob", "SIZE link-out", "SIZE /homes"] {
        assert_eq!(alice.cmd(line).0, 550, "{line}");
    }
    alice.upload("STOR new.txt", b"uploaded");
    assert_eq!(server.root.read("homes/alice/new.txt"), b"uploaded", "writes land in the home");

    let mut carol = server.login("carol");
    assert_eq!(carol.download("RETR /homes/alice/mine.txt"), b"alice's", "no home: the whole root");
}

#[test]
fn an_absolute_home_outside_the_root_replaces_it() {
    let elsewhere = TempRoot::new("home-elsewhere");
    elsewhere.write("there.txt", b"outside the root");
    let line = format!("dave:ro,home={}", elsewhere.path.display());
    let (server, _users) = server_with("abshome", &[&line, "erin:rw"]);
    server.root.write("root-file.txt", b"in the root");

    let mut dave = server.login("dave");
    assert_eq!(names(&dave.download("NLST")), ["there.txt"]);
    assert_eq!(dave.download("RETR there.txt"), b"outside the root");
    assert_eq!(dave.cmd("SIZE ../root-file.txt").0, 550);
    let _data = dave.epsv();
    assert_eq!(dave.cmd("STOR x.txt").0, 550, "ro applies in the home");
    assert!(!elsewhere.join("x.txt").exists());

    let mut erin = server.login("erin");
    assert_eq!(erin.cmd("SIZE root-file.txt").0, 213);
    assert_eq!(erin.cmd(&format!("SIZE {}", elsewhere.join("there.txt").display())).0, 550);
}

#[test]
fn read_only_and_read_write_per_user_in_a_shared_home() {
    let (server, _users) = server_with("rwro", &["writer:rw,home=shared", "reader:ro,home=shared"]);
    server.root.write("shared/doc.txt", b"v1");
    let mut writer = server.login("writer");
    writer.upload("STOR doc.txt", b"v2");
    writer.expect_cmd("MKD sub", 257);
    let mut reader = server.login("reader");
    assert_eq!(reader.download("RETR doc.txt"), b"v2");
    for line in ["MKD other", "DELE doc.txt", "RMD sub", "RNFR doc.txt"] {
        assert_eq!(reader.cmd(line).0, 550, "{line}");
    }
    assert_eq!(server.root.read("shared/doc.txt"), b"v2");
}

#[test]
fn a_missing_home_refuses_the_login_with_530_and_others_still_log_in() {
    let (server, _users) = server_with("nohome", &["ghost:rw,home=not-there", "frank:rw,home=/nonexistent/dir"]);
    for user in ["ghost", "frank"] {
        let mut c = Raw::connect(server.addr);
        c.expect_cmd(&format!("USER {user}"), 331);
        let (code, text) = c.cmd("PASS pw");
        assert_eq!((code, text.as_str()), (530, "Home directory not available."), "{user}");
        assert_eq!(c.cmd("PWD").0, 530, "not logged in");
        c.expect_cmd("QUIT", 221);
    }
    std::fs::create_dir(server.root.join("not-there")).unwrap();
    let mut ghost = server.login("ghost");
    assert_eq!(ghost.download("NLST"), b"", "the home, once created, works without a restart");
}
