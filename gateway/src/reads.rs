//! The read endpoints: `top` and static JSON from the published view (an
//! `Arc` load and a `Bytes` clone), `members` and `around` live and exact
//! through [`standings_core::rank`], and the operations endpoints.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use standings_core::rank;
use standings_core::snapshot::LoadError;
use standings_core::store::{now_ms, now_ms_i64};
use standings_core::{Board, MemberId, Meta, PeriodKind, StoreError, Ties};

use crate::error::{ApiError, ErrorCode};
use crate::period::{self, PeriodInfo, Slot, Target};
use crate::refresh::merge_period;
use crate::reply::{json, json_of, Reply};
use crate::request::Query;
use crate::state::AppState;
use crate::view::{score, BoardState, RankedEntry, View};

/// `GET /v1/boards/{board}/top`: a tracked period from its published view;
/// an older period from its group snapshots, merged on demand.
pub async fn top(state: &AppState, board: &str, query: &Query<'_>) -> Reply {
    let b = state.board(board)?;
    let k = b.board.top_k;
    let limit = query.int("limit", 20, 1..=k)?;
    let offset = query.int("offset", 0, 0..=k - 1)?;
    let period = query.text("period")?;
    let target = period::target(&b.board, &b.slots, period.as_deref(), now_ms_i64())?;
    let slot = match target {
        Target::Slot(slot) => slot,
        Target::Id(_) => return top_on_demand(state, &b, &target, offset, limit).await,
    };
    let view = b.views[slot].load();
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

/// `top` of a closed period older than the tracked ones: its group
/// snapshots (final once the period closed) merged for this request.
async fn top_on_demand(
    state: &AppState,
    b: &BoardState,
    target: &Target,
    offset: usize,
    limit: usize,
) -> Reply {
    let now = now_ms_i64();
    let (board, info) = period::resolve(&b.board, b.slots.as_slice(), target, now);
    let (version, entries) =
        merge_period(state.store.as_ref(), &board)
            .await
            .map_err(|e| match e {
                LoadError::Store(e) => ApiError::from(e),
                other => ApiError::from(StoreError::Corrupt(other.to_string())),
            })?;
    let view = View::unrendered(&board, info, version, now_ms(), entries);
    Ok(json(
        StatusCode::OK,
        view.render(&b.board, offset, limit, None),
    ))
}

/// `GET /static/{board}/top{20,100,1000}.json` (the board's first period)
/// and `GET /static/{board}/{kind or blend}/top....json`: the pre-rendered
/// body with its strong ETag, 304 on a matching `If-None-Match`.
pub fn static_file(
    state: &AppState,
    board: &str,
    dir: &str,
    file: &str,
    headers: &HeaderMap,
) -> Reply {
    let b = state.board(board)?;
    let limit = match file {
        "top20.json" => 20,
        "top100.json" => 100,
        "top1000.json" => 1000,
        _ => return Err(ApiError::not_found()),
    };
    let slot = if dir.is_empty() {
        0
    } else {
        let wanted = match dir.parse::<PeriodKind>() {
            Ok(kind) => Slot::Current(kind),
            Err(_) => Slot::Blend(Arc::from(dir)),
        };
        b.slots
            .iter()
            .position(|s| *s == wanted)
            .ok_or_else(ApiError::not_found)?
    };
    let view = b.views[slot].load();
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

/// The board addressing the period of `period=` for a live read, and its
/// `period` object.
pub(crate) fn live_period(
    b: &BoardState,
    query: &Query<'_>,
) -> Result<(Board, PeriodInfo), ApiError> {
    let period = query.text("period")?;
    let now = now_ms_i64();
    let target = period::target(&b.board, &b.slots, period.as_deref(), now)?;
    Ok(period::resolve(&b.board, &b.slots, &target, now))
}

#[derive(Serialize)]
struct MemberReply<'a> {
    member: &'a str,
    #[serde(serialize_with = "score")]
    score: f64,
    rank: u64,
    total: u64,
    /// 100 x members strictly worse / total ([`rank::Standing::percentile`]).
    percentile: f64,
    period: &'a PeriodInfo,
    /// The member's metadata, when it has some.
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<&'a Meta>,
}

/// `GET /v1/boards/{board}/members/{member}`: the member's live score,
/// ranked exactly as of at most `gateway.rank_staleness_ms` ago
/// ([`crate::ranks`]; 0: as of the request).
pub async fn member(state: &AppState, board: &str, member: &str, query: &Query<'_>) -> Reply {
    let b = state.board(board)?;
    let member = MemberId::new(member)?;
    let (at, period) = live_period(&b, query)?;
    let shard = at.shard_of(&member)?;
    let (score, standing, meta) = match state.ranks.member_from_index(&at, &member) {
        Some(hit) => (hit.score, hit.standing, hit.meta),
        // Equal scores do not share a place here: the member's tie ranks it.
        None if at.ties == Ties::FirstAchiever => {
            let (mut entries, mut standings) =
                rank::placed(state.store.as_ref(), &at, std::slice::from_ref(&member)).await?;
            let (Some(entry), Some(standing)) =
                (entries.pop().flatten(), standings.pop().flatten())
            else {
                return Err(ApiError::unknown_member());
            };
            (entry.score, standing, entry.meta)
        }
        None => {
            let (score, meta) = state.store.score_and_meta(&at, shard, &member).await?;
            let score = score.ok_or_else(ApiError::unknown_member)?;
            let standing = state
                .ranks
                .standing_of_score(state.store.as_ref(), &at, score)
                .await?;
            (score, standing, meta)
        }
    };
    Ok(json_of(&MemberReply {
        member: member.as_str(),
        score,
        rank: standing.rank,
        total: standing.total,
        percentile: standing.percentile(),
        period: &period,
        meta: meta.as_ref(),
    }))
}

#[derive(Serialize)]
struct AroundReply<'a> {
    board: &'a str,
    member: &'a str,
    total: u64,
    period: &'a PeriodInfo,
    entries: Vec<RankedEntry<'a>>,
}

/// `GET /v1/boards/{board}/members/{member}/around`: the window is live
/// and exact; its ranks come from the rank index when one answers (each
/// exact as of at most `gateway.rank_staleness_ms` ago, all from one
/// view), else from a live counts fan-out ([`crate::around`]).
pub async fn around(state: &AppState, board: &str, member: &str, query: &Query<'_>) -> Reply {
    let b = state.board(board)?;
    let radius = query.int("radius", 5, 1..=100)?;
    let member = MemberId::new(member)?;
    let (at, period) = live_period(&b, query)?;
    let around = crate::around::around(state, &at, &member, radius)
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
        period: &period,
        entries,
    }))
}

/// One period held, as `GET .../periods` lists it.
#[derive(Serialize)]
struct HeldPeriod {
    #[serde(flatten)]
    period: PeriodInfo,
    /// Members with a score in it.
    members: u64,
}

#[derive(Serialize)]
struct PeriodsReply<'a> {
    board: &'a str,
    periods: Vec<HeldPeriod>,
}

/// `GET /v1/boards/{board}/periods?kind=daily&limit=30`: the periods the
/// board holds (the current one and the closed ones within retention),
/// newest first, kind by kind (every kind and then the blends when `kind`
/// is absent), at most `limit` in all, each with its member count, live.
pub async fn periods(state: &AppState, board: &str, query: &Query<'_>) -> Reply {
    let b = state.board(board)?;
    let limit = query.int("limit", 30, 1..=100)?;
    let board = &b.board;
    let kinds: Vec<PeriodKind> = match query.text("kind")? {
        None => board.periods.to_vec(),
        Some(text) => {
            let kind = text
                .parse::<PeriodKind>()
                .ok()
                .filter(|k| board.periods.contains(k))
                .ok_or_else(|| {
                    let kinds: Vec<String> = board.periods.iter().map(|k| k.to_string()).collect();
                    ApiError::bad_field(
                        ErrorCode::InvalidParameter,
                        "kind",
                        format!(
                            "kind must be one of the board's periods: {}",
                            kinds.join(", ")
                        ),
                    )
                })?;
            vec![kind]
        }
    };
    let now = now_ms_i64();
    let mut held: Vec<PeriodInfo> = Vec::new();
    // `limit` bounds the whole answer (each listed period costs a count
    // across every shard).
    for kind in kinds {
        let mut period = Some(kind.containing(&board.timezone, now));
        while let Some(p) = period {
            if held.len() == limit || board.expires_at_ms(&p.id).is_some_and(|at| at <= now) {
                break;
            }
            held.push(PeriodInfo::of(&p, now));
            period = p.previous(&board.timezone);
        }
    }
    if query.text("kind")?.is_none() {
        let room = limit.saturating_sub(held.len());
        held.extend(
            board
                .blends
                .iter()
                .take(room)
                .map(|blend| PeriodInfo::blend(&blend.name)),
        );
    }
    let shards = board.all_shards();
    let mut periods = Vec::with_capacity(held.len());
    for period in held {
        let counts = state
            .store
            .counts(&board.at(period.id.clone()), &shards, 0.0)
            .await?;
        let members = counts.iter().map(|c| c.total).sum();
        periods.push(HeldPeriod { period, members });
    }
    Ok(json_of(&PeriodsReply {
        board: board.name.as_str(),
        periods,
    }))
}

/// One board as `GET /v1/boards` lists it.
#[derive(Serialize)]
struct BoardListing<'a> {
    name: &'a str,
    tenant: &'a str,
    periods: Vec<String>,
    blends: Vec<&'a str>,
    timezone: &'a str,
    order: &'static str,
    ties: &'static str,
    top_k: usize,
    shards: u32,
    public_reads: bool,
}

#[derive(Serialize)]
struct BoardsReply<'a> {
    boards: Vec<BoardListing<'a>>,
}

/// `GET /v1/boards`: the boards the caller may read, by name: those of
/// tenant `public`, those with `public_reads`, and those of the caller's
/// own tenant. Another tenant's boards are not listed.
pub fn boards(state: &AppState, caller: Option<&crate::auth::Caller>) -> Reply {
    let registry = state.registry.load();
    let mut visible: Vec<&Arc<BoardState>> = registry
        .boards
        .values()
        .filter(|b| {
            &*b.tenant == standings_config::PUBLIC_TENANT
                || b.public_reads
                || caller.is_some_and(|c| c.tenant == b.tenant)
        })
        .collect();
    visible.sort_by(|a, b| a.board.name.cmp(&b.board.name));
    let boards = visible
        .iter()
        .map(|b| BoardListing {
            name: b.board.name.as_str(),
            tenant: &b.tenant,
            periods: b.board.periods.iter().map(|k| k.to_string()).collect(),
            blends: b.board.blends.iter().map(|x| &*x.name).collect(),
            timezone: b.board.timezone.name(),
            order: match b.board.order {
                standings_core::Order::Desc => "desc",
                standings_core::Order::Asc => "asc",
            },
            ties: b.board.ties.as_str(),
            top_k: b.board.top_k,
            shards: b.board.shards,
            public_reads: b.public_reads,
        })
        .collect();
    Ok(json_of(&BoardsReply { boards }))
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

/// `GET /readyz`: 503 until every board it started with has a snapshot and while the
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
    let registry = state.registry.load();
    // Boards the gateway started with: one created at run time, or added
    // by a reload, loads at the next refresh and must not make a serving
    // gateway unready meanwhile.
    if let Some(b) = registry
        .boards
        .values()
        .filter(|b| !b.runtime && state.started_with.contains(b.board.name.as_str()))
        .find(|b| !b.loaded())
    {
        return Err(ApiError::unavailable(
            ErrorCode::NotReady,
            format!("board {} has no snapshot loaded yet", b.board.name),
        ));
    }
    let now = now_ms();
    let snapshot_age_ms = registry
        .boards
        .values()
        .map(|b| now.saturating_sub(b.refreshed_at_ms.load(Ordering::Relaxed)))
        .max()
        .unwrap_or(0);
    let stale = registry.boards.values().any(|b| b.stale());
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
