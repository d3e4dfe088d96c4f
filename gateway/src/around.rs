//! Around a member, with the rank index's help.
//!
//! Live, a window costs two fan-outs over every shard: the neighbours
//! script (a binary search and two ranges per shard) and the counts of the
//! first entry's score. With a rank index that answers, its counts already
//! say which scores hold the `radius` members nearest the member's score
//! on each side ([`Counts::band`]), so each shard is asked only for its
//! entries within that band (one `ZRANGE ... BYSCORE` each, mostly empty),
//! and every entry is ranked from the same view: each rank exact as of at
//! most the staleness bound ago, as a single rank is. The window itself is
//! read live: when the live band holds fewer than `radius` entries on a
//! side that the view said it would (members moved out since), or more
//! than [`MAX_BAND`] (a big tie group, common at the bottom of a
//! long-tailed board), the window is found by the live neighbours fan-out
//! instead, so it is never short or wrong, and still ranked from the view,
//! which spares the live path's second fan-out (the counts of the first
//! entry's score). `standings_around_total{source}` counts the three ways:
//! `band`, `neighbours` (both ranked from the index) and `live`.
//!
//! A members index (`rank_index = "members"`) keeps every member in the
//! board's order too, so it answers the whole window from memory
//! (`source="members"`): members, scores, metas and ranks all as of at
//! most the bound ago, like its single ranks, with no store call. A member
//! it does not hold yet is read the ways above.

use standings_core::rank::{self, Around};
use standings_core::{Board, Entry, MemberId, Order, Ties};

use crate::error::ApiError;
use crate::rank_index::{Band, Counts};
use crate::state::AppState;

/// Most entries a band may hold (as of the view, and as read); past it a
/// window is read the live way, which bounds what one shard sends.
pub const MAX_BAND: usize = 1000;

/// The window of `radius` entries on each side of `member` on `board`
/// and their ranks; `None` when the member has no score.
pub async fn around(
    state: &AppState,
    board: &Board,
    member: &MemberId,
    radius: usize,
) -> Result<Option<Around>, ApiError> {
    let store = state.store.as_ref();
    if board.ties == Ties::FirstAchiever {
        // The index counts scores, which do not place equal scores here.
        metrics::counter!("standings_around_total", "source" => "live").increment(1);
        return Ok(rank::around(store, board, member, radius).await?);
    }
    if let Some(around) = state.ranks.window_from_index(board, member, radius) {
        metrics::counter!("standings_around_total", "source" => "members").increment(1);
        return Ok(Some(around));
    }
    if let Some(counts) = state.ranks.counts_from_index(board) {
        let Some(score) = rank::score_of(store, board, member).await? else {
            return Ok(None);
        };
        let (around, source) = match banded(state, board, &counts, member, score, radius).await? {
            Some(around) => (around, "band"),
            None => {
                // A big tie group (or a band that moved): the live
                // neighbours fan-out finds the window, the view ranks it,
                // which spares the live path's counts fan-out.
                let window = rank::window_around(store, board, member, score, radius).await?;
                (ranked(&counts, window.entries), "neighbours")
            }
        };
        metrics::counter!("standings_around_total", "source" => source).increment(1);
        metrics::counter!("standings_rank_index_total", "result" => "hit")
            .increment(around.entries.len() as u64);
        return Ok(Some(around));
    }
    metrics::counter!("standings_around_total", "source" => "live").increment(1);
    Ok(rank::around(store, board, member, radius).await?)
}

/// The window from the band `counts` gives, or `None` when the live band
/// cannot be trusted to hold it (see the module docs).
async fn banded(
    state: &AppState,
    board: &Board,
    counts: &Counts,
    member: &MemberId,
    score: f64,
    radius: usize,
) -> Result<Option<Around>, ApiError> {
    let band = counts.band(score, radius);
    if band.members > MAX_BAND as u64 {
        return Ok(None);
    }
    let store = state.store.as_ref();
    let (min, max) = bounds(board.order, &band);
    let per_shard = store
        .entries_between(board, &board.all_shards(), min, max, MAX_BAND + 1)
        .await?;
    let mut entries: Vec<Entry> = Vec::new();
    for shard in per_shard {
        // A shard's read cut at its limit may miss an open end's entries.
        if shard.len() > MAX_BAND {
            return Ok(None);
        }
        entries.extend(shard.into_iter().filter(|e| e.member != *member));
        if entries.len() > MAX_BAND {
            return Ok(None);
        }
    }
    entries.push(Entry::stored(member.clone(), score));
    entries.sort_by(|a, b| board.order.cmp_entries(a, b));
    let Some(at) = entries.iter().position(|e| e.member == *member) else {
        return Ok(None);
    };
    let after = entries.len() - at - 1;
    if (at < radius && band.best.is_some()) || (after < radius && band.worst.is_some()) {
        return Ok(None);
    }
    let end = (at + radius + 1).min(entries.len());
    let mut window: Vec<Entry> = entries.drain(at.saturating_sub(radius)..end).collect();
    rank::fill_metas(store, board, &mut window).await?;
    Ok(Some(ranked(counts, window)))
}

/// A live window with every rank from one view of the index.
fn ranked(counts: &Counts, entries: Vec<Entry>) -> Around {
    let ranks = entries
        .iter()
        .map(|e| counts.standing(e.score).rank)
        .collect();
    Around {
        entries,
        ranks,
        total: counts.total(),
    }
}

/// The band as `[min, max]` scores, open ends infinite.
fn bounds(order: Order, band: &Band) -> (f64, f64) {
    let best_end = match order {
        Order::Desc => f64::INFINITY,
        Order::Asc => f64::NEG_INFINITY,
    };
    let best = band.best.unwrap_or(best_end);
    let worst = band.worst.unwrap_or(-best_end);
    match order {
        Order::Desc => (worst, best),
        Order::Asc => (best, worst),
    }
}
