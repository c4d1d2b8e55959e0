//! Bandwidth limits measured over real loopback sockets, with the tolerance the limits allow:
//! a 1 MiB/s limit must give 0.8–1.2 MiB/s over about three seconds, per session and shared
//! by two sessions, for downloads and uploads, through the kernel's zero-copy paths and through
//! our buffer. And a throttled transfer must neither block other sessions nor spin the loop.

mod common;
use common::*;
use std::io::{Read, Write};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;

#[derive(Clone, Copy, Debug)]
enum Way {
    Retr,
    Stor,
}

/// Moves `content` as `name` (download: the file must be there) and returns how long it took,
/// from the command to the `226`, after checking that every byte arrived intact.
fn timed_transfer(c: &mut Raw, way: Way, name: &str, content: &[u8], root: &TempRoot) -> Duration {
    let mut data = c.epsv();
    let start = Instant::now();
    match way {
        Way::Retr => {
            c.expect_cmd(&format!("RETR {name}"), 150);
            let mut got = Vec::with_capacity(content.len());
            data.read_to_end(&mut got).expect("read data");
            c.expect(226);
            assert!(got == content, "{name}: the download arrived intact");
        }
        Way::Stor => {
            c.expect_cmd(&format!("STOR {name}"), 150);
            data.write_all(content).expect("write data");
            drop(data);
            c.expect(226);
            assert!(root.read(name) == content, "{name}: the upload landed intact");
        }
    }
    start.elapsed()
}

fn mib_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / MIB as f64 / elapsed.as_secs_f64()
}

fn assert_about_1_mib_per_s(what: &str, bytes: usize, elapsed: Duration) {
    let rate = mib_per_s(bytes, elapsed);
    eprintln!("{what}: {bytes} bytes in {:.3} s = {rate:.3} MiB/s", elapsed.as_secs_f64());
    assert!((0.8..=1.2).contains(&rate), "{what}: {rate:.3} MiB/s is not within 0.8-1.2 MiB/s");
}

/// One session, `--max-rate-per-session 1M`, 3 MiB.
fn one_session_at_1_mib_per_s(way: Way, zero_copy: bool) {
    let label = format!("rate-{way:?}-{zero_copy}");
    let server = TestServer::with_users_and(&label, |cfg| {
        cfg.max_rate_per_session = Some(MIB as u64);
        cfg.no_zero_copy = !zero_copy;
    });
    let content = random_bytes(3 * MIB, 11);
    if matches!(way, Way::Retr) {
        server.root.write("f.bin", &content);
    }
    let mut c = server.login("alice");
    let elapsed = timed_transfer(&mut c, way, "f.bin", &content, &server.root);
    assert_about_1_mib_per_s(&label, content.len(), elapsed);
}

#[test]
fn a_session_limit_holds_for_zero_copy_downloads() {
    one_session_at_1_mib_per_s(Way::Retr, true);
}

#[test]
fn a_session_limit_holds_for_zero_copy_uploads() {
    one_session_at_1_mib_per_s(Way::Stor, true);
}

#[test]
fn a_session_limit_holds_for_buffered_downloads() {
    one_session_at_1_mib_per_s(Way::Retr, false);
}

#[test]
fn a_session_limit_holds_for_buffered_uploads() {
    one_session_at_1_mib_per_s(Way::Stor, false);
}

#[test]
fn a_users_own_rate_applies_when_it_is_the_stricter_limit() {
    let users = TempRoot::new("rate-user-users");
    let hash = mioftpd::auth::hash_password("pw").unwrap();
    std::fs::write(users.join("users"), format!("carol:{hash}:rw,rate=1M\n")).unwrap();
    let server = TestServer::start_with("rate-user", |cfg| {
        cfg.users = Some(users.join("users"));
        cfg.max_rate_per_session = Some(8 * MIB as u64);
    });
    let content = random_bytes(3 * MIB, 12);
    server.root.write("f.bin", &content);
    let mut c = server.login("carol");
    let elapsed = timed_transfer(&mut c, Way::Retr, "f.bin", &content, &server.root);
    assert_about_1_mib_per_s("carol's rate=1M under --max-rate-per-session 8M", content.len(), elapsed);
}

/// Two sessions sharing `--max-rate 1M`, 1.5 MiB each, started together: together they get
/// the limit, and neither is starved (each finishes within a third of the other's time).
fn two_sessions_share_1_mib_per_s(way: Way) {
    let label = format!("global-{way:?}");
    let server = Arc::new(TestServer::with_users_and(&label, |cfg| cfg.max_rate = Some(MIB as u64)));
    let contents: Vec<Vec<u8>> = (0..2).map(|n| random_bytes(3 * MIB / 2, 20 + n)).collect();
    if matches!(way, Way::Retr) {
        for (n, content) in contents.iter().enumerate() {
            server.root.write(&format!("f{n}.bin"), content);
        }
    }
    let start = Arc::new(Barrier::new(2));
    let clients: Vec<_> = contents
        .into_iter()
        .enumerate()
        .map(|(n, content)| {
            let (server, start) = (server.clone(), start.clone());
            std::thread::spawn(move || {
                let mut c = server.login("alice");
                start.wait();
                let elapsed = timed_transfer(&mut c, way, &format!("f{n}.bin"), &content, &server.root);
                (Instant::now(), elapsed)
            })
        })
        .collect();
    let results: Vec<(Instant, Duration)> = clients.into_iter().map(|t| t.join().expect("client thread")).collect();
    let began = results.iter().map(|(end, elapsed)| *end - *elapsed).min().unwrap();
    let ended = results.iter().map(|(end, _)| *end).max().unwrap();
    assert_about_1_mib_per_s(&label, 3 * MIB, ended - began);
    let (fast, slow) = (results[0].1.min(results[1].1), results[0].1.max(results[1].1));
    eprintln!("{label}: the clients took {fast:?} and {slow:?}");
    assert!(
        slow.as_secs_f64() < 1.34 * fast.as_secs_f64(),
        "{label}: unfair share: one client took {fast:?}, the other {slow:?}"
    );
}

#[test]
fn two_sessions_share_a_global_limit_for_downloads() {
    two_sessions_share_1_mib_per_s(Way::Retr);
}

#[test]
fn two_sessions_share_a_global_limit_for_uploads() {
    two_sessions_share_1_mib_per_s(Way::Stor);
}

/// CPU time (user + system) the process `pid` has used, from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

/// The server process, killed if the test fails before stopping it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_throttled_transfer_neither_blocks_other_sessions_nor_spins() {
    let dir = TempRoot::new("throttle-idle");
    let content = random_bytes(3 * 256 * 1024, 5);
    dir.write("f.bin", &content);
    let (child, addr, stderr) = spawn_server(&["--root", dir.path.to_str().unwrap(), "--max-rate-per-session", "256k"]);
    let mut child = KillOnDrop(child);
    // Keep the log pipe drained, so that logging never blocks the server.
    let log = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());

    let mut downloader = Raw::anonymous(addr);
    let downloading = std::thread::spawn(move || {
        let mut data = downloader.epsv();
        let start = Instant::now();
        downloader.expect_cmd("RETR f.bin", 150);
        let mut got = Vec::new();
        data.read_to_end(&mut got).unwrap();
        downloader.expect(226);
        (got, start.elapsed())
    });
    let mut other = Raw::anonymous(addr);
    let (mut answered, mut slowest) = (0, Duration::ZERO);
    while !downloading.is_finished() {
        let asked = Instant::now();
        assert_eq!(other.cmd("NOOP").0, 200);
        slowest = slowest.max(asked.elapsed());
        answered += 1;
        if answered % 10 == 0 {
            assert_eq!(other.download("NLST"), b"f.bin\r\n");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (got, elapsed) = downloading.join().unwrap();
    assert!(got == content);
    eprintln!("throttled download took {elapsed:?}; {answered} NOOPs answered meanwhile, the slowest in {slowest:?}");
    // 768 KiB at 256 KiB/s, the first 256 KiB (one burst) at once: 2 s.
    assert!(elapsed > Duration::from_millis(1500), "the download was not throttled: {elapsed:?}");
    assert!(answered >= 10, "only {answered} NOOPs answered during a {elapsed:?} transfer");
    assert!(slowest < Duration::from_millis(500), "a NOOP took {slowest:?} while another session was throttled");
    // Two seconds of waiting for tokens: a loop that spun through them would have burnt about
    // as much CPU time; one that sleeps on its timers uses next to none.
    let cpu = cpu_time(child.0.id());
    assert!(cpu < Duration::from_millis(500), "the server used {cpu:?} of CPU for a {elapsed:?} throttled transfer");

    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    assert!(child.0.wait().unwrap().success());
    let log = log.join().unwrap();
    assert!(log.contains("RETR /f.bin: 786432 bytes"), "{log}");
}
