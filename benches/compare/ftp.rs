//! Just enough FTP to tell that a freshly started server is ready: it answers on its port and
//! the benchmark account can log in (vsftpd's PAM stack, for one, can refuse it).

use crate::procs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Waits until something accepts connections on `addr`, at most `limit`; `alive` says whether
/// the server process is still there, so a server that exits at once is not waited for.
pub fn wait_listening(addr: SocketAddr, limit: Duration, mut alive: impl FnMut() -> bool) -> Result<(), String> {
    let end = Instant::now() + limit;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if !alive() {
            return Err("exited during start-up".to_string());
        }
        procs::check_interrupt()?;
        if Instant::now() >= end {
            return Err(format!("not listening on {addr} after {} s", limit.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Connects, logs in as `user`, checks `230`, says `QUIT`.
pub fn check_login(addr: SocketAddr, user: &str, pass: &str) -> Result<(), String> {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    expect(&mut reader, "greeting", 220)?;
    send(&mut writer, &format!("USER {user}"))?;
    let code = reply(&mut reader).map_err(|e| format!("USER: {e}"))?;
    if code.0 == 331 {
        send(&mut writer, &format!("PASS {pass}"))?;
        expect(&mut reader, "PASS", 230)?;
    } else if code.0 != 230 {
        return Err(format!("USER: {} {}", code.0, code.1));
    }
    send(&mut writer, "QUIT")?;
    // Some servers close without answering QUIT; the login is what mattered.
    let _ = reply(&mut reader);
    Ok(())
}

fn send(writer: &mut TcpStream, line: &str) -> Result<(), String> {
    writer.write_all(format!("{line}\r\n").as_bytes()).map_err(|e| format!("send: {e}"))
}

fn expect(reader: &mut BufReader<TcpStream>, what: &str, code: u16) -> Result<(), String> {
    let (got, text) = reply(reader).map_err(|e| format!("{what}: {e}"))?;
    if got == code { Ok(()) } else { Err(format!("{what}: {got} {text}")) }
}

/// One reply, multi-line ones included (`230-…` lines up to `230 …`); at most 100 lines.
fn reply(reader: &mut BufReader<TcpStream>) -> Result<(u16, String), String> {
    let mut first: Option<(u16, String)> = None;
    for _ in 0..100 {
        let mut line = String::new();
        let n = reader.read_line(&mut line).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".to_string());
        }
        let line = line.trim_end();
        let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
        let last = line.as_bytes().get(3) != Some(&b'-');
        match (&first, code) {
            (None, Some(code)) if last => return Ok((code, line[3..].trim().to_string())),
            (None, Some(code)) => first = Some((code, line[4..].to_string())),
            (None, None) => return Err(format!("not an FTP reply: {line:?}")),
            (Some((start, text)), Some(code)) if code == *start && last => return Ok((code, text.clone())),
            (Some(_), _) => {}
        }
    }
    Err("reply longer than 100 lines".to_string())
}
