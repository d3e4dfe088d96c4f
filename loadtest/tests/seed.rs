//! `standings-loadtest seed` against a real 3-master Redis Cluster started
//! by the test-support harness: it loads exactly N members over the
//! board's shards through the write script, and seeding again with the
//! same seed changes no score (`set`, not `incr`), while another seed does.

use std::collections::HashMap;
use std::process::{Command, Output};

use standings_config::Config;
use standings_core::store::{RedisOptions, RedisStore};
use standings_core::{Board, Store};
use standings_test_support::RedisCluster;

/// Members seeded: enough for ties and for every one of the 100 shards.
const MEMBERS: u64 = 5_000;

/// Runs `standings-loadtest seed ARGS`; panics with its output unless it
/// exits as `ok` says.
fn seeder(args: &[&str], ok: bool) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_standings-loadtest"))
        .arg("seed")
        .args(args)
        .output()
        .expect("run standings-loadtest");
    assert_eq!(
        out.status.success(),
        ok,
        "standings-loadtest seed {args:?}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Seeds `MEMBERS` members of board `global` with `seed`.
fn seed(nodes: &str, seed: u64) -> String {
    let members = MEMBERS.to_string();
    let seed = seed.to_string();
    let out = seeder(
        &[
            "--members",
            &members,
            "--board",
            "global",
            "--redis-nodes",
            nodes,
            "--seed",
            &seed,
            "--concurrency",
            "64",
        ],
        true,
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every member's score, read shard by shard.
async fn scores(store: &RedisStore, board: &Board) -> HashMap<String, f64> {
    let mut all = HashMap::new();
    for shard in board.all_shards() {
        for e in store.top(board, shard, usize::MAX).await.expect("top") {
            assert!(
                all.insert(e.member.as_str().to_string(), e.score).is_none(),
                "{} in two shards",
                e.member.as_str()
            );
        }
    }
    all
}

/// `ZCARD` summed over the board's shards, and their versions summed.
async fn cardinality_and_versions(store: &RedisStore, board: &Board) -> (u64, u64) {
    let shards = board.all_shards();
    let counts = store.counts(board, &shards, 0.0).await.expect("counts");
    let versions = store.versions(board, &shards).await.expect("versions");
    (counts.iter().map(|c| c.total).sum(), versions.iter().sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_loads_n_members_and_the_same_seed_gives_the_same_scores() {
    let cluster = RedisCluster::start(3, 0);
    let nodes = cluster.nodes().join(",");
    let store = RedisStore::connect(&cluster.nodes(), RedisOptions::default())
        .await
        .expect("connect to the cluster");
    let board = Config::embedded()
        .boards()
        .into_iter()
        .find(|b| b.name.as_str() == "global")
        .expect("the embedded config's board");

    let printed = seed(&nodes, 7);
    assert!(printed.contains("members/s"), "{printed}");
    assert_eq!(
        cardinality_and_versions(&store, &board).await,
        (MEMBERS, MEMBERS),
        "N members over the shards, one applied write each"
    );
    let first = scores(&store, &board).await;
    assert_eq!(first.len() as u64, MEMBERS);
    assert!((0..MEMBERS).all(|i| first.contains_key(&format!("user:{i}"))));
    let distinct: std::collections::HashSet<u64> = first.values().map(|&s| s as u64).collect();
    assert!(
        distinct.len() < first.len() / 2,
        "ties: {} distinct scores",
        distinct.len()
    );
    let per_shard = store
        .counts(&board, &board.all_shards(), 0.0)
        .await
        .expect("counts");
    assert!(
        per_shard.iter().all(|c| c.total > 0),
        "every one of the {} shards holds members",
        per_shard.len()
    );

    seed(&nodes, 7);
    assert_eq!(
        scores(&store, &board).await,
        first,
        "same seed, same scores"
    );
    assert_eq!(
        cardinality_and_versions(&store, &board).await,
        (MEMBERS, 2 * MEMBERS),
        "set again: same members, one more version each"
    );

    seed(&nodes, 8);
    let other = scores(&store, &board).await;
    assert_eq!(other.len() as u64, MEMBERS);
    let changed = first.iter().filter(|(m, s)| other[*m] != **s).count();
    assert!(changed > first.len() / 2, "another seed: {changed} changed");
}

#[test]
fn bad_command_lines_fail_with_a_reason() {
    let out = seeder(&["--members", "10", "--board", "global"], false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--redis-nodes"), "{err}");
    let out = seeder(
        &[
            "--members",
            "10",
            "--board",
            "nope",
            "--redis-nodes",
            "127.0.0.1:1",
        ],
        false,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"nope\""), "{err}");
}
