//! The `first_achiever` part of the conformance suite: boards whose equal
//! scores rank by who reached the score first, checked against an oracle
//! of the write order on every backend (memory and durable in
//! `core/tests/memory.rs` and `core/tests/durable.rs`, Redis Cluster in
//! `core/tests/redis_cluster.rs`): the shards' lists merged, every rank,
//! windows around members, a whole walk of deep pages, a removal.

use std::collections::HashMap;
use std::time::Duration;

use standings_core::board::Board;
use standings_core::merge::merge_sorted;
use standings_core::page::page;
use standings_core::rank;
use standings_core::store::Store;
use standings_core::types::{MemberId, Op, Order, Ties};

use crate::conformance::{board, member, write};

/// Members of the seed; scores 0..=3, so about 15 share each score, in
/// every shard.
const MEMBERS: u64 = 60;

/// The writes' order: who reached what when. A member's score and the
/// sequence number of the write that last changed it.
#[derive(Default)]
pub struct Oracle {
    scores: HashMap<u64, (f64, u64)>,
    seq: u64,
}

impl Oracle {
    /// Records that a write left `n` at `score`: a changed score is
    /// reached now, an unchanged one keeps when it was reached.
    fn wrote(&mut self, n: u64, score: f64) {
        self.seq += 1;
        match self.scores.get(&n) {
            Some(&(old, _)) if old == score => {}
            _ => {
                self.scores.insert(n, (score, self.seq));
            }
        }
    }

    /// Members best first: by score in the board's order, then by who
    /// reached the score first.
    pub fn order(&self, order: Order) -> Vec<(u64, f64)> {
        let mut all: Vec<(u64, f64, u64)> = self
            .scores
            .iter()
            .map(|(&n, &(s, at))| (n, s, at))
            .collect();
        all.sort_by(|a, b| {
            let by_score = match order {
                Order::Desc => b.1.total_cmp(&a.1),
                Order::Asc => a.1.total_cmp(&b.1),
            };
            by_score.then(a.2.cmp(&b.2))
        });
        all.into_iter().map(|(n, s, _)| (n, s)).collect()
    }
}

/// A `first_achiever` board of the suite.
pub fn tied_board(prefix: &str, name: &str, order: Order) -> Board {
    Board {
        ties: Ties::FirstAchiever,
        top_k: 100,
        ..board(prefix, name, order)
    }
}

/// Runs every check against `store`; `prefix` as for
/// [`crate::conformance::run`].
pub async fn run(store: &dyn Store, prefix: &str) {
    for (name, order) in [("fa", Order::Desc), ("fa-asc", Order::Asc)] {
        let b = tied_board(prefix, name, order);
        let oracle = seed(store, &b).await;
        check(store, &b, &oracle).await;
        let removed = oracle.order(order)[7].0;
        let mut oracle = oracle;
        assert!(
            store
                .remove(&b, &member(removed), "ties-remove")
                .await
                .expect("remove"),
            "m:{removed} had a score"
        );
        oracle.scores.remove(&removed);
        check(store, &b, &oracle).await;
    }
}

/// Writes the seed one write at a time, so that each reaches its score
/// at its own moment: every member to `n % 4`, then moves that reorder
/// ties (a member that leaves its score and comes back is reached again,
/// later), and writes that change no score (which keep when it was
/// reached).
pub async fn seed(store: &dyn Store, b: &Board) -> Oracle {
    let mut oracle = Oracle::default();
    let apply = |n: u64, op: Op, value: f64| {
        let w = write(n, op, value);
        async move {
            // Distinct clock readings for distinct writes (a microsecond
            // is enough; two writes of one reading would tie on member
            // bytes, which the oracle does not model).
            tokio::time::sleep(Duration::from_millis(1)).await;
            let out = store.apply(b, &w).await.expect("apply");
            (n, out.score)
        }
    };
    // Interleaved over the shards (numeric: m:N is in shard N % 4), in an
    // order unlike the members' bytes.
    for i in 0..MEMBERS {
        let n = (i * 37) % MEMBERS;
        let (n, s) = apply(n, Op::Set, (n % 4) as f64).await;
        oracle.wrote(n, s);
    }
    // Away and back: reached again, now last among its equals.
    for n in [0, 13, 26] {
        let (n, s) = apply(n, Op::Incr, 1.0).await;
        oracle.wrote(n, s);
        let (n, s) = apply(n, Op::Incr, -1.0).await;
        oracle.wrote(n, s);
    }
    // No change: keeps its place.
    for n in [5, 18] {
        let (n, s) = apply(n, Op::Incr, 0.0).await;
        oracle.wrote(n, s);
        let (n, s) = apply(n, Op::Set, (n % 4) as f64).await;
        oracle.wrote(n, s);
    }
    oracle
}

/// Everything a reader sees against the oracle.
pub async fn check(store: &dyn Store, b: &Board, oracle: &Oracle) {
    let want = oracle.order(b.order);
    let names = |list: &[(u64, f64)]| -> Vec<(MemberId, f64)> {
        list.iter().map(|&(n, s)| (member(n), s)).collect()
    };

    // The shards' lists, merged as the agents and the gateway merge them.
    let mut lists = Vec::new();
    for shard in b.all_shards() {
        lists.push(store.top(b, shard, b.top_k).await.expect("top"));
    }
    let slices: Vec<&[_]> = lists.iter().map(Vec::as_slice).collect();
    let merged = merge_sorted(&slices, want.len(), b.order);
    let got: Vec<(MemberId, f64)> = merged.iter().map(|e| (e.member.clone(), e.score)).collect();
    assert_eq!(got, names(&want), "{}: merged tops", b.name);

    // Every rank: its position, unique.
    let members: Vec<MemberId> = want.iter().map(|&(n, _)| member(n)).collect();
    let standings = rank::standings(store, b, &members)
        .await
        .expect("standings");
    for (i, s) in standings.iter().enumerate() {
        let s = s.as_ref().expect("a member with a score has a standing");
        assert_eq!(s.rank, i as u64 + 1, "{}: rank of {}", b.name, members[i]);
        assert_eq!(s.total, want.len() as u64);
        assert_eq!(s.worse, (want.len() - i - 1) as u64);
    }

    // Windows around members at the top, in the middle and at the end.
    for at in [0, 1, want.len() / 2, want.len() - 1] {
        let around = rank::around(store, b, &members[at], 3)
            .await
            .expect("around")
            .expect("a member with a score has a window");
        let from = at.saturating_sub(3);
        let to = (at + 4).min(want.len());
        let got: Vec<(MemberId, f64)> = around
            .entries
            .iter()
            .map(|e| (e.member.clone(), e.score))
            .collect();
        assert_eq!(got, names(&want[from..to]), "{}: around #{at}", b.name);
        let ranks: Vec<u64> = (from as u64 + 1..=to as u64).collect();
        assert_eq!(around.ranks, ranks, "{}: around #{at}", b.name);
        assert_eq!(around.total, want.len() as u64);
    }

    // A walk of pages of 7 through cursors: the whole order, once.
    let mut walked = Vec::new();
    let mut ranks = Vec::new();
    let mut after = None;
    loop {
        let p = page(store, b, after.as_ref(), 7).await.expect("page");
        walked.extend(p.entries.iter().map(|e| (e.member.clone(), e.score)));
        ranks.extend(p.ranks.iter().copied());
        if !p.more {
            break;
        }
        let last = p.entries.last().expect("a page with more is not empty");
        let cursor = standings_core::page::encode_cursor(b, last);
        after = Some(standings_core::page::decode_cursor(b, &cursor).expect("own cursor"));
    }
    assert_eq!(walked, names(&want), "{}: pages", b.name);
    assert_eq!(ranks, (1..=want.len() as u64).collect::<Vec<_>>());

    // A member's entry carries its tie, which orders it among equals.
    let entries = store.entries_of(b, &members).await.expect("entries");
    for pair in entries.windows(2) {
        let (x, y) = (pair[0].as_ref().expect("x"), pair[1].as_ref().expect("y"));
        assert!(
            b.order.cmp_entries(x, y).is_lt(),
            "{}: {x:?} before {y:?}",
            b.name
        );
    }
}
