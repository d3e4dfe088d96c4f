//! The Redis Cluster backend against a real cluster: three masters started
//! by `standings-test-support` on free loopback ports, one cluster per test.
//!
//! Needs `redis-server` and `redis-cli` on the PATH; without them every test
//! here fails (never skips) with the command that installs them.
//!
//! `measure_memory_per_member` is `#[ignore]`d: it is the measurement quoted
//! in `docs/operations.md`, run with
//! `cargo test --release -p standings-core --test redis_cluster -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use futures::future::join_all;
use futures::stream::{self, StreamExt};
use standings_core::conformance;
use standings_core::store::redis::{COUNTS_SCRIPT, NEIGHBOURS_SCRIPT, WRITE_SCRIPT};
use standings_core::store::{RedisOptions, RedisStore, ShardCounts};
use standings_core::{
    Board, BoardName, Entry, MemberId, Op, Order, Score, Store, StoreError, Write,
};
use standings_test_support::RedisCluster;

async fn connect(cluster: &RedisCluster, opts: RedisOptions) -> RedisStore {
    RedisStore::connect(&cluster.nodes(), opts)
        .await
        .expect("connect to the test cluster")
}

fn board(name: &str, shards: u32) -> Board {
    Board {
        shards,
        groups: 1,
        ..Board::new(BoardName::new(name).expect("board name"))
    }
}

fn incr(member: &str, delta: f64, key: Option<&str>) -> Write {
    Write {
        member: MemberId::new(member).expect("member"),
        op: Op::Incr,
        value: Score::new(delta).expect("score"),
        idempotency_key: key.map(String::from),
        request_id: format!("req-{member}"),
    }
}

fn script_loaded(cluster: &RedisCluster, addr: &str, source: &str) -> bool {
    let sha = redis::Script::new(source).get_hash().to_string();
    let mut cmd = redis::cmd("SCRIPT");
    cmd.arg("EXISTS").arg(sha);
    let reply: Vec<i64> = redis::from_redis_value(cluster.query(addr, &cmd)).expect("ints");
    reply == [1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_conformance_suite() {
    let cluster = RedisCluster::start(3, 0);
    let store = connect(&cluster, RedisOptions::default()).await;
    conformance::run(&store, "rc").await;
}

/// A write whose answer never came (every master paused past the store's
/// bound) fails as Unavailable within the bound; retried with the same
/// idempotency key it is applied exactly once, whether or not the first
/// attempt ran once the pause ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_write_retried_with_its_key_applies_once() {
    let cluster = RedisCluster::start(3, 0);
    let opts = RedisOptions {
        connect_timeout: Duration::from_millis(300),
        response_timeout: Duration::from_millis(300),
        retries: 2,
    };
    let store = connect(&cluster, opts).await;
    let b = board("retry", 4);
    let write = incr("m:1", 5.0, Some("retry-key"));

    let mut pause = redis::cmd("CLIENT");
    pause.arg("PAUSE").arg(2000).arg("ALL");
    cluster.on_every_master(&pause);
    let started = Instant::now();
    let first = store.apply(&b, &write).await;
    let took = started.elapsed();
    assert!(
        matches!(first, Err(StoreError::Unavailable(_))),
        "a paused cluster is unavailable: {first:?}"
    );
    assert!(
        took < opts.call_bound() + Duration::from_millis(250),
        "the failure came within the bound ({took:?})"
    );

    let deadline = Instant::now() + Duration::from_secs(15);
    let retried = loop {
        match store.apply(&b, &write).await {
            Ok(outcome) => break outcome,
            Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("retry failed: {e}"),
        }
    };
    assert_eq!(retried.score, 5.0, "the retry answers the one outcome");
    let again = store.apply(&b, &write).await.expect("another retry");
    assert_eq!((again.score, again.applied), (5.0, false));

    let shard = b.shard_of(&write.member).expect("shard");
    assert_eq!(
        store.score(&b, shard, &write.member).await.expect("score"),
        Some(5.0),
        "applied once"
    );
    assert_eq!(store.versions(&b, &[shard]).await.expect("versions"), [1]);
    assert_eq!(
        store.audit_tail(&b, shard, 10).await.expect("audit").len(),
        1,
        "one audit record"
    );
}

/// After `SCRIPT FLUSH` on every node (as after a restart or a failover to
/// a node that never saw the scripts) writes and neighbour reads still
/// work, and the node that served them has the scripts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_reads_survive_script_flush() {
    let cluster = RedisCluster::start(3, 0);
    let store = connect(&cluster, RedisOptions::default()).await;
    let b = board("flush", 8);
    for n in 0..16 {
        let w = incr(&format!("m:{n}"), f64::from(n), None);
        store.apply(&b, &w).await.expect("write before flush");
    }
    for addr in cluster.masters() {
        assert!(
            script_loaded(&cluster, &addr, WRITE_SCRIPT),
            "loaded at connect"
        );
    }

    let mut flush = redis::cmd("SCRIPT");
    flush.arg("FLUSH");
    cluster.on_every_node(&flush);
    for addr in cluster.masters() {
        assert!(!script_loaded(&cluster, &addr, WRITE_SCRIPT), "flushed");
    }

    for n in 0..16 {
        let w = incr(&format!("m:{n}"), 1.0, Some("after-flush"));
        let outcome = store.apply(&b, &w).await.expect("write after flush");
        assert_eq!((outcome.score, outcome.applied), (f64::from(n) + 1.0, true));
    }
    let anchor = Entry {
        member: MemberId::new("m:8").expect("member"),
        score: 9.0,
    };
    let around = store
        .neighbours(&b, &b.all_shards(), &anchor, 2)
        .await
        .expect("neighbours after flush");
    let ahead: u64 = around.iter().map(|nb| nb.ahead).sum();
    assert_eq!(ahead, 7, "m:9..m:15 score above 9");
    for addr in cluster.masters() {
        assert!(
            script_loaded(&cluster, &addr, WRITE_SCRIPT),
            "write script back on {addr}"
        );
        assert!(
            script_loaded(&cluster, &addr, NEIGHBOURS_SCRIPT),
            "neighbours script back on {addr}"
        );
    }
}

/// `(calls, rejected_calls)` of `command` on `addr` since the last
/// `CONFIG RESETSTAT`, from `INFO commandstats`.
fn command_calls(cluster: &RedisCluster, addr: &str, command: &str) -> (u64, u64) {
    let mut info = redis::cmd("INFO");
    info.arg("commandstats");
    let text: String = redis::from_redis_value(cluster.query(addr, &info)).expect("info");
    let prefix = format!("cmdstat_{command}:");
    let Some(line) = text.lines().find(|l| l.starts_with(&prefix)) else {
        return (0, 0);
    };
    let field = |name: &str| {
        line[prefix.len()..]
            .split(',')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .map_or(0, |v| v.parse().expect("count"))
    };
    (field("calls"), field("rejected_calls"))
}

fn reset_stats(cluster: &RedisCluster) {
    let mut reset = redis::cmd("CONFIG");
    reset.arg("RESETSTAT");
    cluster.on_every_node(&reset);
}

/// Writes `set` ops of scores with ties, negatives and fractions to `b`
/// and answers (member, score) as written.
async fn seed_counts(store: &RedisStore, b: &Board) -> Vec<(MemberId, f64)> {
    let scores = [
        -3.5, -1.0, 0.0, 0.1, 0.1, 0.3, 1.0, 1.0, 1.0, 2.5, 1e15, 9e15,
    ];
    let mut written = Vec::new();
    for n in 0..60 {
        let member = MemberId::new(&format!("m:{n}")).expect("member");
        let score = scores[n % scores.len()] + if n % 7 == 0 { 0.25 } else { 0.0 };
        let w = Write {
            member: member.clone(),
            op: Op::Set,
            value: Score::new(score).expect("score"),
            idempotency_key: None,
            request_id: format!("req-{n}"),
        };
        store.apply(b, &w).await.expect("seed write");
        written.push((member, score));
    }
    written
}

/// Asserts that `counts` answers exactly, shard by shard, for every
/// written score, and for scores just beside them, on both sides.
async fn assert_counts_exact(
    store: &RedisStore,
    b: &Board,
    written: &[(MemberId, f64)],
    what: &str,
) {
    let shards = b.all_shards();
    let mut probes: Vec<f64> = written.iter().map(|(_, s)| *s).collect();
    probes.extend([
        -1e16,
        -3.5000000000000004,
        0.09999999999999999,
        0.10000000000000002,
        1e16,
    ]);
    for probe in probes {
        let mut expected = vec![ShardCounts::default(); shards.len()];
        for (member, score) in written {
            let shard = b.shard_of(member).expect("shard") as usize;
            expected[shard].total += 1;
            let better = match b.order {
                Order::Desc => *score > probe,
                Order::Asc => *score < probe,
            };
            if better {
                expected[shard].better += 1;
            }
        }
        let got = store.counts(b, &shards, probe).await.expect("counts");
        assert_eq!(got, expected, "{what}: counts at {probe:e} ({:?})", b.order);
    }
}

fn board_with_order(name: &str, shards: u32, order: Order) -> Board {
    Board {
        order,
        ..board(name, shards)
    }
}

/// The counts script answers exactly after `SCRIPT FLUSH` on every node
/// (`NOSCRIPT`, then `EVAL_RO`), and is loaded again where it ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_survive_script_flush() {
    let cluster = RedisCluster::start(3, 0);
    let store = connect(&cluster, RedisOptions::default()).await;
    for addr in cluster.masters() {
        assert!(
            script_loaded(&cluster, &addr, COUNTS_SCRIPT),
            "loaded at connect"
        );
    }
    for order in [Order::Desc, Order::Asc] {
        let b = board_with_order(&format!("cflush-{order:?}").to_lowercase(), 24, order);
        let written = seed_counts(&store, &b).await;
        reset_stats(&cluster);
        assert_counts_exact(&store, &b, &written, "before flush").await;
        for addr in cluster.masters() {
            let (calls, rejected) = command_calls(&cluster, &addr, "evalsha_ro");
            assert!(calls > 0 && rejected == 0, "the script ran on {addr}");
        }
        let mut flush = redis::cmd("SCRIPT");
        flush.arg("FLUSH");
        cluster.on_every_node(&flush);
        for addr in cluster.masters() {
            assert!(!script_loaded(&cluster, &addr, COUNTS_SCRIPT), "flushed");
        }
        assert_counts_exact(&store, &b, &written, "after flush").await;
        for addr in cluster.masters() {
            assert!(
                script_loaded(&cluster, &addr, COUNTS_SCRIPT),
                "counts script back on {addr}"
            );
        }
    }
}

/// The per-shard pipeline answers the same as the script: with the script
/// turned off, and when every node refuses the script call at run time
/// (here: an ACL that denies `EVALSHA_RO` and `EVAL_RO`), so each group
/// falls back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_fall_back_to_the_pipeline() {
    let cluster = RedisCluster::start(3, 0);
    let store = connect(&cluster, RedisOptions::default()).await;
    for order in [Order::Desc, Order::Asc] {
        let b = board_with_order(&format!("cfall-{order:?}").to_lowercase(), 24, order);
        let written = seed_counts(&store, &b).await;
        assert_counts_exact(&store, &b, &written, "script").await;
        store.set_counts_script(false);
        assert_counts_exact(&store, &b, &written, "script off").await;
        store.set_counts_script(true);

        let mut deny = redis::cmd("ACL");
        deny.arg("SETUSER")
            .arg("default")
            .arg("-evalsha_ro")
            .arg("-eval_ro");
        cluster.on_every_node(&deny);
        reset_stats(&cluster);
        assert_counts_exact(&store, &b, &written, "script refused").await;
        for addr in cluster.masters() {
            let (_, rejected) = command_calls(&cluster, &addr, "evalsha_ro");
            assert!(rejected > 0, "the script was refused on {addr}");
        }
        let mut allow = redis::cmd("ACL");
        allow
            .arg("SETUSER")
            .arg("default")
            .arg("+evalsha_ro")
            .arg("+eval_ro");
        cluster.on_every_node(&allow);
        assert_counts_exact(&store, &b, &written, "script allowed again").await;
    }
}

/// Calls to a cluster that is gone fail as Unavailable within the bound
/// instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_cluster_fails_fast() {
    let mut cluster = RedisCluster::start(3, 0);
    let opts = RedisOptions {
        connect_timeout: Duration::from_millis(300),
        response_timeout: Duration::from_millis(300),
        retries: 2,
    };
    let store = connect(&cluster, opts).await;
    let b = board("dead", 4);
    store
        .apply(&b, &incr("m:1", 1.0, None))
        .await
        .expect("live write");
    for _ in 0..3 {
        cluster.kill_master(0);
    }
    let started = Instant::now();
    let write = store.apply(&b, &incr("m:1", 1.0, None)).await;
    let read = store.versions(&b, &b.all_shards()).await;
    let took = started.elapsed();
    assert!(
        matches!(write, Err(StoreError::Unavailable(_))),
        "{write:?}"
    );
    assert!(matches!(read, Err(StoreError::Unavailable(_))), "{read:?}");
    assert!(
        took < opts.call_bound() * 2 + Duration::from_millis(250),
        "both failed within their bounds ({took:?})"
    );
    let unreachable = RedisStore::connect(&["127.0.0.1:1".to_string()], opts).await;
    assert!(matches!(unreachable, Err(StoreError::Unavailable(_))));
}

/// The replication offset each replica of `master` has acknowledged, and
/// the master's own.
fn replication_offsets(cluster: &RedisCluster, master: &str) -> (u64, Vec<u64>) {
    let mut info = redis::cmd("INFO");
    info.arg("replication");
    let text: String = redis::from_redis_value(cluster.query(master, &info)).expect("info");
    let field = |line: &str, name: &str| -> Option<u64> {
        line.split(',')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.trim().parse().ok())
    };
    let own = text
        .lines()
        .find_map(|l| l.strip_prefix("master_repl_offset:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("master_repl_offset");
    let replicas = text
        .lines()
        .filter(|l| l.starts_with("slave"))
        .filter_map(|l| field(l.split_once(':')?.1, "offset"))
        .collect();
    (own, replicas)
}

/// With a replica per master, killing a master costs the writes to its
/// slots only until the replica takes over; replicated writes survive, and
/// the promoted replica runs the scripts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_resume_after_a_master_fails_over() {
    let mut cluster = RedisCluster::start(3, 1);
    cluster.set_node_timeout(1000);
    let store = connect(&cluster, RedisOptions::default()).await;
    let b = board("failover", 8);
    for n in 0..8 {
        let w = incr(&format!("m:{n}"), 1.0, None);
        store.apply(&b, &w).await.expect("write before failover");
    }
    for master in cluster.masters() {
        standings_test_support::eventually(Duration::from_secs(10), "replicas caught up", || {
            let (own, replicas) = replication_offsets(&cluster, &master);
            !replicas.is_empty() && replicas.iter().all(|&r| r >= own)
        });
    }

    let killed = cluster.kill_master(0);
    cluster.wait_until_ok(Duration::from_secs(30));
    assert!(!cluster.masters().contains(&killed), "a replica took over");

    let deadline = Instant::now() + Duration::from_secs(20);
    for n in 0..8 {
        let w = incr(&format!("m:{n}"), 1.0, None);
        let outcome = loop {
            match store.apply(&b, &w).await {
                Ok(outcome) => break outcome,
                Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("write to m:{n} after failover: {e}"),
            }
        };
        assert_eq!(outcome.score, 2.0, "m:{n} kept its replicated write");
    }
    let versions = store.versions(&b, &b.all_shards()).await.expect("versions");
    assert_eq!(
        versions,
        vec![2; 8],
        "one write before and one after, per shard"
    );
}

/// Memory per member and fan-out latency, for `docs/operations.md`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run with --release -- --ignored --nocapture"]
async fn measure_memory_per_member() {
    let members: u32 = std::env::var("MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let cluster = RedisCluster::start(3, 0);
    let store = connect(&cluster, RedisOptions::default()).await;
    let b = board("mem", 100);
    let before = cluster.used_memory();
    let started = Instant::now();
    let writes = stream::iter(0..members)
        .map(|i| {
            let w = Write {
                op: Op::Set,
                value: Score::new(f64::from(i % 100_000) * 1.5).expect("score"),
                ..incr(&format!("user:{i}"), 0.0, None)
            };
            let (store, b) = (&store, &b);
            async move { store.apply(b, &w).await.expect("write") }
        })
        .buffer_unordered(256);
    writes.collect::<Vec<_>>().await;
    let write_secs = started.elapsed().as_secs_f64();
    let with_audit = cluster.used_memory();

    let nodes: Vec<String> = cluster
        .nodes()
        .iter()
        .map(|n| format!("redis://{n}"))
        .collect();
    let mut con = redis::cluster::ClusterClient::new(nodes)
        .expect("client")
        .get_connection()
        .expect("connection");
    for shard in b.all_shards() {
        let key = standings_core::keyspace::shard_audit(&b, shard);
        let _: i64 = redis::cmd("DEL").arg(&key).query(&mut con).expect("del");
    }
    let without_audit = cluster.used_memory();

    let per = |bytes: u64| (bytes.saturating_sub(before)) as f64 / f64::from(members);
    println!("members: {members} in 100 shards on 3 masters");
    println!(
        "writes: {:.1}s ({:.0}/s through the write script, 256 in flight)",
        write_secs,
        f64::from(members) / write_secs
    );
    println!(
        "used_memory: before {before}, after writes {with_audit}, audit streams dropped {without_audit}"
    );
    println!(
        "bytes per member: {:.1} with the audit stream, {:.1} sorted set + version only",
        per(with_audit),
        per(without_audit)
    );

    let shards = b.all_shards();
    let rounds = 200;
    let started = Instant::now();
    for _ in 0..rounds {
        store.counts(&b, &shards, 1000.0).await.expect("counts");
    }
    let pipelined = started.elapsed() / rounds;
    let started = Instant::now();
    for _ in 0..rounds {
        let singles = shards.chunks(1).map(|s| store.counts(&b, s, 1000.0));
        for r in join_all(singles).await {
            r.expect("counts");
        }
    }
    let per_shard = started.elapsed() / rounds;
    println!(
        "counts over 100 shards: {pipelined:?} per call with one pipeline per master, \
         {per_shard:?} with 100 concurrent single-shard calls"
    );
}
