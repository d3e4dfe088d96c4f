//! The Redis baselines with `redis-benchmark` (Debian's redis-tools):
//! one command against one standalone Redis holding every member in a
//! single sorted set, with the same client threads and connections as the
//! wrk side.
//!
//! `__rand_int__` in a command becomes a random 12-digit, zero-padded
//! number below `-r`, so the baseline set names its members
//! `user:000000000042` (see [`super::seeding::padded_member`]): every
//! request then finds its member, as every gateway request does.
//!
//! redis-benchmark counts requests, not seconds, so a run is sized from a
//! short calibration run to last about the asked duration, and killed if it
//! runs far past it.

use std::time::Duration;

use anyhow::{bail, Context};

use super::stats::Load;

/// Requests of the calibration run.
const CALIBRATION_REQUESTS: u64 = 20_000;

/// One redis-benchmark invocation.
#[derive(Debug, Clone)]
pub struct RedisBench {
    /// The standalone server's port on 127.0.0.1.
    pub port: u16,
    /// Client threads (`--threads`), as wrk's `-t`.
    pub threads: usize,
    /// Connections (`-c`), as wrk's `-c`.
    pub connections: usize,
    /// Random range for `__rand_int__` (`-r`): the member count.
    pub keyspace: u64,
    /// The command, e.g. `ZREVRANK bench:z user:__rand_int__`.
    pub command: Vec<String>,
}

impl RedisBench {
    /// The command line for `requests` requests.
    pub fn argv(&self, requests: u64) -> Vec<String> {
        let mut argv: Vec<String> = [
            "redis-benchmark",
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "--threads",
            &self.threads.to_string(),
            "-c",
            &self.connections.to_string(),
            "-n",
            &requests.to_string(),
            "-r",
            &self.keyspace.to_string(),
            "--precision",
            "3",
            "--csv",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        argv.extend(self.command.iter().cloned());
        argv
    }

    /// How many requests last about `duration`, from a short calibration
    /// run.
    pub async fn calibrate(&self, duration: Duration) -> anyhow::Result<u64> {
        let probe = self
            .run(CALIBRATION_REQUESTS, Duration::from_secs(60))
            .await?;
        Ok(requests_for(probe.rps, duration))
    }

    /// Runs `requests` requests, killed if they take far longer than the
    /// `duration` they were sized for.
    pub async fn run_sized(&self, requests: u64, duration: Duration) -> anyhow::Result<Load> {
        self.run(requests, duration * 3 + Duration::from_secs(30))
            .await
    }

    async fn run(&self, requests: u64, bound: Duration) -> anyhow::Result<Load> {
        let output = super::run_bounded(&self.argv(requests), bound).await?;
        parse_csv(&output, requests).with_context(|| format!("redis-benchmark output:\n{output}"))
    }
}

/// How many requests last `duration` at `rps`: at least the calibration's
/// count, so a slow machine still measures something.
pub fn requests_for(rps: f64, duration: Duration) -> u64 {
    ((rps * duration.as_secs_f64()) as u64).max(CALIBRATION_REQUESTS)
}

/// Reads redis-benchmark's `--csv` output (Redis 7):
/// `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",...`
/// and one row per command.
pub fn parse_csv(output: &str, requests: u64) -> anyhow::Result<Load> {
    let mut lines = output.lines().map(str::trim).filter(|l| l.starts_with('"'));
    let header = fields(lines.next().context("no CSV header")?);
    let row = fields(lines.next().context("no CSV row")?);
    let column = |name: &str| -> anyhow::Result<f64> {
        let i = header
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("no {name} column"))?;
        row.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .with_context(|| format!("{name} is not a number"))
    };
    let load = Load {
        rps: column("rps")?,
        p50_ms: column("p50_latency_ms")?,
        p99_ms: column("p99_latency_ms")?,
        requests,
        errors: 0,
    };
    if load.rps <= 0.0 {
        bail!("redis-benchmark measured no request");
    }
    Ok(load)
}

/// The fields of one CSV line of quoted values (redis-benchmark quotes all
/// of them; a command with a comma does not occur here).
fn fields(line: &str) -> Vec<String> {
    line.split("\",\"")
        .map(|f| f.trim_matches('"').to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_redis_7_csv() {
        let out = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                   \"ZREVRANK bench:z user:__rand_int__\",\"63091.48\",\"0.092\",\"0.008\",\"0.055\",\"0.087\",\"0.143\",\"25.007\"\n";
        let load = parse_csv(out, 20_000).unwrap();
        assert_eq!(
            load,
            Load {
                rps: 63091.48,
                p50_ms: 0.055,
                p99_ms: 0.143,
                requests: 20_000,
                errors: 0
            }
        );
        assert!(parse_csv("ERROR: connection refused\n", 1).is_err());
    }

    #[test]
    fn runs_are_sized_to_the_duration() {
        assert_eq!(requests_for(80_000.0, Duration::from_secs(10)), 800_000);
        assert_eq!(
            requests_for(10.0, Duration::from_secs(1)),
            CALIBRATION_REQUESTS
        );
        let bench = RedisBench {
            port: 7,
            threads: 2,
            connections: 32,
            keyspace: 1000,
            command: vec![
                "ZINCRBY".into(),
                "bench:z".into(),
                "1".into(),
                "user:__rand_int__".into(),
            ],
        };
        assert_eq!(
            bench.argv(5).join(" "),
            "redis-benchmark -h 127.0.0.1 -p 7 --threads 2 -c 32 -n 5 -r 1000 --precision 3 --csv \
             ZINCRBY bench:z 1 user:__rand_int__"
        );
    }
}
