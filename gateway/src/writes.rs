//! The write endpoint: `POST /v1/boards/{board}/scores`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Response};
use http_body_util::Full;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use standings_core::store::now_ms;
use standings_core::{MemberId, Meta, MetaInput, Op, Score, Write};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorCode};
use crate::reply::json_of;
use crate::request::{idempotency_key, json_object, present, read_body, require_json};
use crate::state::AppState;
use crate::view::score;

#[derive(Serialize)]
pub(crate) struct WriteReply<'a> {
    pub(crate) member: &'a str,
    #[serde(serialize_with = "score")]
    pub(crate) score: f64,
    pub(crate) applied: bool,
    /// The member's score in every period the write moved, by period id.
    #[serde(serialize_with = "scores_by_period")]
    pub(crate) scores: &'a [(Arc<str>, f64)],
}

/// `[(id, score)]` as a JSON object in board period order, scores as
/// [`score`] prints them.
fn scores_by_period<S: serde::Serializer>(
    scores: &&[(Arc<str>, f64)],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    struct Score(f64);
    impl Serialize for Score {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            score(&self.0, s)
        }
    }
    let mut map = s.serialize_map(Some(scores.len()))?;
    for (id, value) in scores.iter() {
        map.serialize_entry(&**id, &Score(*value))?;
    }
    map.end()
}

/// The idempotency key as stored: a key sent with an API key is scoped to
/// that API key (its tenant and id, then a byte no client key can hold,
/// then the key),
/// so two API keys that happen to send the same key never claim each
/// other's writes; an anonymous write keeps the key as sent.
pub fn scoped_key(caller: Option<&Caller>, key: String) -> String {
    match caller {
        Some(c) => format!("{}/{}\u{1}{key}", c.tenant, c.key_id),
        None => key,
    }
}

/// Validates and applies one score write.
pub async fn write_score<B>(
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
    let idempotency_key = idempotency_key(headers)?.map(|key| scoped_key(caller, key));
    let request_id = request_id(state, headers);
    let body = read_body(headers, body, state.max_body_bytes).await?;
    let (member, op, value, meta) = parse_write(&body, b.board.default_op)?;
    b.board.shard_of(&member)?;
    let write = Write {
        member,
        op,
        value,
        idempotency_key,
        request_id,
        meta,
    };
    let outcome = state.store.apply(&b.board, &write).await?;
    metrics::counter!("standings_writes_total", "applied" => if outcome.applied { "true" } else { "false" })
        .increment(1);
    Ok(json_of(&WriteReply {
        member: write.member.as_str(),
        score: outcome.score,
        applied: outcome.applied,
        scores: &outcome.scores,
    }))
}

/// `{"member", "score", "op", "meta"}`, every field optional here so that a
/// missing one is named; `null` is kept apart from absent.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteBody {
    #[serde(default, deserialize_with = "present")]
    member: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    score: Option<Value>,
    #[serde(default)]
    op: Option<Value>,
    /// Absent keeps the member's meta; anything but an object (`null`
    /// included) is refused by [`Meta::from_input`].
    #[serde(default, deserialize_with = "standings_core::meta::field")]
    meta: Option<MetaInput>,
}

/// Parses `{"member": "...", "score": N, "op": "...", "meta": {...}}`,
/// naming the field at fault in every error.
fn parse_write(
    body: &[u8],
    default_op: Op,
) -> Result<(MemberId, Op, Score, Option<Meta>), ApiError> {
    let fields: WriteBody = json_object(body, "member, score, op, meta")?;
    let meta = fields.meta.map(Meta::from_input).transpose()?;
    let (member, op, value) = check_write(fields.member, fields.score, fields.op, default_op)?;
    Ok((member, op, value, meta))
}

/// Checks a write's `member`, `score` and `op` (absent: `None`; `null`:
/// `Some(Null)`), naming the bare field at fault; a batch prefixes it
/// with the write's place (`writes[3].score`).
pub(crate) fn check_write(
    member: Option<Value>,
    score: Option<Value>,
    op: Option<Value>,
    default_op: Op,
) -> Result<(MemberId, Op, Score), ApiError> {
    let fields = WriteBody {
        member,
        score,
        op,
        meta: None,
    };
    let missing = |field: &'static str| {
        ApiError::bad_field(
            ErrorCode::MissingField,
            field,
            format!("{field} is required"),
        )
    };
    let member = match fields.member.ok_or_else(|| missing("member"))? {
        Value::String(s) => MemberId::new(&s)?,
        _ => {
            return Err(ApiError::bad_field(
                ErrorCode::InvalidMember,
                "member",
                "member must be a string",
            ))
        }
    };
    let value = match fields.score.ok_or_else(|| missing("score"))? {
        Value::Number(n) => exact_score(&n)?,
        _ => {
            return Err(ApiError::bad_field(
                ErrorCode::InvalidScore,
                "score",
                "score must be a number",
            ))
        }
    };
    let op = match fields.op {
        Some(Value::String(s)) => Op::parse(&s)?,
        Some(Value::Null) | None => default_op,
        Some(_) => {
            return Err(ApiError::bad_field(
                ErrorCode::InvalidOp,
                "op",
                "op must be one of incr, set, best",
            ))
        }
    };
    Ok((member, op, value))
}

/// A JSON number as a score. Integers are checked exactly: as an f64,
/// 2^53 + 1 rounds to 2^53 and would pass (and be stored as a different
/// number).
fn exact_score(n: &serde_json::Number) -> Result<Score, ApiError> {
    let out_of_range = || {
        ApiError::bad_field(
            ErrorCode::InvalidScore,
            "score",
            "score must be a finite number within +-2^53 (9007199254740992)",
        )
    };
    let limit = 1u64 << 53;
    let beyond = match (n.as_u64(), n.as_i64()) {
        (Some(u), _) => u > limit,
        (None, Some(i)) => i.unsigned_abs() > limit,
        (None, None) => false,
    };
    if beyond {
        return Err(out_of_range());
    }
    Ok(Score::new(n.as_f64().ok_or_else(out_of_range)?)?)
}

/// `X-Request-Id` when the client sent a sane one, else a generated id.
pub(crate) fn request_id(state: &AppState, headers: &HeaderMap) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_must_be_a_small_object() {
        let parse = |meta: &str| {
            let body = format!(r#"{{"member":"u","score":1,"meta":{meta}}}"#);
            parse_write(body.as_bytes(), Op::Incr)
        };
        let ok = parse(r#"{"b":[1,2], "a":"x"}"#).unwrap();
        assert_eq!(ok.3.unwrap().as_str(), r#"{"a":"x","b":[1,2]}"#);
        let absent = parse_write(br#"{"member":"u","score":1}"#, Op::Incr).unwrap();
        assert_eq!(absent.3, None, "absent keeps the member's meta");
        let at_limit = format!(r#"{{"k":"{}"}}"#, "x".repeat(504));
        assert!(parse(&at_limit).is_ok(), "512 bytes");
        let over = format!(r#"{{"k":"{}"}}"#, "x".repeat(505));
        for bad in [
            over.as_str(),
            "[1]",
            r#""s""#,
            "1",
            "null",
            "true",
            r#"{"a":1,"a":2}"#,
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(
                (e.code, e.field.as_deref()),
                (ErrorCode::InvalidMeta, Some("meta")),
                "{bad}"
            );
        }
    }

    #[test]
    fn write_bodies() {
        let (_, _, exact, _) =
            parse_write(br#"{"member":"u","score":3.8499999999999996}"#, Op::Incr).unwrap();
        assert_eq!(
            exact.get().to_bits(),
            3.849_999_999_999_999_6_f64.to_bits(),
            "a score is read exactly (serde_json's float_roundtrip), not to within an ulp"
        );
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
    fn null_is_a_wrong_type_not_a_missing_field() {
        let err = |body: &str| parse_write(body.as_bytes(), Op::Incr).unwrap_err().code;
        assert_eq!(
            err(r#"{"member":null,"score":1}"#),
            ErrorCode::InvalidMember
        );
        assert_eq!(
            err(r#"{"member":"u","score":null}"#),
            ErrorCode::InvalidScore
        );
        let (_, op, _, _) = parse_write(br#"{"member":"u","score":1,"op":null}"#, Op::Set).unwrap();
        assert_eq!(op, Op::Set, "a null op is the board's default");
        assert_eq!(
            err(r#"["u", 1]"#),
            ErrorCode::InvalidJson,
            "an array is not read by position"
        );
    }
}
