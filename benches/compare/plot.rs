//! The chart, as SVG written by hand: one group of bars per charted metric, one bar per server.
//! Metrics differ in unit and direction, so each group is normalised to its best server
//! (100 %): for "higher is better" a bar is value / best, for "lower is better" best / value.
//! Taller is always better, and every bar is labelled with its absolute median.

use crate::peers::Kind as Server;
use crate::results::Results;
use crate::scenarios::{Kind as Scenario, Metric};
use crate::settings::Settings;
use std::fmt::Write;

const BAR: f64 = 18.0;
const GROUP_GAP: f64 = 30.0;
const PLOT_HEIGHT: f64 = 260.0;
const LEFT: f64 = 56.0;
const TOP: f64 = 112.0;
const BOTTOM: f64 = 64.0;
const MIN_WIDTH: f64 = 960.0;
/// Room for a group's two-line label, however few its bars.
const MIN_GROUP: f64 = 110.0;

fn color(server: Server) -> &'static str {
    match server {
        Server::Mioftpd => "#d62728",
        Server::MioftpdBuffered => "#ff9896",
        Server::MioftpdTls => "#ff7f0e",
        Server::Vsftpd => "#1f77b4",
        Server::VsftpdTls => "#aec7e8",
        Server::PureFtpd => "#2ca02c",
        Server::Pyftpdlib => "#9467bd",
        Server::Unftp => "#8c564b",
    }
}

fn scenario_short(scenario: Scenario) -> &'static str {
    match scenario {
        Scenario::Retr1 => "RETR ×1",
        Scenario::Retr16 => "RETR ×16",
        Scenario::Stor1 => "STOR ×1",
        Scenario::Stor8 => "STOR ×8",
        Scenario::Small => "4 KiB RETR ×64",
        Scenario::Sessions => "sessions ×32",
        Scenario::Idle => "idle sessions",
    }
}

fn metric_short(metric: &Metric) -> String {
    let text = match metric.key {
        "mib_per_s" => "MiB/s",
        "cpu_s_per_gib" => "CPU s/GiB",
        "transfers_per_s" => "transfers/s",
        "cpu_s_per_1000_transfers" => "CPU s/1000",
        "sessions_per_s" => "sessions/s",
        "cpu_s_per_1000_sessions" => "CPU s/1000",
        "pss_per_session_kib" => "PSS KiB each",
        _ => metric.label,
    };
    format!("{text} {}", if metric.higher_is_better { "↑" } else { "↓" })
}

struct Group<'a> {
    scenario: Scenario,
    metric: &'a Metric,
    /// Per server: the median and its score (0..=1, 1 for the best).
    bars: Vec<(Server, Option<(f64, f64)>)>,
}

pub fn render(settings: &Settings, results: &Results, servers: &[Server], subtitle: &[String]) -> String {
    let mut groups = Vec::new();
    for &scenario in &settings.scenarios {
        for metric in scenario.metrics().iter().filter(|m| m.chart) {
            let values: Vec<(Server, Option<f64>)> =
                servers.iter().map(|&s| (s, results.median(s, scenario, metric.key).filter(|v| *v > 0.0))).collect();
            let present = values.iter().filter_map(|(_, v)| *v);
            let best = if metric.higher_is_better {
                present.fold(f64::NAN, f64::max)
            } else {
                present.fold(f64::NAN, f64::min)
            };
            if best.is_nan() {
                continue;
            }
            let score = |v: f64| if metric.higher_is_better { v / best } else { best / v };
            let bars = values.into_iter().map(|(s, v)| (s, v.map(|v| (v, score(v))))).collect();
            groups.push(Group { scenario, metric, bars });
        }
    }
    let group_width = (servers.len() as f64 * BAR + GROUP_GAP).max(MIN_GROUP);
    let width = (LEFT + groups.len() as f64 * group_width + 20.0).max(MIN_WIDTH);
    let height = TOP + PLOT_HEIGHT + BOTTOM + 18.0 * subtitle.len() as f64;
    let base = TOP + PLOT_HEIGHT;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" {}>"#,
        format_args!(r#"viewBox="0 0 {width:.0} {height:.0}" font-family="Helvetica, Arial, sans-serif""#)
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = "mioftpd and other FTP servers on loopback: medians, relative to the best server of each metric";
    text(&mut svg, LEFT, 24.0, r#"font-size="16" font-weight="bold""#, title);
    let how = "Bar height: value / best for ↑ metrics, best / value for ↓ metrics (100 % = best; taller is \
               better). Labels: absolute medians.";
    text(&mut svg, LEFT, 42.0, GREY_11, how);
    // Legend.
    let mut x = LEFT;
    for &server in servers {
        let _ = writeln!(svg, r#"<rect x="{x}" y="54" width="12" height="12" fill="{}"/>"#, color(server));
        text(&mut svg, x + 16.0, 64.0, r#"font-size="12""#, &escape(server.column()));
        x += 28.0 + 7.0 * server.column().len() as f64;
    }
    // Grid and axis.
    for step in 0..=4 {
        let fraction = step as f64 / 4.0;
        let y = base - fraction * PLOT_HEIGHT;
        let _ =
            writeln!(svg, r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##, width - 10.0);
        let attrs = r##"font-size="10" text-anchor="end" fill="#444""##;
        text(&mut svg, LEFT - 6.0, y + 3.0, attrs, &format!("{:.0} %", fraction * 100.0));
    }
    for (i, group) in groups.iter().enumerate() {
        let x0 = LEFT + i as f64 * group_width + (group_width - servers.len() as f64 * BAR) / 2.0;
        for (j, (server, bar)) in group.bars.iter().enumerate() {
            let x = x0 + j as f64 * BAR;
            let Some((value, score)) = bar else {
                let attrs = r##"font-size="9" text-anchor="middle" fill="#999""##;
                text(&mut svg, x + BAR / 2.0, base - 3.0, attrs, "–");
                continue;
            };
            let h = (score * PLOT_HEIGHT).max(1.0);
            let value = label(*value, group.metric);
            let _ = writeln!(
                svg,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}">{}</rect>"#,
                base - h,
                BAR - 2.0,
                color(*server),
                format_args!("<title>{}: {value}</title>", escape(server.column())),
            );
            let (tx, ty) = (x + BAR / 2.0 + 3.0, base - h - 4.0);
            text(&mut svg, tx, ty, &format!(r#"font-size="9" transform="rotate(-90 {tx:.1} {ty:.1})""#), &value);
        }
        let cx = x0 + servers.len() as f64 * BAR / 2.0;
        let lines = format!(
            r#"<tspan x="{cx:.1}">{}</tspan><tspan x="{cx:.1}" dy="13">{}</tspan>"#,
            escape(scenario_short(group.scenario)),
            escape(&metric_short(group.metric))
        );
        text(&mut svg, cx, base + 16.0, r#"font-size="10" text-anchor="middle""#, &lines);
    }
    let _ = writeln!(svg, r##"<line x1="{LEFT}" y1="{base}" x2="{:.1}" y2="{base}" stroke="#444"/>"##, width - 10.0);
    for (i, line) in subtitle.iter().enumerate() {
        text(&mut svg, LEFT, base + BOTTOM + 18.0 * i as f64, GREY_11, &escape(line));
    }
    svg.push_str("</svg>\n");
    svg
}

const GREY_11: &str = r##"font-size="11" fill="#444""##;

/// A `<text>` element; `content` is markup (escape plain text first).
fn text(svg: &mut String, x: f64, y: f64, attrs: &str, content: &str) {
    let _ = writeln!(svg, r#"<text x="{x:.1}" y="{y:.1}" {attrs}>{content}</text>"#);
}

/// An absolute value with a precision that suits its size.
fn label(value: f64, metric: &Metric) -> String {
    let decimals = if value >= 100.0 { 0 } else { metric.decimals.max(1).min(if value >= 10.0 { 1 } else { 3 }) };
    format!("{value:.decimals$}")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
