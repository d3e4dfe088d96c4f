//! Exact ranks within a stated staleness: an answer cache keyed by score.
//!
//! A competition rank is a function of the score alone (`1 + members
//! strictly better`), and long-tailed boards hold far fewer distinct scores
//! than members, so the counts fan-out for one score answers every member
//! who holds it. [`RankCache`] keeps, per (board, period, score), the
//! summed counts of one fan-out and when it ran; a later rank of that
//! score within `gateway.rank_staleness_ms` is the member's live score
//! (one read in its shard) plus that lookup, exact as of the fan-out,
//! which is at most the bound old. A bound of 0 turns the cache off: every
//! rank fans out (the default, so a rank is exact as of the request).
//!
//! Concurrent misses for one score wait for the first one's fan-out
//! (`quick_cache`'s placeholder guard) instead of all fanning out, so a
//! popular score costs one fan-out per bound however many ask. The cache
//! is bounded in entries (S3-FIFO eviction); an entry is about 100 bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;

use crate::rank_index::{Counts, MemberHit, RankIndex};
use standings_core::board::StorageName;
use standings_core::rank::{self, RankError, Standing};
use standings_core::store::ShardCountsMany;
use standings_core::{Board, Entry, MemberId, Store, StoreError};

/// (board storage name, period id or blend name, score bits).
type Key = (StorageName, Arc<str>, u64);

/// Summed counts of one fan-out and when it ran.
#[derive(Debug, Clone, Copy)]
struct Counted {
    rank: u64,
    worse: u64,
    total: u64,
    at: Instant,
}

impl Counted {
    /// The `k`th probe's counts of a `counts_many` answer begun at `at`.
    fn of(counts: &[ShardCountsMany], k: usize, at: Instant) -> Self {
        let s = rank::standing_at(counts, k, 0.0);
        Counted {
            rank: s.rank,
            worse: s.worse,
            total: s.total,
            at,
        }
    }

    fn standing(&self, score: f64) -> Standing {
        Standing {
            score,
            rank: self.rank,
            worse: self.worse,
            total: self.total,
        }
    }
}

/// One counts fan-out over every shard for `score`: better (as a rank),
/// worse and total, summed.
async fn count(store: &dyn Store, board: &Board, score: f64) -> Result<Counted, StoreError> {
    // Taken before the fan-out: the answer is exact as of no earlier
    // than this.
    let at = Instant::now();
    let counts = store
        .counts_many(board, &board.all_shards(), &[score])
        .await?;
    Ok(Counted::of(&counts, 0, at))
}

/// Ranks by score with a bounded staleness; see the module docs.
pub struct RankCache {
    /// `None` when the bound is 0: always live.
    cache: Option<Cache<Key, Counted>>,
    staleness: Duration,
    /// The stream-fed index, asked first when there is one.
    index: Option<Arc<RankIndex>>,
}

impl RankCache {
    /// A cache of at most `entries` scores whose answers are at most
    /// `staleness` old; `staleness` 0 (or `entries` 0): no cache.
    pub fn new(staleness: Duration, entries: usize) -> Self {
        let cache = (!staleness.is_zero() && entries > 0).then(|| Cache::new(entries));
        Self {
            cache,
            staleness,
            index: None,
        }
    }

    /// The same, asking `index` first (within the same bound). A zero
    /// bound keeps every rank live and ignores the index.
    pub fn with_index(mut self, index: Arc<RankIndex>) -> Self {
        if !self.staleness.is_zero() {
            self.index = Some(index);
        }
        self
    }

    /// The index, if ranks are asked of one.
    pub fn index(&self) -> Option<&Arc<RankIndex>> {
        self.index.as_ref()
    }

    /// A member's score, standing and meta from a members index (counted
    /// as a hit; `None` is not counted: the caller then reads the member
    /// live and asks [`RankCache::standing_of_score`], which counts).
    pub fn member_from_index(&self, board: &Board, member: &MemberId) -> Option<MemberHit> {
        self.members_from_index(board, std::slice::from_ref(member))?
            .pop()
    }

    /// Every member's score, standing and meta from a members index, or
    /// `None` unless it holds them all (the caller then reads them live).
    pub fn members_from_index(
        &self,
        board: &Board,
        members: &[MemberId],
    ) -> Option<Vec<MemberHit>> {
        let hits = self.index.as_ref()?.members(board, members)?;
        metrics::counter!("standings_rank_index_total", "result" => "hit")
            .increment(hits.len() as u64);
        Some(hits)
    }

    /// The window around `member` from a members index, counted as hits
    /// (one per entry); `None` (not counted) when it cannot answer.
    pub fn window_from_index(
        &self,
        board: &Board,
        member: &MemberId,
        radius: usize,
    ) -> Option<rank::Around> {
        let (hits, total) = self.index.as_ref()?.window(board, member, radius)?;
        metrics::counter!("standings_rank_index_total", "result" => "hit")
            .increment(hits.len() as u64);
        let ranks = hits.iter().map(|(_, h)| h.standing.rank).collect();
        let entries = hits
            .into_iter()
            .map(|(m, h)| {
                let mut e = Entry::stored(m, h.score);
                e.meta = h.meta;
                e
            })
            .collect();
        Some(rank::Around {
            entries,
            ranks,
            total,
        })
    }

    /// The counts of one view of the index, for a caller that ranks
    /// several scores from it and counts its own hits; `None` (counted as
    /// a miss) without an index that can answer.
    pub fn counts_from_index(&self, board: &Board) -> Option<Arc<Counts>> {
        let got = self.index.as_ref()?.counts(board);
        if got.is_none() {
            metrics::counter!("standings_rank_index_total", "result" => "miss").increment(1);
        }
        got
    }

    /// The standing of `score` from the index, counted as a hit or a miss.
    fn indexed(&self, board: &Board, score: f64) -> Option<Standing> {
        let index = self.index.as_ref()?;
        let got = index.standing(board, score);
        let result = if got.is_some() { "hit" } else { "miss" };
        metrics::counter!("standings_rank_index_total", "result" => result).increment(1);
        got
    }

    /// The staleness bound (0: live).
    pub fn staleness(&self) -> Duration {
        self.staleness
    }

    /// The standing `score` has on `board` (competition rank, members
    /// strictly worse, the board's size), exact as of at most the
    /// staleness bound ago.
    pub async fn standing_of_score(
        &self,
        store: &dyn Store,
        board: &Board,
        score: f64,
    ) -> Result<Standing, StoreError> {
        if let Some(s) = self.indexed(board, score) {
            return Ok(s);
        }
        let Some(cache) = &self.cache else {
            return Ok(count(store, board, score).await?.standing(score));
        };
        let key: Key = (
            board.storage().clone(),
            board.period.clone(),
            score.to_bits(),
        );
        if let Some(hit) = cache.get(&key).filter(|c| self.fresh(c)) {
            metrics::counter!("standings_rank_cache_total", "result" => "hit").increment(1);
            return Ok(hit.standing(score));
        }
        // Stale or absent: drop a stale answer so the guard below is ours
        // (or another request's fresh one), never the stale value.
        cache.remove_if(&key, |c| !self.fresh(c));
        let guard = match cache.get_value_or_guard_async(&key).await {
            Ok(fresh) if self.fresh(&fresh) => {
                metrics::counter!("standings_rank_cache_total", "result" => "hit").increment(1);
                return Ok(fresh.standing(score));
            }
            Ok(_) => None,
            Err(guard) => Some(guard),
        };
        metrics::counter!("standings_rank_cache_total", "result" => "miss").increment(1);
        let counted = count(store, board, score).await?;
        match guard {
            Some(guard) => {
                let _ = guard.insert(counted);
            }
            None => cache.insert(key, counted),
        }
        Ok(counted.standing(score))
    }

    /// Each member's standing (`None` without a score), as
    /// [`rank::standings`] answers them: the scores live in one round
    /// trip per node, then [`RankCache::standings_of_scores`].
    pub async fn standings(
        &self,
        store: &dyn Store,
        board: &Board,
        members: &[MemberId],
    ) -> Result<Vec<Option<Standing>>, RankError> {
        for m in members {
            board.shard_of(m)?;
        }
        let scores = store.scores_many(board, members).await?;
        Ok(self.standings_of_scores(store, board, &scores).await?)
    }

    /// The standing of each of `scores` (`None` stays `None`): from the
    /// index, else a fresh answer of the cache, and the others counted
    /// together in one `counts_many` fan-out; with a zero bound all live.
    pub async fn standings_of_scores(
        &self,
        store: &dyn Store,
        board: &Board,
        scores: &[Option<f64>],
    ) -> Result<Vec<Option<Standing>>, StoreError> {
        let Some(cache) = &self.cache else {
            return rank::standings_of_scores(store, board, scores).await;
        };
        let key = |score: f64| -> Key {
            (
                board.storage().clone(),
                board.period.clone(),
                score.to_bits(),
            )
        };
        let mut known: std::collections::HashMap<u64, Counted> = std::collections::HashMap::new();
        let mut missing: Vec<f64> = Vec::new();
        let now = Instant::now();
        // One view of the index ranks every score (one miss when none).
        let view = match scores.iter().any(Option::is_some) {
            true => self.counts_from_index(board),
            false => None,
        };
        for &score in scores.iter().flatten() {
            if known.contains_key(&score.to_bits())
                || missing.iter().any(|m| m.to_bits() == score.to_bits())
            {
                continue;
            }
            if let Some(view) = &view {
                metrics::counter!("standings_rank_index_total", "result" => "hit").increment(1);
                let s = view.standing(score);
                let counted = Counted {
                    rank: s.rank,
                    worse: s.worse,
                    total: s.total,
                    at: now,
                };
                known.insert(score.to_bits(), counted);
                continue;
            }
            match cache.get(&key(score)).filter(|c| self.fresh(c)) {
                Some(hit) => {
                    metrics::counter!("standings_rank_cache_total", "result" => "hit").increment(1);
                    known.insert(score.to_bits(), hit);
                }
                None => missing.push(score),
            }
        }
        if !missing.is_empty() {
            metrics::counter!("standings_rank_cache_total", "result" => "miss")
                .increment(missing.len() as u64);
            let at = Instant::now();
            let counts = store
                .counts_many(board, &board.all_shards(), &missing)
                .await?;
            for (k, &score) in missing.iter().enumerate() {
                let counted = Counted::of(&counts, k, at);
                cache.insert(key(score), counted);
                known.insert(score.to_bits(), counted);
            }
        }
        Ok(scores
            .iter()
            .map(|s| s.map(|score| known[&score.to_bits()].standing(score)))
            .collect())
    }

    fn fresh(&self, c: &Counted) -> bool {
        c.at.elapsed() <= self.staleness
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use standings_core::store::Write;
    use standings_core::{BoardName, MemberId, MemoryStore, Op, Score};

    fn board() -> Board {
        Board {
            shards: 4,
            ..Board::new(BoardName::new("ranks").unwrap())
        }
    }

    /// (rank, total) of `score`.
    async fn rt(
        ranks: &RankCache,
        store: &MemoryStore,
        board: &Board,
        score: f64,
    ) -> Result<(u64, u64), StoreError> {
        let s = ranks.standing_of_score(store, board, score).await?;
        Ok((s.rank, s.total))
    }

    async fn write(store: &MemoryStore, board: &Board, member: &str, score: f64) {
        let w = Write {
            member: MemberId::new(member).unwrap(),
            op: Op::Set,
            value: Score::new(score).unwrap(),
            idempotency_key: None,
            request_id: "t".into(),
            meta: None,
        };
        store.apply(board, &w).await.unwrap();
    }

    #[tokio::test]
    async fn a_zero_bound_is_always_live() {
        let store = MemoryStore::new();
        let board = board();
        let ranks = RankCache::new(Duration::ZERO, 1000);
        write(&store, &board, "m:1", 10.0).await;
        assert_eq!(rt(&ranks, &store, &board, 5.0).await, Ok((2, 1)));
        write(&store, &board, "m:2", 7.0).await;
        assert_eq!(rt(&ranks, &store, &board, 5.0).await, Ok((3, 2)));
    }

    #[tokio::test]
    async fn within_the_bound_an_answer_is_reused_and_past_it_recounted() {
        let store = MemoryStore::new();
        let board = board();
        let ranks = RankCache::new(Duration::from_millis(200), 1000);
        write(&store, &board, "m:1", 10.0).await;
        assert_eq!(rt(&ranks, &store, &board, 5.0).await, Ok((2, 1)));
        write(&store, &board, "m:2", 7.0).await;
        // Within the bound the answer is the one counted before the write:
        // exact as of then.
        assert_eq!(rt(&ranks, &store, &board, 5.0).await, Ok((2, 1)));
        // Another score is counted now.
        assert_eq!(rt(&ranks, &store, &board, 8.0).await, Ok((2, 2)));
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(rt(&ranks, &store, &board, 5.0).await, Ok((3, 2)));
    }

    #[tokio::test]
    async fn periods_are_cached_apart() {
        let store = MemoryStore::new();
        let board = board();
        let ranks = RankCache::new(Duration::from_secs(60), 1000);
        write(&store, &board, "m:1", 10.0).await;
        assert_eq!(rt(&ranks, &store, &board, 5.0).await, Ok((2, 1)));
        let other = board.at("2020-01-01");
        assert_eq!(rt(&ranks, &store, &other, 5.0).await, Ok((1, 0)));
    }

    #[tokio::test]
    async fn lists_reuse_fresh_answers_and_count_the_rest_together() {
        let store = MemoryStore::new();
        let board = board();
        let ranks = RankCache::new(Duration::from_secs(60), 1000);
        write(&store, &board, "m:1", 10.0).await;
        write(&store, &board, "m:2", 5.0).await;
        // Caches the answer for 5 (rank 2 of 2).
        assert_eq!(rt(&ranks, &store, &board, 5.0).await, Ok((2, 2)));
        write(&store, &board, "m:3", 7.0).await;
        let ids: Vec<MemberId> = ["m:1", "m:2", "m:3", "nobody"]
            .iter()
            .map(|m| MemberId::new(m).unwrap())
            .collect();
        let got: Vec<Option<(u64, u64, u64)>> = ranks
            .standings(&store, &board, &ids)
            .await
            .unwrap()
            .iter()
            .map(|s| s.map(|s| (s.rank, s.worse, s.total)))
            .collect();
        // 10 and 7 are counted now; 5 is the answer counted before m:3.
        assert_eq!(
            got,
            vec![Some((1, 2, 3)), Some((2, 0, 2)), Some((2, 1, 3)), None]
        );
    }
}
