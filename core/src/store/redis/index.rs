//! The rank index's two reads on the cluster ([`INDEX_SCAN_SCRIPT`],
//! [`INDEX_TAIL_SCRIPT`]): one script call per shard, the calls of one
//! node in one pipeline, every node at once (the fan-out of
//! [`super::fanout`]).

use std::sync::Arc;

use redis::Value;

use super::fanout::{slot_of, ShardCalls};
use super::reply::{
    array, corrupt, first, parse_count, parse_member, parse_meta, parse_score, text,
};
use super::scripts::{INDEX_SCAN_SCRIPT, INDEX_TAIL_SCRIPT};
use super::RedisStore;
use crate::board::Board;
use crate::keyspace;
use crate::store::index::{parse_moves, IndexPos, IndexRecord, IndexScan, IndexTail};
use crate::store::StoreError;

/// Most records one tail call answers per shard.
const MAX_TAIL: usize = 10_000;

impl RedisStore {
    pub(super) async fn index_scan_once(
        &self,
        board: &Board,
        shards: &[u32],
        periods: &[Arc<str>],
        members: bool,
    ) -> Result<Vec<IndexScan>, StoreError> {
        let mode = if members { "members" } else { "runs" };
        let build = |shard: u32| {
            let stream = keyspace::shard_audit(board, shard);
            let mut sets: Vec<String> = vec![mode.into(), keyspace::shard_meta(board, shard)];
            sets.extend(
                periods
                    .iter()
                    .map(|p| keyspace::shard_zset(&board.at(p.clone()), shard)),
            );
            ShardCalls {
                slot: slot_of(&stream),
                calls: vec![self.script_call(
                    true,
                    &self.index_scan_sha,
                    INDEX_SCAN_SCRIPT,
                    std::slice::from_ref(&stream),
                    &sets,
                )],
            }
        };
        self.per_shard(board, shards, build, |values| {
            parse_scan(first(values)?, periods.len(), members)
        })
        .await
    }

    pub(super) async fn index_tail_once(
        &self,
        board: &Board,
        shards: &[u32],
        from: &[IndexPos],
        n: usize,
    ) -> Result<Vec<IndexTail>, StoreError> {
        if from.len() != shards.len() {
            return Err(corrupt("index_tail: one position per shard"));
        }
        let at: std::collections::HashMap<u32, &IndexPos> =
            shards.iter().copied().zip(from.iter()).collect();
        let n = n.clamp(1, MAX_TAIL);
        let build = |shard: u32| {
            let stream = keyspace::shard_audit(board, shard);
            let pos = at[&shard];
            let args = [pos.id.clone(), pos.added.to_string(), n.to_string()];
            ShardCalls {
                slot: slot_of(&stream),
                calls: vec![self.script_call(
                    true,
                    &self.index_tail_sha,
                    INDEX_TAIL_SCRIPT,
                    std::slice::from_ref(&stream),
                    &args,
                )],
            }
        };
        let tails = self
            .per_shard(board, shards, build, |values| parse_tail(first(values)?))
            .await?;
        // Positions move by the records read: `added` counts them.
        Ok(tails
            .into_iter()
            .zip(from)
            .map(|(tail, pos)| match tail {
                Tail::Gap => IndexTail::Gap,
                Tail::Records(records, last) => {
                    let pos = match last {
                        Some(id) => IndexPos {
                            id,
                            added: pos.added + records.len() as u64,
                        },
                        None => pos.clone(),
                    };
                    IndexTail::Records { records, pos }
                }
            })
            .collect())
    }
}

/// A tail as one shard answered it: the records and the last id.
enum Tail {
    Records(Vec<IndexRecord>, Option<String>),
    Gap,
}

fn status(items: &[Value]) -> Result<&str, StoreError> {
    let s = text(items.first().ok_or_else(|| corrupt("empty index reply"))?)?;
    if s == "old" {
        return Err(StoreError::Unavailable(
            "the rank index needs Redis 7.0 or later (XINFO STREAM entries-added)".into(),
        ));
    }
    Ok(s)
}

fn parse_scan(v: &Value, periods: usize, members: bool) -> Result<IndexScan, StoreError> {
    let items = array(v)?;
    if status(items)? != "ok" || items.len() != 5 + periods {
        return Err(corrupt("index scan reply of the wrong shape"));
    }
    let at_ms: i64 = text(&items[1])?
        .parse()
        .map_err(|_| corrupt("index scan: store time is not a number"))?;
    let pos = IndexPos {
        id: text(&items[2])?.to_string(),
        added: parse_count(&items[3])?,
    };
    let sets = &items[4..4 + periods];
    let mut scan = IndexScan {
        pos,
        at_ms,
        ..IndexScan::default()
    };
    if !members {
        scan.counts = sets
            .iter()
            .map(|runs| {
                array(runs)?
                    .chunks(2)
                    .map(|pair| match pair {
                        [score, count] => Ok((parse_score(score)?, parse_count(count)?)),
                        _ => Err(corrupt("index scan: odd run list")),
                    })
                    .collect()
            })
            .collect::<Result<_, StoreError>>()?;
        return Ok(scan);
    }
    for set in sets {
        let flat = array(set)?;
        let mut list = Vec::with_capacity(flat.len() / 2);
        let mut runs: Vec<(f64, u64)> = Vec::new();
        for pair in flat.chunks(2) {
            let [member, score] = pair else {
                return Err(corrupt("index scan: odd member list"));
            };
            let score = parse_score(score)?;
            list.push((parse_member(member)?, score));
            // In score order: equal scores are adjacent.
            match runs.last_mut() {
                Some((s, n)) if *s == score => *n += 1,
                _ => runs.push((score, 1)),
            }
        }
        scan.members.push(list);
        scan.counts.push(runs);
    }
    for pair in array(&items[4 + periods])?.chunks(2) {
        let [member, meta] = pair else {
            return Err(corrupt("index scan: odd meta list"));
        };
        scan.metas
            .push((parse_member(member)?, parse_meta(text(meta)?)?));
    }
    Ok(scan)
}

fn parse_tail(v: &Value) -> Result<Tail, StoreError> {
    let items = array(v)?;
    match status(items)? {
        "gap" => return Ok(Tail::Gap),
        "ok" => {}
        other => return Err(corrupt(format!("index tail answered {other:?}"))),
    }
    let mut records = Vec::with_capacity(items.len() / 5);
    let mut last = None;
    for record in items[1..].chunks(5) {
        let [id, member, op, ix, meta] = record else {
            return Err(corrupt("index tail: short record"));
        };
        let Some(moves) = parse_moves(text(ix)?) else {
            // A record without moves: what it did is not known here.
            return Ok(Tail::Gap);
        };
        let meta = match text(meta)? {
            "" => None,
            m => Some(parse_meta(m)?),
        };
        records.push(IndexRecord {
            member: parse_member(member)?,
            removed: text(op)? == "remove",
            moves,
            meta,
        });
        last = Some(text(id)?.to_string());
    }
    Ok(Tail::Records(records, last))
}
