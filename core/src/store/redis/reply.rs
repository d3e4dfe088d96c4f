//! Reply decoding: the `Value`s redis-rs answers, turned into scores,
//! counts, entries, write outcomes, audit records, neighbours and the slot
//! map. Anything unexpected is Corrupt, never a panic: a reply this code
//! cannot read is an error for the caller. Scores are parsed with
//! `str::parse::<f64>` from the exact text the scripts and Redis send (see
//! "Scores" in the module doc of [`super`]).

use std::collections::HashMap;

use redis::{RedisError, Value};

use crate::store::{AuditRecord, Neighbours, StoreError, WriteOutcome};
use crate::types::{Entry, MemberId, Op, Order, MAX_SCORE};

pub(super) fn unavailable(e: RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
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

fn parse_member(v: &Value) -> Result<MemberId, StoreError> {
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

/// A `WITHSCORES` reply (`member, score, member, score, ...`) in order.
pub(super) fn parse_entries(v: &Value) -> Result<Vec<Entry>, StoreError> {
    let items = array(v)?;
    if items.len() % 2 != 0 {
        return Err(corrupt("WITHSCORES reply of odd length"));
    }
    items
        .chunks(2)
        .map(|pair| {
            Ok(Entry {
                member: parse_member(&pair[0])?,
                score: parse_score(&pair[1])?,
            })
        })
        .collect()
}

pub(super) fn parse_write(v: &Value) -> Result<WriteOutcome, StoreError> {
    let items = array(v)?;
    let status = items
        .first()
        .map(text)
        .transpose()?
        .ok_or_else(|| corrupt("empty write reply"))?;
    let score = || {
        parse_score(
            items
                .get(1)
                .ok_or_else(|| corrupt("write reply lacks score"))?,
        )
    };
    match status {
        "applied" => Ok(WriteOutcome {
            score: score()?,
            applied: true,
        }),
        "repeat" => Ok(WriteOutcome {
            score: score()?,
            applied: false,
        }),
        "range" => Err(StoreError::OutOfRange),
        other => Err(corrupt(format!("unknown write status {other:?}"))),
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
        op: Op::parse(op).map_err(|_| corrupt(format!("audit op {op:?}")))?,
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
pub(super) fn parse_neighbours(v: &Value, order: Order) -> Result<Neighbours, StoreError> {
    let items = array(v)?;
    let [below, above, card, down, up] = items else {
        return Err(corrupt("neighbours reply is not 5 items"));
    };
    let (below, above, card) = (parse_count(below)?, parse_count(above)?, parse_count(card)?);
    let mut down = parse_entries(down)?;
    down.reverse();
    let up = parse_entries(up)?;
    Ok(match order {
        Order::Desc => Neighbours {
            better: up,
            worse: down,
            ahead: card.saturating_sub(above),
        },
        Order::Asc => Neighbours {
            better: down,
            worse: up,
            ahead: below,
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
    fn parses_write_replies() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let applied = Value::Array(vec![bulk("applied"), bulk("0.30000000000000004")]);
        assert_eq!(
            parse_write(&applied),
            Ok(WriteOutcome {
                score: 0.1 + 0.2,
                applied: true
            })
        );
        let range = Value::Array(vec![bulk("range")]);
        assert_eq!(parse_write(&range), Err(StoreError::OutOfRange));
        assert!(matches!(
            parse_write(&Value::Int(3)),
            Err(StoreError::Corrupt(_))
        ));
    }
}
