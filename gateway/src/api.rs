//! Routing and the endpoint handlers of `api.md`.
//!
//! Handlers return `Result<Response, ApiError>`; [`handle`] is the only
//! place an `ApiError` becomes a response, and the only place requests are
//! timed and counted.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use metrics_exporter_prometheus::PrometheusHandle;
use percent_encoding::percent_decode_str;
use serde::Serialize;
use standings_core::merge::merge_sorted;
use standings_core::store::{now_ms, Neighbours};
use standings_core::{Entry, MemberId, Op, Order, Score, Store, Write};

use crate::error::ApiError;
use crate::limit::RateLimiter;
use crate::telemetry::RouteMetrics;
use crate::view::{score, BoardState, RankedEntry};

type Reply = Result<Response<Full<Bytes>>, ApiError>;

/// Everything a request handler needs; shared by all connections.
pub struct AppState {
    /// Boards by name.
    pub boards: HashMap<String, Arc<BoardState>>,
    /// Where scores live.
    pub store: Arc<dyn Store>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Bound on one request.
    pub request_timeout: Duration,
    /// Source of request ids for the audit log.
    pub request_counter: AtomicU64,
    /// Request counters and latency histograms, registered once.
    pub route_metrics: RouteMetrics,
    /// Per-client write limits; `None` when off.
    pub write_limiter: Option<RateLimiter>,
}

impl AppState {
    fn board(&self, name: &str) -> Result<&Arc<BoardState>, ApiError> {
        self.boards
            .get(name)
            .ok_or_else(|| ApiError::unknown_board(name))
    }
}

/// The endpoint a path names, for dispatch and for metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Scores,
    Top,
    Member,
    Around,
    Static,
    Healthz,
    Readyz,
    Metrics,
    NotFound,
}

impl Route {
    /// Every route, in discriminant order.
    pub const ALL: [Route; 9] = [
        Route::Scores,
        Route::Top,
        Route::Member,
        Route::Around,
        Route::Static,
        Route::Healthz,
        Route::Readyz,
        Route::Metrics,
        Route::NotFound,
    ];

    /// The `route` label of its metrics.
    pub fn label(self) -> &'static str {
        match self {
            Route::Scores => "scores",
            Route::Top => "top",
            Route::Member => "member",
            Route::Around => "around",
            Route::Static => "static",
            Route::Healthz => "healthz",
            Route::Readyz => "readyz",
            Route::Metrics => "metrics",
            Route::NotFound => "not_found",
        }
    }

    fn allow(self) -> &'static str {
        match self {
            Route::Scores => "POST",
            _ => "GET, HEAD",
        }
    }
}

/// Most path segments any route has.
const MAX_SEGMENTS: usize = 6;

/// Splits a raw path into its route and its (still percent-encoded)
/// segments, without allocating: this runs on every request.
fn route(path: &str) -> (Route, [&str; MAX_SEGMENTS]) {
    let mut seg = [""; MAX_SEGMENTS];
    let mut count = 0;
    for part in path.trim_start_matches('/').split('/') {
        if count == MAX_SEGMENTS {
            return (Route::NotFound, seg);
        }
        seg[count] = part;
        count += 1;
    }
    let route = match &seg[..count] {
        ["v1", "boards", _, "scores"] => Route::Scores,
        ["v1", "boards", _, "top"] => Route::Top,
        ["v1", "boards", _, "members", m] if !m.is_empty() => Route::Member,
        ["v1", "boards", _, "members", m, "around"] if !m.is_empty() => Route::Around,
        ["static", _, _] => Route::Static,
        ["healthz"] => Route::Healthz,
        ["readyz"] => Route::Readyz,
        ["metrics"] => Route::Metrics,
        _ => Route::NotFound,
    };
    (route, seg)
}

/// Serves one request: route, check the method, run the handler under the
/// request timeout, map errors, count and time it.
pub async fn handle(
    state: Arc<AppState>,
    peer: IpAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let (route, _) = route(req.uri().path());
    let method_ok = match route {
        Route::Scores => req.method() == Method::POST,
        Route::NotFound => true,
        _ => req.method() == Method::GET || req.method() == Method::HEAD,
    };
    let reply = if !method_ok {
        Err(ApiError::method_not_allowed(route.allow()))
    } else {
        let timeout = state.request_timeout;
        match tokio::time::timeout(timeout, dispatch(&state, route, peer, req)).await {
            Ok(reply) => reply,
            Err(_) => Err(ApiError::unavailable(
                "timeout",
                "the request did not finish in time; nothing is known to be applied, retry with the same Idempotency-Key",
            )),
        }
    };
    let response = reply.unwrap_or_else(ApiError::into_response);
    state
        .route_metrics
        .record(route as usize, response.status(), started.elapsed());
    response
}

async fn dispatch(state: &AppState, route: Route, peer: IpAddr, req: Request<Incoming>) -> Reply {
    if route == Route::Scores {
        if let Some(limiter) = &state.write_limiter {
            limiter
                .take(peer, Instant::now())
                .map_err(ApiError::rate_limited)?;
        }
        // The body is consumed, so the board name is copied out first.
        let board = decode(self::route(req.uri().path()).1[2], "board")?.into_owned();
        return write_score(state, &board, req).await;
    }
    let (_, seg) = self::route(req.uri().path());
    let query = Query(req.uri().query().unwrap_or(""));
    match route {
        Route::Top => {
            query.only(&["limit", "offset"])?;
            top(state, &decode(seg[2], "board")?, &query)
        }
        Route::Member => {
            query.only(&[])?;
            member(state, &decode(seg[2], "board")?, &decode(seg[4], "member")?).await
        }
        Route::Around => {
            query.only(&["radius"])?;
            around(
                state,
                &decode(seg[2], "board")?,
                &decode(seg[4], "member")?,
                &query,
            )
            .await
        }
        Route::Static => static_file(state, &decode(seg[1], "board")?, seg[2], req.headers()),
        Route::Healthz => Ok(json(
            StatusCode::OK,
            Bytes::from_static(b"{\"status\":\"ok\"}"),
        )),
        Route::Readyz => readyz(state).await,
        Route::Metrics => Ok(metrics_text(state)),
        Route::Scores | Route::NotFound => Err(ApiError::not_found()),
    }
}

/// Percent-decodes a path segment (borrowing when it has no escapes);
/// `field` names it in the error.
fn decode<'a>(segment: &'a str, field: &'static str) -> Result<Cow<'a, str>, ApiError> {
    percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| ApiError::bad_field("invalid_path", field, format!("{field} is not UTF-8")))
}

fn json(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn json_of<T: Serialize>(value: &T) -> Response<Full<Bytes>> {
    json(
        StatusCode::OK,
        Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
    )
}

/// The raw query string; parameters are decoded as they are asked for.
struct Query<'a>(&'a str);

impl<'a> Query<'a> {
    /// The decoded `(name, value)` pairs.
    fn pairs(&self) -> impl Iterator<Item = Result<(Cow<'a, str>, Cow<'a, str>), ApiError>> {
        self.0.split('&').filter(|p| !p.is_empty()).map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(k, "query")?, decode(v, "query")?))
        })
    }

    /// Refuses parameters the endpoint does not take (a typo like `limt`
    /// would otherwise silently give the default).
    fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        for pair in self.pairs() {
            let (k, _) = pair?;
            if !allowed.contains(&k.as_ref()) {
                return Err(ApiError::bad_field(
                    "unknown_parameter",
                    k.clone().into_owned(),
                    format!("unknown query parameter {k:?}"),
                ));
            }
        }
        Ok(())
    }

    /// An integer parameter within `range`, or `default` when absent.
    fn int(
        &self,
        name: &'static str,
        default: usize,
        range: std::ops::RangeInclusive<usize>,
    ) -> Result<usize, ApiError> {
        let mut last = None;
        for pair in self.pairs() {
            let (k, v) = pair?;
            if k == name {
                last = Some(v);
            }
        }
        let Some(raw) = last else {
            return Ok(default);
        };
        raw.parse::<usize>()
            .ok()
            .filter(|v| range.contains(v))
            .ok_or_else(|| {
                ApiError::bad_field(
                    "invalid_parameter",
                    name,
                    format!(
                        "{name} must be an integer from {} to {}",
                        range.start(),
                        range.end()
                    ),
                )
            })
    }
}

fn top(state: &AppState, board: &str, query: &Query<'_>) -> Reply {
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
    let age = view.stale.then(|| {
        now_ms().saturating_sub(b.refreshed_at_ms.load(std::sync::atomic::Ordering::Relaxed))
    });
    Ok(json(
        StatusCode::OK,
        view.render(&b.board, offset, limit, age),
    ))
}

fn static_file(state: &AppState, board: &str, file: &str, headers: &HeaderMap) -> Reply {
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
    if let Ok(key) = HeaderValue::from_str(&format!("standings-board-{}", b.board.name)) {
        h.insert("surrogate-key", key.clone());
        h.insert("xkey", key);
    }
    Ok(response)
}

#[derive(Serialize)]
struct WriteReply<'a> {
    member: &'a str,
    #[serde(serialize_with = "score")]
    score: f64,
    applied: bool,
}

async fn write_score(state: &AppState, board: &str, req: Request<Incoming>) -> Reply {
    let b = state.board(board)?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::unsupported_media_type());
    }
    let idempotency_key = idempotency_key(req.headers())?;
    let request_id = request_id(state, req.headers());
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > state.max_body_bytes as u64) {
        return Err(ApiError::too_large(state.max_body_bytes));
    }
    let body = Limited::new(req.into_body(), state.max_body_bytes)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::too_large(state.max_body_bytes)
            } else {
                ApiError::invalid_json("the request body could not be read")
            }
        })?
        .to_bytes();
    let (member, op, value) = parse_write(&body, b.board.default_op)?;
    b.board.shard_of(&member)?;
    let write = Write {
        member,
        op,
        value,
        idempotency_key,
        request_id,
    };
    let outcome = state.store.apply(&b.board, &write).await?;
    metrics::counter!("standings_writes_total", "applied" => if outcome.applied { "true" } else { "false" })
        .increment(1);
    Ok(json_of(&WriteReply {
        member: write.member.as_str(),
        score: outcome.score,
        applied: outcome.applied,
    }))
}

/// Parses `{"member": "...", "score": N, "op": "..."}`, naming the field at
/// fault in every error.
fn parse_write(body: &[u8], default_op: Op) -> Result<(MemberId, Op, Score), ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_json(format!("the body is not valid JSON: {e}")))?;
    let serde_json::Value::Object(fields) = value else {
        return Err(ApiError::invalid_json("the body must be a JSON object"));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "member" | "score" | "op"))
    {
        return Err(ApiError::bad_field(
            "unknown_field",
            unknown.clone(),
            format!("unknown field {unknown:?}; expected member, score, op"),
        ));
    }
    let member = match fields.get("member") {
        Some(serde_json::Value::String(s)) => MemberId::new(s)?,
        Some(_) => {
            return Err(ApiError::bad_field(
                "invalid_member",
                "member",
                "member must be a string",
            ))
        }
        None => {
            return Err(ApiError::bad_field(
                "missing_field",
                "member",
                "member is required",
            ))
        }
    };
    let value = match fields.get("score") {
        Some(serde_json::Value::Number(n)) => {
            let out_of_range = || {
                ApiError::bad_field(
                    "invalid_score",
                    "score",
                    "score must be a finite number within +-2^53 (9007199254740992)",
                )
            };
            // Integers are checked exactly: as an f64, 2^53 + 1 rounds to
            // 2^53 and would pass (and be stored as a different number).
            let limit = 1u64 << 53;
            let beyond = match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => u > limit,
                (None, Some(i)) => i.unsigned_abs() > limit,
                (None, None) => false,
            };
            if beyond {
                return Err(out_of_range());
            }
            Score::new(n.as_f64().ok_or_else(out_of_range)?)?
        }
        Some(_) => {
            return Err(ApiError::bad_field(
                "invalid_score",
                "score",
                "score must be a number",
            ))
        }
        None => {
            return Err(ApiError::bad_field(
                "missing_field",
                "score",
                "score is required",
            ))
        }
    };
    let op = match fields.get("op") {
        Some(serde_json::Value::String(s)) => Op::parse(s)?,
        Some(serde_json::Value::Null) | None => default_op,
        Some(_) => {
            return Err(ApiError::bad_field(
                "invalid_op",
                "op",
                "op must be one of incr, set, best",
            ))
        }
    };
    Ok((member, op, value))
}

/// `Idempotency-Key`: 1 to 128 printable ASCII bytes.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bytes = raw.as_bytes();
    let printable = bytes.iter().all(|b| (0x20..0x7f).contains(b));
    if bytes.is_empty() || bytes.len() > 128 || !printable {
        return Err(ApiError::bad_field(
            "invalid_idempotency_key",
            "Idempotency-Key",
            "Idempotency-Key must be 1 to 128 printable ASCII characters",
        ));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// `X-Request-Id` when the client sent a sane one, else a generated id.
fn request_id(state: &AppState, headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(String::from)
        .unwrap_or_else(|| {
            let n = state.request_counter.fetch_add(1, Ordering::Relaxed);
            format!("gw-{:x}-{n:x}", now_ms())
        })
}

#[derive(Serialize)]
struct MemberReply<'a> {
    member: &'a str,
    #[serde(serialize_with = "score")]
    score: f64,
    rank: u64,
    total: u64,
}

/// Looks up the member's score in its shard.
async fn score_of(state: &AppState, b: &BoardState, member: &MemberId) -> Result<f64, ApiError> {
    let shard = b.board.shard_of(member)?;
    state
        .store
        .score(&b.board, shard, member)
        .await?
        .ok_or_else(ApiError::unknown_member)
}

async fn member(state: &AppState, board: &str, member: &str) -> Reply {
    let b = state.board(board)?;
    let member = MemberId::new(member)?;
    let score = score_of(state, b, &member).await?;
    let counts = state
        .store
        .counts(&b.board, &b.board.all_shards(), score)
        .await?;
    let better: u64 = counts.iter().map(|c| c.better).sum();
    let total: u64 = counts.iter().map(|c| c.total).sum();
    Ok(json_of(&MemberReply {
        member: member.as_str(),
        score,
        rank: better + 1,
        total,
    }))
}

#[derive(Serialize)]
struct AroundReply<'a> {
    board: &'a str,
    member: &'a str,
    total: u64,
    entries: Vec<RankedEntry<'a>>,
}

async fn around(state: &AppState, board: &str, member: &str, query: &Query<'_>) -> Reply {
    let b = state.board(board)?;
    let radius = query.int("radius", 5, 1..=100)?;
    let member = MemberId::new(member)?;
    let score = score_of(state, b, &member).await?;
    let anchor = Entry {
        member: member.clone(),
        score,
    };
    let shards = b.board.all_shards();
    let per_shard = state
        .store
        .neighbours(&b.board, &shards, &anchor, radius)
        .await?;
    let window = window(b.board.order, &per_shard, anchor, radius);
    // Competition ranks: the best entry's rank comes from one more count
    // fan-out; below it, a new score's rank is its 1-based board position.
    let first = &window.entries[0];
    let counts = state.store.counts(&b.board, &shards, first.score).await?;
    let first_rank = 1 + counts.iter().map(|c| c.better).sum::<u64>();
    let total = counts.iter().map(|c| c.total).sum();
    let mut ranks = Vec::with_capacity(window.entries.len());
    for (i, e) in window.entries.iter().enumerate() {
        let rank = if i == 0 {
            first_rank
        } else if window.entries[i - 1].score == e.score {
            ranks[i - 1]
        } else {
            window.start + i as u64 + 1
        };
        ranks.push(rank);
    }
    let entries = window
        .entries
        .iter()
        .zip(ranks)
        .map(|(e, r)| RankedEntry::new(r, e))
        .collect();
    Ok(json_of(&AroundReply {
        board: b.board.name.as_str(),
        member: member.as_str(),
        total,
        entries,
    }))
}

/// The entries around an anchor, best first, and the 0-based board position
/// of the first.
struct Window {
    entries: Vec<Entry>,
    start: u64,
}

/// Merges per-shard neighbours into the exact window around `anchor`.
fn window(order: Order, per_shard: &[Neighbours], anchor: Entry, radius: usize) -> Window {
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
    Window { entries, start }
}

async fn readyz(state: &AppState) -> Reply {
    state.store.ping().await?;
    if let Some(b) = state.boards.values().find(|b| !b.view.load().loaded) {
        return Err(ApiError::unavailable(
            "not_ready",
            format!("board {} has no snapshot loaded yet", b.board.name),
        ));
    }
    Ok(json(
        StatusCode::OK,
        Bytes::from_static(b"{\"status\":\"ready\"}"),
    ))
}

fn metrics_text(state: &AppState) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(state.metrics.render())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/v1/boards/g/top").0, Route::Top);
        assert_eq!(route("/v1/boards/g/scores").0, Route::Scores);
        assert_eq!(route("/v1/boards/g/members/u%3A1").0, Route::Member);
        assert_eq!(route("/v1/boards/g/members/u/around").0, Route::Around);
        assert_eq!(route("/v1/boards/g/members//around").0, Route::NotFound);
        assert_eq!(route("/static/g/top20.json").0, Route::Static);
        assert_eq!(route("/v1/boards/g").0, Route::NotFound);
        assert_eq!(route("/").0, Route::NotFound);
    }

    #[test]
    fn write_bodies() {
        let ok = parse_write(br#"{"member":"u:1","score":5}"#, Op::Incr).unwrap();
        assert_eq!((ok.0.as_str(), ok.1, ok.2.get()), ("u:1", Op::Incr, 5.0));
        let field = |body: &str| parse_write(body.as_bytes(), Op::Incr).unwrap_err().field;
        assert_eq!(
            field(r#"{"member":"u","score":1e300}"#).as_deref(),
            Some("score")
        );
        assert_eq!(
            field(r#"{"member":"u","score":9007199254740993}"#).as_deref(),
            Some("score"),
            "2^53 + 1 rounds to 2^53 as an f64; the integer is checked exactly"
        );
        assert_eq!(
            field(r#"{"member":"u","score":-9007199254740993}"#).as_deref(),
            Some("score")
        );
        assert!(parse_write(br#"{"member":"u","score":-9007199254740992}"#, Op::Incr).is_ok());
        assert_eq!(
            field(r#"{"member":"","score":1}"#).as_deref(),
            Some("member")
        );
        assert_eq!(
            field(r#"{"member":"u","score":"1"}"#).as_deref(),
            Some("score")
        );
        assert_eq!(
            field(r#"{"member":"u","score":1,"op":"x"}"#).as_deref(),
            Some("op")
        );
        assert_eq!(
            field(r#"{"member":"u","score":1,"scroe":1}"#).as_deref(),
            Some("scroe")
        );
        assert_eq!(field(r#"{"score":1}"#).as_deref(), Some("member"));
        assert_eq!(field(r#"[1]"#), None);
        assert_eq!(field(r#"{"member":"u","score":NaN}"#), None, "not JSON");
    }

    #[test]
    fn window_ranks_cover_ties() {
        // Desc board; shard 0 holds a(9) c(7), shard 1 holds b(7) d(5).
        let e = |m: &str, s: f64| Entry::new(MemberId::new(m).unwrap(), Score::new(s).unwrap());
        let per_shard = vec![
            Neighbours {
                better: vec![e("c", 7.0), e("a", 9.0)],
                worse: vec![],
                ahead: 2,
            },
            Neighbours {
                better: vec![],
                worse: vec![e("d", 5.0)],
                ahead: 0,
            },
        ];
        let w = window(Order::Desc, &per_shard, e("b", 7.0), 5);
        let names: Vec<&str> = w.entries.iter().map(|e| e.member.as_str()).collect();
        assert_eq!(names, ["a", "c", "b", "d"]);
        assert_eq!(w.start, 0);
    }
}
