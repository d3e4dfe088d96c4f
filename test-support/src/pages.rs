//! The deep-pages part of the conformance suite: [`Store::page_after`]
//! against a brute-force oracle of the board's total order, and whole walks
//! through [`standings_core::page::page`], on every backend (memory and
//! durable in `core/tests/memory.rs` and `core/tests/durable.rs`, Redis
//! Cluster in `core/tests/redis_cluster.rs`).

use standings_core::board::Board;
use standings_core::page::page;
use standings_core::store::{ShardPage, Store};
use standings_core::types::{Entry, Op, Order};

use crate::conformance::{board, member, write};

/// Runs every check against `store`; `prefix` as for
/// [`crate::conformance::run`].
pub async fn run(store: &dyn Store, prefix: &str) {
    for (name, order) in [("pg", Order::Desc), ("pg-asc", Order::Asc)] {
        let b = board(prefix, name, order);
        let oracle = seed(store, &b).await;
        first_pages(store, &b, &oracle).await;
        pages_after_cursors(store, &b, &oracle).await;
        walks(store, &b, &oracle).await;
        other_periods_and_bad_shards(store, &b).await;
    }
}

/// 45 members over 4 shards, scores 0..=8 (five members on each: ties
/// within and across shards); answers them in the board's order.
async fn seed(store: &dyn Store, b: &Board) -> Vec<Entry> {
    let mut oracle = Vec::new();
    for n in 0..45u64 {
        let score = (n * 7 % 9) as f64;
        store
            .apply(b, &write(n, Op::Set, score))
            .await
            .expect("apply");
        oracle.push(Entry {
            member: member(n),
            score,
            meta: None,
            tie: 0,
        });
    }
    oracle.sort_by(|x, y| b.order.cmp_entries(x, y));
    oracle
}

/// What shard `shard` must answer: its first `n` entries from oracle
/// position `from` on, and as `ahead` its entries among the first `ahead`
/// of the oracle.
fn expected(
    b: &Board,
    oracle: &[Entry],
    shard: u32,
    from: usize,
    ahead: usize,
    n: usize,
) -> ShardPage {
    let in_shard = |e: &&Entry| b.shard_of(&e.member).expect("shard") == shard;
    ShardPage {
        entries: oracle[from..]
            .iter()
            .filter(in_shard)
            .take(n)
            .cloned()
            .collect(),
        ahead: oracle[..ahead].iter().filter(in_shard).count() as u64,
    }
}

async fn first_pages(store: &dyn Store, b: &Board, oracle: &[Entry]) {
    for n in [0, 1, 4, 100] {
        let got = store
            .page_after(b, &b.all_shards(), None, n)
            .await
            .expect("page_after");
        assert_eq!(got.len(), b.shards as usize, "one answer per shard");
        for (shard, page) in got.iter().enumerate() {
            let want = expected(b, oracle, shard as u32, 0, 0, n);
            assert_eq!(
                page, &want,
                "first page of shard {shard}, n={n} ({:?})",
                b.order
            );
        }
    }
}

async fn pages_after_cursors(store: &dyn Store, b: &Board, oracle: &[Entry]) {
    let shards = b.all_shards();
    // Cursors on entries the board holds: first, among ties, last.
    for at in [0, 1, 4, 5, 17, 30, oracle.len() - 2, oracle.len() - 1] {
        for n in [0, 1, 3, 50] {
            let got = store
                .page_after(b, &shards, Some(&oracle[at]), n)
                .await
                .expect("page_after");
            for (shard, page) in got.iter().enumerate() {
                let want = expected(b, oracle, shard as u32, at + 1, at + 1, n);
                assert_eq!(
                    page, &want,
                    "after {:?} in shard {shard}, n={n} ({:?})",
                    oracle[at], b.order
                );
            }
        }
    }
    // A cursor whose entry is in no shard (it moved or was removed): the
    // page continues from where it would sort. `m:1000` ties on score 4
    // and sorts by member bytes among those members.
    let ghost = Entry {
        member: member(1000),
        score: 4.0,
        meta: None,
        tie: 0,
    };
    let at = oracle.partition_point(|e| b.order.cmp_entries(e, &ghost).is_lt());
    let got = store
        .page_after(b, &shards, Some(&ghost), 3)
        .await
        .expect("page_after");
    for (shard, page) in got.iter().enumerate() {
        let want = expected(b, oracle, shard as u32, at, at, 3);
        assert_eq!(
            page, &want,
            "after a ghost in shard {shard} ({:?})",
            b.order
        );
    }
    // Past the worst entry: nothing follows anywhere.
    let last = &oracle[oracle.len() - 1];
    let beyond = Entry {
        member: member(1),
        score: match b.order {
            Order::Desc => last.score - 1.0,
            Order::Asc => last.score + 1.0,
        },
        meta: None,
        tie: 0,
    };
    let got = store
        .page_after(b, &shards, Some(&beyond), 10)
        .await
        .expect("page_after");
    assert!(
        got.iter().all(|p| p.entries.is_empty()),
        "nothing after the end"
    );
    let ahead: u64 = got.iter().map(|p| p.ahead).sum();
    assert_eq!(ahead, oracle.len() as u64, "everything is ahead of the end");
}

/// Whole walks through the page arithmetic: the oracle's order with
/// competition ranks, nothing skipped or repeated, `more` false only on
/// the last page.
async fn walks(store: &dyn Store, b: &Board, oracle: &[Entry]) {
    let ranks: Vec<u64> = oracle
        .iter()
        .map(|x| {
            1 + oracle
                .iter()
                .filter(|o| b.order.better(o.score, x.score))
                .count() as u64
        })
        .collect();
    for limit in [1, 4, 5, 44, 45, 1000] {
        let (mut entries, mut got_ranks) = (Vec::new(), Vec::new());
        let mut after: Option<Entry> = None;
        let mut pages = 0;
        loop {
            let p = page(store, b, after.as_ref(), limit).await.expect("page");
            pages += 1;
            assert!(pages <= oracle.len() + 1, "the walk ends");
            entries.extend(p.entries.iter().cloned());
            got_ranks.extend(p.ranks.iter().copied());
            if !p.more {
                break;
            }
            assert_eq!(p.entries.len(), limit, "only the last page is short");
            after = p.entries.last().cloned();
        }
        assert_eq!(entries, oracle, "walk with limit {limit} ({:?})", b.order);
        assert_eq!(got_ranks, ranks, "ranks with limit {limit} ({:?})", b.order);
        assert_eq!(
            pages,
            oracle.len().div_ceil(limit).max(1),
            "pages, limit {limit}"
        );
    }
}

async fn other_periods_and_bad_shards(store: &dyn Store, b: &Board) {
    let other = b.at("every:10s/1764597610");
    let got = store
        .page_after(&other, &other.all_shards(), None, 10)
        .await
        .expect("page_after");
    assert!(
        got.iter().all(|p| p.entries.is_empty() && p.ahead == 0),
        "another period holds nothing: {got:?}"
    );
    assert!(
        store
            .page_after(b, &[], None, 10)
            .await
            .expect("no shards")
            .is_empty(),
        "no shards, no answers"
    );
    assert!(
        store.page_after(b, &[b.shards], None, 10).await.is_err(),
        "a shard the board does not have is refused"
    );
}
