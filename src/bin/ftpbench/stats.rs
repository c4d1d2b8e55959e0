//! Numbers out of raw measurements: latency percentiles, rates, and how evenly clients were
//! served. Pure functions, no clocks.

use std::time::Duration;

pub const MIB: f64 = 1024.0 * 1024.0;
pub const GIB: f64 = 1024.0 * MIB;

/// Latency percentiles by nearest rank: p50 and p99 are durations that were actually measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Percentiles {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub mean: Duration,
}

/// `None` when nothing was measured.
pub fn percentiles(mut samples: Vec<Duration>) -> Option<Percentiles> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let total: Duration = samples.iter().sum();
    Some(Percentiles {
        p50: nearest_rank(&samples, 50),
        p99: nearest_rank(&samples, 99),
        max: samples[samples.len() - 1],
        mean: total / samples.len() as u32,
    })
}

/// The smallest sample with at least `percent`% of all samples at or below it.
fn nearest_rank(sorted: &[Duration], percent: usize) -> Duration {
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Slowest and fastest of per-client rates; `fairness` is slowest / fastest (1 = perfectly
/// even, 0 = someone starved).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub min: f64,
    pub max: f64,
    pub fairness: f64,
}

pub fn spread(rates: &[f64]) -> Option<Spread> {
    let min = rates.iter().copied().reduce(f64::min)?;
    let max = rates.iter().copied().reduce(f64::max)?;
    let fairness = if max > 0.0 { min / max } else { 0.0 };
    Some(Spread { min, max, fairness })
}

/// `count` per second over `seconds`, 0 for an empty window.
pub fn per_second(count: f64, seconds: f64) -> f64 {
    if seconds > 0.0 { count / seconds } else { 0.0 }
}

pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentiles(Vec::new()), None);
        let one = percentiles(ms(&[7])).unwrap();
        assert_eq!((one.p50, one.p99, one.max), (ms(&[7])[0], ms(&[7])[0], ms(&[7])[0]));
        let hundred: Vec<u64> = (1..=100).rev().collect();
        let p = percentiles(ms(&hundred)).unwrap();
        assert_eq!(p.p50, Duration::from_millis(50));
        assert_eq!(p.p99, Duration::from_millis(99));
        assert_eq!(p.max, Duration::from_millis(100));
        assert_eq!(p.mean, Duration::from_micros(50_500));
        let p = percentiles(ms(&[1, 2, 3])).unwrap();
        assert_eq!((p.p50, p.p99), (Duration::from_millis(2), Duration::from_millis(3)));
    }

    #[test]
    fn spreads_and_rates() {
        assert_eq!(spread(&[]), None);
        assert_eq!(spread(&[2.0, 4.0, 3.0]), Some(Spread { min: 2.0, max: 4.0, fairness: 0.5 }));
        assert_eq!(spread(&[0.0, 0.0]).unwrap().fairness, 0.0);
        assert_eq!(per_second(10.0, 2.0), 5.0);
        assert_eq!(per_second(10.0, 0.0), 0.0);
    }
}
