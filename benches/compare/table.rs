//! The result table, as Markdown (aligned, so it reads as well in a terminal): one row per
//! scenario metric, one column of medians per server, then the ratios of mioftpd's median to
//! each peer's and to the best peer's.

use crate::peers::Kind as Server;
use crate::results::Results;
use crate::scenarios::{Kind as Scenario, Metric};
use crate::settings::Settings;
use std::fmt::Write;

pub fn render(settings: &Settings, results: &Results, servers: &[Server]) -> String {
    let present = |kind: Server| servers.contains(&kind).then_some(kind);
    // A peer is measured against mioftpd in the same protocol: plain against plain, TLS
    // against TLS.
    let base_for = |peer: Server| if peer.tls() { present(Server::MioftpdTls) } else { present(Server::Mioftpd) };
    let pairs: Vec<(Server, Server)> =
        servers.iter().filter(|s| s.is_peer()).filter_map(|&p| Some((base_for(p)?, p))).collect();
    // "best peer" stays among plain servers; TLS has its own pairs and costs.
    let plain_peers: Vec<Server> = servers.iter().copied().filter(|s| s.is_peer() && !s.tls()).collect();
    let best_base = present(Server::Mioftpd).filter(|_| !plain_peers.is_empty());
    // What TLS costs each server that was measured both ways.
    let costs: Vec<(Server, Server)> = servers.iter().filter_map(|&s| Some((s, present(s.plain()?)?))).collect();
    let mut header = vec!["scenario".to_string(), "metric".to_string()];
    header.extend(servers.iter().map(|s| s.column().to_string()));
    header.extend(pairs.iter().chain(&costs).map(|(a, b)| format!("{} / {}", a.name(), b.name())));
    if best_base.is_some() {
        header.push("mioftpd / best peer".to_string());
    }
    let mut rows = Vec::new();
    for &scenario in &settings.scenarios {
        let title = scenario.title(settings);
        for (i, metric) in scenario.metrics().iter().enumerate() {
            let mut row = vec![if i == 0 { title.clone() } else { String::new() }, metric_label(metric)];
            let value = |server| results.median(server, scenario, metric.key);
            row.extend(servers.iter().map(|&s| value(s).map_or("-".to_string(), |v| number(v, metric.decimals))));
            row.extend(pairs.iter().chain(&costs).map(|&(a, b)| ratio(value(a), value(b))));
            if let Some(base) = best_base {
                row.push(match best_peer(&plain_peers, metric, value) {
                    Some((peer, v)) => format!("{} ({})", ratio(value(base), Some(v)), peer.name()),
                    None => "-".to_string(),
                });
            }
            rows.push(row);
        }
        let mut row = vec![String::new(), "errors, all rounds".to_string()];
        row.extend(servers.iter().map(|&s| results.errors(s, scenario).map_or("-".to_string(), |e| e.to_string())));
        row.resize(header.len(), String::new());
        rows.push(row);
    }
    let mut out = markdown(&header, &rows);
    let _ = writeln!(out);
    if let Some(ceiling) = results.ceiling() {
        let _ = write!(
            out,
            "Loopback ceiling ({}, median of {} rounds): {:.0} MiB/s",
            results.ceiling_method,
            results.ceilings.len(),
            ceiling
        );
        match crate::results::median(results.zerocopy_ceilings.clone()) {
            Some(zerocopy) => {
                let _ = writeln!(out, "; with -Z (the sender uses sendfile, as RETR does here): {zerocopy:.0} MiB/s.");
            }
            None => out.push_str(".\n"),
        }
        if settings.scenarios.contains(&Scenario::Retr1) {
            let shares: Vec<String> = servers
                .iter()
                .filter_map(|&s| {
                    let v = results.median(s, Scenario::Retr1, "mib_per_s")?;
                    Some(format!("{} {:.0} %", s.name(), 100.0 * v / ceiling))
                })
                .collect();
            let _ = writeln!(out, "RETR 1 client as a share of it: {}.", shares.join(", "));
        }
    }
    if settings.scenarios.iter().any(|s| matches!(s, Scenario::Stor1 | Scenario::Stor8)) {
        let _ = writeln!(out, "{}", settings.stor_note());
    }
    let _ = writeln!(
        out,
        "↑ higher is better, ↓ lower is better. A ratio A / B is A's median divided by B's: above 1 \
         is better for A in ↑ rows, below 1 in ↓ rows; a peer is compared with mioftpd in the same protocol \
         (plain or TLS), X-tls / X is what TLS costs X; \"best peer\" is the plain peer with the best median in \
         that row."
    );
    if servers.iter().any(|s| s.tls()) {
        let _ = writeln!(
            out,
            "(TLS): explicit FTPS with a self-signed ECDSA P-256 certificate; ftpbench --tls: AUTH TLS, PBSZ 0, \
             PROT P, TLS 1.2, every data connection resuming its control connection's session."
        );
    }
    let _ = writeln!(
        out,
        "(plaintext pw): that server checks a plaintext password, the others a SHA-512-crypt hash \
         (mioftpd remembers a verified login: its credential cache is on by default)."
    );
    out
}

fn metric_label(metric: &Metric) -> String {
    let arrow = if metric.higher_is_better { "↑" } else { "↓" };
    if metric.unit.is_empty() {
        format!("{} {arrow}", metric.label)
    } else {
        format!("{} ({}) {arrow}", metric.label, metric.unit)
    }
}

/// The peer with the best median for `metric`.
fn best_peer(peers: &[Server], metric: &Metric, value: impl Fn(Server) -> Option<f64>) -> Option<(Server, f64)> {
    let candidates = peers.iter().filter_map(|&p| Some((p, value(p)?)));
    if metric.higher_is_better {
        candidates.max_by(|a, b| a.1.total_cmp(&b.1))
    } else {
        candidates.min_by(|a, b| a.1.total_cmp(&b.1))
    }
}

fn ratio(mine: Option<f64>, theirs: Option<f64>) -> String {
    match (mine, theirs) {
        (Some(m), Some(t)) if t > 0.0 => format!("{:.2}", m / t),
        _ => "-".to_string(),
    }
}

fn number(value: f64, decimals: usize) -> String {
    format!("{value:.decimals$}")
}

/// A Markdown table with every column padded to its widest cell; numbers right-aligned.
fn markdown(header: &[String], rows: &[Vec<String>]) -> String {
    let width = |i: usize| {
        rows.iter().map(|r| r.get(i).map_or(0, |c| c.chars().count())).chain([header[i].chars().count()]).max()
    };
    let widths: Vec<usize> = (0..header.len()).map(|i| width(i).unwrap_or(0).max(3)).collect();
    let line = |cells: &[String], right: bool| {
        let mut text = String::from("|");
        for (i, width) in widths.iter().enumerate() {
            let cell = cells.get(i).map_or("", String::as_str);
            let pad = width - cell.chars().count();
            if right && i >= 2 {
                let _ = write!(text, " {}{cell} |", " ".repeat(pad));
            } else {
                let _ = write!(text, " {cell}{} |", " ".repeat(pad));
            }
        }
        text.push('\n');
        text
    };
    let mut out = line(header, false);
    out.push('|');
    for (i, width) in widths.iter().enumerate() {
        if i >= 2 {
            let _ = write!(out, " {}: |", "-".repeat(width - 1));
        } else {
            let _ = write!(out, " {} |", "-".repeat(*width));
        }
    }
    out.push('\n');
    for row in rows {
        out.push_str(&line(row, true));
    }
    out
}
