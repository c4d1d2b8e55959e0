//! Bounded resources: timeouts, connection limits and login throttling, all driven by the loop's
//! timers — and none of them pausing other clients.

mod common;
use common::*;
use std::io::Read;
use std::net::TcpStream;

#[test]
fn a_silent_logged_in_session_is_closed_with_421() {
    let server = TestServer::start_with("idle", |cfg| cfg.idle_timeout = 1);
    let mut c = Raw::anonymous(server.addr);
    assert_eq!(c.reply().0, 421);
    assert!(c.is_closed());
    server.assert_no_open_slots();
}

#[test]
fn a_connection_that_never_logs_in_is_closed_even_if_it_keeps_talking() {
    let server = TestServer::start_with("login-timeout", |cfg| cfg.login_timeout = 1);
    let mut c = Raw::connect(server.addr);
    // NOOPs do not extend the login window.
    let mut code = 200;
    while code == 200 {
        std::thread::sleep(std::time::Duration::from_millis(200));
        code = c.cmd("NOOP").0;
    }
    assert_eq!(code, 421);
    assert!(c.is_closed());
}

#[test]
fn rein_opens_a_fresh_login_window() {
    let server = TestServer::start_with("rein-window", |cfg| cfg.login_timeout = 1);
    let mut c = Raw::anonymous(server.addr);
    std::thread::sleep(std::time::Duration::from_millis(1500)); // older than the login window
    c.expect_cmd("REIN", 220);
    c.expect_cmd("USER anonymous", 331);
    c.expect_cmd("PASS x", 230);
}

#[test]
fn a_passive_port_nobody_connects_to_fails_the_transfer_with_425() {
    let server = TestServer::start_with("pasv-timeout", |cfg| cfg.data_timeout = 1);
    server.root.write("f", b"x");
    let mut c = Raw::anonymous(server.addr);
    c.expect_cmd("EPSV", 229);
    c.expect_cmd("RETR f", 150);
    c.expect(425);
    assert_eq!(c.cmd("NOOP").0, 200, "the session goes on");
}

#[test]
fn a_download_nobody_reads_fails_with_426_and_frees_its_slot() {
    let server = TestServer::start_with("stall", |cfg| cfg.data_timeout = 1);
    server.root.write("big", &random_bytes(32 * 1024 * 1024, 1));
    let mut c = Raw::anonymous(server.addr);
    let data = c.epsv();
    c.expect_cmd("RETR big", 150);
    c.expect(426);
    drop(data);
    assert_eq!(c.cmd("NOOP").0, 200);
    drop(c);
    server.assert_no_open_slots();
}

#[test]
fn per_ip_and_global_session_limits_answer_421() {
    let server = TestServer::start_with("per-ip", |cfg| cfg.max_per_ip = 2);
    let first = Raw::connect(server.addr);
    let _second = Raw::connect(server.addr);
    let mut third = std::net::TcpStream::connect(server.addr).unwrap();
    let mut reply = String::new();
    third.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("421 "), "{reply:?}");
    drop(first);
    // The slot frees once the server notices the close.
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let mut again = std::net::TcpStream::connect(server.addr).unwrap();
        let mut line = [0u8; 3];
        again.read_exact(&mut line).unwrap();
        if &line == b"220" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the limit was never released");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let server = TestServer::start_with("global", |cfg| cfg.max_sessions = 1);
    let _only = Raw::connect(server.addr);
    let mut extra = std::net::TcpStream::connect(server.addr).unwrap();
    let mut reply = String::new();
    extra.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("421 "), "{reply:?}");
}

#[test]
fn failed_logins_are_answered_late_without_pausing_others_and_then_cut_off() {
    let users = TempRoot::new("throttle-users");
    std::fs::write(users.join("u"), format!("alice:{}\n", mioftpd::auth::hash_password("pw").unwrap())).unwrap();
    let server = TestServer::start_with("throttle", |cfg| {
        cfg.users = Some(users.join("u"));
        cfg.failed_login_delay = 2000;
        cfg.max_login_failures = 2;
    });
    let mut guesser = Raw::connect(server.addr);
    let mut other = Raw::connect(server.addr);
    guesser.expect_cmd("USER alice", 331);
    guesser.send("PASS wrong");
    // While the guesser waits for its verdict, another client is served at once.
    for _ in 0..5 {
        assert_eq!(other.cmd("NOOP").0, 200);
    }
    other.login("alice", "pw");
    assert_eq!(guesser.reply().0, 530);
    guesser.expect_cmd("USER alice", 331);
    assert_eq!(guesser.cmd("PASS wrong again").0, 421, "too many failures");
    assert!(guesser.is_closed());
}

#[test]
fn a_slow_password_hash_does_not_stall_other_clients() {
    let users = TempRoot::new("bcrypt-users");
    let slow = bcrypt::hash("pw", 13).unwrap(); // hundreds of milliseconds per check
    std::fs::write(users.join("u"), format!("slow:{slow}\n")).unwrap();
    let server = TestServer::start_with("bcrypt", |cfg| {
        cfg.users = Some(users.join("u"));
        cfg.anonymous = true;
    });
    server.root.write("f", &random_bytes(100_000, 5));
    let mut slow_login = Raw::connect(server.addr);
    let mut other = Raw::connect(server.addr);
    other.login("anonymous", "x");
    slow_login.expect_cmd("USER slow", 331);
    slow_login.send("PASS pw");
    // The other session completes a whole transfer while the hash is being checked.
    assert_eq!(other.download("RETR f").len(), 100_000);
    let mut pending = [0u8; 1];
    slow_login.stream.set_nonblocking(true).unwrap();
    let still_waiting =
        matches!(slow_login.stream.peek(&mut pending), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    slow_login.stream.set_nonblocking(false).unwrap();
    assert!(still_waiting, "the hash should still be running: this test needs a slower hash");
    assert_eq!(slow_login.reply().0, 230);
}

/// Hundreds of connects at once, beyond the session limit: every one is answered, with 220 up
/// to the limit and 421 past it, and none is left waiting in the listen backlog.
#[test]
fn an_accept_storm_is_answered_in_full() {
    const LIMIT: usize = 200;
    const STORM: usize = 600;
    let server = TestServer::start_with("storm", |cfg| {
        cfg.max_sessions = LIMIT;
        cfg.max_per_ip = STORM;
    });
    let addr = server.addr;
    let connectors: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || (0..STORM / 8).map(|_| TcpStream::connect(addr).unwrap()).collect::<Vec<_>>())
        })
        .collect();
    let streams: Vec<TcpStream> = connectors.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let mut codes = std::collections::HashMap::new();
    for mut stream in streams.iter() {
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut code = [0u8; 3];
        stream.read_exact(&mut code).expect("every connection is answered");
        *codes.entry(code).or_insert(0usize) += 1;
    }
    assert_eq!(codes.get(b"220"), Some(&LIMIT), "{codes:?}");
    assert_eq!(codes.get(b"421"), Some(&(STORM - LIMIT)), "{codes:?}");
    drop(streams);
    server.assert_no_open_slots();
}
