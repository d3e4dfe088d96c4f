//! The list calls of `RedisStore` (`scores_many`, `counts_many`,
//! `apply_many`) on a real cluster, beyond the conformance suite
//! (`passes_the_list_calls_suite` in `redis_cluster.rs`): counts stay exact
//! while a slot of the board moves to another master under the store's
//! feet (its per-node script fails with "non local key" and the node's
//! shards are counted again with plain commands, which redis-rs
//! redirects), and the script and plain paths agree.
//!
//! `measure_lookups_and_batches` is `#[ignore]`d: it prints the figures
//! quoted in `docs/benchmarks.md` ("Lookups and batches"), run with
//! `cargo test -p standings-core --test redis_lists -- --ignored --nocapture`.

use std::time::Instant;

use futures::future::join_all;
use futures::stream::{self, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use standings_core::rank;
use standings_core::store::{RedisOptions, RedisStore};
use standings_core::{keyspace, Board, BoardName, MemberId, Op, Score, Store, Write};
use standings_test_support::{redis, RedisCluster};

async fn connect(cluster: &RedisCluster) -> RedisStore {
    RedisStore::connect(&cluster.nodes(), RedisOptions::default())
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

fn set(member: &str, value: f64) -> Write {
    Write {
        member: MemberId::new(member).expect("member"),
        op: Op::Set,
        value: Score::new(value).expect("score"),
        idempotency_key: None,
        request_id: "lists".into(),
        meta: None,
    }
}

fn cmd(args: &[&str]) -> redis::Cmd {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c
}

fn text(v: redis::Value) -> String {
    redis::from_redis_value(v).expect("text reply")
}

/// Seeds `n` members `user:I` with scores that tie often, in batches.
async fn seed(store: &RedisStore, b: &Board, n: u32) -> Vec<(String, f64)> {
    let all: Vec<(String, f64)> = (0..n)
        .map(|i| (format!("user:{i}"), f64::from(i % 997)))
        .collect();
    let batches: Vec<Vec<Write>> = all
        .chunks(1000)
        .map(|c| c.iter().map(|(m, s)| set(m, *s)).collect())
        .collect();
    stream::iter(batches)
        .map(|writes| async move {
            let out = store.apply_many(b, &writes).await;
            assert!(out.iter().all(|o| o.as_ref().is_ok_and(|o| o.applied)));
        })
        .buffer_unordered(4)
        .collect::<Vec<()>>()
        .await;
    all
}

/// Moves `slot` from its master to another one, keys and all, the way
/// `redis-cli --cluster reshard` does: IMPORTING, MIGRATING, MIGRATE of
/// every key, then SETSLOT NODE on both (and the third master learns it
/// by gossip or the redirect).
fn move_slot(cluster: &RedisCluster, slot: u16) {
    let masters = cluster.masters();
    let id = |addr: &str| text(cluster.query(addr, &cmd(&["CLUSTER", "MYID"])));
    let source = masters
        .iter()
        .find(|m| {
            let nodes = text(cluster.query(m, &cmd(&["CLUSTER", "NODES"])));
            nodes.lines().any(|l| {
                l.contains("myself")
                    && l.split_whitespace().skip(8).any(|r| {
                        let (a, z) = r.split_once('-').unwrap_or((r, r));
                        matches!((a.parse::<u16>(), z.parse::<u16>()), (Ok(a), Ok(z)) if (a..=z).contains(&slot))
                    })
            })
        })
        .expect("the slot's master")
        .clone();
    let target = masters
        .iter()
        .find(|m| **m != source)
        .expect("another master")
        .clone();
    let (source_id, target_id) = (id(&source), id(&target));
    let s = slot.to_string();
    cluster.query(
        &target,
        &cmd(&["CLUSTER", "SETSLOT", &s, "IMPORTING", &source_id]),
    );
    cluster.query(
        &source,
        &cmd(&["CLUSTER", "SETSLOT", &s, "MIGRATING", &target_id]),
    );
    let (host, port) = target.rsplit_once(':').expect("host:port");
    loop {
        let keys: Vec<String> = redis::from_redis_value(
            cluster.query(&source, &cmd(&["CLUSTER", "GETKEYSINSLOT", &s, "100"])),
        )
        .expect("keys");
        if keys.is_empty() {
            break;
        }
        let mut migrate = cmd(&["MIGRATE", host, port, "", "0", "5000", "KEYS"]);
        for k in &keys {
            migrate.arg(k);
        }
        cluster.query(&source, &migrate);
    }
    for node in [&target, &source] {
        cluster.query(node, &cmd(&["CLUSTER", "SETSLOT", &s, "NODE", &target_id]));
    }
}

/// Counts of many probes equal the plain path and the brute-force sums
/// before, during and after a slot of the board moves to another master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_stay_exact_while_a_slot_moves() {
    let cluster = RedisCluster::start(3, 0);
    let store = connect(&cluster).await;
    let plain = connect(&cluster).await.with_counts_script(false);
    let b = board("move", 12);
    let all = seed(&store, &b, 3000).await;
    let probes = [0.0, 10.0, 500.0, 996.0, 2000.0];
    let shards = b.all_shards();
    let expect = |probe: f64| -> (u64, u64) {
        let better = all.iter().filter(|(_, s)| *s > probe).count() as u64;
        let worse = all.iter().filter(|(_, s)| *s < probe).count() as u64;
        (better, worse)
    };
    let check = |counts: &[standings_core::store::ShardCountsMany], what: &str| {
        let total: u64 = counts.iter().map(|c| c.total).sum();
        assert_eq!(total, all.len() as u64, "{what}: total");
        for (i, &p) in probes.iter().enumerate() {
            let better: u64 = counts.iter().map(|c| c.better[i]).sum();
            let worse: u64 = counts.iter().map(|c| c.worse[i]).sum();
            assert_eq!((better, worse), expect(p), "{what}: probe {p}");
        }
    };
    let first = store
        .counts_many(&b, &shards, &probes)
        .await
        .expect("counts");
    check(&first, "before");
    assert_eq!(
        first,
        plain
            .counts_many(&b, &shards, &probes)
            .await
            .expect("plain"),
        "script and plain commands agree"
    );
    // The store keeps its slot map; the slot of shard 5 moves away.
    let key = keyspace::shard_zset(&b, 5);
    let slot: u16 = redis::from_redis_value(
        cluster.query(&cluster.masters()[0], &cmd(&["CLUSTER", "KEYSLOT", &key])),
    )
    .expect("slot");
    move_slot(&cluster, slot);
    let after = store
        .counts_many(&b, &shards, &probes)
        .await
        .expect("counts after the move");
    check(&after, "after the move");
    assert_eq!(after, first, "the same counts after the move");
    let again = store
        .counts_many(&b, &shards, &probes)
        .await
        .expect("counts again");
    assert_eq!(again, first, "with the map re-read");
    let members: Vec<MemberId> = all
        .iter()
        .step_by(97)
        .map(|(m, _)| MemberId::new(m).expect("m"))
        .collect();
    let scores = store
        .scores_many(&b, &members)
        .await
        .expect("scores after the move");
    for (m, s) in members.iter().zip(&scores) {
        let want = all.iter().find(|(x, _)| x == m.as_str()).map(|(_, s)| *s);
        assert_eq!(*s, want, "{m:?}");
    }
}

/// The sum over every master of `INFO commandstats` calls.
fn calls(cluster: &RedisCluster) -> u64 {
    cluster
        .on_every_master(&cmd(&["INFO", "commandstats"]))
        .into_iter()
        .map(|v| {
            text(v)
                .lines()
                .filter(|l| l.starts_with("cmdstat_"))
                .filter_map(|l| {
                    l.split("calls=")
                        .nth(1)?
                        .split(',')
                        .next()?
                        .parse::<u64>()
                        .ok()
                })
                .sum::<u64>()
        })
        .sum()
}

/// Cluster CPU (seconds, every master) and commands a run cost, with the
/// idle rate (`idle_per_s`, CPU seconds per wall second) taken out.
async fn cost<F: std::future::Future<Output = ()>>(
    cluster: &RedisCluster,
    idle_per_s: f64,
    run: F,
) -> (f64, u64, f64) {
    let (cpu, n, started) = (cluster.used_cpu_seconds(), calls(cluster), Instant::now());
    run.await;
    let wall = started.elapsed().as_secs_f64();
    let spent = cluster.used_cpu_seconds() - cpu - idle_per_s * wall;
    (spent.max(0.0), calls(cluster) - n, wall)
}

/// Cluster CPU per member of a lookup of 20 against 20 single rank
/// requests, and batch against single writes; printed side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run with -- --ignored --nocapture"]
async fn measure_lookups_and_batches() {
    let members: u32 = std::env::var("MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let cluster = RedisCluster::start(3, 0);
    let store = connect(&cluster).await;
    let plain = connect(&cluster).await.with_counts_script(false);
    let b = board("bench", 100);
    seed(&store, &b, members).await;

    let idle = {
        let (cpu, t) = (cluster.used_cpu_seconds(), Instant::now());
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        (cluster.used_cpu_seconds() - cpu) / t.elapsed().as_secs_f64()
    };
    let mut rng = StdRng::seed_from_u64(20);
    let lists: Vec<Vec<MemberId>> = (0..rounds)
        .map(|_| {
            (0..20)
                .map(|_| MemberId::new(&format!("user:{}", rng.gen_range(0..members))).expect("m"))
                .collect()
        })
        .collect();
    let ranked = (rounds * 20) as f64;
    let shards = b.all_shards();
    let (store, plain, b, shards) = (&store, &plain, &b, &shards);

    // Today's single rank: ZSCORE, then ZCOUNT + ZCARD per shard.
    let today = cost(&cluster, idle, async {
        for list in &lists {
            join_all(list.iter().map(|m| async move {
                let shard = b.shard_of(m).expect("shard");
                let s = store
                    .score(b, shard, m)
                    .await
                    .expect("score")
                    .expect("seeded");
                store.counts(b, shards, s).await.expect("counts");
            }))
            .await;
        }
    })
    .await;
    // The member endpoint now: one member through the list path.
    let single = cost(&cluster, idle, async {
        for list in &lists {
            join_all(list.iter().map(|m| async move {
                rank::standing(store, b, m)
                    .await
                    .expect("standing")
                    .expect("seeded");
            }))
            .await;
        }
    })
    .await;
    let lookup = cost(&cluster, idle, async {
        for list in &lists {
            rank::standings(store, b, list).await.expect("lookup");
        }
    })
    .await;
    let lookup_plain = cost(&cluster, idle, async {
        for list in &lists {
            rank::standings(plain, b, list).await.expect("lookup");
        }
    })
    .await;
    for list in lists.iter().take(5) {
        let many = rank::standings(store, b, list).await.expect("lookup");
        for (m, got) in list.iter().zip(&many) {
            let one = rank::standing(plain, b, m).await.expect("one");
            assert_eq!(*got, one, "a lookup ranks {m:?} as a single read does");
        }
    }
    println!("\nlookups: {rounds} rounds of 20 members, {members} members on 100 shards, 3 masters (Redis 7.0), idle {:.1} ms CPU/s taken out", idle * 1e3);
    println!("| how 20 members are ranked | cluster CPU µs per member | commands per member | wall ms per 20 |");
    println!("| --- | --- | --- | --- |");
    for (what, (cpu, n, wall)) in [
        (
            "20 single rank requests, today's commands (ZSCORE + ZCOUNT/ZCARD per shard)",
            today,
        ),
        (
            "20 single member requests, list path (1 member: ZSCORE + 1 counts script per node)",
            single,
        ),
        ("one lookup of 20, counts script per node", lookup),
        (
            "one lookup of 20, plain ZCOUNT/ZCARD pipelined per node",
            lookup_plain,
        ),
    ] {
        println!(
            "| {what} | {:.1} | {:.1} | {:.2} |",
            cpu / ranked * 1e6,
            n as f64 / ranked,
            wall * 1e3 / rounds as f64
        );
    }
    println!(
        "lookup of 20 vs 20 single rank requests: {:.1}x less cluster CPU per member",
        today.0 / lookup.0.max(1e-9)
    );

    // Writes: the same incr writes, one request each (64 in flight) or in
    // batches of 1000 (4 in flight).
    let n = 20_000u32;
    let writes: Vec<Write> = (0..n)
        .map(|i| Write {
            op: Op::Incr,
            ..set(&format!("user:{}", (i * 7919) % members), 1.0)
        })
        .collect();
    let singles = cost(&cluster, idle, async {
        stream::iter(&writes)
            .map(|w| async move { store.apply(b, w).await.expect("write") })
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await;
    })
    .await;
    let batches = cost(&cluster, idle, async {
        stream::iter(writes.chunks(1000))
            .map(|c| async move {
                let out = store.apply_many(b, c).await;
                if let Some(Err(e)) = out.iter().find(|o| o.is_err()) {
                    panic!("a batch write failed: {e}");
                }
            })
            .buffer_unordered(4)
            .collect::<Vec<_>>()
            .await;
    })
    .await;
    println!("\nwrites: {n} incr writes of existing members");
    println!("| how | writes/s | cluster CPU µs per write |");
    println!("| --- | --- | --- |");
    for (what, (cpu, _, wall)) in [
        ("single writes, 64 in flight", singles),
        ("batches of 1000, 4 in flight", batches),
    ] {
        println!(
            "| {what} | {:.0} | {:.1} |",
            f64::from(n) / wall,
            cpu / f64::from(n) * 1e6
        );
    }
}
