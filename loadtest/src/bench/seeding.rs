//! Loading the members: into the cluster with the `seed` subcommand's
//! [`seed_store`](crate::seed::seed_store) (through the store's own write
//! path), and into the baseline's single sorted set.
//!
//! Both sides hold the same scores for member `i`
//! ([`crate::seed::score_of`] with [`SEED`]); only the names differ, because
//! redis-benchmark's `__rand_int__` is 12 digits, zero-padded
//! ([`padded_member`]).

use anyhow::Context;
use standings_core::Board;
use standings_core::Store;

use crate::seed::{score_of, seed_store, SeedPlan, Seeded};

/// Seed of the score distribution, the `seed` subcommand's default.
pub const SEED: u64 = 1;

/// Writes in flight at once while seeding the cluster (the `seed`
/// subcommand's default).
const IN_FLIGHT: usize = 256;

/// Members per `ZADD` when loading the baseline set.
const ZADD_BATCH: u64 = 1000;

/// The key of the baseline's single sorted set.
pub const BASELINE_KEY: &str = "bench:z";

/// Member `i` as redis-benchmark names it: `user:` and 12 digits.
pub fn padded_member(i: u64) -> String {
    format!("user:{i:012}")
}

/// Seeds members `0..count` of `board` through `store` with
/// [`seed_store`]: a `set` per member through the write script (score,
/// version, audit record), many in flight.
pub async fn seed_cluster(store: &dyn Store, board: &Board, count: u64) -> anyhow::Result<Seeded> {
    let plan = SeedPlan {
        members: count,
        seed: SEED,
        concurrency: IN_FLIGHT,
    };
    seed_store(store, board, &plan, &indicatif::ProgressBar::hidden()).await
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
                cmd.arg(score_of(SEED, i)).arg(padded_member(i));
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
    fn baseline_members_match_rand_int() {
        // redis-benchmark's __rand_int__ is 12 zero-padded digits.
        assert_eq!(padded_member(42), "user:000000000042");
        assert_eq!(padded_member(999_999), "user:000000999999");
    }
}
