//! The member-metadata suite every backend passes: meta kept per member
//! and board in the write's atomic step, latest wins, kept by a write
//! without one, served in `top` (and so in snapshots) and by
//! [`Store::metas`], dropped with the member, and its part in the
//! idempotency digest. [`seed`] and [`check_seeded`] pin what a durable
//! store must still hold after a reopen.

use std::collections::HashMap;
use std::sync::Arc;

use standings_core::board::Board;
use standings_core::keyspace::Scope;
use standings_core::period::PeriodKind;
use standings_core::rank;
use standings_core::snapshot::Snapshot;
use standings_core::store::{Store, StoreError, Write};
use standings_core::types::{Entry, MemberId, Meta, Op, Order, Score};

use crate::conformance::board;

/// Runs every check against `store`; boards are named from `prefix`.
pub async fn run(store: &dyn Store, prefix: &str) {
    kept_and_latest_wins(store, &board(prefix, "meta", Order::Desc)).await;
    kept_and_latest_wins(store, &board(prefix, "meta-asc", Order::Asc)).await;
    removed_with_member(store, &board(prefix, "meta-rm", Order::Desc)).await;
    idempotency(store, &board(prefix, "meta-idem", Order::Desc)).await;
    every_period(store, prefix).await;
    let b = board(prefix, "meta-seed", Order::Desc);
    seed(store, &b).await;
    check_seeded(store, &b).await;
}

/// `{"n": N, "tag": TAG}` as a [`Meta`].
pub fn meta(n: u64, tag: &str) -> Meta {
    Meta::parse(&format!(r#"{{"tag": "{tag}", "n": {n}}}"#)).expect("meta")
}

fn member(n: u64) -> MemberId {
    MemberId::new(&format!("m:{n}")).expect("member")
}

/// A write of `m:N` (shard N % 4 on the suite's boards).
pub fn write(n: u64, op: Op, value: f64, meta: Option<Meta>) -> Write {
    Write {
        member: member(n),
        op,
        value: Score::new(value).expect("score"),
        idempotency_key: None,
        request_id: format!("meta-{n}-{value}"),
        meta,
    }
}

async fn apply(store: &dyn Store, b: &Board, w: Write) {
    let out = store.apply(b, &w).await.expect("apply");
    assert!(out.applied, "{w:?}");
}

async fn metas_of(store: &dyn Store, b: &Board, ns: &[u64]) -> Vec<Option<Meta>> {
    let members: Vec<MemberId> = ns.iter().map(|&n| member(n)).collect();
    store.metas(b, &members).await.expect("metas")
}

/// Every shard's top against the oracle of scores and metas: the right
/// entries in the board's order, each with its member's meta.
async fn check_tops(
    store: &dyn Store,
    b: &Board,
    scores: &HashMap<u64, f64>,
    metas: &HashMap<u64, Meta>,
) {
    for shard in 0..b.shards {
        let mut want: Vec<Entry> = scores
            .iter()
            .filter(|(n, _)| (**n % u64::from(b.shards)) as u32 == shard)
            .map(|(&n, &s)| Entry {
                member: member(n),
                score: s,
                meta: metas.get(&n).cloned(),
                tie: 0,
            })
            .collect();
        want.sort_by(|x, y| b.order.cmp_entries(x, y));
        want.truncate(b.top_k);
        let got = store.top(b, shard, b.top_k).await.expect("top");
        assert_eq!(got, want, "top of shard {shard} of {}", b.name);
    }
}

/// Meta set by a write, replaced by a later one, kept by writes without
/// one, in every backend's top and metas; snapshots carry it.
async fn kept_and_latest_wins(store: &dyn Store, b: &Board) {
    let mut scores: HashMap<u64, f64> = HashMap::new();
    let mut metas: HashMap<u64, Meta> = HashMap::new();
    // Members 0..12 over the 4 shards: every third with meta.
    for n in 0..12u64 {
        let m = (n % 3 == 0).then(|| meta(n, "first"));
        apply(store, b, write(n, Op::Set, n as f64, m.clone())).await;
        scores.insert(n, n as f64);
        if let Some(m) = m {
            metas.insert(n, m);
        }
    }
    check_tops(store, b, &scores, &metas).await;
    // Latest wins; a write without meta keeps the current one; a member
    // that had none gets one.
    apply(store, b, write(0, Op::Incr, 5.0, Some(meta(0, "second")))).await;
    apply(store, b, write(3, Op::Incr, 1.0, None)).await;
    apply(store, b, write(4, Op::Best, 100.0, Some(meta(4, "late")))).await;
    *scores.get_mut(&0).expect("0") += 5.0;
    *scores.get_mut(&3).expect("3") += 1.0;
    let best = Op::Best.apply(b.order, scores.get(&4).copied(), 100.0);
    scores.insert(4, best.expect("in range"));
    metas.insert(0, meta(0, "second"));
    metas.insert(4, meta(4, "late"));
    check_tops(store, b, &scores, &metas).await;
    // A best write sets the meta whether or not it moves the score.
    apply(
        store,
        b,
        write(4, Op::Best, 1.0, Some(meta(4, "kept-score"))),
    )
    .await;
    let best = Op::Best.apply(b.order, scores.get(&4).copied(), 1.0);
    scores.insert(4, best.expect("in range"));
    metas.insert(4, meta(4, "kept-score"));
    check_tops(store, b, &scores, &metas).await;
    // metas answers in the order asked, repeats and unknowns included.
    let asked = [3, 0, 1, 0, 99, 4];
    let want: Vec<Option<Meta>> = asked.iter().map(|n| metas.get(n).cloned()).collect();
    assert_eq!(metas_of(store, b, &asked).await, want, "metas in order");
    assert!(metas_of(store, b, &[]).await.is_empty());
    // The member answer's read: score and meta together, as apart.
    for n in [0, 1, 3, 4, 99] {
        let m = member(n);
        let shard = b.shard_of(&m).expect("shard");
        assert_eq!(
            store
                .score_and_meta(b, shard, &m)
                .await
                .expect("score and meta"),
            (scores.get(&n).copied(), metas.get(&n).cloned()),
            "score_and_meta of m:{n}"
        );
    }
    // A lookup's read: scores and metas of a list, in the order asked,
    // repeats and unknowns included.
    let asked = [4, 99, 0, 1, 0, 3];
    let ids: Vec<MemberId> = asked.iter().map(|&n| member(n)).collect();
    let want: Vec<(Option<f64>, Option<Meta>)> = asked
        .iter()
        .map(|n| (scores.get(n).copied(), metas.get(n).cloned()))
        .collect();
    assert_eq!(
        store
            .scores_and_metas(b, &ids)
            .await
            .expect("scores and metas"),
        want,
        "scores_and_metas in order"
    );
    assert!(store
        .scores_and_metas(b, &[])
        .await
        .expect("none")
        .is_empty());
    // The around window (neighbours + one metas lookup) carries them too.
    let around = rank::around(store, b, &member(3), 2)
        .await
        .expect("around")
        .expect("m:3 has a score");
    for e in &around.entries {
        let n: u64 = e.member.as_str()[2..].parse().expect("m:N");
        assert_eq!(e.meta, metas.get(&n).cloned(), "around entry {n}");
    }
    // A shard's snapshot carries the metas through its codec and the store.
    let top = store.top(b, 0, b.top_k).await.expect("top");
    let snap = Snapshot {
        board: b.name.clone(),
        period: b.period.clone(),
        scope: Scope::Shard(0),
        order: b.order,
        version: 1,
        computed_at_ms: 1,
        entries: top.clone(),
    };
    store
        .put_snapshot(b, Scope::Shard(0), snap.encode())
        .await
        .expect("put");
    let bytes = store
        .get_snapshot(b, Scope::Shard(0))
        .await
        .expect("get")
        .expect("stored");
    let back = Snapshot::decode(&bytes).expect("decode");
    assert_eq!(back.entries, top, "snapshot keeps metas");
    assert!(back.entries.iter().any(|e| e.meta.is_some()));
}

/// Removing a member drops its meta: a later write without meta leaves it
/// without one, and its shard's top no longer lists it.
async fn removed_with_member(store: &dyn Store, b: &Board) {
    apply(store, b, write(1, Op::Set, 10.0, Some(meta(1, "gone")))).await;
    apply(store, b, write(5, Op::Set, 20.0, Some(meta(5, "stays")))).await;
    assert!(store.remove(b, &member(1), "test").await.expect("remove"));
    assert_eq!(
        metas_of(store, b, &[1, 5]).await,
        vec![None, Some(meta(5, "stays"))],
        "the removed member's meta is gone, its shard neighbour's kept"
    );
    let top = store.top(b, 1, 10).await.expect("top");
    assert_eq!(top.len(), 1, "{top:?}");
    assert_eq!(top[0].meta, Some(meta(5, "stays")));
    apply(store, b, write(1, Op::Set, 3.0, None)).await;
    assert_eq!(
        metas_of(store, b, &[1]).await,
        vec![None],
        "not brought back"
    );
    assert!(store.remove(b, &member(1), "again").await.expect("remove"));
    assert!(
        !store.remove(b, &member(1), "third").await.expect("remove"),
        "nothing left to remove"
    );
}

/// Meta is part of a keyed write's digest: the same meta (however spaced
/// or ordered) is a repeat, other meta or none is a conflict, and neither
/// changes the stored meta.
async fn idempotency(store: &dyn Store, b: &Board) {
    let keyed = |meta: Option<Meta>, key: &str| Write {
        idempotency_key: Some(key.into()),
        ..write(2, Op::Incr, 5.0, meta)
    };
    let first = Meta::parse(r#"{"a": 1, "b": [true]}"#).expect("meta");
    let respaced = Meta::parse(r#"{ "b" : [ true ], "a" : 1 }"#).expect("meta");
    let out = store.apply(b, &keyed(Some(first.clone()), "k1")).await;
    assert!(out.expect("first").applied);
    let repeat = store.apply(b, &keyed(Some(respaced), "k1")).await;
    assert!(!repeat.expect("repeat").applied, "same meta is a repeat");
    for other in [Some(meta(2, "other")), None] {
        let again = store.apply(b, &keyed(other.clone(), "k1")).await;
        assert_eq!(
            again,
            Err(StoreError::IdempotencyConflict),
            "a repeat with meta {other:?}"
        );
    }
    assert_eq!(metas_of(store, b, &[2]).await, vec![Some(first.clone())]);
    // A key first used without meta: a repeat with meta is a conflict.
    assert!(
        store
            .apply(b, &keyed(None, "k2"))
            .await
            .expect("k2")
            .applied
    );
    assert!(
        !store
            .apply(b, &keyed(None, "k2"))
            .await
            .expect("k2")
            .applied
    );
    let with = store.apply(b, &keyed(Some(meta(2, "late")), "k2")).await;
    assert_eq!(with, Err(StoreError::IdempotencyConflict));
    assert_eq!(metas_of(store, b, &[2]).await, vec![Some(first)]);
    assert_eq!(
        store.score(b, 2, &member(2)).await.expect("score"),
        Some(10.0),
        "two writes applied"
    );
}

/// Meta belongs to the member and board, not to a period: every period
/// the write moved lists it.
async fn every_period(store: &dyn Store, prefix: &str) {
    let mut b = board(prefix, "meta-periods", Order::Desc);
    b.periods = Arc::from(vec![PeriodKind::All, PeriodKind::Daily]);
    let out = store
        .apply(&b, &write(6, Op::Incr, 2.0, Some(meta(6, "p"))))
        .await
        .expect("apply");
    assert_eq!(out.scores.len(), 2, "{out:?}");
    for (id, _) in &out.scores {
        let at = b.at(id.clone());
        let top = store.top(&at, 2, 10).await.expect("top");
        assert_eq!(top.len(), 1, "{id}: {top:?}");
        assert_eq!(top[0].meta, Some(meta(6, "p")), "{id}");
    }
}

/// Writes the state [`check_seeded`] expects on a fresh board `b`: a meta
/// replaced, a meta kept by a later write without one, a member removed
/// with its meta, a member that never had one.
pub async fn seed(store: &dyn Store, b: &Board) {
    apply(store, b, write(1, Op::Set, 1.0, Some(meta(1, "old")))).await;
    apply(store, b, write(1, Op::Incr, 1.0, Some(meta(1, "new")))).await;
    apply(store, b, write(2, Op::Set, 5.0, Some(meta(2, "kept")))).await;
    apply(store, b, write(2, Op::Incr, 1.0, None)).await;
    apply(store, b, write(3, Op::Set, 7.0, Some(meta(3, "removed")))).await;
    assert!(store.remove(b, &member(3), "seed").await.expect("remove"));
    apply(store, b, write(4, Op::Set, 9.0, None)).await;
}

/// What [`seed`] left: the latest metas, none for the removed member or
/// the one that never had meta, in `metas` and in every shard's top.
pub async fn check_seeded(store: &dyn Store, b: &Board) {
    assert_eq!(
        metas_of(store, b, &[1, 2, 3, 4]).await,
        vec![Some(meta(1, "new")), Some(meta(2, "kept")), None, None],
        "seeded metas of {}",
        b.name
    );
    let scores = HashMap::from([(1, 2.0), (2, 6.0), (4, 9.0)]);
    let metas = HashMap::from([(1, meta(1, "new")), (2, meta(2, "kept"))]);
    check_tops(store, b, &scores, &metas).await;
}
