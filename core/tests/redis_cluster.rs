//! The Redis Cluster backend against a real cluster: three masters started
//! by `standings-test-support` on free loopback ports, one cluster per test.
//!
//! The conformance suites run here (`conformance`, `periods` and `likes`),
//! next to what only this backend has: the store's clock choosing the
//! period, Redis expiry as retention, the idempotency record's layout,
//! blend rebuilds by ZUNIONSTORE, script reloads, timeouts and failover,
//! and for likes the key layout of one like, batching per shard and the
//! event stream's consumer group (a dead consumer's entries claimed and
//! applied once).
//!
//! Needs `redis-server` and `redis-cli` on the PATH; without them every test
//! here fails (never skips) with the command that installs them.
//!
//! `measure_memory_per_member` is `#[ignore]`d: it is the measurement quoted
//! in `docs/operations.md`, run with
//! `cargo test --release -p standings-core --test redis_cluster -- --ignored --nocapture`.
//! So is `measure_memory_per_like`, quoted in the `RedisStore` module docs
//! and `keyspace::likes_tag` (`-- --ignored --nocapture measure_memory_per_like`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;
use futures::stream::{self, StreamExt};
use standings_core::blend::{self, Blend, BlendPart};
use standings_core::events::{Event, Feed, LikeSpace};
use standings_core::keyspace::{self, Scope};
use standings_core::period::{PeriodKind, Timezone};
use standings_core::store::redis::{BLEND_SCRIPT, NEIGHBOURS_SCRIPT, WRITE_SCRIPT};
use standings_core::store::{now_ms_i64, RedisOptions, RedisStore};
use standings_core::{Board, BoardName, Entry, MemberId, Op, Score, Store, StoreError, Write};
use standings_test_support::RedisCluster;
use standings_test_support::{conformance, likes, periods};

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
        meta: None,
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

/// Deep pages against the real cluster: the neighbours script reading one
/// side after a cursor, pipelined per node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_pages_suite() {
    let cluster = RedisCluster::start(3, 0);
    let store = connect(&cluster, RedisOptions::default()).await;
    standings_test_support::pages::run(&store, "rc").await;
}

/// first_achiever boards against the real cluster: names of tie and
/// member in the sorted sets, the ties hash, the scripts that keep both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_first_achiever_suite() {
    let cluster = RedisCluster::start(3, 0);
    let store = connect(&cluster, RedisOptions::default()).await;
    standings_test_support::ties::run(&store, "rc").await;
    // The same with the places counted shard by shard (the path of a node
    // whose one call per node failed).
    let plain = connect(&cluster, RedisOptions::default())
        .await
        .with_counts_script(false);
    standings_test_support::ties::run(&plain, "rcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_list_calls_suite() {
    let cluster = RedisCluster::start(3, 0);
    let store = connect(&cluster, RedisOptions::default()).await;
    standings_test_support::many::run(&store, "rc").await;
}

/// Member metadata against the real cluster: the write script's `HSET`,
/// the top script's `HMGET`, `metas` fanned out per node, removal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_meta_suite() {
    let cluster = RedisCluster::start(3, 0);
    let store = connect(&cluster, RedisOptions::default()).await;
    standings_test_support::meta::run(&store, "rc").await;
}

/// Boards in time against the real cluster: every period moved by one
/// script, the store's clock picking the current one, roll-over,
/// retention by Redis's own expiry and blends against the oracle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_periods_suite() {
    let cluster = RedisCluster::start(3, 0);
    let store = connect(&cluster, RedisOptions::default()).await;
    periods::run(&store, "rc").await;
}

/// Behaviour events and likes against the real cluster: one events script
/// per likes shard, target-fed boards in the like's slot, and what follows
/// from the shards' streams through the consumer group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_likes_suite() {
    let cluster = RedisCluster::start(3, 0);
    let store = connect(&cluster, RedisOptions::default()).await;
    likes::run(&store, "rc").await;
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

fn text_of(v: redis::Value) -> String {
    redis::from_redis_value(v).expect("text")
}

fn int_of(v: redis::Value) -> i64 {
    redis::from_redis_value(v).expect("integer")
}

fn cmd(parts: &[&str]) -> redis::Cmd {
    let mut c = redis::cmd(parts[0]);
    for part in &parts[1..] {
        c.arg(*part);
    }
    c
}

/// Runs `parts` on the master that owns `parts[1]`.
fn on_key(cluster: &RedisCluster, parts: &[&str]) -> redis::Value {
    cluster.query(&cluster.master_of_key(parts[1]), &cmd(parts))
}

/// Waits until at least `margin` is left before the next UTC midnight, so
/// a test and the store agree on today's and yesterday's daily ids.
async fn away_from_midnight(margin: Duration) {
    let day = 86_400_000;
    let now = now_ms_i64();
    let left = day - now.rem_euclid(day);
    let margin_ms = i64::try_from(margin.as_millis()).expect("margin");
    if left < margin_ms {
        tokio::time::sleep(Duration::from_millis((left + 100) as u64)).await;
    }
}

/// A board with `periods`, hashed over `shards`, and `blends`.
fn timed_board(name: &str, shards: u32, periods: &[&str], blends: Vec<Blend>) -> Board {
    let kinds: Vec<PeriodKind> = periods
        .iter()
        .map(|p| p.parse().expect("period kind"))
        .collect();
    Board {
        periods: Arc::from(kinds),
        blends: Arc::from(blends),
        ..board(name, shards)
    }
}

fn part(kind: &str, previous: bool, weight: f64) -> BlendPart {
    BlendPart {
        kind: kind.parse().expect("period kind"),
        previous,
        weight,
    }
}

/// The write script's period descriptors for `kinds` as a gateway whose
/// clock reads `at_ms` sends them (the layout `scripts.rs` documents).
fn descriptors(kinds: &[PeriodKind], at_ms: i64) -> Vec<String> {
    let tz = Timezone::utc();
    let mut out = Vec::new();
    for &kind in kinds {
        if kind == PeriodKind::All {
            out.push("all".to_string());
            continue;
        }
        let [before, current, next] = kind.window(&tz, at_ms);
        let earlier = before.previous(&tz).expect("previous");
        let ms = |x: Option<i64>| x.expect("bounded").to_string();
        out.extend([
            kind.to_string(),
            earlier.id.to_string(),
            before.id.to_string(),
            ms(before.starts_ms),
            current.id.to_string(),
            ms(current.starts_ms),
            next.id.to_string(),
            ms(next.starts_ms),
            ms(next.ends_ms),
        ]);
    }
    out
}

/// The write script run directly for a gateway clock reading `at_ms`:
/// `set 1` of `m:1` on shard 0 of a board `name` with `all` and `every:1s`.
fn write_as_if_at(cluster: &RedisCluster, name: &str, at_ms: i64) -> redis::Value {
    let audit = format!("{{st:{name}:0}}:a");
    let kinds = [
        "all".parse().expect("all"),
        "every:1s".parse().expect("every"),
    ];
    let mut eval = redis::cmd("EVAL");
    eval.arg(WRITE_SCRIPT).arg(1).arg(&audit);
    eval.arg(&[
        "m:1",
        "set",
        "1e0",
        "desc",
        "60000",
        "req",
        "0",
        "",
        "100",
        "0000000000000000",
        "1000",
        "2",
        "0",
    ]);
    eval.arg(descriptors(&kinds, at_ms));
    cluster.query(&cluster.master_of_key(&audit), &eval)
}

/// The store's clock decides the current period: a gateway one period off
/// still writes the period that holds the store's time, and one off by
/// more than a period writes nothing and is told about the skew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stores_clock_picks_the_period_and_a_skewed_gateway_writes_nothing() {
    let cluster = RedisCluster::start(3, 0);
    let tz = Timezone::utc();
    let every: PeriodKind = "every:1s".parse().expect("every");

    let before = now_ms_i64();
    let reply: Vec<String> =
        redis::from_redis_value(write_as_if_at(&cluster, "clock", before - 1000)).expect("reply");
    let after = now_ms_i64();
    assert_eq!(reply[..4], ["applied", "1", "all", "1"], "{reply:?}");
    let picked = &reply[4];
    let candidates = [
        every.containing(&tz, before).id,
        every.containing(&tz, after).id,
    ];
    assert!(
        candidates.iter().any(|id| &**id == picked.as_str()),
        "the store picked its own current period {picked}, not the gateway's ({candidates:?})"
    );

    for (name, off) in [("behind", -3_600_000), ("ahead", 3_600_000)] {
        let reply: Vec<String> =
            redis::from_redis_value(write_as_if_at(&cluster, name, now_ms_i64() + off))
                .expect("reply");
        assert_eq!(reply[..2], ["skew", "every:1s"], "{name}: {reply:?}");
        let store_ms: i64 = reply[2].parse().expect("store ms");
        assert!(
            (store_ms - now_ms_i64()).abs() < 5_000,
            "the store's own time"
        );
        let tag = format!("{{st:{name}:0}}");
        for key in [
            format!("{tag}:z:all"),
            format!("{tag}:v:all"),
            format!("{tag}:a"),
        ] {
            assert_eq!(
                int_of(on_key(&cluster, &["EXISTS", &key])),
                0,
                "{name}: nothing written ({key})"
            );
        }
    }
}

/// Retention is Redis's own expiry: the first write of a closing period
/// sets its sorted set and version to expire at its end plus the board's
/// retention, and its snapshots likewise; `all` and blends never expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_periods_expire_at_their_end_plus_retention() {
    let cluster = RedisCluster::start(3, 0);
    let store = connect(&cluster, RedisOptions::default()).await;
    away_from_midnight(Duration::from_secs(10)).await;
    let hot = Blend {
        name: Arc::from("hot"),
        parts: Arc::from([part("daily", false, 0.7), part("all", false, 0.3)]),
    };
    let b = timed_board("expiry", 1, &["all", "daily"], vec![hot]);
    let outcome = store
        .apply(&b, &incr("m:1", 5.0, None))
        .await
        .expect("write");
    let ids: Vec<&str> = outcome.scores.iter().map(|(id, _)| &**id).collect();
    assert_eq!(ids[0], "all");
    let daily = ids[1].to_string();
    let expires = b.expires_at_ms(&daily).expect("daily closes");
    let tag = keyspace::shard_tag(&b, 0);
    let expiry = |key: &str| int_of(on_key(&cluster, &["PEXPIRETIME", key]));
    for key in [format!("{tag}:z:{daily}"), format!("{tag}:v:{daily}")] {
        assert_eq!(expiry(&key), expires, "{key} expires at end + retention");
    }
    for suffix in [":z:all", ":v:all", ":z:hot", ":v:hot", ":bs:hot"] {
        let key = format!("{tag}{suffix}");
        assert_eq!(expiry(&key), -1, "{key} exists and never expires");
    }

    let daily_board = b.at(daily.clone());
    store
        .put_snapshot(&daily_board, Scope::Group(0), Bytes::from_static(b"s"))
        .await
        .expect("put");
    store
        .put_snapshot(&b, Scope::Group(0), Bytes::from_static(b"s"))
        .await
        .expect("put");
    let snap = keyspace::snapshot(&daily_board, Scope::Group(0));
    assert_eq!(
        expiry(&snap),
        expires,
        "a daily snapshot expires with its period"
    );
    let snap_all = keyspace::snapshot(&b, Scope::Group(0));
    assert_eq!(expiry(&snap_all), -1, "an all-time snapshot never expires");
}

/// On a board with several periods the idempotency record keeps every
/// period's score and a repeat answers them; a record of a single-period
/// release (`digest score`, or a bare score) answers its score for the
/// first period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_period_records_keep_every_score() {
    let cluster = RedisCluster::start(3, 0);
    let store = connect(&cluster, RedisOptions::default()).await;
    away_from_midnight(Duration::from_secs(10)).await;
    let b = timed_board("idem-periods", 4, &["all", "daily"], Vec::new());
    let write = incr("m:1", 5.0, Some("k"));
    let first = store.apply(&b, &write).await.expect("write");
    let daily = first.scores[1].0.clone();
    assert_eq!(
        first.scores,
        vec![(Arc::from("all"), 5.0), (daily.clone(), 5.0)]
    );
    let record = idempotency_record(&b, "m:1", "k");
    assert_eq!(
        text_of(on_key(&cluster, &["GET", &record])),
        format!("{:016x} 5 all=5 {daily}=5", write.digest())
    );
    let repeat = store.apply(&b, &write).await.expect("repeat");
    assert_eq!((repeat.applied, &repeat.scores), (false, &first.scores));

    for (member, held) in [
        ("m:2", format!("{:016x} 7", incr("m:2", 1.0, None).digest())),
        ("m:3", "7".to_string()),
    ] {
        let key = idempotency_record(&b, member, "old");
        on_key(&cluster, &["SET", &key, &held, "PX", "60000"]);
        let retry = store
            .apply(&b, &incr(member, 1.0, Some("old")))
            .await
            .expect("retry against an old record");
        assert_eq!(
            (retry.applied, retry.score, retry.scores),
            (false, 7.0, vec![(Arc::from("all"), 7.0)]),
            "{member}: {held:?}"
        );
    }
}

/// A rebuild adds each member's products in part order, exactly as
/// `blend::weighted_sum`: ZUNIONSTORE alone would add the smallest input
/// first, and 0.1 + 0.2 + 0.3 depends on the order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blend_rebuilds_add_in_part_order() {
    let cluster = RedisCluster::start(3, 0);
    let store = connect(&cluster, RedisOptions::default()).await;
    away_from_midnight(Duration::from_secs(10)).await;
    let tz = Timezone::utc();
    let today = PeriodKind::Daily.containing(&tz, now_ms_i64());
    let yesterday = today.previous(&tz).expect("yesterday");
    let parts = [
        part("daily", false, 1.0),
        part("all", false, 1.0),
        part("daily", true, 1.0),
    ];
    let hot = Blend {
        name: Arc::from("hot"),
        parts: Arc::from(parts),
    };
    let b = timed_board("order", 1, &["all", "daily"], vec![hot.clone()]);
    let tag = keyspace::shard_tag(&b, 0);
    let (cur, all, prev) = (
        format!("{tag}:z:{}", today.id),
        format!("{tag}:z:all"),
        format!("{tag}:z:{}", yesterday.id),
    );
    on_key(&cluster, &["ZADD", &cur, "0.1", "x", "1", "y", "2", "z"]);
    on_key(&cluster, &["ZADD", &all, "0.2", "x", "1", "y"]);
    on_key(&cluster, &["ZADD", &prev, "0.3", "x"]);
    let scratch = format!("{tag}:scratch");
    on_key(&cluster, &["ZUNIONSTORE", &scratch, "3", &cur, &all, &prev]);
    let unfolded: f64 = text_of(on_key(&cluster, &["ZSCORE", &scratch, "x"]))
        .parse()
        .expect("score");
    assert_eq!(unfolded, 0.6, "ZUNIONSTORE adds the smallest input first");

    let oracle = |scores: [Option<f64>; 3]| {
        blend::weighted_sum(parts.iter().zip(scores).map(|(p, s)| (p.weight, s)))
    };
    store.set_blend(&b, &hot).await.expect("set_blend");
    let hot_board = b.at("hot");
    let member = |m: &str| MemberId::new(m).expect("member");
    let score = |m: &'static str| {
        let (store, hot_board) = (&store, &hot_board);
        async move { store.score(hot_board, 0, &member(m)).await.expect("score") }
    };
    assert_eq!(
        score("x").await,
        oracle([Some(0.1), Some(0.2), Some(0.3)]),
        "x adds in part order"
    );
    assert_eq!(score("x").await, Some(0.6000000000000001));
    assert_eq!(score("y").await, oracle([Some(1.0), Some(1.0), None]));
    assert_eq!(score("z").await, oracle([Some(2.0), None, None]));
    assert_eq!(
        store.maintain(&b, &[0]).await.expect("maintain"),
        0,
        "up to date"
    );

    let w = Write {
        op: Op::Set,
        value: Score::new(0.1).expect("score"),
        ..incr("x", 0.0, None)
    };
    store.apply(&b, &w).await.expect("write");
    assert_eq!(
        score("x").await,
        oracle([Some(0.1), Some(0.1), Some(0.3)]),
        "a write recomputes in part order"
    );
}

/// `maintain` rebuilds a shard's blend once (its set was never built) and
/// then nothing until a part rolls over; a board without blends sends no
/// script at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintain_rebuilds_once_and_costs_nothing_without_blends() {
    let cluster = RedisCluster::start(3, 0);
    let store = connect(&cluster, RedisOptions::default()).await;
    let hot = Blend {
        name: Arc::from("hot"),
        parts: Arc::from([part("all", false, 2.0)]),
    };
    let b = timed_board("upkeep", 4, &["all"], vec![hot]);
    let shards = b.all_shards();
    assert_eq!(store.maintain(&b, &shards).await.expect("maintain"), 4);
    assert_eq!(store.maintain(&b, &shards).await.expect("maintain"), 0);

    let plain = board("plain", 4);
    let evals = || -> u64 {
        let mut info = redis::cmd("INFO");
        info.arg("commandstats");
        cluster
            .on_every_master(&info)
            .into_iter()
            .map(|v| {
                let text: String = redis::from_redis_value(v).expect("info");
                text.lines()
                    .filter(|l| l.starts_with("cmdstat_eval"))
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
    };
    let before = evals();
    assert_eq!(
        store
            .maintain(&plain, &plain.all_shards())
            .await
            .expect("maintain"),
        0
    );
    assert_eq!(evals(), before, "no script for a board without blends");
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
        meta: None,
        tie: 0,
    };
    let around = store
        .neighbours(&b, &b.all_shards(), &anchor, 2)
        .await
        .expect("neighbours after flush");
    let ahead: u64 = around.iter().map(|nb| nb.ahead).sum();
    assert_eq!(ahead, 7, "m:9..m:15 score above 9");
    let blended = Board {
        blends: Arc::from([Blend {
            name: Arc::from("twice"),
            parts: Arc::from([part("all", false, 2.0)]),
        }]),
        ..b.clone()
    };
    let rebuilt = store
        .maintain(&blended, &blended.all_shards())
        .await
        .expect("maintain after flush");
    assert_eq!(rebuilt, 8, "every shard's blend built once");
    for addr in cluster.masters() {
        assert!(
            script_loaded(&cluster, &addr, WRITE_SCRIPT),
            "write script back on {addr}"
        );
        assert!(
            script_loaded(&cluster, &addr, NEIGHBOURS_SCRIPT),
            "neighbours script back on {addr}"
        );
        assert!(
            script_loaded(&cluster, &addr, BLEND_SCRIPT),
            "blend script back on {addr}"
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

// Behaviour events and likes: what only the Redis backend has (the key
// layout of a like, the stream and its consumer group), next to the
// conformance suite above.

/// The keys of `tag`'s likes shard that hold `target`'s state by `actor`.
fn like_pair(target: &str, actor: &str) -> String {
    format!("{}:{target}:{actor}", target.len())
}

fn likes_space(tenant: &str, recent: usize) -> LikeSpace {
    LikeSpace {
        recent_per_actor: recent,
        ..likes::space(tenant)
    }
}

/// A stream entry as `XRANGE` answers it: id and fields.
type StreamEntry = (String, Vec<String>);

fn stream_of(space: &LikeSpace, shard: u32) -> String {
    format!("{}:x", keyspace::likes_tag(space.tenant.as_str(), shard))
}

/// One like is one small string in the target's slot (no set per target),
/// the counts a two-field hash, the dedup record the digest and the state,
/// and one stream entry; an unlike deletes the state and the emptied
/// counts, and a like that changes nothing adds no stream entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_like_is_one_small_key_in_the_targets_slot() {
    let cluster = RedisCluster::start(3, 0);
    let store = connect(&cluster, RedisOptions::default()).await;
    let space = likes_space("rk-keys", 10);
    let board = likes::fed_board(&space, "clips", Feed::Target, &[("like", 2.0)]);
    let boards = [board.clone()];
    let like = likes::event("e1", "like", "u:1", "v:1", Some("c:1"));
    let out = store
        .apply_events(&space, &boards, std::slice::from_ref(&like))
        .await
        .expect("like");
    assert!(out[0].applied);

    let shard = space.shard_of(&like.target);
    let tag = keyspace::likes_tag(space.tenant.as_str(), shard);
    let state = format!("{tag}:ls:{}", like_pair("v:1", "u:1"));
    let counts = format!("{tag}:lc:v:1");
    let record = format!("{tag}:e:e1");
    let stream = stream_of(&space, shard);
    assert_eq!(text_of(on_key(&cluster, &["GET", &state])), "l");
    let held: Vec<String> =
        redis::from_redis_value(on_key(&cluster, &["HGETALL", &counts])).expect("hash");
    assert_eq!(held, ["l", "1"], "only the field that moved");
    assert_eq!(
        text_of(on_key(&cluster, &["GET", &record])),
        format!("{:016x} l", like.digest())
    );
    let ttl = int_of(on_key(&cluster, &["PTTL", &record]));
    assert!(
        ttl > 0 && ttl <= 60_000,
        "the record expires with the window: {ttl}"
    );
    assert_eq!(
        int_of(on_key(&cluster, &["PTTL", &state])),
        -1,
        "state never expires"
    );
    // The board's shard is in the like's slot.
    let slot = |key: &str| int_of(on_key(&cluster, &["CLUSTER", "KEYSLOT", key]));
    let zset = keyspace::shard_zset(&board, shard);
    assert!(zset.starts_with(&format!("{tag}:")), "{zset}");
    assert_eq!(slot(&zset), slot(&state));
    assert_eq!(
        store
            .score(&board, shard, &like.target)
            .await
            .expect("score"),
        Some(2.0)
    );
    // The stream entry: what the consumer needs, nothing else.
    let entries: Vec<StreamEntry> =
        redis::from_redis_value(on_key(&cluster, &["XRANGE", &stream, "-", "+"])).expect("xrange");
    assert_eq!(entries.len(), 1);
    let fields = &entries[0].1;
    let names: Vec<&str> = fields.iter().step_by(2).map(String::as_str).collect();
    assert_eq!(names, ["id", "a", "t", "l", "at", "o"]);
    assert_eq!(fields[1], "e1");
    assert_eq!(fields[7], "1");
    let at: u64 = fields[9].parse().expect("at ms");
    assert!(
        at.abs_diff(standings_core::store::now_ms()) < 60_000,
        "at {at}"
    );

    // Liking again changes nothing and adds no entry.
    let again = likes::event("e2", "like", "u:1", "v:1", Some("c:1"));
    let out = store
        .apply_events(&space, &boards, &[again])
        .await
        .expect("like again");
    assert!(!out[0].applied);
    assert_eq!(int_of(on_key(&cluster, &["XLEN", &stream])), 1);
    // An unlike leaves no key behind but its dedup record and the stream.
    let unlike = likes::event("e3", "unlike", "u:1", "v:1", Some("c:1"));
    let out = store
        .apply_events(&space, &boards, &[unlike])
        .await
        .expect("unlike");
    assert!(out[0].applied);
    assert_eq!(int_of(on_key(&cluster, &["EXISTS", &state])), 0);
    assert_eq!(int_of(on_key(&cluster, &["EXISTS", &counts])), 0);
    assert_eq!(int_of(on_key(&cluster, &["XLEN", &stream])), 2);
}

/// Fifty concurrent likes of one actor on one target move once; a batch
/// over every shard is one events script per shard (and 64 events), sent
/// as one pipeline per master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_likes_move_once_and_batches_cost_a_script_per_shard() {
    let cluster = RedisCluster::start(3, 0);
    let store = connect(&cluster, RedisOptions::default()).await;
    let space = likes_space("rk-many", 10);
    let board = likes::fed_board(&space, "clips", Feed::Target, &[("like", 2.0)]);
    let boards = [board.clone()];
    let tries = (0..50).map(|i| {
        let e = likes::event(&format!("c{i}"), "like", "u:1", "v:1", None);
        let (store, space, boards) = (&store, &space, &boards);
        async move { store.apply_events(space, boards, &[e]).await }
    });
    let applied = join_all(tries)
        .await
        .into_iter()
        .map(|r| r.expect("like")[0].applied)
        .filter(|&a| a)
        .count();
    assert_eq!(applied, 1, "one of 50 concurrent likes moved");
    let v1 = MemberId::new("v:1").expect("member");
    let counts = store
        .like_counts(&space, std::slice::from_ref(&v1), None)
        .await
        .expect("counts");
    assert_eq!(counts[0].likes, 1);
    let shard = space.shard_of(&v1);
    assert_eq!(
        store.score(&board, shard, &v1).await.expect("score"),
        Some(2.0)
    );

    let batch: Vec<Event> = (0..300)
        .map(|i| {
            likes::event(
                &format!("b{i}"),
                "like",
                &format!("w:{i}"),
                &format!("v:{}", i % 40),
                None,
            )
        })
        .collect();
    let mut per_shard = [0usize; 4];
    for e in &batch {
        per_shard[space.shard_of(&e.target) as usize] += 1;
    }
    let expected_calls: u64 = per_shard.iter().map(|&n| n.div_ceil(64) as u64).sum();
    cluster.on_every_master(&cmd(&["CONFIG", "RESETSTAT"]));
    let out = store
        .apply_events(&space, &boards, &batch)
        .await
        .expect("batch");
    assert!(out.iter().all(|o| o.applied));
    let stats = cluster.on_every_master(&cmd(&["INFO", "commandstats"]));
    let calls: u64 = stats
        .into_iter()
        .map(|v| {
            text_of(v)
                .lines()
                .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
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
        .sum();
    assert_eq!(calls, expected_calls, "one script per shard batch of 64");
    let targets: Vec<MemberId> = (0..40)
        .map(|i| MemberId::new(&format!("v:{i}")).expect("member"))
        .collect();
    let counts = store
        .like_counts(&space, &targets, None)
        .await
        .expect("counts");
    let total: u64 = counts.iter().map(|c| c.likes).sum();
    assert_eq!(total, 300 + 1, "every batch like and the first v:1 like");
}

/// A deterministic mix of like actions and comments over 12 actors, 30
/// targets and 5 owners (target `v:n` is owned by `c:{n % 5}`).
fn event_mix(n: usize) -> Vec<Event> {
    let kinds = [
        "like",
        "like",
        "unlike",
        "dislike",
        "undislike",
        "like",
        "comment",
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let target = (x % 30) as usize;
            let actor = ((x >> 8) % 12) as usize;
            let kind = kinds[((x >> 16) % kinds.len() as u64) as usize];
            let owner = format!("c:{}", target % 5);
            likes::event(
                &format!("m{i}"),
                kind,
                &format!("u:{actor}"),
                &format!("v:{target}"),
                Some(&owner),
            )
        })
        .collect()
}

/// What follows from the stream, read from `store`: each owner's total,
/// each owner's and actor's board score, each actor's liked targets.
async fn followed(
    store: &dyn Store,
    space: &LikeSpace,
    by_actor: &Board,
    by_owner: &Board,
) -> Vec<String> {
    let mut out = Vec::new();
    for c in 0..5 {
        let owner = format!("c:{c}");
        let m = MemberId::new(&owner).expect("owner");
        let total = store.owner_likes(space, &m).await.expect("owner");
        let score = likes::score(store, by_owner, &owner).await;
        out.push(format!("{owner} total {total} board {score}"));
    }
    for a in 0..12 {
        let actor = format!("u:{a}");
        let m = MemberId::new(&actor).expect("actor");
        let mut list: Vec<String> = store
            .actor_likes(space, &m, 100)
            .await
            .expect("list")
            .into_iter()
            .map(|l| l.target.to_string())
            .collect();
        list.sort();
        let score = likes::score(store, by_actor, &actor).await;
        out.push(format!("{actor} board {score} likes {list:?}"));
    }
    out
}

/// A consumer that took entries and died before acknowledging them holds
/// up its shards only until the claim time: then a live consumer takes
/// them over and applies each once. Redelivering everything (the group
/// rewound to 0) changes nothing. The owners' totals, the actors' lists
/// and the actor- and owner-fed boards equal the in-memory store's, and
/// every outcome and the target-fed board match it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_consumers_entries_are_claimed_and_applied_once() {
    let cluster = RedisCluster::start(3, 0);
    let store = connect(&cluster, RedisOptions::default())
        .await
        .with_claim_idle(Duration::from_millis(200));
    let oracle = standings_core::store::MemoryStore::new();
    let space = likes_space("rk-dead", 100);
    let by_target = likes::fed_board(
        &space,
        "videos",
        Feed::Target,
        &[("like", 1.0), ("comment", 3.0)],
    );
    let by_actor = likes::fed_board(
        &space,
        "fans",
        Feed::Actor,
        &[("like", 1.0), ("comment", 2.0)],
    );
    let by_owner = likes::fed_board(
        &space,
        "creators",
        Feed::Owner,
        &[("like", 10.0), ("dislike", -1.0)],
    );
    let boards = [by_target.clone(), by_actor.clone(), by_owner.clone()];
    let events = event_mix(400);
    for batch in events.chunks(50) {
        let got = store
            .apply_events(&space, &boards, batch)
            .await
            .expect("redis");
        let want = oracle
            .apply_events(&space, &boards, batch)
            .await
            .expect("memory");
        assert_eq!(got, want, "outcomes equal the in-memory store's");
    }
    for t in 0..30 {
        let target = format!("v:{t}");
        assert_eq!(
            likes::score(&store, &by_target, &target).await,
            likes::score(&oracle, &by_target, &target).await,
            "{target} on the target-fed board"
        );
    }

    // The dead consumer: takes every entry and never acknowledges.
    let shards: Vec<u32> = (0..space.shards).collect();
    let mut taken = 0;
    for &shard in &shards {
        let key = stream_of(&space, shard);
        let node = cluster.master_of_key(&key);
        let create = cmd(&["XGROUP", "CREATE", &key, "standings", "0", "MKSTREAM"]);
        cluster.query(&node, &create);
        let read = cmd(&[
            "XREADGROUP",
            "GROUP",
            "standings",
            "dead",
            "COUNT",
            "10000",
            "STREAMS",
            &key,
            ">",
        ]);
        let reply = cluster.query(&node, &read);
        let read: Vec<(String, Vec<StreamEntry>)> =
            redis::from_redis_value(reply).expect("xreadgroup");
        taken += read.iter().map(|(_, e)| e.len()).sum::<usize>();
    }
    assert!(taken > 100, "the dead consumer holds {taken} entries");
    let lag = store.event_lag(&space, &shards).await.expect("lag");
    assert_eq!(lag, taken as u64, "pending entries are lag");
    let early = store
        .follow_events(&space, &boards, &shards, "live", 1000)
        .await
        .expect("follow");
    assert_eq!(
        early, 0,
        "nothing is taken from a consumer within the claim time"
    );
    assert_eq!(store.event_lag(&space, &shards).await.expect("lag"), lag);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut applied = 0;
    for _ in 0..20 {
        applied += store
            .follow_events(&space, &boards, &shards, "live", 1000)
            .await
            .expect("follow");
        if store.event_lag(&space, &shards).await.expect("lag") == 0 {
            break;
        }
    }
    assert_eq!(store.event_lag(&space, &shards).await.expect("lag"), 0);
    assert!(
        applied > 0 && applied <= taken as u64,
        "{applied} of {taken}"
    );
    let want = followed(&oracle, &space, &by_actor, &by_owner).await;
    assert_eq!(followed(&store, &space, &by_actor, &by_owner).await, want);

    // Everything delivered again: applied once by event id.
    for &shard in &shards {
        let key = stream_of(&space, shard);
        let rewind = cmd(&["XGROUP", "SETID", &key, "standings", "0"]);
        cluster.query(&cluster.master_of_key(&key), &rewind);
    }
    assert_eq!(
        store.event_lag(&space, &shards).await.expect("lag"),
        taken as u64
    );
    let mut again = 0;
    for _ in 0..20 {
        again += store
            .follow_events(&space, &boards, &shards, "other", 1000)
            .await
            .expect("follow");
        if store.event_lag(&space, &shards).await.expect("lag") == 0 {
            break;
        }
    }
    assert_eq!(again, 0, "a redelivery applies nothing");
    assert_eq!(followed(&store, &space, &by_actor, &by_owner).await, want);
}

/// Deletes every key of `pattern` on every master (one `DEL` per key, as
/// the keys are in many slots); answers how many.
fn delete_matching(cluster: &RedisCluster, pattern: &str) -> usize {
    let mut deleted = 0;
    for addr in cluster.masters() {
        let mut con = cluster.connection(&addr);
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(10_000)
                .query(&mut con)
                .expect("scan");
            keys.extend(batch);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        for chunk in keys.chunks(1000) {
            let mut pipe = redis::pipe();
            for key in chunk {
                pipe.cmd("DEL").arg(key).ignore();
            }
            let () = pipe.query(&mut con).expect("del");
        }
        deleted += keys.len();
    }
    deleted
}

fn memory_usage(cluster: &RedisCluster, key: &str) -> i64 {
    let usage = cmd(&["MEMORY", "USAGE", key, "SAMPLES", "0"]);
    int_of(cluster.query(&cluster.master_of_key(key), &usage))
}

/// What a like costs in bytes, for the docs of `keyspace::likes_tag` and
/// the Redis store: `LIKES` likes (default 100,000) of distinct (actor,
/// target) pairs, 2,000 actors with 50 likes each, 5,000 targets with 20
/// each, 500 owners, one target-fed board, 100 shards; then the consumer
/// drains the streams. Each kind of key is then deleted in turn and
/// `used_memory` read, so each gets its share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run with -- --ignored --nocapture"]
async fn measure_memory_per_like() {
    let n: usize = std::env::var("LIKES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let cluster = RedisCluster::start(3, 0);
    let store = connect(&cluster, RedisOptions::default()).await;
    let space = LikeSpace {
        shards: 100,
        cooldown: Duration::ZERO,
        ..LikeSpace::new(BoardName::new("rkmem").expect("tenant"))
    };
    let board = Board {
        shards: 100,
        ..likes::fed_board(&space, "videos", Feed::Target, &[("like", 1.0)])
    };
    let boards = [board.clone()];
    let events: Vec<Event> = (0..n)
        .map(|i| {
            let target = i / 20;
            likes::event(
                &format!("7f3a9c2e-{i:08}"),
                "like",
                &format!("user:{}", 1_000_000 + i % 2000),
                &format!("video:{}", 5_000_000 + target),
                Some(&format!("user:{}", 2_000_000 + target % 500)),
            )
        })
        .collect();
    let before = cluster.used_memory();
    let started = Instant::now();
    let batches = stream::iter(events.chunks(500))
        .map(|batch| {
            let (store, space, boards) = (&store, &space, &boards);
            async move {
                store
                    .apply_events(space, boards, batch)
                    .await
                    .expect("events")
            }
        })
        .buffer_unordered(8);
    let applied: usize = batches
        .map(|out| out.iter().filter(|o| o.applied).count())
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .sum();
    assert_eq!(applied, n);
    let apply_secs = started.elapsed().as_secs_f64();
    let applied_mem = cluster.used_memory();

    let tag0 = keyspace::likes_tag("rkmem", space.shard_of(&events[0].target));
    let state = format!(
        "{tag0}:ls:{}",
        like_pair(events[0].target.as_str(), events[0].actor.as_str())
    );
    let record = format!("{tag0}:e:{}", events[0].id);
    let counts = format!("{tag0}:lc:{}", events[0].target);
    let stream0 = format!("{tag0}:x");
    let stream_entries = int_of(on_key(&cluster, &["XLEN", &stream0]));
    println!(
        "likes: {n} distinct pairs, 2000 actors, {} targets, 100 shards on 3 masters",
        n.div_ceil(20)
    );
    println!(
        "apply: {apply_secs:.1}s ({:.0} likes/s in batches of 500, 8 in flight)",
        n as f64 / apply_secs
    );
    println!(
        "MEMORY USAGE: state {} {state}, dedup record {} {record}, counts hash {} (20 likes), \
         stream {} for {stream_entries} entries",
        memory_usage(&cluster, &state),
        memory_usage(&cluster, &record),
        memory_usage(&cluster, &counts),
        memory_usage(&cluster, &stream0),
    );

    let shards: Vec<u32> = (0..space.shards).collect();
    let started = Instant::now();
    loop {
        store
            .follow_events(&space, &boards, &shards, "measure", 1000)
            .await
            .expect("follow");
        if store.event_lag(&space, &shards).await.expect("lag") == 0 {
            break;
        }
    }
    let follow_secs = started.elapsed().as_secs_f64();
    let followed_mem = cluster.used_memory();
    let actor = &events[0].actor;
    let atag = keyspace::likes_tag("rkmem", space.shard_of(actor));
    let list = format!("{atag}:al:{actor}");
    let fkey = format!("{atag}:f:{}:a", events[0].id);
    println!(
        "follow: {follow_secs:.1}s ({:.0} entries/s)",
        n as f64 / follow_secs
    );
    println!(
        "MEMORY USAGE: actor list {} (50 entries) {list}, follow record {} {fkey}",
        memory_usage(&cluster, &list),
        memory_usage(&cluster, &fkey),
    );

    let per = |bytes: u64, of: u64| (bytes as f64 - of as f64) / n as f64;
    let mut last = followed_mem;
    let mut shares = Vec::new();
    for (what, pattern) in [
        ("event dedup records", "{sl:rkmem:*}:e:*"),
        ("follow dedup records", "{sl:rkmem:*}:f:*"),
        ("event streams", "{sl:rkmem:*}:x"),
        ("like states", "{sl:rkmem:*}:ls:*"),
        ("actors' lists", "{sl:rkmem:*}:al:*"),
        ("counts", "{sl:rkmem:*}:lc:*"),
        ("owners' totals", "{sl:rkmem:*}:ow:*"),
    ] {
        let keys = delete_matching(&cluster, pattern);
        let now = cluster.used_memory();
        shares.push(format!(
            "{what}: {:.1} bytes per like ({keys} keys)",
            per(last, now)
        ));
        last = now;
    }
    println!(
        "used_memory: before {before}, after the events {applied_mem} ({:.1} bytes per like), \
         after following {followed_mem} ({:.1} bytes per like in all)",
        per(applied_mem, before),
        per(followed_mem, before),
    );
    for s in shares {
        println!("  {s}");
    }
    println!(
        "  rest (board sets, versions, audit streams, tables): {:.1} bytes per like",
        per(last, before)
    );

    // A cooldown key, and an actor list past the listpack limit (128).
    let long = LikeSpace {
        cooldown: Duration::from_secs(60),
        recent_per_actor: 1000,
        ..space.clone()
    };
    let many: Vec<Event> = (0..200)
        .map(|i| {
            likes::event(
                &format!("8f3a9c2e-{i:08}"),
                "like",
                "user:1999999",
                &format!("video:{}", 6_000_000 + i),
                None,
            )
        })
        .collect();
    store
        .apply_events(&long, &boards, &many)
        .await
        .expect("events");
    let tag = keyspace::likes_tag("rkmem", long.shard_of(&many[0].target));
    let cooldown = format!(
        "{tag}:cd:{}",
        like_pair(many[0].target.as_str(), "user:1999999")
    );
    loop {
        store
            .follow_events(&long, &boards, &shards, "measure", 1000)
            .await
            .expect("follow");
        if store.event_lag(&long, &shards).await.expect("lag") == 0 {
            break;
        }
    }
    let actor = MemberId::new("user:1999999").expect("actor");
    let list = format!(
        "{}:al:{actor}",
        keyspace::likes_tag("rkmem", long.shard_of(&actor))
    );
    println!(
        "MEMORY USAGE: cooldown {} {cooldown}, actor list of 200 {} ({:.1} per entry)",
        memory_usage(&cluster, &cooldown),
        memory_usage(&cluster, &list),
        memory_usage(&cluster, &list) as f64 / 200.0
    );
}
