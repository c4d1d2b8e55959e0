//! A minimal blocking FTP client: the commands the scenarios need and nothing else, every socket
//! bounded by a timeout. It knows FTP framing (multi-line replies, 1xx/2xx classes, passive data
//! connections) but nothing about benchmarks: transfers report progress through a callback that
//! may ask to stop.
//!
//! Data connections go to the control connection's peer address with the port from the 227/229
//! reply; the address a `227` advertises is ignored, so the client only ever connects to the
//! host it was given.
//!
//! With TLS (explicit FTPS, RFC 4217): `AUTH TLS` right after the greeting, `PBSZ 0` and
//! `PROT P` after the login, and every data connection in TLS too, resuming the control
//! connection's session.

use crate::passive;
use crate::stream::Stream;
use crate::tls::{self, Tls};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// How a data connection is requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataMode {
    Pasv,
    Epsv,
}

impl DataMode {
    pub fn name(self) -> &'static str {
        match self {
            DataMode::Pasv => "PASV",
            DataMode::Epsv => "EPSV",
        }
    }
}

/// One whole reply: its code and its text (lines after the first joined with `\n`).
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Reply {
    /// The reply class: 1 preliminary, 2 completion, 3 intermediate, 4/5 failure.
    fn class(&self) -> u16 {
        self.code / 100
    }
}

/// How a transfer ended on the client's side.
#[derive(Debug, PartialEq, Eq)]
pub enum Transfer {
    /// All bytes moved and the server confirmed with a 2xx reply; the session can go on.
    Complete(u64),
    /// The progress callback asked to stop part-way. The data connection has been reset and a
    /// reply is still pending on the control connection, so the caller must drop the client.
    Stopped(u64),
}

/// Longest reply line accepted: a server sending more is broken, not slow.
const MAX_LINE: u64 = 64 * 1024;
/// Most bytes in one (multi-line) reply, so a babbling server cannot grow our memory forever.
const MAX_REPLY: usize = 1024 * 1024;
/// Control replies are short; a small buffer keeps 10 000 idle sessions cheap on this side.
const CONTROL_BUFFER: usize = 4096;

pub struct Client {
    control: BufReader<Stream>,
    peer: IpAddr,
    timeout: Duration,
    mode: DataMode,
    /// The control connection's TLS session, which data connections resume; `None`: plain FTP.
    tls: Option<tls::Session>,
}

impl Client {
    /// Connects and reads the greeting (a `120` "wait" is followed by the real `220`); with
    /// `tls`, then switches the control connection to TLS.
    pub fn connect(addr: SocketAddr, timeout: Duration, mode: DataMode, tls: Option<&Tls>) -> io::Result<Client> {
        let stream = connect(addr, timeout).map_err(context("connect"))?;
        // Commands are request/response; without this a command written right after another
        // could wait for a delayed ACK.
        stream.set_nodelay(true)?;
        let control = BufReader::with_capacity(CONTROL_BUFFER, Stream::Plain(stream));
        let mut client = Client { control, peer: addr.ip(), timeout, mode, tls: None };
        let mut greeting = client.reply().map_err(context("greeting"))?;
        while greeting.code == 120 {
            greeting = client.reply().map_err(context("greeting"))?;
        }
        if greeting.code != 220 {
            return Err(unexpected("greeting", &greeting));
        }
        match tls {
            Some(tls) => client.start_tls(tls),
            None => Ok(client),
        }
    }

    /// `AUTH TLS` and the control connection's handshake.
    fn start_tls(mut self, tls: &Tls) -> io::Result<Client> {
        self.expect("AUTH TLS", 234)?;
        // Anything after the 234 would have been sent in plaintext: a server that does that
        // is broken (or attacked), not one to measure.
        if !self.control.buffer().is_empty() {
            return Err(invalid("plaintext bytes after the 234 reply to AUTH TLS".to_string()));
        }
        let Stream::Plain(tcp) = self.control.into_inner() else {
            return Err(invalid("AUTH TLS on a connection already in TLS".to_string()));
        };
        let session = tls.session(self.peer);
        let mut stream = session.wrap(tcp)?;
        stream.handshake().map_err(context("TLS handshake"))?;
        self.control = BufReader::with_capacity(CONTROL_BUFFER, stream);
        self.tls = Some(session);
        Ok(self)
    }

    /// `USER` then, unless the server is already satisfied (`230`), `PASS`; with TLS, then
    /// `PBSZ 0` and `PROT P` so that data connections are in TLS too. The replies read here
    /// also bring the session tickets a TLS 1.3 server sends after the handshake, so they are
    /// in the store before the first data connection needs one.
    pub fn login(&mut self, user: &str, pass: &str) -> io::Result<()> {
        self.authenticate(user, pass)?;
        if self.tls.is_some() {
            self.expect("PBSZ 0", 200)?;
            self.expect("PROT P", 200)?;
        }
        Ok(())
    }

    fn authenticate(&mut self, user: &str, pass: &str) -> io::Result<()> {
        let reply = self.command(&format!("USER {user}"))?;
        match reply.code {
            230 => return Ok(()),
            331 | 332 => {}
            _ => return Err(unexpected("USER", &reply)),
        }
        // The password itself never appears in an error message.
        let reply = self.command(&format!("PASS {pass}"))?;
        match reply.code {
            230 | 202 => Ok(()),
            _ => Err(unexpected("PASS", &reply)),
        }
    }

    /// `TYPE I`: byte counts must match file sizes, so no newline conversion.
    pub fn binary(&mut self) -> io::Result<()> {
        self.expect("TYPE I", 200).map(drop)
    }

    /// `SIZE path` (`213 N`).
    pub fn size(&mut self, path: &str) -> io::Result<u64> {
        let reply = self.expect(&format!("SIZE {path}"), 213)?;
        reply.text.trim().parse().map_err(|_| invalid(format!("SIZE answer is not a number: {:?}", reply.text)))
    }

    /// `PWD` (`257 "dir"`), returning the reply text.
    pub fn pwd(&mut self) -> io::Result<String> {
        self.expect("PWD", 257).map(|reply| reply.text)
    }

    /// `DELE path`; the reply is returned so that a caller may accept a `550`.
    pub fn dele(&mut self, path: &str) -> io::Result<Reply> {
        self.command(&format!("DELE {path}"))
    }

    /// `QUIT` and its `221`; the connection closes when the client is dropped.
    pub fn quit(mut self) -> io::Result<()> {
        self.expect("QUIT", 221).map(drop)
    }

    /// `RETR path`, handing every chunk read into `buf` to `progress`, which returns whether
    /// to go on. Returns the bytes received; checking them against a size is the caller's job.
    pub fn retr(&mut self, path: &str, buf: &mut [u8], progress: impl FnMut(usize) -> bool) -> io::Result<Transfer> {
        let mut data = self.open_data()?;
        self.start(&format!("RETR {path}"))?;
        match drain(&mut data, buf, progress).map_err(context("RETR data"))? {
            Transfer::Complete(n) => {
                drop(data);
                self.finish("RETR")?;
                Ok(Transfer::Complete(n))
            }
            stopped => {
                reset(data.tcp());
                Ok(stopped)
            }
        }
    }

    /// `LIST [path]`, returning the listing's size in bytes.
    pub fn list(&mut self, path: Option<&str>, buf: &mut [u8]) -> io::Result<u64> {
        let mut data = self.open_data()?;
        self.start(&path.map_or_else(|| "LIST".to_string(), |p| format!("LIST {p}")))?;
        let transfer = drain(&mut data, buf, |_| true).map_err(context("LIST data"))?;
        drop(data);
        self.finish("LIST")?;
        match transfer {
            Transfer::Complete(n) | Transfer::Stopped(n) => Ok(n),
        }
    }

    /// `STOR path`; `write` produces the content on the data connection and says whether it
    /// wrote all of it. End of stream is end of file in FTP, so a stopped upload is reset
    /// instead of closed: the server must not mistake half a file for a whole one.
    pub fn stor(
        &mut self,
        path: &str,
        write: impl FnOnce(&mut Stream) -> io::Result<Transfer>,
    ) -> io::Result<Transfer> {
        let mut data = self.open_data()?;
        self.start(&format!("STOR {path}"))?;
        match write(&mut data).map_err(context("STOR data"))? {
            Transfer::Complete(n) => {
                data.finish().map_err(context("STOR data"))?;
                drop(data);
                self.finish("STOR")?;
                Ok(Transfer::Complete(n))
            }
            stopped => {
                reset(data.tcp());
                Ok(stopped)
            }
        }
    }

    /// Sends one command line without waiting for the reply (for pipelining over many sessions).
    pub fn send(&mut self, line: &str) -> io::Result<()> {
        let control = self.control.get_mut();
        control.write_all(format!("{line}\r\n").as_bytes())?;
        control.flush()
    }

    /// Reads one whole reply.
    pub fn reply(&mut self) -> io::Result<Reply> {
        read_reply(&mut self.control)
    }

    /// Sends `line` and reads its reply; a failure names the command.
    pub fn command(&mut self, line: &str) -> io::Result<Reply> {
        self.send(line).and_then(|()| self.reply()).map_err(context(verb(line)))
    }

    /// Sends `line` and requires the reply code `code`.
    fn expect(&mut self, line: &str, code: u16) -> io::Result<Reply> {
        let reply = self.command(line)?;
        if reply.code != code {
            return Err(unexpected(verb(line), &reply));
        }
        Ok(reply)
    }

    /// `PASV` or `EPSV`, then connects to the port it names on the control peer's address; with
    /// TLS, wrapped in a TLS session whose handshake waits for the first read or write.
    fn open_data(&mut self) -> io::Result<Stream> {
        let port = match self.mode {
            DataMode::Pasv => {
                let reply = self.expect("PASV", 227)?;
                passive::pasv_port(&reply.text)
            }
            DataMode::Epsv => {
                let reply = self.expect("EPSV", 229)?;
                passive::epsv_port(&reply.text)
            }
        };
        let port = port.ok_or_else(|| invalid(format!("cannot parse the {} reply", self.mode.name())))?;
        let tcp = connect(SocketAddr::new(self.peer, port), self.timeout).map_err(context("data connection"))?;
        match &self.tls {
            Some(session) => session.wrap(tcp),
            None => Ok(Stream::Plain(tcp)),
        }
    }

    /// A transfer command must first be answered with a preliminary (1xx) reply.
    fn start(&mut self, line: &str) -> io::Result<()> {
        let reply = self.command(line)?;
        if reply.class() != 1 {
            return Err(unexpected(verb(line), &reply));
        }
        Ok(())
    }

    /// The completion reply after the data connection has closed (226, or 250 from some servers).
    fn finish(&mut self, verb: &str) -> io::Result<()> {
        let reply = self.reply().map_err(context(verb))?;
        if reply.class() != 2 {
            return Err(unexpected(verb, &reply));
        }
        Ok(())
    }
}

/// A TCP connection with connect, read and write timeouts.
fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

/// Reads a data connection to its end, unless `progress` asks to stop first.
fn drain(data: &mut Stream, buf: &mut [u8], mut progress: impl FnMut(usize) -> bool) -> io::Result<Transfer> {
    let mut total = 0u64;
    loop {
        let n = match data.read(buf) {
            Ok(0) => return Ok(Transfer::Complete(total)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        if !progress(n) {
            return Ok(Transfer::Stopped(total));
        }
    }
}

/// Closes with a TCP reset (SO_LINGER 0) when the socket is dropped, so the peer sees an
/// aborted transfer rather than a complete one. Best effort: if the option cannot be set, the
/// close is an ordinary one, which is no worse for a download.
fn reset(stream: &TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: the descriptor is open for as long as `stream` lives, and the option value is a
    // properly initialised `linger` whose size is passed along.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Reads one reply: `NNN text`, or `NNN-text` … up to the line that starts with `NNN `. Lines in
/// between are taken as they are, even when they start with digits (RFC 959 4.2).
fn read_reply(input: &mut impl BufRead) -> io::Result<Reply> {
    let first = read_line(input)?;
    let code = reply_code(&first).ok_or_else(|| invalid(format!("malformed reply {first:?}")))?;
    let mut text = first.get(4..).unwrap_or("").to_string();
    if first.as_bytes().get(3) == Some(&b'-') {
        let last = format!("{code} ");
        loop {
            let line = read_line(input)?;
            text.push('\n');
            if line.starts_with(&last) || line == last.trim_end() {
                text.push_str(line.get(4..).unwrap_or(""));
                break;
            }
            text.push_str(&line);
            if text.len() > MAX_REPLY {
                return Err(invalid(format!("reply {code} longer than {MAX_REPLY} bytes")));
            }
        }
    }
    Ok(Reply { code, text })
}

/// One line without its CRLF (a bare LF is accepted too).
fn read_line(input: &mut impl BufRead) -> io::Result<String> {
    let mut bytes = Vec::new();
    let n = input.take(MAX_LINE).read_until(b'\n', &mut bytes)?;
    if n == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "control connection closed"));
    }
    if bytes.last() != Some(&b'\n') {
        return Err(invalid(format!("reply line longer than {MAX_LINE} bytes or cut off")));
    }
    bytes.pop();
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The code of a reply's first line: three digits followed by a space, a dash or nothing.
fn reply_code(line: &str) -> Option<u16> {
    let bytes = line.as_bytes();
    if bytes.len() < 3
        || !bytes[..3].iter().all(u8::is_ascii_digit)
        || !matches!(bytes.get(3), None | Some(b' ' | b'-'))
    {
        return None;
    }
    line[..3].parse().ok()
}

/// The command word of a line, for error messages.
fn verb(line: &str) -> &str {
    line.split(' ').next().unwrap_or(line)
}

/// Prefixes an error with what was being done, keeping its kind.
fn context(what: &str) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn unexpected(what: &str, reply: &Reply) -> io::Error {
    let first = reply.text.lines().next().unwrap_or("");
    io::Error::other(format!("{what}: unexpected reply {} {first}", reply.code))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn parse(text: &str) -> io::Result<Reply> {
        read_reply(&mut Cursor::new(text.as_bytes().to_vec()))
    }

    #[test]
    fn single_line_replies() {
        assert_eq!(parse("220 ready\r\n").unwrap(), Reply { code: 220, text: "ready".into() });
        assert_eq!(parse("200\r\n").unwrap(), Reply { code: 200, text: "".into() });
        assert_eq!(parse("226 done\n").unwrap().code, 226, "bare LF");
    }

    #[test]
    fn multi_line_replies_end_at_the_same_code_and_a_space() {
        let text = "211-Features:\r\n EPSV\r\n211-still going\r\n200 not the end\r\n211 End\r\nNEXT";
        let mut input = Cursor::new(text.as_bytes().to_vec());
        let reply = read_reply(&mut input).unwrap();
        assert_eq!(reply.code, 211);
        assert_eq!(reply.text, "Features:\n EPSV\n211-still going\n200 not the end\nEnd");
        let mut rest = String::new();
        input.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "NEXT", "nothing after the reply is consumed");
        assert_eq!(parse("230-a\r\n230\r\n").unwrap().text, "a\n");
    }

    #[test]
    fn broken_replies_are_errors() {
        assert!(parse("").is_err(), "closed");
        assert!(parse("hello\r\n").is_err());
        assert!(parse("22 x\r\n").is_err());
        assert!(parse("2200 x\r\n").is_err());
        assert!(parse("211-start\r\n no end").is_err(), "cut off");
        let long = format!("200 {}\r\n", "x".repeat(MAX_LINE as usize));
        assert!(parse(&long).is_err());
    }
}
