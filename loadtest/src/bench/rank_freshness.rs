//! Rank freshness: how long from a write's 200 until another member's rank
//! shows it, on a gateway with `gateway.rank_staleness_ms` set.
//!
//! The probe member `rankprobe:0` holds a fixed score; each probe writes a
//! new member just above it (`set`, probe score + 1 + p, the probe's own
//! write never moves it), starts the clock at the 200 and polls the probe
//! member's rank every few milliseconds until it is at least one worse
//! than before the write. With a staleness bound the figure should stay
//! within the bound (plus the poll's resolution); at 0 it is one request.
//! Probes run one at a time: each needs the previous one's rank.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::Rng;

/// How often a probe polls the rank: the resolution of the figure.
const POLL: Duration = Duration::from_millis(5);

/// A probe that has not seen its write by then counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The probe member's fixed score: below the seeded top and above most.
const PROBE_SCORE: f64 = 5_000.0;

/// What the probes found.
#[derive(Debug, Clone, PartialEq)]
pub struct RankFreshness {
    /// Milliseconds from each write's 200 to the rank that counts it.
    pub samples_ms: Vec<f64>,
    /// Probes that never saw their write within the timeout.
    pub timed_out: usize,
}

/// Runs `probes` probes one after another against the gateway at `base`,
/// each after a random pause below `bound` so the writes fall at every
/// phase of the cache's lifetime.
pub async fn measure(
    base: &str,
    board: &str,
    probes: usize,
    bound: Duration,
) -> anyhow::Result<RankFreshness> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()?;
    set(&client, base, board, "rankprobe:0", PROBE_SCORE).await?;
    let mut samples_ms = Vec::with_capacity(probes);
    let mut timed_out = 0;
    for p in 0..probes {
        let pause = rand::thread_rng().gen_range(0..bound.as_millis().max(1) as u64);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        // Counts only grow (an answer is replaced by a later fan-out's),
        // and the previous probe saw its write counted, so `before` counts
        // every earlier probe.
        let before = rank(&client, base, board).await?;
        let member = format!("rankprobe:{}", p + 1);
        set(&client, base, board, &member, PROBE_SCORE + 1.0 + p as f64).await?;
        let acked = Instant::now();
        loop {
            if rank(&client, base, board).await? > before {
                samples_ms.push(acked.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            if acked.elapsed() > PROBE_TIMEOUT {
                timed_out += 1;
                break;
            }
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(RankFreshness {
        samples_ms,
        timed_out,
    })
}

async fn set(
    client: &reqwest::Client,
    base: &str,
    board: &str,
    member: &str,
    score: f64,
) -> anyhow::Result<()> {
    let body = serde_json::json!({"member": member, "score": score, "op": "set"});
    let response = client
        .post(format!("{base}/v1/boards/{board}/scores"))
        .json(&body)
        .send()
        .await
        .context("rank probe write")?;
    if !response.status().is_success() {
        bail!("rank probe write answered {}", response.status());
    }
    Ok(())
}

/// The probe member's rank.
async fn rank(client: &reqwest::Client, base: &str, board: &str) -> anyhow::Result<u64> {
    let response = client
        .get(format!("{base}/v1/boards/{board}/members/rankprobe:0"))
        .send()
        .await
        .context("rank probe read")?;
    let status = response.status();
    let json: serde_json::Value = response.json().await.context("rank probe body")?;
    json["rank"]
        .as_u64()
        .with_context(|| format!("rank probe read answered {status}: {json}"))
}

/// What a gateway's rank index holds and has answered, from `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct IndexReport {
    /// `standings_rank_index_scores`, summed over boards.
    pub distinct_scores: u64,
    /// `standings_rank_index_members`, summed over boards.
    pub members: u64,
    /// `standings_rank_index_total{result="hit"}`.
    pub hits: u64,
    /// `standings_rank_index_total{result="miss"}`.
    pub misses: u64,
    /// `standings_around_total{source="band"}`: windows read as the
    /// index's score band and ranked from it.
    pub around_band: u64,
    /// `standings_around_total{source="neighbours"}`: windows found by the
    /// live neighbours fan-out (a band too big) and ranked from the index.
    pub around_neighbours: u64,
    /// `standings_around_total{source="members"}`: windows answered from
    /// a members index's order, with no store call.
    pub around_members: u64,
    /// `standings_around_total{source="live"}`: windows read the live way.
    pub around_live: u64,
}

/// Reads [`IndexReport`] from the gateway at `base`.
pub async fn index_report(base: &str) -> anyhow::Result<IndexReport> {
    let text = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()?
        .get(format!("{base}/metrics"))
        .send()
        .await
        .context("metrics")?
        .text()
        .await
        .context("metrics text")?;
    Ok(parse_index_report(&text))
}

fn parse_index_report(text: &str) -> IndexReport {
    let mut r = IndexReport::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value = value.parse::<f64>().unwrap_or(0.0) as u64;
        if name.starts_with("standings_rank_index_scores{") {
            r.distinct_scores += value;
        } else if name.starts_with("standings_rank_index_members{") {
            r.members += value;
        } else if name == "standings_rank_index_total{result=\"hit\"}" {
            r.hits = value;
        } else if name == "standings_rank_index_total{result=\"miss\"}" {
            r.misses = value;
        } else if name == "standings_around_total{source=\"band\"}" {
            r.around_band = value;
        } else if name == "standings_around_total{source=\"neighbours\"}" {
            r.around_neighbours = value;
        } else if name == "standings_around_total{source=\"members\"}" {
            r.around_members = value;
        } else if name == "standings_around_total{source=\"live\"}" {
            r.around_live = value;
        }
    }
    r
}

/// Asks the gateway at `base` for ranks on `board` until its rank index
/// answers one (the first ask starts it, a scan builds it); answers how
/// long that took.
pub async fn wait_for_index(base: &str, board: &str, limit: Duration) -> anyhow::Result<Duration> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()?;
    let started = Instant::now();
    while index_report(base).await?.hits == 0 {
        if started.elapsed() > limit {
            bail!("the rank index answered nothing within {limit:?}");
        }
        let _ = client
            .get(format!("{base}/v1/boards/{board}/members/user:1"))
            .send()
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_reports_read_the_gauges_and_counters() {
        let text = "# TYPE standings_rank_index_total counter\n\
                    standings_rank_index_total{result=\"hit\"} 41\n\
                    standings_rank_index_total{result=\"miss\"} 2\n\
                    standings_rank_index_scores{board=\"a\"} 7\n\
                    standings_rank_index_scores{board=\"b\"} 3\n\
                    standings_rank_index_members{board=\"a\"} 70\n\
                    standings_around_total{source=\"band\"} 5\n\
                    standings_around_total{source=\"neighbours\"} 4\n\
                    standings_around_total{source=\"members\"} 3\n\
                    standings_around_total{source=\"live\"} 9\n";
        assert_eq!(
            parse_index_report(text),
            IndexReport {
                distinct_scores: 10,
                members: 70,
                hits: 41,
                misses: 2,
                around_band: 5,
                around_neighbours: 4,
                around_members: 3,
                around_live: 9,
            }
        );
    }
}
