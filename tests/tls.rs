//! FTPS (RFC 4217) with real clients: curl, lftp and Python's ftplib, against a certificate the
//! test makes with rcgen. Covers explicit (`AUTH TLS`) and implicit TLS, the rule that a data
//! connection must resume its own control connection's TLS session, plaintext injected behind
//! `AUTH TLS`, `--require-tls`, and bad certificates.

mod common;
use common::*;
use mioftpd::{Config, Server};
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;

const FTPS_PY: &str = include_str!("tls/ftps.py");

/// A fresh self-signed certificate and key, as PEM files in their own directory.
fn certificate(label: &str) -> TempRoot {
    let dir = TempRoot::new(&format!("{label}-cert"));
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    dir.write("cert.pem", made.cert.pem().as_bytes());
    dir.write("key.pem", made.signing_key.serialize_pem().as_bytes());
    dir
}

/// `with_users` (alice rw, bob ro, password `pw`) with FTPS on, and `adjust` on top.
fn ftps_server(label: &str, adjust: impl FnOnce(&mut Config)) -> (TestServer, TempRoot) {
    let cert = certificate(label);
    let server = TestServer::with_users_and(label, |cfg| {
        cfg.tls_cert = Some(cert.join("cert.pem"));
        cfg.tls_key = Some(cert.join("key.pem"));
        adjust(cfg);
    });
    (server, cert)
}

fn python(check: &str, port: u16, cwd: &Path) -> String {
    let (ok, stdout, stderr) = run("python3", &["-c", FTPS_PY, check, &port.to_string()], b"", cwd);
    assert!(ok, "ftps.py {check} failed:\n{stdout}\n{stderr}");
    stdout
}

#[test]
fn ftplib_resuming_the_control_session_transfers_over_tls13_and_tls12() {
    if !require("python3") {
        return;
    }
    let (server, _cert) = ftps_server("tls-ftplib", |_| {});
    for check in ["reuse", "reuse-tls12"] {
        let out = python(check, server.port(), &server.root.path);
        for i in 0..3 {
            assert!(out.contains(&format!("roundtrip {i} True")), "{check}: {out}");
        }
        assert!(out.contains("names ['up0.bin', 'up1.bin', 'up2.bin']"), "{check}: {out}");
    }
    assert!(server.root.read("up2.bin") == (0..=255u8).cycle().take(1 << 20).collect::<Vec<u8>>());
}

#[test]
fn data_connections_that_do_not_resume_are_refused_unless_allowed() {
    if !require("python3") {
        return;
    }
    let (server, _cert) = ftps_server("tls-stock", |_| {});
    let out = python("stock", server.port(), &server.root.path);
    assert!(out.contains("refused 425"), "{out}");
    assert!(!server.root.join("up0.bin").exists(), "a refused upload left a file");

    let (relaxed, _cert) = ftps_server("tls-stock-allowed", |cfg| cfg.tls_allow_unresumed_data = true);
    let out = python("stock-allowed", relaxed.port(), &relaxed.root.path);
    assert!(out.contains("roundtrip 2 True"), "{out}");
}

#[test]
fn a_data_connection_resuming_another_sessions_tls_is_refused() {
    if !require("python3") {
        return;
    }
    let (server, _cert) = ftps_server("tls-hijack", |_| {});
    server.root.write("secret.txt", b"not for the other session");
    let out = python("hijack", server.port(), &server.root.path);
    assert!(out.contains("preliminary 150"), "{out}");
    assert!(out.contains("final 425"), "{out}");
    assert!(!out.contains("stolen bytes") || out.contains("stolen bytes 0"), "data leaked: {out}");
}

#[test]
fn prot_p_sent_after_pasv_protects_that_data_connection() {
    if !require("python3") {
        return;
    }
    let (server, _cert) = ftps_server("tls-prot-after-pasv", |_| {});
    server.root.write("file.txt", b"protected after all\n");
    let out = python("prot-after-pasv", server.port(), &server.root.path);
    assert!(out.contains("connect first True") && out.contains("connect after True"), "{out}");
    assert_eq!(out.matches("final 226").count(), 2, "{out}");
}

#[test]
fn plaintext_pipelined_behind_auth_tls_is_dropped() {
    if !require("python3") {
        return;
    }
    let (server, _cert) = ftps_server("tls-inject", |_| {});
    let out = python("inject", server.port(), &server.root.path);
    assert!(out.contains("auth 234"), "{out}");
    assert!(out.contains("pass 503"), "the injected USER ran inside the TLS session: {out}");
}

#[test]
fn curl_lists_downloads_and_uploads_over_explicit_and_implicit_tls() {
    if !require("curl") {
        return;
    }
    let (server, _cert) = ftps_server("tls-curl", |cfg| cfg.implicit_tls = Some("127.0.0.1:0".parse().unwrap()));
    let big = random_bytes(3 << 20, 7);
    server.root.write("big.bin", &big);
    let work = TempRoot::new("tls-curl-work");
    work.write("up.bin", &big[..1 << 20]);
    let curl = |args: &[&str]| {
        let mut all = vec!["-sS", "--ssl-reqd", "-k", "--user", "alice:pw"];
        all.extend_from_slice(args);
        let (ok, stdout, stderr) = run("curl", &all, b"", &work.path);
        assert!(ok, "curl {args:?}: {stderr}");
        stdout
    };
    assert!(curl(&[&server.url("/")]).contains("big.bin"));
    curl(&["-o", "down.bin", &server.url("/big.bin")]);
    assert!(work.read("down.bin") == big, "explicit TLS download differs");
    curl(&["-T", "up.bin", &server.url("/up.bin")]);
    assert!(server.root.read("up.bin") == big[..1 << 20], "explicit TLS upload differs");
    let implicit = format!("ftps://{}/big.bin", server.implicit_tls.unwrap());
    curl(&["-o", "implicit.bin", &implicit]);
    assert!(work.read("implicit.bin") == big, "implicit TLS download differs");
}

#[test]
fn the_session_rate_limit_holds_over_tls() {
    if !require("curl") {
        return;
    }
    let (server, _cert) = ftps_server("tls-rate", |cfg| cfg.max_rate_per_session = Some(1 << 20));
    let content = random_bytes(3 << 20, 8);
    server.root.write("big.bin", &content);
    let work = TempRoot::new("tls-rate-work");
    work.write("up.bin", &content);
    for (args, what) in [(["-o", "down.bin"], "download"), (["-T", "up.bin"], "upload")] {
        let target = server.url(if what == "download" { "/big.bin" } else { "/up.bin" });
        let started = std::time::Instant::now();
        let (ok, _, stderr) =
            run("curl", &["-sS", "--ssl-reqd", "-k", "--user", "alice:pw", args[0], args[1], &target], b"", &work.path);
        let rate = content.len() as f64 / (1 << 20) as f64 / started.elapsed().as_secs_f64();
        assert!(ok, "curl {what}: {stderr}");
        eprintln!("FTPS {what} at --max-rate-per-session 1M: {rate:.3} MiB/s");
        assert!((0.8..=1.2).contains(&rate), "FTPS {what}: {rate:.3} MiB/s is not within 0.8-1.2 MiB/s");
    }
    assert!(work.read("down.bin") == content && server.root.read("up.bin") == content);
}

#[test]
fn lftp_with_forced_tls_lists_gets_and_puts() {
    if !require("lftp") {
        return;
    }
    let (server, _cert) = ftps_server("tls-lftp", |_| {});
    let big = random_bytes(2 << 20, 9);
    server.root.write("big.bin", &big);
    let work = TempRoot::new("tls-lftp-work");
    work.write("up.bin", &big[..777_777]);
    let script = format!(
        "set ftp:ssl-force true; set ftp:ssl-protect-data true; set ssl:verify-certificate no; \
         open -u alice,pw ftp://{}; ls; get big.bin -o down.bin; put up.bin; bye",
        server.addr
    );
    let (ok, stdout, stderr) = run("lftp", &["-c", &script], b"", &work.path);
    assert!(ok, "lftp: {stdout}\n{stderr}");
    assert!(stdout.contains("big.bin"), "{stdout}");
    assert!(work.read("down.bin") == big, "lftp download differs");
    assert!(server.root.read("up.bin") == big[..777_777], "lftp upload differs");
}

#[test]
fn tls_commands_answer_with_rfc_4217_codes() {
    let (server, _cert) = ftps_server("tls-codes", |_| {});
    let mut c = Raw::connect(server.addr);
    let feat = c.expect_cmd("FEAT", 211);
    assert!(feat.contains("AUTH TLS") && feat.contains("PBSZ") && feat.contains("PROT"), "{feat}");
    c.expect_cmd("PBSZ 0", 503);
    c.expect_cmd("PROT P", 503);
    c.expect_cmd("CCC", 503);
    c.expect_cmd("PROT X", 504);
    c.expect_cmd("PROT S", 536);
    c.expect_cmd("AUTH GSSAPI", 504);
    c.expect_cmd("PBSZ lots", 501);
    c.expect_cmd("NOOP", 200); // the session lives on

    // Without a certificate, nothing is advertised and AUTH TLS says why it is refused.
    let plain = TestServer::start("tls-codes-plain");
    let mut c = Raw::anonymous(plain.addr);
    assert!(!c.expect_cmd("FEAT", 211).contains("AUTH TLS"));
    assert!(c.expect_cmd("AUTH TLS", 504).contains("no certificate"));
}

#[test]
fn require_tls_refuses_logins_in_clear() {
    let (server, _cert) = ftps_server("tls-required", |cfg| cfg.require_tls = true);
    let mut c = Raw::connect(server.addr);
    assert!(c.expect_cmd("USER alice", 530).contains("AUTH TLS"));
    c.expect_cmd("PASS pw", 530);
    c.expect_cmd("NOOP", 200);
    if require("curl") {
        // curl's --ftp-ssl-control encrypts the login but sends data in clear: refused.
        let work = TempRoot::new("tls-required-work");
        let args = ["-sS", "--ftp-ssl-control", "-k", "--user", "alice:pw", &server.url("/")];
        let (ok, _, _) = run("curl", &args, b"", &work.path);
        assert!(!ok, "a listing in clear succeeded under --require-tls");
        let args = ["-sS", "--ssl-reqd", "-k", "--user", "alice:pw", &server.url("/")];
        let (ok, _, stderr) = run("curl", &args, b"", &work.path);
        assert!(ok, "a protected listing failed under --require-tls: {stderr}");
    }
}

#[test]
fn a_stalled_handshake_does_not_hold_up_other_clients() {
    if !require("curl") {
        return;
    }
    let (server, _cert) = ftps_server("tls-stall", |cfg| cfg.implicit_tls = Some("127.0.0.1:0".parse().unwrap()));
    server.root.write("f.txt", b"still served");
    // Half a TLS record header on the implicit port, and AUTH TLS followed by silence.
    let mut implicit = TcpStream::connect(server.implicit_tls.unwrap()).unwrap();
    implicit.write_all(&[0x16, 0x03, 0x01]).unwrap();
    let mut explicit = Raw::connect(server.addr);
    explicit.expect_cmd("AUTH TLS", 234);
    let work = TempRoot::new("tls-stall-work");
    let url = format!("ftps://{}/f.txt", server.implicit_tls.unwrap());
    let (ok, stdout, stderr) = run("curl", &["-sS", "-k", "--user", "alice:pw", &url], b"", &work.path);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "still served");
}

#[test]
fn bad_certificates_are_clear_errors_naming_the_file() {
    let cert = certificate("tls-bad");
    let other = certificate("tls-bad-other");
    cert.write("garbage.pem", b"not a certificate\n");
    let root = TempRoot::new("tls-bad-root");
    let attempt = |cert_file: &Path, key_file: &Path| {
        let mut config = Config::new(&root.path);
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.tls_cert = Some(cert_file.to_path_buf());
        config.tls_key = Some(key_file.to_path_buf());
        Server::bind(&config).err().map(|e| e.to_string()).unwrap_or_default()
    };
    let missing = attempt(&cert.join("nope.pem"), &cert.join("key.pem"));
    assert!(missing.contains("nope.pem") && missing.contains("No such file"), "{missing}");
    let garbage = attempt(&cert.join("garbage.pem"), &cert.join("key.pem"));
    assert!(garbage.contains("garbage.pem") && garbage.contains("no CERTIFICATE block"), "{garbage}");
    let no_key = attempt(&cert.join("cert.pem"), &cert.join("cert.pem"));
    assert!(no_key.contains("TLS key") && no_key.contains("cert.pem"), "{no_key}");
    let mismatch = attempt(&cert.join("cert.pem"), &other.join("key.pem"));
    assert!(mismatch.contains("does not fit its key"), "{mismatch}");
}

#[test]
fn ftps_with_two_workers_keeps_each_sessions_data_on_its_worker() {
    if !require("python3") {
        return;
    }
    let (server, _cert) = ftps_server("tls-workers", |cfg| cfg.workers = 2);
    // Three sessions one after another: with two workers, some land on each.
    for _ in 0..3 {
        let out = python("reuse", server.port(), &server.root.path);
        assert!(out.contains("roundtrip 2 True"), "{out}");
    }
}

#[test]
fn behind_a_proxy_the_implicit_port_reads_the_header_then_starts_tls() {
    if !require("python3") {
        return;
    }
    let (server, _cert) = ftps_server("tls-proxied", |cfg| {
        cfg.proxy_protocol = true;
        cfg.implicit_tls = Some("127.0.0.1:0".parse().unwrap());
    });
    let out = python("proxied-implicit", server.implicit_tls.unwrap().port(), &server.root.path);
    assert!(out.contains("greeting 220"), "{out}");
    assert!(out.contains("client True"), "the session does not know the client from the header: {out}");
}
