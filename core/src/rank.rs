//! Exact ranks and around-me windows over every shard of a board.
//!
//! Rank is competition rank (invariant 3): `1 + Σ_shards #strictly better`,
//! so one counts fan-out gives the rank of any score. A window around a
//! member merges each shard's nearest neighbours (the exact board order is
//! contained in them, as the top-K merge is in the shard lists) and ranks
//! the merged window from one more count: the first entry's rank, then
//! positions below it.
//!
//! This is the arithmetic the gateway's `/members` and `/around` answer
//! with; it lives here, beside the `Store` trait, so it is tested against
//! `MemoryStore` without HTTP and any other caller gets the same answers.

use crate::board::Board;
use crate::merge::merge_sorted;
use crate::store::{Neighbours, ShardCountsMany, Store, StoreError};
use crate::types::{Entry, InvalidInput, MemberId, Order, Ties};

/// Why a rank could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RankError {
    /// The member cannot be on this board (e.g. no digits on a numeric
    /// board).
    #[error(transparent)]
    Input(#[from] InvalidInput),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A member's place on a board.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Standing {
    /// The member's score.
    pub score: f64,
    /// Competition rank: 1 + members strictly better.
    pub rank: u64,
    /// Members strictly worse, for [`Standing::percentile`].
    pub worse: u64,
    /// Members on the board.
    pub total: u64,
}

impl Standing {
    /// `100 x members strictly worse / total`: 0 for the last (and for a
    /// lone member, or one tied with every other), approaching 100 for the
    /// first of a large board. `total` counts the member itself, so it is
    /// never 0 for a member with a score.
    pub fn percentile(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        100.0 * self.worse as f64 / self.total as f64
    }
}

/// The entries around a member, best first, each with its exact rank.
#[derive(Debug, Clone, PartialEq)]
pub struct Around {
    /// Best first; the member itself is among them.
    pub entries: Vec<Entry>,
    /// Competition rank of each entry.
    pub ranks: Vec<u64>,
    /// Members on the board.
    pub total: u64,
}

/// The member's score, looked up in its shard; `None` without one.
pub async fn score_of(
    store: &dyn Store,
    board: &Board,
    member: &MemberId,
) -> Result<Option<f64>, RankError> {
    let shard = board.shard_of(member)?;
    Ok(store.score(board, shard, member).await?)
}

/// The competition rank `score` has on the board, and the board's size:
/// one counts fan-out over every shard.
pub async fn rank_of_score(
    store: &dyn Store,
    board: &Board,
    score: f64,
) -> Result<(u64, u64), StoreError> {
    let counts = store.counts(board, &board.all_shards(), score).await?;
    let better: u64 = counts.iter().map(|c| c.better).sum();
    let total = counts.iter().map(|c| c.total).sum();
    Ok((better + 1, total))
}

/// The exact standing of each entry (`None` stays `None`) on a
/// `first_achiever` board, where an entry's place is its position, not
/// its score's: one [`Store::places_many`] over every shard for the whole
/// list (each shard's entries before and after each one, and its size).
/// `worse` counts the entries after it.
pub async fn standings_of_entries(
    store: &dyn Store,
    board: &Board,
    entries: &[Option<Entry>],
) -> Result<Vec<Option<Standing>>, StoreError> {
    let anchors: Vec<Entry> = entries.iter().flatten().cloned().collect();
    if anchors.is_empty() {
        return Ok(vec![None; entries.len()]);
    }
    let counts = store
        .places_many(board, &board.all_shards(), &anchors)
        .await?;
    let mut k = 0;
    Ok(entries
        .iter()
        .map(|e| {
            e.as_ref().map(|e| {
                k += 1;
                standing_at(&counts, k - 1, e.score)
            })
        })
        .collect())
}

/// Each member's entry (score, tie, meta) and exact standing on a
/// `first_achiever` board, in the order given (`None` without a score):
/// one [`Store::entries_of`], then [`standings_of_entries`]. For callers
/// that answer the meta too (the member answer, lookups).
pub async fn placed(
    store: &dyn Store,
    board: &Board,
    members: &[MemberId],
) -> Result<(Vec<Option<Entry>>, Vec<Option<Standing>>), StoreError> {
    let entries = store.entries_of(board, members).await?;
    let standings = standings_of_entries(store, board, &entries).await?;
    Ok((entries, standings))
}

/// The member's exact standing; `None` when it has no score.
pub async fn standing(
    store: &dyn Store,
    board: &Board,
    member: &MemberId,
) -> Result<Option<Standing>, RankError> {
    let mut one = standings(store, board, std::slice::from_ref(member)).await?;
    Ok(one.pop().flatten())
}

/// Each member's exact standing (`None` without a score), in the order
/// given: one [`Store::scores_many`] and one [`Store::counts_many`] over
/// every shard for the whole list, with each distinct score probed once.
pub async fn standings(
    store: &dyn Store,
    board: &Board,
    members: &[MemberId],
) -> Result<Vec<Option<Standing>>, RankError> {
    for m in members {
        board.shard_of(m)?;
    }
    if board.ties == Ties::FirstAchiever {
        return Ok(placed(store, board, members).await?.1);
    }
    let scores = store.scores_many(board, members).await?;
    Ok(standings_of_scores(store, board, &scores).await?)
}

/// The exact standing each of `scores` has on `board` (`None` stays
/// `None`): one [`Store::counts_many`] over every shard, each distinct
/// score probed once. For callers that read the scores themselves (a
/// lookup reads them with the metas).
pub async fn standings_of_scores(
    store: &dyn Store,
    board: &Board,
    scores: &[Option<f64>],
) -> Result<Vec<Option<Standing>>, StoreError> {
    let mut probes: Vec<f64> = scores.iter().flatten().copied().collect();
    probes.sort_by(f64::total_cmp);
    probes.dedup();
    if probes.is_empty() {
        return Ok(vec![None; scores.len()]);
    }
    let counts = store
        .counts_many(board, &board.all_shards(), &probes)
        .await?;
    Ok(scores
        .iter()
        .map(|s| {
            s.map(|score| {
                let at = probes
                    .binary_search_by(|p| p.total_cmp(&score))
                    .unwrap_or_else(|i| i);
                standing_at(&counts, at, score)
            })
        })
        .collect())
}

/// The standing of the `k`th probe score of a [`Store::counts_many`]
/// answer, summed over its shards.
pub fn standing_at(counts: &[ShardCountsMany], k: usize, score: f64) -> Standing {
    let sum = |side: fn(&ShardCountsMany) -> &[u64]| -> u64 {
        counts
            .iter()
            .map(|c| side(c).get(k).copied().unwrap_or(0))
            .sum()
    };
    Standing {
        score,
        rank: 1 + sum(|c| &c.better),
        worse: sum(|c| &c.worse),
        total: counts.iter().map(|c| c.total).sum(),
    }
}

/// The member and up to `radius` entries on each side (fewer only at the
/// board's ends), exact across every shard; `None` when it has no score.
pub async fn around(
    store: &dyn Store,
    board: &Board,
    member: &MemberId,
    radius: usize,
) -> Result<Option<Around>, RankError> {
    if board.ties == Ties::FirstAchiever {
        // Every rank is a position: the window's own counts rank it.
        board.shard_of(member)?;
        let mut one = store
            .entries_of(board, std::slice::from_ref(member))
            .await?;
        let Some(anchor) = one.pop().flatten() else {
            return Ok(None);
        };
        let window = window_of(store, board, anchor, radius).await?;
        let ranks = window_ranks(board.ties, &window, window.start + 1);
        return Ok(Some(Around {
            ranks,
            total: window.total,
            entries: window.entries,
        }));
    }
    let Some(score) = score_of(store, board, member).await? else {
        return Ok(None);
    };
    let window = window_around(store, board, member, score, radius).await?;
    let (first_rank, total) = rank_of_score(store, board, window.entries[0].score).await?;
    let ranks = window_ranks(board.ties, &window, first_rank);
    Ok(Some(Around {
        entries: window.entries,
        ranks,
        total,
    }))
}

/// The live window of `radius` entries on each side of `member` (whose
/// score is `score`), metas filled, without ranks: one neighbours fan-out
/// and one metas read. For a caller that ranks the window another way (the
/// gateway's rank index).
pub async fn window_around(
    store: &dyn Store,
    board: &Board,
    member: &MemberId,
    score: f64,
    radius: usize,
) -> Result<Window, StoreError> {
    window_of(store, board, Entry::stored(member.clone(), score), radius).await
}

/// [`window_around`] an entry the caller read (on a `first_achiever`
/// board it carries the member's tie).
pub async fn window_of(
    store: &dyn Store,
    board: &Board,
    anchor: Entry,
    radius: usize,
) -> Result<Window, StoreError> {
    let per_shard = store
        .neighbours(board, &board.all_shards(), &anchor, radius)
        .await?;
    let mut window = window(board.order, &per_shard, anchor, radius);
    fill_metas(store, board, &mut window.entries).await?;
    Ok(window)
}

/// Sets each entry's meta from the store, in one [`Store::metas`] call
/// (one round trip per node on Redis): neighbour lists carry no meta, and
/// any list of members a caller ranks (around, lookups) gets its metas
/// this way.
pub async fn fill_metas(
    store: &dyn Store,
    board: &Board,
    entries: &mut [Entry],
) -> Result<(), StoreError> {
    let members: Vec<MemberId> = entries.iter().map(|e| e.member.clone()).collect();
    let metas = store.metas(board, &members).await?;
    for (e, m) in entries.iter_mut().zip(metas) {
        e.meta = m;
    }
    Ok(())
}

/// The entries around an anchor, best first, and the 0-based board position
/// of the first.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Best first, the anchor among them.
    pub entries: Vec<Entry>,
    /// The board position of `entries[0]`.
    pub start: u64,
    /// Members on the board (0 where the window was not read from
    /// neighbours).
    pub total: u64,
}

/// Merges per-shard neighbours into the exact window around `anchor`.
pub fn window(order: Order, per_shard: &[Neighbours], anchor: Entry, radius: usize) -> Window {
    // Nearest-first "better" lists run in the reverse of the board order.
    let reverse = match order {
        Order::Desc => Order::Asc,
        Order::Asc => Order::Desc,
    };
    let better: Vec<&[Entry]> = per_shard.iter().map(|n| n.better.as_slice()).collect();
    let worse: Vec<&[Entry]> = per_shard.iter().map(|n| n.worse.as_slice()).collect();
    let mut entries = merge_sorted(&better, radius, reverse);
    entries.reverse();
    let ahead: u64 = per_shard.iter().map(|n| n.ahead).sum();
    let start = ahead - entries.len() as u64;
    entries.push(anchor);
    entries.extend(merge_sorted(&worse, radius, order));
    Window {
        entries,
        start,
        total: per_shard.iter().map(|n| n.total).sum(),
    }
}

/// The ranks of a window whose first entry has `first_rank`: on a
/// `shared` board competition ranks (a tie shares the rank before it, a
/// new score's rank is its 1-based position), on a `first_achiever` board
/// the positions.
pub fn window_ranks(ties: Ties, window: &Window, first_rank: u64) -> Vec<u64> {
    let mut ranks: Vec<u64> = Vec::with_capacity(window.entries.len());
    for (i, e) in window.entries.iter().enumerate() {
        let rank = if ties == Ties::FirstAchiever {
            window.start + i as u64 + 1
        } else if i == 0 {
            first_rank
        } else if window.entries[i - 1].score == e.score {
            ranks[i - 1]
        } else {
            window.start + i as u64 + 1
        };
        ranks.push(rank);
    }
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, Write};
    use crate::types::{BoardName, Op, Score};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn e(m: &str, s: f64) -> Entry {
        Entry::new(MemberId::new(m).unwrap(), Score::new(s).unwrap())
    }

    #[test]
    fn window_ranks_cover_ties() {
        // Desc board; shard 0 holds a(9) c(7), shard 1 holds b(7) d(5).
        let per_shard = vec![
            Neighbours {
                better: vec![e("c", 7.0), e("a", 9.0)],
                worse: vec![],
                ahead: 2,
                total: 2,
            },
            Neighbours {
                better: vec![],
                worse: vec![e("d", 5.0)],
                ahead: 0,
                total: 2,
            },
        ];
        let w = window(Order::Desc, &per_shard, e("b", 7.0), 5);
        let names: Vec<&str> = w.entries.iter().map(|e| e.member.as_str()).collect();
        assert_eq!(names, ["a", "c", "b", "d"]);
        assert_eq!(w.start, 0);
        assert_eq!(window_ranks(Ties::Shared, &w, 1), [1, 2, 2, 4]);
    }

    /// The store's total order with competition ranks, by brute force.
    fn oracle(board: &Board, scores: &[(String, f64)]) -> Vec<(u64, String, f64)> {
        let mut sorted: Vec<Entry> = scores.iter().map(|(m, s)| e(m, *s)).collect();
        sorted.sort_by(|x, y| board.order.cmp_entries(x, y));
        sorted
            .iter()
            .map(|x| {
                let better = match board.order {
                    Order::Desc => sorted.iter().filter(|o| o.score > x.score).count(),
                    Order::Asc => sorted.iter().filter(|o| o.score < x.score).count(),
                };
                (better as u64 + 1, x.member.as_str().to_string(), x.score)
            })
            .collect()
    }

    #[tokio::test]
    async fn ranks_and_windows_equal_a_brute_force_oracle() {
        for order in [Order::Desc, Order::Asc] {
            let board = Board {
                shards: 7,
                groups: 1,
                order,
                ..Board::new(BoardName::new("rank").unwrap())
            };
            let store = MemoryStore::new();
            let mut rng = StdRng::seed_from_u64(7);
            let mut scores = Vec::new();
            for i in 0..400 {
                let member = format!("m{i}");
                // Few distinct scores: many ties across shards.
                let score = f64::from(rng.gen_range(0..40));
                let w = Write {
                    member: MemberId::new(&member).unwrap(),
                    op: Op::Set,
                    value: Score::new(score).unwrap(),
                    idempotency_key: None,
                    request_id: "t".into(),
                    meta: None,
                };
                store.apply(&board, &w).await.unwrap();
                scores.push((member, score));
            }
            let expected = oracle(&board, &scores);
            for (at, (rank, member, score)) in expected.iter().enumerate().step_by(13) {
                let id = MemberId::new(member).unwrap();
                let got = standing(&store, &board, &id).await.unwrap().unwrap();
                assert_eq!(
                    (got.rank, got.score, got.total),
                    (*rank, *score, 400),
                    "{member} ({order:?})"
                );
                let radius = 1 + at % 6;
                let around = around(&store, &board, &id, radius).await.unwrap().unwrap();
                let lo = at.saturating_sub(radius);
                let hi = (at + radius + 1).min(expected.len());
                let got: Vec<(u64, String, f64)> = around
                    .entries
                    .iter()
                    .zip(&around.ranks)
                    .map(|(x, &r)| (r, x.member.as_str().to_string(), x.score))
                    .collect();
                assert_eq!(
                    got,
                    expected[lo..hi],
                    "around {member} r={radius} ({order:?})"
                );
            }
            let ids: Vec<MemberId> = expected
                .iter()
                .step_by(7)
                .map(|(_, m, _)| MemberId::new(m).unwrap())
                .chain([MemberId::new("nobody").unwrap()])
                .collect();
            let many = standings(&store, &board, &ids).await.unwrap();
            for (id, got) in ids.iter().zip(&many) {
                let want = expected.iter().find(|(_, m, _)| m == id.as_str());
                let worse = want.map(|(_, _, s)| {
                    scores
                        .iter()
                        .filter(|(_, o)| match order {
                            Order::Desc => o < s,
                            Order::Asc => o > s,
                        })
                        .count() as u64
                });
                assert_eq!(
                    got.map(|g| (g.rank, g.score, g.worse, g.total)),
                    want.map(|(r, _, s)| (*r, *s, worse.unwrap_or(0), 400)),
                    "{id:?} in a list ({order:?})"
                );
            }
            let nobody = MemberId::new("nobody").unwrap();
            assert_eq!(standing(&store, &board, &nobody).await, Ok(None));
            assert_eq!(around(&store, &board, &nobody, 3).await, Ok(None));
        }
    }
}
