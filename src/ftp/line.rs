//! Control-channel framing: bytes in, command lines out. Lines end in CRLF or a bare LF;
//! Telnet IAC sequences (which tnftp sends before `ABOR`) are dropped; a line longer than
//! `MAX_LINE` is discarded whole and reported, so one huge line costs at most `MAX_LINE` bytes.

/// The longest command line accepted, line ending included.
pub const MAX_LINE: usize = 4096;

use std::collections::VecDeque;

const IAC: u8 = 255;

#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Command(Vec<u8>),
    /// A line over `MAX_LINE` bytes was thrown away.
    TooLong,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Telnet {
    Data,
    /// Just saw IAC.
    Iac,
    /// Saw IAC WILL/WONT/DO/DONT: one option byte follows.
    Option,
}

#[derive(Debug)]
pub struct LineReader {
    /// Complete lines not yet taken, and their total size.
    ready: VecDeque<Line>,
    ready_bytes: usize,
    /// The line being received.
    partial: Vec<u8>,
    telnet: Telnet,
    /// Discarding the rest of an over-long line.
    skipping: bool,
}

impl Default for LineReader {
    fn default() -> Self {
        LineReader::new()
    }
}

impl LineReader {
    pub fn new() -> LineReader {
        LineReader {
            ready: VecDeque::new(),
            ready_bytes: 0,
            partial: Vec::new(),
            telnet: Telnet::Data,
            skipping: false,
        }
    }

    /// Whether more input should be read now: false while a backlog of unprocessed lines is
    /// waiting (a client pipelining faster than we answer is slowed by TCP, not by our memory).
    pub fn wants_input(&self) -> bool {
        self.ready_bytes < MAX_LINE && self.ready.len() < 64
    }

    pub fn push(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            let byte = match (self.telnet, byte) {
                (Telnet::Data, IAC) => {
                    self.telnet = Telnet::Iac;
                    continue;
                }
                (Telnet::Data, b) => b,
                (Telnet::Iac, IAC) => {
                    self.telnet = Telnet::Data;
                    IAC // an escaped 255 data byte
                }
                (Telnet::Iac, 251..=254) => {
                    self.telnet = Telnet::Option;
                    continue;
                }
                (Telnet::Iac, 240..=250) => {
                    self.telnet = Telnet::Data; // IP, DM, AYT…: a command, no data
                    continue;
                }
                // Not a Telnet command: the IAC was stray (e.g. the urgent DM byte went out of
                // band and took nothing with it). Keep the byte so "ABOR" survives intact.
                (Telnet::Iac, b) => {
                    self.telnet = Telnet::Data;
                    b
                }
                (Telnet::Option, _) => {
                    self.telnet = Telnet::Data;
                    continue;
                }
            };
            self.push_byte(byte);
        }
    }

    fn push_byte(&mut self, byte: u8) {
        match byte {
            b'\n' if self.skipping => self.skipping = false,
            _ if self.skipping => {}
            b'\n' => {
                let mut line = std::mem::take(&mut self.partial);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.ready_bytes += line.len();
                self.ready.push_back(Line::Command(line));
            }
            _ if self.partial.len() + 1 >= MAX_LINE => {
                self.partial = Vec::new();
                self.skipping = true;
                self.ready.push_back(Line::TooLong);
            }
            _ => self.partial.push(byte),
        }
    }

    /// Whether a complete line is waiting.
    pub fn has_line(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Drops everything received so far and returns how many bytes that was: after `AUTH TLS`,
    /// bytes that arrived in plaintext behind it must not run as if they had come over TLS.
    pub fn discard(&mut self) -> usize {
        let bytes = self.ready_bytes + self.partial.len();
        *self = LineReader::new();
        bytes
    }

    /// The next complete line, without its line ending.
    pub fn next_line(&mut self) -> Option<Line> {
        let line = self.ready.pop_front()?;
        if let Line::Command(bytes) = &line {
            self.ready_bytes -= bytes.len();
        }
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[&[u8]]) -> Vec<Line> {
        let mut reader = LineReader::new();
        let mut out = Vec::new();
        for chunk in input {
            reader.push(chunk);
            while let Some(line) = reader.next_line() {
                out.push(line);
            }
        }
        out
    }

    fn cmd(s: &str) -> Line {
        Line::Command(s.as_bytes().to_vec())
    }

    #[test]
    fn crlf_bare_lf_and_split_reads() {
        assert_eq!(lines(&[b"USER a\r\nPASS b\nNO", b"OP\r", b"\n"]), [cmd("USER a"), cmd("PASS b"), cmd("NOOP")]);
    }

    #[test]
    fn telnet_sequences_are_dropped() {
        // tnftp's abort: IAC IP, IAC DM (urgent), then ABOR. Also a WILL negotiation and an escaped 255.
        assert_eq!(lines(&[b"\xff\xf4\xff\xf2ABOR\r\n"]), [cmd("ABOR")]);
        assert_eq!(lines(&[b"\xff\xf4\xff", b"ABOR\r\n"]), [cmd("ABOR")], "DM taken out of band");
        assert_eq!(lines(&[b"\xff\xfb\x01NOOP\r\n"]), [cmd("NOOP")]);
        assert_eq!(lines(&[b"RETR \xff\xffx\r\n"]), [Line::Command(b"RETR \xffx".to_vec())]);
    }

    #[test]
    fn over_long_line_is_reported_once_and_the_next_line_works() {
        let long = vec![b'A'; MAX_LINE * 3];
        let got = lines(&[b"NOOP\r\n", &long, b"\r\nPWD\r\n"]);
        assert_eq!(got, [cmd("NOOP"), Line::TooLong, cmd("PWD")]);
        let mut in_one_read = b"NOOP\r\n".to_vec();
        in_one_read.extend_from_slice(&long);
        in_one_read.extend_from_slice(b"\r\nPWD\r\n");
        assert_eq!(lines(&[&in_one_read]), [cmd("NOOP"), Line::TooLong, cmd("PWD")], "order kept");
    }

    #[test]
    fn backlog_pauses_reading() {
        let mut reader = LineReader::new();
        reader.push(&b"NOOP\r\n".repeat(64));
        assert!(!reader.wants_input());
        while reader.next_line().is_some() {}
        assert!(reader.wants_input());
    }
}
