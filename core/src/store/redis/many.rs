//! Calls on lists: the scores of many members, the counts of many probe
//! scores and a batch of writes, each with one round trip per node.
//!
//! The counts are the costly part of a lookup (every shard, every probe),
//! and on a node Redis spends most of a plain command on dispatch, not on
//! the count itself. So [`RedisStore::counts_many_once`] groups the shards
//! by node and sends each node ONE [`COUNTS_SCRIPT`] call with all that
//! node's sets and all the probes (`allow-cross-slot-keys`, Redis >= 7.0);
//! a node whose call fails (a slot moved or migrating, the map stale, the
//! node down) gets its shards counted again with plain commands through
//! [`RedisStore::fan_out`], which redis-rs routes and redirects. Reads
//! change nothing, so a retry is always safe. `docs/benchmarks.md`
//! ("Lookups and batches") has what it saves, measured.

use futures::future::join_all;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, RedisError, Value};

use super::fanout::{slot_of, Call, ShardCalls, SlotCall};
use super::reply::{
    array, corrupt, parse_count, parse_meta, parse_score, parse_write, text, unavailable,
};
use super::scripts::{COUNTS_SCRIPT, ENTRY_SCRIPT, PLACES_SCRIPT};
use super::{is_noscript, score_arg, stored_name_of, RedisStore};
use crate::board::Board;
use crate::keyspace;
use crate::store::{check_shard, ShardCountsMany, StoreError, Write, WriteOutcome};
use crate::types::{Entry, MemberId, Meta, Order};

/// Most writes of a batch sent at once (one pipeline per node): a pipeline
/// of 1000 scripts could outlast the client's response timeout on a busy
/// node, and then every write of it would be `OutcomeUnknown`.
pub(super) const BATCH_CHUNK: usize = 200;

/// Most anchors in one places-script call: each costs a binary search in
/// every shard of the node, so a lookup of 100 members goes in a few calls
/// per node that other clients' commands can run between, not one long
/// one.
const PLACES_PER_CALL: usize = 16;

/// Each member's shard on `board` (the callers placed them already, so a
/// failure here is a bug, reported as corrupt).
fn member_shards(board: &Board, members: &[MemberId]) -> Result<Vec<u32>, StoreError> {
    members
        .iter()
        .map(|m| board.shard_of(m).map_err(|e| corrupt(e.to_string())))
        .collect()
}

impl RedisStore {
    /// [`crate::Store::scores_many`]: one `ZSCORE` per member, pipelined
    /// per node.
    pub(super) async fn scores_many_once(
        &self,
        board: &Board,
        members: &[MemberId],
    ) -> Result<Vec<Option<f64>>, StoreError> {
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let shards = member_shards(board, members)?;
        let build = |i: u32| {
            let key = keyspace::shard_zset(board, shards[i as usize]);
            let member = members[i as usize].as_str();
            let mut cmd = Cmd::with_capacity(3, 6 + key.len() + member.len());
            cmd.arg("ZSCORE").arg(&key).arg(member);
            ShardCalls {
                slot: slot_of(&key),
                calls: vec![Call::plain(cmd)],
            }
        };
        let indexes: Vec<u32> = (0..members.len() as u32).collect();
        let (values, _) = self.fan_out(&indexes, &build).await?;
        values
            .iter()
            .map(|v| match v {
                Value::Nil => Ok(None),
                other => parse_score(other).map(Some),
            })
            .collect()
    }

    /// Each member's entry (no meta) and meta on a `first_achiever` board:
    /// the entry script per member (its tie first, then the score under
    /// its name, and the meta), pipelined per node. What
    /// [`crate::Store::entries_of`] and [`crate::Store::scores_and_metas`]
    /// answer there.
    pub(super) async fn entry_reads_once(
        &self,
        board: &Board,
        members: &[MemberId],
    ) -> Result<Vec<(Option<Entry>, Option<Meta>)>, StoreError> {
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let shards = member_shards(board, members)?;
        let build = |i: u32| {
            let shard = shards[i as usize];
            let keys = [
                keyspace::shard_zset(board, shard),
                keyspace::shard_ties(board, shard),
                keyspace::shard_meta(board, shard),
            ];
            let args = [members[i as usize].as_str().to_string()];
            let call = self.script_call(true, &self.entry_sha, ENTRY_SCRIPT, &keys, &args);
            ShardCalls {
                slot: slot_of(&keys[0]),
                calls: vec![call],
            }
        };
        let indexes: Vec<u32> = (0..members.len() as u32).collect();
        let (values, _) = self.fan_out(&indexes, &build).await?;
        members
            .iter()
            .zip(&values)
            .map(|(m, v)| {
                let [score, tie, meta] = array(v)? else {
                    return Err(corrupt("entry script reply is not 3 items"));
                };
                let meta = match meta {
                    Value::Nil => None,
                    other => Some(parse_meta(text(other)?)?),
                };
                if matches!(score, Value::Nil) || matches!(tie, Value::Nil) {
                    return Ok((None, meta));
                }
                let tie = text(tie)?;
                let tie = tie
                    .parse::<u64>()
                    .map_err(|_| corrupt(format!("tie {tie:?} is not a number")))?;
                let entry = Entry::stored(m.clone(), parse_score(score)?).with_tie(tie);
                Ok((Some(entry), meta))
            })
            .collect()
    }

    /// [`crate::Store::scores_and_metas`]: `ZSCORE` and `HGET` of the
    /// meta per member, pipelined per node (both keys carry the member's
    /// shard tag, so one slot).
    pub(super) async fn scores_and_metas_once(
        &self,
        board: &Board,
        members: &[MemberId],
    ) -> Result<Vec<(Option<f64>, Option<Meta>)>, StoreError> {
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let shards = member_shards(board, members)?;
        let build = |i: u32| {
            let shard = shards[i as usize];
            let zset = keyspace::shard_zset(board, shard);
            let member = members[i as usize].as_str();
            let mut zscore = Cmd::with_capacity(3, 6 + zset.len() + member.len());
            zscore.arg("ZSCORE").arg(&zset).arg(member);
            let meta = keyspace::shard_meta(board, shard);
            let mut hget = Cmd::with_capacity(3, 4 + meta.len() + member.len());
            hget.arg("HGET").arg(&meta).arg(member);
            ShardCalls {
                slot: slot_of(&zset),
                calls: vec![Call::plain(zscore), Call::plain(hget)],
            }
        };
        let indexes: Vec<u32> = (0..members.len() as u32).collect();
        let (values, _) = self.fan_out(&indexes, &build).await?;
        values
            .chunks(2)
            .map(|pair| {
                let [score, meta] = pair else {
                    return Err(corrupt("a member got one reply of two"));
                };
                let score = match score {
                    Value::Nil => None,
                    other => Some(parse_score(other)?),
                };
                let meta = match meta {
                    Value::Nil => None,
                    other => Some(parse_meta(text(other)?)?),
                };
                Ok((score, meta))
            })
            .collect()
    }

    /// [`crate::Store::counts_many`]: one [`COUNTS_SCRIPT`] call per node,
    /// plain commands for the shards of a node whose call failed.
    pub(super) async fn counts_many_once(
        &self,
        board: &Board,
        shards: &[u32],
        scores: &[f64],
    ) -> Result<Vec<ShardCountsMany>, StoreError> {
        let bounds: Vec<String> = scores
            .iter()
            .map(|&x| format!("({}", score_arg(x)))
            .collect();
        let probes = scores.len();
        self.per_node(
            board,
            shards,
            |keys| self.on_node((&self.counts_sha, COUNTS_SCRIPT), keys, probes, &bounds),
            probes,
            |s| counts_calls(board, s, &bounds),
            |values| parse_set_counts(values, board.order, probes),
        )
        .await
    }

    /// [`crate::Store::places_many`]: one [`PLACES_SCRIPT`] call per node,
    /// the neighbours script (no neighbours) per anchor for the shards of
    /// a node whose call failed.
    pub(super) async fn places_many_once(
        &self,
        board: &Board,
        shards: &[u32],
        anchors: &[Entry],
    ) -> Result<Vec<ShardCountsMany>, StoreError> {
        let chunks = anchors
            .chunks(PLACES_PER_CALL)
            .map(|some| self.places_of_chunk(board, shards, some));
        let mut out = vec![ShardCountsMany::default(); shards.len()];
        for counted in join_all(chunks).await {
            for (sum, part) in out.iter_mut().zip(counted?) {
                sum.better.extend(part.better);
                sum.worse.extend(part.worse);
                // Each chunk is its own moment: a live board may have grown.
                sum.total = sum.total.max(part.total);
            }
        }
        Ok(out)
    }

    /// [`RedisStore::places_many_once`] of at most [`PLACES_PER_CALL`]
    /// anchors.
    async fn places_of_chunk(
        &self,
        board: &Board,
        shards: &[u32],
        anchors: &[Entry],
    ) -> Result<Vec<ShardCountsMany>, StoreError> {
        let pairs: Vec<String> = anchors
            .iter()
            .flat_map(|a| [score_arg(a.score), stored_name_of(board, a)])
            .collect();
        let probes = anchors.len();
        self.per_node(
            board,
            shards,
            |keys| self.on_node((&self.places_sha, PLACES_SCRIPT), keys, probes, &pairs),
            probes,
            |s| {
                let calls = anchors
                    .iter()
                    .flat_map(|a| self.anchor_calls(board, s, a, 0, 0).calls)
                    .collect();
                ShardCalls {
                    slot: slot_of(&keyspace::shard_zset(board, s)),
                    calls,
                }
            },
            |values| parse_set_places(values, board.order),
        )
        .await
    }

    /// Counts of many probes over `shards`: one `node_call` per node with
    /// the node's sorted sets (answering `1 + 2 x probes` values per set:
    /// a size, then after and before per probe), and the shards of a node
    /// whose call failed (a slot moved, the map stale, the node down)
    /// through `plain_calls` with [`RedisStore::fan_out`], which redis-rs
    /// routes and redirects, each parsed by `parse_plain`. Reads change
    /// nothing, so a retry is always safe.
    async fn per_node<Fut>(
        &self,
        board: &Board,
        shards: &[u32],
        node_call: impl Fn(Vec<String>) -> Fut,
        probes: usize,
        plain_calls: impl Fn(u32) -> ShardCalls + Sync,
        parse_plain: impl Fn(&[Value]) -> Result<ShardCountsMany, StoreError>,
    ) -> Result<Vec<ShardCountsMany>, StoreError>
    where
        Fut: std::future::Future<Output = Result<Value, StoreError>>,
    {
        for &shard in shards {
            check_shard(board, shard)?;
        }
        if shards.is_empty() {
            return Ok(Vec::new());
        }
        let map = self.slot_map().await;
        // (node, indexes into `shards`); shards of slots the map does not
        // know go straight to the plain path.
        let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
        let mut plain: Vec<usize> = Vec::new();
        for (i, &shard) in shards.iter().enumerate() {
            let slot = slot_of(&keyspace::shard_zset(board, shard));
            match map.master_of(slot).filter(|_| self.counts_script) {
                Some(node) => match groups.iter_mut().find(|(n, _)| *n == node) {
                    Some((_, members)) => members.push(i),
                    None => groups.push((node, vec![i])),
                },
                None => plain.push(i),
            }
        }
        let calls = groups.iter().map(|(_, members)| {
            let keys: Vec<String> = members
                .iter()
                .map(|&i| keyspace::shard_zset(board, shards[i]))
                .collect();
            node_call(keys)
        });
        let answers = join_all(calls).await;
        let mut out = vec![ShardCountsMany::default(); shards.len()];
        for ((_, members), counted) in groups.iter().zip(answers) {
            match counted.and_then(|v| parse_node_counts(&v, members.len(), board.order, probes)) {
                Ok(counts) => {
                    for (&i, c) in members.iter().zip(counts) {
                        out[i] = c;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "a counts script failed on a node; counting its shards one by one");
                    self.slots_stale
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    plain.extend(members);
                }
            }
        }
        if !plain.is_empty() {
            let again: Vec<u32> = plain.iter().map(|&i| shards[i]).collect();
            let counted = self
                .per_shard(board, &again, plain_calls, parse_plain)
                .await?;
            for (&i, c) in plain.iter().zip(counted) {
                out[i] = c;
            }
        }
        Ok(out)
    }

    /// One node's call of a cross-slot counting script over `keys` (its
    /// shards' sorted sets, all on that node) with `count` probes given as
    /// `probes` (the script's probe arguments), routed to the master of
    /// the first one's slot.
    async fn on_node(
        &self,
        (sha, source): (&str, &'static str),
        keys: Vec<String>,
        count: usize,
        probes: &[String],
    ) -> Result<Value, StoreError> {
        let mut args = Vec::with_capacity(1 + probes.len() + keys.len());
        args.push(count.to_string());
        args.extend(probes.iter().cloned());
        args.extend(keys[1..].iter().cloned());
        let call = self.script_call(true, sha, source, &keys[..1], &args);
        let slot = slot_of(&keys[0]);
        self.run_at(&call, slot).await.map_err(unavailable)
    }

    /// A call sent to the master of `slot` (not routed by its keys), and
    /// its `EVAL` form if that node lacks the script.
    async fn run_at(&self, call: &Call, slot: u16) -> Result<Value, RedisError> {
        let route = || {
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
                slot,
                SlotAddr::Master,
            )))
        };
        let mut conn = self.conn.clone();
        match conn.route_command(call.cmd.clone(), route()).await {
            Err(e) if is_noscript(&e) => match call.fallback() {
                Some(fallback) => conn.route_command(fallback, route()).await,
                None => Err(e),
            },
            other => other,
        }
    }

    /// [`crate::Store::apply_many`]: the writes in chunks of
    /// [`BATCH_CHUNK`], one after the other (so writes of one member keep
    /// their order), each chunk under the call bound. A chunk that gets no
    /// answer in time is `OutcomeUnknown` for its writes, and the chunks
    /// after it are not sent (`Unavailable`): a cluster that slow is not
    /// given more.
    pub(super) async fn apply_many_chunked(
        &self,
        board: &Board,
        writes: &[Write],
    ) -> Vec<Result<WriteOutcome, StoreError>> {
        let limit = self.opts.call_bound();
        let mut out = Vec::with_capacity(writes.len());
        let mut stalled = false;
        for chunk in writes.chunks(BATCH_CHUNK) {
            let e = if stalled {
                StoreError::Unavailable(
                    "not sent: an earlier part of the batch got no answer in time".into(),
                )
            } else {
                match tokio::time::timeout(limit, self.apply_many_once(board, chunk)).await {
                    Ok(outcomes) => {
                        out.extend(outcomes);
                        continue;
                    }
                    Err(_) => {
                        stalled = true;
                        StoreError::OutcomeUnknown(format!(
                            "no answer to the batch from Redis Cluster within {limit:?}"
                        ))
                    }
                }
            };
            out.extend(chunk.iter().map(|_| Err(e.clone())));
        }
        out
    }

    /// One chunk of [`RedisStore::apply_many_chunked`]: the write script
    /// once per write, one pipeline per node in the order given
    /// ([`RedisStore::send_ordered`]).
    async fn apply_many_once(
        &self,
        board: &Board,
        writes: &[Write],
    ) -> Vec<Result<WriteOutcome, StoreError>> {
        let mut out: Vec<Result<WriteOutcome, StoreError>> = Vec::with_capacity(writes.len());
        let mut calls: Vec<SlotCall> = Vec::with_capacity(writes.len());
        let mut sent: Vec<usize> = Vec::with_capacity(writes.len());
        for (i, write) in writes.iter().enumerate() {
            match self.write_call(board, write) {
                Ok(call) => {
                    calls.push(call);
                    sent.push(i);
                    out.push(Err(StoreError::Corrupt("not answered".into())));
                }
                Err(e) => out.push(Err(e)),
            }
        }
        if calls.is_empty() {
            return out;
        }
        match self.send_ordered(&calls).await {
            Ok(values) => {
                for (&i, v) in sent.iter().zip(&values) {
                    out[i] = parse_write(v);
                }
            }
            Err(e) => {
                for &i in &sent {
                    out[i] = Err(e.clone());
                }
            }
        }
        out
    }
}

/// The plain form of one shard's [`COUNTS_SCRIPT`] work: `ZCARD`, then per
/// probe the two `ZCOUNT`s, in the script's reply order.
fn counts_calls(board: &Board, shard: u32, bounds: &[String]) -> ShardCalls {
    let key = keyspace::shard_zset(board, shard);
    let mut calls = Vec::with_capacity(1 + 2 * bounds.len());
    let mut zcard = Cmd::with_capacity(2, 5 + key.len());
    zcard.arg("ZCARD").arg(&key);
    calls.push(Call::plain(zcard));
    for bound in bounds {
        for (min, max) in [(bound.as_str(), "+inf"), ("-inf", bound.as_str())] {
            let mut zcount = Cmd::with_capacity(4, 6 + key.len() + min.len() + max.len());
            zcount.arg("ZCOUNT").arg(&key).arg(min).arg(max);
            calls.push(Call::plain(zcount));
        }
    }
    ShardCalls {
        slot: slot_of(&key),
        calls,
    }
}

/// A node's script reply: `sets` runs of `ZCARD` and (above, below) per
/// probe.
fn parse_node_counts(
    v: &Value,
    sets: usize,
    order: Order,
    probes: usize,
) -> Result<Vec<ShardCountsMany>, StoreError> {
    let items = array(v)?;
    let per_set = 1 + 2 * probes;
    if items.len() != sets * per_set {
        return Err(corrupt(format!(
            "counts script answered {} values for {sets} sets of {per_set}",
            items.len()
        )));
    }
    items
        .chunks(per_set)
        .map(|run| parse_set_counts(run, order, probes))
        .collect()
}

/// One shard's neighbours replies, one per anchor (no neighbours asked),
/// read as [`parse_set_counts`] reads a run: before and after each anchor
/// by the board's order, and the shard's size.
fn parse_set_places(values: &[Value], order: Order) -> Result<ShardCountsMany, StoreError> {
    let mut counts = ShardCountsMany::default();
    for v in values {
        let [below, above, size, ..] = array(v)? else {
            return Err(corrupt("neighbours reply is short"));
        };
        let (below, above, size) = (parse_count(below)?, parse_count(above)?, parse_count(size)?);
        let (b, w) = better_worse(order, size.saturating_sub(above), below);
        counts.better.push(b);
        counts.worse.push(w);
        counts.total = size;
    }
    Ok(counts)
}

/// (better, worse) by the board's order from the entries after and before
/// a probe in ascending order.
fn better_worse(order: Order, after: u64, before: u64) -> (u64, u64) {
    match order {
        Order::Desc => (after, before),
        Order::Asc => (before, after),
    }
}

/// One set's `ZCARD` and (above, below) per probe, as better and worse by
/// the board's order.
fn parse_set_counts(
    values: &[Value],
    order: Order,
    probes: usize,
) -> Result<ShardCountsMany, StoreError> {
    if values.len() != 1 + 2 * probes {
        return Err(corrupt("a shard's counts are short"));
    }
    let mut better = Vec::with_capacity(probes);
    let mut worse = Vec::with_capacity(probes);
    for pair in values[1..].chunks(2) {
        let (above, below) = (parse_count(&pair[0])?, parse_count(&pair[1])?);
        let (b, w) = better_worse(order, above, below);
        better.push(b);
        worse.push(w);
    }
    Ok(ShardCountsMany {
        better,
        worse,
        total: parse_count(&values[0])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_counts_become_better_and_worse_by_order() {
        let ints = |xs: &[i64]| Value::Array(xs.iter().map(|&x| Value::Int(x)).collect());
        // Two sets, two probes: card, (above, below), (above, below).
        let reply = ints(&[5, 1, 3, 4, 0, 2, 0, 2, 1, 1]);
        let desc = parse_node_counts(&reply, 2, Order::Desc, 2).unwrap();
        assert_eq!(desc[0].better, [1, 4]);
        assert_eq!(desc[0].worse, [3, 0]);
        assert_eq!((desc[0].total, desc[1].total), (5, 2));
        let asc = parse_node_counts(&reply, 2, Order::Asc, 2).unwrap();
        assert_eq!(asc[1].better, [2, 1]);
        assert_eq!(asc[1].worse, [0, 1]);
        assert!(parse_node_counts(&reply, 3, Order::Desc, 2).is_err());
    }
}
