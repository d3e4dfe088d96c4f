//! `GET /v1/boards/{board}/entries?limit=N&after=CURSOR`: the whole board,
//! a page at a time, exact and live past the TOP-K, through
//! [`standings_core::page`] (which documents the merge, the ranks and the
//! cursor format).

use serde::Serialize;
use standings_core::page::{decode_cursor, encode_cursor, page, CursorError};

use crate::error::{ApiError, ErrorCode};
use crate::period::PeriodInfo;
use crate::reads::live_period;
use crate::reply::{json_of, Reply};
use crate::request::Query;
use crate::state::AppState;
use crate::view::RankedEntry;

/// Entries a page has without `limit`.
pub const DEFAULT_LIMIT: usize = 100;

/// Most entries one page has: every shard sends up to `limit + 1`, so a
/// page of a 100-shard board reads at most about 100k entries.
pub const MAX_LIMIT: usize = 1000;

#[derive(Serialize)]
struct EntriesReply<'a> {
    board: &'a str,
    period: &'a PeriodInfo,
    entries: Vec<RankedEntry<'a>>,
    /// The cursor of the next page; `null` after the last entry.
    next: Option<String>,
}

/// `GET /v1/boards/{board}/entries`: one page after `after` (from the top
/// without it), best first, with exact competition ranks.
pub async fn entries(state: &AppState, board: &str, query: &Query<'_>) -> Reply {
    let b = state.board(board)?;
    let limit = query.int("limit", DEFAULT_LIMIT, 1..=MAX_LIMIT)?;
    let (at, period) = live_period(&b, query)?;
    let after = match query.text("after")? {
        Some(text) => Some(decode_cursor(&at, &text).map_err(invalid_cursor)?),
        None => None,
    };
    let mut page = page(state.store.as_ref(), &at, after.as_ref(), limit).await?;
    // Every entry carries its member's metadata, as `top` does.
    standings_core::rank::fill_metas(state.store.as_ref(), &at, &mut page.entries).await?;
    let next = page
        .entries
        .last()
        .filter(|_| page.more)
        .map(|last| encode_cursor(&at, last));
    let entries = page
        .entries
        .iter()
        .zip(&page.ranks)
        .map(|(e, &rank)| RankedEntry::new(rank, e))
        .collect();
    Ok(json_of(&EntriesReply {
        board: b.board.name.as_str(),
        period: &period,
        entries,
        next,
    }))
}

/// 400 `invalid_cursor` naming `after`.
fn invalid_cursor(e: CursorError) -> ApiError {
    ApiError::bad_field(ErrorCode::InvalidCursor, "after", e.to_string())
}
