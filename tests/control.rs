//! Control-channel dialogues over a real socket: exact reply codes for framing, login, errors.

mod common;
use common::*;

#[test]
fn greeting_then_530_before_login_and_basics_allowed() {
    let server = TestServer::start("prelogin");
    let mut c = Raw::connect(server.addr);
    for line in ["PWD", "LIST", "RETR x", "CWD /", "PASV", "STOR x", "SIZE x"] {
        assert_eq!(c.cmd(line).0, 530, "{line}");
    }
    assert_eq!(c.cmd("SYST"), (215, "UNIX Type: L8".to_string()));
    assert_eq!(c.cmd("NOOP").0, 200);
    assert_eq!(c.cmd("HELP").0, 214);
    c.expect_cmd("QUIT", 221);
    assert!(c.is_closed());
    drop(c);
    server.assert_no_open_slots();
}

#[test]
fn feat_is_a_well_formed_multiline_reply() {
    let server = TestServer::start("feat");
    let mut c = Raw::connect(server.addr);
    let text = c.expect_cmd("FEAT", 211);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"Features:"));
    assert_eq!(lines.last(), Some(&"211 End"));
    for feature in ["EPSV", "EPRT", "PASV", "SIZE", "MDTM", "UTF8"] {
        assert!(lines.contains(&format!(" {feature}").as_str()), "FEAT lacks {feature}: {text}");
    }
}

#[test]
fn verbs_are_case_insensitive_and_bare_lf_works() {
    let server = TestServer::start("case");
    let mut c = Raw::connect(server.addr);
    c.send_bytes(b"user anonymous\n");
    c.expect(331);
    c.send_bytes(b"pass x\n");
    c.expect(230);
    assert_eq!(c.cmd("xpwd"), (257, "\"/\" is the current directory.".to_string()));
}

#[test]
fn pipelined_commands_in_one_write_are_answered_in_order() {
    let server = TestServer::start("pipeline");
    server.root.write("f.txt", b"12345");
    let mut c = Raw::connect(server.addr);
    c.send_bytes(b"USER anonymous\r\nPASS x\r\nSIZE f.txt\r\nNOOP\r\nCWD /nope\r\nPWD\r\n");
    assert_eq!(c.reply().0, 331);
    assert_eq!(c.reply().0, 230);
    assert_eq!(c.reply(), (213, "5".to_string()));
    assert_eq!(c.reply().0, 200);
    assert_eq!(c.reply().0, 550);
    assert_eq!(c.reply().0, 257);
}

#[test]
fn over_long_line_gets_500_and_the_session_survives() {
    let server = TestServer::start("longline");
    let mut c = Raw::anonymous(server.addr);
    let mut long = b"NOOP ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 100_000));
    long.extend_from_slice(b"\r\n");
    c.send_bytes(&long);
    assert_eq!(c.reply().0, 500);
    assert_eq!(c.cmd("NOOP").0, 200);
}

#[test]
fn telnet_interrupt_bytes_before_a_command_are_ignored() {
    let server = TestServer::start("telnet");
    let mut c = Raw::anonymous(server.addr);
    c.send_bytes(b"\xff\xf4\xff\xf2NOOP\r\n");
    assert_eq!(c.reply().0, 200);
}

#[test]
fn unknown_and_malformed_commands_get_clear_codes() {
    let server = TestServer::start("errors");
    let mut c = Raw::anonymous(server.addr);
    assert_eq!(c.cmd("FROBNICATE").0, 502);
    assert_eq!(c.cmd("RETR").0, 501);
    assert_eq!(c.cmd("TYPE Z").0, 501);
    assert_eq!(c.cmd("TYPE E").0, 504);
    assert_eq!(c.cmd("MODE B").0, 504);
    assert_eq!(c.cmd("PORT 1,2,3").0, 501);
    assert_eq!(c.cmd("EPRT |7|x|1|").0, 522);
    c.send_bytes(b"\x00\x01\x02\r\n");
    assert_eq!(c.reply().0, 502);
    assert_eq!(c.cmd("NOOP").0, 200);
}

#[test]
fn nothing_runs_after_quit() {
    let server = TestServer::start("quit");
    let mut c = Raw::anonymous(server.addr);
    c.send_bytes(b"QUIT\r\nMKD should-not-exist\r\nNOOP\r\n");
    assert_eq!(c.reply().0, 221);
    assert!(c.is_closed());
    assert!(!server.root.join("should-not-exist").exists());
}

#[test]
fn wrong_password_and_unknown_user_both_get_530() {
    let users = TempRoot::new("users");
    let hash = mioftpd::auth::hash_password("right").unwrap();
    std::fs::write(users.join("users"), format!("alice:{hash}:rw\n")).unwrap();
    let server = TestServer::start_with("badpass", |cfg| {
        cfg.users = Some(users.join("users"));
        cfg.max_login_failures = 10;
    });
    let mut c = Raw::connect(server.addr);
    c.expect_cmd("USER alice", 331);
    assert_eq!(c.cmd("PASS wrong").0, 530);
    c.expect_cmd("USER mallory", 331);
    assert_eq!(c.cmd("PASS right").0, 530);
    c.expect_cmd("USER anonymous", 331);
    assert_eq!(c.cmd("PASS x").0, 530, "anonymous is off when a users file is given");
    assert_eq!(c.cmd("PWD").0, 530);
    c.login("alice", "right");
    assert_eq!(c.cmd("PWD").0, 257);
}

#[test]
fn navigation_is_jailed_to_the_root() {
    let server = TestServer::start("jail");
    server.root.write("sub/inner.txt", b"in");
    let outside = TempRoot::new("outside");
    outside.write("secret.txt", b"secret");
    std::os::unix::fs::symlink(&outside.path, server.root.join("escape")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), server.root.join("secret-link")).unwrap();
    let mut c = Raw::anonymous(server.addr);
    c.expect_cmd("CWD ../../../..", 250);
    assert_eq!(c.cmd("PWD").1, "\"/\" is the current directory.");
    c.expect_cmd("CWD sub", 250);
    c.expect_cmd("CDUP", 250);
    c.expect_cmd("CDUP", 250);
    assert_eq!(c.cmd("PWD").1, "\"/\" is the current directory.");
    for line in ["CWD escape", "SIZE escape/secret.txt", "SIZE secret-link", "SIZE /../../etc/passwd", "CWD /etc"] {
        assert_eq!(c.cmd(line).0, 550, "{line}");
    }
    let _data = c.epsv();
    assert_eq!(c.cmd("RETR secret-link").0, 550);
    assert_eq!(c.cmd("LIST escape").0, 550);
}

#[test]
fn pipelined_commands_with_large_replies_are_all_answered() {
    let server = TestServer::start("bigpipe");
    let mut c = Raw::connect(server.addr);
    c.send_bytes(&b"HELP\r\n".repeat(60));
    for i in 0..60 {
        assert_eq!(c.reply().0, 214, "reply {i}");
    }
}

#[test]
fn a_client_that_half_closes_still_gets_every_answer() {
    let users = TempRoot::new("halfclose-users");
    std::fs::write(users.join("u"), format!("alice:{}\n", mioftpd::auth::hash_password("pw").unwrap())).unwrap();
    let server = TestServer::start_with("halfclose", |cfg| cfg.users = Some(users.join("u")));
    let mut c = Raw::connect(server.addr);
    c.send_bytes(b"USER alice\r\nPASS pw\r\nPWD\r\nQUIT\r\n");
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let codes: Vec<u16> = (0..4).map(|_| c.reply().0).collect();
    assert_eq!(codes, [331, 230, 257, 221]);
}

#[test]
fn mkd_quotes_embedded_quotes() {
    let server = TestServer::with_users("mkdquote");
    let mut c = server.login("alice");
    assert_eq!(c.cmd("MKD a\"b").1, "\"/a\"\"b\" created.");
}
