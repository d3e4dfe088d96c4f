//! The conformance suite: one async function that drives any [`Store`]
//! through every semantic of the trait and panics, with a message saying
//! which, on the first difference.
//!
//! `MemoryStore` runs it in `core/tests/memory.rs`; the Redis Cluster
//! backend runs it against a real cluster in `core/tests/redis_cluster.rs`.
//! It lives in the test-support crate, not in core, so the product build
//! does not carry 400 lines of asserts. Boards are named from `prefix` so a suite can run
//! against a store that already holds other data.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use standings_core::blend::{Blend, BlendPart};
use standings_core::board::{Board, ShardBy, PUBLIC_TENANT};
use standings_core::keyspace::Scope;
use standings_core::period::PeriodKind;
use standings_core::store::{Store, StoreError, Write};
use standings_core::types::{BoardName, Entry, MemberId, Op, Order, Score, MAX_SCORE};

/// Runs every check against `store`. `prefix` must be a valid board-name
/// start, unique per run when the store is shared.
pub async fn run(store: &dyn Store, prefix: &str) {
    let desc = board(prefix, "desc", Order::Desc);
    let asc = board(prefix, "asc", Order::Asc);
    ops(store, &desc).await;
    ops(store, &asc).await;
    out_of_range(store, &desc).await;
    idempotency(store, &board(prefix, "idem", Order::Desc)).await;
    top_and_ties(store, &board(prefix, "ties", Order::Desc)).await;
    top_and_ties(store, &board(prefix, "ties-asc", Order::Asc)).await;
    counts_and_neighbours(store, &board(prefix, "nb", Order::Desc)).await;
    counts_and_neighbours(store, &board(prefix, "nb-asc", Order::Asc)).await;
    audit(store, &board(prefix, "audit", Order::Desc)).await;
    snapshots(store, &board(prefix, "snap", Order::Desc)).await;
    random_workload(store, &board(prefix, "rand", Order::Desc)).await;
    random_workload(store, &board(prefix, "rand-asc", Order::Asc)).await;
    tenants(store, prefix).await;
    catalog(store, prefix).await;
    store.ping().await.expect("ping");
}

/// The catalog of boards created at run time: add once, list, remove once.
async fn catalog(store: &dyn Store, prefix: &str) {
    let name = format!("{prefix}-cat");
    let def = r#"{"name": "x", "shards": 2}"#;
    assert!(store.catalog_add(&name, def).await.expect("add"), "added");
    assert!(
        !store.catalog_add(&name, "other").await.expect("add"),
        "a name is added once"
    );
    let listed = store.catalog().await.expect("list");
    assert!(
        listed.contains(&(name.clone(), def.to_string())),
        "listed with its first definition: {listed:?}"
    );
    assert!(store.catalog_remove(&name).await.expect("remove"));
    assert!(!store.catalog_remove(&name).await.expect("remove"), "once");
    assert!(!store
        .catalog()
        .await
        .expect("list")
        .iter()
        .any(|(n, _)| *n == name));
}

/// A 4-shard numeric board, so the test knows where `m:N` lives (shard N % 4).
pub fn board(prefix: &str, name: &str, order: Order) -> Board {
    Board {
        order,
        shards: 4,
        groups: 2,
        shard_by: ShardBy::Numeric,
        top_k: 10,
        idempotency_ttl: Duration::from_secs(60),
        ..Board::new(BoardName::new(&format!("{prefix}-{name}")).expect("valid board prefix"))
    }
}

/// Member `m:N` (on a numeric board, shard N % shards).
pub(crate) fn member(n: u64) -> MemberId {
    MemberId::new(&format!("m:{n}")).expect("member")
}

/// An unkeyed write of `m:N`.
pub(crate) fn write(n: u64, op: Op, value: f64) -> Write {
    Write {
        member: member(n),
        op,
        value: Score::new(value).expect("score"),
        idempotency_key: None,
        request_id: format!("req-{n}-{value}"),
        meta: None,
    }
}

async fn apply(store: &dyn Store, b: &Board, w: Write) -> f64 {
    let outcome = store.apply(b, &w).await.expect("apply");
    assert!(outcome.applied, "a write without a key always applies");
    outcome.score
}

async fn score_of(store: &dyn Store, b: &Board, n: u64) -> Option<f64> {
    let shard = b.shard_of(&member(n)).expect("shard");
    store.score(b, shard, &member(n)).await.expect("score")
}

async fn ops(store: &dyn Store, b: &Board) {
    assert_eq!(
        score_of(store, b, 1).await,
        None,
        "absent member has no score"
    );
    assert_eq!(
        apply(store, b, write(1, Op::Incr, 5.0)).await,
        5.0,
        "incr from absent starts at 0"
    );
    assert_eq!(
        apply(store, b, write(1, Op::Incr, -7.5)).await,
        -2.5,
        "incr adds"
    );
    assert_eq!(
        apply(store, b, write(1, Op::Set, 10.0)).await,
        10.0,
        "set replaces"
    );
    let (worse, better) = match b.order {
        Order::Desc => (3.0, 20.0),
        Order::Asc => (20.0, 3.0),
    };
    assert_eq!(
        apply(store, b, write(1, Op::Best, worse)).await,
        10.0,
        "best keeps the better old score"
    );
    assert_eq!(
        apply(store, b, write(1, Op::Best, better)).await,
        better,
        "best takes a better new score"
    );
    assert_eq!(
        apply(store, b, write(2, Op::Best, worse)).await,
        worse,
        "best on absent sets"
    );
    assert_eq!(score_of(store, b, 1).await, Some(better));
    assert_eq!(
        apply(store, b, write(3, Op::Set, 0.5)).await,
        0.5,
        "fractional scores"
    );
    assert_eq!(
        apply(store, b, write(3, Op::Set, -MAX_SCORE)).await,
        -MAX_SCORE,
        "the bound itself is valid"
    );
}

async fn out_of_range(store: &dyn Store, b: &Board) {
    apply(store, b, write(8, Op::Set, MAX_SCORE)).await;
    let shard = b.shard_of(&member(8)).expect("shard");
    let before = store.versions(b, &[shard]).await.expect("versions");
    let err = store.apply(b, &write(8, Op::Incr, 1.0)).await;
    assert_eq!(
        err,
        Err(StoreError::OutOfRange),
        "incr past 2^53 is refused"
    );
    assert_eq!(
        score_of(store, b, 8).await,
        Some(MAX_SCORE),
        "a refused write changes nothing"
    );
    let after = store.versions(b, &[shard]).await.expect("versions");
    assert_eq!(before, after, "a refused write does not bump the version");
}

async fn idempotency(store: &dyn Store, b: &Board) {
    let keyed = |n, value, key: &str| Write {
        idempotency_key: Some(key.to_string()),
        ..write(n, Op::Incr, value)
    };
    let shard = b.shard_of(&member(1)).expect("shard");
    let first = store.apply(b, &keyed(1, 5.0, "k1")).await.expect("first");
    assert_eq!((first.score, first.applied), (5.0, true));
    let version = store.versions(b, &[shard]).await.expect("versions");
    let repeat = store.apply(b, &keyed(1, 5.0, "k1")).await.expect("repeat");
    assert_eq!(
        (repeat.score, repeat.applied),
        (5.0, false),
        "a repeat answers the first outcome"
    );
    assert_eq!(
        score_of(store, b, 1).await,
        Some(5.0),
        "a repeat is not applied"
    );
    assert_eq!(
        store.versions(b, &[shard]).await.expect("versions"),
        version,
        "nor bumps the version"
    );
    apply(store, b, write(1, Op::Incr, 1.0)).await;
    let late = store
        .apply(b, &keyed(1, 5.0, "k1"))
        .await
        .expect("late repeat");
    assert_eq!(
        (late.score, late.applied),
        (5.0, false),
        "the first outcome, even after other writes"
    );
    let other_key = store.apply(b, &keyed(1, 5.0, "k2")).await.expect("k2");
    assert_eq!(
        (other_key.score, other_key.applied),
        (11.0, true),
        "another key applies"
    );
    let other_member = store.apply(b, &keyed(5, 2.0, "k1")).await.expect("m5");
    assert!(other_member.applied, "keys are scoped to the member");
    let audit = store.audit_tail(b, shard, 100).await.expect("audit");
    assert_eq!(audit.len(), 4, "only applied writes are audited: {audit:?}");
    bound_to_the_request(store, b).await;
}

/// A key is bound to the write that first used it: the same op and value
/// (under any request id) is a repeat, another op or value is a conflict
/// that changes nothing, and the binding is per member.
async fn bound_to_the_request(store: &dyn Store, b: &Board) {
    let keyed = |n, op, value, key: &str| Write {
        idempotency_key: Some(key.to_string()),
        ..write(n, op, value)
    };
    // m:9 and m:13 share shard 1 with m:1 and m:5 above.
    let shard = b.shard_of(&member(9)).expect("shard");
    let first = store
        .apply(b, &keyed(9, Op::Incr, 3.0, "bound"))
        .await
        .expect("first");
    assert_eq!((first.score, first.applied), (3.0, true));
    let before = (
        score_of(store, b, 9).await,
        store.versions(b, &[shard]).await.expect("versions"),
        store.audit_tail(b, shard, 100).await.expect("audit").len(),
    );

    let same_body = Write {
        request_id: "another-request-id".into(),
        ..keyed(9, Op::Incr, 3.0, "bound")
    };
    let repeat = store.apply(b, &same_body).await.expect("same body");
    assert_eq!(
        (repeat.score, repeat.applied),
        (3.0, false),
        "same key and body under a new request id: a repeat"
    );
    for (what, conflicting) in [
        ("a different value", keyed(9, Op::Incr, 4.0, "bound")),
        ("a different op", keyed(9, Op::Set, 3.0, "bound")),
        (
            "a different op and value",
            keyed(9, Op::Best, 100.0, "bound"),
        ),
    ] {
        assert_eq!(
            store.apply(b, &conflicting).await,
            Err(StoreError::IdempotencyConflict),
            "the key reused with {what} is a conflict"
        );
        let after = (
            score_of(store, b, 9).await,
            store.versions(b, &[shard]).await.expect("versions"),
            store.audit_tail(b, shard, 100).await.expect("audit").len(),
        );
        assert_eq!(
            after, before,
            "a conflict ({what}) changes no score, version or audit log"
        );
    }
    let again = store
        .apply(b, &keyed(9, Op::Incr, 3.0, "bound"))
        .await
        .expect("repeat after conflicts");
    assert_eq!(
        (again.score, again.applied),
        (3.0, false),
        "a conflict does not rebind the key"
    );

    let other_member = store
        .apply(b, &keyed(13, Op::Set, 40.0, "bound"))
        .await
        .expect("the key on another member");
    assert_eq!(
        (other_member.score, other_member.applied),
        (40.0, true),
        "the same key on another member is independent of m:9's write"
    );
    assert_eq!(
        store.apply(b, &keyed(13, Op::Incr, 3.0, "bound")).await,
        Err(StoreError::IdempotencyConflict),
        "and bound to m:13's own write"
    );
    let still = store
        .apply(b, &keyed(9, Op::Incr, 3.0, "bound"))
        .await
        .expect("m:9 repeat");
    assert_eq!((still.score, still.applied), (3.0, false));
    assert_eq!(score_of(store, b, 13).await, Some(40.0));
}

async fn top_and_ties(store: &dyn Store, b: &Board) {
    let empty = store.top(b, 0, 10).await.expect("top");
    assert!(empty.is_empty(), "an unwritten shard is empty");
    // Shard 0 holds m:0, m:4, m:8, ...: three tied at 7, one at 9, one at 1.
    for (n, s) in [(0, 7.0), (4, 9.0), (8, 7.0), (12, 1.0), (16, 7.0)] {
        apply(store, b, write(n, Op::Set, s)).await;
    }
    let top = store.top(b, 0, 10).await.expect("top");
    let mut expected = top.clone();
    expected.sort_by(|x, y| b.order.cmp_entries(x, y));
    assert_eq!(top, expected, "top is in the board's total order");
    let names: Vec<&str> = top.iter().map(|e| e.member.as_str()).collect();
    match b.order {
        // Ties: member bytes descending, as ZREVRANGE lists them.
        Order::Desc => assert_eq!(names, ["m:4", "m:8", "m:16", "m:0", "m:12"]),
        Order::Asc => assert_eq!(names, ["m:12", "m:0", "m:16", "m:8", "m:4"]),
    }
    assert_eq!(
        store.top(b, 0, 2).await.expect("top 2"),
        top[..2].to_vec(),
        "k limits"
    );
    assert!(
        store.top(b, 1, 10).await.expect("top").is_empty(),
        "other shards untouched"
    );
}

async fn counts_and_neighbours(store: &dyn Store, b: &Board) {
    // Scores 0..20 for m:0..m:19, plus ties: m:20..m:23 score 10.
    let mut oracle: Vec<Entry> = Vec::new();
    for n in 0..24u64 {
        let s = if n < 20 { n as f64 } else { 10.0 };
        apply(store, b, write(n, Op::Set, s)).await;
        oracle.push(Entry {
            member: member(n),
            score: s,
            meta: None,
            tie: 0,
        });
    }
    oracle.sort_by(|x, y| b.order.cmp_entries(x, y));
    let shards = b.all_shards();
    for probe in [-1.0, 0.0, 10.0, 10.5, 19.0, 25.0] {
        let counts = store.counts(b, &shards, probe).await.expect("counts");
        let better: u64 = counts.iter().map(|c| c.better).sum();
        let total: u64 = counts.iter().map(|c| c.total).sum();
        let expected = oracle
            .iter()
            .filter(|e| b.order.better(e.score, probe))
            .count();
        assert_eq!(better as usize, expected, "strictly better than {probe}");
        assert_eq!(total, 24, "totals");
    }
    for anchor in [&oracle[0], &oracle[5], &oracle[10], &oracle[23]] {
        for n in [1, 3, 30] {
            check_neighbours(store, b, &oracle, anchor, n).await;
        }
    }
    // An anchor that is in no shard still has neighbours on both sides.
    let ghost = Entry {
        member: member(1000),
        score: 10.0,
        meta: None,
        tie: 0,
    };
    let mut with_ghost = oracle.clone();
    with_ghost.push(ghost.clone());
    with_ghost.sort_by(|x, y| b.order.cmp_entries(x, y));
    check_neighbours(store, b, &with_ghost, &ghost, 3).await;
}

async fn check_neighbours(
    store: &dyn Store,
    b: &Board,
    oracle: &[Entry],
    anchor: &Entry,
    n: usize,
) {
    let per_shard = store
        .neighbours(b, &b.all_shards(), anchor, n)
        .await
        .expect("neighbours");
    let at = oracle
        .iter()
        .position(|e| e == anchor)
        .expect("anchor in oracle");
    for (shard, nb) in per_shard.iter().enumerate() {
        let in_shard = |e: &&Entry| b.shard_of(&e.member).expect("shard") == shard as u32;
        let better: Vec<Entry> = oracle[..at]
            .iter()
            .rev()
            .filter(in_shard)
            .take(n)
            .cloned()
            .collect();
        let worse: Vec<Entry> = oracle[at + 1..]
            .iter()
            .filter(in_shard)
            .take(n)
            .cloned()
            .collect();
        assert_eq!(
            nb.better, better,
            "better neighbours of {anchor:?} in shard {shard}, n={n}"
        );
        assert_eq!(
            nb.worse, worse,
            "worse neighbours of {anchor:?} in shard {shard}, n={n}"
        );
        let ahead = oracle[..at].iter().filter(in_shard).count() as u64;
        assert_eq!(
            nb.ahead, ahead,
            "entries ahead of {anchor:?} in shard {shard}"
        );
    }
}

async fn audit(store: &dyn Store, b: &Board) {
    let shard = b.shard_of(&member(2)).expect("shard");
    assert_eq!(
        store.versions(b, &[shard]).await.expect("versions"),
        vec![0],
        "unwritten shard is at 0"
    );
    let w = Write {
        idempotency_key: Some("audit-key".into()),
        request_id: "req-audit".into(),
        ..write(2, Op::Incr, 3.0)
    };
    store.apply(b, &w).await.expect("apply");
    apply(store, b, write(6, Op::Set, 4.0)).await;
    assert_eq!(
        store.versions(b, &[shard]).await.expect("versions"),
        vec![2],
        "each applied write bumps"
    );
    let tail = store.audit_tail(b, shard, 10).await.expect("audit");
    assert_eq!(tail.len(), 2);
    assert_eq!(tail[0].member, member(6), "newest first");
    let first = &tail[1];
    assert_eq!((first.op, first.value, first.score), (Op::Incr, 3.0, 3.0));
    assert_eq!(first.idempotency_key.as_deref(), Some("audit-key"));
    assert_eq!(first.request_id, "req-audit");
    assert!(
        first.at_ms > 1_600_000_000_000,
        "time is ms since the epoch"
    );
    assert_eq!(
        store.audit_tail(b, shard, 1).await.expect("audit").len(),
        1,
        "n limits"
    );
}

async fn snapshots(store: &dyn Store, b: &Board) {
    assert_eq!(
        store.get_snapshot(b, Scope::Shard(1)).await.expect("get"),
        None
    );
    let one = Bytes::from_static(b"\x00one\xff");
    store
        .put_snapshot(b, Scope::Shard(1), one.clone())
        .await
        .expect("put");
    assert_eq!(
        store.get_snapshot(b, Scope::Shard(1)).await.expect("get"),
        Some(one)
    );
    assert_eq!(
        store.get_snapshot(b, Scope::Group(1)).await.expect("get"),
        None,
        "scopes are apart"
    );
    let two = Bytes::from(vec![7u8; 100_000]);
    store
        .put_snapshot(b, Scope::Shard(1), two.clone())
        .await
        .expect("put");
    assert_eq!(
        store.get_snapshot(b, Scope::Shard(1)).await.expect("get"),
        Some(two),
        "put replaces"
    );
}

/// Random writes against a plain map, then every member's exact rank and the
/// merged shard tops against a brute-force sort.
async fn random_workload(store: &dyn Store, b: &Board) {
    let mut oracle: HashMap<u64, f64> = HashMap::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    for _ in 0..400 {
        let n = next(60);
        let value = next(21) as f64 - 5.0;
        let op = [Op::Incr, Op::Set, Op::Best][next(3) as usize];
        let expected = op
            .apply(b.order, oracle.get(&n).copied(), value)
            .expect("in range");
        assert_eq!(
            apply(store, b, write(n, op, value)).await,
            expected,
            "{op:?} {value} on m:{n}"
        );
        oracle.insert(n, expected);
    }
    let shards = b.all_shards();
    for (&n, &score) in &oracle {
        let counts = store.counts(b, &shards, score).await.expect("counts");
        let better: u64 = counts.iter().map(|c| c.better).sum();
        let expected = oracle
            .values()
            .filter(|&&s| b.order.better(s, score))
            .count() as u64;
        assert_eq!(better, expected, "rank of m:{n}");
    }
    let mut all: Vec<Entry> = oracle
        .iter()
        .map(|(&n, &s)| Entry {
            member: member(n),
            score: s,
            meta: None,
            tie: 0,
        })
        .collect();
    all.sort_by(|x, y| b.order.cmp_entries(x, y));
    let mut tops = Vec::new();
    for &s in &shards {
        tops.push(store.top(b, s, 1000).await.expect("top"));
    }
    let lists: Vec<&[Entry]> = tops.iter().map(|t| t.as_slice()).collect();
    assert_eq!(
        standings_core::merge::merge_sorted(&lists, 1000, b.order),
        all,
        "merged shard tops"
    );
}

/// Boards of one name in tenants `ta`, `tb` and `public` are fully apart:
/// writes, idempotency keys, scores, tops, counts, neighbours, versions,
/// audit, snapshots and blends of one are never seen through another.
async fn tenants(store: &dyn Store, prefix: &str) {
    let tenant = |t: &str| BoardName::new(t).expect("tenant id");
    let doubled = Blend {
        name: Arc::from("double"),
        parts: Arc::from([BlendPart {
            kind: PeriodKind::All,
            previous: false,
            weight: 2.0,
        }]),
    };
    let base = Board {
        blends: Arc::from([doubled]),
        ..board(prefix, "tenant", Order::Desc)
    };
    let ta = base.clone().in_tenant(tenant("ta"));
    let tb = base.clone().in_tenant(tenant("tb"));
    let public = base.in_tenant(tenant(PUBLIC_TENANT));
    let boards = [("ta", &ta), ("tb", &tb), ("public", &public)];
    assert_eq!(ta.name, public.name, "one board name in every tenant");
    assert_ne!(ta.storage_name(), tb.storage_name());
    assert_eq!(public.storage_name(), public.name.as_str());

    // The same member, the same idempotency key: each tenant's write is
    // its own, none is a repeat of another's.
    for (t, b, value) in [
        ("ta", &ta, 10.0),
        ("tb", &tb, 20.0),
        ("public", &public, 30.0),
    ] {
        let w = Write {
            idempotency_key: Some("same-key".into()),
            request_id: format!("req-{t}"),
            ..write(1, Op::Set, value)
        };
        let outcome = store.apply(b, &w).await.expect("apply");
        assert!(outcome.applied, "{t}: another tenant's key is not a repeat");
        assert_eq!(
            outcome.score, value,
            "{t}: from absent, not another's score"
        );
    }
    apply(store, &ta, write(5, Op::Incr, 3.0)).await;
    apply(store, &public, write(2, Op::Set, 1.0)).await;
    let repeat = Write {
        idempotency_key: Some("same-key".into()),
        ..write(1, Op::Set, 10.0)
    };
    let again = store.apply(&ta, &repeat).await.expect("apply");
    assert!(!again.applied, "ta's own key is still a repeat");

    for (t, b, expected) in [
        ("ta", &ta, [Some(10.0), None, Some(3.0)]),
        ("tb", &tb, [Some(20.0), None, None]),
        ("public", &public, [Some(30.0), Some(1.0), None]),
    ] {
        let got = [
            score_of(store, b, 1).await,
            score_of(store, b, 2).await,
            score_of(store, b, 5).await,
        ];
        assert_eq!(got, expected, "{t}: scores of m:1, m:2, m:5");
    }

    let entry = |n: u64, score: f64| Entry {
        member: member(n),
        score,
        meta: None,
        tie: 0,
    };
    let tops = |b: &Board, shard: u32| {
        let b = b.clone();
        async move { store.top(&b, shard, 10).await.expect("top") }
    };
    assert_eq!(
        tops(&ta, 1).await,
        vec![entry(1, 10.0), entry(5, 3.0)],
        "ta"
    );
    assert_eq!(tops(&tb, 1).await, vec![entry(1, 20.0)], "tb");
    assert_eq!(tops(&public, 1).await, vec![entry(1, 30.0)], "public");
    assert_eq!(tops(&public, 2).await, vec![entry(2, 1.0)], "public");
    assert_eq!(tops(&ta, 2).await, vec![], "ta has no m:2");
    for (t, b) in boards {
        assert_eq!(
            store.top(&b.at("double"), 1, 10).await.expect("blend top"),
            tops(b, 1)
                .await
                .into_iter()
                .map(|e| entry_of(e, 2.0))
                .collect::<Vec<_>>(),
            "{t}: its blend is its own periods doubled"
        );
    }

    let shards = ta.all_shards();
    for (t, b, better, total) in [
        ("ta", &ta, 0, 2),
        ("tb", &tb, 1, 1),
        ("public", &public, 1, 2),
    ] {
        let counts = store.counts(b, &shards, 15.0).await.expect("counts");
        let sum = |f: fn(&standings_core::store::ShardCounts) -> u64| -> u64 {
            counts.iter().map(f).sum()
        };
        assert_eq!(
            (sum(|c| c.better), sum(|c| c.total)),
            (better, total),
            "{t}: counts"
        );
    }
    let anchor = entry(1, 20.0);
    let around = store
        .neighbours(&tb, &[1], &anchor, 5)
        .await
        .expect("neighbours");
    assert_eq!(
        (around[0].better.len(), around[0].worse.len()),
        (0, 0),
        "tb's m:1 has no neighbour from ta or public"
    );

    for (t, b, versions) in [
        ("ta", &ta, vec![0, 2, 0, 0]),
        ("tb", &tb, vec![0, 1, 0, 0]),
        ("public", &public, vec![0, 1, 1, 0]),
    ] {
        assert_eq!(
            store.versions(b, &shards).await.expect("versions"),
            versions,
            "{t}"
        );
        let tail = store.audit_tail(b, 1, 10).await.expect("audit");
        let first = tail.last().expect("an audit record");
        assert_eq!(first.request_id, format!("req-{t}"), "{t}: its own audit");
        assert_eq!(
            tail.len() as u64,
            versions[1],
            "{t}: audit of its writes only"
        );
    }

    for (t, b) in [("ta", &ta), ("tb", &tb)] {
        store
            .put_snapshot(b, Scope::Shard(1), Bytes::from(format!("shard-{t}")))
            .await
            .expect("put");
        store
            .put_snapshot(b, Scope::Group(0), Bytes::from(format!("group-{t}")))
            .await
            .expect("put");
    }
    for (t, b) in [("ta", &ta), ("tb", &tb)] {
        assert_eq!(
            store.get_snapshot(b, Scope::Shard(1)).await.expect("get"),
            Some(Bytes::from(format!("shard-{t}"))),
            "{t}: its own shard snapshot"
        );
        assert_eq!(
            store.get_snapshot(b, Scope::Group(0)).await.expect("get"),
            Some(Bytes::from(format!("group-{t}"))),
            "{t}: its own group snapshot"
        );
    }
    for scope in [Scope::Shard(1), Scope::Group(0)] {
        assert_eq!(
            store.get_snapshot(&public, scope).await.expect("get"),
            None,
            "public sees no tenant's snapshot"
        );
    }

    // Maintenance of one tenant's board leaves the others as they were.
    store.maintain(&ta, &shards).await.expect("maintain");
    assert_eq!(score_of(store, &tb, 1).await, Some(20.0));
    assert_eq!(score_of(store, &public, 1).await, Some(30.0));
}

fn entry_of(e: Entry, weight: f64) -> Entry {
    Entry {
        score: e.score * weight,
        ..e
    }
}
