//! Harnesses shared by Standings' integration tests, so that every crate
//! tests against the same real parts started the same way.
//!
//! - [`RedisCluster`]: a real Redis Cluster on free loopback ports, built on
//!   the `redis-test` crate (which spawns the nodes and runs
//!   `redis-cli --cluster create`), plus what our tests need on top: a clear
//!   failure when `redis-server` is missing, a wait until every node reports
//!   `cluster_state:ok`, the current masters, killing one, and per-node
//!   commands (`SCRIPT FLUSH`, `CLIENT PAUSE`, `INFO memory`).
//! - [`eventually`]: polls a condition until it holds or a deadline passes,
//!   for assertions about things that settle (failover, replication).
//! - [`process`]: the workspace's binaries as child processes (built on
//!   demand, output in files, killed on drop) and scratch directories, for
//!   tests that run the gateway and the agents as an operator would.
//! - [`conformance`]: the async suite every `Store` backend passes, and
//!   [`periods`] its part for boards in time, [`pages`] for deep pages.
//! - [`merge_sample`]: the merge benchmarks' input lists.
//! - [`redis`]: the `redis` crate this harness is built on, re-exported so a
//!   test can build a command for [`RedisCluster::query`] without a
//!   dependency of its own.
//!
//! Everything here is synchronous, so it works from plain `#[test]`s, from
//! `#[tokio::test]`s (setup blocks the test's runtime for a few seconds,
//! which nothing else is using yet) and from other processes' test drivers.

pub mod bench;
pub mod cluster;
pub mod conformance;
pub mod likes;
pub mod many;
pub mod merge_sample;
pub mod meta;
pub mod pages;
pub mod periods;
pub mod process;
pub mod ties;
pub mod varnish;

pub use redis;

use std::time::{Duration, Instant};

pub use cluster::{require_redis_binaries, RedisCluster};

/// Polls `condition` every 50 ms until it returns true; panics naming `what`
/// when `timeout` passes first. Use it instead of a fixed sleep, so a test
/// waits as long as it must and no longer.
pub fn eventually(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventually_returns_once_true() {
        let mut calls = 0;
        eventually(Duration::from_secs(1), "third call", || {
            calls += 1;
            calls == 3
        });
        assert_eq!(calls, 3);
    }

    #[test]
    #[should_panic(expected = "waiting for: never")]
    fn eventually_panics_with_what() {
        eventually(Duration::from_millis(100), "never", || false);
    }
}
