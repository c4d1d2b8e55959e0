//! The loopback ceiling: how fast one TCP stream moves bytes on this machine with no server
//! logic at all, as the yardstick for the single-client RETR figure. iperf3 when installed
//! (one stream), else a plain copy between two threads of this process.

use crate::ftp;
use crate::procs::{self, Guard};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub struct Ceiling {
    pub method: &'static str,
    pub mib_per_s: f64,
    /// iperf3 `-Z`: the sender uses sendfile, as the sendfile servers' RETR does, so only the
    /// receiver copies; RETR through sendfile can beat the plain ceiling.
    pub zerocopy_mib_per_s: Option<f64>,
}

/// Measures for `seconds` (1 to 10).
pub fn measure(seconds: u32, logs: &Path) -> Result<Ceiling, String> {
    let seconds = seconds.clamp(1, 10);
    let copy = |mib_per_s| Ceiling { method: "socket copy in-process", mib_per_s, zerocopy_mib_per_s: None };
    match iperf3(seconds, false, logs) {
        Ok(Some(mib_per_s)) => {
            let zerocopy_mib_per_s = iperf3(seconds, true, logs).ok().flatten();
            Ok(Ceiling { method: "iperf3, 1 stream", mib_per_s, zerocopy_mib_per_s })
        }
        Ok(None) => socket_copy(seconds).map(copy),
        Err(e) => {
            eprintln!("compare: iperf3 failed ({e}); measuring with a socket copy instead");
            socket_copy(seconds).map(copy)
        }
    }
}

/// `Ok(None)` when iperf3 is not installed.
fn iperf3(seconds: u32, zerocopy: bool, logs: &Path) -> Result<Option<f64>, String> {
    if Command::new("iperf3").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
        return Ok(None);
    }
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).map_err(|e| e.to_string())?;
    let port = port.port().to_string();
    let log = logs.join("iperf3.log");
    // Not `-1` (one test, then exit): the readiness probe below is a connection too.
    let mut server =
        Guard::spawn("iperf3 -s", Command::new("iperf3").args(["-s", "-B", "127.0.0.1", "-p", &port]), &log)?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().map_err(|e| format!("{e}"))?;
    ftp::wait_listening(addr, Duration::from_secs(5), || server.exited().is_none())?;
    let mut client = Command::new("iperf3");
    client.args(["-c", "127.0.0.1", "-p", &port, "-t", &seconds.to_string(), "-J"]);
    if zerocopy {
        client.arg("-Z");
    }
    let output = client.stdin(Stdio::null()).output().map_err(|e| e.to_string())?;
    let _ = server.stop();
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("iperf3 -J output: {e}"))?;
    let bits = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .ok_or_else(|| format!("iperf3: no end.sum_received.bits_per_second ({})", report["error"]))?;
    Ok(Some(bits / 8.0 / (1u64 << 20) as f64))
}

/// One thread writes 256 KiB buffers into a loopback socket, this one reads them.
fn socket_copy(seconds: u32) -> Result<f64, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let limit = Duration::from_secs(seconds as u64);
    let writer = thread::spawn(move || -> std::io::Result<()> {
        let mut stream = TcpStream::connect(addr)?;
        let buffer = vec![0x5au8; 256 * 1024];
        let end = Instant::now() + limit;
        while Instant::now() < end && !procs::interrupted() {
            stream.write_all(&buffer)?;
        }
        Ok(())
    });
    let (mut stream, _) = listener.accept().map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let mut buffer = vec![0u8; 256 * 1024];
    let (start, mut bytes) = (Instant::now(), 0u64);
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => bytes += n as u64,
            Err(e) => return Err(format!("socket copy: {e}")),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    writer.join().map_err(|_| "socket copy: writer panicked".to_string())?.map_err(|e| e.to_string())?;
    Ok(bytes as f64 / (1u64 << 20) as f64 / elapsed)
}
