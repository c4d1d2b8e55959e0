//! Control-channel bytes → `LineReader` → lines → `command::parse` / `command::loggable`, and the
//! same bytes as text → `addr::parse_port` / `addr::parse_eprt`.
//!
//! Checks: nothing panics; framing does not depend on how the bytes are split into reads (one
//! read, one byte per read, and reads of sizes taken from the input give the same lines); no
//! line is `MAX_LINE` bytes or more or holds a LF; every parse error is a 5xx reply; a `PASS`
//! line is never logged with its password; parsed addresses survive a round trip through the
//! text they came from.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mioftpd::ftp::addr::{parse_eprt, parse_port};
use mioftpd::ftp::command::{Command, loggable, parse};
use mioftpd::ftp::line::{Line, LineReader, MAX_LINE};
use std::net::SocketAddr;

/// Pushes `data` in the chunks `sizes` yields, draining complete lines after every push as the
/// control connection does.
fn lines(data: &[u8], mut sizes: impl FnMut(usize) -> usize) -> Vec<Line> {
    let mut reader = LineReader::new();
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let n = sizes(at).clamp(1, data.len() - at);
        reader.push(&data[at..at + n]);
        at += n;
        while let Some(line) = reader.next_line() {
            out.push(line);
        }
    }
    assert!(!reader.has_line());
    assert!(reader.wants_input(), "an empty backlog must not stop reading");
    out
}

fn check_line(line: &[u8]) {
    assert!(line.len() < MAX_LINE, "a {}-byte line got through", line.len());
    assert!(!line.contains(&b'\n'));
    let logged = loggable(line);
    match parse(line) {
        Ok(Command::Pass(_)) => assert_eq!(logged, "PASS ****", "password leaked to the log"),
        Ok(_) => {}
        Err(reply) => {
            let code = reply.code as u16;
            assert!((500..600).contains(&code), "parse error with code {code}");
            let mut wire = Vec::new();
            reply.encode(&mut wire);
            assert!(wire.ends_with(b"\r\n"));
        }
    }
}

fn check_addresses(text: &str) {
    if let Some(addr) = parse_port(text) {
        let SocketAddr::V4(v4) = addr else { panic!("PORT gave an IPv6 address {addr}") };
        let [a, b, c, d] = v4.ip().octets();
        let [p1, p2] = v4.port().to_be_bytes();
        assert_eq!(parse_port(&format!("{a},{b},{c},{d},{p1},{p2}")), Some(addr));
    }
    if let Some(addr) = parse_eprt(text) {
        let proto = if addr.is_ipv4() { 1 } else { 2 };
        assert_eq!(parse_eprt(&format!("|{proto}|{}|{}|", addr.ip(), addr.port())), Some(addr));
    }
}

fuzz_target!(|data: &[u8]| {
    let whole = lines(data, |_| data.len());
    let bytewise = lines(data, |_| 1);
    // Chunk sizes 1..=16 taken from the input itself, so the fuzzer steers the splits.
    let chunked = lines(data, |at| 1 + usize::from(data[at] % 16));
    assert_eq!(whole, bytewise, "framing depends on read boundaries");
    assert_eq!(whole, chunked, "framing depends on read boundaries");

    for line in &whole {
        if let Line::Command(line) = line {
            check_line(line);
            check_addresses(&String::from_utf8_lossy(line));
        }
    }
    check_addresses(&String::from_utf8_lossy(data));
});
