//! The durable embedded store: [`MemoryStore`] answers every read, and every
//! applied write is committed to an embedded database file on disk before
//! [`Store::apply`] returns, so with the default [`Sync::Commit`] a
//! restart, a `kill -9` or a power loss loses no acknowledged write
//! ([`Sync::Interval`] trades a bounded window of that for fewer fsyncs).
//!
//! # Why redb
//!
//! [redb](https://www.redb.org) is pure Rust, ACID, one file, a copy-on-write
//! B-tree: a commit writes new pages and then flips the root in the header,
//! so a torn write leaves the previous commit intact. With
//! [`redb::Durability::Immediate`] (its default) a commit returns after the
//! fsync, so it is durable on kill -9 and on power loss. It holds its own
//! lock on the file (an open file description lock on Linux), which gives
//! "one Standings process per data_dir" for free, and it has no background
//! threads.
//!
//! fjall was the other candidate: an LSM tree built for write-heavy
//! workloads larger than memory, with background flush and compaction
//! threads. Here the data fits in memory and reads never touch the disk (the
//! order-statistic index in memory answers them), so the disk only has to
//! take small transactional batches and be read once at start; a B-tree
//! file with no compaction is the simpler fit for the tables. What would
//! change that: data sets that no longer fit in memory (reads served from
//! disk), or write rates where redb's copy-on-write page rewrites per
//! commit become the bottleneck while an LSM's sequential appends would
//! not. For the journal the latter is measured (`cargo bench -p
//! standings-core --bench journal`, docs/benchmarks.md "The journal
//! commit, redb against fjall"): a fsynced commit of one 2 KB row costs
//! fjall about 0.4x the wall time and 0.3x the CPU of redb's, and the
//! journal's commits are a fifth of the durable gateway's CPU under a
//! write load. Moving the journal to fjall was built and measured
//! (docs/benchmarks.md, "The journal on fjall, tried and not kept"): 17%
//! less gateway CPU per write. It was not kept because fjall 2.11 as a
//! journal trims by tombstones that its leveled compaction only drops at
//! the last level (so every trim scans all earlier ones and the directory
//! grows for as long as the process writes), ignores the result of
//! writing a batch to its log, and can refuse to open after a power loss
//! that left a torn batch at the log's tail. redb has none of these: a
//! journal row deleted is a page freed, a failed write fails the commit,
//! and a torn commit leaves the previous one.
//!
//! # Group commit
//!
//! [`Store::apply`] applies the write in memory (under the shard lock, which
//! assigns the shard's next version), hands the resulting mutation to one
//! committer task over a bounded channel, and waits for its answer. The
//! committer takes one mutation, drains whatever else is already queued (up
//! to [`MAX_BATCH`]), writes them all as one row of the journal
//! (`journal.redb`, see [`journal`]) and commits once, so writes that
//! arrive together share one fsync; then it answers them and hands the
//! batch to the checkpointer, which applies the batches of about 250 ms
//! ([`CHECKPOINT_EVERY`]) to the tables of `standings.redb` below in one
//! transaction. A journal commit appends one row where a commit into the
//! tables rewrote a page per member, shard and table touched, which is
//! what made the acknowledged write slow (`docs/benchmarks.md`, "Durable
//! embedded store"). At open the journal's rows that no checkpoint had
//! applied yet are applied first, so a crash loses nothing the journal
//! committed, and a clean close leaves the journal empty. A slot in
//! the channel is reserved *before* the in-memory apply and the mutation is
//! queued right after it with no await in between, so a caller that gives
//! up (a dropped future) cannot leave memory ahead of disk.
//!
//! Concurrent writes to one member can reach the committer in a different
//! order than they were applied in memory, so the disk state is made
//! independent of that order: a member's row keeps `(score, version)` and is
//! only overwritten by a mutation of a higher shard version, the shard's
//! version row keeps the maximum, and audit rows are keyed by version.
//! Snapshots carry a sequence number assigned with the in-memory put, for the
//! same reason.
//!
//! # Events
//!
//! [`Store::apply_events`] takes each event as `apply` takes a write: a
//! slot reserved, the event applied in memory in one step under the likes
//! lock (`MemoryStore::apply_event_with`), and what it changed queued as
//! one mutation: its dedup record, like state, counts, the actor's list
//! (with the targets trimmed off it), the owner's total and every board it
//! moved, so all of one event is in one commit and a crash never leaves a
//! like on disk without its board moves. Events of one call are queued one
//! after the other and share commits; the call answers once every one of
//! them is on disk. A like action that changes nothing still makes a dedup
//! record, which is persisted like any change; a repeat, a conflict and a
//! refusal change nothing and are answered from memory. As for an
//! idempotency key, a repeat of an event id is answered without waiting
//! for the first one's commit.
//!
//! Like rows hold values after the event, not deltas, and are not kept
//! with a sequence number the way members are: the mutation is queued
//! while the likes lock is still held, so the channel holds events in the
//! order memory applied them, and the committer writes in channel order.
//! (A sequence number would need tombstones for every unlike and trim, so
//! that a late older row could not bring one back.) The board moves of an
//! event are score writes like any other and keep the shard sequence
//! numbers above. [`Store::set_weights`] puts and queues under one mutex
//! for the same reason.
//!
//! Cooldowns are not stored: after a restart every (actor, target) may act
//! at once. They are a rate limit, not state any read shows, so losing
//! them lets at most one more action per pair through, once per restart.
//!
//! # Failure
//!
//! A failed commit after the in-memory apply leaves memory ahead of disk; the
//! write must not be answered as not applied (memory has it), nor as applied
//! (disk does not). The committer logs at error level and panics: every
//! write waiting on that commit gets [`StoreError::OutcomeUnknown`], the store
//! marks itself failed so later writes are refused before they touch memory
//! ([`StoreError::Unavailable`]) and [`Store::ping`] fails, and the process
//! is expected to be restarted by its supervisor: a restart reloads from
//! disk, which holds exactly the acknowledged writes.
//!
//! A repeat of an idempotency key (or of an event id) is answered from
//! memory without waiting for the first write's commit; if that commit then
//! fails, the repeat was answered for a write the restarted store does not
//! have (a retry after the restart applies it).
//!
//! A batch of events that fails part way (the store fails, or an event's
//! board move errs after its like state changed) waits for what it queued
//! and answers [`StoreError::OutcomeUnknown`]: the events before it are
//! applied, so "nothing was applied" would be false, and a retry with the
//! same ids answers them as repeats.
//!
//! # Table layout
//!
//! One file, `DATA_DIR/standings.redb`, holds every board (with
//! `DATA_DIR/journal.redb` beside it holding the last quarter second or so of
//! batches, [`journal`]). Keys are redb
//! tuples, compared element by element, so every row of one shard is
//! contiguous. `b` is the board's storage name ([`Board::storage_name`]:
//! the board name for tenant `public`, as in files written before tenants,
//! `TENANT.BOARD` otherwise), `p` a period id (`all`,
//! `daily/2026-12-01`, ...), `s` the shard index (`u32`); `""` in place of
//! `p` marks a row of the whole shard:
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `members` | `(b, p, s, member)` | `(score: f64, seq: u64)`: the member's score in period p and the shard sequence number of the write that set it |
//! | `versions` | `(b, p, s)` | `u64`: period p's version; `(b, "", s)`: the shard's sequence number |
//! | `set_expiry` | `(b, p, s)` | `i64`: when period p of the shard expires (ms since the Unix epoch; closed periods only) |
//! | `idempotency` | `(expires_at_ms: u64, b, "", s, member, key)` | `(digest: u64, score: f64)`: ordered by expiry first, so expired records are one range to delete and records load in the FIFO order the in-memory expiry queue needs |
//! | `idempotency_scores` | as `idempotency` | `&str`: on a board with several periods, the first write's score in each, `id=score` joined by `;` |
//! | `audit` | `(b, "", s, seq: u64)` | `(member, op, value: f64, score: f64, idempotency_key: Option<&str>, request_id, at_ms: u64)`, at most [`AUDIT_CAPACITY`] per shard |
//! | `blend_parts` | `(b, blend, s)` | `&str`: the blend's parts set at run time ([`crate::blend::encode_parts`]) |
//! | `snapshots` | [`keyspace::snapshot`] key | `(seq: u64, bytes)` |
//! | `snapshot_expiry` | [`keyspace::snapshot`] key | `i64`: when a closed period's snapshot expires |
//! | `meta` | `(b, "", s, member)` | `(meta: &str, seq: u64)`: the member's metadata on the board ([`crate::Meta`], canonical JSON) and the shard sequence number of the write that set it; deleted by a removal |
//! | `catalog` | board name | `&str`: a board created at run time, its definition as the admin API took it |
//! | `like_states` | `(tenant, target, actor)` | `u8`: [`LikeState::code`], `l` or `d` (a state of none is no row) |
//! | `like_counts` | `(tenant, target)` | `(likes: u64, dislikes: u64)` (no row when both are 0) |
//! | `events` | `(expires_at_ms: u64, tenant, event id)` | `(digest: u64, state: Option<u8>)`: the dedup record, [`Event::digest`] and the state after the event (`None` for a counted type); ordered by expiry as `idempotency` is |
//! | `actor_likes` | `(tenant, actor, target)` | `at_ms: u64`: a target the actor likes now and when it liked it (unliked and trimmed targets are deleted) |
//! | `owner_likes` | `(tenant, owner)` | `u64`: the likes the owner's targets hold (no row when 0) |
//! | `weights` | board storage name | `&str`: weights set at run time, [`Weights::to_json`] |
//! | `journal_state` | `"id"`, `"applied_through"` | `u64`: the database's identity (a journal is applied only to the database it was written for; a backup gets a new one) and the last journal row the checkpointer applied |
//!
//! Blends are not stored: a blend is a function of its parts' periods, so
//! each shard's blend is rebuilt from them after a restart (by the first
//! write to the shard or the agents' first [`Store::maintain`]).
//!
//! Expiry times are wall-clock (ms since the Unix epoch), so a record's TTL
//! survives a restart; expired records (idempotency and event dedup alike)
//! are skipped and deleted at load, and deleted by the committer at most
//! every [`EXPIRY_SWEEP`]. Closed periods and their snapshots are deleted
//! when memory drops them (on a write to the shard, or [`Store::maintain`])
//! and skipped at load once expired.
//!
//! A file written before periods keyed `idempotency` and `audit` by the
//! period `all` and numbered audit rows by the shard's version; opening it
//! moves those rows to `""` once (the numbers carry over: the shard's
//! sequence number starts from its old version).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use redb::{
    Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, TableDefinition,
    TableHandle,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

mod journal;

use super::likes::{EventChange, Likes, Seen};
use super::memory::{Applied, MetaChange, ShardId, AUDIT_CAPACITY};
use super::{
    AuditRecord, MemoryStore, Neighbours, PeriodScores, ShardCounts, ShardCountsMany, ShardPage,
    Store, StoreError, Write, WriteOutcome,
};
use crate::blend::{self, Blend};
use crate::board::{Board, StorageName};
use crate::events::{
    Event, EventId, EventOutcome, LikeCounts, LikeSpace, LikeState, LikedTarget, Weights,
};
use crate::keyspace::{self, Scope};
use crate::types::{BoardName, Entry, MemberId, Meta, Op};

/// The database file's name inside the data directory.
pub const FILE_NAME: &str = "standings.redb";

/// The journal's file name inside the data directory ([`journal`]).
pub const JOURNAL_FILE_NAME: &str = "journal.redb";

/// How long the checkpointer gathers journal batches before it applies
/// them to [`FILE_NAME`] in one transaction.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Most mutations one checkpoint takes.
const CHECKPOINT_MAX: usize = 1 << 16;

/// Journal batches that may wait for the checkpointer; the committer
/// waits for a slot (so a slow disk slows writes rather than memory).
/// Enough for several seconds of commits: with 256, a checkpoint that
/// took longer than the ~80 ms the queue held stopped every write until
/// it finished (docs/benchmarks.md, "The checkpoint queue"). A batch is
/// what one commit took, so this holds at most a few seconds of writes
/// in memory.
const CHECKPOINT_QUEUE: usize = 8192;

/// Most mutations one commit takes.
pub const MAX_BATCH: usize = 4096;

/// Mutations that may wait for the committer; writers wait for a slot.
const QUEUE: usize = 4096;

/// How often the committer deletes expired idempotency records.
pub const EXPIRY_SWEEP: Duration = Duration::from_secs(60);

type ShardKey<'a> = (&'a str, &'a str, u32);
type MemberKey<'a> = (&'a str, &'a str, u32, &'a str);
type IdemKey<'a> = (u64, &'a str, &'a str, u32, &'a str, &'a str);
type AuditKey<'a> = (&'a str, &'a str, u32, u64);
type AuditValue<'a> = (&'a str, &'a str, f64, f64, Option<&'a str>, &'a str, u64);

const MEMBERS: TableDefinition<MemberKey<'static>, (f64, u64)> = TableDefinition::new("members");
const VERSIONS: TableDefinition<ShardKey<'static>, u64> = TableDefinition::new("versions");
const IDEMPOTENCY: TableDefinition<IdemKey<'static>, (u64, f64)> =
    TableDefinition::new("idempotency");
const AUDIT: TableDefinition<AuditKey<'static>, AuditValue<'static>> =
    TableDefinition::new("audit");
const SNAPSHOTS: TableDefinition<&'static str, (u64, &'static [u8])> =
    TableDefinition::new("snapshots");
const SET_EXPIRY: TableDefinition<ShardKey<'static>, i64> = TableDefinition::new("set_expiry");
const IDEMPOTENCY_SCORES: TableDefinition<IdemKey<'static>, &'static str> =
    TableDefinition::new("idempotency_scores");
const BLEND_PARTS: TableDefinition<ShardKey<'static>, &'static str> =
    TableDefinition::new("blend_parts");
const SNAPSHOT_EXPIRY: TableDefinition<&'static str, i64> = TableDefinition::new("snapshot_expiry");
const CATALOG: TableDefinition<&'static str, &'static str> = TableDefinition::new("catalog");
/// `(b, "", s, member)` -> `(meta text, seq)`: a member's metadata on a
/// board and the shard sequence number of the write that set it.
const META: TableDefinition<MemberKey<'static>, (&'static str, u64)> = TableDefinition::new("meta");
/// `(b, period, s, member)` -> the member's tie there ([`Entry::tie`]),
/// only for the members of `first_achiever` boards (a row of [`MEMBERS`]
/// without one has tie 0), so `shared` boards pay nothing for it.
const TIES: TableDefinition<MemberKey<'static>, u64> = TableDefinition::new("ties");

/// `(tenant, target, actor)`, or `(tenant, actor, target)` for a list.
type LikeKey<'a> = (&'a str, &'a str, &'a str);
/// `(tenant, member)`.
type TenantKey<'a> = (&'a str, &'a str);
/// `(expires_at_ms, tenant, event id)`.
type EventKey<'a> = (u64, &'a str, &'a str);

const LIKE_STATES: TableDefinition<LikeKey<'static>, u8> = TableDefinition::new("like_states");
const LIKE_COUNTS: TableDefinition<TenantKey<'static>, (u64, u64)> =
    TableDefinition::new("like_counts");
const EVENTS: TableDefinition<EventKey<'static>, (u64, Option<u8>)> =
    TableDefinition::new("events");
const ACTOR_LIKES: TableDefinition<LikeKey<'static>, u64> = TableDefinition::new("actor_likes");
const OWNER_LIKES: TableDefinition<TenantKey<'static>, u64> = TableDefinition::new("owner_likes");
const WEIGHTS: TableDefinition<&'static str, &'static str> = TableDefinition::new("weights");

/// The `p` of rows that belong to a whole shard rather than one period.
const SHARD_ROW: &str = "";

/// Whether a set id names a period (stored) rather than a blend (rebuilt
/// from its periods): period ids are `all` or hold a `/`, blend names
/// have the board-name pattern and are not `all`.
fn is_period(id: &str) -> bool {
    id == "all" || id.contains('/')
}

/// When a commit reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sync {
    /// Every commit is [`redb::Durability::Immediate`]: fsynced before the
    /// writes in it are acknowledged. Nothing acknowledged is lost, on a
    /// crash or on power loss. The default.
    #[default]
    Commit,
    /// Commits are [`redb::Durability::None`] and acknowledged at once; a
    /// [`redb::Durability::Immediate`] commit follows at most this long
    /// after (the next batch once the interval has passed, or a timer). In
    /// redb 4 a `None` commit is visible to readers but its root is kept
    /// only in the process's memory (the on-disk header still names the
    /// last durable commit), so a crash of the process (kill -9) as well as
    /// a power loss loses the writes acknowledged in up to this window; a
    /// clean [`DurableStore::close`] loses nothing. redb 4 has only `None`
    /// and `Immediate` (the 1.x `Eventual` and `Paranoid` are gone;
    /// `Immediate` is what `Paranoid` was without the two-phase commit, which
    /// is a separate switch left off).
    Interval(Duration),
}

/// A [`Sync`] that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid sync mode {input:?}: {reason} (expected `commit` or `interval:<duration>`, e.g. `interval:100ms`)")]
pub struct ParseSyncError {
    input: String,
    reason: String,
}

impl FromStr for Sync {
    type Err = ParseSyncError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| ParseSyncError {
            input: s.to_owned(),
            reason,
        };
        if s == "commit" {
            return Ok(Sync::Commit);
        }
        let Some(d) = s.strip_prefix("interval:") else {
            return Err(err("unknown mode".into()));
        };
        let d = humantime::parse_duration(d.trim()).map_err(|e| err(e.to_string()))?;
        if d.is_zero() {
            return Err(err("the interval must be above zero (use `commit`)".into()));
        }
        Ok(Sync::Interval(d))
    }
}

/// How a [`DurableStore`] is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurableOptions {
    /// When commits reach the disk.
    pub sync: Sync,
    /// How long the checkpointer gathers journal batches before applying
    /// them to `standings.redb` ([`CHECKPOINT_EVERY`] by default). Not a
    /// config key: tests set it long to leave rows in the journal.
    pub checkpoint_every: Duration,
}

impl Default for DurableOptions {
    fn default() -> Self {
        DurableOptions {
            sync: Sync::default(),
            checkpoint_every: CHECKPOINT_EVERY,
        }
    }
}

/// Why a [`DurableStore`] could not be opened (or backed up). Every variant
/// names the file.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process (or another handle in this one) has the file open.
    #[error("{} is in use by another process (one Standings process per data_dir)", file.display())]
    Locked {
        /// The database file.
        file: PathBuf,
    },
    /// The file is not a redb database this release can read, or its
    /// contents failed to load. It is left as it was.
    #[error("{} is not a valid Standings database: {reason}", file.display())]
    Corrupt {
        /// The database file.
        file: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The directory or the file could not be created, read or written.
    #[error("{}: {source}", file.display())]
    Io {
        /// The file or directory.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// One change to persist.
#[derive(Debug)]
enum Mutation {
    Write {
        board: StorageName,
        applied: Applied,
    },
    Snapshot {
        key: String,
        seq: u64,
        bytes: Bytes,
        expires_at_ms: Option<i64>,
    },
    /// Periods of a shard dropped by retention.
    Expire {
        board: StorageName,
        shard: u32,
        sets: Vec<Arc<str>>,
    },
    /// Snapshots dropped by retention.
    ExpireSnapshots { keys: Vec<String> },
    /// A board added to (`Some`) or removed from (`None`) the catalog.
    Catalog {
        name: String,
        definition: Option<String>,
    },
    /// A blend's parts set at run time, on every shard.
    BlendParts {
        board: StorageName,
        blend: Arc<str>,
        shards: u32,
        parts: String,
    },
    /// One applied event: its like rows and every board it moved (each
    /// move as a [`Mutation::Write`] would keep it), so all of it is in
    /// one commit. `change.moves` is empty: the moves are in `moves`, by
    /// board storage name rather than by index into the caller's boards.
    Event {
        change: EventChange,
        moves: Vec<(StorageName, Applied)>,
    },
    /// A board's weights set at run time ([`Weights::to_json`]).
    Weights { board: StorageName, json: String },
}

struct Job {
    mutation: Mutation,
    done: oneshot::Sender<()>,
}

/// The durable embedded store; see the module docs.
pub struct DurableStore {
    memory: MemoryStore,
    tx: mpsc::Sender<Job>,
    db: Arc<Database>,
    /// `journal.redb`: what the committer made durable and the
    /// checkpointer has not yet applied to `db` ([`journal`]).
    journal: Arc<Database>,
    committer: JoinHandle<()>,
    checkpointer: JoinHandle<()>,
    failed: Arc<AtomicBool>,
    /// The sequence number of the last snapshot put.
    snapshot_seq: Mutex<u64>,
    /// Held while weights are put in memory and queued, so two
    /// [`Store::set_weights`] of one board reach the disk in the order
    /// memory took them (the last one stays on both).
    weights_order: Mutex<()>,
    file: PathBuf,
}

impl DurableStore {
    /// Opens (creating if missing) `dir/standings.redb` and
    /// `dir/journal.redb`, applies the journal's rows that the last run
    /// had not checkpointed, loads the database into memory and starts the
    /// committer and checkpointer tasks. Blocks while loading; must be
    /// called within a tokio runtime (it spawns the tasks).
    pub fn open(dir: &Path, options: DurableOptions) -> Result<DurableStore, OpenError> {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::Io {
            file: dir.to_owned(),
            source,
        })?;
        let file = dir.join(FILE_NAME);
        let db = open_db(&file)?;
        let memory = MemoryStore::new();
        let corrupt = |reason: String| OpenError::Corrupt {
            file: file.clone(),
            reason,
        };
        prepare(&db).map_err(|e| corrupt(e.to_string()))?;
        let journal_file = dir.join(JOURNAL_FILE_NAME);
        let journal = open_db(&journal_file)?;
        let next = recover(&db, &file, &journal, &journal_file)?;
        let snapshot_seq = load(&db, &memory).map_err(corrupt)?;
        let db = Arc::new(db);
        let journal = Arc::new(journal);
        let (tx, rx) = mpsc::channel(QUEUE);
        let (to_checkpoint, checkpoints) = mpsc::channel(CHECKPOINT_QUEUE);
        let failed = Arc::new(AtomicBool::new(false));
        let checkpointed = Arc::new(AtomicU64::new(0));
        let committer = tokio::spawn(committer(
            Committer {
                journal: journal.clone(),
                sync: options.sync,
                failed: failed.clone(),
                file: journal_file,
                checkpointed: checkpointed.clone(),
                to_checkpoint,
            },
            rx,
            next,
        ));
        let checkpointer = tokio::spawn(checkpointer(
            db.clone(),
            journal.clone(),
            checkpoints,
            failed.clone(),
            file.clone(),
            checkpointed,
            options.checkpoint_every,
        ));
        Ok(DurableStore {
            memory,
            tx,
            db,
            journal,
            committer,
            checkpointer,
            failed,
            snapshot_seq: Mutex::new(snapshot_seq),
            weights_order: Mutex::new(()),
            file,
        })
    }

    /// The database file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Stops taking writes, waits for the committer to commit everything
    /// queued (durably, whatever the [`Sync`] mode) and for the
    /// checkpointer to apply all of it to `standings.redb` (leaving the
    /// journal empty), and closes both files, so that they can be opened
    /// again at once.
    pub async fn close(self) {
        let DurableStore {
            tx,
            db,
            journal,
            committer,
            checkpointer,
            ..
        } = self;
        drop(tx);
        if let Err(e) = committer.await {
            tracing::error!(error = %e, "durable store committer failed");
        }
        if let Err(e) = checkpointer.await {
            tracing::error!(error = %e, "durable store checkpointer failed");
        }
        drop(journal);
        drop(db);
    }

    /// Writes a consistent copy of the database (as of the last commit) to
    /// `to` while serving: every table is copied from one read transaction
    /// into a new redb file written under a temporary name, the journal's
    /// rows not yet checkpointed are applied to it, and it is committed
    /// durably and renamed to `to`. The copy is one file with a new
    /// identity: restoring is starting on it as `standings.redb` in an
    /// empty data directory (a `journal.redb` of the old one is refused
    /// rather than applied to it). Blocks while copying.
    pub fn backup(&self, to: &Path) -> Result<(), OpenError> {
        let tmp = to.with_extension(format!("tmp-{}", std::process::id()));
        let corrupt = |file: &Path, e: &dyn std::fmt::Display| OpenError::Corrupt {
            file: file.to_owned(),
            reason: e.to_string(),
        };
        let _ = std::fs::remove_file(&tmp);
        let result = (|| {
            // The journal first: rows are trimmed only after the
            // database's checkpoint that applied them, so this view holds
            // every row after the `applied_through` the later view reads.
            let pending = self.journal.begin_read().map_err(|e| corrupt(&tmp, &e))?;
            let read = self.db.begin_read().map_err(|e| corrupt(&tmp, &e))?;
            let copy = open_db(&tmp)?;
            copy_tables(&read, &copy).map_err(|e| corrupt(&tmp, &e))?;
            let through = applied_through(&read).map_err(|e| corrupt(&self.file, &e))?;
            let rows = journal_rows(&pending, through)
                .map_err(|e| corrupt(&self.file.with_file_name(JOURNAL_FILE_NAME), &e))?;
            for (_, batch) in rows {
                write_batch(&copy, &batch, Durability::Immediate, None, None)
                    .map_err(|e| corrupt(&tmp, &e))?;
            }
            set_identity(&copy, new_id(), 0).map_err(|e| corrupt(&tmp, &e))?;
            drop(copy);
            std::fs::rename(&tmp, to).map_err(|source| OpenError::Io {
                file: to.to_owned(),
                source,
            })?;
            if let Some(parent) = to.parent() {
                if let Ok(d) = std::fs::File::open(parent) {
                    let _ = d.sync_all();
                }
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Queues `mutation` on a reserved slot and waits for its commit.
    async fn commit(permit: mpsc::Permit<'_, Job>, mutation: Mutation) -> Result<(), StoreError> {
        Self::wait(Self::queue(permit, mutation)).await
    }

    /// Queues `mutation` on a reserved slot without waiting (no await, so
    /// it can be called under a lock); answers what [`Self::wait`] takes.
    fn queue(permit: mpsc::Permit<'_, Job>, mutation: Mutation) -> oneshot::Receiver<()> {
        let (done, wait) = oneshot::channel();
        permit.send(Job { mutation, done });
        wait
    }

    /// Waits for the commit of a queued mutation.
    async fn wait(wait: oneshot::Receiver<()>) -> Result<(), StoreError> {
        wait.await.map_err(|_| {
            StoreError::OutcomeUnknown(
                "the durable store's commit failed; it is stopping (a restart reloads \
                 every acknowledged write)"
                    .into(),
            )
        })
    }

    async fn reserve(&self) -> Result<mpsc::Permit<'_, Job>, StoreError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(failed());
        }
        self.tx.reserve().await.map_err(|_| failed())
    }
}

fn failed() -> StoreError {
    StoreError::Unavailable("the durable store failed to commit and is stopping".into())
}

fn open_db(file: &Path) -> Result<Database, OpenError> {
    let mut builder = Database::builder();
    builder.set_check_integrity_on_open(true);
    builder.create(file).map_err(|e| match e {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
            OpenError::Locked {
                file: file.to_owned(),
            }
        }
        // redb reports a file that is not a redb database (wrong magic
        // number) as an I/O error of kind `InvalidData`.
        DatabaseError::Storage(redb::StorageError::Io(source))
            if source.kind() == std::io::ErrorKind::InvalidData =>
        {
            OpenError::Corrupt {
                file: file.to_owned(),
                reason: source.to_string(),
            }
        }
        DatabaseError::Storage(redb::StorageError::Io(source)) => OpenError::Io {
            file: file.to_owned(),
            source,
        },
        other => OpenError::Corrupt {
            file: file.to_owned(),
            reason: other.to_string(),
        },
    })
}

/// Creates the tables of a new file (and those a file of an older
/// release lacks), moves rows of a file written before periods to the
/// shard-row layout, and deletes expired idempotency and event records.
fn prepare(db: &Database) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        txn.open_table(MEMBERS)?;
        txn.open_table(VERSIONS)?;
        txn.open_table(SNAPSHOTS)?;
        txn.open_table(SET_EXPIRY)?;
        txn.open_table(BLEND_PARTS)?;
        txn.open_table(SNAPSHOT_EXPIRY)?;
        txn.open_table(CATALOG)?;
        txn.open_table(META)?;
        txn.open_table(TIES)?;
        txn.open_table(LIKE_STATES)?;
        txn.open_table(LIKE_COUNTS)?;
        txn.open_table(ACTOR_LIKES)?;
        txn.open_table(OWNER_LIKES)?;
        txn.open_table(WEIGHTS)?;
        let mut idem = txn.open_table(IDEMPOTENCY)?;
        let mut idem_scores = txn.open_table(IDEMPOTENCY_SCORES)?;
        let mut audit = txn.open_table(AUDIT)?;
        let mut events = txn.open_table(EVENTS)?;
        migrate(&mut idem, &mut audit)?;
        let now = crate::store::now_ms();
        sweep(&mut idem, &mut idem_scores, now)?;
        sweep_events(&mut events, now)?;
    }
    txn.commit()?;
    Ok(())
}

/// Moves idempotency and audit rows keyed by a period (the layout before
/// periods, where every board had the one period `all`) to the shard row.
fn migrate(
    idem: &mut redb::Table<IdemKey<'static>, (u64, f64)>,
    audit: &mut redb::Table<AuditKey<'static>, AuditValue<'static>>,
) -> Result<(), redb::Error> {
    type OwnedIdem = ((u64, String, u32, String, String), (u64, f64));
    let mut old_idem: Vec<OwnedIdem> = Vec::new();
    for row in idem.iter()? {
        let (k, v) = row?;
        let (at, b, p, s, m, key) = k.value();
        if p != SHARD_ROW {
            old_idem.push((
                (at, b.to_owned(), s, m.to_owned(), key.to_owned()),
                v.value(),
            ));
        }
    }
    if !old_idem.is_empty() {
        idem.retain(|(_, _, p, _, _, _), _| p == SHARD_ROW)?;
        for ((at, b, s, m, key), v) in &old_idem {
            idem.insert(
                (*at, b.as_str(), SHARD_ROW, *s, m.as_str(), key.as_str()),
                *v,
            )?;
        }
    }
    type OwnedAudit = (
        (String, u32, u64),
        (String, String, f64, f64, Option<String>, String, u64),
    );
    let mut old_audit: Vec<OwnedAudit> = Vec::new();
    for row in audit.iter()? {
        let (k, v) = row?;
        let (b, p, s, seq) = k.value();
        if p != SHARD_ROW {
            let (m, op, value, score, key, request_id, at) = v.value();
            old_audit.push((
                (b.to_owned(), s, seq),
                (
                    m.to_owned(),
                    op.to_owned(),
                    value,
                    score,
                    key.map(str::to_owned),
                    request_id.to_owned(),
                    at,
                ),
            ));
        }
    }
    if !old_audit.is_empty() {
        audit.retain(|(_, p, _, _), _| p == SHARD_ROW)?;
        for ((b, s, seq), (m, op, value, score, key, request_id, at)) in &old_audit {
            audit.insert(
                (b.as_str(), SHARD_ROW, *s, *seq),
                (
                    m.as_str(),
                    op.as_str(),
                    *value,
                    *score,
                    key.as_deref(),
                    request_id.as_str(),
                    *at,
                ),
            )?;
        }
    }
    Ok(())
}

fn sweep(
    idem: &mut redb::Table<IdemKey<'static>, (u64, f64)>,
    idem_scores: &mut redb::Table<IdemKey<'static>, &'static str>,
    now: u64,
) -> Result<(), redb::Error> {
    idem.retain_in::<IdemKey<'_>, _>(..(now, "", "", 0, "", ""), |_, _| false)?;
    idem_scores.retain_in::<IdemKey<'_>, _>(..(now, "", "", 0, "", ""), |_, _| false)?;
    Ok(())
}

/// Deletes the event dedup records that expired by `now` (the rows before
/// `(now, "", "")`: expiry leads the key).
fn sweep_events(
    events: &mut redb::Table<EventKey<'static>, (u64, Option<u8>)>,
    now: u64,
) -> Result<(), redb::Error> {
    events.retain_in::<EventKey<'_>, _>(..(now, "", ""), |_, _| false)?;
    Ok(())
}

/// Consecutive rows of one set, gathered so they are restored together.
struct Runs<K, T> {
    run: Option<(K, Vec<T>)>,
}

impl<K: PartialEq, T> Default for Runs<K, T> {
    fn default() -> Self {
        Self { run: None }
    }
}

impl<K: PartialEq, T> Runs<K, T> {
    /// Adds `item` of run `key`; when it starts a new run, hands the
    /// finished one to `flush` first.
    fn push(&mut self, key: K, item: T, flush: impl FnOnce(K, Vec<T>)) {
        if self.run.as_ref().is_none_or(|(k, _)| *k != key) {
            if let Some((k, items)) = self.run.take() {
                flush(k, items);
            }
            self.run = Some((key, Vec::new()));
        }
        if let Some((_, items)) = self.run.as_mut() {
            items.push(item);
        }
    }

    /// Hands the last run to `flush`.
    fn finish(self, flush: impl FnOnce(K, Vec<T>)) {
        if let Some((k, items)) = self.run {
            flush(k, items);
        }
    }
}

/// Interns storage names and set ids while loading.
#[derive(Default)]
struct Names {
    boards: HashMap<String, StorageName>,
    sets: HashMap<String, Arc<str>>,
}

impl Names {
    /// A row's `b`: a storage name (`videos`, or `acme.videos` for a
    /// tenant's board), not necessarily a valid board name.
    fn board(&mut self, b: &str) -> Result<StorageName, String> {
        if let Some(name) = self.boards.get(b) {
            return Ok(name.clone());
        }
        let name = StorageName::parse(b).map_err(|err| format!("storage name {b:?}: {err}"))?;
        self.boards.insert(b.to_owned(), name.clone());
        Ok(name)
    }

    fn set(&mut self, p: &str) -> Arc<str> {
        self.sets
            .entry(p.to_owned())
            .or_insert_with(|| Arc::from(p))
            .clone()
    }
}

/// Parses `id=score;...` (the `idempotency_scores` value).
fn decode_scores(text: &str, names: &mut Names) -> Result<PeriodScores, String> {
    text.split(';')
        .map(|pair| {
            let (id, score) = pair
                .rsplit_once('=')
                .ok_or_else(|| format!("idempotency scores {text:?}"))?;
            let score: f64 = score
                .parse()
                .map_err(|_| format!("idempotency scores {text:?}"))?;
            Ok((names.set(id), score))
        })
        .collect()
}

fn encode_scores(scores: &[(Arc<str>, f64)]) -> String {
    scores
        .iter()
        .map(|(id, score)| format!("{id}={score:e}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// Loads every table into `memory`; answers the highest snapshot sequence.
fn load(db: &Database, memory: &MemoryStore) -> Result<u64, String> {
    let txn = db.begin_read().map_err(|e| e.to_string())?;
    let e = |e: redb::StorageError| e.to_string();
    let t = |e: redb::TableError| e.to_string();
    let mut names = Names::default();
    let member = |m: &str| MemberId::new(m).map_err(|err| format!("member {m:?}: {err}"));
    let now = crate::store::now_ms();
    let now_i = i64::try_from(now).unwrap_or(i64::MAX);

    let mut expiry: HashMap<(String, String, u32), i64> = HashMap::new();
    for row in txn.open_table(SET_EXPIRY).map_err(t)?.iter().map_err(e)? {
        let (k, v) = row.map_err(e)?;
        let (b, p, s) = k.value();
        expiry.insert((b.to_owned(), p.to_owned(), s), v.value());
    }
    let expires = |b: &str, p: &str, s: u32| expiry.get(&(b.to_owned(), p.to_owned(), s)).copied();

    // Rows come sorted by (board, period, shard): each set's run is
    // restored under one lookup and one lock.
    type SetRun = (StorageName, Arc<str>, u32, Option<i64>);
    let restore = |(b, p, s, at): SetRun, scores: Vec<(MemberId, f64, u64)>| {
        memory.restore_scores((b, s), p, at, scores)
    };
    let members = txn.open_table(MEMBERS).map_err(t)?;
    // Both tables are in member-key order: the ties (first_achiever boards
    // only) are merged in as the members go by.
    let ties_table = txn.open_table(TIES).map_err(t)?;
    let mut ties = ties_table.iter().map_err(e)?.peekable();
    let mut runs: Runs<SetRun, (MemberId, f64, u64)> = Runs::default();
    for row in members.iter().map_err(e)? {
        let (k, v) = row.map_err(e)?;
        let (b, p, s, m) = k.value();
        let mut tie = 0;
        while let Some(next) = ties.peek() {
            let (tk, tv) = match next {
                Ok((tk, tv)) => (tk.value(), tv.value()),
                Err(err) => return Err(format!("reading ties: {err}")),
            };
            match tk.cmp(&(b, p, s, m)) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => tie = tv,
                std::cmp::Ordering::Greater => break,
            }
            ties.next();
        }
        let at = expires(b, p, s);
        if at.is_some_and(|at| at <= now_i) {
            continue;
        }
        let (score, _) = v.value();
        let key = (names.board(b)?, names.set(p), s, at);
        runs.push(key, (member(m)?, score, tie), restore);
    }
    runs.finish(restore);
    let versions = txn.open_table(VERSIONS).map_err(t)?;
    for row in versions.iter().map_err(e)? {
        let (k, v) = row.map_err(e)?;
        let (b, p, s) = k.value();
        let id: ShardId = (names.board(b)?, s);
        // The shard's sequence number: its own row, or (a file written
        // before periods) its old version.
        memory.restore_seq(id.clone(), v.value());
        if p != SHARD_ROW {
            let at = expires(b, p, s);
            if at.is_none_or(|at| at > now_i) {
                memory.restore_version(id, names.set(p), at, v.value());
            }
        }
    }
    let restore_metas = |id: ShardId, metas: Vec<(MemberId, Meta)>| memory.restore_metas(id, metas);
    let mut runs: Runs<ShardId, (MemberId, Meta)> = Runs::default();
    for row in txn.open_table(META).map_err(t)?.iter().map_err(e)? {
        let (k, v) = row.map_err(e)?;
        let (b, _, s, m) = k.value();
        let (text, _) = v.value();
        let meta = Meta::from_stored(text).map_err(|err| format!("meta of {m:?}: {err}"))?;
        runs.push((names.board(b)?, s), (member(m)?, meta), restore_metas);
    }
    runs.finish(restore_metas);
    let idem_scores = txn.open_table(IDEMPOTENCY_SCORES).map_err(t)?;
    let idem = txn.open_table(IDEMPOTENCY).map_err(t)?;
    for row in idem.iter().map_err(e)? {
        let (k, v) = row.map_err(e)?;
        let (expires_at, b, _, s, m, key) = k.value();
        if expires_at <= now {
            continue;
        }
        let scores = match idem_scores.get(k.value()).map_err(e)? {
            Some(text) => Some(decode_scores(text.value(), &mut names)?),
            None => None,
        };
        let (digest, score) = v.value();
        let remaining = Duration::from_millis(expires_at - now);
        let id = (names.board(b)?, s);
        memory.restore_idempotency(id, &member(m)?, key, digest, score, scores, remaining);
    }
    let audit = txn.open_table(AUDIT).map_err(t)?;
    let restore_audits =
        |id: ShardId, records: Vec<AuditRecord>| memory.restore_audits(id, records);
    let mut runs: Runs<ShardId, AuditRecord> = Runs::default();
    for row in audit.iter().map_err(e)? {
        let (k, v) = row.map_err(e)?;
        let (b, _, s, _) = k.value();
        let (m, op, value, score, key, request_id, at_ms) = v.value();
        let record = AuditRecord {
            member: member(m)?,
            op: Op::parse_audit(op).map_err(|err| format!("audit op {op:?}: {err}"))?,
            value,
            score,
            idempotency_key: key.map(str::to_owned),
            request_id: request_id.to_owned(),
            at_ms,
        };
        runs.push((names.board(b)?, s), record, restore_audits);
    }
    runs.finish(restore_audits);
    for row in txn.open_table(BLEND_PARTS).map_err(t)?.iter().map_err(e)? {
        let (k, v) = row.map_err(e)?;
        let (b, name, s) = k.value();
        let parts = blend::decode_parts(v.value())?;
        memory.restore_blend_parts((names.board(b)?, s), names.set(name), Arc::from(parts));
    }
    for row in txn.open_table(CATALOG).map_err(t)?.iter().map_err(e)? {
        let (k, v) = row.map_err(e)?;
        memory.catalog_put(k.value(), Some(v.value()));
    }
    let snapshot_expiry = txn.open_table(SNAPSHOT_EXPIRY).map_err(t)?;
    let snapshots = txn.open_table(SNAPSHOTS).map_err(t)?;
    let mut seq = 0;
    for row in snapshots.iter().map_err(e)? {
        let (k, v) = row.map_err(e)?;
        let (s, bytes) = v.value();
        seq = seq.max(s);
        let at = snapshot_expiry
            .get(k.value())
            .map_err(e)?
            .map(|row| row.value());
        if at.is_some_and(|at| at <= now_i) {
            continue;
        }
        memory.restore_snapshot(k.value().to_owned(), Bytes::copy_from_slice(bytes), at);
    }
    for row in txn.open_table(WEIGHTS).map_err(t)?.iter().map_err(e)? {
        let (k, v) = row.map_err(e)?;
        let name = k.value();
        StorageName::parse(name).map_err(|err| format!("weights: storage name {name:?}: {err}"))?;
        let weights =
            Weights::from_json(v.value()).map_err(|err| format!("weights of {name:?}: {err}"))?;
        memory.put_weights(name, weights);
    }
    memory.with_likes_mut(|likes| load_likes(&txn, likes, now))?;
    Ok(seq)
}

/// Interns tenants and member ids while loading the likes tables, so the
/// rows of one target or actor share one id in memory; every error names
/// the table the text came from.
#[derive(Default)]
struct LikeNames {
    tenants: HashMap<String, BoardName>,
    members: HashMap<String, MemberId>,
}

impl LikeNames {
    fn tenant(&mut self, table: &str, text: &str) -> Result<BoardName, String> {
        if let Some(t) = self.tenants.get(text) {
            return Ok(t.clone());
        }
        let t = BoardName::new(text).map_err(|err| format!("{table}: tenant {text:?}: {err}"))?;
        self.tenants.insert(text.to_owned(), t.clone());
        Ok(t)
    }

    fn member(&mut self, table: &str, text: &str) -> Result<MemberId, String> {
        if let Some(m) = self.members.get(text) {
            return Ok(m.clone());
        }
        let m = MemberId::new(text).map_err(|err| format!("{table}: member {text:?}: {err}"))?;
        self.members.insert(text.to_owned(), m.clone());
        Ok(m)
    }
}

/// A stored like state; unlike [`LikeState::from_code`], a byte that is
/// none of `n`, `l`, `d` is corrupt rather than none.
fn decode_state(table: &str, code: u8) -> Result<LikeState, String> {
    match code {
        b'n' => Ok(LikeState::None),
        b'l' => Ok(LikeState::Liked),
        b'd' => Ok(LikeState::Disliked),
        other => Err(format!("{table}: like state code {other:#04x}")),
    }
}

/// Loads the likes tables into `likes` (under the likes lock, taken once):
/// states, counts, actors' lists, owners' totals, and the event dedup
/// records not expired by `now`, in expiry order (the order the in-memory
/// expiry queue needs). Cooldowns are not stored: they start afresh.
fn load_likes(txn: &redb::ReadTransaction, likes: &mut Likes, now: u64) -> Result<(), String> {
    let e = |table: &str, err: redb::StorageError| format!("{table}: {err}");
    let open = |err: redb::TableError| err.to_string();
    let mut names = LikeNames::default();

    let table = LIKE_STATES.name();
    for row in txn
        .open_table(LIKE_STATES)
        .map_err(open)?
        .iter()
        .map_err(|err| e(table, err))?
    {
        let (k, v) = row.map_err(|err| e(table, err))?;
        let (tenant, target, actor) = k.value();
        let state = decode_state(table, v.value())?;
        likes.restore_state(
            names.tenant(table, tenant)?,
            names.member(table, target)?,
            names.member(table, actor)?,
            state,
        );
    }

    let table = LIKE_COUNTS.name();
    for row in txn
        .open_table(LIKE_COUNTS)
        .map_err(open)?
        .iter()
        .map_err(|err| e(table, err))?
    {
        let (k, v) = row.map_err(|err| e(table, err))?;
        let (tenant, target) = k.value();
        likes.restore_counts(
            names.tenant(table, tenant)?,
            names.member(table, target)?,
            v.value(),
        );
    }

    let table = ACTOR_LIKES.name();
    for row in txn
        .open_table(ACTOR_LIKES)
        .map_err(open)?
        .iter()
        .map_err(|err| e(table, err))?
    {
        let (k, v) = row.map_err(|err| e(table, err))?;
        let (tenant, actor, target) = k.value();
        likes.restore_liked(
            names.tenant(table, tenant)?,
            names.member(table, actor)?,
            names.member(table, target)?,
            v.value(),
        );
    }

    let table = OWNER_LIKES.name();
    for row in txn
        .open_table(OWNER_LIKES)
        .map_err(open)?
        .iter()
        .map_err(|err| e(table, err))?
    {
        let (k, v) = row.map_err(|err| e(table, err))?;
        let (tenant, owner) = k.value();
        likes.restore_owner(
            names.tenant(table, tenant)?,
            names.member(table, owner)?,
            v.value(),
        );
    }

    let table = EVENTS.name();
    let events = txn.open_table(EVENTS).map_err(open)?;
    // Expiry leads the key: the live records are one range.
    let live = events
        .range::<EventKey<'_>>((now.saturating_add(1), "", "")..)
        .map_err(|err| e(table, err))?;
    for row in live {
        let (k, v) = row.map_err(|err| e(table, err))?;
        let (expires_at_ms, tenant, id) = k.value();
        let (digest, state) = v.value();
        let state = state.map(|code| decode_state(table, code)).transpose()?;
        let id = EventId::new(id).map_err(|err| format!("{table}: event id {id:?}: {err}"))?;
        likes.restore_seen(
            names.tenant(table, tenant)?,
            id,
            Seen {
                digest,
                state,
                expires_at_ms,
            },
        );
    }
    Ok(())
}

/// Copies every row of `table` from `read` into `write`.
macro_rules! copy_table {
    ($read:expr, $write:expr, $table:expr) => {{
        let src = $read.open_table($table)?;
        let mut dst = $write.open_table($table)?;
        for row in src.iter()? {
            let (k, v) = row?;
            dst.insert(k.value(), v.value())?;
        }
    }};
}

/// Copies every table of `read` (one read transaction) into `to` (one
/// durable write transaction), all but the journal's state.
fn copy_tables(read: &redb::ReadTransaction, to: &Database) -> Result<(), redb::Error> {
    let write = to.begin_write()?;
    copy_table!(read, write, MEMBERS);
    copy_table!(read, write, TIES);
    copy_table!(read, write, VERSIONS);
    copy_table!(read, write, SET_EXPIRY);
    copy_table!(read, write, IDEMPOTENCY);
    copy_table!(read, write, IDEMPOTENCY_SCORES);
    copy_table!(read, write, AUDIT);
    copy_table!(read, write, BLEND_PARTS);
    copy_table!(read, write, SNAPSHOTS);
    copy_table!(read, write, SNAPSHOT_EXPIRY);
    copy_table!(read, write, CATALOG);
    copy_table!(read, write, LIKE_STATES);
    copy_table!(read, write, LIKE_COUNTS);
    copy_table!(read, write, EVENTS);
    copy_table!(read, write, ACTOR_LIKES);
    copy_table!(read, write, OWNER_LIKES);
    copy_table!(read, write, WEIGHTS);
    write.commit()?;
    Ok(())
}

/// The tables a score write touches, open in one write transaction.
struct ScoreTables<'t> {
    members: redb::Table<'t, MemberKey<'static>, (f64, u64)>,
    versions: redb::Table<'t, ShardKey<'static>, u64>,
    set_expiry: redb::Table<'t, ShardKey<'static>, i64>,
    idem: redb::Table<'t, IdemKey<'static>, (u64, f64)>,
    idem_scores: redb::Table<'t, IdemKey<'static>, &'static str>,
    audit: redb::Table<'t, AuditKey<'static>, AuditValue<'static>>,
    meta: redb::Table<'t, MemberKey<'static>, (&'static str, u64)>,
    ties: redb::Table<'t, MemberKey<'static>, u64>,
}

/// The likes tables, open in one write transaction.
struct LikeTables<'t> {
    states: redb::Table<'t, LikeKey<'static>, u8>,
    counts: redb::Table<'t, TenantKey<'static>, (u64, u64)>,
    events: redb::Table<'t, EventKey<'static>, (u64, Option<u8>)>,
    lists: redb::Table<'t, LikeKey<'static>, u64>,
    owners: redb::Table<'t, TenantKey<'static>, u64>,
}

/// What a batch's score writes leave for its end: the highest version of
/// each set and sequence number of each shard (the shard's under
/// `SHARD_ROW`), and each shard's highest sequence number, which bounds its
/// audit rows.
#[derive(Default)]
struct Newest<'a> {
    versions: HashMap<ShardKey<'a>, u64>,
    trim: HashMap<(&'a str, u32), u64>,
}

/// Writes one batch in one transaction.
fn write_batch(
    db: &Database,
    batch: &[Mutation],
    durability: Durability,
    sweep_at: Option<u64>,
    applied_through: Option<u64>,
) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(durability)?;
    if let Some(through) = applied_through {
        txn.open_table(journal::STATE)?
            .insert(journal::APPLIED_THROUGH, through)?;
    }
    {
        let mut t = ScoreTables {
            members: txn.open_table(MEMBERS)?,
            versions: txn.open_table(VERSIONS)?,
            set_expiry: txn.open_table(SET_EXPIRY)?,
            idem: txn.open_table(IDEMPOTENCY)?,
            idem_scores: txn.open_table(IDEMPOTENCY_SCORES)?,
            audit: txn.open_table(AUDIT)?,
            meta: txn.open_table(META)?,
            ties: txn.open_table(TIES)?,
        };
        let mut l = LikeTables {
            states: txn.open_table(LIKE_STATES)?,
            counts: txn.open_table(LIKE_COUNTS)?,
            events: txn.open_table(EVENTS)?,
            lists: txn.open_table(ACTOR_LIKES)?,
            owners: txn.open_table(OWNER_LIKES)?,
        };
        let mut blend_parts = txn.open_table(BLEND_PARTS)?;
        let mut snapshots = txn.open_table(SNAPSHOTS)?;
        let mut snapshot_expiry = txn.open_table(SNAPSHOT_EXPIRY)?;
        let mut catalog = txn.open_table(CATALOG)?;
        let mut weights = txn.open_table(WEIGHTS)?;
        let mut newest = Newest::default();
        for m in batch {
            match m {
                Mutation::Write { board, applied } => {
                    write_applied(&mut t, &mut newest, board.as_str(), applied)?;
                }
                Mutation::Event { change, moves } => {
                    write_event(&mut l, change)?;
                    for (board, applied) in moves {
                        write_applied(&mut t, &mut newest, board.as_str(), applied)?;
                    }
                }
                Mutation::Weights { board, json } => {
                    weights.insert(board.as_str(), json.as_str())?;
                }
                Mutation::Snapshot {
                    key,
                    seq,
                    bytes,
                    expires_at_ms,
                } => {
                    let newer = snapshots
                        .get(key.as_str())?
                        .is_none_or(|row| row.value().0 < *seq);
                    if newer {
                        snapshots.insert(key.as_str(), (*seq, &bytes[..]))?;
                        if let Some(at) = expires_at_ms {
                            snapshot_expiry.insert(key.as_str(), *at)?;
                        }
                    }
                }
                Mutation::Expire { board, shard, sets } => {
                    for p in sets {
                        expire_set(&mut t, board.as_str(), p, *shard)?;
                    }
                }
                Mutation::ExpireSnapshots { keys } => {
                    for key in keys {
                        snapshots.remove(key.as_str())?;
                        snapshot_expiry.remove(key.as_str())?;
                    }
                }
                Mutation::Catalog { name, definition } => match definition {
                    Some(d) => {
                        catalog.insert(name.as_str(), d.as_str())?;
                    }
                    None => {
                        catalog.remove(name.as_str())?;
                    }
                },
                Mutation::BlendParts {
                    board,
                    blend,
                    shards,
                    parts,
                } => {
                    for s in 0..*shards {
                        blend_parts.insert((board.as_str(), &**blend, s), parts.as_str())?;
                    }
                }
            }
        }
        for ((b, p, s), v) in newest.versions {
            let current = t.versions.get((b, p, s))?.map_or(0, |row| row.value());
            if v > current {
                t.versions.insert((b, p, s), v)?;
            }
        }
        let keep = AUDIT_CAPACITY as u64;
        for ((b, s), seq) in newest.trim {
            if seq > keep {
                t.audit.retain_in::<AuditKey<'_>, _>(
                    (b, SHARD_ROW, s, 0)..=(b, SHARD_ROW, s, seq - keep),
                    |_, _| false,
                )?;
            }
        }
        if let Some(now) = sweep_at {
            sweep(&mut t.idem, &mut t.idem_scores, now)?;
            sweep_events(&mut l.events, now)?;
        }
    }
    txn.commit()?;
    Ok(())
}

/// Appends one encoded batch to the journal as row `seq` and deletes the
/// rows the checkpointer has applied (up to `trim`), in one commit.
fn append_journal(
    journal: &Database,
    seq: Option<(u64, &[u8])>,
    trim: Option<u64>,
    durability: Durability,
) -> Result<(), redb::Error> {
    let mut txn = journal.begin_write()?;
    txn.set_durability(durability)?;
    {
        let mut rows = txn.open_table(journal::JOURNAL)?;
        if let Some(through) = trim {
            rows.retain_in(..=through, |_, _| false)?;
        }
        if let Some((seq, row)) = seq {
            rows.insert(seq, row)?;
        }
    }
    txn.commit()?;
    Ok(())
}

/// Writes one applied score write of board `b` (see the module docs for
/// why a member's row is only overwritten by a higher sequence number).
fn write_applied<'a>(
    t: &mut ScoreTables<'_>,
    newest: &mut Newest<'a>,
    b: &'a str,
    applied: &'a Applied,
) -> Result<(), redb::Error> {
    let (s, seq) = (applied.shard, applied.seq);
    let a = &applied.audit;
    let member = a.member.as_str();
    for set in applied.sets.iter().filter(|set| is_period(&set.id)) {
        let p = &*set.id;
        let key = (b, p, s, member);
        let newer = t.members.get(key)?.is_none_or(|row| row.value().1 < seq);
        match (newer, set.score) {
            (true, Some(score)) => {
                t.members.insert(key, (score, seq))?;
                if set.tie != 0 {
                    t.ties.insert(key, set.tie)?;
                }
            }
            (true, None) => {
                t.members.remove(key)?;
                t.ties.remove(key)?;
            }
            (false, _) => {}
        }
        let top = newest.versions.entry((b, p, s)).or_insert(0);
        *top = (*top).max(set.version);
        if let Some(at) = set.expires_at_ms {
            t.set_expiry.insert((b, p, s), at)?;
        }
    }
    if let Some(change) = &applied.meta {
        write_meta(t, b, applied, change)?;
    }
    let top = newest.versions.entry((b, SHARD_ROW, s)).or_insert(0);
    *top = (*top).max(seq);
    let last = newest.trim.entry((b, s)).or_insert(0);
    *last = (*last).max(seq);
    if let Some(r) = &applied.idempotency {
        let key = (r.expires_at_ms, b, SHARD_ROW, s, member, r.key.as_str());
        t.idem.insert(key, (r.digest, r.score))?;
        if let Some(scores) = &r.scores {
            t.idem_scores.insert(key, encode_scores(scores).as_str())?;
        }
    }
    t.audit.insert(
        (b, SHARD_ROW, s, seq),
        (
            member,
            a.op.as_str(),
            a.value,
            a.score,
            a.idempotency_key.as_deref(),
            a.request_id.as_str(),
            a.at_ms,
        ),
    )?;
    for p in &applied.expired {
        expire_set(t, b, p, s)?;
    }
    Ok(())
}

/// Writes (or deletes) a member's meta row, unless a write of a higher
/// sequence number already did, as for its score rows.
fn write_meta(
    t: &mut ScoreTables<'_>,
    b: &str,
    applied: &Applied,
    change: &MetaChange,
) -> Result<(), redb::Error> {
    let key = (b, SHARD_ROW, applied.shard, applied.audit.member.as_str());
    let newer = t
        .meta
        .get(key)?
        .is_none_or(|row| row.value().1 < applied.seq);
    match (newer, change) {
        (true, MetaChange::Set(meta)) => {
            t.meta.insert(key, (meta.as_str(), applied.seq))?;
        }
        (true, MetaChange::Remove) => {
            t.meta.remove(key)?;
        }
        (false, _) => {}
    }
    Ok(())
}

/// Writes the like rows of one applied event. They hold values after the
/// event (not deltas), and events reach the committer in the order memory
/// applied them (see [`MemoryStore::apply_event_with`]), so writing them in
/// batch order leaves the disk as memory is. A state of none, a zero count
/// pair, a zero total and a list entry unliked or trimmed off are deleted
/// rather than kept.
fn write_event(l: &mut LikeTables<'_>, change: &EventChange) -> Result<(), redb::Error> {
    let tenant = change.tenant.as_str();
    let (id, seen) = &change.seen;
    l.events.insert(
        (seen.expires_at_ms, tenant, id.as_str()),
        (seen.digest, seen.state.map(LikeState::code)),
    )?;
    if let Some((target, actor, state)) = &change.state {
        let key = (tenant, target.as_str(), actor.as_str());
        if *state == LikeState::None {
            l.states.remove(key)?;
        } else {
            l.states.insert(key, state.code())?;
        }
    }
    if let Some((target, likes, dislikes)) = &change.counts {
        let key = (tenant, target.as_str());
        if (*likes, *dislikes) == (0, 0) {
            l.counts.remove(key)?;
        } else {
            l.counts.insert(key, (*likes, *dislikes))?;
        }
    }
    if let Some((actor, target, at, trimmed)) = &change.list {
        let actor = actor.as_str();
        match at {
            Some(at) => {
                l.lists.insert((tenant, actor, target.as_str()), *at)?;
            }
            None => {
                l.lists.remove((tenant, actor, target.as_str()))?;
            }
        }
        for gone in trimmed {
            l.lists.remove((tenant, actor, gone.as_str()))?;
        }
    }
    if let Some((owner, total)) = &change.owner {
        let key = (tenant, owner.as_str());
        if *total == 0 {
            l.owners.remove(key)?;
        } else {
            l.owners.insert(key, *total)?;
        }
    }
    Ok(())
}

/// Deletes every row of period `p` of shard `s`.
fn expire_set(t: &mut ScoreTables<'_>, b: &str, p: &str, s: u32) -> Result<(), redb::Error> {
    t.members
        .retain_in::<MemberKey<'_>, _>((b, p, s, "")..(b, p, s + 1, ""), |_, _| false)?;
    t.ties
        .retain_in::<MemberKey<'_>, _>((b, p, s, "")..(b, p, s + 1, ""), |_, _| false)?;
    t.versions.remove((b, p, s))?;
    t.set_expiry.remove((b, p, s))?;
    Ok(())
}

/// What the committer task works with; see the module docs.
struct Committer {
    journal: Arc<Database>,
    sync: Sync,
    failed: Arc<AtomicBool>,
    /// The journal file, for errors.
    file: PathBuf,
    /// The last batch the checkpointer applied: the committer deletes the
    /// journal rows up to it in its next commit.
    checkpointed: Arc<AtomicU64>,
    to_checkpoint: mpsc::Sender<(u64, Vec<Mutation>)>,
}

/// The committer task: each batch of queued mutations becomes one journal
/// row in one commit (numbered from `next`), is acknowledged, and goes on
/// to the checkpointer; see the module docs.
async fn committer(c: Committer, mut rx: mpsc::Receiver<Job>, mut next: u64) {
    let mut last_durable = Instant::now();
    // Interval mode: commits since the last durable one.
    let mut dirty = false;
    let mut trimmed = 0;
    loop {
        let first = match (c.sync, dirty) {
            (Sync::Interval(every), true) => {
                tokio::select! {
                    job = rx.recv() => job,
                    _ = tokio::time::sleep_until((last_durable + every).into()) => {
                        journal_commit(&c, None, None, Durability::Immediate).await;
                        dirty = false;
                        last_durable = Instant::now();
                        continue;
                    }
                }
            }
            _ => rx.recv().await,
        };
        let Some(first) = first else { break };
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let durability = match c.sync {
            Sync::Commit => Durability::Immediate,
            Sync::Interval(every) if last_durable.elapsed() >= every => Durability::Immediate,
            Sync::Interval(_) => Durability::None,
        };
        let checkpointed = c.checkpointed.load(Ordering::Acquire);
        let trim = (checkpointed > trimmed).then(|| {
            trimmed = checkpointed;
            checkpointed
        });
        let (mutations, dones): (Vec<_>, Vec<_>) =
            jobs.into_iter().map(|j| (j.mutation, j.done)).unzip();
        let seq = next;
        next += 1;
        let mutations = journal_commit(&c, Some((seq, mutations)), trim, durability).await;
        if matches!(durability, Durability::Immediate) {
            dirty = false;
            last_durable = Instant::now();
        } else {
            dirty = true;
        }
        for done in dones {
            let _ = done.send(());
        }
        if c.to_checkpoint.send((seq, mutations)).await.is_err() {
            // The checkpointer stopped (it failed, and said so); the
            // journal keeps the rows for the restart.
            break;
        }
    }
    if dirty {
        journal_commit(&c, None, None, Durability::Immediate).await;
    }
}

/// Encodes and commits one journal row (and trims) on a blocking thread;
/// answers the mutations back for the checkpointer. Panics (after marking
/// the store failed) if it cannot.
async fn journal_commit(
    c: &Committer,
    batch: Option<(u64, Vec<Mutation>)>,
    trim: Option<u64>,
    durability: Durability,
) -> Vec<Mutation> {
    let journal = c.journal.clone();
    let n = batch.as_ref().map_or(0, |(_, b)| b.len());
    let result = tokio::task::spawn_blocking(move || {
        let row = batch.as_ref().map(|(seq, b)| (*seq, journal::encode(b)));
        append_journal(
            &journal,
            row.as_ref().map(|(seq, bytes)| (*seq, &bytes[..])),
            trim,
            durability,
        )
        .map(|()| batch.map(|(_, b)| b).unwrap_or_default())
    })
    .await;
    match result {
        Ok(Ok(batch)) => batch,
        Ok(Err(e)) => stop(&c.failed, &c.file, n, &e.to_string()),
        Err(e) => stop(&c.failed, &c.file, n, &e.to_string()),
    }
}

/// The checkpointer task: gathers the journal's batches for up to
/// `every` ([`CHECKPOINT_EVERY`]) and applies them to `standings.redb` in one
/// durable transaction that also records the last one applied; see the
/// module docs. When the committer is gone (the store is closing) it
/// applies the rest and empties the journal.
async fn checkpointer(
    db: Arc<Database>,
    journal: Arc<Database>,
    mut rx: mpsc::Receiver<(u64, Vec<Mutation>)>,
    failed: Arc<AtomicBool>,
    file: PathBuf,
    checkpointed: Arc<AtomicU64>,
    every: Duration,
) {
    let mut last_sweep = Instant::now();
    let mut open = true;
    while open {
        let Some((mut through, mut batch)) = rx.recv().await else {
            break;
        };
        let deadline = tokio::time::Instant::now() + every;
        while batch.len() < CHECKPOINT_MAX {
            tokio::select! {
                next = rx.recv() => match next {
                    Some((seq, more)) => {
                        through = seq;
                        batch.extend(more);
                    }
                    None => {
                        open = false;
                        break;
                    }
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        let sweep_at = (last_sweep.elapsed() >= EXPIRY_SWEEP).then(|| {
            last_sweep = Instant::now();
            crate::store::now_ms()
        });
        run(
            &db,
            batch,
            Durability::Immediate,
            sweep_at,
            Some(through),
            &failed,
            &file,
        )
        .await;
        checkpointed.store(through, Ordering::Release);
    }
    let through = checkpointed.load(Ordering::Acquire);
    if through > 0 && !failed.load(Ordering::Acquire) {
        let file = file.with_file_name(JOURNAL_FILE_NAME);
        let trimmed = tokio::task::spawn_blocking(move || {
            append_journal(&journal, None, Some(through), Durability::Immediate)
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        if let Err(e) = trimmed {
            tracing::warn!(file = %file.display(), error = %e, "could not empty the journal at close; the next start skips its applied rows");
        }
    }
}

/// Commits one batch to `standings.redb` on a blocking thread; panics
/// (after marking the store failed) if it cannot.
async fn run(
    db: &Arc<Database>,
    batch: Vec<Mutation>,
    durability: Durability,
    sweep_at: Option<u64>,
    applied_through: Option<u64>,
    failed: &AtomicBool,
    file: &Path,
) {
    let db = db.clone();
    let n = batch.len();
    let result = tokio::task::spawn_blocking(move || {
        write_batch(&db, &batch, durability, sweep_at, applied_through)
    })
    .await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => stop(failed, file, n, &e.to_string()),
        Err(e) => stop(failed, file, n, &e.to_string()),
    }
}

/// A commit failed: memory is ahead of disk. Marks the store failed, logs
/// and panics (see "Failure" in the module docs).
fn stop(failed: &AtomicBool, file: &Path, n: usize, error: &str) -> ! {
    failed.store(true, Ordering::Release);
    tracing::error!(
        file = %file.display(),
        writes = n,
        error = %error,
        "durable store commit failed; memory is ahead of disk, stopping (a restart reloads every acknowledged write)"
    );
    panic!("durable store commit to {} failed: {error}", file.display());
}

/// A new database identity: the journal of one database is never applied
/// to another (a restored backup, a file copied in).
fn new_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // Nanoseconds and the process id: unique enough for "not the same
    // database", which is all it is for. Never 0 (0 is "none yet").
    (nanos ^ (u64::from(std::process::id()) << 40)).max(1)
}

/// Writes `id` and `applied_through` into `db`'s journal state.
fn set_identity(db: &Database, id: u64, applied_through: u64) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut state = txn.open_table(journal::STATE)?;
        state.insert(journal::ID, id)?;
        state.insert(journal::APPLIED_THROUGH, applied_through)?;
    }
    txn.commit()?;
    Ok(())
}

/// The last journal batch applied to the database of `read` (0: none).
fn applied_through(read: &redb::ReadTransaction) -> Result<u64, redb::Error> {
    read_state(read, journal::APPLIED_THROUGH).map(|v| v.unwrap_or(0))
}

fn read_state(read: &redb::ReadTransaction, key: &str) -> Result<Option<u64>, redb::Error> {
    match read.open_table(journal::STATE) {
        Ok(table) => Ok(table.get(key)?.map(|v| v.value())),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The journal rows after `through`, decoded, checked to follow on from it
/// with no gap.
fn journal_rows(
    read: &redb::ReadTransaction,
    through: u64,
) -> Result<Vec<(u64, Vec<Mutation>)>, String> {
    let table = match read.open_table(journal::JOURNAL) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string()),
    };
    let mut rows = Vec::new();
    let range = table.range(through + 1..).map_err(|e| e.to_string())?;
    for (expect, row) in (through + 1..).zip(range) {
        let (k, v) = row.map_err(|e| e.to_string())?;
        let seq = k.value();
        if seq != expect {
            return Err(format!(
                "journal row {seq} follows {}: rows {expect}..{seq} are missing",
                expect - 1
            ));
        }
        let batch = journal::decode(v.value()).map_err(|e| format!("journal row {seq}: {e}"))?;
        rows.push((seq, batch));
    }
    Ok(rows)
}

/// At open: ties the journal to the database (by identity), applies its
/// rows after the database's `applied_through` in one durable commit and
/// empties it. Answers the number the next journal row gets.
fn recover(
    db: &Database,
    file: &Path,
    journal: &Database,
    journal_file: &Path,
) -> Result<u64, OpenError> {
    let corrupt = |file: &Path, reason: String| OpenError::Corrupt {
        file: file.to_owned(),
        reason,
    };
    let read = db.begin_read().map_err(|e| corrupt(file, e.to_string()))?;
    let id = read_state(&read, journal::ID).map_err(|e| corrupt(file, e.to_string()))?;
    let through = applied_through(&read).map_err(|e| corrupt(file, e.to_string()))?;
    drop(read);
    let id = match id {
        Some(id) => id,
        None => {
            let id = new_id();
            set_identity(db, id, through).map_err(|e| corrupt(file, e.to_string()))?;
            id
        }
    };
    let pending = journal
        .begin_read()
        .map_err(|e| corrupt(journal_file, e.to_string()))?;
    let journal_id =
        read_state(&pending, journal::ID).map_err(|e| corrupt(journal_file, e.to_string()))?;
    let last = match pending.open_table(journal::JOURNAL) {
        Ok(t) => t
            .last()
            .map_err(|e| corrupt(journal_file, e.to_string()))?
            .map(|(k, _)| k.value()),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(corrupt(journal_file, e.to_string())),
    };
    match (journal_id, last) {
        (Some(j), _) if j != id => {
            return Err(corrupt(
                journal_file,
                format!(
                    "it was written for another database (id {j:x}; {} is {id:x}); \
                     move it away to start from {} alone",
                    file.display(),
                    file.display()
                ),
            ))
        }
        (None, Some(_)) => {
            return Err(corrupt(
                journal_file,
                "it holds rows but names no database".into(),
            ))
        }
        _ => {}
    }
    let rows = journal_rows(&pending, through).map_err(|e| corrupt(journal_file, e))?;
    drop(pending);
    if let Some(&(last_row, _)) = rows.last() {
        let n = rows.len();
        let batch: Vec<Mutation> = rows.into_iter().flat_map(|(_, b)| b).collect();
        write_batch(db, &batch, Durability::Immediate, None, Some(last_row))
            .map_err(|e| corrupt(file, e.to_string()))?;
        tracing::info!(file = %journal_file.display(), batches = n, writes = batch.len(), "applied the journal's rows after the last checkpoint");
    }
    // Every row is in the database now: name it in the journal and empty it.
    let empty = || -> Result<(), redb::Error> {
        let txn = journal.begin_write()?;
        txn.open_table(journal::STATE)?.insert(journal::ID, id)?;
        txn.open_table(journal::JOURNAL)?.retain(|_, _| false)?;
        txn.commit()?;
        Ok(())
    };
    empty().map_err(|e| corrupt(journal_file, e.to_string()))?;
    // Numbers go on from the journal's last row, applied or not: a row
    // number is never used twice.
    Ok(last.unwrap_or(0).max(through) + 1)
}

#[async_trait]
impl Store for DurableStore {
    async fn apply(&self, board: &Board, write: &Write) -> Result<WriteOutcome, StoreError> {
        let permit = self.reserve().await?;
        let (outcome, applied) = self.memory.apply_recorded(board, write)?;
        let Some(applied) = applied else {
            return Ok(outcome);
        };
        let mutation = Mutation::Write {
            board: board.storage().clone(),
            applied,
        };
        Self::commit(permit, mutation).await?;
        Ok(outcome)
    }

    async fn top(&self, board: &Board, shard: u32, k: usize) -> Result<Vec<Entry>, StoreError> {
        self.memory.top(board, shard, k).await
    }

    async fn score(
        &self,
        board: &Board,
        shard: u32,
        member: &MemberId,
    ) -> Result<Option<f64>, StoreError> {
        self.memory.score(board, shard, member).await
    }

    async fn counts(
        &self,
        board: &Board,
        shards: &[u32],
        score: f64,
    ) -> Result<Vec<ShardCounts>, StoreError> {
        self.memory.counts(board, shards, score).await
    }

    async fn scores_many(
        &self,
        board: &Board,
        members: &[MemberId],
    ) -> Result<Vec<Option<f64>>, StoreError> {
        self.memory.scores_many(board, members).await
    }

    async fn counts_many(
        &self,
        board: &Board,
        shards: &[u32],
        scores: &[f64],
    ) -> Result<Vec<ShardCountsMany>, StoreError> {
        self.memory.counts_many(board, shards, scores).await
    }

    /// Each write applied in memory and queued as it would be alone, then
    /// all waited for together: the batch shares commits (one fsync for
    /// many writes), and none is answered before every queued one is on
    /// disk.
    async fn apply_many(
        &self,
        board: &Board,
        writes: &[Write],
    ) -> Vec<Result<WriteOutcome, StoreError>> {
        let mut outcomes = Vec::with_capacity(writes.len());
        let mut waits = Vec::with_capacity(writes.len());
        for write in writes {
            let queued = match self.reserve().await {
                Ok(permit) => self.memory.apply_recorded(board, write).map(|(o, a)| {
                    let wait = a.map(|applied| {
                        let board = board.storage().clone();
                        Self::queue(permit, Mutation::Write { board, applied })
                    });
                    (o, wait)
                }),
                Err(e) => Err(e),
            };
            match queued {
                Ok((outcome, wait)) => {
                    outcomes.push(Ok(outcome));
                    waits.push(wait);
                }
                Err(e) => {
                    outcomes.push(Err(e));
                    waits.push(None);
                }
            }
        }
        for (outcome, wait) in outcomes.iter_mut().zip(waits) {
            if let Some(wait) = wait {
                if let Err(e) = Self::wait(wait).await {
                    *outcome = Err(e);
                }
            }
        }
        outcomes
    }

    async fn metas(
        &self,
        board: &Board,
        members: &[MemberId],
    ) -> Result<Vec<Option<Meta>>, StoreError> {
        self.memory.metas(board, members).await
    }

    async fn neighbours(
        &self,
        board: &Board,
        shards: &[u32],
        anchor: &Entry,
        n: usize,
    ) -> Result<Vec<Neighbours>, StoreError> {
        self.memory.neighbours(board, shards, anchor, n).await
    }

    async fn entries_of(
        &self,
        board: &Board,
        members: &[MemberId],
    ) -> Result<Vec<Option<Entry>>, StoreError> {
        self.memory.entries_of(board, members).await
    }

    async fn places_many(
        &self,
        board: &Board,
        shards: &[u32],
        anchors: &[Entry],
    ) -> Result<Vec<ShardCountsMany>, StoreError> {
        self.memory.places_many(board, shards, anchors).await
    }

    async fn page_after(
        &self,
        board: &Board,
        shards: &[u32],
        after: Option<&Entry>,
        n: usize,
    ) -> Result<Vec<ShardPage>, StoreError> {
        self.memory.page_after(board, shards, after, n).await
    }

    async fn versions(&self, board: &Board, shards: &[u32]) -> Result<Vec<u64>, StoreError> {
        self.memory.versions(board, shards).await
    }

    async fn audit_tail(
        &self,
        board: &Board,
        shard: u32,
        n: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.memory.audit_tail(board, shard, n).await
    }

    async fn put_snapshot(
        &self,
        board: &Board,
        scope: Scope,
        bytes: Bytes,
    ) -> Result<(), StoreError> {
        let permit = self.reserve().await?;
        let key = keyspace::snapshot(board, scope);
        let expires_at_ms = board.expires_at_ms(&board.period);
        let seq = {
            let mut seq = self.snapshot_seq.lock().unwrap_or_else(|p| p.into_inner());
            *seq += 1;
            self.memory
                .restore_snapshot(key.clone(), bytes.clone(), expires_at_ms);
            *seq
        };
        let mutation = Mutation::Snapshot {
            key,
            seq,
            bytes,
            expires_at_ms,
        };
        Self::commit(permit, mutation).await
    }

    async fn get_snapshot(&self, board: &Board, scope: Scope) -> Result<Option<Bytes>, StoreError> {
        self.memory.get_snapshot(board, scope).await
    }

    async fn maintain(&self, board: &Board, shards: &[u32]) -> Result<u64, StoreError> {
        let mut rebuilt = 0;
        for &shard in shards {
            super::check_shard(board, shard)?;
            let permit = self.reserve().await?;
            let (sets, n) = self.memory.maintain_shard(board, shard);
            rebuilt += n;
            if !sets.is_empty() {
                let mutation = Mutation::Expire {
                    board: board.storage().clone(),
                    shard,
                    sets,
                };
                Self::commit(permit, mutation).await?;
            }
        }
        let permit = self.reserve().await?;
        let keys = self.memory.expire_snapshots(crate::store::now_ms_i64());
        if !keys.is_empty() {
            Self::commit(permit, Mutation::ExpireSnapshots { keys }).await?;
        }
        Ok(rebuilt)
    }

    async fn set_blend(&self, board: &Board, blend: &Blend) -> Result<(), StoreError> {
        let permit = self.reserve().await?;
        self.memory.set_blend(board, blend).await?;
        let mutation = Mutation::BlendParts {
            board: board.storage().clone(),
            blend: blend.name.clone(),
            shards: board.shards,
            parts: blend::encode_parts(&blend.parts),
        };
        Self::commit(permit, mutation).await
    }

    async fn remove(
        &self,
        board: &Board,
        member: &MemberId,
        request_id: &str,
    ) -> Result<bool, StoreError> {
        let permit = self.reserve().await?;
        let Some(applied) = self.memory.remove_recorded(board, member, request_id)? else {
            return Ok(false);
        };
        let mutation = Mutation::Write {
            board: board.storage().clone(),
            applied,
        };
        Self::commit(permit, mutation).await?;
        Ok(true)
    }

    async fn catalog(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.memory.catalog().await
    }

    async fn catalog_add(&self, name: &str, definition: &str) -> Result<bool, StoreError> {
        let permit = self.reserve().await?;
        if !self.memory.catalog_put(name, Some(definition)) {
            return Ok(false);
        }
        let mutation = Mutation::Catalog {
            name: name.to_owned(),
            definition: Some(definition.to_owned()),
        };
        Self::commit(permit, mutation).await?;
        Ok(true)
    }

    async fn catalog_remove(&self, name: &str) -> Result<bool, StoreError> {
        let permit = self.reserve().await?;
        if !self.memory.catalog_put(name, None) {
            return Ok(false);
        }
        let mutation = Mutation::Catalog {
            name: name.to_owned(),
            definition: None,
        };
        Self::commit(permit, mutation).await?;
        Ok(true)
    }

    async fn apply_events(
        &self,
        space: &LikeSpace,
        boards: &[Board],
        events: &[Event],
    ) -> Result<Vec<EventOutcome>, StoreError> {
        let mut outcomes = Vec::with_capacity(events.len());
        let mut waits = Vec::new();
        let mut error = None;
        for event in events {
            let permit = match self.reserve().await {
                Ok(permit) => permit,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            };
            // Queued under the likes lock: see `apply_event_with`. An event
            // that changed nothing (a repeat, a refusal) drops the permit.
            let applied = self
                .memory
                .apply_event_with(space, boards, event, |mut change| {
                    let moves = std::mem::take(&mut change.moves)
                        .into_iter()
                        .map(|(i, applied)| (boards[i].storage().clone(), applied))
                        .collect();
                    Self::queue(permit, Mutation::Event { change, moves })
                });
            match applied {
                Ok((outcome, wait)) => {
                    outcomes.push(outcome);
                    waits.extend(wait);
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        // Events of the call share commits; none is answered before all
        // that were queued are on disk.
        let queued = waits.len();
        for wait in waits {
            Self::wait(wait).await?;
        }
        match error {
            None => Ok(outcomes),
            // Nothing of the call changed: the error is the whole answer.
            Some(e) if queued == 0 => Err(e),
            // Earlier events (or this one's like state) are applied and on
            // disk, so "nothing was applied" would be false: a retry of
            // the call with the same ids answers those as repeats.
            Some(e) => Err(StoreError::OutcomeUnknown(format!(
                "event {} of a batch of {} failed after {queued} change(s) of the batch \
                 were applied (a retry with the same ids answers those as repeats): {e}",
                outcomes.len() + 1,
                events.len(),
            ))),
        }
    }

    async fn like_counts(
        &self,
        space: &LikeSpace,
        targets: &[MemberId],
        actor: Option<&MemberId>,
    ) -> Result<Vec<LikeCounts>, StoreError> {
        self.memory.like_counts(space, targets, actor).await
    }

    async fn actor_likes(
        &self,
        space: &LikeSpace,
        actor: &MemberId,
        limit: usize,
    ) -> Result<Vec<LikedTarget>, StoreError> {
        self.memory.actor_likes(space, actor, limit).await
    }

    async fn owner_likes(&self, space: &LikeSpace, owner: &MemberId) -> Result<u64, StoreError> {
        self.memory.owner_likes(space, owner).await
    }

    /// Nothing to follow: lists, totals and actor- and owner-fed boards
    /// are applied and committed with the event.
    async fn follow_events(
        &self,
        _space: &LikeSpace,
        _boards: &[Board],
        _shards: &[u32],
        _consumer: &str,
        _max: usize,
    ) -> Result<u64, StoreError> {
        Ok(0)
    }

    async fn event_lag(&self, _space: &LikeSpace, _shards: &[u32]) -> Result<u64, StoreError> {
        Ok(0)
    }

    async fn weights(&self) -> Result<Vec<(String, Weights)>, StoreError> {
        self.memory.weights().await
    }

    async fn set_weights(&self, board: &Board, weights: &Weights) -> Result<(), StoreError> {
        let permit = self.reserve().await?;
        let wait = {
            let _order = self.weights_order.lock().unwrap_or_else(|p| p.into_inner());
            self.memory
                .put_weights(board.storage_name(), weights.clone());
            let mutation = Mutation::Weights {
                board: board.storage().clone(),
                json: weights.to_json(),
            };
            Self::queue(permit, mutation)
        };
        Self::wait(wait).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(failed());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::{IdempotencyRecord, SetChange};
    use crate::types::BoardName;

    fn applied(version: u64, score: f64, key: Option<&str>) -> Mutation {
        let member = MemberId::new("m:1").unwrap();
        Mutation::Write {
            board: StorageName::parse("ord").unwrap(),
            applied: Applied {
                shard: 1,
                seq: version,
                score,
                sets: vec![SetChange {
                    id: Arc::from("all"),
                    score: Some(score),
                    tie: 0,
                    version,
                    expires_at_ms: None,
                }],
                expired: Vec::new(),
                audit: AuditRecord {
                    member,
                    op: Op::Set,
                    value: score,
                    score,
                    idempotency_key: key.map(str::to_owned),
                    request_id: format!("r{version}"),
                    at_ms: 1,
                },
                idempotency: key.map(|k| IdempotencyRecord {
                    key: k.to_owned(),
                    digest: 7,
                    score,
                    scores: None,
                    expires_at_ms: crate::store::now_ms() + 60_000,
                }),
                meta: None,
            },
        }
    }

    /// Writes that reach the committer out of order (in one batch or in
    /// two) leave the disk as the in-memory order would.
    #[tokio::test]
    async fn disk_state_does_not_depend_on_commit_order() {
        let dir = std::env::temp_dir().join(format!(
            "standings-durable-order-{}-{}",
            std::process::id(),
            crate::store::now_ms()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(FILE_NAME);
        let db = open_db(&file).unwrap();
        prepare(&db).unwrap();
        let im = Durability::Immediate;
        write_batch(
            &db,
            &[applied(3, 30.0, None), applied(2, 20.0, Some("k"))],
            im,
            None,
            None,
        )
        .unwrap();
        write_batch(&db, &[applied(1, 10.0, None)], im, None, None).unwrap();
        let memory = MemoryStore::new();
        load(&db, &memory).unwrap();
        let board = Board {
            shards: 4,
            shard_by: crate::board::ShardBy::Numeric,
            ..Board::new(BoardName::new("ord").unwrap())
        };
        let m = MemberId::new("m:1").unwrap();
        assert_eq!(memory.score(&board, 1, &m).await.unwrap(), Some(30.0));
        assert_eq!(memory.versions(&board, &[1]).await.unwrap(), vec![3]);
        let tail = memory.audit_tail(&board, 1, 10).await.unwrap();
        let ids: Vec<_> = tail.iter().map(|r| r.request_id.as_str()).collect();
        assert_eq!(ids, ["r3", "r2", "r1"], "audit newest first by version");
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn parses_sync_modes() {
        assert_eq!("commit".parse::<Sync>().unwrap(), Sync::Commit);
        assert_eq!(
            "interval:100ms".parse::<Sync>().unwrap(),
            Sync::Interval(Duration::from_millis(100))
        );
        assert_eq!(
            "interval:2s".parse::<Sync>().unwrap(),
            Sync::Interval(Duration::from_secs(2))
        );
        for bad in [
            "",
            "always",
            "interval:",
            "interval:fast",
            "interval:0s",
            "Commit",
        ] {
            let err = bad.parse::<Sync>().unwrap_err().to_string();
            assert!(
                err.contains("expected `commit` or `interval:"),
                "{bad}: {err}"
            );
        }
    }
}
