//! `cargo bench --bench compare`: mioftpd side by side with other FTP servers (vsftpd,
//! pure-ftpd, pyftpdlib, unftp), each started here on its own 127.0.0.1 port with equivalent
//! settings and loaded by this package's `ftpbench` binary.
//!
//! Every round runs every scenario on every server, in an order rotated each round so that
//! drift (other load on the machine, thermal state) hits all servers alike; the table reports
//! the median of the rounds. Output: the table on stdout, every raw run and the medians in
//! `target/bench/compare.json`, a chart in `docs/bench/compare.svg`, each run's ftpbench output
//! and each server's log in `target/bench/logs/`.
//!
//! Modules: `settings` (flags), `fixture` (tmpfs workspace, files, system account), `peers`
//! (finding, configuring and starting each server), `ftp` (login check), `procs` (process
//! groups, Ctrl-C), `ceiling` (iperf3), `scenarios` (ftpbench runs), `results` (medians, JSON),
//! `table` and `plot`.

mod ceiling;
mod fixture;
mod ftp;
mod peers;
mod plot;
mod procs;
mod results;
mod scenarios;
mod settings;
mod table;

use fixture::{Certificate, SystemUser, USER, Workspace};
use peers::{Env, Server};
use procs::Guard;
use results::{Results, Run};
use scenarios::{Outcome, Target};
use serde_json::json;
use settings::Settings;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Times a server may fail to start before it is left out of the remaining rounds.
const START_ATTEMPTS: u32 = 2;
/// Pause between two runs: lets the previous run's sockets close and the CPUs go quiet.
const BETWEEN_RUNS: Duration = Duration::from_millis(500);

fn main() -> ExitCode {
    procs::catch_interrupts();
    let settings = match Settings::from_command_line() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("compare: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if procs::interrupted() => {
            eprintln!("compare: {e}; everything started was stopped and the workspace removed");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("compare: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Where the outputs go.
struct Paths {
    bench: PathBuf,
    logs: PathBuf,
    docs: PathBuf,
}

impl Paths {
    fn new() -> Result<Paths, String> {
        // CARGO_TARGET_TMPDIR is target/tmp: its parent is the target directory, wherever
        // CARGO_TARGET_DIR put it.
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().ok_or("no target directory")?;
        let bench = target.join("bench");
        let logs = bench.join("logs");
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join("bench");
        // Logs of an earlier run would be mistaken for this one's.
        let _ = fs::remove_dir_all(&logs);
        for dir in [&bench, &logs, &docs] {
            fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        }
        Ok(Paths { bench, logs, docs })
    }
}

fn run(settings: &Settings) -> Result<(), String> {
    let started = Instant::now();
    let command = settings.command_line();
    println!("compare: {command}");
    let paths = Paths::new()?;
    let fd_limit = procs::raise_fd_limit().map_err(|e| format!("cannot raise the open-file limit: {e}"))?;
    if settings.scenarios.contains(&scenarios::Kind::Idle) && fd_limit < settings.idle_sessions as u64 + 1000 {
        return Err(format!(
            "--idle-sessions {} needs an open-file limit above {}; the hard limit is {fd_limit}",
            settings.idle_sessions,
            settings.idle_sessions + 1000
        ));
    }
    let load_at_start = fs::read_to_string("/proc/loadavg").unwrap_or_default();

    // Declared before the servers, so dropped after them: no server outlives its files or
    // its account.
    let workspace = Workspace::create()?;
    let warmed = procs::warm_memory(16 << 30);
    println!(
        "compare: touched {:.1} GiB of memory once, so no server pays for its first use",
        warmed as f64 / f64::from(1 << 30)
    );
    workspace.write_file(&settings.big_file_name, settings.big_file_size)?;
    workspace.write_file("bench-4k.bin", 4096)?;
    println!("compare: serving {} ({} and bench-4k.bin)", workspace.root.display(), settings.big_file_name);
    let password = fixture::random_password()?;
    let needs_account = settings.servers.iter().any(|s| s.needs_system_user());
    let account = if needs_account {
        SystemUser::ensure(&workspace.root, &password)
            .and_then(|user| workspace.give_to(user.uid, user.gid).map(|()| user))
            .map_err(|e| {
                println!("compare: system user {USER}: {e}");
                e
            })
    } else {
        Err("not needed".to_string())
    };
    let certificate = Certificate::create(&workspace.etc)?;
    let env = Env {
        mioftpd: Path::new(env!("CARGO_BIN_EXE_mioftpd")),
        workspace: &workspace,
        password: &password,
        certificate: &certificate,
        system_user: account.as_ref().map(|_| ()).map_err(Clone::clone),
        logs: &paths.logs,
    };

    let mut servers: Vec<Server> = Vec::new();
    let mut skipped: Vec<(peers::Kind, String)> = Vec::new();
    for &kind in &settings.servers {
        match Server::prepare(kind, &env) {
            Ok(server) => {
                println!("compare: {:<17} {}\n           {}", kind.name(), server.version, server.command_line());
                servers.push(server);
            }
            Err(why) => {
                println!("compare: {:<17} skipped: {why}", kind.name());
                skipped.push((kind, why));
            }
        }
    }
    if servers.is_empty() {
        return Err("no server to benchmark".to_string());
    }

    let mut bench = Bench {
        settings,
        ftpbench: Path::new(env!("CARGO_BIN_EXE_ftpbench")),
        root: &workspace.root,
        scratch: workspace.etc.join("run.jsonl"),
        logs: &paths.logs,
        password: &password,
        results: Results::default(),
        start_failures: HashMap::new(),
    };
    for round in 0..settings.rounds {
        procs::check_interrupt()?;
        println!("\ncompare: round {}/{}", round + 1, settings.rounds);
        let ceiling = ceiling::measure(settings.ceiling_seconds, &paths.logs)?;
        println!("  loopback ceiling ({}): {:.0} MiB/s", ceiling.method, ceiling.mib_per_s);
        if let Some(zerocopy) = ceiling.zerocopy_mib_per_s {
            println!("  loopback ceiling (iperf3 -Z, sendfile): {zerocopy:.0} MiB/s");
            bench.results.zerocopy_ceilings.push(zerocopy);
        }
        bench.results.ceilings.push(ceiling.mib_per_s);
        bench.results.ceiling_method = ceiling.method;
        // Rotated each round: the server that went first in one round goes last in the next.
        let mut order: Vec<usize> = (0..servers.len()).collect();
        order.rotate_left(round as usize % servers.len());
        bench.round(round + 1, &servers, &order)?;
    }

    let kinds: Vec<peers::Kind> = servers.iter().map(|s| s.kind).collect();
    let results = &bench.results;
    let table = table::render(settings, results, &kinds);
    println!("\n{table}");
    let header = json!({
        "command": command,
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        "duration_s": started.elapsed().as_secs_f64(),
        "settings": {
            "rounds": settings.rounds, "seconds": settings.seconds.as_secs_f64(),
            "warmup_s": settings.warmup.as_secs_f64(), "quick": settings.quick,
            "big_file": settings.big_file_name, "big_file_size": settings.big_file_size,
            "stor_size": settings.stor_size, "stor_budget": settings.stor_budget,
            "idle_sessions": settings.idle_sessions,
            "idle_hold_s": settings.idle_hold.as_secs_f64(),
            "scenarios": settings.scenarios.iter().map(|s| s.name()).collect::<Vec<_>>(),
        },
        "machine": {
            "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "kernel": fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
            "loadavg_at_start": load_at_start.trim(),
        },
        "servers": servers.iter().map(|s| json!({
            "name": s.kind.name(), "column": s.kind.column(), "version": s.version,
            "command": s.command_line(), "notes": s.notes,
        })).collect::<Vec<_>>(),
        "skipped": skipped.iter().map(|(k, why)| json!({"name": k.name(), "why": why})).collect::<Vec<_>>(),
        "table": table,
    });
    let json_path = paths.bench.join("compare.json");
    let document = results.to_json(&kinds, &settings.scenarios, header);
    let text = serde_json::to_string_pretty(&document).map_err(|e| e.to_string())?;
    fs::write(&json_path, text).map_err(|e| format!("write {}: {e}", json_path.display()))?;
    let svg_path = paths.docs.join("compare.svg");
    let mut versions: Vec<String> = Vec::new();
    for server in &servers {
        // mioftpd and mioftpd (buffered) are one program.
        if !versions.contains(&server.version) {
            versions.push(server.version.clone());
        }
    }
    let subtitle = vec![
        command.clone(),
        format!(
            "{} round(s), median; window {} s per scenario; loopback ceiling {:.0} MiB/s ({}); {} CPUs, shared",
            settings.rounds,
            settings.seconds.as_secs_f64(),
            results.ceiling().unwrap_or(0.0),
            results.ceiling_method,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
        ),
        versions.join(" · "),
    ];
    fs::write(&svg_path, plot::render(settings, results, &kinds, &subtitle))
        .map_err(|e| format!("write {}: {e}", svg_path.display()))?;
    println!("compare: raw runs and medians in {}", json_path.display());
    println!("compare: chart in {}", svg_path.display());
    println!("compare: ftpbench output and server logs in {}", paths.logs.display());
    println!("compare: took {:.0} s; command: {command}", started.elapsed().as_secs_f64());
    Ok(())
}

/// What a round needs.
struct Bench<'a> {
    settings: &'a Settings,
    ftpbench: &'a Path,
    root: &'a Path,
    scratch: PathBuf,
    logs: &'a Path,
    password: &'a str,
    results: Results,
    /// Failed starts so far, per server.
    start_failures: HashMap<peers::Kind, u32>,
}

impl Bench<'_> {
    /// One round: the scenarios that share a server run scenario by scenario across all
    /// servers (started fresh for this round); the idle scenario then gets a freshly started
    /// server of its own, one server at a time.
    fn round(&mut self, round: u32, servers: &[Server], order: &[usize]) -> Result<(), String> {
        let settings = self.settings;
        let (fresh, shared): (Vec<scenarios::Kind>, Vec<scenarios::Kind>) =
            settings.scenarios.iter().partition(|s| s.needs_fresh_server());
        if !shared.is_empty() {
            let mut running: Vec<(usize, Option<Guard>)> = Vec::new();
            for &i in order {
                let guard = self.start(&servers[i], round, &shared);
                running.push((i, guard));
            }
            for &scenario in &shared {
                for (i, guard) in running.iter_mut() {
                    let server = &servers[*i];
                    let Some(running_guard) = guard.as_mut() else { continue };
                    self.measure(round, server, running_guard, scenario)?;
                    if let Some(status) = running_guard.exited() {
                        println!(
                            "  {} exited during {} ({status}); restarting it",
                            server.kind.name(),
                            scenario.name()
                        );
                        *guard = self.start(server, round, &[]);
                    }
                }
            }
            for (_, guard) in running.into_iter() {
                if let Some(guard) = guard {
                    peers::stop(guard);
                }
            }
        }
        for &scenario in &fresh {
            for &i in order {
                let server = &servers[i];
                let Some(mut guard) = self.start(server, round, &[scenario]) else { continue };
                let measured = self.measure(round, server, &mut guard, scenario);
                peers::stop(guard);
                measured?;
            }
        }
        Ok(())
    }

    /// Starts a fresh instance, or records why not against `scenarios` of this round.
    fn start(&mut self, server: &Server, round: u32, scenarios: &[scenarios::Kind]) -> Option<Guard> {
        if self.start_failures.get(&server.kind).copied().unwrap_or(0) >= START_ATTEMPTS {
            self.record_missing(round, server, scenarios, "left out after failing to start".to_string());
            return None;
        }
        let idle = scenarios.iter().any(|s| s.needs_fresh_server());
        match server.start(idle) {
            Ok(guard) => Some(guard),
            Err(e) => {
                *self.start_failures.entry(server.kind).or_default() += 1;
                println!("  {}: failed to start: {e}", server.kind.name());
                self.record_missing(round, server, scenarios, format!("failed to start: {e}"));
                None
            }
        }
    }

    fn record_missing(&mut self, round: u32, server: &Server, scenarios: &[scenarios::Kind], why: String) {
        for &scenario in scenarios {
            self.results.runs.push(Run { round, server: server.kind, scenario, outcome: Err(why.clone()) });
        }
    }

    /// One ftpbench run against a running server; prints a one-line summary.
    fn measure(
        &mut self,
        round: u32,
        server: &Server,
        guard: &mut Guard,
        scenario: scenarios::Kind,
    ) -> Result<(), String> {
        procs::sleep(BETWEEN_RUNS);
        procs::check_interrupt()?;
        let target = Target {
            port: server.addr.port(),
            user: USER,
            password: self.password,
            server_pid: guard.pid(),
            tls: server.kind.tls(),
        };
        let log = self.logs.join(format!("r{round}-{}-{}.txt", scenario.name(), server.kind.name()));
        let outcome = scenarios::run(self.ftpbench, scenario, self.settings, &target, self.root, &self.scratch, &log)?;
        println!("  {}", summary(scenario, server.kind, &outcome, &log));
        self.results.runs.push(Run { round, server: server.kind, scenario, outcome: Ok(outcome) });
        Ok(())
    }
}

/// `retr1     mioftpd           2345.6 MiB/s  errors 0  11.4 s`, or what went wrong.
fn summary(scenario: scenarios::Kind, server: peers::Kind, outcome: &Outcome, log: &Path) -> String {
    let head = format!("{:<9} {:<17}", scenario.name(), server.name());
    let Some(result) = &outcome.result else {
        let status = outcome.exit_code.map_or("stopped".to_string(), |c| format!("exit {c}"));
        return format!("{head} no result ({status}); {}:\n{}", log.display(), peers::tail(log, 4));
    };
    let metric = &scenario.metrics()[0];
    let value = result[metric.key].as_f64().map_or("-".to_string(), |v| format!("{v:.1}"));
    let errors = result["errors"].as_u64().unwrap_or(0);
    let mut line = format!("{head} {value:>9} {:<6} errors {errors}  {:.1} s", metric.unit, outcome.seconds);
    if errors > 0
        && let Some(first) = result["error_messages"].get(0).and_then(|m| m.as_str())
    {
        line.push_str(&format!("  (first: {first})"));
    }
    line
}
