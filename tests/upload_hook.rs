//! `--on-upload`: a real script, written by each test, run by the server after each completed
//! upload; what it is given, how many run at once, and that neither a slow hook nor its exit
//! holds anybody up.

mod common;
use common::*;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// Writes an executable `/bin/sh` script `body` as `dir/name`; `LOG` in the body stands for
/// the path of `dir/log`. Returns the script's path.
fn script(dir: &TempRoot, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    let log = dir.join("log");
    std::fs::write(&path, format!("#!/bin/sh\n{}\n", body.replace("LOG", log.to_str().unwrap()))).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn log_lines(dir: &TempRoot) -> Vec<String> {
    std::fs::read_to_string(dir.join("log")).unwrap_or_default().lines().map(str::to_string).collect()
}

fn on_disk(server: &TestServer, name: &str) -> String {
    server.root.path.canonicalize().unwrap().join(name).to_str().unwrap().to_string()
}

#[test]
fn each_completed_upload_runs_the_hook_once_with_its_path_user_and_size() {
    let hooks = TempRoot::new("hook-record");
    let record = script(
        &hooks,
        "record",
        r#"printf '%s|%s|%s|%s|%s|%s|%s\n' "$#" "$1" "$2" "$MIOFTPD_USER" "$MIOFTPD_PATH" "$MIOFTPD_SIZE" "$MIOFTPD_SESSION" >> LOG"#,
    );
    let command = format!("{} --first-arg", record.display());
    // One at a time, so that the log is in upload order.
    let server = TestServer::with_users_and("hook-record", |cfg| {
        cfg.on_upload = Some(command);
        cfg.on_upload_max = 1;
    });
    let mut alice = server.login("alice");
    alice.upload("STOR a.bin", &random_bytes(1000, 1));
    alice.expect_cmd("MKD sub", 257);
    alice.upload("STOR sub/b c.txt", &random_bytes(2000, 2));
    alice.upload("APPE a.bin", &random_bytes(500, 3));
    alice.expect_cmd("TYPE A", 200);
    alice.upload("STOR text.txt", b"one\r\ntwo\r\n");
    alice.expect_cmd("TYPE I", 200);

    // Not completed: aborted mid-way, refused, or not an upload.
    let mut data = alice.epsv();
    alice.expect_cmd("STOR aborted.bin", 150);
    data.write_all(&random_bytes(4096, 4)).unwrap();
    alice.send("ABOR");
    alice.expect(426);
    alice.expect(226);
    drop(data);
    let mut bob = server.login("bob");
    let _data = bob.epsv();
    bob.expect_cmd("STOR refused.bin", 550);
    assert_eq!(alice.download("RETR a.bin").len(), 1500);

    alice.upload("STOU", b"unique");
    eventually("the hook for the last upload", || log_lines(&hooks).len() >= 5);
    let session = "1"; // alice's is the first session of this server
    let expected = [
        format!("2|--first-arg|{}|alice|/a.bin|1000|{session}", on_disk(&server, "a.bin")),
        format!("2|--first-arg|{}|alice|/sub/b c.txt|2000|{session}", on_disk(&server, "sub/b c.txt")),
        format!("2|--first-arg|{}|alice|/a.bin|500|{session}", on_disk(&server, "a.bin")),
        format!("2|--first-arg|{}|alice|/text.txt|10|{session}", on_disk(&server, "text.txt")),
        format!("2|--first-arg|{}|alice|/file|6|{session}", on_disk(&server, "file")),
    ];
    assert_eq!(log_lines(&hooks), expected);
}

#[test]
fn a_users_upload_is_named_by_its_path_in_the_users_home() {
    let hooks = TempRoot::new("hook-home");
    let record = script(&hooks, "record", r#"printf '%s|%s|%s\n' "$1" "$MIOFTPD_USER" "$MIOFTPD_PATH" >> LOG"#);
    let users = TempRoot::new("hook-home-users");
    let hash = mioftpd::auth::hash_password("pw").unwrap();
    std::fs::write(users.join("users"), format!("dave:{hash}:rw,home=homes/dave\n")).unwrap();
    let server = TestServer::start_with("hook-home", |cfg| {
        cfg.users = Some(users.join("users"));
        cfg.on_upload = Some(record.display().to_string());
    });
    std::fs::create_dir_all(server.root.join("homes/dave")).unwrap();
    let mut dave = server.login("dave");
    dave.upload("STOR report.pdf", b"%PDF");
    eventually("the hook", || !log_lines(&hooks).is_empty());
    let real = on_disk(&server, "homes/dave/report.pdf");
    assert_eq!(log_lines(&hooks), [format!("{real}|dave|/report.pdf")]);
    assert_eq!(std::fs::read(&real).unwrap(), b"%PDF");
}

#[test]
fn with_one_hook_at_a_time_the_others_wait_their_turn_in_order() {
    let hooks = TempRoot::new("hook-queue");
    let slow =
        script(&hooks, "slow", r#"echo "start $MIOFTPD_PATH" >> LOG; sleep 0.2; echo "end $MIOFTPD_PATH" >> LOG"#);
    let server = TestServer::with_users_and("hook-queue", |cfg| {
        cfg.on_upload = Some(slow.display().to_string());
        cfg.on_upload_max = 1;
    });
    let mut alice = server.login("alice");
    for n in 0..4 {
        alice.upload(&format!("STOR f{n}"), b"x");
    }
    eventually("four hooks to end", || log_lines(&hooks).iter().filter(|l| l.starts_with("end")).count() == 4);
    let expected: Vec<String> = (0..4).flat_map(|n| [format!("start /f{n}"), format!("end /f{n}")]).collect();
    assert_eq!(log_lines(&hooks), expected, "one at a time, in upload order");
}

/// Children of this process named `name` that have exited but not been reaped.
fn zombie_children(name: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let comm = format!("({name})");
    let mut zombies = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some(close) = stat.rfind(')') else { continue };
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        if fields.len() > 1 && fields[0] == "Z" && fields[1] == me && stat.contains(&comm) {
            zombies.push(stat);
        }
    }
    zombies
}

#[test]
fn a_slow_hook_holds_up_nobody_and_is_reaped_when_it_exits() {
    let hooks = TempRoot::new("hook-slow");
    let release = hooks.join("release");
    // Waits (at most 30 s) for the test to say so.
    let wait = script(
        &hooks,
        "wait",
        &format!(
            r#"echo "started $MIOFTPD_PATH" >> LOG; i=0; while [ ! -e {} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; echo "done $MIOFTPD_PATH" >> LOG"#,
            release.display()
        ),
    );
    let server = TestServer::with_users_and("hook-slow", |cfg| {
        cfg.on_upload = Some(wait.display().to_string());
        cfg.on_upload_max = 1;
    });
    let mut alice = server.login("alice");
    alice.upload("STOR first.bin", b"1");
    eventually("the first hook to start", || log_lines(&hooks) == ["started /first.bin"]);

    // While it runs: the uploader goes on, another client logs in, lists, uploads.
    alice.upload("STOR second.bin", b"2");
    alice.expect_cmd("NOOP", 200);
    let mut other = server.login("alice");
    assert!(String::from_utf8(other.download("NLST")).unwrap().contains("first.bin"));
    other.upload("STOR third.bin", b"3");
    assert_eq!(log_lines(&hooks), ["started /first.bin"], "the hook was still running; the others wait for it");

    std::fs::write(&release, b"").unwrap();
    eventually("all three hooks to finish", || log_lines(&hooks).iter().filter(|l| l.starts_with("done")).count() == 3);
    eventually("the hooks to be reaped", || zombie_children("wait").is_empty());
}

#[test]
fn a_missing_hook_program_stops_the_start_up() {
    let dir = TempRoot::new("hook-missing");
    let mut config = mioftpd::Config::new(&dir.path);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.on_upload = Some("/nonexistent/hook --flag".into());
    let err = mioftpd::Server::bind(&config).err().expect("bind must fail");
    assert!(err.to_string().contains("--on-upload: /nonexistent/hook"), "{err}");
}
