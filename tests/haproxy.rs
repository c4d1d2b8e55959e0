//! A real HAProxy in front of mioftpd (`--proxy-protocol`), in the shape docs/DEPLOYMENT.md
//! recommends for scaling out: one TCP frontend for the control port and one for the passive
//! range, each relaying to mioftpd with a PROXY header (`send-proxy`, then `send-proxy-v2`),
//! and `--pasv-address` advertising the balancer. A Python ftplib client, bound to its own
//! loopback address, logs in, lists, downloads and uploads through the balancer; the server
//! sees the client's address from the header (HAProxy itself connects from 127.0.0.1).

mod common;
use common::*;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// The balancer's address: what clients connect to and what `PASV` advertises.
const BALANCER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);
/// Passive ports per test: the balancer forwards each to the same port on mioftpd.
const PASSIVE_PORTS: u16 = 8;

/// The client's part: every step prints a line the test checks.
const CLIENT: &str = r#"
import ftplib, io, sys
host, port = sys.argv[1], int(sys.argv[2])

def connect(source):
    ftp = ftplib.FTP(timeout=30, source_address=(source, 0))
    ftp.trust_server_pasv_ipv4_address = True  # use the address PASV advertises: the balancer's
    ftp.connect(host, port)
    return ftp

ftp = connect("127.0.0.2")
ftp.login("alice", "pw")
print("peer", [l for l in ftp.sendcmd("STAT").splitlines() if "Connected from" in l][0].split()[-1])
print("pasv", ftp.makepasv()[0])
print("list", sorted(ftp.nlst()))
data = io.BytesIO()
ftp.retrbinary("RETR f.bin", data.write)
print("retr", len(data.getvalue()), data.getvalue() == open(sys.argv[3], "rb").read())
print("stor", ftp.storbinary("STOR up.bin", io.BytesIO(b"through haproxy\n" * 1000)).split()[0])
other = connect("127.0.0.3")
print("other client", other.login("bob", "pw").split()[0])
try:
    connect("127.0.0.2")
    print("same client again: admitted")
except ftplib.error_temp as e:
    print("same client again", str(e).split()[0])
print("quit", ftp.quit().split()[0], other.quit().split()[0])
"#;

#[test]
fn through_haproxy_with_send_proxy_v1() {
    through_haproxy("send-proxy");
}

#[test]
fn through_haproxy_with_send_proxy_v2() {
    through_haproxy("send-proxy-v2");
}

fn through_haproxy(send_proxy: &str) {
    if !require("haproxy") || !require("python3") {
        return;
    }
    let (control, passive) = free_ports();
    let server = TestServer::with_users_and(&format!("haproxy-{send_proxy}"), |cfg| {
        cfg.proxy_protocol = true;
        cfg.max_per_ip = 1;
        cfg.pasv_ports = Some(passive.clone());
        cfg.pasv_address = Some(BALANCER);
    });
    let content = random_bytes(3 * 1024 * 1024 + 7, 11);
    server.root.write("f.bin", &content);
    let config = haproxy_cfg(control, &passive, server.addr, send_proxy);
    server.root.write("haproxy.cfg", config.as_bytes());
    let _haproxy = Haproxy::start(&server.root.join("haproxy.cfg"), control, *passive.start());

    let (ok, out, err) = run(
        "python3",
        &["-c", CLIENT, &BALANCER.to_string(), &control.to_string(), server.root.join("f.bin").to_str().unwrap()],
        b"",
        &server.root.path,
    );
    assert!(ok, "client failed:\n{out}\n{err}");
    let expected = format!(
        "peer 127.0.0.2\npasv {BALANCER}\nlist ['f.bin', 'haproxy.cfg']\nretr {} True\nstor 226\n\
         other client 230\nsame client again 421\nquit 221 221\n",
        content.len()
    );
    assert_eq!(out, expected, "the session saw the client from the header, not HAProxy's 127.0.0.1");
    assert_eq!(server.root.read("up.bin"), b"through haproxy\n".repeat(1000));

    // Straight to mioftpd, past the balancer: no header, no greeting.
    assert_eq!(read_until_closed(server.addr, b"USER alice\r\n"), "");
}

/// A free control port on the balancer's address and a run of passive ports free on both the
/// balancer's address and mioftpd's.
fn free_ports() -> (u16, std::ops::RangeInclusive<u16>) {
    let control = TcpListener::bind((BALANCER, 0)).unwrap().local_addr().unwrap().port();
    let free = |port: u16| [BALANCER, Ipv4Addr::LOCALHOST].iter().all(|ip| TcpListener::bind((*ip, port)).is_ok());
    let mut start = 30_000 + (std::process::id() % 997) as u16 * 20;
    for _ in 0..100 {
        let range = start..=start + PASSIVE_PORTS - 1;
        if range.clone().all(free) && !range.contains(&control) {
            return (control, range);
        }
        start = 30_000 + (start - 30_000 + 20 * 37) % 20_000;
    }
    panic!("no run of {PASSIVE_PORTS} free ports found");
}

fn haproxy_cfg(control: u16, passive: &std::ops::RangeInclusive<u16>, server: SocketAddr, send_proxy: &str) -> String {
    format!(
        "global\n    maxconn 256\n\n\
         defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n\n\
         frontend ftp_control\n    bind {BALANCER}:{control}\n    default_backend mioftpd_control\n\n\
         backend mioftpd_control\n    server mioftpd1 {server} {send_proxy}\n\n\
         frontend ftp_passive\n    bind {BALANCER}:{}-{}\n    default_backend mioftpd_passive\n\n\
         # No port: each connection goes to the port it came in on.\n\
         backend mioftpd_passive\n    server mioftpd1 {} {send_proxy}\n",
        passive.start(),
        passive.end(),
        server.ip(),
    )
}

/// `haproxy -db` (foreground) as a child process, killed by its PID when dropped.
struct Haproxy {
    child: Child,
}

impl Haproxy {
    fn start(config: &std::path::Path, control: u16, first_passive: u16) -> Haproxy {
        let child = Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start haproxy");
        let mut haproxy = Haproxy { child };
        // Ready once its frontends hold their ports (probing by binding opens no connection).
        let deadline = Instant::now() + PATIENCE;
        while [control, first_passive].iter().any(|port| TcpListener::bind((BALANCER, *port)).is_ok()) {
            if let Ok(Some(status)) = haproxy.child.try_wait() {
                let err = std::io::read_to_string(haproxy.child.stderr.take().unwrap()).unwrap_or_default();
                panic!("haproxy exited ({status}):\n{err}");
            }
            assert!(Instant::now() < deadline, "haproxy did not bind its frontends");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        haproxy
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
