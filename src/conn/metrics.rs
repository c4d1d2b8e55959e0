//! The metrics endpoint's sockets (`--metrics ADDR:PORT`): its listener, and one minimal
//! HTTP/1.1 exchange per scrape, each a slot of the same slab as the FTP connections. An
//! exchange reads one request head (at most `MAX_HEAD` bytes), answers `GET /metrics` with the
//! text the loop renders (`Outcome::RenderMetrics`, then `respond`), anything else with 400, 404,
//! 405 or 431, and closes. It renders nothing itself and knows nothing of FTP.
//!
//! ```text
//! Reading --head complete, GET /metrics--> Rendering --respond(text)--> Writing --sent--> Draining
//! Reading --bad or other request-----------------------------------> Writing --sent--> Draining
//! Draining --client's EOF (or MAX_DRAIN bytes)--> closed
//! ```
//! Draining is HTTP's "lingering close": closing with unread input (a request body, the rest of
//! an oversized head) would make the kernel send a reset, which can destroy the answer before
//! the client reads it. So after the answer we send FIN and read until the client closes.

use super::Outcome;
use crate::buffer::{interrupted, would_block};
use log::{debug, warn};
use mio::net::{TcpListener, TcpStream};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

/// The longest request head we read: a scraper's is a few hundred bytes.
pub const MAX_HEAD: usize = 8 * 1024;
/// Time a scrape has, from connect to the last byte of the answer.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Input discarded after the answer before closing anyway.
const MAX_DRAIN: usize = 64 * 1024;
/// After a failed accept (typically out of descriptors), when to try again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

pub struct MetricsListener {
    pub listener: TcpListener,
    /// Set after a failed accept: the loop's deadline brings us back then, as no new readiness
    /// edge would announce the connections still queued.
    pub retry_at: Option<Instant>,
}

impl MetricsListener {
    /// Accepts one scraper at a time; the loop gives it a slot and runs this listener again.
    pub fn ready(&mut self) -> Outcome {
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    debug!("metrics: scrape from {peer}");
                    return Outcome::NewScrape(stream);
                }
                Err(e) if would_block(&e) => return Outcome::Wait,
                Err(e) if interrupted(&e) => {}
                Err(e) => {
                    warn!("metrics: accept failed: {e}; retrying in {} ms", ACCEPT_RETRY.as_millis());
                    self.retry_at = Some(Instant::now() + ACCEPT_RETRY);
                    return Outcome::Wait;
                }
            }
        }
    }

    /// The retry time came: accept again.
    pub fn expire(&mut self) -> Outcome {
        self.retry_at = None;
        Outcome::Again
    }
}

enum State {
    Reading(Vec<u8>),
    Rendering,
    Writing {
        response: Vec<u8>,
        written: usize,
    },
    /// Answer sent; discarded input bytes so far.
    Draining(usize),
}

/// One HTTP connection of a scraper.
pub struct Scrape {
    stream: TcpStream,
    state: State,
    pub opened_at: Instant,
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Metrics,
    /// Answer with this status and close.
    Refuse(u16, &'static str),
}

impl Scrape {
    pub fn new(stream: TcpStream) -> Scrape {
        Scrape { stream, state: State::Reading(Vec::new()), opened_at: Instant::now() }
    }

    pub fn state_name(&self) -> &'static str {
        match self.state {
            State::Reading(_) => "reading",
            State::Rendering => "rendering",
            State::Writing { .. } => "writing",
            State::Draining(_) => "draining",
        }
    }

    /// The loop's rendering of the metrics, for a `GET /metrics`.
    pub fn respond(&mut self, text: String) {
        self.state = State::Writing { response: response(200, "OK", "", text.as_bytes()), written: 0 };
    }

    /// Out of time: one attempt at a `408`, then close.
    pub fn expire(&mut self) -> Outcome {
        if let State::Reading(_) = self.state {
            let _ = self.stream.write(&response(408, "Request Timeout", "", b"request timeout\n"));
        }
        Outcome::Close
    }

    pub fn ready(&mut self) -> Outcome {
        match &mut self.state {
            State::Reading(head) => match read_head(&mut self.stream, head) {
                Ok(None) => Outcome::Wait,
                Ok(Some(Request::Metrics)) => {
                    self.state = State::Rendering;
                    Outcome::RenderMetrics
                }
                Ok(Some(Request::Refuse(status, reason))) => {
                    debug!("metrics: answering {status} {reason}");
                    let allow = if status == 405 { "Allow: GET\r\n" } else { "" };
                    let body = format!("{}\n", reason.to_ascii_lowercase());
                    self.state =
                        State::Writing { response: response(status, reason, allow, body.as_bytes()), written: 0 };
                    self.ready()
                }
                // Gone before asking, or a read error: nobody to answer.
                Err(e) => {
                    debug!("metrics: connection ended before a request: {e}");
                    Outcome::Close
                }
            },
            State::Rendering => Outcome::Wait,
            State::Writing { response, written } => {
                while *written < response.len() {
                    match self.stream.write(&response[*written..]) {
                        Ok(0) => return Outcome::Close,
                        Ok(n) => *written += n,
                        // The writable edge brings us back.
                        Err(e) if would_block(&e) => return Outcome::Wait,
                        Err(e) if interrupted(&e) => {}
                        Err(e) => {
                            debug!("metrics: write failed: {e}");
                            return Outcome::Close;
                        }
                    }
                }
                let _ = self.stream.shutdown(Shutdown::Write);
                self.state = State::Draining(0);
                self.ready()
            }
            State::Draining(discarded) => {
                let mut chunk = [0u8; 4096];
                while *discarded < MAX_DRAIN {
                    match self.stream.read(&mut chunk) {
                        Ok(0) => return Outcome::Close,
                        Ok(n) => *discarded += n,
                        Err(e) if would_block(&e) => return Outcome::Wait,
                        Err(e) if interrupted(&e) => {}
                        Err(_) => return Outcome::Close,
                    }
                }
                Outcome::Close
            }
        }
    }
}

/// Reads until the head is complete (`Some`), the socket would block (`None`), or the peer is
/// gone (`Err`). Never reads more than `MAX_HEAD + 1` bytes in all.
fn read_head(stream: &mut TcpStream, head: &mut Vec<u8>) -> io::Result<Option<Request>> {
    let mut chunk = [0u8; 1024];
    loop {
        let room = (MAX_HEAD + 1 - head.len()).min(chunk.len());
        match stream.read(&mut chunk[..room]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                // Look for the blank line only where it can newly end, not from the start again.
                let from = head.len().saturating_sub(3);
                head.extend_from_slice(&chunk[..n]);
                if let Some(end) = head_end(&head[from..]) {
                    return Ok(Some(parse(&head[..from + end])));
                }
                if head.len() > MAX_HEAD {
                    return Ok(Some(Request::Refuse(431, "Request Header Fields Too Large")));
                }
            }
            Err(e) if would_block(&e) => return Ok(None),
            Err(e) if interrupted(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Where the head ends: after the first blank line (CRLF CRLF, or bare LF LF from a lenient client).
fn head_end(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Decides from the request line alone; the headers do not matter to us.
fn parse(head: &[u8]) -> Request {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut words = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) = (words.next(), words.next(), words.next(), words.next())
    else {
        return Request::Refuse(400, "Bad Request");
    };
    if !version.starts_with(b"HTTP/1.") || method.is_empty() || !target.starts_with(b"/") {
        return Request::Refuse(400, "Bad Request");
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    match (method, path) {
        (b"GET", b"/metrics") => Request::Metrics,
        (_, b"/metrics") => Request::Refuse(405, "Method Not Allowed"),
        _ => Request::Refuse(404, "Not Found"),
    }
}

/// A whole response; `headers` are extra header lines, each ending in CRLF.
fn response(status: u16, reason: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let content_type = if status == 200 { "text/plain; version=0.0.4" } else { "text/plain" };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{headers}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        let cases: [(&[u8], Request); 9] = [
            (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", Request::Metrics),
            (b"GET /metrics?name[]=x HTTP/1.0\r\n\r\n", Request::Metrics),
            (b"GET /metrics HTTP/1.1\n\n", Request::Metrics),
            (b"POST /metrics HTTP/1.1\r\n\r\n", Request::Refuse(405, "Method Not Allowed")),
            (b"GET / HTTP/1.1\r\n\r\n", Request::Refuse(404, "Not Found")),
            (b"GET /metrics/x HTTP/1.1\r\n\r\n", Request::Refuse(404, "Not Found")),
            (b"GET /metrics\r\n\r\n", Request::Refuse(400, "Bad Request")),
            (b"\x16\x03\x01 garbage here\r\n\r\n", Request::Refuse(400, "Bad Request")),
            (b"GET metrics SPDY/3\r\n\r\n", Request::Refuse(400, "Bad Request")),
        ];
        for (head, want) in cases {
            let end = head_end(head).expect("complete head");
            assert_eq!(parse(&head[..end]), want, "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn head_end_is_the_first_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\nbody\r\n\r\n"), Some(16));
    }

    #[test]
    fn responses_carry_length_and_close() {
        let text = String::from_utf8(response(200, "OK", "", b"a 1\n")).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: 4\r\nConnection: close\r\n\r\na 1\n"
        );
    }
}
