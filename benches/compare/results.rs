//! Every run's raw result, the medians drawn from them, and the JSON file holding both.

use crate::peers;
use crate::scenarios::{self, Outcome};
use serde_json::{Value, json};

pub struct Run {
    pub round: u32,
    pub server: peers::Kind,
    pub scenario: scenarios::Kind,
    /// `Err`: the server could not be started for it.
    pub outcome: Result<Outcome, String>,
}

#[derive(Default)]
pub struct Results {
    pub runs: Vec<Run>,
    /// Loopback ceiling of each round, MiB/s.
    pub ceilings: Vec<f64>,
    /// The same with iperf3 -Z (sendfile on the sending side), where measured.
    pub zerocopy_ceilings: Vec<f64>,
    pub ceiling_method: &'static str,
}

impl Results {
    /// The values of `key` over the rounds, from runs that produced a result.
    pub fn values(&self, server: peers::Kind, scenario: scenarios::Kind, key: &str) -> Vec<f64> {
        self.results(server, scenario).filter_map(|result| result[key].as_f64()).collect()
    }

    pub fn median(&self, server: peers::Kind, scenario: scenarios::Kind, key: &str) -> Option<f64> {
        median(self.values(server, scenario, key))
    }

    /// Errors ftpbench counted over all rounds, plus runs that gave no result at all.
    pub fn errors(&self, server: peers::Kind, scenario: scenarios::Kind) -> Option<u64> {
        let runs: Vec<&Run> = self.runs_of(server, scenario).collect();
        if runs.is_empty() {
            return None;
        }
        let counted = self.results(server, scenario).filter_map(|result| result["errors"].as_u64()).sum::<u64>();
        let failed = runs.iter().filter(|run| !matches!(&run.outcome, Ok(Outcome { result: Some(_), .. }))).count();
        Some(counted + failed as u64)
    }

    pub fn ceiling(&self) -> Option<f64> {
        median(self.ceilings.clone())
    }

    fn runs_of(&self, server: peers::Kind, scenario: scenarios::Kind) -> impl Iterator<Item = &Run> {
        self.runs.iter().filter(move |run| run.server == server && run.scenario == scenario)
    }

    fn results(&self, server: peers::Kind, scenario: scenarios::Kind) -> impl Iterator<Item = &Value> {
        self.runs_of(server, scenario).filter_map(|run| run.outcome.as_ref().ok()?.result.as_ref())
    }

    /// Raw runs and medians, for target/bench/compare.json.
    pub fn to_json(&self, servers: &[peers::Kind], scenarios: &[scenarios::Kind], header: Value) -> Value {
        let runs: Vec<Value> = self
            .runs
            .iter()
            .map(|run| {
                let (exit_code, seconds, result, failure) = match &run.outcome {
                    Ok(o) => {
                        (json!(o.exit_code), json!(o.seconds), o.result.clone().unwrap_or(Value::Null), Value::Null)
                    }
                    Err(e) => (Value::Null, Value::Null, Value::Null, json!(e)),
                };
                json!({
                    "round": run.round, "server": run.server.name(), "scenario": run.scenario.name(),
                    "exit_code": exit_code, "seconds": seconds, "failure": failure, "result": result,
                })
            })
            .collect();
        let mut medians = serde_json::Map::new();
        for &scenario in scenarios {
            let mut per_metric = serde_json::Map::new();
            for metric in scenario.metrics() {
                let per_server: serde_json::Map<String, Value> = servers
                    .iter()
                    .map(|&server| (server.name().to_string(), json!(self.median(server, scenario, metric.key))))
                    .collect();
                per_metric.insert(metric.key.to_string(), Value::Object(per_server));
            }
            let errors: serde_json::Map<String, Value> = servers
                .iter()
                .map(|&server| (server.name().to_string(), json!(self.errors(server, scenario))))
                .collect();
            per_metric.insert("errors_all_rounds".to_string(), Value::Object(errors));
            medians.insert(scenario.name().to_string(), Value::Object(per_metric));
        }
        let mut out = header;
        out["ceiling"] = json!({
            "method": self.ceiling_method,
            "rounds_mib_per_s": self.ceilings,
            "median_mib_per_s": self.ceiling(),
            "zerocopy_rounds_mib_per_s": self.zerocopy_ceilings,
            "zerocopy_median_mib_per_s": median(self.zerocopy_ceilings.clone()),
        });
        out["medians"] = Value::Object(medians);
        out["runs"] = Value::Array(runs);
        out
    }
}

/// The middle value (the mean of the two middle ones for an even count); `None` if empty.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}
