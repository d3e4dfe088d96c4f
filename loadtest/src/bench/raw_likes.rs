//! The likes baseline of `bench-likes`: raw Redis Cluster doing the seed's
//! own three commands for a like, from a small redis-rs client.
//!
//! The seed's layout, per like of actor `u:M` on target `v:N`:
//!
//! | command | key | slot |
//! | --- | --- | --- |
//! | `SADD likers:{v:N} u:M` | the target's likers set | hash tag `{v:N}` |
//! | `HINCRBY counts:{v:N} likes 1` | the target's counts hash | the same slot as its likers |
//! | `ZINCRBY board:likes 1 v:N` | one global sorted set | the slot of `board:likes`: one master takes every like's `ZINCRBY` |
//!
//! A cluster pipeline cannot cross slots (redis-rs refuses it, and a node
//! would answer `CROSSSLOT`), so "pipelined" is what a cluster client does
//! with such a pipeline: the two commands of the `{v:N}` slot go as one
//! pipeline to its master and the `ZINCRBY` to the board's master at the
//! same time, and the like is done when both answered. Its latency is
//! measured from before the first is sent to after the last answer.
//!
//! `connections` workers, each with its own cluster connection (one socket
//! per master) and one like in flight, as wrk's `-c` connections each have
//! one request in flight; they run on a runtime of `threads` workers, as
//! wrk's `-t`. Every loop is bounded in time (the duration, and 2 s per
//! like, as wrk's `--timeout 2s`) and in count ([`MAX_LIKES_PER_SEC`]).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::{Rng, SeedableRng};
use redis::cluster::ClusterClient;

use super::stats::{percentile, Load};

/// The seed's global board key.
pub const BOARD_KEY: &str = "board:likes";

/// No run sends more than this many likes per second of its duration, far
/// above what this machine does (a bound on the loop, not a target).
pub const MAX_LIKES_PER_SEC: u64 = 1_000_000;

/// One like's bound, as wrk's `--timeout 2s`.
const LIKE_TIMEOUT: Duration = Duration::from_secs(2);

/// One bounded run of the raw client.
#[derive(Debug, Clone)]
pub struct RawLikes {
    /// The cluster's nodes, `127.0.0.1:PORT`; only loopback.
    pub nodes: Vec<String>,
    /// Workers, each with its own cluster connection and one like in flight.
    pub connections: usize,
    /// Runtime worker threads.
    pub threads: usize,
    /// How long.
    pub duration: Duration,
    /// Actors `u:0..ACTORS`.
    pub actors: u64,
    /// Targets `v:0..TARGETS`.
    pub targets: u64,
}

/// What a raw run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawRun {
    /// Likes/s, p50/p99 per like, likes done, likes failed.
    pub load: Load,
    /// Likes whose `SADD` added the actor (a new like: the gateway's
    /// `applied: true`).
    pub new_likes: u64,
}

/// The three commands of one like, in the two groups a cluster client
/// sends them in: the target's slot (a pipeline), and the board's.
pub fn like_commands(actor: u64, target: u64) -> (redis::Pipeline, redis::Cmd) {
    let tag = format!("{{v:{target}}}");
    let mut same_slot = redis::pipe();
    same_slot
        .cmd("SADD")
        .arg(format!("likers:{tag}"))
        .arg(format!("u:{actor}"))
        .cmd("HINCRBY")
        .arg(format!("counts:{tag}"))
        .arg("likes")
        .arg(1);
    let mut board = redis::cmd("ZINCRBY");
    board.arg(BOARD_KEY).arg(1).arg(format!("v:{target}"));
    (same_slot, board)
}

/// What one worker did.
#[derive(Default)]
struct Worker {
    latencies_us: Vec<u32>,
    new_likes: u64,
    errors: u64,
    first_error: Option<String>,
}

impl RawLikes {
    /// The command, as recorded in the results.
    pub fn describe(&self) -> String {
        format!(
            "standings-loadtest bench-likes raw client (redis-rs cluster async): {} workers on {} threads for {} s, \
             each like `SADD likers:{{v:N}} u:M` + `HINCRBY counts:{{v:N}} likes 1` pipelined to the target's slot \
             and `ZINCRBY {BOARD_KEY} 1 v:N` at the same time; M < {}, N < {}",
            self.connections,
            self.threads,
            self.duration.as_secs(),
            self.actors,
            self.targets
        )
    }

    /// Runs on a runtime of its own (so the client gets `threads` threads,
    /// as wrk does), from a plain thread; waits without blocking the
    /// caller's runtime.
    pub async fn run(&self) -> anyhow::Result<RawRun> {
        for node in &self.nodes {
            if !(node.starts_with("127.") || node.starts_with("localhost")) {
                bail!("the raw client only loads loopback nodes, not {node}");
            }
        }
        let this = self.clone();
        let handle = std::thread::Builder::new().name("raw-likes".into()).spawn(
            move || -> anyhow::Result<RawRun> {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(this.threads.max(1))
                    .enable_all()
                    .build()?;
                runtime.block_on(this.drive())
            },
        )?;
        tokio::task::spawn_blocking(move || handle.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the raw client panicked"))?
    }

    async fn drive(self) -> anyhow::Result<RawRun> {
        let urls: Vec<String> = self.nodes.iter().map(|n| format!("redis://{n}/")).collect();
        let client = ClusterClient::builder(urls)
            .response_timeout(LIKE_TIMEOUT)
            .connection_timeout(LIKE_TIMEOUT)
            .build()?;
        // Every connection is up before the clock starts, as wrk connects
        // before it counts.
        let mut conns = Vec::with_capacity(self.connections);
        for _ in 0..self.connections {
            conns.push(
                client
                    .get_async_connection()
                    .await
                    .context("connecting to the cluster")?,
            );
        }
        let max_total = MAX_LIKES_PER_SEC * self.duration.as_secs().max(1);
        let per_worker = max_total / self.connections.max(1) as u64;
        let started = Instant::now();
        let deadline = started + self.duration;
        let mut tasks = Vec::with_capacity(conns.len());
        for conn in conns {
            let (actors, targets) = (self.actors, self.targets);
            tasks.push(tokio::spawn(async move {
                worker(conn, actors, targets, deadline, per_worker).await
            }));
        }
        let mut all = Worker::default();
        for task in tasks {
            let w = task.await?;
            all.latencies_us.extend_from_slice(&w.latencies_us);
            all.new_likes += w.new_likes;
            all.errors += w.errors;
            if all.first_error.is_none() {
                all.first_error = w.first_error;
            }
        }
        let elapsed = started.elapsed();
        summarise(&all, elapsed)
    }
}

/// One worker: likes one after another until `deadline` or `max` likes.
async fn worker(
    mut conn: redis::cluster_async::ClusterConnection,
    actors: u64,
    targets: u64,
    deadline: Instant,
    max: u64,
) -> Worker {
    // StdRng, not thread_rng: the worker's future moves between threads.
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut board_conn = conn.clone();
    let mut w = Worker {
        latencies_us: Vec::with_capacity(1 << 16),
        ..Worker::default()
    };
    let mut done = 0u64;
    while done < max && Instant::now() < deadline {
        done += 1;
        let (actor, target) = (rng.gen_range(0..actors), rng.gen_range(0..targets));
        let (same_slot, board) = like_commands(actor, target);
        let t0 = Instant::now();
        let both = async {
            tokio::try_join!(
                same_slot.query_async::<(i64, i64)>(&mut conn),
                board.query_async::<f64>(&mut board_conn)
            )
        };
        match tokio::time::timeout(LIKE_TIMEOUT, both).await {
            Ok(Ok(((added, _), _))) => {
                let us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
                w.latencies_us.push(us);
                w.new_likes += u64::from(added == 1);
            }
            Ok(Err(e)) => {
                w.errors += 1;
                w.first_error.get_or_insert_with(|| e.to_string());
            }
            Err(_) => {
                w.errors += 1;
                w.first_error
                    .get_or_insert_with(|| format!("a like took over {LIKE_TIMEOUT:?}"));
            }
        }
    }
    w
}

/// The run's figures; more than 1% failed likes is an error, as a wrk run
/// with more than 1% errors is.
fn summarise(all: &Worker, elapsed: Duration) -> anyhow::Result<RawRun> {
    let done = all.latencies_us.len() as u64;
    if done == 0 {
        bail!(
            "the raw client completed no like ({} failed: {})",
            all.errors,
            all.first_error.as_deref().unwrap_or("?")
        );
    }
    if all.errors * 100 > done + all.errors {
        bail!(
            "{} of {} likes failed; the first: {}",
            all.errors,
            done + all.errors,
            all.first_error.as_deref().unwrap_or("?")
        );
    }
    let ms: Vec<f64> = all
        .latencies_us
        .iter()
        .map(|&us| f64::from(us) / 1000.0)
        .collect();
    Ok(RawRun {
        load: Load {
            rps: done as f64 / elapsed.as_secs_f64(),
            p50_ms: percentile(&ms, 50.0).unwrap_or(f64::NAN),
            p99_ms: percentile(&ms, 99.0).unwrap_or(f64::NAN),
            requests: done,
            errors: all.errors,
        },
        new_likes: all.new_likes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(cmd: &redis::Cmd) -> String {
        String::from_utf8(cmd.get_packed_command()).unwrap()
    }

    #[test]
    fn a_like_is_the_seeds_three_commands_in_two_slots() {
        let (same_slot, board) = like_commands(42, 9);
        let pipeline = String::from_utf8(same_slot.get_packed_pipeline()).unwrap();
        assert_eq!(
            pipeline,
            "*3\r\n$4\r\nSADD\r\n$12\r\nlikers:{v:9}\r\n$4\r\nu:42\r\n\
             *4\r\n$7\r\nHINCRBY\r\n$12\r\ncounts:{v:9}\r\n$5\r\nlikes\r\n$1\r\n1\r\n"
        );
        assert_eq!(
            packed(&board),
            "*4\r\n$7\r\nZINCRBY\r\n$11\r\nboard:likes\r\n$1\r\n1\r\n$3\r\nv:9\r\n"
        );
        // The likers set and the counts hash share the target's slot; the
        // board has one slot of its own.
        let slot = |key: &str| redis::cluster_routing::Slot::for_key(key);
        assert_eq!(slot("likers:{v:9}"), slot("counts:{v:9}"));
        assert_eq!(slot("likers:{v:9}"), slot("v:9"));
        assert_ne!(slot("likers:{v:9}"), slot("likers:{v:10}"));
        assert_ne!(slot("likers:{v:9}"), slot(BOARD_KEY));
    }

    #[test]
    fn summaries_refuse_failing_runs() {
        let ok = Worker {
            latencies_us: (1..=1000).collect(),
            new_likes: 990,
            errors: 5,
            first_error: Some("x".into()),
        };
        let run = summarise(&ok, Duration::from_secs(2)).unwrap();
        assert_eq!(run.load.requests, 1000);
        assert_eq!(run.load.errors, 5);
        assert!((run.load.rps - 500.0).abs() < 1e-9);
        assert!((run.load.p50_ms - 0.5).abs() < 1e-9);
        assert!((run.load.p99_ms - 0.99).abs() < 1e-9);
        assert_eq!(run.new_likes, 990);
        let failing = Worker { errors: 20, ..ok };
        assert!(summarise(&failing, Duration::from_secs(2)).is_err());
        assert!(summarise(&Worker::default(), Duration::from_secs(1)).is_err());
    }
}
