//! Many clients at once on the single-threaded loop: everyone makes progress, even next to a
//! silent client, a client that never reads its data connection, and a half-sent command.

mod common;
use common::*;
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;

#[test]
fn many_downloads_finish_next_to_stalled_clients() {
    let server = TestServer::start("concurrency");
    let content = Arc::new(random_bytes(4 * 1024 * 1024, 42));
    server.root.write("big.bin", &content);
    server.root.write("huge.bin", &random_bytes(64 * 1024 * 1024, 43));

    // A client that connects and says nothing.
    let silent = TcpStream::connect(server.addr).unwrap();
    // A client that starts a large download and never reads it: its socket buffers fill up.
    let mut stuck = Raw::anonymous(server.addr);
    let stuck_data = stuck.epsv();
    stuck.expect_cmd("RETR huge.bin", 150);
    // A client that sends half a command and stops.
    let mut half = TcpStream::connect(server.addr).unwrap();
    half.write_all(b"USER anonym").unwrap();

    let clients: Vec<_> = (0..24)
        .map(|i| {
            let (addr, content) = (server.addr, content.clone());
            std::thread::spawn(move || {
                let mut c = Raw::anonymous(addr);
                for _ in 0..2 {
                    let got = c.download("RETR big.bin");
                    assert!(got == *content, "client {i} got a corrupt download");
                }
                c.expect_cmd("QUIT", 221);
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a client failed");
    }

    // The stalled ones are still served: they can go on or leave.
    assert_eq!(stuck.cmd("NOOP").0, 200, "a client with a stalled transfer still gets answers");
    drop((silent, stuck, stuck_data, half));
    server.assert_no_open_slots();
}

#[test]
fn hundreds_of_open_connections_all_get_a_greeting() {
    let server = TestServer::start_with("storm", |cfg| cfg.max_per_ip = 1000);
    let conns: Vec<Raw> = (0..300).map(|_| Raw::connect(server.addr)).collect();
    assert_eq!(conns.len(), 300);
    drop(conns);
    server.assert_no_open_slots();
}
