//! `standings-loadtest seed`: loads N members into a board of a Redis
//! Cluster straight through the store, so that benchmarks and capacity
//! figures start from a big board in seconds rather than after N HTTP
//! round trips.
//!
//! - Members are `user:0` .. `user:N-1`.
//! - Member `i`'s score is [`score_of`]`(seed, i)`: integer-valued and
//!   long-tailed (a Pareto draw), so most members share a few low scores
//!   (ties at the bottom) and a few spread far up (a spread at the top). It
//!   depends on the seed and `i` only, never on the order writes complete
//!   in, and it is SplitMix64 rather than `rand`'s `StdRng` (whose stream
//!   may change between `rand` releases): the same seed gives the same
//!   board on every run (pinned by test vectors).
//! - Every write is a `set` through [`Store::apply`], the write script a
//!   gateway write runs too (idempotency check, score, version bump, audit
//!   record), so shard versions and audit logs stay right and the agents
//!   publish the seeded shards on their next tick. `set`, not `incr`:
//!   seeding twice with the same seed leaves every score as it was.
//! - `--concurrency` writes are in flight at once. The cluster connection
//!   multiplexes them over one socket per master, so each master receives
//!   them pipelined; the figures in `docs/benchmarks.md` ("Seeding a Redis
//!   Cluster") were measured this way.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::stream::{self, StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use standings_config::{Config, ConfigArgs, StoreKind};
use standings_core::store::{RedisOptions, RedisStore};
use standings_core::types::MAX_SCORE;
use standings_core::{Board, MemberId, Op, Score, Store, StoreError, Write};

/// Attempts per write: a write the cluster could not take right now
/// (`Unavailable`: a timeout under load, a failover) is tried again after
/// a short wait before the seeding gives up. Re-applying a `set` leaves the
/// same score (a retry whose first attempt did land costs one extra
/// version and audit record, nothing else).
const ATTEMPTS: u32 = 3;

/// Wait before the second attempt; the third waits twice as long.
const RETRY_WAIT: Duration = Duration::from_millis(200);

/// Pareto scale: the scores of most members are below a few times this.
const SCALE: f64 = 100.0;

/// Pareto shape: the smaller, the longer the tail. With 1.2 about 1.2% of
/// members score 0, the median is about 78, and the best of a million is
/// around ten million.
const ALPHA: f64 = 1.2;

/// `standings-loadtest seed`'s flags.
#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// Members to load: user:0 .. user:N-1.
    #[arg(long)]
    pub members: u64,
    /// The board to load; the config must define it (the embedded config
    /// defines `global`, 100 shards).
    #[arg(long)]
    pub board: String,
    /// `--config FILE` and `--redis-nodes HOST:PORT,...`, as the gateway
    /// and the agents take them. The store must be a Redis Cluster.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Seed of the score distribution: the same seed gives the same scores.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Writes in flight at once.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub concurrency: u64,
}

/// What to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedPlan {
    /// Members `user:0 .. user:members-1`.
    pub members: u64,
    /// Seed of [`score_of`].
    pub seed: u64,
    /// Writes in flight at once (at least 1).
    pub concurrency: usize,
}

/// What a seeding did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seeded {
    /// Members written.
    pub members: u64,
    /// Wall-clock time of the writes.
    pub elapsed: Duration,
}

impl Seeded {
    /// Members written per second.
    pub fn per_second(&self) -> f64 {
        self.members as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Member `i`'s id.
pub fn member(i: u64) -> String {
    format!("user:{i}")
}

/// SplitMix64's finaliser: a bijective, well-mixed hash of a 64-bit word.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Member `i`'s score under `seed`: `floor(SCALE * (u^(-1/ALPHA) - 1))`
/// for `u` uniform in (0, 1] drawn from the hash of (seed, i). An integer
/// from 0 up, long-tailed, always within +-2^53.
pub fn score_of(seed: u64, i: u64) -> f64 {
    let bits = splitmix64(splitmix64(seed) ^ i);
    // 53 random bits, plus one so that u is never 0.
    let u = ((bits >> 11) + 1) as f64 / (1u64 << 53) as f64;
    (SCALE * (u.powf(-1.0 / ALPHA) - 1.0))
        .floor()
        .min(MAX_SCORE)
}

/// Writes members `0..plan.members` with their scores through `store`,
/// `plan.concurrency` at a time, ticking `progress` once per write. Fails
/// on the first write that still fails after [`ATTEMPTS`] tries.
pub async fn seed_store(
    store: &dyn Store,
    board: &Board,
    plan: &SeedPlan,
    progress: &ProgressBar,
) -> anyhow::Result<Seeded> {
    let started = Instant::now();
    stream::iter(0..plan.members)
        .map(|i| write_one(store, board, plan.seed, i))
        .buffer_unordered(plan.concurrency.max(1))
        .try_for_each(|()| {
            progress.inc(1);
            futures::future::ready(Ok(()))
        })
        .await?;
    Ok(Seeded {
        members: plan.members,
        elapsed: started.elapsed(),
    })
}

/// One member's `set`, tried up to [`ATTEMPTS`] times while the store is
/// unavailable.
async fn write_one(store: &dyn Store, board: &Board, seed: u64, i: u64) -> anyhow::Result<()> {
    let write = Write {
        member: MemberId::new(&member(i))?,
        op: Op::Set,
        value: Score::new(score_of(seed, i))?,
        idempotency_key: None,
        request_id: format!("seed-{seed}"),
        meta: None,
    };
    let mut attempt = 1;
    loop {
        match store.apply(board, &write).await {
            Ok(_) => return Ok(()),
            // A `set` of a fixed score is safe to repeat, so a write whose
            // outcome is unknown is retried too.
            Err(StoreError::Unavailable(_) | StoreError::OutcomeUnknown(_))
                if attempt < ATTEMPTS =>
            {
                tokio::time::sleep(RETRY_WAIT * attempt).await;
                attempt += 1;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("writing {} (attempt {attempt} of {ATTEMPTS})", write.member)
                })
            }
        }
    }
}

/// The board named `name` in `config`, or an error listing the ones it has.
fn find_board(config: &Config, name: &str) -> anyhow::Result<Board> {
    let boards = config.boards();
    if let Some(board) = boards.iter().find(|b| b.name.as_str() == name) {
        return Ok(board.clone());
    }
    let known: Vec<&str> = boards.iter().map(|b| b.name.as_str()).collect();
    bail!("the config defines no board {name:?} (it defines {known:?})")
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
fn progress_bar(members: u64) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{elapsed_precise} {wide_bar} {human_pos}/{human_len} members, {per_sec}, eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(members).with_style(style)
}

/// `standings-loadtest seed`: load the config, connect, seed, print the
/// rate.
pub async fn run(args: &SeedArgs) -> anyhow::Result<()> {
    let config = args.config.load()?;
    let board = find_board(&config, &args.board)?;
    if config.store.kind != StoreKind::Redis {
        bail!(
            "seed loads a Redis Cluster: pass --redis-nodes HOST:PORT,... or a --config whose \
             store.kind is \"redis\""
        );
    }
    let opts = RedisOptions {
        connect_timeout: Duration::from_millis(config.store.connect_timeout_ms),
        response_timeout: Duration::from_millis(config.store.response_timeout_ms),
        retries: config.store.retries,
    };
    let store = RedisStore::connect(&config.store.nodes, opts)
        .await
        .with_context(|| format!("connecting to {:?}", config.store.nodes))?;
    let plan = SeedPlan {
        members: args.members,
        seed: args.seed,
        concurrency: usize::try_from(args.concurrency).context("--concurrency")?,
    };
    let progress = progress_bar(plan.members);
    let seeded = seed_store(&store, &board, &plan, &progress).await;
    progress.finish_and_clear();
    let seeded = seeded?;
    println!(
        "seeded {} members into board {} ({} shards) with seed {} in {:.2}s: {:.0} members/s \
         ({} writes in flight)",
        seeded.members,
        board.name,
        board.shards,
        plan.seed,
        seeded.elapsed.as_secs_f64(),
        seeded.per_second(),
        plan.concurrency
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use standings_core::{BoardName, MemoryStore};

    #[test]
    fn scores_are_pinned_by_seed_and_member() {
        // Test vectors: a change here changes every seeded board.
        let first: Vec<f64> = (0..6).map(|i| score_of(1, i)).collect();
        assert_eq!(first, PINNED);
        assert_eq!(score_of(1, 3), score_of(1, 3));
        let other: Vec<f64> = (0..6).map(|i| score_of(2, i)).collect();
        assert_ne!(first, other, "the seed matters");
    }

    /// `score_of(1, 0..6)`.
    const PINNED: [f64; 6] = [129.0, 7.0, 28.0, 70.0, 12.0, 35.0];

    #[test]
    fn scores_are_integers_with_ties_at_the_bottom_and_a_long_tail() {
        let n = 100_000;
        let mut scores: Vec<f64> = (0..n).map(|i| score_of(9, i)).collect();
        assert!(scores
            .iter()
            .all(|s| s.fract() == 0.0 && (0.0..=MAX_SCORE).contains(s)));
        scores.sort_by(f64::total_cmp);
        let zeros = scores.iter().filter(|&&s| s == 0.0).count();
        assert!(zeros > 500, "many ties at 0: {zeros}");
        let median = scores[scores.len() / 2];
        let best = scores[scores.len() - 1];
        assert!((50.0..120.0).contains(&median), "median {median}");
        assert!(best > 1000.0 * median, "a long tail: best {best}");
        let top: std::collections::HashSet<u64> = scores[scores.len() - 100..]
            .iter()
            .map(|&s| s as u64)
            .collect();
        assert!(
            top.len() > 90,
            "the top 100 are mostly distinct: {}",
            top.len()
        );
    }

    fn board() -> Board {
        Board {
            shards: 8,
            groups: 2,
            ..Board::new(BoardName::new("seeded").unwrap())
        }
    }

    /// The sum of every shard's version: one per applied write.
    async fn total_version(store: &MemoryStore, b: &Board) -> u64 {
        store
            .versions(b, &b.all_shards())
            .await
            .unwrap()
            .iter()
            .sum()
    }

    async fn all_scores(store: &MemoryStore, b: &Board) -> Vec<(String, f64)> {
        let mut all = Vec::new();
        for shard in b.all_shards() {
            for e in store.top(b, shard, usize::MAX).await.unwrap() {
                all.push((e.member.as_str().to_string(), e.score));
            }
        }
        all.sort_by(|x, y| x.0.cmp(&y.0));
        all
    }

    #[tokio::test]
    async fn seeding_sets_every_member_once_and_again_changes_nothing() {
        let store = MemoryStore::new();
        let b = board();
        let plan = SeedPlan {
            members: 1_000,
            seed: 5,
            concurrency: 16,
        };
        let progress = ProgressBar::hidden();
        let seeded = seed_store(&store, &b, &plan, &progress).await.unwrap();
        assert_eq!(seeded.members, 1_000);
        assert_eq!(progress.position(), 1_000);
        let first = all_scores(&store, &b).await;
        assert_eq!(first.len(), 1_000);
        for (m, s) in &first {
            let i: u64 = m["user:".len()..].parse().unwrap();
            assert_eq!(*s, score_of(5, i), "{m}");
        }
        assert_eq!(
            total_version(&store, &b).await,
            1_000,
            "one applied write per member"
        );

        seed_store(&store, &b, &plan, &ProgressBar::hidden())
            .await
            .unwrap();
        assert_eq!(all_scores(&store, &b).await, first, "set, not incr");
        assert_eq!(total_version(&store, &b).await, 2_000);
    }

    #[test]
    fn unknown_boards_are_named() {
        let e = find_board(&Config::embedded(), "nope")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"nope\"") && e.contains("global"), "{e}");
    }
}
