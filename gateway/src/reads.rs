//! The read endpoints: `top` and static JSON from the published view (an
//! `Arc` load and a `Bytes` clone), `members` and `around` live and exact
//! through [`standings_core::rank`], and the operations endpoints.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use standings_core::store::now_ms;
use standings_core::{rank, MemberId};

use crate::error::{ApiError, ErrorCode};
use crate::reply::{json, json_of, Reply};
use crate::request::Query;
use crate::state::AppState;
use crate::view::{score, RankedEntry};

/// `GET /v1/boards/{board}/top`.
pub fn top(state: &AppState, board: &str, query: &Query<'_>) -> Reply {
    let b = state.board(board)?;
    let k = b.board.top_k;
    let limit = query.int("limit", 20, 1..=k)?;
    let offset = query.int("offset", 0, 0..=k - 1)?;
    let view = b.view.load();
    if offset == 0 {
        if let Some(rendered) = view.prerendered(limit) {
            return Ok(json(StatusCode::OK, rendered.body.clone()));
        }
    }
    let age = view
        .stale
        .then(|| now_ms().saturating_sub(b.refreshed_at_ms.load(Ordering::Relaxed)));
    Ok(json(
        StatusCode::OK,
        view.render(&b.board, offset, limit, age),
    ))
}

/// `GET /static/{board}/top{20,100,1000}.json`: the pre-rendered body with
/// its strong ETag, 304 on a matching `If-None-Match`.
pub fn static_file(state: &AppState, board: &str, file: &str, headers: &HeaderMap) -> Reply {
    let b = state.board(board)?;
    let limit = match file {
        "top20.json" => 20,
        "top100.json" => 100,
        "top1000.json" => 1000,
        _ => return Err(ApiError::not_found()),
    };
    let view = b.view.load();
    let rendered = view.prerendered(limit).ok_or_else(ApiError::not_found)?;
    let not_modified = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.as_bytes() == rendered.etag.as_bytes()
        });
    let mut response = if not_modified {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        json(StatusCode::OK, rendered.body.clone())
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, rendered.etag.clone());
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    h.insert("surrogate-key", b.surrogate_key.clone());
    h.insert("xkey", b.surrogate_key.clone());
    Ok(response)
}

#[derive(Serialize)]
struct MemberReply<'a> {
    member: &'a str,
    #[serde(serialize_with = "score")]
    score: f64,
    rank: u64,
    total: u64,
}

/// `GET /v1/boards/{board}/members/{member}`: live and exact.
pub async fn member(state: &AppState, board: &str, member: &str) -> Reply {
    let b = state.board(board)?;
    let member = MemberId::new(member)?;
    let standing = rank::standing(state.store.as_ref(), &b.board, &member)
        .await?
        .ok_or_else(ApiError::unknown_member)?;
    Ok(json_of(&MemberReply {
        member: member.as_str(),
        score: standing.score,
        rank: standing.rank,
        total: standing.total,
    }))
}

#[derive(Serialize)]
struct AroundReply<'a> {
    board: &'a str,
    member: &'a str,
    total: u64,
    entries: Vec<RankedEntry<'a>>,
}

/// `GET /v1/boards/{board}/members/{member}/around`: live and exact.
pub async fn around(state: &AppState, board: &str, member: &str, query: &Query<'_>) -> Reply {
    let b = state.board(board)?;
    let radius = query.int("radius", 5, 1..=100)?;
    let member = MemberId::new(member)?;
    let around = rank::around(state.store.as_ref(), &b.board, &member, radius)
        .await?
        .ok_or_else(ApiError::unknown_member)?;
    let entries = around
        .entries
        .iter()
        .zip(&around.ranks)
        .map(|(e, &r)| RankedEntry::new(r, e))
        .collect();
    Ok(json_of(&AroundReply {
        board: b.board.name.as_str(),
        member: member.as_str(),
        total: around.total,
        entries,
    }))
}

#[derive(Serialize)]
struct ReadyReply {
    status: &'static str,
    /// Age of the oldest board's snapshot: how far behind the store reads
    /// may be.
    snapshot_age_ms: u64,
    /// Whether the last refresh of every board reached the store.
    stale: bool,
}

/// `GET /readyz`: 503 until every board has a snapshot and while the
/// refresher is not running. A store that is unreachable does not make the
/// gateway unready: reads degrade to the last snapshot (`stale`), they do
/// not fail, so a load balancer should keep sending them here.
pub async fn readyz(state: &AppState) -> Reply {
    if !state.refresher.is_running() {
        return Err(ApiError::unavailable(
            ErrorCode::NotReady,
            "the snapshot refresher is not running",
        ));
    }
    if let Some(b) = state.boards.values().find(|b| !b.view.load().loaded) {
        return Err(ApiError::unavailable(
            ErrorCode::NotReady,
            format!("board {} has no snapshot loaded yet", b.board.name),
        ));
    }
    let now = now_ms();
    let snapshot_age_ms = state
        .boards
        .values()
        .map(|b| now.saturating_sub(b.refreshed_at_ms.load(Ordering::Relaxed)))
        .max()
        .unwrap_or(0);
    let stale = state.boards.values().any(|b| b.view.load().stale);
    Ok(json_of(&ReadyReply {
        status: "ready",
        snapshot_age_ms,
        stale,
    }))
}

/// `GET /metrics`: the Prometheus text format.
pub fn metrics_text(state: &AppState) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(state.metrics.render())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
