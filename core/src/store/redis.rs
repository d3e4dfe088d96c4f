//! The Redis Cluster backend: [`RedisStore`] keeps scores in sorted sets on
//! a Redis Cluster (Redis >= 7), with the key layout of [`crate::keyspace`].
//!
//! # Writes
//!
//! Every key of a shard carries the shard's hash tag, so a write is ONE Lua
//! script ([`WRITE_SCRIPT`]) on one slot, atomic on the node that owns it:
//! idempotency check, the op, the version bump and the audit record, or none
//! of them. `incr` refuses a sum beyond +-2^53 with the same TwoSum test as
//! [`crate::types::checked_add`], before anything is written. The script is
//! sent with `EVALSHA`; a node that answers `NOSCRIPT` (restarted, failed
//! over, `SCRIPT FLUSH`) gets the same call as `EVAL` with the source, which
//! also caches it there again. That is the fallback redis-rs's own
//! `Script::invoke_async` uses too, except that redis-rs reloads with a
//! `SCRIPT LOAD` sent to every node, which fails while any node is down; ours
//! touches only the node that owns the slot.
//!
//! # Scores
//!
//! Scores cross the wire as text and must round-trip exactly: Rust sends
//! `{:e}` (the shortest text that parses back to the same `f64`), the
//! scripts format with `string.format('%.17g', x)` (Lua's `tostring` keeps
//! only 14 digits) and return strings (a Lua number reply would be truncated
//! to an integer), and replies are parsed with `str::parse::<f64>`.
//!
//! # Reads that fan out
//!
//! `counts`, `neighbours` and `versions` group the shards by the master
//! that owns their slot (from `CLUSTER SLOTS`, refreshed when a pipeline
//! fails) and send one pipeline per master, all masters at once. A node
//! answers a pipeline of commands on different slots as long as it owns
//! each of them; when the grouping was stale, the pipeline fails and that
//! group is re-sent as single commands, which redis-rs routes and redirects
//! itself. `neighbours` runs [`NEIGHBOURS_SCRIPT`] (read-only, `EVALSHA_RO`)
//! per shard, which places the anchor among tied scores by member bytes.
//!
//! # Bounds
//!
//! The client gets `connect_timeout`, `response_timeout` (which redis-rs
//! also uses as the bound of one request including its retries), a small
//! retry count and retry waits of tens of milliseconds instead of the
//! crate's defaults (16 retries, waits from 1.28 s upwards). On top of that
//! every store call runs under `tokio::time::timeout` of
//! `connect_timeout + 2 x response_timeout` ([`RedisOptions::call_bound`]),
//! so no call outlives its bound whatever the client does. Every failure is
//! [`StoreError::Unavailable`], except replies this code cannot read
//! ([`StoreError::Corrupt`]) and `incr` out of range.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::join_all;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, ErrorKind, RedisError, ServerErrorKind, Value};

use super::{
    check_shard, now_ms, AuditRecord, Neighbours, ShardCounts, Store, StoreError, Write,
    WriteOutcome,
};
use crate::board::Board;
use crate::keyspace::{self, Scope};
use crate::types::{Entry, MemberId, Op, Order, MAX_SCORE};

/// How many audit records a shard's stream keeps, approximately
/// (`XADD ... MAXLEN ~`): the memory store's [`super::memory::AUDIT_CAPACITY`].
pub const AUDIT_MAXLEN: usize = super::memory::AUDIT_CAPACITY;

/// The write script: one call per write, all keys in the shard's slot.
///
/// `KEYS`: 1 sorted set, 2 version, 3 audit stream, 4 (optional) the
/// idempotency record of (member, key). `ARGV`: 1 member, 2 op, 3 value,
/// 4 order (`desc`/`asc`), 5 idempotency TTL in ms, 6 request id, 7 time
/// in ms, 8 idempotency key, 9 audit MAXLEN.
///
/// Answers `{'applied', score}`, `{'repeat', first score}` or `{'range'}`
/// (incr beyond +-2^53; nothing written). The shebang makes Redis refuse
/// the whole script up front when it is out of memory, instead of failing
/// at a write half way through.
pub const WRITE_SCRIPT: &str = r#"#!lua
local MAX = 9007199254740992
local function fmt(x) return string.format('%.17g', x) end
if KEYS[4] then
  local seen = redis.call('GET', KEYS[4])
  if seen then return {'repeat', seen} end
end
local member, op, value = ARGV[1], ARGV[2], tonumber(ARGV[3])
local old = redis.call('ZSCORE', KEYS[1], member)
if old then old = tonumber(old) end
local new
if op == 'incr' then
  local a = old or 0
  local s = a + value
  local bb = s - a
  local e = (a - (s - bb)) + (value - bb)
  local mag = math.abs(s)
  if mag > MAX or (mag == MAX and e ~= 0 and ((e > 0) == (s > 0))) then
    return {'range'}
  end
  new = s
elseif op == 'set' then
  new = value
elseif op == 'best' then
  local better
  if ARGV[4] == 'asc' then better = old and value < old else better = old and value > old end
  if old and not better then new = old else new = value end
else
  return redis.error_reply('ERR unknown op ' .. tostring(op))
end
if new ~= new or math.abs(new) > MAX then return {'range'} end
new = new + 0
local score = fmt(new)
redis.call('ZADD', KEYS[1], score, member)
if KEYS[4] then redis.call('SET', KEYS[4], score, 'PX', ARGV[5], 'NX') end
redis.call('INCR', KEYS[2])
if KEYS[4] then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[9], '*', 'member', member, 'op', op,
    'value', ARGV[3], 'score', score, 'idem', ARGV[8], 'request_id', ARGV[6], 'at_ms', ARGV[7])
else
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[9], '*', 'member', member, 'op', op,
    'value', ARGV[3], 'score', score, 'request_id', ARGV[6], 'at_ms', ARGV[7])
end
return {'applied', score}
"#;

/// The neighbours script, read-only: the anchor's place in one shard and up
/// to n entries on each side, in ascending (score, member bytes) order.
///
/// `KEYS`: 1 sorted set. `ARGV`: 1 anchor score, 2 anchor member, 3 n.
/// Answers `{below, above, card, down, up}`: `[0, below)` are the ascending
/// positions before the anchor, `[above, card)` after it (`above = below + 1`
/// when the anchor itself is in the shard with that score), `down` the n
/// entries before `below` and `up` the n from `above`, each ascending with
/// scores (`WITHSCORES`). Ties are placed by a binary search over the tied
/// index range comparing bytes with `string.byte`, because Lua's `<` on
/// strings follows the server's locale (`strcoll`), not Redis's byte order.
pub const NEIGHBOURS_SCRIPT: &str = r#"#!lua flags=no-writes
local key, a, m, n = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local function less(x, y)
  local lx, ly = #x, #y
  for i = 1, math.min(lx, ly) do
    local bx, by = string.byte(x, i), string.byte(y, i)
    if bx ~= by then return bx < by end
  end
  return lx < ly
end
local lo = redis.call('ZCOUNT', key, '-inf', '(' .. a)
local hi = redis.call('ZCOUNT', key, '-inf', a)
while lo < hi do
  local mid = math.floor((lo + hi) / 2)
  local at = redis.call('ZRANGE', key, mid, mid)[1]
  if less(at, m) then lo = mid + 1 else hi = mid end
end
local below, above = lo, lo
local own = redis.call('ZSCORE', key, m)
if own and tonumber(own) == tonumber(a) then above = below + 1 end
local card = redis.call('ZCARD', key)
local down, up = {}, {}
if n > 0 and below > 0 then
  down = redis.call('ZRANGE', key, math.max(0, below - n), below - 1, 'WITHSCORES')
end
if n > 0 and above < card then
  up = redis.call('ZRANGE', key, above, above + n - 1, 'WITHSCORES')
end
return {below, above, card, down, up}
"#;

/// Largest `n` sent to the neighbours script: Lua formats numbers passed to
/// `redis.call` with 14 significant digits, so indexes must stay below
/// 10^14; no shard holds anywhere near 10^12 members.
const MAX_NEIGHBOURS: usize = 1_000_000_000_000;

/// Redis Cluster's slot count.
const SLOTS: u16 = 16_384;

/// How the store talks to the cluster; from `[store]` in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisOptions {
    /// Bound on establishing a connection to one node.
    pub connect_timeout: Duration,
    /// Bound on one request to the cluster, its retries and redirects
    /// included.
    pub response_timeout: Duration,
    /// Retries on MOVED/ASK, TRYAGAIN, CLUSTERDOWN and connection errors
    /// within the response timeout. Never on a timed-out request, since a
    /// write that timed out may still have been applied.
    pub retries: u32,
}

impl Default for RedisOptions {
    /// The config's defaults: 1 s, 1 s, 2 retries.
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            retries: 2,
        }
    }
}

impl RedisOptions {
    /// The bound on any one store call: one connect, plus a request and its
    /// per-shard fallback for a fan-out whose grouping was stale.
    pub fn call_bound(&self) -> Duration {
        self.connect_timeout + self.response_timeout * 2
    }
}

/// Which master serves which slots, as `CLUSTER SLOTS` last said; only used
/// to group fan-out commands per node, never for correctness.
#[derive(Debug, Default)]
struct SlotMap {
    /// (first slot, last slot, master `host:port`), any order.
    ranges: Vec<(u16, u16, String)>,
    /// How many distinct masters `ranges` names: sizes the pipelines.
    masters: usize,
}

impl SlotMap {
    fn master_of(&self, slot: u16) -> Option<&str> {
        self.ranges
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&slot))
            .map(|(_, _, addr)| addr.as_str())
    }
}

/// One command of a fan-out or a write. A script call is sent by SHA; its
/// `EVAL` form, sent when a node answers `NOSCRIPT`, is built only then
/// ([`Call::fallback`]), so no request copies a script's source.
struct Call {
    /// The command as first sent (`EVALSHA`/`EVALSHA_RO` for scripts).
    cmd: Cmd,
    /// For a script call: the verb (`EVAL`/`EVAL_RO`) and the source of its
    /// fallback form.
    script: Option<(&'static str, &'static str)>,
}

impl Call {
    fn plain(cmd: Cmd) -> Self {
        Self { cmd, script: None }
    }

    /// The same call with the script's source in place of its SHA, for a
    /// node without the script; `None` for plain commands.
    fn fallback(&self) -> Option<Cmd> {
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
struct ShardCalls {
    /// The shard's slot: every key of the shard shares its hash tag.
    slot: u16,
    /// Its commands, answered in order.
    calls: Vec<Call>,
}

/// Builds a shard's calls; called once per shard per fan-out, and again
/// only for the calls a retry needs.
type BuildCalls<'a> = dyn Fn(u32) -> ShardCalls + Sync + 'a;

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

/// The Redis Cluster store. Cheap to share behind an `Arc`; the connection
/// multiplexes every concurrent call over one socket per node.
pub struct RedisStore {
    /// redis-rs's cluster connection: slot routing, redirects, reconnects.
    conn: ClusterConnection,
    /// The bounds it was opened with.
    opts: RedisOptions,
    /// Where fan-out pipelines go; refreshed when one fails.
    slots: RwLock<Arc<SlotMap>>,
    /// Set when a pipeline failed, so the next fan-out re-reads the map.
    slots_stale: AtomicBool,
    /// SHA1 of [`WRITE_SCRIPT`], for `EVALSHA`.
    write_sha: String,
    /// SHA1 of [`NEIGHBOURS_SCRIPT`], for `EVALSHA_RO`.
    neighbours_sha: String,
}

impl RedisStore {
    /// Connects to the cluster through `nodes` (`host:port` seeds; the rest
    /// are discovered), checks that every master answers, loads both
    /// scripts on every node and reads the slot map. Fails with
    /// [`StoreError::Unavailable`] within a bounded time when the cluster
    /// cannot be reached.
    pub async fn connect(nodes: &[String], opts: RedisOptions) -> Result<Self, StoreError> {
        if nodes.is_empty() {
            return Err(StoreError::Unavailable(
                "no Redis Cluster seed nodes given".into(),
            ));
        }
        let seeds: Vec<String> = nodes.iter().map(|n| seed_url(n)).collect();
        let client = ClusterClientBuilder::new(seeds)
            .connection_timeout(opts.connect_timeout)
            .response_timeout(opts.response_timeout)
            .overall_response_timeout(Some(opts.response_timeout))
            .retries(opts.retries)
            .min_retry_wait(5)
            .max_retry_wait(100)
            .retry_wait_formula(10, 2)
            .build()
            .map_err(unavailable)?;
        let seeds_bound = opts.connect_timeout * (nodes.len() as u32 + 1) + opts.response_timeout;
        let conn = bounded(seeds_bound, async {
            client.get_async_connection().await.map_err(unavailable)
        })
        .await?;
        let store = Self {
            conn,
            opts,
            slots: RwLock::new(Arc::new(SlotMap::default())),
            slots_stale: AtomicBool::new(true),
            write_sha: redis::Script::new(WRITE_SCRIPT).get_hash().to_string(),
            neighbours_sha: redis::Script::new(NEIGHBOURS_SCRIPT).get_hash().to_string(),
        };
        store.ping().await?;
        store.bound(store.load_scripts()).await?;
        store.bound(store.refresh_slots()).await?;
        Ok(store)
    }

    /// The options it was opened with.
    pub fn options(&self) -> RedisOptions {
        self.opts
    }

    /// `SCRIPT LOAD` of both scripts on every node (redis-rs sends it to
    /// all). A node that is down now gets the script on first use through
    /// the `EVAL` fallback, so a failure here is logged, not fatal.
    async fn load_scripts(&self) -> Result<(), StoreError> {
        for (name, source) in [("write", WRITE_SCRIPT), ("neighbours", NEIGHBOURS_SCRIPT)] {
            let mut cmd = redis::cmd("SCRIPT");
            cmd.arg("LOAD").arg(source);
            if let Err(e) = self.query(&cmd).await {
                tracing::warn!(script = name, error = %e, "SCRIPT LOAD failed; EVAL will reload it on use");
            }
        }
        Ok(())
    }

    /// Re-reads `CLUSTER SLOTS` into the grouping map.
    async fn refresh_slots(&self) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("SLOTS");
        let reply = self.query(&cmd).await.map_err(unavailable)?;
        let map = parse_cluster_slots(&reply)?;
        *self.slots.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(map);
        self.slots_stale.store(false, AtomicOrdering::Relaxed);
        Ok(())
    }

    /// The current grouping map, re-read first when a pipeline failed.
    async fn slot_map(&self) -> Arc<SlotMap> {
        if self.slots_stale.load(AtomicOrdering::Relaxed) {
            if let Err(e) = self.refresh_slots().await {
                tracing::debug!(error = %e, "CLUSTER SLOTS failed; fanning out per shard");
            }
        }
        self.slots.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs `fut` under the call bound; past it the call is Unavailable.
    async fn bound<T>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        bounded(self.opts.call_bound(), fut).await
    }

    /// One command, routed by its first key (or to the nodes redis-rs
    /// chooses for keyless commands); server errors come back as `Err`.
    async fn query(&self, cmd: &Cmd) -> Result<Value, RedisError> {
        cmd.query_async::<Value>(&mut self.conn.clone()).await
    }

    /// One command, and its `EVAL` form if the node lacks the script.
    async fn run(&self, call: &Call) -> Result<Value, RedisError> {
        match self.query(&call.cmd).await {
            Err(e) if is_noscript(&e) => match call.fallback() {
                Some(fallback) => self.query(&fallback).await,
                None => Err(e),
            },
            other => other,
        }
    }

    /// A script call by SHA; its `EVAL` form is built only on `NOSCRIPT`.
    fn script_call(
        &self,
        read_only: bool,
        sha: &str,
        source: &'static str,
        keys: &[String],
        args: &[String],
    ) -> Call {
        let (by_sha, by_source) = if read_only {
            ("EVALSHA_RO", "EVAL_RO")
        } else {
            ("EVALSHA", "EVAL")
        };
        let mut cmd = redis::cmd(by_sha);
        cmd.arg(sha).arg(keys.len()).arg(keys).arg(args);
        Call {
            cmd,
            script: Some((by_source, source)),
        }
    }

    /// Sends every shard's calls, one pipeline per master, all masters at
    /// once. Answers every reply in shard order, flattened, with the
    /// offsets where each shard's replies start (and one past the last).
    ///
    /// The commands move into the pipelines: a request that fans out over
    /// 100 shards allocates no copy of them. The rare retry (an error reply,
    /// a pipeline that failed) rebuilds what it needs with `build`.
    async fn fan_out(
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

/// Runs `fut` under `limit`; past it the call is Unavailable.
async fn bounded<T>(
    limit: Duration,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| {
        Err(StoreError::Unavailable(format!(
            "no answer from Redis Cluster within {limit:?}"
        )))
    })
}

/// `host:port` as the client wants it; a full URL passes through.
fn seed_url(node: &str) -> String {
    if node.contains("://") {
        node.to_string()
    } else {
        format!("redis://{node}")
    }
}

fn unavailable(e: RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

fn is_noscript(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::NoScript)
}

/// A score as text that parses back to the same `f64` (shortest form).
fn score_arg(x: f64) -> String {
    format!("{x:e}")
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
fn slot_of(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = bytes.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &bytes[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16(tagged.unwrap_or(bytes)) % SLOTS
}

/// The idempotency record of (member, key) in the member's shard: the
/// member's byte length keeps `a:b` + `c` apart from `a` + `b:c`.
fn idempotency_key(board: &Board, shard: u32, member: &MemberId, key: &str) -> String {
    let member = member.as_str();
    format!(
        "{}{}:{member}:{key}",
        keyspace::shard_idempotency_prefix(board, shard),
        member.len()
    )
}

fn order_arg(order: Order) -> &'static str {
    match order {
        Order::Desc => "desc",
        Order::Asc => "asc",
    }
}

// ---- reply parsing: anything unexpected is Corrupt, never a panic ----

fn text(v: &Value) -> Result<&str, StoreError> {
    match v {
        Value::BulkString(b) => std::str::from_utf8(b).map_err(|_| corrupt("reply is not UTF-8")),
        Value::SimpleString(s) => Ok(s),
        other => Err(corrupt(format!("expected text, got {other:?}"))),
    }
}

fn parse_score(v: &Value) -> Result<f64, StoreError> {
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

fn parse_count(v: &Value) -> Result<u64, StoreError> {
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

fn array(v: &Value) -> Result<&[Value], StoreError> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(&[]),
        other => Err(corrupt(format!("expected an array, got {other:?}"))),
    }
}

/// A `WITHSCORES` reply (`member, score, member, score, ...`) in order.
fn parse_entries(v: &Value) -> Result<Vec<Entry>, StoreError> {
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

fn parse_write(v: &Value) -> Result<WriteOutcome, StoreError> {
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

fn parse_cluster_slots(v: &Value) -> Result<SlotMap, StoreError> {
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

/// One stream entry `[id, [field, value, ...]]` as an audit record.
fn parse_audit(v: &Value) -> Result<AuditRecord, StoreError> {
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
fn parse_neighbours(v: &Value, order: Order) -> Result<Neighbours, StoreError> {
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

impl RedisStore {
    async fn apply_once(&self, board: &Board, write: &Write) -> Result<WriteOutcome, StoreError> {
        let shard = board
            .shard_of(&write.member)
            .map_err(|e| corrupt(e.to_string()))?;
        let mut keys = vec![
            keyspace::shard_zset(board, shard),
            keyspace::shard_version(board, shard),
            keyspace::shard_audit(board, shard),
        ];
        if let Some(key) = &write.idempotency_key {
            keys.push(idempotency_key(board, shard, &write.member, key));
        }
        let ttl_ms = board.idempotency_ttl.as_millis().max(1);
        let args = vec![
            write.member.as_str().to_string(),
            write.op.as_str().to_string(),
            score_arg(write.value.get()),
            order_arg(board.order).to_string(),
            ttl_ms.to_string(),
            write.request_id.clone(),
            now_ms().to_string(),
            write.idempotency_key.clone().unwrap_or_default(),
            AUDIT_MAXLEN.to_string(),
        ];
        let call = self.script_call(false, &self.write_sha, WRITE_SCRIPT, &keys, &args);
        let reply = self.run(&call).await.map_err(unavailable)?;
        parse_write(&reply)
    }

    async fn top_once(
        &self,
        board: &Board,
        shard: u32,
        k: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        check_shard(board, shard)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(keyspace::shard_zset(board, shard))
            .arg(0)
            .arg((k - 1).min(i64::MAX as usize) as i64);
        if board.order == Order::Desc {
            cmd.arg("REV");
        }
        cmd.arg("WITHSCORES");
        parse_entries(&self.query(&cmd).await.map_err(unavailable)?)
    }

    /// `ZCOUNT` of the scores strictly better than the exclusive `bound`
    /// (`(score`, formatted once per fan-out, not once per shard) and
    /// `ZCARD`. Each command is sized up front, so building it never
    /// reallocates.
    fn counts_calls(board: &Board, shard: u32, bound: &str) -> ShardCalls {
        let key = keyspace::shard_zset(board, shard);
        let (min, max) = match board.order {
            Order::Desc => (bound, "+inf"),
            Order::Asc => ("-inf", bound),
        };
        let mut zcount = Cmd::with_capacity(4, 6 + key.len() + min.len() + max.len());
        zcount.arg("ZCOUNT").arg(&key).arg(min).arg(max);
        let mut zcard = Cmd::with_capacity(2, 5 + key.len());
        zcard.arg("ZCARD").arg(&key);
        ShardCalls {
            slot: slot_of(&key),
            calls: vec![Call::plain(zcount), Call::plain(zcard)],
        }
    }

    fn neighbours_calls(&self, board: &Board, shard: u32, anchor: &Entry, n: usize) -> ShardCalls {
        let key = keyspace::shard_zset(board, shard);
        let args = [
            score_arg(anchor.score),
            anchor.member.as_str().to_string(),
            n.min(MAX_NEIGHBOURS).to_string(),
        ];
        let call = self.script_call(
            true,
            &self.neighbours_sha,
            NEIGHBOURS_SCRIPT,
            std::slice::from_ref(&key),
            &args,
        );
        ShardCalls {
            slot: slot_of(&key),
            calls: vec![call],
        }
    }

    fn version_calls(&self, board: &Board, shard: u32) -> ShardCalls {
        let key = keyspace::shard_version(board, shard);
        let mut get = redis::cmd("GET");
        get.arg(&key);
        ShardCalls {
            slot: slot_of(&key),
            calls: vec![Call::plain(get)],
        }
    }

    /// Checks the shards, fans their calls out and parses each shard's
    /// replies.
    async fn per_shard<T>(
        &self,
        board: &Board,
        shards: &[u32],
        build: impl Fn(u32) -> ShardCalls + Sync,
        parse: impl Fn(&[Value]) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        for &shard in shards {
            check_shard(board, shard)?;
        }
        if shards.is_empty() {
            return Ok(Vec::new());
        }
        let (values, starts) = self.fan_out(shards, &build).await?;
        starts
            .windows(2)
            .map(|w| parse(&values[w[0]..w[1]]))
            .collect()
    }
}

fn first(values: &[Value]) -> Result<&Value, StoreError> {
    values.first().ok_or_else(|| corrupt("missing reply"))
}

#[async_trait]
impl Store for RedisStore {
    async fn apply(&self, board: &Board, write: &Write) -> Result<WriteOutcome, StoreError> {
        self.bound(self.apply_once(board, write)).await
    }

    async fn top(&self, board: &Board, shard: u32, k: usize) -> Result<Vec<Entry>, StoreError> {
        self.bound(self.top_once(board, shard, k)).await
    }

    async fn score(
        &self,
        board: &Board,
        shard: u32,
        member: &MemberId,
    ) -> Result<Option<f64>, StoreError> {
        check_shard(board, shard)?;
        let mut cmd = redis::cmd("ZSCORE");
        cmd.arg(keyspace::shard_zset(board, shard))
            .arg(member.as_str());
        let reply = self
            .bound(async { self.query(&cmd).await.map_err(unavailable) })
            .await?;
        match reply {
            Value::Nil => Ok(None),
            other => parse_score(&other).map(Some),
        }
    }

    async fn counts(
        &self,
        board: &Board,
        shards: &[u32],
        score: f64,
    ) -> Result<Vec<ShardCounts>, StoreError> {
        let bound = format!("({}", score_arg(score));
        let work = self.per_shard(
            board,
            shards,
            |s| Self::counts_calls(board, s, &bound),
            |values| {
                Ok(ShardCounts {
                    better: parse_count(first(values)?)?,
                    total: parse_count(values.get(1).ok_or_else(|| corrupt("missing ZCARD"))?)?,
                })
            },
        );
        self.bound(work).await
    }

    async fn neighbours(
        &self,
        board: &Board,
        shards: &[u32],
        anchor: &Entry,
        n: usize,
    ) -> Result<Vec<Neighbours>, StoreError> {
        let work = self.per_shard(
            board,
            shards,
            |s| self.neighbours_calls(board, s, anchor, n),
            |values| parse_neighbours(first(values)?, board.order),
        );
        self.bound(work).await
    }

    async fn versions(&self, board: &Board, shards: &[u32]) -> Result<Vec<u64>, StoreError> {
        let work = self.per_shard(
            board,
            shards,
            |s| self.version_calls(board, s),
            |values| parse_count(first(values)?),
        );
        self.bound(work).await
    }

    async fn audit_tail(
        &self,
        board: &Board,
        shard: u32,
        n: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        check_shard(board, shard)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("XREVRANGE");
        cmd.arg(keyspace::shard_audit(board, shard))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(n);
        let reply = self
            .bound(async { self.query(&cmd).await.map_err(unavailable) })
            .await?;
        array(&reply)?.iter().map(parse_audit).collect()
    }

    async fn put_snapshot(
        &self,
        board: &Board,
        scope: Scope,
        bytes: Bytes,
    ) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(keyspace::snapshot(board, scope))
            .arg(bytes.as_ref());
        self.bound(async { self.query(&cmd).await.map_err(unavailable) })
            .await
            .map(|_| ())
    }

    async fn get_snapshot(&self, board: &Board, scope: Scope) -> Result<Option<Bytes>, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(keyspace::snapshot(board, scope));
        let reply = self
            .bound(async { self.query(&cmd).await.map_err(unavailable) })
            .await?;
        match reply {
            Value::Nil => Ok(None),
            Value::BulkString(b) => Ok(Some(Bytes::from(b))),
            other => Err(corrupt(format!("snapshot is not a string: {other:?}"))),
        }
    }

    /// `PING` on every master: ready only when every slot can be served.
    async fn ping(&self) -> Result<(), StoreError> {
        let cmd = redis::cmd("PING");
        self.bound(async { self.query(&cmd).await.map_err(unavailable) })
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn score_text_round_trips() {
        for x in [
            0.0,
            0.1,
            0.1 + 0.2,
            -2.5,
            MAX_SCORE,
            -MAX_SCORE,
            MAX_SCORE - 1.0,
            1e-300,
            5e-324,
            123_456_789.123_456_78,
        ] {
            let s = score_arg(x);
            assert_eq!(s.parse::<f64>().unwrap().to_bits(), x.to_bits(), "{s}");
        }
    }

    #[test]
    fn idempotency_keys_separate_members_and_keys() {
        let b = Board::new(BoardName::new("b").unwrap());
        let m = |s: &str| MemberId::new(s).unwrap();
        let one = idempotency_key(&b, 0, &m("a:b"), "c");
        let two = idempotency_key(&b, 0, &m("a"), "b:c");
        assert_ne!(one, two);
        assert!(one.starts_with(&keyspace::shard_idempotency_prefix(&b, 0)));
        assert_eq!(slot_of(&one), slot_of(&keyspace::shard_zset(&b, 0)));
    }

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
        let keys = ["{st:b:all:3}:z".to_string()];
        let argv = ["5e0".to_string(), "m".to_string()];
        let mut cmd = redis::cmd("EVALSHA_RO");
        cmd.arg("abc123").arg(keys.len()).arg(&keys).arg(&argv);
        let call = Call {
            cmd,
            script: Some(("EVAL_RO", "return 1")),
        };
        assert_eq!(
            args(&call.fallback().unwrap()),
            ["EVAL_RO", "return 1", "1", "{st:b:all:3}:z", "5e0", "m"]
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
