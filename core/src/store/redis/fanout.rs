//! The per-master fan-out of reads over many shards: which master owns
//! which slot ([`SlotMap`], from `CLUSTER SLOTS`), the commands of one shard
//! ([`ShardCalls`], [`Call`]), and [`RedisStore::fan_out`], which sends one
//! pipeline per master, all masters at once, and falls back to single
//! commands when a pipeline fails. Grouping per master turns a read over
//! 100 shards into one round trip per node instead of one per shard; the
//! slot map only groups, it never decides correctness, since redis-rs
//! routes and redirects every single command itself.
//!
//! Writes that must keep their order per shard (a batch of events, the
//! consumer's follow-up) go through [`RedisStore::send_ordered`] instead:
//! one pipeline per master too, but calls that failed are re-sent one at
//! a time in their order, and only when they certainly did not run.
//!
//! Also Redis Cluster's key-to-slot function ([`slot_of`]), which the
//! grouping needs before any command is sent.

use std::sync::atomic::Ordering as AtomicOrdering;

use futures::future::join_all;
use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, RedisError, Value};

use super::reply::{array, corrupt, never_ran, parse_count, text, unavailable, write_failure};
use super::RedisStore;
use crate::store::StoreError;

/// Redis Cluster's slot count.
const SLOTS: u16 = 16_384;

/// Which master serves which slots, as `CLUSTER SLOTS` last said; only used
/// to group fan-out commands per node, never for correctness.
#[derive(Debug, Default)]
pub(super) struct SlotMap {
    /// (first slot, last slot, master `host:port`), any order.
    pub(super) ranges: Vec<(u16, u16, String)>,
    /// How many distinct masters `ranges` names: sizes the pipelines.
    pub(super) masters: usize,
}

impl SlotMap {
    pub(super) fn master_of(&self, slot: u16) -> Option<&str> {
        self.ranges
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&slot))
            .map(|(_, _, addr)| addr.as_str())
    }
}

/// One command of a fan-out or a write. A script call is sent by SHA; its
/// `EVAL` form, sent when a node answers `NOSCRIPT`, is built only then
/// ([`Call::fallback`]), so no request copies a script's source.
pub(super) struct Call {
    /// The command as first sent (`EVALSHA`/`EVALSHA_RO` for scripts).
    pub(super) cmd: Cmd,
    /// For a script call: the verb (`EVAL`/`EVAL_RO`) and the source of its
    /// fallback form.
    pub(super) script: Option<(&'static str, &'static str)>,
}

impl Call {
    pub(super) fn plain(cmd: Cmd) -> Self {
        Self { cmd, script: None }
    }

    /// The same call with the script's source in place of its SHA, for a
    /// node without the script; `None` for plain commands.
    pub(super) fn fallback(&self) -> Option<Cmd> {
        let (verb, source) = self.script?;
        let mut cmd = redis::cmd(verb);
        cmd.arg(source);
        // Skip the verb and the SHA; keep the key count, keys and args.
        for arg in self.cmd.args_iter().skip(2) {
            if let redis::Arg::Simple(bytes) = arg {
                cmd.arg(bytes);
            }
        }
        Some(cmd)
    }
}

/// The commands of one shard in a fan-out and the slot they go to.
pub(super) struct ShardCalls {
    /// The shard's slot: every key of the shard shares its hash tag.
    pub(super) slot: u16,
    /// Its commands, answered in order.
    pub(super) calls: Vec<Call>,
}

/// Builds a shard's calls; called once per shard per fan-out, and again
/// only for the calls a retry needs.
pub(super) type BuildCalls<'a> = dyn Fn(u32) -> ShardCalls + Sync + 'a;

/// The shards of one fan-out that go to one master, and their pipeline.
struct Group<'m> {
    /// The master that serves them; `None` for a slot the map does not
    /// know, which gets a group of its own (redis-rs routes it).
    node: Option<&'m str>,
    /// The first member's slot: the pipeline is routed to its master.
    slot: u16,
    /// Indexes of the member shards, in the order of their calls in `pipe`.
    members: Vec<usize>,
    /// Every member's calls, moved in (not cloned).
    pipe: redis::Pipeline,
}

impl RedisStore {
    /// Sends every shard's calls, one pipeline per master, all masters at
    /// once. Answers every reply in shard order, flattened, with the
    /// offsets where each shard's replies start (and one past the last).
    ///
    /// The commands move into the pipelines: a request that fans out over
    /// 100 shards allocates no copy of them. The rare retry (an error reply,
    /// a pipeline that failed) rebuilds what it needs with `build`.
    pub(super) async fn fan_out(
        &self,
        shards: &[u32],
        build: &BuildCalls<'_>,
    ) -> Result<(Vec<Value>, Vec<usize>), StoreError> {
        let map = self.slot_map().await;
        let mut starts = Vec::with_capacity(shards.len() + 1);
        starts.push(0);
        let mut groups: Vec<Group<'_>> = Vec::new();
        for (i, &shard) in shards.iter().enumerate() {
            let built = build(shard);
            starts.push(starts[i] + built.calls.len());
            let node = map.master_of(built.slot);
            let at = groups
                .iter()
                .position(|g| g.node == node && (node.is_some() || g.slot == built.slot))
                .unwrap_or_else(|| {
                    groups.push(Group {
                        node,
                        slot: built.slot,
                        members: Vec::new(),
                        pipe: redis::Pipeline::with_capacity(
                            built.calls.len() * shards.len().div_ceil(map.masters.max(1)),
                        ),
                    });
                    groups.len() - 1
                });
            let group = &mut groups[at];
            group.members.push(i);
            for call in built.calls {
                group.pipe.add_command(call.cmd);
            }
        }
        let sends = groups
            .into_iter()
            .map(|group| self.send_group(shards, &starts, group, build));
        let mut out = vec![Value::Nil; starts[shards.len()]];
        for sent in join_all(sends).await {
            let (members, values) = sent?;
            let mut values = values.into_iter();
            for i in members {
                for slot in &mut out[starts[i]..starts[i + 1]] {
                    *slot = values
                        .next()
                        .ok_or_else(|| corrupt("a shard got no reply"))?;
                }
            }
        }
        Ok((out, starts))
    }

    /// One master's pipeline. Error replies (`NOSCRIPT`, a slot that moved
    /// since) are retried one by one; when the pipeline itself fails (stale
    /// grouping, node down) every call is sent again alone, routed and
    /// redirected by redis-rs. Answers the members and their replies.
    async fn send_group(
        &self,
        shards: &[u32],
        starts: &[usize],
        group: Group<'_>,
        build: &BuildCalls<'_>,
    ) -> Result<(Vec<usize>, Vec<Value>), StoreError> {
        let Group {
            slot,
            members,
            pipe,
            ..
        } = group;
        let count: usize = members.iter().map(|&i| starts[i + 1] - starts[i]).sum();
        let route = SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master));
        let values = match self
            .conn
            .clone()
            .route_pipeline(pipe, 0, count, route)
            .await
        {
            Ok(mut values) if values.len() == count => {
                let failed: Vec<usize> = values
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| matches!(v, Value::ServerError(_)))
                    .map(|(at, _)| at)
                    .collect();
                if !failed.is_empty() {
                    let calls = calls_at(shards, starts, &members, &failed, build);
                    let retried = join_all(calls.iter().map(|call| self.run(call))).await;
                    for (at, reply) in failed.into_iter().zip(retried) {
                        values[at] = reply.map_err(unavailable)?;
                    }
                }
                values
            }
            Ok(_) | Err(_) => {
                self.slots_stale.store(true, AtomicOrdering::Relaxed);
                let calls: Vec<Call> = members
                    .iter()
                    .flat_map(|&i| build(shards[i]).calls)
                    .collect();
                join_all(calls.iter().map(|call| self.run(call)))
                    .await
                    .into_iter()
                    .collect::<Result<Vec<Value>, RedisError>>()
                    .map_err(unavailable)?
            }
        };
        Ok((members, values))
    }
}

/// One call of [`RedisStore::send_ordered`] and the slot its keys are in.
pub(super) struct SlotCall {
    /// Every key of the call is in this slot.
    pub(super) slot: u16,
    /// The call.
    pub(super) call: Call,
}

impl RedisStore {
    /// Sends write calls, one pipeline per master, all masters at once,
    /// each master's calls in the order given (a node runs a pipeline in
    /// order, so calls of one shard apply in order). Answers every reply in
    /// call order.
    ///
    /// Unlike [`RedisStore::fan_out`], nothing is re-sent that may have
    /// run: a pipeline that failed after it may have reached its node is
    /// [`StoreError::OutcomeUnknown`] (the caller retries, and the calls'
    /// own dedup records make the retry a repeat); one refused before
    /// sending, and error replies that say the call did not run
    /// (`NOSCRIPT`, `MOVED`, `TRYAGAIN`, ...), are re-sent one by one in
    /// their order, routed and redirected by redis-rs.
    pub(super) async fn send_ordered(&self, calls: &[SlotCall]) -> Result<Vec<Value>, StoreError> {
        let map = self.slot_map().await;
        // (node, first slot, call indexes), in order of first appearance.
        let mut groups: Vec<(Option<&str>, u16, Vec<usize>)> = Vec::new();
        for (i, c) in calls.iter().enumerate() {
            let node = map.master_of(c.slot);
            match groups
                .iter_mut()
                .find(|(n, slot, _)| *n == node && (node.is_some() || *slot == c.slot))
            {
                Some((_, _, members)) => members.push(i),
                None => groups.push((node, c.slot, vec![i])),
            }
        }
        let sends = groups
            .iter()
            .map(|(_, slot, members)| self.send_ordered_group(calls, *slot, members));
        let mut out = vec![Value::Nil; calls.len()];
        for (members, sent) in groups.iter().map(|g| &g.2).zip(join_all(sends).await) {
            for (&i, value) in members.iter().zip(sent?) {
                out[i] = value;
            }
        }
        Ok(out)
    }

    /// One master's calls of [`RedisStore::send_ordered`], in order.
    async fn send_ordered_group(
        &self,
        calls: &[SlotCall],
        slot: u16,
        members: &[usize],
    ) -> Result<Vec<Value>, StoreError> {
        let mut pipe = redis::Pipeline::with_capacity(members.len());
        for &i in members {
            pipe.add_command(calls[i].call.cmd.clone());
        }
        let route = SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master));
        let mut values = match self
            .conn
            .clone()
            .route_pipeline(pipe, 0, members.len(), route)
            .await
        {
            Ok(values) if values.len() == members.len() => values,
            Ok(values) => {
                return Err(StoreError::OutcomeUnknown(format!(
                    "a pipeline of {} writes got {} replies",
                    members.len(),
                    values.len()
                )))
            }
            Err(e) if never_ran(&e) => {
                // Refused before sending (stale grouping, node gone): each
                // call alone, in order.
                self.slots_stale.store(true, AtomicOrdering::Relaxed);
                let mut out = Vec::with_capacity(members.len());
                for &i in members {
                    out.push(self.run(&calls[i].call).await.map_err(write_failure)?);
                }
                return Ok(out);
            }
            Err(e) => return Err(write_failure(e)),
        };
        for (at, &i) in members.iter().enumerate() {
            let Value::ServerError(e) = &values[at] else {
                continue;
            };
            let e = RedisError::from(e.clone());
            if !never_ran(&e) {
                return Err(write_failure(e));
            }
            values[at] = self.run(&calls[i].call).await.map_err(write_failure)?;
        }
        Ok(values)
    }
}

/// The calls at positions `at` of a group's pipeline (its members' calls in
/// order), rebuilt for a retry.
fn calls_at(
    shards: &[u32],
    starts: &[usize],
    members: &[usize],
    at: &[usize],
    build: &BuildCalls<'_>,
) -> Vec<Call> {
    let mut out = Vec::with_capacity(at.len());
    for &position in at {
        let mut offset = position;
        for &i in members {
            let len = starts[i + 1] - starts[i];
            if offset < len {
                out.push(build(shards[i]).calls.swap_remove(offset));
                break;
            }
            offset -= len;
        }
    }
    out
}

/// CRC16/XMODEM, the checksum Redis Cluster maps keys to slots with.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot of `key`, honouring a `{hash tag}` as Redis does.
pub(super) fn slot_of(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = bytes.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &bytes[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16(tagged.unwrap_or(bytes)) % SLOTS
}

pub(super) fn parse_cluster_slots(v: &Value) -> Result<SlotMap, StoreError> {
    let mut ranges = Vec::new();
    for range in array(v)? {
        let fields = array(range)?;
        let (Some(first), Some(last), Some(master)) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            return Err(corrupt("short CLUSTER SLOTS entry"));
        };
        let node = array(master)?;
        let host = node.first().map(text).transpose()?.unwrap_or_default();
        let port = node
            .get(1)
            .map(parse_count)
            .transpose()?
            .unwrap_or_default();
        let slot = |v: &Value| -> Result<u16, StoreError> {
            u16::try_from(parse_count(v)?).map_err(|_| corrupt("slot beyond u16"))
        };
        ranges.push((slot(first)?, slot(last)?, format!("{host}:{port}")));
    }
    let mut masters: Vec<&str> = ranges.iter().map(|(_, _, a)| a.as_str()).collect();
    masters.sort_unstable();
    masters.dedup();
    let masters = masters.len();
    Ok(SlotMap { ranges, masters })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::Board;
    use crate::keyspace;
    use crate::types::BoardName;

    #[test]
    fn slots_match_redis() {
        // Published CRC16/XMODEM check value and `CLUSTER KEYSLOT` answers.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(slot_of("foo"), 12182);
        assert_eq!(slot_of("{user1000}.following"), slot_of("user1000"));
        assert_eq!(slot_of("foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
        let b = Board::new(BoardName::new("global").unwrap());
        assert_eq!(
            slot_of(&keyspace::shard_zset(&b, 7)),
            slot_of(&keyspace::shard_audit(&b, 7)),
            "one slot per shard"
        );
    }

    fn args(cmd: &Cmd) -> Vec<String> {
        cmd.args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
                _ => "<cursor>".into(),
            })
            .collect()
    }

    #[test]
    fn script_fallback_swaps_the_sha_for_the_source() {
        let keys = ["{st:b:3}:z:all".to_string()];
        let argv = ["5e0".to_string(), "m".to_string()];
        let mut cmd = redis::cmd("EVALSHA_RO");
        cmd.arg("abc123").arg(keys.len()).arg(&keys).arg(&argv);
        let call = Call {
            cmd,
            script: Some(("EVAL_RO", "return 1")),
        };
        assert_eq!(
            args(&call.fallback().unwrap()),
            ["EVAL_RO", "return 1", "1", "{st:b:3}:z:all", "5e0", "m"]
        );
        assert!(Call::plain(redis::cmd("GET")).fallback().is_none());
    }

    #[test]
    fn retries_rebuild_the_calls_at_their_pipeline_positions() {
        // Shards 7, 8, 9 with two calls each; one group holds shards 7 and
        // 9, so its pipeline is [7 A, 7 B, 9 A, 9 B].
        let build = |shard: u32| ShardCalls {
            slot: 0,
            calls: ["A", "B"]
                .iter()
                .map(|verb| {
                    let mut cmd = redis::cmd(verb);
                    cmd.arg(shard);
                    Call::plain(cmd)
                })
                .collect(),
        };
        let calls = calls_at(&[7, 8, 9], &[0, 2, 4, 6], &[0, 2], &[1, 2, 3], &build);
        let got: Vec<Vec<String>> = calls.iter().map(|c| args(&c.cmd)).collect();
        assert_eq!(got, [["B", "7"], ["A", "9"], ["B", "9"]]);
    }

    #[test]
    fn parses_cluster_slots() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let reply = Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(5460),
            Value::Array(vec![bulk("127.0.0.1"), Value::Int(30001), bulk("id")]),
        ])]);
        let map = parse_cluster_slots(&reply).unwrap();
        assert_eq!(map.masters, 1);
        assert_eq!(map.master_of(100), Some("127.0.0.1:30001"));
        assert_eq!(map.master_of(5461), None);
    }
}
