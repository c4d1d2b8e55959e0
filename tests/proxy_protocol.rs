//! `--proxy-protocol` with the headers written by hand (the real HAProxy is in
//! `tests/haproxy.rs`): the session takes the client's address from the header, for its
//! limits and its passive-port check; bytes pipelined after the header are kept; connections
//! without a valid header never get a greeting.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn v1(client: &str) -> Vec<u8> {
    format!("PROXY TCP4 {client} 198.51.100.1 40000 21\r\n").into_bytes()
}

fn v2(command: u8, client: [u8; 4]) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend([command, 0x11, 0, 12]);
    header.extend(client);
    header.extend([198, 51, 100, 1]);
    header.extend(40000u16.to_be_bytes());
    header.extend(21u16.to_be_bytes());
    header
}

fn proxied_server(label: &str) -> TestServer {
    TestServer::with_users_and(label, |cfg| cfg.proxy_protocol = true)
}

/// The address the session believes its client has, as `STAT` reports it.
fn client_of(c: &mut Raw) -> String {
    let status = c.expect_cmd("STAT", 211);
    let line = status.lines().find(|l| l.contains("Connected from")).expect("STAT names the peer");
    line.rsplit(' ').next().unwrap().to_string()
}

/// `EPSV`, then a data connection that starts with `header`.
fn data_connection(c: &mut Raw, server: SocketAddr, header: &[u8]) -> TcpStream {
    let text = c.expect_cmd("EPSV", 229);
    let port: u16 = text.split('|').nth(3).and_then(|p| p.parse().ok()).expect("EPSV port");
    let mut data = TcpStream::connect((server.ip(), port)).expect("data connect");
    data.set_read_timeout(Some(PATIENCE)).unwrap();
    data.write_all(header).unwrap();
    data
}

#[test]
fn a_v1_header_names_the_client_and_commands_pipelined_behind_it_are_kept() {
    let server = proxied_server("pp-v1");
    server.root.write("f.txt", b"hello through a balancer\n");
    let mut first_bytes = v1("192.0.2.7");
    first_bytes.extend(b"USER alice\r\nPASS pw\r\n");
    let mut c = Raw::connect_with(server.addr, &first_bytes);
    c.expect(331);
    c.expect(230);
    assert_eq!(client_of(&mut c), "192.0.2.7");

    let mut data = data_connection(&mut c, server.addr, &v1("192.0.2.7"));
    c.expect_cmd("RETR f.txt", 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"hello through a balancer\n");
    c.expect(226);

    // An upload whose first bytes travel in the same packet as the data connection's header.
    let payload = random_bytes(300_000, 5);
    let mut first_bytes = v1("192.0.2.7");
    first_bytes.extend(&payload[..1000]);
    let mut data = data_connection(&mut c, server.addr, &first_bytes);
    c.expect_cmd("STOR up.bin", 150);
    data.write_all(&payload[1000..]).unwrap();
    drop(data);
    c.expect(226);
    assert!(server.root.read("up.bin") == payload, "the bytes behind the header are part of the upload");
    c.expect_cmd("QUIT", 221);
    server.assert_no_open_slots();
}

#[test]
fn a_v2_header_split_over_packets_and_a_v2_local_health_check() {
    let server = proxied_server("pp-v2");
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_nodelay(true).unwrap();
    for byte in v2(0x21, [192, 0, 2, 9]) {
        stream.write_all(&[byte]).unwrap(); // a packet per byte: the header arrives in pieces
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut c = Raw::over(stream);
    c.login("bob", "pw");
    assert_eq!(client_of(&mut c), "192.0.2.9");

    // LOCAL: the balancer speaks for itself; the connection's own address stands.
    let mut c = Raw::connect_with(server.addr, &v2(0x20, [192, 0, 2, 9]));
    c.login("bob", "pw");
    assert_eq!(client_of(&mut c), "127.0.0.1");
}

#[test]
fn a_data_connection_for_another_client_is_refused_and_the_right_one_still_gets_in() {
    let server = proxied_server("pp-foreign");
    server.root.write("f.txt", b"only for 192.0.2.7\n");
    let mut c = Raw::connect_with(server.addr, &v1("192.0.2.7"));
    c.login("bob", "pw");
    let text = c.expect_cmd("EPSV", 229);
    let port: u16 = text.split('|').nth(3).and_then(|p| p.parse().ok()).unwrap();
    let mut thief = TcpStream::connect((server.addr.ip(), port)).unwrap();
    thief.set_read_timeout(Some(PATIENCE)).unwrap();
    thief.write_all(&v1("192.0.2.66")).unwrap();
    let mut stolen = Vec::new();
    thief.read_to_end(&mut stolen).unwrap();
    assert!(stolen.is_empty(), "a foreign client's data connection is closed unserved");

    let mut data = TcpStream::connect((server.addr.ip(), port)).unwrap();
    data.write_all(&v1("192.0.2.7")).unwrap();
    c.expect_cmd("RETR f.txt", 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"only for 192.0.2.7\n");
    c.expect(226);
}

#[test]
fn the_per_ip_limit_counts_the_clients_the_headers_name() {
    let server = TestServer::start_with("pp-per-ip", |cfg| {
        cfg.proxy_protocol = true;
        cfg.max_per_ip = 1;
    });
    let _a = Raw::connect_with(server.addr, &v1("192.0.2.7"));
    let _b = Raw::connect_with(server.addr, &v1("192.0.2.8")); // same socket peer, other client
    let reply = read_until_closed(server.addr, &v1("192.0.2.7"));
    assert!(reply.starts_with("421 Too many connections from your address."), "{reply:?}");
}

#[test]
fn connections_without_a_valid_header_get_no_greeting() {
    let server = proxied_server("pp-refused");
    let too_long = format!("PROXY UNKNOWN {}", "x".repeat(200)); // no CRLF within 107 bytes
    let bad: [&[u8]; 5] = [
        b"USER anonymous\r\n",
        b"PROXY TCP4 1.2.3.4\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        too_long.as_bytes(),
        b"\r\n\r\n\0\r\nQUIT\n\x21\x12\0\x0c", // v2, UDP
    ];
    for bytes in bad {
        let reply = read_until_closed(server.addr, bytes);
        assert_eq!(reply, "", "{:?} got an answer", String::from_utf8_lossy(bytes));
    }
    // A client that bypasses the balancer waits for the greeting: it is closed at the timeout.
    let started = Instant::now();
    assert_eq!(read_until_closed(server.addr, b""), "");
    assert!(started.elapsed() < PATIENCE);
    server.assert_no_open_slots();
}

#[test]
fn connections_waiting_for_their_header_are_bounded_by_max_sessions() {
    let server = TestServer::with_users_and("pp-pending", |cfg| {
        cfg.proxy_protocol = true;
        cfg.max_sessions = 2;
    });
    let silent: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(server.addr).expect("connect")).collect();
    eventually("two connections wait for their header", || server.open_slots() == 2);
    let reply = read_until_closed(server.addr, b"");
    assert!(reply.starts_with("421 "), "a third connection waiting for a header was not refused: {reply:?}");
    drop(silent);
    eventually("the silent connections are gone", || server.open_slots() == 0);
    let mut c = Raw::connect_with(server.addr, &v1("192.0.2.7")); // greeted
    c.expect_cmd("NOOP", 200);
}
