//! The conformance suite of boards in time: writes that move every period
//! of a board at once, roll-over at a boundary, frozen closed periods,
//! retention, and blends against a weighted oracle. Every [`Store`] backend
//! runs it next to [`crate::conformance::run`].
//!
//! Periods here are `every:2s` and `every:1s`, so the suite takes seconds:
//! each step first waits until just after a boundary, then works well
//! inside the period (a step takes milliseconds; a period lasts 1 to 2 s).
//! The store decides which period is current by its own clock, and the
//! suite checks what it decided (the ids in [`WriteOutcome::scores`])
//! instead of guessing.
//!
//! [`WriteOutcome::scores`]: standings_core::store::WriteOutcome::scores

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use standings_core::blend::{self, Blend, BlendPart};
use standings_core::board::Board;
use standings_core::keyspace::Scope;
use standings_core::period::{Period, PeriodKind, Timezone};
use standings_core::store::{now_ms_i64, Store, Write};
use standings_core::types::{Entry, Op, Order};

use crate::conformance::{member, write};

/// Runs every check against `store`. `prefix` must be a valid board-name
/// start, unique per run when the store is shared.
pub async fn run(store: &dyn Store, prefix: &str) {
    every_period_at_once(store, prefix).await;
    roll_over_and_frozen(store, prefix).await;
    retention(store, prefix).await;
    blends(store, prefix).await;
    blend_edges(store, prefix).await;
    removal(store, prefix).await;
}

fn kind(text: &str) -> PeriodKind {
    text.parse().expect("period kind")
}

/// The conformance suite's 4-shard numeric board with `periods`, so `m:N`
/// lives in shard N % 4.
fn board(prefix: &str, name: &str, periods: &[&str]) -> Board {
    let kinds: Vec<PeriodKind> = periods.iter().map(|p| kind(p)).collect();
    Board {
        periods: Arc::from(kinds),
        ..crate::conformance::board(prefix, name, Order::Desc)
    }
}

/// Applies `w` and answers its scores by period id.
async fn apply(store: &dyn Store, b: &Board, w: Write) -> Vec<(Arc<str>, f64)> {
    let outcome = store.apply(b, &w).await.expect("apply");
    assert!(outcome.applied, "a write without a key always applies");
    assert_eq!(
        outcome.scores.first().map(|(_, s)| *s),
        Some(outcome.score),
        "score is the first period's"
    );
    outcome.scores
}

async fn score_in(store: &dyn Store, b: &Board, period: &str, n: u64) -> Option<f64> {
    let at = b.at(period);
    let shard = at.shard_of(&member(n)).expect("shard");
    store.score(&at, shard, &member(n)).await.expect("score")
}

/// Every entry of `period` across the board's shards, best first.
async fn all_entries(store: &dyn Store, b: &Board, period: &str) -> Vec<Entry> {
    let at = b.at(period);
    let mut all = Vec::new();
    for shard in 0..at.shards {
        all.extend(store.top(&at, shard, 1000).await.expect("top"));
    }
    all.sort_by(|x, y| at.order.cmp_entries(x, y));
    all
}

async fn total(store: &dyn Store, b: &Board, period: &str) -> u64 {
    let at = b.at(period);
    let counts = store
        .counts(&at, &at.all_shards(), 0.0)
        .await
        .expect("counts");
    counts.iter().map(|c| c.total).sum()
}

/// Sleeps until `margin_ms` after the next multiple of `every_ms` on the
/// wall clock (the stores' clock on this machine).
async fn after_boundary(every_ms: i64, margin_ms: i64) {
    let now = now_ms_i64();
    let next = (now.div_euclid(every_ms) + 1) * every_ms + margin_ms;
    tokio::time::sleep(Duration::from_millis((next - now) as u64)).await;
}

/// The id a write reported for the period of `kind`.
fn id_of(scores: &[(Arc<str>, f64)], kind: PeriodKind, tz: &Timezone) -> Arc<str> {
    scores
        .iter()
        .find(|(id, _)| Period::parse_id(id, tz).is_ok_and(|p| p.kind == kind))
        .map(|(id, _)| id.clone())
        .unwrap_or_else(|| panic!("no {kind} period in {scores:?}"))
}

async fn every_period_at_once(store: &dyn Store, prefix: &str) {
    let b = board(prefix, "pall", &["all", "daily", "every:2s"]);
    after_boundary(2000, 100).await;
    let before = now_ms_i64();
    let scores = apply(store, &b, write(1, Op::Incr, 5.0)).await;
    let after = now_ms_i64();
    assert_eq!(scores.len(), 3, "one score per period: {scores:?}");
    assert_eq!(&*scores[0].0, "all");
    let tz = Timezone::utc();
    let daily = Period::parse_id(&scores[1].0, &tz).expect("daily id");
    assert_eq!(daily.kind, PeriodKind::Daily);
    let every = Period::parse_id(&scores[2].0, &tz).expect("every id");
    assert_eq!(every.kind, kind("every:2s"));
    let (start, end) = (every.starts_ms.unwrap(), every.ends_ms.unwrap());
    assert!(
        start <= after && before < end,
        "the store's current every:2s period {every:?} holds the write's time ({before}..{after})"
    );
    for (id, score) in &scores {
        assert_eq!(*score, 5.0, "{id}");
        assert_eq!(score_in(store, &b, id, 1).await, Some(5.0), "{id} holds it");
    }
    let again = apply(store, &b, write(1, Op::Best, 3.0)).await;
    assert!(
        again.iter().all(|(_, s)| *s == 5.0),
        "best keeps each period's best"
    );
    let set = apply(store, &b, write(1, Op::Set, 2.0)).await;
    assert!(set.iter().all(|(_, s)| *s == 2.0), "set sets every period");

    // A repeat of a key answers the first outcome, every period's score.
    let keyed = Write {
        idempotency_key: Some("pk".into()),
        ..write(6, Op::Incr, 4.0)
    };
    let first = store.apply(&b, &keyed).await.expect("apply");
    let repeat = store.apply(&b, &keyed).await.expect("repeat");
    assert!(!repeat.applied);
    assert_eq!(
        repeat.scores, first.scores,
        "a repeat answers the first scores"
    );
    assert_eq!(
        score_in(store, &b, "all", 6).await,
        Some(4.0),
        "applied once"
    );

    // Periods are apart: versions and snapshots.
    let daily_board = b.at(daily.id.clone());
    let shard = b.shard_of(&member(1)).expect("shard");
    let v_all = store.versions(&b, &[shard]).await.expect("versions")[0];
    let v_daily = store
        .versions(&daily_board, &[shard])
        .await
        .expect("versions")[0];
    assert_eq!((v_all, v_daily), (3, 3), "each period counts its writes");
    assert_eq!(
        store
            .versions(&b.at("daily/2000-01-01"), &[shard])
            .await
            .expect("versions"),
        vec![0],
        "a period never written is at 0"
    );
    let bytes = Bytes::from_static(b"daily-snap");
    store
        .put_snapshot(&daily_board, Scope::Shard(shard), bytes.clone())
        .await
        .expect("put");
    assert_eq!(
        store
            .get_snapshot(&daily_board, Scope::Shard(shard))
            .await
            .expect("get"),
        Some(bytes)
    );
    assert_eq!(
        store
            .get_snapshot(&b, Scope::Shard(shard))
            .await
            .expect("get"),
        None,
        "snapshots of periods are apart"
    );
}

async fn roll_over_and_frozen(store: &dyn Store, prefix: &str) {
    let b = board(prefix, "proll", &["all", "every:2s"]);
    let k = kind("every:2s");
    let tz = Timezone::utc();
    after_boundary(2000, 100).await;
    let mut first: HashMap<u64, f64> = HashMap::new();
    let mut p1 = None;
    for n in 0..12u64 {
        let s = (n * 7 % 5) as f64 + 1.0;
        let scores = apply(store, &b, write(n, Op::Incr, s)).await;
        *first.entry(n).or_default() += s;
        let id = id_of(&scores, k, &tz);
        assert!(
            p1.get_or_insert(id.clone()) == &id,
            "one period within the step"
        );
    }
    let p1 = p1.expect("wrote");
    let frozen = all_entries(store, &b, &p1).await;
    assert_eq!(frozen.len(), 12);
    let shards = b.all_shards();
    let v1 = store
        .versions(&b.at(p1.clone()), &shards)
        .await
        .expect("versions");

    after_boundary(2000, 100).await;
    let mut p2 = None;
    for n in 0..6u64 {
        let scores = apply(store, &b, write(n, Op::Incr, 100.0)).await;
        let id = id_of(&scores, k, &tz);
        assert!(p2.get_or_insert(id.clone()) == &id);
    }
    apply(store, &b, write(99, Op::Set, 1.0)).await;
    let p2 = p2.expect("wrote");
    assert_ne!(p1, p2, "the boundary moved writes to a new period");
    let prev = Period::parse_id(&p2, &tz)
        .expect("id")
        .previous(&tz)
        .expect("previous");
    assert_eq!(prev.id, p1, "the new period follows the closed one");

    assert_eq!(
        all_entries(store, &b, &p1).await,
        frozen,
        "the closed period is frozen"
    );
    assert_eq!(
        store
            .versions(&b.at(p1.clone()), &shards)
            .await
            .expect("versions"),
        v1,
        "its versions stop moving"
    );
    for n in 0..6u64 {
        assert_eq!(
            score_in(store, &b, &p2, n).await,
            Some(100.0),
            "m:{n} in the new period"
        );
        assert_eq!(
            score_in(store, &b, "all", n).await,
            Some(first[&n] + 100.0),
            "m:{n} all-time holds both"
        );
    }
    assert_eq!(
        score_in(store, &b, &p2, 7).await,
        None,
        "m:7 not written in the new period"
    );
    assert_eq!(total(store, &b, &p2).await, 7);
    assert_eq!(total(store, &b, &p1).await, 12);
}

async fn retention(store: &dyn Store, prefix: &str) {
    let b = Board {
        closed_retention: Duration::from_secs(1),
        ..board(prefix, "pret", &["all", "every:1s"])
    };
    let k = kind("every:1s");
    after_boundary(1000, 100).await;
    let scores = apply(store, &b, write(1, Op::Incr, 1.0)).await;
    let p = id_of(&scores, k, &b.timezone);
    let at = b.at(p.clone());
    let shard = b.shard_of(&member(1)).expect("shard");
    store
        .put_snapshot(&at, Scope::Group(0), Bytes::from_static(b"closed"))
        .await
        .expect("put");
    assert_eq!(total(store, &b, &p).await, 1);
    // The period ends within 1 s and expires 1 s after that.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    store.maintain(&b, &b.all_shards()).await.expect("maintain");
    assert_eq!(
        total(store, &b, &p).await,
        0,
        "retention removed the closed period"
    );
    assert_eq!(score_in(store, &b, &p, 1).await, None);
    assert_eq!(
        store.versions(&at, &[shard]).await.expect("versions"),
        vec![0]
    );
    assert_eq!(
        store.get_snapshot(&at, Scope::Group(0)).await.expect("get"),
        None,
        "its snapshots expire too"
    );
    assert_eq!(
        score_in(store, &b, "all", 1).await,
        Some(1.0),
        "all never expires"
    );
}

/// The blend oracle: sum of weight x score over the parts, in order.
fn oracle(parts: &[(f64, &HashMap<u64, f64>)], n: u64) -> Option<f64> {
    blend::weighted_sum(
        parts
            .iter()
            .map(|(w, scores)| (*w, scores.get(&n).copied())),
    )
}

async fn check_blend(store: &dyn Store, b: &Board, expect: &HashMap<u64, f64>, when: &str) {
    let mut want: Vec<Entry> = expect
        .iter()
        .map(|(&n, &s)| Entry {
            member: member(n),
            score: s,
            meta: None,
            tie: 0,
        })
        .collect();
    want.sort_by(|x, y| b.order.cmp_entries(x, y));
    assert_eq!(all_entries(store, b, "hot").await, want, "blend {when}");
}

async fn blends(store: &dyn Store, prefix: &str) {
    let part = |k: &str, previous: bool, weight: f64| BlendPart {
        kind: kind(k),
        previous,
        weight,
    };
    let parts: Arc<[BlendPart]> =
        Arc::from([part("every:2s", false, 0.7), part("every:2s", true, 0.3)]);
    let hot = Blend {
        name: Arc::from("hot"),
        parts,
    };
    let b = Board {
        blends: Arc::from([hot.clone()]),
        ..board(prefix, "pblend", &["all", "every:2s"])
    };
    after_boundary(2000, 100).await;
    let mut a: HashMap<u64, f64> = HashMap::new();
    for n in 0..10u64 {
        let s = (n * 37 % 11) as f64 + 0.5;
        apply(store, &b, write(n, Op::Incr, s)).await;
        *a.entry(n).or_default() += s;
    }
    let none = HashMap::new();
    let expect: HashMap<u64, f64> = a
        .keys()
        .map(|&n| (n, oracle(&[(0.7, &a), (0.3, &none)], n).unwrap()))
        .collect();
    check_blend(store, &b, &expect, "after writes").await;

    // Roll-over: the current part is empty, the previous one is A.
    after_boundary(2000, 100).await;
    store.maintain(&b, &b.all_shards()).await.expect("maintain");
    let expect: HashMap<u64, f64> = a
        .keys()
        .map(|&n| (n, oracle(&[(0.7, &none), (0.3, &a)], n).unwrap()))
        .collect();
    check_blend(store, &b, &expect, "after a roll-over").await;
    let mut c: HashMap<u64, f64> = HashMap::new();
    for n in [1u64, 4, 20] {
        apply(store, &b, write(n, Op::Incr, 5.0)).await;
        c.insert(n, 5.0);
    }
    let members: Vec<u64> = a.keys().chain(c.keys()).copied().collect();
    let expect: HashMap<u64, f64> = members
        .iter()
        .map(|&n| (n, oracle(&[(0.7, &c), (0.3, &a)], n).unwrap()))
        .collect();
    check_blend(store, &b, &expect, "after writes in the new period").await;

    // A weight change rebuilds every shard, and later writes use it.
    let heavier = Blend {
        parts: Arc::from([part("every:2s", false, 2.0), part("every:2s", true, 1.0)]),
        ..hot.clone()
    };
    store.set_blend(&b, &heavier).await.expect("set_blend");
    let expect: HashMap<u64, f64> = members
        .iter()
        .map(|&n| (n, oracle(&[(2.0, &c), (1.0, &a)], n).unwrap()))
        .collect();
    check_blend(store, &b, &expect, "after a weight change").await;
    apply(store, &b, write(4, Op::Incr, 1.0)).await;
    c.insert(4, 6.0);
    let expect: HashMap<u64, f64> = members
        .iter()
        .map(|&n| (n, oracle(&[(2.0, &c), (1.0, &a)], n).unwrap()))
        .collect();
    check_blend(store, &b, &expect, "after a write with the new weights").await;
    let hot_board = b.at("hot");
    let shard = b.shard_of(&member(4)).expect("shard");
    assert!(
        store
            .versions(&hot_board, &[shard])
            .await
            .expect("versions")[0]
            > 0,
        "a blend has a version the agents can watch"
    );
}

/// Blend scores saturate at +-2^53 like every score, by a write and by a
/// rebuild; and weights stored for a kind the board no longer writes give
/// way to the board's own parts instead of failing its writes.
async fn blend_edges(store: &dyn Store, prefix: &str) {
    let max = standings_core::types::MAX_SCORE;
    let part = |k: &str, weight: f64| BlendPart {
        kind: kind(k),
        previous: false,
        weight,
    };
    let big = Blend {
        name: Arc::from("big"),
        parts: Arc::from([part("all", 1e6)]),
    };
    let b = Board {
        blends: Arc::from([big.clone()]),
        ..board(prefix, "pedge", &["all", "every:2s"])
    };
    apply(store, &b, write(1, Op::Set, max)).await;
    apply(store, &b, write(2, Op::Set, -max)).await;
    apply(store, &b, write(3, Op::Set, 2.0)).await;
    assert_eq!(
        score_in(store, &b, "big", 1).await,
        Some(max),
        "a write saturates"
    );
    assert_eq!(score_in(store, &b, "big", 2).await, Some(-max));
    assert_eq!(score_in(store, &b, "big", 3).await, Some(2e6));
    let bigger = Blend {
        parts: Arc::from([part("all", 5e5)]),
        ..big.clone()
    };
    store.set_blend(&b, &bigger).await.expect("set_blend");
    assert_eq!(
        score_in(store, &b, "big", 1).await,
        Some(max),
        "a rebuild saturates"
    );
    assert_eq!(score_in(store, &b, "big", 2).await, Some(-max));
    assert_eq!(score_in(store, &b, "big", 3).await, Some(1e6));

    // Weights stored for every:2s, then the board drops that kind.
    let stale = Blend {
        parts: Arc::from([part("every:2s", 3.0)]),
        ..big.clone()
    };
    store.set_blend(&b, &stale).await.expect("set_blend");
    let fewer = Board {
        periods: Arc::from([kind("all")]),
        blends: Arc::from([Blend {
            parts: Arc::from([part("all", 2.0)]),
            ..big.clone()
        }]),
        ..board(prefix, "pedge", &["all"])
    };
    let scores = apply(store, &fewer, write(3, Op::Incr, 1.0)).await;
    assert_eq!(scores.len(), 1, "{scores:?}");
    assert_eq!(
        score_in(store, &fewer, "big", 3).await,
        Some(6.0),
        "the board's own parts (all x 2) apply"
    );
}

/// Removing a member takes it out of every period, closed ones included,
/// and every blend, in one audited step; others stay.
async fn removal(store: &dyn Store, prefix: &str) {
    let part = |k: &str, previous: bool, weight: f64| BlendPart {
        kind: kind(k),
        previous,
        weight,
    };
    let b = Board {
        blends: Arc::from([Blend {
            name: Arc::from("hot"),
            parts: Arc::from([part("every:2s", false, 1.0), part("every:2s", true, 1.0)]),
        }]),
        ..board(prefix, "prem", &["all", "every:2s"])
    };
    let k = kind("every:2s");
    after_boundary(2000, 100).await;
    let first = apply(store, &b, write(1, Op::Incr, 5.0)).await;
    apply(store, &b, write(5, Op::Incr, 7.0)).await;
    let p1 = id_of(&first, k, &b.timezone);
    after_boundary(2000, 100).await;
    let second = apply(store, &b, write(1, Op::Incr, 3.0)).await;
    let p2 = id_of(&second, k, &b.timezone);
    let shard = b.shard_of(&member(1)).expect("shard");
    let before = store
        .versions(&b.at(p1.clone()), &[shard])
        .await
        .expect("versions")[0];
    assert!(
        store
            .remove(&b, &member(1), "remove-by-ops")
            .await
            .expect("remove"),
        "it had scores"
    );
    for period in ["all", &*p1, &*p2, "hot"] {
        assert_eq!(
            score_in(store, &b, period, 1).await,
            None,
            "gone from {period}"
        );
    }
    assert_eq!(
        score_in(store, &b, "all", 5).await,
        Some(7.0),
        "others stay"
    );
    assert_eq!(score_in(store, &b, &p1, 5).await, Some(7.0));
    assert!(
        store
            .versions(&b.at(p1.clone()), &[shard])
            .await
            .expect("versions")[0]
            > before,
        "the closed period's version moved, so agents publish it again"
    );
    let tail = store.audit_tail(&b, shard, 1).await.expect("audit");
    assert_eq!(
        (tail[0].op, tail[0].request_id.as_str()),
        (Op::Remove, "remove-by-ops")
    );
    assert_eq!(tail[0].member, member(1));
    assert!(
        !store.remove(&b, &member(1), "again").await.expect("remove"),
        "nothing left to remove"
    );
}
