//! Percentile math over the samples the bench takes itself (freshness
//! probes, merge timings), and the shape every load measurement shares.
//!
//! wrk and redis-benchmark compute their own percentiles; these functions
//! are for the samples this process collects, with one definition
//! (nearest rank) so that "p99 of 200 probes" means one thing.

use serde::Serialize;

/// Throughput and latency of one load run, whichever tool measured it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Load {
    /// Completed requests per second over the run.
    pub rps: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Requests completed.
    pub requests: u64,
    /// Requests that failed (connection errors, timeouts, non-2xx/3xx).
    pub errors: u64,
}

impl Load {
    /// `12,345 req/s, p50 0.41 ms, p99 1.20 ms` for the table.
    pub fn summary(&self) -> String {
        format!(
            "{} req/s, p50 {:.2} ms, p99 {:.2} ms",
            thousands(self.rps),
            self.p50_ms,
            self.p99_ms
        )
    }
}

/// The `p`-th percentile (0 < p <= 100) of `samples` by nearest rank: the
/// smallest sample with at least p% of all samples at or below it. `None`
/// for no samples. Sorts a copy; NaN sorts last.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The median by the same definition (the lower middle for an even count).
pub fn median(samples: &[f64]) -> Option<f64> {
    percentile(samples, 50.0)
}

/// `a / b`, or `None` when `b` is not a positive number (a ratio against a
/// baseline that measured nothing means nothing).
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0 && a.is_finite()).then(|| a / b)
}

/// An integer with thousands separators: `1234567.8` -> `1,234,568`.
pub fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 && digits != "0" {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), Some(50.0));
        assert_eq!(percentile(&samples, 99.0), Some(99.0));
        assert_eq!(percentile(&samples, 100.0), Some(100.0));
        assert_eq!(percentile(&samples, 0.1), Some(1.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        // 200 probes: p99 is the 198th smallest, not the maximum.
        let probes: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&probes, 99.0), Some(198.0));
        assert_eq!(median(&[3.0, 1.0, 2.0, 4.0]), Some(2.0));
    }

    #[test]
    fn ratios_need_a_baseline() {
        assert_eq!(ratio(50.0, 100.0), Some(0.5));
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(f64::NAN, 1.0), None);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1234567.8), "1,234,568");
        assert_eq!(thousands(-1000.0), "-1,000");
    }
}
