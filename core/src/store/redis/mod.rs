//! The Redis Cluster backend: [`RedisStore`] keeps scores in sorted sets on
//! a Redis Cluster (Redis >= 7), with the key layout of [`crate::keyspace`].
//!
//! # Writes
//!
//! Every key of a shard carries the shard's hash tag `{st:STORAGE:SHARD}`
//! (`STORAGE` the board's [`crate::Board::storage_name`]: the board name,
//! or `TENANT.BOARD` outside tenant `public`; `{sl:TENANT:SHARD}:b:STORAGE`
//! for a board fed by target events, see "Events and likes"), whatever the
//! period, so a write is ONE Lua script ([`WRITE_SCRIPT`]) on
//! one slot, atomic on the node that owns it: idempotency check, the op in
//! the current period of every kind of the board, the member's score in
//! every blend (each blend's set rebuilt first when one of its parts rolled
//! over), a version bump of each period and blend moved and the audit
//! record, or none of them. `incr` refuses a sum beyond +-2^53 in any
//! period with the same TwoSum test as [`crate::types::checked_add`],
//! before anything is written.
//!
//! Which period is current is decided by the store's clock (`TIME` in the
//! script), not the gateway's: the gateway sends each kind's periods p-2
//! to p+1 around its own clock's current period and the script picks the
//! one that holds the store's time. A gateway whose clock is off by more
//! than a period gets [`StoreError::Unavailable`] naming the clock skew,
//! and nothing is written. Closed periods are dropped by Redis's own
//! expiry: the first write to a period in a shard sets `PEXPIREAT` on its
//! sorted set and version at the period's end plus the board's
//! `closed_retention`, and snapshots of such a period get the same time
//! (`PXAT`). `scripts.rs` documents every script's KEYS and ARGV.
//!
//! [`Store::maintain`] and [`Store::set_blend`] run [`BLEND_SCRIPT`] once
//! per shard, pipelined per master like the fan-out reads below: it
//! resolves each blend's parts by the store's clock and rebuilds the blends
//! whose parts rolled over (`maintain`; a board without blends costs no
//! call), or stores new parts and rebuilds (`set_blend`).
//!
//! The scripts are
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
//! `counts`, `neighbours`, `page_after` and `versions` group the shards by
//! the master that owns their slot (from `CLUSTER SLOTS`, refreshed when a
//! pipeline fails) and send one pipeline per master, all masters at once. A node
//! answers a pipeline of commands on different slots as long as it owns
//! each of them; when the grouping was stale, the pipeline fails and that
//! group is re-sent as single commands, which redis-rs routes and redirects
//! itself. `neighbours` runs [`NEIGHBOURS_SCRIPT`] (read-only, `EVALSHA_RO`)
//! per shard, which places the anchor among tied scores by member bytes;
//! `page_after` runs the same script asking for one side only (and a plain
//! `ZRANGE` for the first page).
//!
//! # Bounds
//!
//! The client gets `connect_timeout`, `response_timeout` (which redis-rs
//! also uses as the bound of one request including its retries), a small
//! retry count and retry waits of tens of milliseconds instead of the
//! crate's defaults (16 retries, waits from 1.28 s upwards). On top of that
//! every store call runs under `tokio::time::timeout` of
//! `connect_timeout + 2 x response_timeout` ([`RedisOptions::call_bound`]),
//! so no call outlives its bound whatever the client does.
//!
//! A failed read is [`StoreError::Unavailable`]: a read changes nothing, so
//! there is no outcome to be unsure of. A failed write is Unavailable only
//! when the script certainly did not run: no connection could be made
//! (refused, no node for the slot, no connection at all) or the node
//! answered one of the errors it gives instead of executing (`CLUSTERDOWN`,
//! `MOVED`/`ASK` after the retries, `TRYAGAIN`, `READONLY`, `LOADING`,
//! `NOSCRIPT`, `OOM`, `BUSY`). Everything else is
//! [`StoreError::OutcomeUnknown`]: the call bound or the client's response
//! timeout ran out, the connection dropped or was reset after sending, or
//! any error this code cannot place; the write may have been applied and
//! the caller retries it with the same idempotency key. Claiming "nothing
//! was applied" for a write that was is the worse error, so doubt goes to
//! OutcomeUnknown. One case stays out of reach: redis-rs re-sends a request
//! whose connection dropped, and when that retry is refused only the
//! refusal comes back, so a write sent just before its node died can be
//! reported Unavailable. Replies this code cannot read are
//! [`StoreError::Corrupt`], `incr` out of range [`StoreError::OutOfRange`]
//! and a key reused with another write [`StoreError::IdempotencyConflict`].
//! The script's own refusals, which write nothing, are
//! [`StoreError::Unavailable`] for clock skew (another gateway, or this
//! one once its clock is fixed, can write) and [`StoreError::Corrupt`] for
//! a blend part of a kind the board does not write.
//!
//! # Events and likes
//!
//! A tenant's likes live in its likes space, `{sl:TENANT:SHARD}` by the
//! target's shard ([`crate::keyspace::likes_tag`] has the keys), and every
//! board fed by `target` keeps its shards in those slots
//! (`{sl:TENANT:SHARD}:b:STORAGE`), so [`Store::apply_events`] is one
//! [`EVENTS_SCRIPT`] call per shard batch (at most 64 events, in order):
//! per event, atomically, the dedup record, the cooldown, the like state
//! machine, the target's counts and every target-fed board moved in every
//! current period and blend exactly as an `incr` write (the write's body
//! is the shared `move.lua`), or nothing when the event is refused. The
//! batches of a call go out as one pipeline per master
//! (`send_ordered` in `fanout.rs`): a node runs them in order, and nothing
//! that may have run is re-sent, so a call that failed after sending is
//! [`StoreError::OutcomeUnknown`] and the caller retries with the same
//! event ids (the events that had run answer as repeats).
//!
//! The like state is one small string per standing like,
//! `{sl:t:s}:ls:LEN:TARGET:ACTOR` = `l` or `d`, deleted at none: no key
//! grows with a target's audience, so a viral target is many small keys
//! spread over its slot, not one set of ten million actors. The counts are
//! one hash per target (two fields, a field at 0 deleted).
//!
//! What is keyed by someone else (the actor's list, the owner's total,
//! boards fed by `actor` or `owner`) lives in that member's slot and
//! follows from the shard's stream `{sl:t:s}:x`: the script appends each
//! applied event that moved the like count or has a nonzero delta for an
//! actor- or owner-fed board (the deltas are computed with the weights of
//! the call, so weights changed later apply to later events only), and
//! [`Store::follow_events`] is a consumer of group `standings`
//! ([`FOLLOW_TAKE_SCRIPT`]): a consumer gets its own unacknowledged
//! entries first, then entries another consumer left unacknowledged for
//! longer than the claim time ([`RedisStore::with_claim_idle`], 5 s: that
//! consumer died), and new entries only while no consumer holds any, so
//! each stream is applied in order by one holder at a time. The lists and
//! totals move in one [`FOLLOW_SCRIPT`] call per destination shard, once
//! per (event id, side) by a dedup record kept `dedup_ttl`; actor- and
//! owner-fed boards get an `incr` through [`Store::apply`] with the
//! idempotency key `evt:ID`; the entries are acknowledged last. Delivery
//! is at least once and each event applies once: a consumer killed at any
//! point leaves its entries pending, and whoever takes them repeats what
//! was done. These follow the like by up to the lag
//! ([`Store::event_lag`]: the group's `lag` plus its pending entries, per
//! [`LAG_SCRIPT`]). Within a step entries are applied in the order their
//! events happened (the store's time), so an actor's list, trimmed to the
//! newest `recent_per_actor`, is trimmed as the in-memory store trims it;
//! entries of streams that lag behind others by more than a step can land
//! after later likes of the same actor. The streams keep about
//! [`EVENT_STREAM_MAXLEN`] entries per shard; what the group has not read
//! when it is trimmed is lost to the followers (the lag has shown it for
//! long by then).
//!
//! Run-time weights are a hash, [`crate::keyspace::WEIGHTS`], next to the
//! catalog.
//!
//! ## What it costs per like in bytes
//!
//! Measured on the test cluster (3 masters, Redis 7.0.15, jemalloc, cluster
//! mode) by `measure_memory_per_like` in `core/tests/redis_cluster.rs`
//! (`cargo test -p standings-core --test redis_cluster -- --ignored
//! --nocapture measure_memory_per_like`): 100,000 likes of distinct pairs
//! (ids like `user:1000000`, `video:5000000`, 17-byte event ids), 2,000
//! actors with 50 likes each, 5,000 targets with 20 each, 500 owners, one
//! target-fed board, 100 shards; then each kind of key deleted in turn,
//! reading `used_memory` (two runs; `MEMORY USAGE` of one key in brackets):
//!
//! | what | bytes per like | kept |
//! | --- | --- | --- |
//! | like state `:ls:` (152 for a 46-byte key) | 190 to 199 | while the like stands |
//! | actor's list entry `:al:` (1,368 for 50: a listpack) | 28 to 38 | while it stands, newest `recent_per_actor` |
//! | target's counts `:lc:` (104 for 20 likes) | 6 to 7 | while any stand |
//! | owner's total `:ow:` (200 likes per owner) | under 2 | while any stand |
//! | event dedup record `:e:` (136) | 175 | `events.dedup_ttl` |
//! | consumer dedup records `:f:ID:a` and `:f:ID:o` (104 each) | 287 | `events.dedup_ttl` |
//! | stream entry `:x` (about 100 KB per 1,000 entries) | 90 | until trimmed, ~100,000 per shard |
//! | the board's audit record, sets and versions | 97 | audit trimmed per shard |
//!
//! In all 553 bytes per like after the events and 885 once followed. A
//! standing like costs about 235 bytes for good; the rest goes with
//! `dedup_ttl` (about 460 bytes: at a sustained R likes a second and the
//! default day that is 460 x R x 86,400 bytes, 40 GB for R = 1,000, which
//! is what to size `dedup_ttl` by) or with the streams' trimming. An
//! actor's list past 128 entries (Redis's `zset-max-listpack-entries`) is
//! a skiplist: 107 bytes per entry measured for 200. A cooldown key
//! (`:cd:`, 120) lives `likes.cooldown` only. Each byte more of id in a
//! key costs about one byte more.
//!
//! # Layout
//!
//! This file holds the store and its [`Store`] impl; `likes` the events,
//! likes reads and the stream consumer; `scripts` the Lua scripts (kept as
//! `periods.lua`, the head the write, blend and events scripts share,
//! `move.lua`, one board's move shared by the write and events scripts,
//! `write.lua`, `blend.lua`, `neighbours.lua`, `remove.lua`, `events.lua`,
//! `follow_take.lua`, `follow.lua`, `lag.lua` and `counts.lua`), `fanout` the
//! per-master pipelines, `many` the calls on lists (scores and counts of
//! many members, batches of writes) and `reply` the decoding of replies.

mod fanout;
mod index;
mod likes;
mod many;
mod reply;
mod scripts;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, RedisError, ServerErrorKind, Value};

use self::fanout::{parse_cluster_slots, slot_of, Call, ShardCalls, SlotMap};
pub use self::likes::{EVENT_GROUP, EVENT_STREAM_MAXLEN};
use self::reply::{
    array, corrupt, first, parse_audit, parse_count, parse_entries, parse_metas, parse_neighbours,
    parse_page, parse_rebuilt, parse_score, parse_top, parse_write, unavailable, write_failure,
};
use self::scripts::MAX_NEIGHBOURS;
pub use self::scripts::{
    BLEND_SCRIPT, COUNTS_SCRIPT, ENTRY_SCRIPT, EVENTS_SCRIPT, FOLLOW_SCRIPT, FOLLOW_TAKE_SCRIPT,
    INDEX_SCAN_SCRIPT, INDEX_TAIL_SCRIPT, LAG_SCRIPT, NEIGHBOURS_SCRIPT, PLACES_SCRIPT,
    REMOVE_SCRIPT, TOP_SCRIPT, WRITE_SCRIPT,
};
use super::{
    check_shard, now_ms_i64, AuditRecord, IndexPos, IndexScan, IndexTail, Neighbours, ShardCounts,
    ShardCountsMany, ShardPage, Store, StoreError, Write, WriteOutcome,
};
use crate::blend::{encode_parts, Blend};
use crate::board::Board;
use crate::events::{Event, EventOutcome, LikeCounts, LikeSpace, LikedTarget, Weights};
use crate::keyspace::{self, Scope};
use crate::period::PeriodKind;
use crate::types::{stored_name, Entry, MemberId, Meta, Order, Ties};

/// How many audit records a shard's stream keeps, approximately
/// (`XADD ... MAXLEN ~`): the memory store's [`super::memory::AUDIT_CAPACITY`].
pub const AUDIT_MAXLEN: usize = super::memory::AUDIT_CAPACITY;

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
    /// SHA1 of [`TOP_SCRIPT`], for `EVALSHA_RO`.
    top_sha: String,
    /// SHA1 of [`ENTRY_SCRIPT`], for `EVALSHA_RO`.
    entry_sha: String,
    /// SHA1 of [`PLACES_SCRIPT`], for `EVALSHA_RO`.
    places_sha: String,
    /// SHA1 of [`BLEND_SCRIPT`], for `EVALSHA`.
    blend_sha: String,
    /// SHA1 of [`REMOVE_SCRIPT`].
    remove_sha: String,
    /// SHA1 of [`EVENTS_SCRIPT`].
    events_sha: String,
    /// SHA1 of [`FOLLOW_TAKE_SCRIPT`].
    follow_take_sha: String,
    /// SHA1 of [`FOLLOW_SCRIPT`].
    follow_sha: String,
    /// SHA1 of [`LAG_SCRIPT`], for `EVALSHA_RO`.
    lag_sha: String,
    /// SHA1 of [`COUNTS_SCRIPT`], for `EVALSHA_RO`.
    counts_sha: String,
    /// SHA1 of [`INDEX_SCAN_SCRIPT`], for `EVALSHA_RO`.
    index_scan_sha: String,
    /// SHA1 of [`INDEX_TAIL_SCRIPT`], for `EVALSHA_RO`.
    index_tail_sha: String,
    /// Whether [`Store::counts_many`] sends [`COUNTS_SCRIPT`] per node
    /// (true) or plain commands per shard ([`RedisStore::with_counts_script`]).
    counts_script: bool,
    /// How long an event-stream entry stays delivered and unacknowledged
    /// before another consumer claims it ([`RedisStore::with_claim_idle`]).
    claim_idle: Duration,
}

/// The default of [`RedisStore::with_claim_idle`]: well above a follow
/// step's bound, so a live consumer's entries are not taken from it.
pub const DEFAULT_CLAIM_IDLE: Duration = Duration::from_secs(5);

impl RedisStore {
    /// Connects to the cluster through `nodes` (`host:port` seeds; the rest
    /// are discovered), checks that every master answers, loads the
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
            entry_sha: redis::Script::new(ENTRY_SCRIPT).get_hash().to_string(),
            places_sha: redis::Script::new(PLACES_SCRIPT).get_hash().to_string(),
            top_sha: redis::Script::new(TOP_SCRIPT).get_hash().to_string(),
            blend_sha: redis::Script::new(BLEND_SCRIPT).get_hash().to_string(),
            remove_sha: redis::Script::new(REMOVE_SCRIPT).get_hash().to_string(),
            events_sha: redis::Script::new(EVENTS_SCRIPT).get_hash().to_string(),
            follow_take_sha: redis::Script::new(FOLLOW_TAKE_SCRIPT)
                .get_hash()
                .to_string(),
            follow_sha: redis::Script::new(FOLLOW_SCRIPT).get_hash().to_string(),
            lag_sha: redis::Script::new(LAG_SCRIPT).get_hash().to_string(),
            counts_sha: redis::Script::new(COUNTS_SCRIPT).get_hash().to_string(),
            index_scan_sha: redis::Script::new(INDEX_SCAN_SCRIPT).get_hash().to_string(),
            index_tail_sha: redis::Script::new(INDEX_TAIL_SCRIPT).get_hash().to_string(),
            counts_script: true,
            claim_idle: DEFAULT_CLAIM_IDLE,
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

    /// The same store with another claim time: how long an event-stream
    /// entry delivered to a consumer may stay unacknowledged before
    /// [`Store::follow_events`] of another consumer takes it over (the
    /// first consumer died, or is stuck). Default [`DEFAULT_CLAIM_IDLE`];
    /// tests set it to a fraction of a second. Not a [`RedisOptions`]
    /// field, so the config's `[store]` section and its users stay as they
    /// are.
    pub fn with_claim_idle(mut self, idle: Duration) -> Self {
        self.claim_idle = idle;
        self
    }

    /// The same store counting many probes with plain `ZCOUNT`/`ZCARD`
    /// commands (the places of `first_achiever` anchors with the
    /// neighbours script) pipelined per node instead of one
    /// [`COUNTS_SCRIPT`] (or [`PLACES_SCRIPT`]) call per node (`false`);
    /// default `true`. For the benchmark that compares the two
    /// (`docs/benchmarks.md`), and for a cluster older than 7.0.
    pub fn with_counts_script(mut self, on: bool) -> Self {
        self.counts_script = on;
        self
    }

    /// `SCRIPT LOAD` of the scripts on every node (redis-rs sends it to
    /// all). A node that is down now gets the script on first use through
    /// the `EVAL` fallback, so a failure here is logged, not fatal.
    async fn load_scripts(&self) -> Result<(), StoreError> {
        for (name, source) in [
            ("write", WRITE_SCRIPT),
            ("neighbours", NEIGHBOURS_SCRIPT),
            ("top", TOP_SCRIPT),
            ("blend", BLEND_SCRIPT),
            ("remove", REMOVE_SCRIPT),
            ("events", EVENTS_SCRIPT),
            ("follow-take", FOLLOW_TAKE_SCRIPT),
            ("follow", FOLLOW_SCRIPT),
            ("lag", LAG_SCRIPT),
            ("counts", COUNTS_SCRIPT),
            ("entry", ENTRY_SCRIPT),
            ("places", PLACES_SCRIPT),
            ("index-scan", INDEX_SCAN_SCRIPT),
            ("index-tail", INDEX_TAIL_SCRIPT),
        ] {
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

    /// Runs a read (or a setup call) under the call bound; past it the call
    /// is Unavailable.
    async fn bound<T>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        bounded(self.opts.call_bound(), fut).await
    }

    /// Runs a write under the call bound; past it the write may have been
    /// sent and applied, so it is OutcomeUnknown.
    async fn bound_write<T>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let limit = self.opts.call_bound();
        tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| {
            Err(StoreError::OutcomeUnknown(format!(
                "no answer to the write from Redis Cluster within {limit:?}"
            )))
        })
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

fn is_noscript(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::NoScript)
}

/// A score as text that parses back to the same `f64` (shortest form).
fn score_arg(x: f64) -> String {
    format!("{x:e}")
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

/// Each blend's `:z:`, `:v:`, `:bp:` and `:bs:` key in the shard of
/// `tag`, the order the scripts read them in.
fn push_blend_keys<'b>(keys: &mut Vec<String>, tag: &str, blends: impl Iterator<Item = &'b Blend>) {
    for blend in blends {
        let name = &*blend.name;
        for infix in [":z:", ":v:", ":bp:", ":bs:"] {
            keys.push(format!("{tag}{infix}{name}"));
        }
    }
}

/// The period descriptors the scripts choose current periods from (see
/// `scripts.rs`): for each kind of the board, `all` alone, or the kind and
/// the four periods p-2, p-1, p, p+1 around `now_ms` (the gateway's
/// clock), by id, with the starts of p-1, p and p+1 and the end of p+1.
fn push_period_args(args: &mut Vec<String>, board: &Board, now_ms: i64) {
    let ms = |at: Option<i64>, none: &str| at.map_or_else(|| none.to_string(), |at| at.to_string());
    for w in board.schedule(now_ms).kinds.iter() {
        if w.kind == PeriodKind::All {
            args.push("all".to_string());
            continue;
        }
        args.extend([
            w.kind.to_string(),
            w.earlier.id.to_string(),
            w.previous.id.to_string(),
            ms(w.previous.starts_ms, "-inf"),
            w.current.id.to_string(),
            ms(w.current.starts_ms, "-inf"),
            w.next.id.to_string(),
            ms(w.next.starts_ms, "-inf"),
            ms(w.next.ends_ms, "inf"),
        ]);
    }
}

/// The board's order as the write and events scripts read it: `desc` or
/// `asc`, and ` first_achiever` after it for a board whose equal scores
/// rank by who reached them first (see `move.lua`).
fn order_arg(board: &Board) -> &'static str {
    match (board.order, board.ties) {
        (Order::Desc, Ties::Shared) => "desc",
        (Order::Asc, Ties::Shared) => "asc",
        (Order::Desc, Ties::FirstAchiever) => "desc first_achiever",
        (Order::Asc, Ties::FirstAchiever) => "asc first_achiever",
    }
}

impl RedisStore {
    async fn apply_once(&self, board: &Board, write: &Write) -> Result<WriteOutcome, StoreError> {
        let call = self.write_call(board, write)?.call;
        let reply = self.run(&call).await.map_err(write_failure)?;
        parse_write(&reply)
    }

    /// The write script's call for `write` and the slot of its shard;
    /// [`Store::apply`] sends one, [`Store::apply_many`] a pipeline per
    /// node of them.
    fn write_call(&self, board: &Board, write: &Write) -> Result<fanout::SlotCall, StoreError> {
        let shard = board
            .shard_of(&write.member)
            .map_err(|e| corrupt(e.to_string()))?;
        let tag = keyspace::shard_tag(board, shard);
        let mut keys = Vec::with_capacity(2 + 4 * board.blends.len());
        keys.push(keyspace::shard_audit(board, shard));
        push_blend_keys(&mut keys, &tag, board.blends.iter());
        if let Some(key) = &write.idempotency_key {
            keys.push(idempotency_key(board, shard, &write.member, key));
        }
        let ttl_ms = board.idempotency_ttl.as_millis().max(1);
        let now = now_ms_i64();
        let mut args = Vec::with_capacity(13 + 9 * board.periods.len() + board.blends.len());
        args.extend([
            write.member.as_str().to_string(),
            write.op.as_str().to_string(),
            score_arg(write.value.get()),
            order_arg(board).to_string(),
            ttl_ms.to_string(),
            write.request_id.clone(),
            now.max(0).to_string(),
            write.idempotency_key.clone().unwrap_or_default(),
            AUDIT_MAXLEN.to_string(),
            format!("{:016x}", write.digest()),
            board.closed_retention.as_millis().to_string(),
            board.periods.len().to_string(),
            board.blends.len().to_string(),
        ]);
        push_period_args(&mut args, board, now);
        args.extend(board.blends.iter().map(|b| encode_parts(&b.parts)));
        args.push(write.meta.as_ref().map_or("", |m| m.as_str()).to_string());
        let call = self.script_call(false, &self.write_sha, WRITE_SCRIPT, &keys, &args);
        Ok(fanout::SlotCall {
            slot: slot_of(&tag),
            call,
        })
    }

    /// The blend script on `shards` (see [`BLEND_SCRIPT`]): `mode` with
    /// `blends` and one parts text each; answers the shards' rebuild
    /// counts summed.
    async fn blend_script(
        &self,
        board: &Board,
        shards: &[u32],
        mode: &str,
        blends: &[Blend],
        parts: impl Iterator<Item = String>,
    ) -> Result<u64, StoreError> {
        let mut args = Vec::with_capacity(3 + 9 * board.periods.len() + blends.len());
        args.extend([
            mode.to_string(),
            board.periods.len().to_string(),
            blends.len().to_string(),
        ]);
        push_period_args(&mut args, board, now_ms_i64());
        args.extend(parts);
        let build = |shard: u32| {
            let tag = keyspace::shard_tag(board, shard);
            let mut keys = Vec::with_capacity(4 * blends.len());
            push_blend_keys(&mut keys, &tag, blends.iter());
            let call = self.script_call(false, &self.blend_sha, BLEND_SCRIPT, &keys, &args);
            ShardCalls {
                slot: slot_of(&tag),
                calls: vec![call],
            }
        };
        let work = self.per_shard(board, shards, build, |values| parse_rebuilt(first(values)?));
        Ok(self.bound(work).await?.into_iter().sum())
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
        let keys = [
            keyspace::shard_zset(board, shard),
            keyspace::shard_meta(board, shard),
        ];
        let args = [
            (k - 1).min(i64::MAX as usize).to_string(),
            if board.order == Order::Desc {
                "rev"
            } else {
                ""
            }
            .to_string(),
            board.ties.as_str().to_string(),
        ];
        let call = self.script_call(true, &self.top_sha, TOP_SCRIPT, &keys, &args);
        parse_top(&self.run(&call).await.map_err(unavailable)?, board.ties)
    }

    /// `HMGET` of each shard's meta hash for its members, one call per
    /// shard, fanned out per node.
    async fn metas_once(
        &self,
        board: &Board,
        members: &[MemberId],
    ) -> Result<Vec<Option<Meta>>, StoreError> {
        let mut by_shard: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
        for (i, m) in members.iter().enumerate() {
            let shard = board.shard_of(m).map_err(|e| corrupt(e.to_string()))?;
            by_shard.entry(shard).or_default().push(i);
        }
        let shards: Vec<u32> = by_shard.keys().copied().collect();
        let build = |shard: u32| {
            let key = keyspace::shard_meta(board, shard);
            let mut cmd = redis::cmd("HMGET");
            cmd.arg(&key);
            for &i in by_shard.get(&shard).map(Vec::as_slice).unwrap_or_default() {
                cmd.arg(members[i].as_str());
            }
            ShardCalls {
                slot: slot_of(&key),
                calls: vec![Call::plain(cmd)],
            }
        };
        let per_shard = self
            .per_shard(board, &shards, build, |values| parse_metas(first(values)?))
            .await?;
        let mut out = vec![None; members.len()];
        for (metas, indexes) in per_shard.into_iter().zip(by_shard.values()) {
            if metas.len() != indexes.len() {
                return Err(corrupt("HMGET reply of the wrong length"));
            }
            for (meta, &i) in metas.into_iter().zip(indexes) {
                out[i] = meta;
            }
        }
        Ok(out)
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
        self.anchor_calls(board, shard, anchor, n, n)
    }

    /// The neighbours script with `down` entries below the anchor and `up`
    /// above it, in ascending (score, member) positions.
    fn anchor_calls(
        &self,
        board: &Board,
        shard: u32,
        anchor: &Entry,
        down: usize,
        up: usize,
    ) -> ShardCalls {
        let key = keyspace::shard_zset(board, shard);
        let args = [
            score_arg(anchor.score),
            stored_name_of(board, anchor),
            down.min(MAX_NEIGHBOURS).to_string(),
            up.min(MAX_NEIGHBOURS).to_string(),
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

    /// A deep page's call for one shard: the best `n` (`ZRANGE`) without a
    /// cursor, else the neighbours script reading only the worse side.
    fn page_calls(&self, board: &Board, shard: u32, after: Option<&Entry>, n: usize) -> ShardCalls {
        match after {
            Some(anchor) => match board.order {
                Order::Desc => self.anchor_calls(board, shard, anchor, n, 0),
                Order::Asc => self.anchor_calls(board, shard, anchor, 0, n),
            },
            None => {
                let key = keyspace::shard_zset(board, shard);
                let mut cmd = redis::cmd("ZRANGE");
                cmd.arg(&key)
                    .arg(0)
                    .arg(n.saturating_sub(1).min(MAX_NEIGHBOURS));
                if board.order == Order::Desc {
                    cmd.arg("REV");
                }
                cmd.arg("WITHSCORES");
                ShardCalls {
                    slot: slot_of(&key),
                    calls: vec![Call::plain(cmd)],
                }
            }
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

/// The name `entry` has in its board's sorted sets: the member, or on a
/// `first_achiever` board its tie and the member
/// ([`crate::types::stored_name`]).
fn stored_name_of(board: &Board, entry: &Entry) -> String {
    match board.ties {
        Ties::Shared => entry.member.as_str().to_string(),
        Ties::FirstAchiever => stored_name(entry.tie, entry.member.as_str()),
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn apply(&self, board: &Board, write: &Write) -> Result<WriteOutcome, StoreError> {
        self.bound_write(self.apply_once(board, write)).await
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
        if board.ties == Ties::FirstAchiever {
            let mut one = self.entries_of(board, std::slice::from_ref(member)).await?;
            return Ok(one.pop().flatten().map(|e| e.score));
        }
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

    async fn metas(
        &self,
        board: &Board,
        members: &[MemberId],
    ) -> Result<Vec<Option<Meta>>, StoreError> {
        if members.is_empty() {
            return Ok(Vec::new());
        }
        self.bound(self.metas_once(board, members)).await
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

    async fn scores_many(
        &self,
        board: &Board,
        members: &[MemberId],
    ) -> Result<Vec<Option<f64>>, StoreError> {
        if board.ties == Ties::FirstAchiever {
            let entries = self.entries_of(board, members).await?;
            return Ok(entries.into_iter().map(|e| e.map(|e| e.score)).collect());
        }
        self.bound(self.scores_many_once(board, members)).await
    }

    async fn scores_and_metas(
        &self,
        board: &Board,
        members: &[MemberId],
    ) -> Result<Vec<(Option<f64>, Option<Meta>)>, StoreError> {
        if board.ties == Ties::FirstAchiever {
            let read = self.bound(self.entry_reads_once(board, members)).await?;
            return Ok(read
                .into_iter()
                .map(|(e, meta)| (e.map(|e| e.score), meta))
                .collect());
        }
        self.bound(self.scores_and_metas_once(board, members)).await
    }

    async fn entries_of(
        &self,
        board: &Board,
        members: &[MemberId],
    ) -> Result<Vec<Option<Entry>>, StoreError> {
        if board.ties == Ties::FirstAchiever {
            let read = self.bound(self.entry_reads_once(board, members)).await?;
            return Ok(read
                .into_iter()
                .map(|(e, meta)| {
                    e.map(|mut e| {
                        e.meta = meta;
                        e
                    })
                })
                .collect());
        }
        let read = self.scores_and_metas(board, members).await?;
        Ok(crate::store::entries_from_scores(members, read))
    }

    async fn counts_many(
        &self,
        board: &Board,
        shards: &[u32],
        scores: &[f64],
    ) -> Result<Vec<ShardCountsMany>, StoreError> {
        self.bound(self.counts_many_once(board, shards, scores))
            .await
    }

    async fn places_many(
        &self,
        board: &Board,
        shards: &[u32],
        anchors: &[Entry],
    ) -> Result<Vec<ShardCountsMany>, StoreError> {
        self.bound(self.places_many_once(board, shards, anchors))
            .await
    }

    async fn apply_many(
        &self,
        board: &Board,
        writes: &[Write],
    ) -> Vec<Result<WriteOutcome, StoreError>> {
        self.apply_many_chunked(board, writes).await
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
            |values| parse_neighbours(first(values)?, board.order, board.ties),
        );
        self.bound(work).await
    }

    async fn page_after(
        &self,
        board: &Board,
        shards: &[u32],
        after: Option<&Entry>,
        n: usize,
    ) -> Result<Vec<ShardPage>, StoreError> {
        if n == 0 && after.is_none() {
            // `ZRANGE 0 -1` would be the whole shard.
            return Ok(vec![ShardPage::default(); shards.len()]);
        }
        let work = self.per_shard(
            board,
            shards,
            |s| self.page_calls(board, s, after, n),
            |values| match after {
                Some(_) => parse_page(first(values)?, board.order, board.ties),
                None => Ok(ShardPage {
                    entries: parse_entries(first(values)?, board.ties)?,
                    ahead: 0,
                }),
            },
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
        // A snapshot of a period that closes expires with its data.
        if let Some(at) = board.expires_at_ms(&board.period) {
            cmd.arg("PXAT").arg(at.max(1));
        }
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

    /// The blend script in `maintain` mode on every shard, one pipeline
    /// per master; closed periods need nothing, Redis expires them.
    async fn maintain(&self, board: &Board, shards: &[u32]) -> Result<u64, StoreError> {
        if board.blends.is_empty() {
            for &shard in shards {
                check_shard(board, shard)?;
            }
            return Ok(0);
        }
        let parts = board.blends.iter().map(|b| encode_parts(&b.parts));
        self.blend_script(board, shards, "maintain", &board.blends, parts)
            .await
    }

    /// The blend script in `set` mode on every shard of the board. Shards
    /// that answered keep the new parts when another fails; the call is
    /// safe to repeat.
    async fn set_blend(&self, board: &Board, blend: &Blend) -> Result<(), StoreError> {
        let parts = std::iter::once(encode_parts(&blend.parts));
        let blends = std::slice::from_ref(blend);
        self.blend_script(board, &board.all_shards(), "set", blends, parts)
            .await
            .map(|_| ())
    }

    /// `PING` on every master: ready only when every slot can be served.
    async fn remove(
        &self,
        board: &Board,
        member: &MemberId,
        request_id: &str,
    ) -> Result<bool, StoreError> {
        let shard = board.shard_of(member).map_err(|e| corrupt(e.to_string()))?;
        let keys = [keyspace::shard_audit(board, shard)];
        let now = now_ms_i64();
        let mut args = vec![
            member.as_str().to_string(),
            request_id.to_string(),
            now.max(0).to_string(),
            AUDIT_MAXLEN.to_string(),
        ];
        for w in board.schedule(now).kinds.iter() {
            args.push(w.current.id.to_string());
            args.push(w.previous.id.to_string());
        }
        args.extend(board.blends.iter().map(|b| b.name.to_string()));
        let call = self.script_call(false, &self.remove_sha, REMOVE_SCRIPT, &keys, &args);
        let reply = self
            .bound_write(async { self.run(&call).await.map_err(write_failure) })
            .await?;
        match reply {
            Value::Int(n) => Ok(n > 0),
            other => Err(corrupt(format!("remove reply {other:?}"))),
        }
    }

    async fn catalog(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(keyspace::CATALOG);
        let reply = self
            .bound(async { self.query(&cmd).await.map_err(unavailable) })
            .await?;
        let items = match reply {
            Value::Array(items) => items,
            Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
            other => return Err(corrupt(format!("catalog reply {other:?}"))),
        };
        let text = |v: &Value| match v {
            Value::BulkString(b) => {
                String::from_utf8(b.clone()).map_err(|_| corrupt("catalog text"))
            }
            Value::SimpleString(s) => Ok(s.clone()),
            other => Err(corrupt(format!("catalog entry {other:?}"))),
        };
        let mut out: Vec<(String, String)> = items
            .chunks(2)
            .filter(|pair| pair.len() == 2)
            .map(|pair| Ok((text(&pair[0])?, text(&pair[1])?)))
            .collect::<Result<_, StoreError>>()?;
        out.sort();
        Ok(out)
    }

    async fn catalog_add(&self, name: &str, definition: &str) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("HSETNX");
        cmd.arg(keyspace::CATALOG).arg(name).arg(definition);
        let reply = self
            .bound_write(async { self.query(&cmd).await.map_err(write_failure) })
            .await?;
        Ok(matches!(reply, Value::Int(1)))
    }

    async fn catalog_remove(&self, name: &str) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("HDEL");
        cmd.arg(keyspace::CATALOG).arg(name);
        let reply = self
            .bound_write(async { self.query(&cmd).await.map_err(write_failure) })
            .await?;
        Ok(matches!(reply, Value::Int(1)))
    }

    async fn apply_events(
        &self,
        space: &LikeSpace,
        boards: &[Board],
        events: &[Event],
    ) -> Result<Vec<EventOutcome>, StoreError> {
        self.bound_write(self.apply_events_once(space, boards, events))
            .await
    }

    async fn like_counts(
        &self,
        space: &LikeSpace,
        targets: &[MemberId],
        actor: Option<&MemberId>,
    ) -> Result<Vec<LikeCounts>, StoreError> {
        self.bound(self.like_counts_once(space, targets, actor))
            .await
    }

    async fn actor_likes(
        &self,
        space: &LikeSpace,
        actor: &MemberId,
        limit: usize,
    ) -> Result<Vec<LikedTarget>, StoreError> {
        self.bound(self.actor_likes_once(space, actor, limit)).await
    }

    async fn owner_likes(&self, space: &LikeSpace, owner: &MemberId) -> Result<u64, StoreError> {
        self.bound(self.owner_likes_once(space, owner)).await
    }

    /// Not under one bound: each phase (take, lists and totals, each
    /// board write, acknowledgement) has its own.
    async fn follow_events(
        &self,
        space: &LikeSpace,
        boards: &[Board],
        shards: &[u32],
        consumer: &str,
        max: usize,
    ) -> Result<u64, StoreError> {
        self.follow_once(space, boards, shards, consumer, max).await
    }

    async fn event_lag(&self, space: &LikeSpace, shards: &[u32]) -> Result<u64, StoreError> {
        self.bound(self.event_lag_once(space, shards)).await
    }

    async fn weights(&self) -> Result<Vec<(String, Weights)>, StoreError> {
        self.bound(self.weights_once()).await
    }

    async fn set_weights(&self, board: &Board, weights: &Weights) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(keyspace::WEIGHTS)
            .arg(board.storage_name())
            .arg(weights.to_json());
        self.bound_write(async { self.query(&cmd).await.map_err(write_failure) })
            .await
            .map(|_| ())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let cmd = redis::cmd("PING");
        self.bound(async { self.query(&cmd).await.map_err(unavailable) })
            .await
            .map(|_| ())
    }

    async fn score_and_meta(
        &self,
        board: &Board,
        shard: u32,
        member: &MemberId,
    ) -> Result<(Option<f64>, Option<Meta>), StoreError> {
        if board.ties == Ties::FirstAchiever {
            check_shard(board, shard)?;
            let mut one = self
                .scores_and_metas(board, std::slice::from_ref(member))
                .await?;
            return one.pop().ok_or_else(|| corrupt("no answer for the member"));
        }
        // One shard's two reads in one pipeline: both keys carry its tag.
        let build = |shard: u32| {
            let zset = keyspace::shard_zset(board, shard);
            let mut zscore = redis::cmd("ZSCORE");
            zscore.arg(&zset).arg(member.as_str());
            let mut hmget = redis::cmd("HMGET");
            hmget
                .arg(keyspace::shard_meta(board, shard))
                .arg(member.as_str());
            ShardCalls {
                slot: slot_of(&zset),
                calls: vec![Call::plain(zscore), Call::plain(hmget)],
            }
        };
        let parse = |values: &[Value]| {
            let score = match first(values)? {
                Value::Nil => None,
                other => Some(parse_score(other)?),
            };
            let metas = parse_metas(values.get(1).ok_or_else(|| corrupt("missing HMGET"))?)?;
            Ok((score, metas.into_iter().next().flatten()))
        };
        let shards = [shard];
        let work = self.per_shard(board, &shards, build, parse);
        let mut got = self.bound(work).await?;
        got.pop().ok_or_else(|| corrupt("no answer for the shard"))
    }

    async fn entries_between(
        &self,
        board: &Board,
        shards: &[u32],
        min: f64,
        max: f64,
        limit: usize,
    ) -> Result<Vec<Vec<Entry>>, StoreError> {
        let bound = |x: f64| match x {
            x if x == f64::INFINITY => "+inf".to_string(),
            x if x == f64::NEG_INFINITY => "-inf".to_string(),
            x => score_arg(x),
        };
        let (min, max, limit) = (bound(min), bound(max), limit.to_string());
        let build = |shard: u32| {
            let key = keyspace::shard_zset(board, shard);
            let mut cmd = redis::cmd("ZRANGE");
            cmd.arg(&key)
                .arg(&min)
                .arg(&max)
                .arg("BYSCORE")
                .arg("LIMIT")
                .arg(0)
                .arg(&limit)
                .arg("WITHSCORES");
            ShardCalls {
                slot: slot_of(&key),
                calls: vec![Call::plain(cmd)],
            }
        };
        let work = self.per_shard(board, shards, build, |values| {
            parse_entries(first(values)?, board.ties)
        });
        self.bound(work).await
    }

    fn keeps_rank_index(&self) -> bool {
        true
    }

    async fn index_scan(
        &self,
        board: &Board,
        shards: &[u32],
        periods: &[Arc<str>],
        members: bool,
    ) -> Result<Vec<IndexScan>, StoreError> {
        // A whole shard in one reply: give it the bound of a few calls.
        let work = self.index_scan_once(board, shards, periods, members);
        bounded(self.opts.call_bound() * 4, work).await
    }

    async fn index_tail(
        &self,
        board: &Board,
        shards: &[u32],
        from: &[IndexPos],
        n: usize,
    ) -> Result<Vec<IndexTail>, StoreError> {
        self.bound(self.index_tail_once(board, shards, from, n))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::period::Period;
    use crate::types::{BoardName, MAX_SCORE};

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

    /// The write script picks a period by comparing the store's time with
    /// the starts of p-1, p, p+1 and the end of p+1 alone, so each period
    /// must end where the next starts, across DST changes and skipped days
    /// too.
    #[test]
    fn period_descriptors_are_contiguous_windows() {
        use crate::period::Timezone;
        let kinds: Vec<PeriodKind> = ["all", "hourly", "daily", "weekly", "monthly", "every:90s"]
            .iter()
            .map(|k| k.parse().unwrap())
            .collect();
        // Around Berlin's 2026 DST changes, and Apia's skipped 2011-12-30.
        let instants = [
            1_774_746_000_000_i64,
            1_792_890_000_000,
            1_325_239_200_000,
            1_764_547_200_000,
        ];
        for zone in ["UTC", "Europe/Berlin", "Pacific/Apia", "America/St_Johns"] {
            let tz = Timezone::parse(zone).unwrap();
            let board = Board {
                periods: Arc::from(kinds.clone()),
                timezone: tz.clone(),
                ..Board::new(BoardName::new("b").unwrap())
            };
            for at in instants {
                for offset in (-3..=3).map(|h| h * 1_800_000) {
                    let now = at + offset;
                    let mut args = Vec::new();
                    push_period_args(&mut args, &board, now);
                    assert_eq!(args[0], "all");
                    for (n, d) in args[1..].chunks(9).enumerate() {
                        let kind = kinds[n + 1];
                        assert_eq!(d[0], kind.to_string());
                        let period = |id: &str| Period::parse_id(id, &tz).unwrap();
                        let ids: Vec<Period> =
                            [1, 2, 4, 6].iter().map(|&i| period(&d[i])).collect();
                        let ms = |i: usize| d[i].parse::<i64>().unwrap();
                        assert_eq!(ids[2].id, kind.containing(&tz, now).id);
                        for w in ids.windows(2) {
                            assert_eq!(w[0].ends_ms, w[1].starts_ms, "{zone} {kind} at {now}");
                        }
                        assert_eq!(ids[1].starts_ms, Some(ms(3)));
                        assert_eq!(ids[2].starts_ms, Some(ms(5)));
                        assert_eq!(ids[3].starts_ms, Some(ms(7)));
                        assert_eq!(ids[3].ends_ms, Some(ms(8)));
                        assert!(ms(5) <= now && now < ms(7), "p holds the gateway's time");
                    }
                    assert_eq!(args.len(), 1 + 9 * (kinds.len() - 1));
                }
            }
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
}
