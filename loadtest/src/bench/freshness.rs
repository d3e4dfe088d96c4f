//! Freshness: how long from a write's 200 until `/top` shows it.
//!
//! A probe writes a new member with a score above every other (`set`,
//! `1e12 + probe`), starts the clock when the 200 arrives, and polls
//! `/top?limit=20` every few milliseconds until the member is listed. A few
//! probes run at once to stay within time, each after a random pause below
//! one tick: without it the probes would fall into step with the ticks and
//! always write at the same phase of the interval, which measures one point
//! of the distribution instead of all of it.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::stream::{self, StreamExt};
use rand::Rng;

/// How often a probe polls `/top`: the resolution of the figure.
const POLL: Duration = Duration::from_millis(5);

/// A probe that has not seen its write by then counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// What the probes found.
#[derive(Debug, Clone, PartialEq)]
pub struct Freshness {
    /// Milliseconds from each write's 200 to its appearance in `/top`.
    pub samples_ms: Vec<f64>,
    /// Probes that never saw their write within the timeout.
    pub timed_out: usize,
}

/// Runs `probes` probes, `concurrency` at a time, against the gateway at
/// `base` (`http://127.0.0.1:PORT`); `tick` bounds the random pause.
pub async fn measure(
    base: &str,
    board: &str,
    probes: usize,
    concurrency: usize,
    tick: Duration,
) -> anyhow::Result<Freshness> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()?;
    let outcomes: Vec<anyhow::Result<Option<f64>>> = stream::iter(0..probes)
        .map(|p| {
            let client = client.clone();
            async move {
                let pause = rand::thread_rng().gen_range(0..tick.as_millis().max(1) as u64);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                probe(&client, base, board, p).await
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut samples_ms = Vec::with_capacity(probes);
    let mut timed_out = 0;
    for outcome in outcomes {
        match outcome? {
            Some(ms) => samples_ms.push(ms),
            None => timed_out += 1,
        }
    }
    Ok(Freshness {
        samples_ms,
        timed_out,
    })
}

/// One probe: `Some(ms)` once seen, `None` after [`PROBE_TIMEOUT`].
async fn probe(
    client: &reqwest::Client,
    base: &str,
    board: &str,
    p: usize,
) -> anyhow::Result<Option<f64>> {
    let member = format!("fresh:{p}");
    let body = serde_json::json!({"member": member, "score": 1e12 + p as f64, "op": "set"});
    let response = client
        .post(format!("{base}/v1/boards/{board}/scores"))
        .json(&body)
        .send()
        .await
        .with_context(|| format!("freshness probe {p}: writing"))?;
    if !response.status().is_success() {
        bail!(
            "freshness probe {p}: the write answered {}",
            response.status()
        );
    }
    let written = Instant::now();
    let url = format!("{base}/v1/boards/{board}/top?limit=20");
    let needle = listed(&member);
    while written.elapsed() < PROBE_TIMEOUT {
        let top = client.get(&url).send().await?.text().await?;
        if top.contains(&needle) {
            return Ok(Some(written.elapsed().as_secs_f64() * 1000.0));
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(None)
}

/// How `member` appears in a `top` body: with both quotes, so `fresh:3`
/// never matches `fresh:30`.
fn listed(member: &str) -> String {
    format!("\"member\":\"{member}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_member_matches_exactly() {
        let body = r#"{"entries":[{"rank":1,"member":"fresh:30","score":1000000000030}]}"#;
        assert!(body.contains(&listed("fresh:30")));
        assert!(!body.contains(&listed("fresh:3")));
    }
}
