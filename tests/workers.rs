//! `--workers N` in one process: the loops share the control port, each serves whole sessions,
//! and the session limits count over all of them.

mod common;
use common::*;
use std::sync::Arc;

#[test]
fn two_workers_share_the_port_and_each_serves_whole_sessions() {
    let server = TestServer::with_users_and("workers", |cfg| cfg.workers = 2);
    assert_eq!(server.handles.len(), 2);
    let content = Arc::new(random_bytes(256 * 1024, 9));
    server.root.write("f.bin", &content);
    // The kernel picks a worker per connection by a hash of its ports: with 32 sessions held,
    // both get some (all on one would be a 1 in 2^31 chance).
    let sessions: Vec<Raw> = (0..32).map(|_| server.login("alice")).collect();
    let per_worker: Vec<usize> = server.handles.iter().map(|h| h.open_slots()).collect();
    assert!(per_worker.iter().all(|&n| n > 0), "slots per worker: {per_worker:?}");
    assert_eq!(per_worker.iter().sum::<usize>(), 32, "one control slot per session, nothing else");
    // Every session's passive port and data connection are on its own worker.
    let threads: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let content = content.clone();
            std::thread::spawn(move || {
                assert!(c.download("RETR f.bin") == *content, "session {i}: corrupt download");
                c.upload(&format!("STOR up-{i}.bin"), &content[..1000 + i]);
                c.expect_cmd("QUIT", 221);
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a client failed");
    }
    for i in 0..32 {
        assert!(server.root.read(&format!("up-{i}.bin")) == content[..1000 + i], "upload {i}");
    }
    server.assert_no_open_slots();
}

#[test]
fn limits_count_sessions_over_all_workers() {
    let server = TestServer::start_with("workers-per-ip", |cfg| {
        cfg.workers = 2;
        cfg.max_per_ip = 3;
    });
    let held: Vec<Raw> = (0..3).map(|_| Raw::connect(server.addr)).collect();
    // Each new connection lands on either worker; every one must see the other's sessions.
    for _ in 0..10 {
        let reply = read_until_closed(server.addr, b"");
        assert!(reply.starts_with("421 Too many connections from your address."), "{reply:?}");
    }
    drop(held);
    server.assert_no_open_slots();
    let _fresh = Raw::connect(server.addr); // the counts went back down

    let server = TestServer::start_with("workers-global", |cfg| {
        cfg.workers = 2;
        cfg.max_sessions = 2;
    });
    let _held: Vec<Raw> = (0..2).map(|_| Raw::connect(server.addr)).collect();
    for _ in 0..10 {
        let reply = read_until_closed(server.addr, b"");
        assert!(reply.starts_with("421 Too many users"), "{reply:?}");
    }
}
