//! Smoke tests for the `ftpbench` load generator: every scenario, tiny and short, against an
//! in-process server on an ephemeral loopback port. Each checks the exit status, the JSON line
//! and that byte counts add up; one more checks that a short download fails the run, and one
//! runs the scenarios over explicit FTPS against a server that refuses anything else.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;

/// Runs ftpbench against `port` with tiny settings plus `args`; returns (exit code, JSON line).
fn ftpbench(port: u16, args: &[&str]) -> (i32, String) {
    let dir = TempRoot::new("ftpbench-json");
    let json = dir.join("result.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_ftpbench"))
        .args(["--port", &port.to_string(), "--clients", "2", "--warmup", "0.2", "--seconds", "1", "--timeout", "10"])
        .arg("--json")
        .arg(&json)
        .args(args)
        .output()
        .expect("run ftpbench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    let text = std::fs::read_to_string(&json).unwrap_or_default();
    assert!(text.lines().count() <= 1, "one JSON line per run: {text:?}");
    (out.status.code().unwrap_or(-1), text.trim_end().to_string())
}

/// The number after `"key":` in a flat JSON object.
fn field(json: &str, key: &str) -> f64 {
    let pattern = format!("\"{key}\":");
    let start = json.find(&pattern).unwrap_or_else(|| panic!("no {key} in {json}")) + pattern.len();
    let rest = &json[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].parse().unwrap_or_else(|_| panic!("{key} is not a number in {json}"))
}

fn assert_clean(code: i32, json: &str) {
    assert_eq!(code, 0, "{json}");
    assert_eq!(field(json, "errors"), 0.0, "{json}");
}

#[test]
fn retr_receives_whole_files() {
    let server = TestServer::start("ftpbench-retr");
    server.root.write("bench-1m.bin", &random_bytes(1 << 20, 1));
    let (code, json) = ftpbench(server.port(), &["retr", "--file", "/bench-1m.bin"]);
    assert_clean(code, &json);
    assert!(json.starts_with("{\"scenario\":\"retr\""), "{json}");
    assert_eq!(field(&json, "file_size"), (1 << 20) as f64);
    let transfers = field(&json, "transfers");
    assert!(transfers > 0.0, "{json}");
    assert_eq!(field(&json, "bytes"), transfers * (1 << 20) as f64);
    assert!(field(&json, "mib_per_s") > 0.0 && field(&json, "transfer_p99_ms") > 0.0, "{json}");
    assert!(field(&json, "fairness") > 0.0, "{json}");
}

#[test]
fn small_over_epsv() {
    let server = TestServer::start("ftpbench-small");
    server.root.write("bench-4k.bin", &random_bytes(4096, 2));
    let (code, json) = ftpbench(server.port(), &["small", "--epsv"]);
    assert_clean(code, &json);
    assert!(json.contains("\"data_mode\":\"EPSV\""), "{json}");
    let transfers = field(&json, "transfers");
    assert!(transfers > 0.0 && field(&json, "transfers_per_s") > 0.0, "{json}");
    assert_eq!(field(&json, "bytes"), transfers * 4096.0);
}

#[test]
fn stor_uploads_verify_on_disk_and_are_removed() {
    let server = TestServer::with_users("ftpbench-stor");
    let root = server.root.path.to_str().unwrap();
    // A cap on uploads per client keeps the read-back check short.
    let args = ["stor", "--user", "alice", "--pass", "pw", "--size", "1MiB", "--verify-dir", root, "--max-ops", "50"];
    let (code, json) = ftpbench(server.port(), &args);
    assert_clean(code, &json);
    let total = field(&json, "transfers_total");
    assert!(total > 0.0, "{json}");
    assert_eq!(field(&json, "verified"), total, "every completed upload checked");
    assert_eq!(field(&json, "bytes"), field(&json, "transfers") * (1 << 20) as f64);
    let left: Vec<_> = std::fs::read_dir(&server.root.path)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("bench-stor-"))
        .collect();
    assert!(left.is_empty(), "uploads left behind: {left:?}");
}

#[test]
fn sessions_log_in_list_and_quit() {
    let server = TestServer::start("ftpbench-sessions");
    server.root.write("a.txt", b"a");
    let (code, json) = ftpbench(server.port(), &["sessions"]);
    assert_clean(code, &json);
    assert!(field(&json, "sessions") > 0.0 && field(&json, "session_p50_ms") > 0.0, "{json}");
    drop(json);
    server.assert_no_open_slots();
}

#[test]
fn idle_sessions_all_answer_and_the_server_is_measured() {
    let server = TestServer::start("ftpbench-idle");
    // The server runs in this very process, so this process is the one to measure.
    let pid = std::process::id().to_string();
    let (code, json) =
        ftpbench(server.port(), &["idle", "--sessions", "20", "--hold", "1", "--clients", "4", "--server-pid", &pid]);
    assert_clean(code, &json);
    assert_eq!(field(&json, "sessions_opened"), 20.0, "{json}");
    assert_eq!(field(&json, "noop_ok"), 20.0, "{json}");
    assert_eq!(field(&json, "quit_ok"), 20.0, "{json}");
    assert!(field(&json, "rss_plateau_kib") > 0.0 && field(&json, "fds_plateau") > 0.0, "{json}");
    field(&json, "rss_per_session_kib");
    field(&json, "server_cpu_s");
    server.assert_no_open_slots();
}

#[test]
fn every_scenario_runs_over_tls_with_resumed_data_connections() {
    let cert = TempRoot::new("ftpbench-tls-cert");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    cert.write("cert.pem", made.cert.pem().as_bytes());
    cert.write("key.pem", made.signing_key.serialize_pem().as_bytes());
    // Plaintext logins and data connections are refused, and so (by default) is a TLS data
    // connection that does not resume its control connection's session: a clean run proves
    // ftpbench did all of it.
    let server = TestServer::with_users_and("ftpbench-tls", |cfg| {
        cfg.tls_cert = Some(cert.join("cert.pem"));
        cfg.tls_key = Some(cert.join("key.pem"));
        cfg.require_tls = true;
    });
    server.root.write("bench-1m.bin", &random_bytes(1 << 20, 3));
    server.root.write("bench-4k.bin", &random_bytes(4096, 4));
    let root = server.root.path.to_str().unwrap();
    let login = ["--user", "alice", "--pass", "pw", "--tls"];
    let run = |args: &[&str]| {
        let (code, json) = ftpbench(server.port(), &[&login[..], args].concat());
        assert_clean(code, &json);
        json
    };

    let json = run(&["retr", "--file", "/bench-1m.bin"]);
    assert!(json.contains("\"tls\":\"TLS 1.2\""), "{json}");
    // Two clients, no errors: some session opened more data connections than a server sends
    // TLS 1.3 tickets, every one of them resumed.
    assert!(field(&json, "transfers_total") > 4.0, "{json}");
    assert_eq!(field(&json, "bytes"), field(&json, "transfers") * (1 << 20) as f64);

    // Capped, to spare the machine's ports; all of them may end before the window starts.
    let json = run(&["small", "--epsv", "--max-ops", "200"]);
    assert!(field(&json, "transfers_total") > 0.0, "{json}");
    assert_eq!(field(&json, "bytes"), field(&json, "transfers") * 4096.0);

    let json = run(&["stor", "--size", "1MiB", "--verify-dir", root, "--max-ops", "20"]);
    assert_eq!(field(&json, "verified"), field(&json, "transfers_total"), "{json}");
    assert!(field(&json, "verified") > 0.0, "{json}");

    for version in ["1.2", "1.3"] {
        let json = run(&["sessions", "--tls-version", version, "--max-ops", "50"]);
        assert!(json.contains(&format!("\"tls\":\"TLS {version}\"")), "{json}");
        assert!(field(&json, "sessions_total") > 0.0, "{json}");
    }

    let json = run(&["idle", "--sessions", "20", "--hold", "0.5", "--clients", "4", "--tls-version", "1.3"]);
    assert_eq!(field(&json, "noop_ok"), 20.0, "{json}");
    server.assert_no_open_slots();
}

#[test]
fn a_missing_file_is_a_setup_error() {
    let server = TestServer::start("ftpbench-missing");
    let (code, json) = ftpbench(server.port(), &["retr", "--file", "/nope.bin"]);
    assert_eq!((code, json.as_str()), (2, ""), "no result for a run that could not start");
}

#[test]
fn a_short_download_is_an_error() {
    // A server whose SIZE promises one byte more than RETR sends.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || short_server_session(stream));
        }
    });
    let (code, json) = ftpbench(port, &["retr", "--epsv", "--clients", "1", "--file", "/f"]);
    assert_eq!(code, 1, "{json}");
    assert!(field(&json, "errors") > 0.0, "{json}");
    assert!(json.contains("999 bytes, expected 1000"), "{json}");
    assert_eq!(field(&json, "transfers"), 0.0, "{json}");
}

/// One session of the lying server: just enough FTP for `ftpbench retr --epsv`.
fn short_server_session(stream: TcpStream) {
    let mut out = stream.try_clone().unwrap();
    let mut data = None;
    let _ = out.write_all(b"220 short\r\n");
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        let reply = match line.split(' ').next().unwrap_or("") {
            "USER" => "331 ok".to_string(),
            "PASS" => "230 ok".to_string(),
            "TYPE" => "200 ok".to_string(),
            "SIZE" => "213 1000".to_string(),
            "EPSV" => {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let port = listener.local_addr().unwrap().port();
                data = Some(listener);
                format!("229 Entering Extended Passive Mode (|||{port}|)")
            }
            "RETR" => {
                let Some((mut conn, _)) = data.take().and_then(|l| l.accept().ok()) else { return };
                let _ = out.write_all(b"150 here\r\n");
                let _ = conn.write_all(&[7u8; 999]);
                drop(conn);
                "226 done".to_string()
            }
            "QUIT" => {
                let _ = out.write_all(b"221 bye\r\n");
                return;
            }
            _ => "502 no".to_string(),
        };
        if out.write_all(format!("{reply}\r\n").as_bytes()).is_err() {
            return;
        }
    }
}
