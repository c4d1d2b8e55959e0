//! A connection's byte stream: the TCP socket itself, or TLS over it. Both read and write
//! non-blockingly and say `WouldBlock` when the socket does, so the control and data state
//! machines treat them alike.
//!
//! TLS is rustls driven by hand: ciphertext moves between the socket and rustls with
//! `read_tls`/`write_tls`, `process_new_packets` decrypts, and rustls buffers at most
//! `tls::BUFFER_LIMIT` bytes each way. Nothing here blocks: a handshake is just the first
//! records read and written on readiness events, like any other bytes.

use crate::buffer::{interrupted, would_block};
use mio::net::TcpStream;
use rustls::ServerConnection;
use std::io::{self, Read, Write};
use std::net::Shutdown;

pub struct Transport {
    pub tcp: TcpStream,
    /// Boxed: a TLS session is a few hundred bytes of state that a plain session should not carry.
    tls: Option<Box<ServerConnection>>,
}

impl Transport {
    pub fn plain(tcp: TcpStream) -> Transport {
        Transport { tcp, tls: None }
    }

    pub fn with_tls(tcp: TcpStream, tls: ServerConnection) -> Transport {
        Transport { tcp, tls: Some(Box::new(tls)) }
    }

    /// Switches to TLS (after `AUTH TLS`): every byte from now on is a TLS record.
    pub fn start_tls(&mut self, tls: ServerConnection) {
        self.tls = Some(Box::new(tls));
    }

    pub fn tls(&self) -> Option<&ServerConnection> {
        self.tls.as_deref()
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// TLS records encrypted but not yet taken by the socket.
    pub fn has_pending_output(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.wants_write())
    }

    /// Moves the handshake on as far as the socket allows: `Ok(true)` once it is complete
    /// (at once for plain TCP). Application data is neither read nor written here.
    pub fn handshake(&mut self) -> io::Result<bool> {
        loop {
            let Some(tls) = self.tls.as_deref_mut() else { return Ok(true) };
            if !tls.is_handshaking() {
                self.flush_tls()?; // the last flight may wait for writability; it goes out first then
                return Ok(true);
            }
            if !self.flush_tls()? {
                return Ok(false);
            }
            match self.receive_records()? {
                Received::Records => {}
                Received::Nothing => return Ok(false),
                Received::Closed => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed during the TLS handshake"));
                }
            }
        }
    }

    /// Sends TLS records rustls has buffered: `Ok(true)` when none are left.
    fn flush_tls(&mut self) -> io::Result<bool> {
        let Some(tls) = self.tls.as_deref_mut() else { return Ok(true) };
        while tls.wants_write() {
            match tls.write_tls(&mut self.tcp) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if would_block(&e) => return Ok(false),
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Reads one batch of records from the socket and processes them.
    fn receive_records(&mut self) -> io::Result<Received> {
        let Some(tls) = self.tls.as_deref_mut() else { return Ok(Received::Nothing) };
        let received = match tls.read_tls(&mut self.tcp) {
            // rustls remembers the end of stream; its reader then reports it.
            Ok(0) => Received::Closed,
            Ok(_) => Received::Records,
            Err(e) if would_block(&e) => return Ok(Received::Nothing),
            Err(e) if interrupted(&e) => return Ok(Received::Records),
            Err(e) => return Err(e),
        };
        if let Err(e) = tls.process_new_packets() {
            // rustls queued an alert that tells the peer why; one attempt to send it.
            let _ = tls.write_tls(&mut self.tcp);
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}")));
        }
        // Handshake messages, key updates and alerts in answer go out now.
        self.flush_tls()?;
        Ok(received)
    }

    /// Everything written has left our buffers; for TLS, a `close_notify` is sent first, so the
    /// client can tell a complete transfer from a cut one. Then FIN. `Ok(false)`: call again
    /// when the socket is writable.
    pub fn finish(&mut self) -> io::Result<bool> {
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.send_close_notify();
        }
        if !self.flush_tls()? {
            return Ok(false);
        }
        let _ = self.tcp.shutdown(Shutdown::Write);
        Ok(true)
    }
}

#[derive(PartialEq, Eq)]
enum Received {
    Records,
    /// The socket has nothing now.
    Nothing,
    /// The peer closed its sending side.
    Closed,
}

impl Read for Transport {
    /// Plaintext, as for a socket: `Ok(0)` is the end of the stream. A TLS peer that closes TCP
    /// without `close_notify` also ends the stream, as in vsftpd's default: many FTP clients
    /// never send one.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.tls.is_none() {
            return self.tcp.read(buf);
        }
        self.flush_tls()?;
        loop {
            if let Some(tls) = self.tls.as_deref_mut() {
                match tls.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) if would_block(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            if self.receive_records()? == Received::Nothing {
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
    }
}

impl Write for Transport {
    /// Takes what rustls's buffer has room for, encrypted, and sends what the socket takes.
    /// `WouldBlock` only when rustls's buffer is full and the socket takes nothing.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_deref_mut() else { return self.tcp.write(buf) };
        let n = tls.writer().write(buf)?;
        let drained = self.flush_tls()?;
        if n == 0 && !buf.is_empty() {
            let Some(tls) = self.tls.as_deref_mut() else { return Ok(0) };
            // The buffer is full; if the socket just took some of it, there is room now.
            let n = if drained { tls.writer().write(buf)? } else { 0 };
            return if n == 0 { Err(io::ErrorKind::WouldBlock.into()) } else { Ok(n) };
        }
        Ok(n)
    }

    /// Sends what rustls holds; `WouldBlock` if the socket cannot take it all now.
    fn flush(&mut self) -> io::Result<()> {
        if self.flush_tls()? { Ok(()) } else { Err(io::ErrorKind::WouldBlock.into()) }
    }
}
