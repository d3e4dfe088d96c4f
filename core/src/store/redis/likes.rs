//! Behaviour events and likes on the cluster: the events script per likes
//! shard, the reads of counts, lists and totals, and the consumer of the
//! shards' event streams (see "Events and likes" in the module docs of
//! [`super`], and [`crate::keyspace::likes_tag`] for the keys).

use std::collections::BTreeMap;

use futures::stream::{self, StreamExt};
use redis::Value;

use super::fanout::{slot_of, Call, ShardCalls, SlotCall};
use super::reply::{
    array, corrupt, first, parse_count, parse_entries, script_refusal, text, unavailable,
};
use super::scripts::{EVENTS_SCRIPT, FOLLOW_SCRIPT, FOLLOW_TAKE_SCRIPT, LAG_SCRIPT};
use super::{order_arg, push_blend_keys, push_period_args, score_arg, RedisStore, AUDIT_MAXLEN};
use crate::board::Board;
use crate::events::{
    Event, EventOutcome, EventType, Feed, LikeCounts, LikeSpace, LikeState, LikedTarget, Refusal,
    Weights,
};
use crate::keyspace::{self, likes_tag};
use crate::store::{now_ms_i64, StoreError, Write};
use crate::types::{MemberId, Op, Score, Ties};

/// How many entries a likes shard's event stream keeps, approximately
/// (`XADD ... MAXLEN ~`). Entries the consumer group has not read when
/// they are trimmed are lost to the followers (the lag shows it long
/// before: at 100,000 a shard is far behind).
pub const EVENT_STREAM_MAXLEN: usize = 100_000;

/// The consumer group of every likes shard's stream.
pub const EVENT_GROUP: &str = "standings";

/// Most events in one events-script call: a shard's events beyond it go
/// in further calls of the same pipeline, in order, so one call never
/// holds its node for long.
const EVENTS_PER_CALL: usize = 64;

/// Most follow ops (actor's list or owner's total) in one follow-script
/// call.
const OPS_PER_CALL: usize = 128;

/// About how many stream entries one phase of a follow step takes (see
/// [`RedisStore::follow_once`]).
const ENTRIES_PER_PHASE: usize = 4096;

/// How many writes to actor- and owner-fed boards one follow step has in
/// flight at once.
const BOARD_WRITES_IN_FLIGHT: usize = 32;

/// `LEN:TARGET:ACTOR`: the target's byte length keeps `a:b` + `c` apart
/// from `a` + `b:c`.
fn pair(target: &MemberId, actor: &MemberId) -> String {
    format!("{}:{}:{}", target.as_str().len(), target, actor)
}

fn stream_key(space: &LikeSpace, shard: u32) -> String {
    format!("{}:x", likes_tag(space.tenant.as_str(), shard))
}

/// The tag of `member`'s shard of the space.
fn tag_of(space: &LikeSpace, member: &MemberId) -> String {
    likes_tag(space.tenant.as_str(), space.shard_of(member))
}

/// A state code as the scripts answer it: `n`, `l`, `d`, or `-`/empty for
/// no state (a counted type, a refusal).
fn state_of(code: &str) -> Option<LikeState> {
    match code.as_bytes() {
        [c] if *c != b'-' => Some(LikeState::from_code(*c)),
        _ => None,
    }
}

/// One stream entry as the consumer reads it (see [`EVENTS_SCRIPT`]).
#[derive(Debug, Clone, PartialEq)]
struct FollowEntry {
    id: String,
    actor: MemberId,
    target: MemberId,
    owner: Option<MemberId>,
    /// -1, 0 or 1 to the target's likes.
    like: i64,
    /// The store's time of the event, ms (text, as the list's score).
    at: String,
    /// (board storage name, delta) of each actor- or owner-fed board.
    boards: Vec<(String, f64)>,
}

/// One taken entry: the shard whose stream it is in, its stream id and
/// what it says (`None`: trimmed away since delivery, or unreadable; only
/// acknowledged).
struct Taken {
    shard: u32,
    stream_id: String,
    entry: Option<FollowEntry>,
}

/// Parses `[id, [field, value, ...]]`; fields nil for an entry trimmed
/// since delivery.
fn parse_taken(shard: u32, v: &Value) -> Result<Taken, StoreError> {
    let items = array(v)?;
    let stream_id = items
        .first()
        .map(text)
        .transpose()?
        .ok_or_else(|| corrupt("stream entry without an id"))?
        .to_string();
    let fields = match items.get(1) {
        None | Some(Value::Nil) => None,
        Some(f) => Some(array(f)?),
    };
    let entry = match fields.map(parse_entry).transpose() {
        Ok(entry) => entry,
        Err(e) => {
            // One unreadable entry must not hold up the stream for ever:
            // it is logged and acknowledged.
            tracing::error!(shard, stream_id, error = %e, "skipping an unreadable event stream entry");
            None
        }
    };
    Ok(Taken {
        shard,
        stream_id,
        entry,
    })
}

fn parse_entry(fields: &[Value]) -> Result<FollowEntry, StoreError> {
    let mut map: BTreeMap<&str, &str> = BTreeMap::new();
    let mut boards = Vec::new();
    for pair in fields.chunks(2) {
        let [name, value] = pair else {
            return Err(corrupt("stream entry of odd length"));
        };
        let (name, value) = (text(name)?, text(value)?);
        if let Some(board) = name.strip_prefix("b:") {
            let delta: f64 = value
                .parse()
                .map_err(|_| corrupt(format!("board delta {value:?} is not a number")))?;
            boards.push((board.to_string(), delta));
        } else {
            map.insert(name, value);
        }
    }
    let field = |name: &str| {
        map.get(name)
            .copied()
            .ok_or_else(|| corrupt(format!("event stream entry without {name}")))
    };
    let member = |name: &str| -> Result<MemberId, StoreError> {
        let s = field(name)?;
        MemberId::new(s).map_err(|e| corrupt(format!("event stream entry's {name} {s:?}: {e}")))
    };
    let like = field("l")?;
    Ok(FollowEntry {
        id: field("id")?.to_string(),
        actor: member("a")?,
        target: member("t")?,
        owner: map.contains_key("o").then(|| member("o")).transpose()?,
        like: like
            .parse()
            .map_err(|_| corrupt(format!("like delta {like:?} is not a number")))?,
        at: field("at")?.to_string(),
        boards,
    })
}

/// What every events-script call of one `apply_events` shares.
#[derive(Clone, Copy)]
struct EventsCommon<'a> {
    space: &'a LikeSpace,
    /// The event-fed boards and their weights, in ARGV order.
    fed: &'a [(&'a Board, &'a Weights)],
    /// The boards' part of ARGV.
    board_args: &'a [String],
    /// The gateway's time, ms: the audit records' `at_ms` and the periods
    /// sent.
    now: i64,
}

/// One op of the follow script (see [`FOLLOW_SCRIPT`]) and the entry it
/// belongs to.
struct FollowOp {
    entry: usize,
    keys: [String; 2],
    args: [String; 4],
}

impl RedisStore {
    /// The events script per shard batch, every master's batches in one
    /// ordered pipeline (see [`EVENTS_SCRIPT`]).
    pub(super) async fn apply_events_once(
        &self,
        space: &LikeSpace,
        boards: &[Board],
        events: &[Event],
    ) -> Result<Vec<EventOutcome>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let fed: Vec<(&Board, &Weights)> = boards
            .iter()
            .filter_map(|b| b.source.as_ref().map(|s| (b, &s.weights)))
            .collect();
        for (b, _) in &fed {
            if b.fed_by_target() && b.tenant != space.tenant {
                return Err(corrupt(format!(
                    "board {} of tenant {} was given with the events of tenant {}",
                    b.name, b.tenant, space.tenant
                )));
            }
        }
        // The boards' part of ARGV, the same for every shard.
        let now = now_ms_i64();
        let mut board_args = Vec::new();
        for (b, w) in &fed {
            let feed = b.source.as_ref().map_or(Feed::Target, |s| s.feed);
            board_args.extend([
                feed.as_str().to_string(),
                b.storage_name().to_string(),
                score_arg(w.get("like")),
                score_arg(w.get("dislike")),
            ]);
            if feed == Feed::Target {
                board_args.extend([
                    order_arg(b).to_string(),
                    b.closed_retention.as_millis().to_string(),
                    b.periods.len().to_string(),
                    b.blends.len().to_string(),
                ]);
                push_period_args(&mut board_args, b, now);
                board_args.extend(
                    b.blends
                        .iter()
                        .map(|bl| crate::blend::encode_parts(&bl.parts)),
                );
            }
        }
        // Each shard's events, in order.
        let mut by_shard: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, e) in events.iter().enumerate() {
            let shard = space.shard_of(&e.target);
            for (b, _) in fed.iter().filter(|(b, _)| b.fed_by_target()) {
                if b.shard_of(&e.target).ok() != Some(shard) {
                    return Err(corrupt(format!(
                        "board {} fed by target keeps {} shards ({:?}), the likes space of \
                         tenant {} {}: its member {} would leave the like's slot",
                        b.name, b.shards, b.shard_by, space.tenant, space.shards, e.target
                    )));
                }
            }
            by_shard.entry(shard).or_default().push(i);
        }
        let common = EventsCommon {
            space,
            fed: &fed,
            board_args: &board_args,
            now,
        };
        let mut calls = Vec::new();
        let mut batches: Vec<&[usize]> = Vec::new();
        for (&shard, indexes) in &by_shard {
            for batch in indexes.chunks(EVENTS_PER_CALL) {
                calls.push(self.events_call(&common, shard, batch, events));
                batches.push(batch);
            }
        }
        let replies = self.send_ordered(&calls).await?;
        let mut out = vec![None; events.len()];
        for (batch, reply) in batches.iter().zip(&replies) {
            let items = array(reply)?;
            if let Some(status @ ("skew" | "badpart")) = items.first().map(text).transpose()? {
                return Err(script_refusal(status, items));
            }
            if items.len() != 2 * batch.len() {
                return Err(corrupt(format!(
                    "events script answered {} items for {} events",
                    items.len(),
                    batch.len()
                )));
            }
            for (&i, pair) in batch.iter().zip(items.chunks(2)) {
                out[i] = Some(parse_outcome(text(&pair[0])?, text(&pair[1])?)?);
            }
        }
        out.into_iter()
            .map(|o| o.ok_or_else(|| corrupt("an event got no outcome")))
            .collect()
    }

    /// The events script call of one batch of one shard's events.
    fn events_call(
        &self,
        common: &EventsCommon<'_>,
        shard: u32,
        batch: &[usize],
        events: &[Event],
    ) -> SlotCall {
        let EventsCommon {
            space,
            fed,
            board_args,
            now,
        } = *common;
        let tag = likes_tag(space.tenant.as_str(), shard);
        let mut keys = vec![format!("{tag}:x")];
        for (b, _) in fed.iter().filter(|(b, _)| b.fed_by_target()) {
            keys.push(keyspace::shard_audit(b, shard));
            push_blend_keys(&mut keys, &keyspace::shard_tag(b, shard), b.blends.iter());
        }
        let mut args = Vec::with_capacity(7 + board_args.len() + batch.len() * 6);
        args.extend([
            space.dedup_ttl.as_millis().max(1).to_string(),
            space.cooldown.as_millis().to_string(),
            EVENT_STREAM_MAXLEN.to_string(),
            AUDIT_MAXLEN.to_string(),
            now.max(0).to_string(),
            fed.len().to_string(),
            batch.len().to_string(),
        ]);
        args.extend_from_slice(board_args);
        for &i in batch {
            let e = &events[i];
            let p = pair(&e.target, &e.actor);
            keys.extend([
                format!("{tag}:e:{}", e.id),
                format!("{tag}:cd:{p}"),
                format!("{tag}:ls:{p}"),
                format!("{tag}:lc:{}", e.target),
            ]);
            args.extend([
                e.id.to_string(),
                format!("{:016x}", e.digest()),
                e.kind.as_str().to_string(),
                e.actor.to_string(),
                e.target.to_string(),
                e.owner.as_ref().map(|o| o.to_string()).unwrap_or_default(),
            ]);
            if let EventType::Counted(t) = &e.kind {
                args.extend(fed.iter().map(|(_, w)| score_arg(w.get(t))));
            }
        }
        SlotCall {
            slot: slot_of(&tag),
            call: self.script_call(false, &self.events_sha, EVENTS_SCRIPT, &keys, &args),
        }
    }

    /// Counts (and the actor's state) of each target, one pipeline per
    /// master.
    pub(super) async fn like_counts_once(
        &self,
        space: &LikeSpace,
        targets: &[MemberId],
        actor: Option<&MemberId>,
    ) -> Result<Vec<LikeCounts>, StoreError> {
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let build = |i: u32| {
            let target = &targets[i as usize];
            let tag = tag_of(space, target);
            let mut hmget = redis::cmd("HMGET");
            hmget.arg(format!("{tag}:lc:{target}")).arg("l").arg("d");
            let mut calls = vec![Call::plain(hmget)];
            if let Some(actor) = actor {
                let mut get = redis::cmd("GET");
                get.arg(format!("{tag}:ls:{}", pair(target, actor)));
                calls.push(Call::plain(get));
            }
            ShardCalls {
                slot: slot_of(&tag),
                calls,
            }
        };
        let indexes: Vec<u32> = (0..targets.len() as u32).collect();
        let (values, starts) = self.fan_out(&indexes, &build).await?;
        starts
            .windows(2)
            .map(|w| {
                let shard = &values[w[0]..w[1]];
                let counts = array(first(shard)?)?;
                let [likes, dislikes] = counts else {
                    return Err(corrupt("HMGET of a target's counts is not 2 items"));
                };
                let state = match shard.get(1) {
                    None | Some(Value::Nil) => LikeState::None,
                    Some(v) => state_of(text(v)?).unwrap_or_default(),
                };
                Ok(LikeCounts {
                    likes: parse_count(likes)?,
                    dislikes: parse_count(dislikes)?,
                    state,
                })
            })
            .collect()
    }

    pub(super) async fn actor_likes_once(
        &self,
        space: &LikeSpace,
        actor: &MemberId,
        limit: usize,
    ) -> Result<Vec<LikedTarget>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(format!("{}:al:{actor}", tag_of(space, actor)))
            .arg(0)
            .arg((limit - 1).min(i64::MAX as usize) as i64)
            .arg("REV")
            .arg("WITHSCORES");
        let reply = self.query(&cmd).await.map_err(unavailable)?;
        parse_entries(&reply, Ties::Shared)?
            .into_iter()
            .map(|e| {
                if e.score < 0.0 || e.score.fract() != 0.0 {
                    return Err(corrupt(format!(
                        "actor {actor}'s like of {} at {} ms",
                        e.member, e.score
                    )));
                }
                Ok(LikedTarget {
                    target: e.member,
                    at_ms: e.score as u64,
                })
            })
            .collect()
    }

    pub(super) async fn owner_likes_once(
        &self,
        space: &LikeSpace,
        owner: &MemberId,
    ) -> Result<u64, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(format!("{}:ow:{owner}", tag_of(space, owner)));
        let reply = self.query(&cmd).await.map_err(unavailable)?;
        // A total below 0 is deleted by the follow script; one read as
        // negative is corrupt, not a count.
        parse_count(&reply)
    }

    /// One consumer step (see [`crate::store::Store::follow_events`]): take
    /// entries per shard, apply the lists and totals in the actors' and
    /// owners' shards, write the actor- and owner-fed boards, acknowledge.
    pub(super) async fn follow_once(
        &self,
        space: &LikeSpace,
        boards: &[Board],
        shards: &[u32],
        consumer: &str,
        max: usize,
    ) -> Result<u64, StoreError> {
        if shards.is_empty() || max == 0 {
            return Ok(0);
        }
        check_space_shards(space, shards)?;
        // A few shards at a time, so that no phase moves more than about
        // ENTRIES_PER_PHASE entries in one reply (100 shards of 1000 each
        // would not fit a response timeout).
        let per_phase = (ENTRIES_PER_PHASE / max).max(1);
        let mut applied = 0;
        for some in shards.chunks(per_phase) {
            applied += self
                .follow_shards(space, boards, some, consumer, max)
                .await?;
        }
        Ok(applied)
    }

    /// [`RedisStore::follow_once`] of a few shards.
    async fn follow_shards(
        &self,
        space: &LikeSpace,
        boards: &[Board],
        shards: &[u32],
        consumer: &str,
        max: usize,
    ) -> Result<u64, StoreError> {
        let taken = self.bound(self.take(space, shards, consumer, max)).await?;
        if taken.is_empty() {
            return Ok(0);
        }
        let mut new = vec![false; taken.len()];

        // The actors' lists and owners' totals, per destination shard in
        // stream order.
        let ttl = space.dedup_ttl.as_millis().max(1).to_string();
        // In the order the events happened (by the store's time; stream
        // ids break ties): an actor's likes come from every target shard's
        // stream, and its list is trimmed to the newest, so an unlike
        // applied before a later like would keep a target that the like
        // had trimmed off.
        let mut order: Vec<usize> = (0..taken.len()).collect();
        order.sort_by_cached_key(|&n| {
            let at = taken[n]
                .entry
                .as_ref()
                .and_then(|e| e.at.parse::<u64>().ok())
                .unwrap_or(0);
            (at, stream_seq(&taken[n].stream_id))
        });
        let mut ops: BTreeMap<u32, Vec<FollowOp>> = BTreeMap::new();
        for n in order {
            let t = &taken[n];
            let Some(e) = &t.entry else { continue };
            if e.like == 0 {
                continue;
            }
            let sides = [Some(('a', &e.actor)), e.owner.as_ref().map(|o| ('o', o))];
            for (side, who) in sides.into_iter().flatten() {
                let shard = space.shard_of(who);
                let tag = likes_tag(space.tenant.as_str(), shard);
                let key = match side {
                    'a' => format!("{tag}:al:{who}"),
                    _ => format!("{tag}:ow:{who}"),
                };
                ops.entry(shard).or_default().push(FollowOp {
                    entry: n,
                    keys: [format!("{tag}:f:{}:{side}", e.id), key],
                    args: [
                        side.to_string(),
                        e.like.to_string(),
                        e.target.to_string(),
                        e.at.clone(),
                    ],
                });
            }
        }
        let mut calls = Vec::new();
        let mut chunks: Vec<&[FollowOp]> = Vec::new();
        for (&shard, list) in &ops {
            let tag = likes_tag(space.tenant.as_str(), shard);
            for chunk in list.chunks(OPS_PER_CALL) {
                let keys: Vec<String> = chunk.iter().flat_map(|op| op.keys.clone()).collect();
                let mut args = vec![ttl.clone(), space.recent_per_actor.to_string()];
                args.extend(chunk.iter().flat_map(|op| op.args.clone()));
                calls.push(SlotCall {
                    slot: slot_of(&tag),
                    call: self.script_call(false, &self.follow_sha, FOLLOW_SCRIPT, &keys, &args),
                });
                chunks.push(chunk);
            }
        }
        if !calls.is_empty() {
            let replies = self.bound_write(self.send_ordered(&calls)).await?;
            for (chunk, reply) in chunks.iter().zip(&replies) {
                let flags = array(reply)?;
                if flags.len() != chunk.len() {
                    return Err(corrupt(
                        "follow script answered a flag count unlike its ops",
                    ));
                }
                for (op, flag) in chunk.iter().zip(flags) {
                    if parse_count(flag)? == 1 {
                        new[op.entry] = true;
                    }
                }
            }
        }

        // The actor- and owner-fed boards: an incr per entry and board,
        // keyed by the event id, so a redelivery repeats.
        let mut writes = Vec::new();
        for (n, t) in taken.iter().enumerate() {
            let Some(e) = &t.entry else { continue };
            for (name, delta) in &e.boards {
                let Some((board, feed)) = boards.iter().enumerate().find_map(|(i, b)| {
                    let s = b.source.as_ref()?;
                    (b.storage_name() == name && s.feed != Feed::Target).then_some((i, s.feed))
                }) else {
                    continue;
                };
                let member = match feed {
                    Feed::Owner => match &e.owner {
                        Some(o) => o.clone(),
                        None => continue,
                    },
                    _ => e.actor.clone(),
                };
                let Ok(value) = Score::new(*delta) else {
                    tracing::error!(
                        event = e.id,
                        board = name,
                        delta,
                        "skipping a board delta out of range"
                    );
                    continue;
                };
                writes.push((
                    n,
                    board,
                    Write {
                        member,
                        op: Op::Incr,
                        value,
                        idempotency_key: Some(format!("evt:{}", e.id)),
                        request_id: format!("event {}", e.id),
                        meta: None,
                    },
                ));
            }
        }
        let results: Vec<(usize, Result<bool, StoreError>)> = stream::iter(writes)
            .map(|(n, board, write): (usize, usize, Write)| async move {
                let r = crate::store::Store::apply(self, &boards[board], &write).await;
                (n, r.map(|o| o.applied))
            })
            .buffer_unordered(BOARD_WRITES_IN_FLIGHT)
            .collect()
            .await;
        for (n, r) in results {
            match r {
                Ok(applied) => new[n] |= applied,
                // The event is applied where it can be; a board score it
                // would take past +-2^53 stays where it is.
                Err(e @ (StoreError::OutOfRange | StoreError::IdempotencyConflict)) => {
                    tracing::warn!(stream_id = taken[n].stream_id, error = %e, "a followed board write was refused");
                }
                // Not acknowledged: redelivered to this consumer next step.
                Err(e) => return Err(e),
            }
        }

        self.bound(self.ack(space, &taken)).await?;
        Ok(new.iter().filter(|&&n| n).count() as u64)
    }

    /// The take script on every shard (see [`FOLLOW_TAKE_SCRIPT`]).
    async fn take(
        &self,
        space: &LikeSpace,
        shards: &[u32],
        consumer: &str,
        max: usize,
    ) -> Result<Vec<Taken>, StoreError> {
        let args = [
            EVENT_GROUP.to_string(),
            consumer.to_string(),
            max.to_string(),
            self.claim_idle.as_millis().max(1).to_string(),
        ];
        let build = |shard: u32| {
            let key = stream_key(space, shard);
            let call = self.script_call(
                false,
                &self.follow_take_sha,
                FOLLOW_TAKE_SCRIPT,
                std::slice::from_ref(&key),
                &args,
            );
            ShardCalls {
                slot: slot_of(&key),
                calls: vec![call],
            }
        };
        let (values, _) = self.fan_out(shards, &build).await?;
        let mut taken = Vec::new();
        for (&shard, v) in shards.iter().zip(&values) {
            for entry in array(v)? {
                taken.push(parse_taken(shard, entry)?);
            }
        }
        Ok(taken)
    }

    /// `XACK` of every taken entry, one per shard stream.
    async fn ack(&self, space: &LikeSpace, taken: &[Taken]) -> Result<(), StoreError> {
        let mut by_shard: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
        for t in taken {
            by_shard.entry(t.shard).or_default().push(&t.stream_id);
        }
        let shards: Vec<u32> = by_shard.keys().copied().collect();
        let build = |shard: u32| {
            let key = stream_key(space, shard);
            let mut cmd = redis::cmd("XACK");
            cmd.arg(&key).arg(EVENT_GROUP);
            for id in by_shard.get(&shard).into_iter().flatten() {
                cmd.arg(*id);
            }
            ShardCalls {
                slot: slot_of(&key),
                calls: vec![Call::plain(cmd)],
            }
        };
        self.fan_out(&shards, &build).await.map(|_| ())
    }

    /// The lag script on every shard, summed (see [`LAG_SCRIPT`]).
    pub(super) async fn event_lag_once(
        &self,
        space: &LikeSpace,
        shards: &[u32],
    ) -> Result<u64, StoreError> {
        if shards.is_empty() {
            return Ok(0);
        }
        check_space_shards(space, shards)?;
        let args = [EVENT_GROUP.to_string()];
        let build = |shard: u32| {
            let key = stream_key(space, shard);
            let call = self.script_call(
                true,
                &self.lag_sha,
                LAG_SCRIPT,
                std::slice::from_ref(&key),
                &args,
            );
            ShardCalls {
                slot: slot_of(&key),
                calls: vec![call],
            }
        };
        let (values, _) = self.fan_out(shards, &build).await?;
        values.iter().map(parse_count).sum()
    }

    pub(super) async fn weights_once(&self) -> Result<Vec<(String, Weights)>, StoreError> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(keyspace::WEIGHTS);
        let reply = self.query(&cmd).await.map_err(unavailable)?;
        let items = match reply {
            Value::Array(items) => items,
            Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
            other => return Err(corrupt(format!("weights reply {other:?}"))),
        };
        let mut out = items
            .chunks(2)
            .map(|pair| {
                let [name, json] = pair else {
                    return Err(corrupt("weights hash of odd length"));
                };
                let (name, json) = (text(name)?, text(json)?);
                let w = Weights::from_json(json)
                    .map_err(|e| corrupt(format!("weights of board {name} in the store: {e}")))?;
                Ok((name.to_string(), w))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

/// A stream id `MS-SEQ` as numbers, for ordering.
fn stream_seq(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// Refuses a shard the space does not have: a caller bug.
fn check_space_shards(space: &LikeSpace, shards: &[u32]) -> Result<(), StoreError> {
    match shards.iter().find(|&&s| s >= space.shards) {
        Some(s) => Err(corrupt(format!(
            "shard {s} out of range for the likes space of tenant {} ({} shards)",
            space.tenant, space.shards
        ))),
        None => Ok(()),
    }
}

/// An event's outcome from its status and state code.
fn parse_outcome(status: &str, state: &str) -> Result<EventOutcome, StoreError> {
    let (applied, refused) = match status {
        "applied" => (true, None),
        "noop" | "repeat" => (false, None),
        "conflict" => (false, Some(Refusal::Conflict)),
        "cooldown" => (false, Some(Refusal::Cooldown)),
        "range" => (false, Some(Refusal::OutOfRange)),
        other => return Err(corrupt(format!("unknown event status {other:?}"))),
    };
    Ok(EventOutcome {
        applied,
        state: if refused.is_some() {
            None
        } else {
            state_of(state)
        },
        refused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn pairs_keep_targets_and_actors_apart() {
        let m = |s: &str| MemberId::new(s).unwrap();
        assert_ne!(pair(&m("a:b"), &m("c")), pair(&m("a"), &m("b:c")));
        assert_eq!(pair(&m("v:1"), &m("u:2")), "3:v:1:u:2");
    }

    #[test]
    fn outcomes_and_states() {
        let o = parse_outcome("applied", "l").unwrap();
        assert_eq!(
            (o.applied, o.state, o.refused),
            (true, Some(LikeState::Liked), None)
        );
        let o = parse_outcome("repeat", "-").unwrap();
        assert_eq!((o.applied, o.state), (false, None));
        let o = parse_outcome("noop", "n").unwrap();
        assert_eq!(o.state, Some(LikeState::None));
        let o = parse_outcome("cooldown", "").unwrap();
        assert_eq!((o.state, o.refused), (None, Some(Refusal::Cooldown)));
        assert!(parse_outcome("what", "").is_err());
    }

    #[test]
    fn stream_entries_parse_and_trimmed_ones_are_only_acked() {
        let entry = Value::Array(vec![
            bulk("1-0"),
            Value::Array(
                [
                    "id", "e1", "a", "u:1", "t", "v:1", "l", "1", "at", "1700", "o", "c:1",
                    "b:fans", "2",
                ]
                .iter()
                .map(|s| bulk(s))
                .collect(),
            ),
        ]);
        let t = parse_taken(3, &entry).unwrap();
        let e = t.entry.unwrap();
        assert_eq!((t.shard, t.stream_id.as_str()), (3, "1-0"));
        assert_eq!(e.owner.unwrap().as_str(), "c:1");
        assert_eq!(e.boards, [("fans".to_string(), 2.0)]);
        assert_eq!((e.like, e.at.as_str()), (1, "1700"));
        let trimmed = Value::Array(vec![bulk("2-0"), Value::Nil]);
        assert!(parse_taken(3, &trimmed).unwrap().entry.is_none());
        let broken = Value::Array(vec![bulk("3-0"), Value::Array(vec![bulk("id")])]);
        assert!(
            parse_taken(3, &broken).unwrap().entry.is_none(),
            "logged and acked"
        );
    }
}
