//! Loading the members: into the cluster through the store's own write
//! path, and into the baseline's single sorted set.
//!
//! Note: the `seed` subcommand (`loadtest/src/seed.rs`) was not in the
//! tree when this was written, so the bench seeds with its own small
//! function over [`RedisStore::apply`]; once `seed.rs` offers a public
//! seeding function over the store, [`seed_cluster`] should call it.
//!
//! Both sides hold the same scores for member `i` ([`score_of`]); only the
//! names differ, because redis-benchmark's `__rand_int__` is 12 digits,
//! zero-padded ([`padded_member`]).

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::stream::{self, StreamExt, TryStreamExt};
use standings_core::store::RedisStore;
use standings_core::{Board, MemberId, Op, Score, Store, Write};

/// Writes in flight at once while seeding the cluster: enough to keep three
/// masters busy through one multiplexed connection each.
const IN_FLIGHT: usize = 256;

/// Members per `ZADD` when loading the baseline set.
const ZADD_BATCH: u64 = 1000;

/// The key of the baseline's single sorted set.
pub const BASELINE_KEY: &str = "bench:z";

/// Member `i` as the gateway sees it: `user:i`.
pub fn member(i: u64) -> String {
    format!("user:{i}")
}

/// Member `i` as redis-benchmark names it: `user:` and 12 digits.
pub fn padded_member(i: u64) -> String {
    format!("user:{i:012}")
}

/// Member `i`'s seeded score: a fixed pseudo-random integer below 2^24, so
/// scores spread with some ties and every run seeds the same board.
pub fn score_of(i: u64) -> f64 {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f64
}

/// Writes members `0..count` with `op: set` through `store` (the write
/// script: idempotency check, score, version, audit record), many in
/// flight; prints progress; answers how long it took.
pub async fn seed_cluster(
    store: &RedisStore,
    board: &Board,
    count: u64,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let step = (count / 10).max(1);
    stream::iter(0..count)
        .map(|i| async move {
            let write = Write {
                member: MemberId::new(&member(i))?,
                op: Op::Set,
                value: Score::new(score_of(i))?,
                idempotency_key: None,
                request_id: "bench-seed".into(),
            };
            store
                .apply(board, &write)
                .await
                .with_context(|| format!("seeding {}", member(i)))?;
            if (i + 1) % step == 0 {
                eprintln!("  seeded {} of {count}", i + 1);
            }
            anyhow::Ok(())
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<()>()
        .await?;
    Ok(started.elapsed())
}

/// Loads members `0..count` (padded names, same scores) into
/// [`BASELINE_KEY`] on the standalone Redis at `port`, in pipelined
/// batches.
pub async fn seed_baseline(port: u16, count: u64) -> anyhow::Result<()> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .context("connecting to the baseline Redis")?;
    let mut start = 0;
    while start < count {
        let mut pipe = redis::pipe();
        for _ in 0..16 {
            if start >= count {
                break;
            }
            let end = (start + ZADD_BATCH).min(count);
            let cmd = pipe.cmd("ZADD").arg(BASELINE_KEY);
            for i in start..end {
                cmd.arg(score_of(i)).arg(padded_member(i));
            }
            cmd.ignore();
            start = end;
        }
        pipe.query_async::<()>(&mut conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_scores() {
        assert_eq!(member(42), "user:42");
        assert_eq!(padded_member(42), "user:000000000042");
        assert_eq!(score_of(7), score_of(7));
        for i in 0..1000 {
            let s = score_of(i);
            assert!((0.0..16_777_216.0).contains(&s) && s.fract() == 0.0);
        }
    }
}
