//! Calls on lists of a board's members: `POST .../members:lookup` (the
//! exact standings of up to [`MAX_LOOKUP`] members with one fan-out for the
//! whole list, [`rank::standings`]) and `POST .../scores:batch` (up to
//! [`MAX_BATCH`] writes, each atomic and idempotent on its own, sent one
//! pipeline per store node, [`standings_core::Store::apply_many`]).
//!
//! A lookup answers each distinct member once: a member listed twice is
//! ranked (or listed in `not_found`) once, at its first place. A batch
//! answers every write, repeats included, in order. Malformed structure
//! (no list, not a list, empty, too long, an item that is not an object
//! or has an unknown or repeated field) is a 400 for the whole request;
//! a batch write with a bad value (member, score, op, idempotency key) or
//! one the store refuses (idempotency conflict, out of range) gets its
//! own error in `results` and the others are applied.

use std::collections::HashSet;

use bytes::Bytes;
use http::{HeaderMap, Response};
use http_body_util::Full;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use standings_core::rank::{self, Standing};
use standings_core::store::now_ms_i64;
use standings_core::{Board, Entry, MemberId, Meta, MetaInput, Op, Score, StoreError, Ties, Write};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorCode};
use crate::period::{self, PeriodInfo};
use crate::reply::json_of;
use crate::request::{json_object, present, read_body, require_json};
use crate::state::AppState;
use crate::view::{score, BoardState};
use crate::writes::{check_write, request_id, scoped_key, WriteReply};

/// Most members one lookup takes.
pub const MAX_LOOKUP: usize = 100;

/// Most writes one batch takes.
pub const MAX_BATCH: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LookupBody {
    #[serde(default, deserialize_with = "present")]
    members: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    period: Option<Value>,
}

/// One ranked member, the single member answer's fields.
#[derive(Serialize)]
struct Ranked<'a> {
    member: &'a str,
    #[serde(serialize_with = "score")]
    score: f64,
    rank: u64,
    total: u64,
    percentile: f64,
    /// The member's metadata, when it has some.
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<&'a Meta>,
}

#[derive(Serialize)]
struct LookupReply<'a> {
    board: &'a str,
    period: &'a PeriodInfo,
    total: u64,
    entries: Vec<Ranked<'a>>,
    not_found: Vec<&'a str>,
}

/// A list field that must be a non-empty array of at most `max` items.
fn list(v: Option<Value>, field: &'static str, max: usize) -> Result<Vec<Value>, ApiError> {
    let bad = |code, message: String| ApiError::bad_field(code, field, message);
    match v {
        None => Err(bad(ErrorCode::MissingField, format!("{field} is required"))),
        Some(Value::Array(items)) if items.is_empty() => Err(bad(
            ErrorCode::InvalidParameter,
            format!("{field} must hold 1 to {max} items"),
        )),
        Some(Value::Array(items)) if items.len() > max => Err(bad(
            ErrorCode::InvalidParameter,
            format!("at most {max} {field} per request, {} sent", items.len()),
        )),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(bad(
            ErrorCode::InvalidParameter,
            format!("{field} must be an array"),
        )),
    }
}

/// `members[i]` as a member id that can be on `board`.
fn lookup_member(board: &Board, v: &Value, i: usize) -> Result<MemberId, ApiError> {
    let field = || format!("members[{i}]");
    let named = |e: standings_core::InvalidInput| {
        ApiError::bad_field(
            ErrorCode::InvalidMember,
            field(),
            format!("{}: {}", field(), e.message),
        )
    };
    let Value::String(s) = v else {
        return Err(ApiError::bad_field(
            ErrorCode::InvalidMember,
            field(),
            format!("{} must be a string", field()),
        ));
    };
    let member = MemberId::new(s).map_err(named)?;
    board.shard_of(&member).map_err(named)?;
    Ok(member)
}

/// The board addressing `period` (absent: the board's first), and its
/// `period` object.
fn period_of(b: &BoardState, period: Option<Value>) -> Result<(Board, PeriodInfo), ApiError> {
    let text = match period {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            return Err(ApiError::bad_field(
                ErrorCode::InvalidPeriod,
                "period",
                "period must be a string",
            ))
        }
    };
    let now = now_ms_i64();
    let target = period::target(&b.board, &b.slots, text.as_deref(), now)?;
    Ok(period::resolve(&b.board, &b.slots, &target, now))
}

/// `POST /v1/boards/{board}/members:lookup` `{"members": [...], "period"}`:
/// every distinct member's exact standing, best first, and the members
/// without a score apart.
pub async fn lookup<B>(
    state: &AppState,
    board: &str,
    headers: &HeaderMap,
    body: B,
) -> Result<Response<Full<Bytes>>, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let b = state.board(board)?;
    require_json(headers)?;
    let body = read_body(headers, body, state.max_body_bytes).await?;
    let fields: LookupBody = json_object(&body, "members, period")?;
    let items = list(fields.members, "members", MAX_LOOKUP)?;
    let mut seen = HashSet::with_capacity(items.len());
    let mut members = Vec::with_capacity(items.len());
    for (i, v) in items.iter().enumerate() {
        let m = lookup_member(&b.board, v, i)?;
        if seen.insert(m.clone()) {
            members.push(m);
        }
    }
    let (at, period) = period_of(&b, fields.period)?;
    // A members index that holds every one answers the whole lookup;
    // otherwise the scores and metas are read together (one round trip
    // per node) and the scores ranked by the index, the cache or live.
    let (standings, metas): (Vec<Option<Standing>>, Vec<Option<Meta>>) = match state
        .ranks
        .members_from_index(&at, &members)
    {
        Some(hits) => hits.into_iter().map(|h| (Some(h.standing), h.meta)).unzip(),
        // Each member's tie places it among equal scores: its entry,
        // then its position.
        None if at.ties == Ties::FirstAchiever => {
            let (entries, standings) = rank::placed(state.store.as_ref(), &at, &members).await?;
            let metas = entries
                .into_iter()
                .map(|e| e.and_then(|e| e.meta))
                .collect();
            (standings, metas)
        }
        None => {
            let read = state.store.scores_and_metas(&at, &members).await?;
            let (scores, metas): (Vec<Option<f64>>, Vec<Option<Meta>>) = read.into_iter().unzip();
            let standings = state
                .ranks
                .standings_of_scores(state.store.as_ref(), &at, &scores)
                .await?;
            (standings, metas)
        }
    };
    let total = standings
        .iter()
        .flatten()
        .map(|s| s.total)
        .next()
        .unwrap_or(0);
    let mut found: Vec<(&MemberId, Standing, Option<&Meta>)> = Vec::with_capacity(members.len());
    let mut not_found = Vec::new();
    for ((m, s), meta) in members.iter().zip(&standings).zip(&metas) {
        match s {
            Some(s) => found.push((m, *s, meta.as_ref())),
            None => not_found.push(m.as_str()),
        }
    }
    found.sort_by(|(m1, s1, _), (m2, s2, _)| match at.ties {
        // Unique ranks: they are the order.
        Ties::FirstAchiever => s1.rank.cmp(&s2.rank),
        Ties::Shared => {
            let entry = |m: &MemberId, s: &Standing| Entry::stored(m.clone(), s.score);
            b.board.order.cmp_entries(&entry(m1, s1), &entry(m2, s2))
        }
    });
    let entries = found
        .iter()
        .map(|(m, s, meta)| Ranked {
            member: m.as_str(),
            score: s.score,
            rank: s.rank,
            total: s.total,
            percentile: s.percentile(),
            meta: *meta,
        })
        .collect();
    Ok(json_of(&LookupReply {
        board: b.board.name.as_str(),
        period: &period,
        total,
        entries,
        not_found,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    #[serde(default, deserialize_with = "present")]
    writes: Option<Value>,
}

/// One write of a batch, every field optional so a missing one is named.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchWrite {
    #[serde(default, deserialize_with = "present")]
    member: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    score: Option<Value>,
    #[serde(default)]
    op: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    idempotency_key: Option<Value>,
    /// As a single write's `meta`: absent keeps the member's meta.
    #[serde(default, deserialize_with = "standings_core::meta::field")]
    meta: Option<MetaInput>,
}

/// The body read strictly, only to refuse a field repeated inside a write
/// (a `Value` keeps the last one silently).
#[derive(Deserialize)]
struct StrictBatch {
    writes: Vec<StrictWrite>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct StrictWrite {
    member: Option<IgnoredAny>,
    score: Option<IgnoredAny>,
    op: Option<IgnoredAny>,
    idempotency_key: Option<IgnoredAny>,
    /// Read for its repeated keys, which a `Value` would merge.
    meta: Option<MetaInput>,
}

/// `{"error": {code, message, field}}` in a batch's results.
#[derive(Serialize)]
struct ItemError {
    code: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum BatchResult<'a> {
    Done(WriteReply<'a>),
    Failed { error: ItemError },
}

#[derive(Serialize)]
struct BatchReply<'a> {
    results: Vec<BatchResult<'a>>,
}

/// A batch write's error with its field placed in the batch: `score`
/// becomes `writes[3].score` (the header name of a single write's
/// idempotency key becomes the item's field).
fn placed(e: ApiError, i: usize) -> ItemError {
    let at = |f: &str| format!("writes[{i}].{f}");
    let field = match e.field.as_deref() {
        Some("Idempotency-Key") => Some(at("idempotency_key")),
        Some(f) => Some(at(f)),
        None => None,
    };
    let message = match &field {
        Some(f) => format!("{f}: {}", e.message),
        None => e.message.to_string(),
    };
    ItemError {
        code: e.code.as_str(),
        message,
        field,
    }
}

/// A write's `idempotency_key`: 1 to 128 printable ASCII bytes, as the
/// header of a single write.
fn item_key(v: Option<Value>) -> Result<Option<String>, ApiError> {
    let bad = || {
        ApiError::bad_field(
            ErrorCode::InvalidIdempotencyKey,
            "idempotency_key",
            "idempotency_key must be 1 to 128 printable ASCII characters",
        )
    };
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(k)) => {
            let printable = k.bytes().all(|b| (0x20..0x7f).contains(&b));
            if k.is_empty() || k.len() > 128 || !printable {
                return Err(bad());
            }
            Ok(Some(k))
        }
        Some(_) => Err(bad()),
    }
}

/// One batch item as a write for `board`, or its error (bare field names).
fn item_write(
    board: &Board,
    item: BatchWrite,
    caller: Option<&Caller>,
    request_id: &str,
    i: usize,
) -> Result<Write, ApiError> {
    let (member, op, value): (MemberId, Op, Score) =
        check_write(item.member, item.score, item.op, board.default_op)?;
    board.shard_of(&member)?;
    let idempotency_key = item_key(item.idempotency_key)?.map(|k| scoped_key(caller, k));
    let meta = item.meta.map(Meta::from_input).transpose()?;
    Ok(Write {
        member,
        op,
        value,
        idempotency_key,
        request_id: format!("{request_id}/{i}"),
        meta,
    })
}

/// Parses the body into one entry per write: the write, or its error.
fn parse_batch(
    body: &[u8],
    board: &Board,
    caller: Option<&Caller>,
    request_id: &str,
) -> Result<Vec<Result<Write, ItemError>>, ApiError> {
    let fields: BatchBody = json_object(body, "writes")?;
    let items = list(fields.writes, "writes", MAX_BATCH)?;
    let mut parsed = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let field = format!("writes[{i}]");
        if !item.is_object() {
            return Err(ApiError::bad_field(
                ErrorCode::InvalidJson,
                field.clone(),
                format!("{field} must be an object"),
            ));
        }
        let item: BatchWrite = serde_json::from_value(item).map_err(|e| {
            let text = e.to_string();
            let name = text
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split_once('`'))
                .map(|(n, _)| crate::error::short(n));
            match name {
                Some(n) => ApiError::bad_field(
                    ErrorCode::UnknownField,
                    format!("{field}.{n}"),
                    format!(
                        "unknown field {n:?} in {field}; expected member, score, op, idempotency_key, meta"
                    ),
                ),
                None => ApiError::invalid_json(format!("{field}: {text}")).with_field(field.clone()),
            }
        })?;
        parsed.push(item_write(board, item, caller, request_id, i).map_err(|e| placed(e, i)));
    }
    // Only now, so a wrong shape is named above: a field repeated inside
    // a write.
    let strict: StrictBatch = json_object(body, "writes")?;
    for (i, w) in strict.writes.iter().enumerate() {
        if let Some(key) = w.meta.as_ref().and_then(|m| m.duplicate.as_ref()) {
            parsed[i] = Err(placed(
                ApiError::bad_field(
                    ErrorCode::InvalidMeta,
                    "meta",
                    format!("meta repeats the key {:?}", crate::error::short(key)),
                ),
                i,
            ));
        }
    }
    Ok(parsed)
}

/// Whether a store error says the store, not the write, failed.
fn store_failure(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Unavailable(_) | StoreError::OutcomeUnknown(_) | StoreError::Corrupt(_)
    )
}

/// `POST /v1/boards/{board}/scores:batch` `{"writes": [...]}`: every write
/// applied on its own, one result per write in order. When the store
/// failed every write that reached it (and none was refused for itself),
/// the answer is that failure's 503, as for a single write.
pub async fn batch<B>(
    state: &AppState,
    board: &str,
    caller: Option<&Caller>,
    headers: &HeaderMap,
    body: B,
) -> Result<Response<Full<Bytes>>, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let b = state.board(board)?;
    require_json(headers)?;
    let request_id = request_id(state, headers);
    let body = read_body(headers, body, state.max_batch_body_bytes).await?;
    let parsed = parse_batch(&body, &b.board, caller, &request_id)?;
    let writes: Vec<Write> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    let outcomes = state.store.apply_many(&b.board, &writes).await;
    let failed = outcomes
        .iter()
        .filter(|o| o.as_ref().err().is_some_and(store_failure))
        .count();
    if !writes.is_empty() && failed == writes.len() && parsed.iter().all(Result::is_ok) {
        if let Some(Err(e)) = outcomes.into_iter().next() {
            return Err(ApiError::from(e));
        }
        return Err(ApiError::from(StoreError::Corrupt("no outcome".into())));
    }
    let mut answered = writes.iter().zip(&outcomes);
    let mut results = Vec::with_capacity(parsed.len());
    for (i, p) in parsed.iter().enumerate() {
        let failed = |e: &StoreError| BatchResult::Failed {
            error: placed(ApiError::from(e.clone()), i),
        };
        let result = match (p, p.is_ok().then(|| answered.next()).flatten()) {
            (Err(e), _) => BatchResult::Failed {
                error: ItemError {
                    code: e.code,
                    message: e.message.clone(),
                    field: e.field.clone(),
                },
            },
            (Ok(_), Some((w, Ok(outcome)))) => {
                let label = if outcome.applied { "true" } else { "false" };
                metrics::counter!("standings_writes_total", "applied" => label).increment(1);
                BatchResult::Done(WriteReply {
                    member: w.member.as_str(),
                    score: outcome.score,
                    applied: outcome.applied,
                    scores: &outcome.scores,
                })
            }
            (Ok(_), Some((_, Err(e)))) => failed(e),
            (Ok(_), None) => failed(&StoreError::Corrupt("no outcome for a write".into())),
        };
        results.push(result);
    }
    Ok(json_of(&BatchReply { results }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use standings_core::BoardName;

    fn board() -> Board {
        Board::new(BoardName::new("b").unwrap())
    }

    fn fields(body: &str) -> Result<Vec<Option<String>>, Option<String>> {
        parse_batch(body.as_bytes(), &board(), None, "r")
            .map(|items| {
                items
                    .into_iter()
                    .map(|i| i.err().and_then(|e| e.field))
                    .collect()
            })
            .map_err(|e| e.field.map(|f| f.to_string()))
    }

    #[test]
    fn batch_shapes_are_named() {
        assert_eq!(fields(r#"{}"#), Err(Some("writes".into())));
        assert_eq!(fields(r#"{"writes": {}}"#), Err(Some("writes".into())));
        assert_eq!(fields(r#"{"writes": []}"#), Err(Some("writes".into())));
        assert_eq!(fields(r#"{"writes": [1]}"#), Err(Some("writes[0]".into())));
        assert_eq!(
            fields(r#"{"writes": [{"member": "a", "score": 1, "scroe": 2}]}"#),
            Err(Some("writes[0].scroe".into()))
        );
        assert_eq!(
            fields(r#"{"writes": [{"member": "a", "score": 1, "score": 2}]}"#),
            Err(Some("score".into())),
            "a repeated field"
        );
        let many = format!(
            r#"{{"writes": [{}]}}"#,
            vec![r#"{"member":"a","score":1}"#; MAX_BATCH + 1].join(",")
        );
        assert_eq!(fields(&many), Err(Some("writes".into())));
    }

    #[test]
    fn bad_values_fail_their_own_write() {
        let got = fields(
            r#"{"writes": [{"member": "a", "score": 1},
                {"member": "", "score": 1},
                {"member": "a", "score": "x"},
                {"member": "a", "score": 1, "op": "up"},
                {"member": "a", "score": 1, "idempotency_key": ""},
                {"score": 1}]}"#,
        )
        .unwrap();
        assert_eq!(
            got,
            [
                None,
                Some("writes[1].member".into()),
                Some("writes[2].score".into()),
                Some("writes[3].op".into()),
                Some("writes[4].idempotency_key".into()),
                Some("writes[5].member".into()),
            ]
        );
    }
}
