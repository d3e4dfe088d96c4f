//! Reply decoding: the `Value`s redis-rs answers, turned into scores,
//! counts, entries, write outcomes, audit records, neighbours and the slot
//! map. Anything unexpected is Corrupt, never a panic: a reply this code
//! cannot read is an error for the caller. Scores are parsed with
//! `str::parse::<f64>` from the exact text the scripts and Redis send (see
//! "Scores" in the module doc of [`super`]).

use std::collections::HashMap;
use std::sync::Arc;

use redis::{ErrorKind, RedisError, ServerErrorKind, Value};

use crate::store::{AuditRecord, Neighbours, ShardPage, StoreError, WriteOutcome};
use crate::types::{split_stored_name, Entry, MemberId, Meta, Op, Order, Ties, MAX_SCORE};

pub(super) fn unavailable(e: RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// A write call that failed: [`StoreError::Unavailable`] only when the
/// script certainly did not run (see [`never_ran`]), otherwise
/// [`StoreError::OutcomeUnknown`]. Reads keep [`unavailable`].
pub(super) fn write_failure(e: RedisError) -> StoreError {
    if never_ran(&e) {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::OutcomeUnknown(e.to_string())
    }
}

/// Whether `e` says the command never reached a node, or the node refused
/// it before running it: no connection could be made (refused, no node
/// for the slot, no connection at all), or the server answered one of the
/// errors it gives instead of executing (redirects, cluster down, loading,
/// read-only, no script, out of memory, busy). Anything else, a timeout and
/// a connection dropped or reset after sending above all, may have run.
pub(super) fn never_ran(e: &RedisError) -> bool {
    // Before the dropped test, which counts a refusal as a drop too.
    if e.is_connection_refusal() {
        return true;
    }
    if e.is_timeout() || e.is_connection_dropped() {
        return false;
    }
    match e.kind() {
        // Raised while picking or opening a connection, before sending.
        ErrorKind::ClusterConnectionNotFound
        | ErrorKind::InvalidClientConfig
        | ErrorKind::AuthenticationFailed => true,
        ErrorKind::Server(kind) => matches!(
            kind,
            ServerErrorKind::Moved
                | ServerErrorKind::Ask
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::CrossSlot
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly
                | ServerErrorKind::BusyLoading
                | ServerErrorKind::NoScript
                | ServerErrorKind::NoPerm
        ),
        // The write script's shebang makes Redis check memory before it
        // runs, so OOM is a refusal; BUSY means another script holds the
        // node and this one was not started.
        ErrorKind::Extension => matches!(e.code(), Some("OOM" | "BUSY")),
        _ => false,
    }
}

pub(super) fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

pub(super) fn text(v: &Value) -> Result<&str, StoreError> {
    match v {
        Value::BulkString(b) => std::str::from_utf8(b).map_err(|_| corrupt("reply is not UTF-8")),
        Value::SimpleString(s) => Ok(s),
        other => Err(corrupt(format!("expected text, got {other:?}"))),
    }
}

pub(super) fn parse_score(v: &Value) -> Result<f64, StoreError> {
    let x = match v {
        Value::Double(x) => *x,
        other => {
            let s = text(other)?;
            s.parse::<f64>()
                .map_err(|_| corrupt(format!("score {s:?} is not a number")))?
        }
    };
    if !x.is_finite() || x.abs() > MAX_SCORE {
        return Err(corrupt(format!("score {x} is out of range")));
    }
    Ok(x + 0.0)
}

pub(super) fn parse_count(v: &Value) -> Result<u64, StoreError> {
    match v {
        Value::Nil => Ok(0),
        Value::Int(n) => u64::try_from(*n).map_err(|_| corrupt(format!("negative count {n}"))),
        other => {
            let s = text(other)?;
            s.parse()
                .map_err(|_| corrupt(format!("count {s:?} is not a number")))
        }
    }
}

pub(super) fn parse_member(v: &Value) -> Result<MemberId, StoreError> {
    let s = text(v)?;
    MemberId::new(s).map_err(|e| corrupt(format!("member {s:?}: {e}")))
}

pub(super) fn array(v: &Value) -> Result<&[Value], StoreError> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(&[]),
        other => Err(corrupt(format!("expected an array, got {other:?}"))),
    }
}

/// A sorted set's member name as an entry's member and tie: the name
/// itself on a `shared` board, a [`crate::types::stored_name`] on a
/// `first_achiever` one.
pub(super) fn parse_name(v: &Value, ties: Ties) -> Result<(MemberId, u64), StoreError> {
    match ties {
        Ties::Shared => Ok((parse_member(v)?, 0)),
        Ties::FirstAchiever => {
            let s = text(v)?;
            let (tie, m) = split_stored_name(s)
                .ok_or_else(|| corrupt(format!("{s:?} is not a first_achiever name")))?;
            let member = MemberId::new(m).map_err(|e| corrupt(format!("member {m:?}: {e}")))?;
            Ok((member, tie))
        }
    }
}

/// A `WITHSCORES` reply (`member, score, member, score, ...`) in order,
/// names read as `ties` stores them ([`parse_name`]).
pub(super) fn parse_entries(v: &Value, ties: Ties) -> Result<Vec<Entry>, StoreError> {
    let items = array(v)?;
    if items.len() % 2 != 0 {
        return Err(corrupt("WITHSCORES reply of odd length"));
    }
    items
        .chunks(2)
        .map(|pair| {
            let (member, tie) = parse_name(&pair[0], ties)?;
            Ok(Entry::stored(member, parse_score(&pair[1])?).with_tie(tie))
        })
        .collect()
}

/// A top script reply: `{entries WITHSCORES, metas}` (see
/// [`super::scripts::TOP_SCRIPT`]); `metas` is empty when the shard keeps
/// none, else one per entry.
pub(super) fn parse_top(v: &Value, ties: Ties) -> Result<Vec<Entry>, StoreError> {
    let items = array(v)?;
    let (Some(entries), Some(metas)) = (items.first(), items.get(1)) else {
        return Err(corrupt("top reply is not {entries, metas}"));
    };
    let mut entries = parse_entries(entries, ties)?;
    let metas = parse_metas(metas)?;
    if !metas.is_empty() {
        if metas.len() != entries.len() {
            return Err(corrupt("top reply has metas for other entries"));
        }
        for (e, m) in entries.iter_mut().zip(metas) {
            e.meta = m;
        }
    }
    Ok(entries)
}

/// An `HMGET` of a meta hash: one meta or nil per field.
/// A meta as the store keeps it (already validated when written).
pub(super) fn parse_meta(t: &str) -> Result<Meta, StoreError> {
    Meta::from_stored(t).map_err(|e| corrupt(format!("meta {t:?}: {e}")))
}

pub(super) fn parse_metas(v: &Value) -> Result<Vec<Option<Meta>>, StoreError> {
    array(v)?
        .iter()
        .map(|m| match m {
            Value::Nil => Ok(None),
            other => parse_meta(text(other)?).map(Some),
        })
        .collect()
}

/// A write script reply: `{status, first score, id1, score1, ...}` (see
/// [`super::WRITE_SCRIPT`]).
pub(super) fn parse_write(v: &Value) -> Result<WriteOutcome, StoreError> {
    let items = array(v)?;
    let status = items
        .first()
        .map(text)
        .transpose()?
        .ok_or_else(|| corrupt("empty write reply"))?;
    let applied = match status {
        "applied" => true,
        "repeat" => false,
        _ => return Err(script_refusal(status, items)),
    };
    let score = parse_score(
        items
            .get(1)
            .ok_or_else(|| corrupt("write reply lacks score"))?,
    )?;
    let rest = &items[2..];
    if rest.len() % 2 != 0 {
        return Err(corrupt("write reply has a period id without a score"));
    }
    let scores = rest
        .chunks(2)
        .map(|pair| Ok((Arc::from(text(&pair[0])?), parse_score(&pair[1])?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(WriteOutcome {
        score,
        applied,
        scores,
    })
}

/// A blend script reply: `{'rebuilt', count}` (see [`super::BLEND_SCRIPT`]).
pub(super) fn parse_rebuilt(v: &Value) -> Result<u64, StoreError> {
    let items = array(v)?;
    match items.first().map(text).transpose()? {
        Some("rebuilt") => parse_count(items.get(1).ok_or_else(|| corrupt("no rebuild count"))?),
        Some(status) => Err(script_refusal(status, items)),
        None => Err(corrupt("empty blend reply")),
    }
}

/// The error of a script that refused to run: `{'range'}`, `{'conflict'}`,
/// `{'skew', kind, store ms}` or `{'badpart', blend key, part}`; nothing
/// was written for any of them.
pub(super) fn script_refusal(status: &str, items: &[Value]) -> StoreError {
    let field = |i: usize| items.get(i).and_then(|v| text(v).ok()).unwrap_or("?");
    match status {
        "range" => StoreError::OutOfRange,
        "conflict" => StoreError::IdempotencyConflict,
        "skew" => StoreError::Unavailable(format!(
            "clock skew: the store's clock ({} ms) is outside the {} periods this gateway \
             sent, so the gateway's clock is off by more than a period; nothing was written",
            field(2),
            field(1)
        )),
        "badpart" => corrupt(format!(
            "blend {} has part {} of a kind the board does not write; nothing was written",
            field(1),
            field(2)
        )),
        other => corrupt(format!("unknown script status {other:?}")),
    }
}

/// One stream entry `[id, [field, value, ...]]` as an audit record.
pub(super) fn parse_audit(v: &Value) -> Result<AuditRecord, StoreError> {
    let entry = array(v)?;
    let fields = array(
        entry
            .get(1)
            .ok_or_else(|| corrupt("stream entry without fields"))?,
    )?;
    let mut map: HashMap<&str, &Value> = HashMap::new();
    for pair in fields.chunks(2) {
        if let [name, value] = pair {
            map.insert(text(name)?, value);
        }
    }
    let field = |name: &str| {
        map.get(name)
            .copied()
            .ok_or_else(|| corrupt(format!("audit record without {name}")))
    };
    let op = text(field("op")?)?;
    Ok(AuditRecord {
        member: parse_member(field("member")?)?,
        op: Op::parse_audit(op).map_err(|_| corrupt(format!("audit op {op:?}")))?,
        value: parse_score(field("value")?)?,
        score: parse_score(field("score")?)?,
        idempotency_key: map
            .get("idem")
            .map(|v| text(v).map(String::from))
            .transpose()?,
        request_id: text(field("request_id")?)?.to_string(),
        at_ms: parse_count(field("at_ms")?)?,
    })
}

/// Splits a neighbours script reply into the board's view.
pub(super) fn parse_neighbours(
    v: &Value,
    order: Order,
    ties: Ties,
) -> Result<Neighbours, StoreError> {
    let items = array(v)?;
    let [below, above, card, down, up] = items else {
        return Err(corrupt("neighbours reply is not 5 items"));
    };
    let (below, above, card) = (parse_count(below)?, parse_count(above)?, parse_count(card)?);
    let mut down = parse_entries(down, ties)?;
    down.reverse();
    let up = parse_entries(up, ties)?;
    Ok(match order {
        Order::Desc => Neighbours {
            better: up,
            worse: down,
            ahead: card.saturating_sub(above),
            total: card,
        },
        Order::Asc => Neighbours {
            better: down,
            worse: up,
            ahead: below,
            total: card,
        },
    })
}

/// A neighbours script reply read for a deep page: the entries after the
/// anchor in the board's order (the one side [`super::RedisStore`] asked
/// for) and how many of the shard are not after it.
pub(super) fn parse_page(v: &Value, order: Order, ties: Ties) -> Result<ShardPage, StoreError> {
    let items = array(v)?;
    let [below, above, card, down, up] = items else {
        return Err(corrupt("neighbours reply is not 5 items"));
    };
    let (below, above, card) = (parse_count(below)?, parse_count(above)?, parse_count(card)?);
    Ok(match order {
        Order::Desc => {
            let mut entries = parse_entries(down, ties)?;
            entries.reverse();
            ShardPage {
                entries,
                ahead: card.saturating_sub(below),
            }
        }
        Order::Asc => ShardPage {
            entries: parse_entries(up, ties)?,
            ahead: above,
        },
    })
}

pub(super) fn first(values: &[Value]) -> Result<&Value, StoreError> {
    values.first().ok_or_else(|| corrupt("missing reply"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_failures_are_unavailable_only_when_nothing_ran() {
        use std::io;
        let io_err = |kind: io::ErrorKind| RedisError::from(io::Error::from(kind));
        let unknown = |e: RedisError| matches!(write_failure(e), StoreError::OutcomeUnknown(_));
        let refused = |e: RedisError| matches!(write_failure(e), StoreError::Unavailable(_));
        assert!(unknown(io_err(io::ErrorKind::TimedOut)), "timed out");
        assert!(unknown(io_err(io::ErrorKind::ConnectionReset)), "reset");
        assert!(unknown(io_err(io::ErrorKind::BrokenPipe)), "broken pipe");
        assert!(unknown(io_err(io::ErrorKind::UnexpectedEof)), "eof");
        assert!(unknown(io_err(io::ErrorKind::Other)), "other io");
        assert!(unknown(RedisError::from((
            ErrorKind::Io,
            "connection dropped"
        ))));
        assert!(unknown(RedisError::from((ErrorKind::Parse, "junk"))));
        assert!(refused(io_err(io::ErrorKind::ConnectionRefused)), "refused");
        assert!(refused(RedisError::from((
            ErrorKind::ClusterConnectionNotFound,
            "No connections found"
        ))));
        let server = |line: &str| {
            redis::parse_redis_value(format!("-{line}\r\n").as_bytes())
                .expect("an error reply")
                .extract_error()
                .expect_err("a server error")
        };
        assert!(refused(server("CLUSTERDOWN The cluster is down")));
        assert!(refused(server("MOVED 3999 127.0.0.1:6381")));
        assert!(refused(server("NOSCRIPT No matching script")));
        assert!(refused(server("OOM command not allowed")));
        assert!(refused(server("BUSY Redis is busy running a script")));
        assert!(
            unknown(server("ERR Error running script: WRONGTYPE")),
            "a script that failed half way may have written"
        );
    }

    #[test]
    fn parses_write_replies() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let applied = Value::Array(vec![
            bulk("applied"),
            bulk("0.30000000000000004"),
            bulk("all"),
            bulk("0.30000000000000004"),
            bulk("daily/2026-12-01"),
            bulk("-2"),
        ]);
        assert_eq!(
            parse_write(&applied),
            Ok(WriteOutcome {
                scores: vec![
                    (Arc::from("all"), 0.1 + 0.2),
                    (Arc::from("daily/2026-12-01"), -2.0)
                ],
                score: 0.1 + 0.2,
                applied: true
            })
        );
        let repeat = Value::Array(vec![bulk("repeat"), bulk("5")]);
        assert_eq!(
            parse_write(&repeat),
            Ok(WriteOutcome {
                scores: Vec::new(),
                score: 5.0,
                applied: false
            })
        );
        let odd = Value::Array(vec![bulk("applied"), bulk("5"), bulk("all")]);
        assert!(matches!(parse_write(&odd), Err(StoreError::Corrupt(_))));
        let range = Value::Array(vec![bulk("range")]);
        assert_eq!(parse_write(&range), Err(StoreError::OutOfRange));
        let conflict = Value::Array(vec![bulk("conflict")]);
        assert_eq!(parse_write(&conflict), Err(StoreError::IdempotencyConflict));
        let skew = Value::Array(vec![bulk("skew"), bulk("daily"), bulk("1764547200000")]);
        match parse_write(&skew) {
            Err(StoreError::Unavailable(m)) => {
                assert!(m.contains("clock skew") && m.contains("daily"), "{m}")
            }
            other => panic!("skew is Unavailable: {other:?}"),
        }
        let bad = Value::Array(vec![
            bulk("badpart"),
            bulk("{st:b:0}:z:hot"),
            bulk("weekly*1e0"),
        ]);
        assert!(matches!(parse_write(&bad), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            parse_write(&Value::Int(3)),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn parses_blend_replies() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let rebuilt = Value::Array(vec![bulk("rebuilt"), bulk("2")]);
        assert_eq!(parse_rebuilt(&rebuilt), Ok(2));
        let skew = Value::Array(vec![bulk("skew"), bulk("hourly"), bulk("0")]);
        assert!(matches!(
            parse_rebuilt(&skew),
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            parse_rebuilt(&Value::Array(vec![])),
            Err(StoreError::Corrupt(_))
        ));
    }
}
