//! The conformance suite of the list calls: [`Store::scores_many`],
//! [`Store::counts_many`] and [`Store::apply_many`], each held to what the
//! one-at-a-time calls answer and to a brute-force oracle. Every backend
//! runs it next to [`crate::conformance::run`] (memory in
//! `core/tests/memory.rs`, durable in `core/tests/durable.rs`, Redis
//! Cluster in `core/tests/redis_cluster.rs`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use standings_core::board::Board;
use standings_core::store::{Store, StoreError, Write};
use standings_core::types::{Op, Order, MAX_SCORE};

use crate::conformance::{board, member, write};

/// Runs every check against `store`; `prefix` as for
/// [`crate::conformance::run`].
pub async fn run(store: &dyn Store, prefix: &str) {
    for (name, order) in [("many", Order::Desc), ("many-asc", Order::Asc)] {
        let b = board(prefix, name, order);
        scores_and_counts(store, &b).await;
    }
    batches(
        store,
        &board(prefix, "batch", Order::Desc),
        &board(prefix, "single", Order::Desc),
    )
    .await;
}

/// Random scores with many ties over 4 shards; lists with unknown members,
/// repeats and every shard; probes on, between and beyond the scores.
async fn scores_and_counts(store: &dyn Store, b: &Board) {
    let mut rng = StdRng::seed_from_u64(14);
    let mut scores: Vec<(u64, f64)> = Vec::new();
    for n in 0..120 {
        let value = f64::from(rng.gen_range(-10..30)) / 2.0;
        store
            .apply(b, &write(n, Op::Set, value))
            .await
            .expect("seed");
        scores.push((n, value));
    }
    assert_eq!(
        store.scores_many(b, &[]).await.expect("empty list"),
        Vec::<Option<f64>>::new()
    );
    let asked: Vec<u64> = vec![3, 500, 7, 3, 118, 0, 999, 61, 62, 63, 64];
    let members: Vec<_> = asked.iter().map(|&n| member(n)).collect();
    let got = store.scores_many(b, &members).await.expect("scores_many");
    for (&n, got) in asked.iter().zip(&got) {
        let shard = b.shard_of(&member(n)).expect("shard");
        let one = store.score(b, shard, &member(n)).await.expect("score");
        assert_eq!(*got, one, "m:{n} in a list as alone");
        let want = scores.iter().find(|(m, _)| *m == n).map(|(_, s)| *s);
        assert_eq!(*got, want, "m:{n} against the oracle");
    }

    let shards = b.all_shards();
    let mut probes: Vec<f64> = vec![-100.0, 100.0, 0.0, 2.5, 2.5, 0.25];
    probes.extend((0..10).map(|_| f64::from(rng.gen_range(-12..32)) / 2.0));
    let counts = store
        .counts_many(b, &shards, &probes)
        .await
        .expect("counts_many");
    assert_eq!(counts.len(), shards.len());
    for (&shard, c) in shards.iter().zip(&counts) {
        let here: Vec<f64> = scores
            .iter()
            .filter(|(n, _)| b.shard_of(&member(*n)).expect("shard") == shard)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(c.total, here.len() as u64, "shard {shard} total");
        assert_eq!(
            (c.better.len(), c.worse.len()),
            (probes.len(), probes.len())
        );
        for (i, &p) in probes.iter().enumerate() {
            let above = here.iter().filter(|&&s| s > p).count() as u64;
            let below = here.iter().filter(|&&s| s < p).count() as u64;
            let (better, worse) = match b.order {
                Order::Desc => (above, below),
                Order::Asc => (below, above),
            };
            assert_eq!(
                (c.better[i], c.worse[i]),
                (better, worse),
                "shard {shard} probe {p} ({:?})",
                b.order
            );
        }
    }
    for &p in &probes[..4] {
        let one = store.counts(b, &shards, p).await.expect("counts");
        let many = store
            .counts_many(b, &shards, &[p])
            .await
            .expect("counts_many");
        for (o, m) in one.iter().zip(&many) {
            assert_eq!(
                (o.better, o.total),
                (m.better[0], m.total),
                "as counts, {p}"
            );
        }
    }
    let none = store.counts_many(b, &shards, &[]).await.expect("no probes");
    assert!(none
        .iter()
        .all(|c| c.better.is_empty() && c.worse.is_empty()));
    assert_eq!(
        none.iter().map(|c| c.total).sum::<u64>(),
        scores.len() as u64
    );
    assert!(store
        .counts_many(b, &[], &probes)
        .await
        .expect("no shards")
        .is_empty());
    assert!(
        store.counts_many(b, &[b.shards], &probes).await.is_err(),
        "a shard the board does not have is refused"
    );
}

fn keyed(n: u64, op: Op, value: f64, key: &str) -> Write {
    Write {
        idempotency_key: Some(key.to_string()),
        ..write(n, op, value)
    }
}

/// A batch of good and bad writes answers, item by item, exactly what the
/// same writes answer one at a time on another board, and leaves the same
/// scores; a repeat of the batch applies nothing again.
async fn batches(store: &dyn Store, b: &Board, single: &Board) {
    assert!(store.apply_many(b, &[]).await.is_empty(), "empty batch");
    let writes = vec![
        keyed(1, Op::Incr, 5.0, "k1"),
        write(2, Op::Set, 10.0),
        keyed(1, Op::Incr, 5.0, "k1"),
        keyed(1, Op::Incr, 6.0, "k1"),
        write(3, Op::Set, MAX_SCORE),
        write(3, Op::Incr, 1.0),
        write(2, Op::Incr, 2.5),
        keyed(4, Op::Best, 7.0, "k4"),
        keyed(4, Op::Best, 3.0, "k4b"),
        write(5, Op::Incr, -1.0),
        keyed(6, Op::Set, 1.0, "k1"),
        write(7, Op::Best, 9.0),
    ];
    let got = store.apply_many(b, &writes).await;
    assert_eq!(got.len(), writes.len(), "one outcome per write");
    let mut want = Vec::new();
    for w in &writes {
        want.push(store.apply(single, w).await);
    }
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let strip = |r: &Result<_, StoreError>| {
            r.as_ref()
                .map(|o: &standings_core::WriteOutcome| (o.score, o.applied))
                .map_err(Clone::clone)
        };
        assert_eq!(strip(g), strip(w), "write {i} in a batch as alone");
    }
    assert_eq!(got[2].as_ref().map(|o| o.applied), Ok(false), "repeat");
    assert_eq!(
        got[3].as_ref().err(),
        Some(&StoreError::IdempotencyConflict),
        "same key, other value"
    );
    assert_eq!(got[5].as_ref().err(), Some(&StoreError::OutOfRange));
    assert_eq!(got[6].as_ref().map(|o| o.score), Ok(12.5), "in order");
    assert_eq!(
        got[10].as_ref().map(|o| o.applied),
        Ok(true),
        "a key is per member"
    );
    for n in 1..=7 {
        let shard = b.shard_of(&member(n)).expect("shard");
        assert_eq!(
            store.score(b, shard, &member(n)).await.expect("score"),
            store.score(single, shard, &member(n)).await.expect("score"),
            "m:{n} after the batch"
        );
    }
    let again = store.apply_many(b, &writes[..1]).await;
    assert_eq!(
        again[0].as_ref().map(|o| (o.score, o.applied)),
        Ok((5.0, false)),
        "a repeated batch applies a keyed write once"
    );
    let audit: usize = {
        let mut n = 0;
        for shard in b.all_shards() {
            n += store.audit_tail(b, shard, 100).await.expect("audit").len();
        }
        n
    };
    assert_eq!(
        audit,
        got.iter()
            .filter(|r| r.as_ref().is_ok_and(|o| o.applied))
            .count(),
        "one audit record per applied write"
    );
}
