//! A run's result as one list of named values, rendered two ways from that same list: a table
//! for people and one JSON object (one line, so that `--json FILE` can collect runs as JSON
//! Lines). JSON is written by hand: flat objects of numbers and strings need no library.

use std::fmt::Write;

enum Value {
    Int(u64),
    /// A number and how many decimals to show in the table.
    Num(f64, usize),
    Text(String),
    /// Several numbers (one per client), with the table's decimals.
    Nums(Vec<f64>, usize),
    /// Not measured (no samples, no `--server-pid`): `-` in the table, `null` in JSON.
    Missing,
}

struct Row {
    key: &'static str,
    label: &'static str,
    value: Value,
    unit: &'static str,
}

pub struct Report {
    scenario: &'static str,
    rows: Vec<Row>,
    errors: u64,
    messages: Vec<String>,
}

/// Error messages shown in the table (JSON keeps them all).
const SHOWN_MESSAGES: usize = 10;

impl Report {
    pub fn new(scenario: &'static str) -> Report {
        Report { scenario, rows: Vec::new(), errors: 0, messages: Vec::new() }
    }

    pub fn int(&mut self, key: &'static str, label: &'static str, value: u64, unit: &'static str) -> &mut Report {
        self.push(key, label, Value::Int(value), unit)
    }

    pub fn num(
        &mut self,
        key: &'static str,
        label: &'static str,
        value: f64,
        unit: &'static str,
        decimals: usize,
    ) -> &mut Report {
        self.push(key, label, Value::Num(value, decimals), unit)
    }

    pub fn maybe(
        &mut self,
        key: &'static str,
        label: &'static str,
        value: Option<f64>,
        unit: &'static str,
        decimals: usize,
    ) -> &mut Report {
        self.push(key, label, value.map_or(Value::Missing, |v| Value::Num(v, decimals)), unit)
    }

    pub fn nums(
        &mut self,
        key: &'static str,
        label: &'static str,
        values: Vec<f64>,
        unit: &'static str,
        decimals: usize,
    ) -> &mut Report {
        self.push(key, label, Value::Nums(values, decimals), unit)
    }

    pub fn text(&mut self, key: &'static str, label: &'static str, value: impl Into<String>) -> &mut Report {
        self.push(key, label, Value::Text(value.into()), "")
    }

    /// Adds failures: any makes the run (and the exit status) a failure.
    pub fn errors(&mut self, count: u64, messages: impl IntoIterator<Item = String>) -> &mut Report {
        self.errors += count;
        self.messages.extend(messages);
        self
    }

    pub fn error_count(&self) -> u64 {
        self.errors
    }

    fn push(&mut self, key: &'static str, label: &'static str, value: Value, unit: &'static str) -> &mut Report {
        self.rows.push(Row { key, label, value, unit });
        self
    }

    pub fn table(&self) -> String {
        let width = self.rows.iter().map(|r| r.label.len()).max().unwrap_or(0).max("errors".len());
        let mut out = format!("ftpbench {}\n", self.scenario);
        for row in &self.rows {
            let value = match &row.value {
                Value::Int(v) => v.to_string(),
                Value::Num(v, decimals) => format!("{v:.decimals$}"),
                Value::Text(t) => t.clone(),
                Value::Nums(values, decimals) => {
                    values.iter().map(|v| format!("{v:.decimals$}")).collect::<Vec<_>>().join(" ")
                }
                Value::Missing => "-".to_string(),
            };
            let unit = if row.unit.is_empty() || matches!(row.value, Value::Missing) { "" } else { row.unit };
            let _ = writeln!(out, "  {:width$}  {value} {unit}", row.label);
        }
        let _ = writeln!(out, "  {:width$}  {}", "errors", self.errors);
        for message in self.messages.iter().take(SHOWN_MESSAGES) {
            let _ = writeln!(out, "    {message}");
        }
        if self.messages.len() > SHOWN_MESSAGES {
            let _ = writeln!(out, "    … {} more messages in the JSON output", self.messages.len() - SHOWN_MESSAGES);
        }
        out.lines().map(str::trim_end).fold(String::new(), |acc, line| acc + line + "\n")
    }

    /// One JSON object on one line.
    pub fn json(&self) -> String {
        let unix_time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut out = format!("{{\"scenario\":{},\"unix_time\":{unix_time}", string(self.scenario));
        for row in &self.rows {
            let value = match &row.value {
                Value::Int(v) => v.to_string(),
                Value::Num(v, _) => number(*v),
                Value::Text(t) => string(t),
                Value::Nums(values, _) => {
                    format!("[{}]", values.iter().map(|&v| number(v)).collect::<Vec<_>>().join(","))
                }
                Value::Missing => "null".to_string(),
            };
            let _ = write!(out, ",{}:{value}", string(row.key));
        }
        let messages: Vec<String> = self.messages.iter().map(|m| string(m)).collect();
        let _ = write!(out, ",\"errors\":{},\"error_messages\":[{}]}}", self.errors, messages.join(","));
        out
    }
}

/// A JSON number; JSON has no NaN or infinity.
fn number(v: f64) -> String {
    if v.is_finite() { format!("{v}") } else { "null".to_string() }
}

/// A JSON string literal.
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_table_from_the_same_rows() {
        let mut report = Report::new("retr");
        report
            .text("host", "server", "127.0.0.1:2121")
            .int("bytes", "bytes", 42, "B")
            .num("mib_per_s", "throughput", 1.5, "MiB/s", 1)
            .maybe("cpu_s", "server CPU", None, "s", 2)
            .num("odd", "odd", f64::NAN, "", 0)
            .nums("each", "each", vec![1.0, 2.25], "MiB/s", 1)
            .errors(1, ["client 0: \"bad\"\n".to_string()]);
        let json = report.json();
        assert!(json.starts_with("{\"scenario\":\"retr\",\"unix_time\":"), "{json}");
        assert!(
            json.ends_with(
                ",\"host\":\"127.0.0.1:2121\",\"bytes\":42,\"mib_per_s\":1.5,\"cpu_s\":null,\"odd\":null,\
                 \"each\":[1,2.25],\"errors\":1,\"error_messages\":[\"client 0: \\\"bad\\\"\\n\"]}"
            ),
            "{json}"
        );
        let table = report.table();
        assert!(table.contains("  throughput  1.5 MiB/s\n"), "{table}");
        assert!(table.contains("  server CPU  -\n"), "{table}");
        assert!(table.contains("  each        1.0 2.2 MiB/s\n"), "{table}");
        assert!(table.contains("  errors      1\n"), "{table}");
        assert_eq!(report.error_count(), 1);
        assert_eq!(string("\u{1}é"), "\"\\u0001é\"");
    }
}
