//! Watching the server: Prometheus metrics scraped with a real `curl` from the loop's own HTTP
//! endpoint, and the `xferlog` transfer log, both parsed field by field after real sessions.

mod common;
use common::*;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

/// `curl`'s answer to `GET /metrics`: the response head and the samples by `name{labels}`.
struct Scraped {
    head: String,
    samples: HashMap<String, f64>,
}

impl Scraped {
    fn get(&self, key: &str) -> f64 {
        *self.samples.get(key).unwrap_or_else(|| panic!("no sample {key} in the scrape"))
    }
}

fn scrape(metrics: SocketAddr) -> Scraped {
    let url = format!("http://{metrics}/metrics");
    let (ok, out, err) = run("curl", &["-sS", "--max-time", "20", "-i", &url], b"", &std::env::temp_dir());
    assert!(ok, "curl {url}: {err}");
    let (head, body) = out.split_once("\r\n\r\n").expect("a response head");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    parse_exposition(head, body)
}

/// Parses the text format, checking that each sample's family was announced by `# HELP` and
/// `# TYPE` lines before it.
fn parse_exposition(head: &str, body: &str) -> Scraped {
    let mut announced = HashMap::new();
    let mut samples = HashMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            announced.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (key, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let name = key.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        assert!(
            announced.contains_key(name) || announced.get(family).is_some_and(|k| k == "histogram"),
            "sample {name} without # TYPE"
        );
        let value: f64 = value.parse().unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert!(samples.insert(key.to_string(), value).is_none(), "duplicate sample {key}");
    }
    Scraped { head: head.to_string(), samples }
}

fn http_status(metrics: SocketAddr, args: &[&str], path: &str) -> String {
    let url = format!("http://{metrics}{path}");
    let mut all = vec!["-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}"];
    all.extend_from_slice(args);
    all.push(&url);
    let (ok, out, err) = run("curl", &all, b"", &std::env::temp_dir());
    assert!(ok, "curl {url}: {err}");
    out
}

/// Sends `request` raw and returns the whole answer (the server closes after it).
fn raw_http(metrics: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(metrics).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer); // a reset after the answer is fine
    String::from_utf8_lossy(&answer).into_owned()
}

fn with_metrics(cfg: &mut mioftpd::Config) {
    cfg.metrics = Some("127.0.0.1:0".parse().unwrap());
}

/// An anonymous server that serves metrics, and their address, if `curl` is there to scrape.
fn server_with_metrics(label: &str) -> Option<(TestServer, SocketAddr)> {
    if !require("curl") {
        return None;
    }
    let server = TestServer::start_with(label, with_metrics);
    let metrics = server.metrics.expect("metrics address");
    Some((server, metrics))
}

#[test]
fn metrics_count_sessions_logins_transfers_and_rejections() {
    if !require("curl") {
        return;
    }
    let server = TestServer::with_users_and("metrics", |cfg| {
        with_metrics(cfg);
        cfg.max_per_ip = 3;
    });
    let metrics = server.metrics.expect("metrics address");
    let content = random_bytes(300_000, 7);
    server.root.write("f.bin", &content);

    let before = scrape(metrics);
    assert!(before.head.contains("Content-Type: text/plain; version=0.0.4"), "{}", before.head);
    assert_eq!(before.get("mioftpd_sessions_total"), 0.0);

    let mut anonymous = Raw::anonymous(server.addr);
    assert_eq!(anonymous.download("RETR f.bin"), content);
    let mut alice = server.login("alice");
    alice.upload("STOR up.bin", &content[..12_345]);
    let mut guesser = Raw::connect(server.addr);
    guesser.expect_cmd("USER alice", 331);
    guesser.expect_cmd("PASS wrong", 530);
    // A fourth connection from the same address is over --max-per-ip.
    let mut refused = String::new();
    TcpStream::connect(server.addr).unwrap().read_to_string(&mut refused).unwrap();
    assert!(refused.starts_with("421 "), "{refused:?}");

    let m = scrape(metrics);
    assert_eq!(m.get("mioftpd_sessions_open"), 3.0);
    assert_eq!(m.get("mioftpd_sessions_total"), 3.0);
    assert_eq!(m.get(r#"mioftpd_logins_total{result="ok"}"#), 2.0);
    assert_eq!(m.get(r#"mioftpd_logins_total{result="failed"}"#), 1.0);
    assert_eq!(m.get(r#"mioftpd_transfers_total{direction="out",outcome="ok"}"#), 1.0);
    assert_eq!(m.get(r#"mioftpd_transfers_total{direction="in",outcome="ok"}"#), 1.0);
    for outcome in ["aborted", "failed"] {
        for direction in ["in", "out"] {
            assert_eq!(
                m.get(&format!(r#"mioftpd_transfers_total{{direction="{direction}",outcome="{outcome}"}}"#)),
                0.0
            );
        }
    }
    assert_eq!(m.get(r#"mioftpd_transfer_bytes_total{direction="out"}"#), content.len() as f64);
    assert_eq!(m.get(r#"mioftpd_transfer_bytes_total{direction="in"}"#), 12_345.0);
    assert_eq!(m.get(r#"mioftpd_connections_rejected_total{reason="max_per_ip"}"#), 1.0);
    assert_eq!(m.get(r#"mioftpd_connections_rejected_total{reason="max_sessions"}"#), 0.0);
    assert_eq!(m.get("mioftpd_data_connections_open"), 0.0);
    assert_eq!(m.get("mioftpd_passive_listeners_open"), 0.0);

    // The histogram: cumulative buckets ending in +Inf, which equals the count of iterations.
    let turns = m.get("mioftpd_loop_iterations_total");
    assert!(turns > before.get("mioftpd_loop_iterations_total"), "the loop turned");
    assert_eq!(m.get("mioftpd_loop_iteration_seconds_count"), turns);
    assert_eq!(m.get(r#"mioftpd_loop_iteration_seconds_bucket{le="+Inf"}"#), turns);
    let mut buckets: Vec<(f64, f64)> = m
        .samples
        .iter()
        .filter_map(|(key, value)| {
            let le = key.strip_prefix(r#"mioftpd_loop_iteration_seconds_bucket{le=""#)?.strip_suffix(r#""}"#)?;
            Some((if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() }, *value))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(buckets.first().map(|b| b.0), Some(1e-5));
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "cumulative: {buckets:?}");
    assert!(m.get("mioftpd_loop_iteration_seconds_sum") > 0.0);

    // A passive listener waiting for its client shows in the gauge while it lasts.
    alice.expect_cmd("EPSV", 229);
    assert_eq!(scrape(metrics).get("mioftpd_passive_listeners_open"), 1.0);
    drop((anonymous, alice, guesser));
    server.assert_no_open_slots();
    assert_eq!(scrape(metrics).get("mioftpd_sessions_open"), 0.0);
}

#[test]
fn metrics_endpoint_answers_only_get_metrics() {
    let Some((server, metrics)) = server_with_metrics("metrics-http") else { return };
    assert_eq!(http_status(metrics, &[], "/metrics"), "200");
    assert_eq!(http_status(metrics, &[], "/metrics?x=1"), "200");
    assert_eq!(http_status(metrics, &[], "/"), "404");
    assert_eq!(http_status(metrics, &[], "/favicon.ico"), "404");
    assert_eq!(http_status(metrics, &["-X", "POST"], "/metrics"), "405");
    assert!(raw_http(metrics, b"\x16\x03\x01\x02\x00garbage\r\n\r\n").starts_with("HTTP/1.1 400 "));
    let huge = format!("GET /metrics HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "a".repeat(9000));
    assert!(raw_http(metrics, huge.as_bytes()).starts_with("HTTP/1.1 431 "));
    // A scraper that goes away before asking costs nothing.
    drop(TcpStream::connect(metrics).unwrap());
    server.assert_no_open_slots();
}

#[test]
fn a_slow_or_silent_scraper_does_not_hold_up_ftp_clients_or_other_scrapes() {
    let Some((server, metrics)) = server_with_metrics("metrics-slow") else { return };
    let content = random_bytes(2 * 1024 * 1024, 3);
    server.root.write("f.bin", &content);
    let mut slow = TcpStream::connect(metrics).unwrap();
    slow.write_all(b"GET /metr").unwrap(); // and never the rest
    let _silent = TcpStream::connect(metrics).unwrap();
    let started = Instant::now();
    let mut c = Raw::anonymous(server.addr);
    assert_eq!(c.download("RETR f.bin"), content);
    assert_eq!(scrape(metrics).get(r#"mioftpd_transfers_total{direction="out",outcome="ok"}"#), 1.0);
    assert!(started.elapsed() < PATIENCE);
    // The slow one is still waited for, not answered with half a request.
    slow.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    assert!(matches!(slow.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock));
}

#[test]
fn scrapes_beyond_the_cap_are_closed_and_ftp_goes_on() {
    let Some((server, metrics)) = server_with_metrics("metrics-cap") else { return };
    // 16 silent scrapers fill the cap; FTP clients are not affected.
    let held: Vec<TcpStream> = (0..16).map(|_| TcpStream::connect(metrics).unwrap()).collect();
    let mut c = Raw::anonymous(server.addr);
    c.expect_cmd("NOOP", 200);
    let reply = read_until_closed(metrics, b"GET /metrics HTTP/1.1\r\n\r\n");
    assert!(reply.is_empty(), "a 17th scrape was answered: {reply:?}");
    drop(held);
    // Their slots go as they close; then a scrape is answered again.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let url = format!("http://{metrics}/metrics");
        let (ok, out, _) = run("curl", &["-sS", "--max-time", "5", &url], b"", &std::env::temp_dir());
        if ok && out.contains("mioftpd_sessions_total") {
            break;
        }
        assert!(Instant::now() < deadline, "scrapes stayed refused after the others closed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// One parsed `xferlog` line.
#[derive(Debug)]
struct XferLine {
    secs: u64,
    host: String,
    bytes: u64,
    file: String,
    kind: String,
    special: String,
    direction: String,
    access: String,
    user: String,
    rest: String,
}

fn read_xferlog(path: &std::path::Path, lines: usize) -> Vec<XferLine> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= lines {
            assert!(text.ends_with('\n'));
            return text.lines().map(parse_xferlog).collect();
        }
        assert!(Instant::now() < deadline, "xferlog has {} lines, want {lines}:\n{text}", text.lines().count());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn parse_xferlog(line: &str) -> XferLine {
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f.len(), 18, "{line:?}");
    // ctime: `Wed Dec  2 08:37:21 2026`.
    assert!(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&f[0]), "{line}");
    assert!(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].contains(&f[1]));
    assert!((1..=31).contains(&f[2].parse::<u32>().unwrap()));
    assert_eq!(f[3].len(), 8, "{line}");
    assert!(f[4].parse::<u32>().unwrap() >= 2024, "{line}");
    assert_eq!(&line[..24].split_whitespace().collect::<Vec<_>>(), &f[..5], "the date is 24 characters");
    XferLine {
        secs: f[5].parse().unwrap(),
        host: f[6].into(),
        bytes: f[7].parse().unwrap(),
        file: f[8].into(),
        kind: f[9].into(),
        special: f[10].into(),
        direction: f[11].into(),
        access: f[12].into(),
        user: f[13].into(),
        rest: f[14..].join(" "),
    }
}

#[test]
fn xferlog_lines_for_complete_aborted_and_cut_off_transfers() {
    let logs = TempRoot::new("xferlog-dir");
    let log = logs.join("xferlog");
    let server = TestServer::with_users_and("xferlog", |cfg| {
        cfg.xferlog = Some(log.clone());
        with_metrics(cfg);
    });
    let content = random_bytes(200_000, 5);
    server.root.write("f.bin", &content);
    server.root.write("hello.txt", b"hello\nworld\n");
    let huge = 64 * 1024 * 1024;
    server.root.write("huge.bin", &random_bytes(huge, 9));

    // 1: a complete download by a real user.
    let mut alice = server.login("alice");
    assert_eq!(alice.download("RETR f.bin"), content);
    // 2: a complete upload, with a space in its name.
    alice.upload("STOR up load.bin", &content[..1000]);
    // Listings and transfers without a data connection are not logged.
    alice.download("LIST");
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    alice.expect_cmd(&format!("EPRT |1|127.0.0.1|{closed_port}|"), 200);
    alice.expect_cmd("RETR f.bin", 150);
    alice.expect(425);
    // 3: anonymous, TYPE A: the bytes are what went over the wire (LF became CRLF).
    let mut anonymous = Raw::anonymous(server.addr);
    anonymous.expect_cmd("TYPE A", 200);
    assert_eq!(anonymous.download("RETR hello.txt"), b"hello\r\nworld\r\n");
    // 4: aborted by ABOR after some data.
    let mut data = alice.epsv();
    alice.expect_cmd("RETR huge.bin", 150);
    let mut first = [0u8; 64 * 1024];
    data.read_exact(&mut first).unwrap();
    alice.send("ABOR");
    assert_eq!(alice.reply().0, 426);
    assert_eq!(alice.reply().0, 226);
    drop(data);
    alice.expect_cmd("NOOP", 200);
    // 5: an upload cut off by the client closing its control connection. The data connection
    // stays open until the line is there, so the upload cannot end normally (by EOF) first.
    let mut upload = alice.epsv();
    alice.expect_cmd("STOR cut.bin", 150);
    upload.write_all(&content[..5000]).unwrap();
    // Loopback queues the data before the NOOP is even sent, so the turn that answers the
    // NOOP has read it too.
    alice.expect_cmd("NOOP", 200);
    drop(alice);

    let lines = read_xferlog(&log, 5);
    drop(upload);
    assert_eq!(lines.len(), 5, "{lines:#?}");
    for line in &lines {
        assert!(line.secs >= 1, "{line:?}");
        assert_eq!(line.host, "127.0.0.1");
        assert_eq!(line.special, "_");
        assert_eq!(line.rest.split(' ').take(3).collect::<Vec<_>>(), ["ftp", "0", "*"], "{line:?}");
    }
    let fields = |l: &XferLine| {
        (l.bytes, l.file.clone(), l.kind.clone(), l.direction.clone(), l.access.clone(), l.user.clone(), l.rest.clone())
    };
    let s = String::from;
    assert_eq!(fields(&lines[0]), (200_000, s("/f.bin"), s("b"), s("o"), s("r"), s("alice"), s("ftp 0 * c")));
    assert_eq!(fields(&lines[1]), (1000, s("/up_load.bin"), s("b"), s("i"), s("r"), s("alice"), s("ftp 0 * c")));
    assert_eq!(fields(&lines[2]), (14, s("/hello.txt"), s("a"), s("o"), s("a"), s("anonymous"), s("ftp 0 * c")));
    assert_eq!((&lines[3].file[..], &lines[3].direction[..], &lines[3].rest[..]), ("/huge.bin", "o", "ftp 0 * i"));
    assert!((64 * 1024..huge as u64).contains(&lines[3].bytes), "bytes sent before ABOR: {}", lines[3].bytes);
    assert_eq!((&lines[4].file[..], &lines[4].direction[..], &lines[4].rest[..]), ("/cut.bin", "i", "ftp 0 * i"));
    assert_eq!(lines[4].bytes, 5000);
    assert!(!server.root.join("cut.bin").exists(), "a cut-off upload is discarded");
    assert_read_by_webalizer(&log, lines.len(), &["/f.bin", "/up_load.bin", "/huge.bin"]);

    if require("curl") {
        let m = scrape(server.metrics.unwrap());
        assert_eq!(m.get(r#"mioftpd_transfers_total{direction="out",outcome="ok"}"#), 2.0);
        assert_eq!(m.get(r#"mioftpd_transfers_total{direction="out",outcome="aborted"}"#), 1.0);
        assert_eq!(m.get(r#"mioftpd_transfers_total{direction="out",outcome="failed"}"#), 1.0, "the 425");
        assert_eq!(m.get(r#"mioftpd_transfers_total{direction="in",outcome="ok"}"#), 1.0);
        assert_eq!(m.get(r#"mioftpd_transfers_total{direction="in",outcome="aborted"}"#), 1.0);
        assert_eq!(m.get(r#"mioftpd_transfer_bytes_total{direction="in"}"#), 6000.0);
    }
}

/// A real log analyser reads every line: Webalizer in its wu-ftpd `xferlog` mode (`-F ftp`)
/// counts them all as good records, and its report lists the files.
fn assert_read_by_webalizer(log: &std::path::Path, lines: usize, files: &[&str]) {
    if !require("webalizer") {
        return;
    }
    let out = TempRoot::new("webalizer");
    // An empty configuration, so that the system's (incremental mode, history) does not apply.
    out.write("webalizer.conf", b"");
    let conf = out.join("webalizer.conf");
    let args = ["-c", conf.to_str().unwrap(), "-F", "ftp", "-N", "0", "-o", ".", log.to_str().unwrap()];
    let (ok, stdout, stderr) = run("webalizer", &args, b"", &out.path);
    assert!(ok, "webalizer: {stdout}{stderr}");
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(summary.starts_with(&format!("{lines} records in ")), "{stdout}{stderr}");
    let report = std::fs::read_dir(&out.path)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("usage_"))
        .expect("a monthly report");
    let html = std::fs::read_to_string(report).unwrap();
    for file in files {
        assert!(html.contains(file), "{file} not in webalizer's report");
    }
}

#[test]
fn a_transfer_log_that_cannot_be_opened_is_a_clear_error() {
    let mut config = mioftpd::Config::new(std::env::temp_dir());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.xferlog = Some("/nonexistent-dir/xferlog".into());
    let err = mioftpd::Server::bind(&config).err().expect("bind fails");
    assert!(err.to_string().contains("cannot open transfer log /nonexistent-dir/xferlog"), "{err}");
}

#[test]
fn with_workers_each_serves_its_own_metrics_and_they_add_up() {
    if !require("curl") {
        return;
    }
    let root = TempRoot::new("metrics-workers");
    let mut config = mioftpd::Config::new(&root.path);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.metrics = Some("127.0.0.1:0".parse().unwrap());
    config.workers = 2;
    let workers = mioftpd::Workers::bind(&config).expect("bind");
    let endpoints = workers.metrics_addrs();
    assert_eq!(endpoints.len(), 2, "one endpoint per worker");
    let (addr, handles) = (workers.local_addr().unwrap(), workers.handles());
    let thread = std::thread::spawn(move || workers.run());
    // 16 sessions: the kernel spreads them over both workers (all on one: 1 in 2^15).
    let sessions: Vec<Raw> = (0..16).map(|_| Raw::anonymous(addr)).collect();
    let totals: Vec<f64> = endpoints.iter().map(|&e| scrape(e).get("mioftpd_sessions_total")).collect();
    assert!(totals.iter().all(|&n| n > 0.0), "{totals:?}");
    assert_eq!(totals.iter().sum::<f64>(), 16.0, "{totals:?}");
    drop(sessions);
    handles.iter().for_each(|h| h.stop());
    thread.join().unwrap().unwrap();
}
