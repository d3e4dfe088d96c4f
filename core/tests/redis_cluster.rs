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
use standings_core::store::redis::{NEIGHBOURS_SCRIPT, WRITE_SCRIPT};
use standings_core::store::{RedisOptions, RedisStore};
use standings_core::{Board, BoardName, Entry, MemberId, Op, Score, Store, StoreError, Write};
use standings_test_support::conformance;
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
/// bound) fails as OutcomeUnknown within the bound, not as Unavailable: it
/// was sent and may yet run. Retried with the same idempotency key it is
/// applied exactly once, whether or not the first attempt ran once the
/// pause ended.
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
        matches!(first, Err(StoreError::OutcomeUnknown(_))),
        "a write sent to a paused cluster has an unknown outcome: {first:?}"
    );
    assert!(
        took < opts.call_bound() + Duration::from_millis(250),
        "the failure came within the bound ({took:?})"
    );

    let deadline = Instant::now() + Duration::from_secs(15);
    let retried = loop {
        match store.apply(&b, &write).await {
            Ok(outcome) => break outcome,
            Err(StoreError::Unavailable(_) | StoreError::OutcomeUnknown(_))
                if Instant::now() < deadline =>
            {
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

/// The idempotency record key of (member, key), as `core/src/keyspace.rs`
/// lays it out.
fn idempotency_record(b: &Board, member: &str, key: &str) -> String {
    let shard = b
        .shard_of(&MemberId::new(member).expect("member"))
        .expect("shard");
    format!(
        "{}{}:{member}:{key}",
        standings_core::keyspace::shard_idempotency_prefix(b, shard),
        member.len()
    )
}

/// The idempotency record holds the write's digest and score, with the
/// board's TTL; a record the previous release wrote (a score alone) still
/// answers a repeat, whatever the op and value, instead of a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_records_hold_the_digest_and_old_records_still_repeat() {
    let cluster = RedisCluster::start(3, 0);
    let store = connect(&cluster, RedisOptions::default()).await;
    let b = board("idem-record", 4);
    let write = incr("m:1", 5.0, Some("new-key"));
    store.apply(&b, &write).await.expect("keyed write");

    let record = idempotency_record(&b, "m:1", "new-key");
    let node = cluster.master_of_key(&record);
    let mut get = redis::cmd("GET");
    get.arg(&record);
    let held: String = redis::from_redis_value(cluster.query(&node, &get)).expect("record");
    assert_eq!(
        held,
        format!("{:016x} 5", write.digest()),
        "digest, then score"
    );
    let mut pttl = redis::cmd("PTTL");
    pttl.arg(&record);
    let ttl: i64 = redis::from_redis_value(cluster.query(&node, &pttl)).expect("pttl");
    let board_ttl = i64::try_from(b.idempotency_ttl.as_millis()).expect("ttl");
    assert!(
        ttl > 0 && ttl <= board_ttl,
        "the record keeps the board's TTL: {ttl} ms"
    );

    let old = idempotency_record(&b, "m:2", "old-key");
    let mut set = redis::cmd("SET");
    set.arg(&old).arg("7").arg("PX").arg(60_000);
    cluster.query(&cluster.master_of_key(&old), &set);
    let retry = store
        .apply(&b, &incr("m:2", 1.0, Some("old-key")))
        .await
        .expect("retry against an old record");
    assert_eq!(
        (retry.score, retry.applied),
        (7.0, false),
        "an old record counts as the same write"
    );
    let shard = b
        .shard_of(&MemberId::new("m:2").expect("member"))
        .expect("shard");
    assert_eq!(
        store
            .score(&b, shard, &MemberId::new("m:2").expect("member"))
            .await
            .expect("score"),
        None,
        "nothing applied"
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

/// Calls to a cluster that is gone fail as Unavailable within the bound
/// instead of hanging; a write too, since no node took it (the connection
/// is refused before anything is sent).
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
    // The first write after the kill goes out on the dead node's old
    // connection, and redis-rs answers `broken pipe`: the error it also
    // gives a request in flight when its connection closes, so the store
    // cannot tell it was not sent and must not claim nothing was applied.
    assert!(
        matches!(
            write,
            Err(StoreError::Unavailable(_) | StoreError::OutcomeUnknown(_))
        ),
        "{write:?}"
    );
    assert!(matches!(read, Err(StoreError::Unavailable(_))), "{read:?}");
    assert!(
        took < opts.call_bound() * 2 + Duration::from_millis(250),
        "both failed within their bounds ({took:?})"
    );
    // Once the client has let go of the dead connections a write finds no
    // connection (or a refused one): nothing was sent, so it is Unavailable.
    let started = Instant::now();
    let later = store.apply(&b, &incr("m:1", 1.0, None)).await;
    let took = started.elapsed();
    assert!(
        matches!(later, Err(StoreError::Unavailable(_))),
        "a write no node could take is Unavailable: {later:?}"
    );
    assert!(
        took < opts.call_bound() + Duration::from_millis(250),
        "it failed within the bound ({took:?})"
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
