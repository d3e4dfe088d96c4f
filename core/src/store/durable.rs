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
//! file with no compaction is the simpler fit. The comparison is by design,
//! not benchmarked. What would change the choice: data sets that no longer
//! fit in memory (reads served from disk), or write rates where redb's
//! copy-on-write page rewrites per commit become the bottleneck while an
//! LSM's sequential appends would not.
//!
//! # Group commit
//!
//! [`Store::apply`] applies the write in memory (under the shard lock, which
//! assigns the shard's next version), hands the resulting mutation to one
//! committer task over a bounded channel, and waits for its answer. The
//! committer takes one mutation, drains whatever else is already queued (up
//! to [`MAX_BATCH`]), writes them all in one redb write transaction and
//! commits once, so writes that arrive together share one fsync. A slot in
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
//! A repeat of an idempotency key is answered from memory without waiting
//! for the first write's commit; if that commit then fails, the repeat was
//! answered for a write the restarted store does not have (a retry after the
//! restart applies it).
//!
//! # Table layout
//!
//! One file, `DATA_DIR/standings.redb`, holds every board. Keys are redb
//! tuples, compared element by element, so every row of one shard is
//! contiguous. `b` is the board name, `p` the period, `s` the shard index
//! (`u32`):
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `members` | `(b, p, s, member)` | `(score: f64, version: u64)`: the score and the shard version of the write that set it |
//! | `versions` | `(b, p, s)` | `u64`: the shard's version |
//! | `idempotency` | `(expires_at_ms: u64, b, p, s, member, key)` | `(digest: u64, score: f64)`: ordered by expiry first, so expired records are one range to delete and records load in the FIFO order the in-memory expiry queue needs |
//! | `audit` | `(b, p, s, version: u64)` | `(member, op, value: f64, score: f64, idempotency_key: Option<&str>, request_id, at_ms: u64)`, at most [`AUDIT_CAPACITY`] per shard |
//! | `snapshots` | [`keyspace::snapshot`] key | `(seq: u64, bytes)` |
//!
//! Expiry times are wall-clock (ms since the Unix epoch), so a record's TTL
//! survives a restart; expired records are skipped and deleted at load, and
//! deleted by the committer at most every [`EXPIRY_SWEEP`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use redb::{Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::memory::{Applied, ShardId, AUDIT_CAPACITY};
use super::{
    AuditRecord, MemoryStore, Neighbours, ShardCounts, Store, StoreError, Write, WriteOutcome,
};
use crate::board::Board;
use crate::keyspace::{self, Scope};
use crate::types::{BoardName, Entry, MemberId, Op};

/// The database file's name inside the data directory.
pub const FILE_NAME: &str = "standings.redb";

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DurableOptions {
    /// When commits reach the disk.
    pub sync: Sync,
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
enum Mutation {
    Write {
        board: BoardName,
        period: Arc<str>,
        applied: Applied,
    },
    Snapshot {
        key: String,
        seq: u64,
        bytes: Bytes,
    },
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
    committer: JoinHandle<()>,
    failed: Arc<AtomicBool>,
    /// The sequence number of the last snapshot put.
    snapshot_seq: Mutex<u64>,
    file: PathBuf,
}

impl DurableStore {
    /// Opens (creating if missing) `dir/standings.redb`, loads it into
    /// memory and starts the committer task. Blocks while loading; must be
    /// called within a tokio runtime (it spawns the committer).
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
        let snapshot_seq = load(&db, &memory).map_err(corrupt)?;
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel(QUEUE);
        let failed = Arc::new(AtomicBool::new(false));
        let committer = tokio::spawn(committer(
            db.clone(),
            rx,
            options.sync,
            failed.clone(),
            file.clone(),
        ));
        Ok(DurableStore {
            memory,
            tx,
            db,
            committer,
            failed,
            snapshot_seq: Mutex::new(snapshot_seq),
            file,
        })
    }

    /// The database file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Stops taking writes, waits for the committer to commit everything
    /// queued (durably, whatever the [`Sync`] mode) and closes the file, so
    /// that it can be opened again at once.
    pub async fn close(self) {
        let DurableStore {
            tx, db, committer, ..
        } = self;
        drop(tx);
        if let Err(e) = committer.await {
            tracing::error!(error = %e, "durable store committer failed");
        }
        drop(db);
    }

    /// Writes a consistent copy of the database (as of the last commit) to
    /// `to` while serving: every table is copied from one read transaction
    /// into a new redb file written under a temporary name, committed
    /// durably and renamed to `to`. Restoring is starting on that copy (as
    /// `standings.redb` in the data directory). Blocks while copying.
    pub fn backup(&self, to: &Path) -> Result<(), OpenError> {
        let tmp = to.with_extension(format!("tmp-{}", std::process::id()));
        let corrupt = |file: &Path, e: &dyn std::fmt::Display| OpenError::Corrupt {
            file: file.to_owned(),
            reason: e.to_string(),
        };
        let _ = std::fs::remove_file(&tmp);
        let result = (|| {
            let copy = open_db(&tmp)?;
            copy_tables(&self.db, &copy).map_err(|e| corrupt(&tmp, &e))?;
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
        let (done, wait) = oneshot::channel();
        permit.send(Job { mutation, done });
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

/// Creates the tables of a new file and deletes expired idempotency records.
fn prepare(db: &Database) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        txn.open_table(MEMBERS)?;
        txn.open_table(VERSIONS)?;
        txn.open_table(AUDIT)?;
        txn.open_table(SNAPSHOTS)?;
        let mut idem = txn.open_table(IDEMPOTENCY)?;
        sweep(&mut idem, crate::store::now_ms())?;
    }
    txn.commit()?;
    Ok(())
}

fn sweep(
    idem: &mut redb::Table<IdemKey<'static>, (u64, f64)>,
    now: u64,
) -> Result<(), redb::Error> {
    idem.retain_in::<IdemKey<'_>, _>(..(now, "", "", 0, "", ""), |_, _| false)?;
    Ok(())
}

/// Loads every table into `memory`; answers the highest snapshot sequence.
/// Consecutive rows of one shard, gathered so they are restored together.
struct ShardRuns<T> {
    run: Option<(ShardId, Vec<T>)>,
}

impl<T> Default for ShardRuns<T> {
    fn default() -> Self {
        Self { run: None }
    }
}

impl<T> ShardRuns<T> {
    /// Adds `item` of shard `(b, p, s)`; when it starts a new shard, hands
    /// the finished run to `flush` first.
    fn push(
        &mut self,
        (b, p, s): (&str, &str, u32),
        id: &mut impl FnMut(&str, &str, u32) -> Result<ShardId, String>,
        item: T,
        flush: impl FnOnce(ShardId, Vec<T>),
    ) -> Result<(), String> {
        let same = self
            .run
            .as_ref()
            .is_some_and(|((rb, rp, rs), _)| rb.as_str() == b && &**rp == p && *rs == s);
        if !same {
            if let Some((shard, items)) = self.run.take() {
                flush(shard, items);
            }
            self.run = Some((id(b, p, s)?, Vec::new()));
        }
        if let Some((_, items)) = self.run.as_mut() {
            items.push(item);
        }
        Ok(())
    }

    /// Hands the last run to `flush`.
    fn finish(self, flush: impl FnOnce(ShardId, Vec<T>)) {
        if let Some((shard, items)) = self.run {
            flush(shard, items);
        }
    }
}

fn load(db: &Database, memory: &MemoryStore) -> Result<u64, String> {
    let txn = db.begin_read().map_err(|e| e.to_string())?;
    let e = |e: redb::StorageError| e.to_string();
    let t = |e: redb::TableError| e.to_string();
    let mut periods: HashMap<String, Arc<str>> = HashMap::new();
    let mut id = |b: &str, p: &str, s: u32| -> Result<ShardId, String> {
        let name = BoardName::new(b).map_err(|err| format!("board name {b:?}: {err}"))?;
        let period = periods
            .entry(p.to_owned())
            .or_insert_with(|| Arc::from(p))
            .clone();
        Ok((name, period, s))
    };
    let member = |m: &str| MemberId::new(m).map_err(|err| format!("member {m:?}: {err}"));

    // Rows come sorted by (board, period, shard): each shard's run is
    // restored under one lookup and one lock.
    let members = txn.open_table(MEMBERS).map_err(t)?;
    let mut runs = ShardRuns::default();
    for row in members.iter().map_err(e)? {
        let (k, v) = row.map_err(e)?;
        let (b, p, s, m) = k.value();
        let (score, _) = v.value();
        runs.push((b, p, s), &mut id, (member(m)?, score), |shard, scores| {
            memory.restore_scores(shard, scores)
        })?;
    }
    runs.finish(|shard, scores| memory.restore_scores(shard, scores));
    let versions = txn.open_table(VERSIONS).map_err(t)?;
    for row in versions.iter().map_err(e)? {
        let (k, v) = row.map_err(e)?;
        let (b, p, s) = k.value();
        memory.restore_version(id(b, p, s)?, v.value());
    }
    let now = crate::store::now_ms();
    let idem = txn.open_table(IDEMPOTENCY).map_err(t)?;
    for row in idem.iter().map_err(e)? {
        let (k, v) = row.map_err(e)?;
        let (expires, b, p, s, m, key) = k.value();
        if expires <= now {
            continue;
        }
        let (digest, score) = v.value();
        let remaining = Duration::from_millis(expires - now);
        memory.restore_idempotency(id(b, p, s)?, &member(m)?, key, digest, score, remaining);
    }
    let audit = txn.open_table(AUDIT).map_err(t)?;
    let mut runs = ShardRuns::default();
    for row in audit.iter().map_err(e)? {
        let (k, v) = row.map_err(e)?;
        let (b, p, s, _) = k.value();
        let (m, op, value, score, key, request_id, at_ms) = v.value();
        let record = AuditRecord {
            member: member(m)?,
            op: Op::parse(op).map_err(|err| format!("audit op {op:?}: {err}"))?,
            value,
            score,
            idempotency_key: key.map(str::to_owned),
            request_id: request_id.to_owned(),
            at_ms,
        };
        runs.push((b, p, s), &mut id, record, |shard, records| {
            memory.restore_audits(shard, records)
        })?;
    }
    runs.finish(|shard, records| memory.restore_audits(shard, records));
    let snapshots = txn.open_table(SNAPSHOTS).map_err(t)?;
    let mut seq = 0;
    for row in snapshots.iter().map_err(e)? {
        let (k, v) = row.map_err(e)?;
        let (s, bytes) = v.value();
        seq = seq.max(s);
        memory.restore_snapshot(k.value().to_owned(), Bytes::copy_from_slice(bytes));
    }
    Ok(seq)
}

/// Copies every table of `from` (one read transaction) into `to` (one
/// durable write transaction).
fn copy_tables(from: &Database, to: &Database) -> Result<(), redb::Error> {
    let read = from.begin_read()?;
    let write = to.begin_write()?;
    {
        let src = read.open_table(MEMBERS)?;
        let mut dst = write.open_table(MEMBERS)?;
        for row in src.iter()? {
            let (k, v) = row?;
            dst.insert(k.value(), v.value())?;
        }
        let src = read.open_table(VERSIONS)?;
        let mut dst = write.open_table(VERSIONS)?;
        for row in src.iter()? {
            let (k, v) = row?;
            dst.insert(k.value(), v.value())?;
        }
        let src = read.open_table(IDEMPOTENCY)?;
        let mut dst = write.open_table(IDEMPOTENCY)?;
        for row in src.iter()? {
            let (k, v) = row?;
            dst.insert(k.value(), v.value())?;
        }
        let src = read.open_table(AUDIT)?;
        let mut dst = write.open_table(AUDIT)?;
        for row in src.iter()? {
            let (k, v) = row?;
            dst.insert(k.value(), v.value())?;
        }
        let src = read.open_table(SNAPSHOTS)?;
        let mut dst = write.open_table(SNAPSHOTS)?;
        for row in src.iter()? {
            let (k, v) = row?;
            dst.insert(k.value(), v.value())?;
        }
    }
    write.commit()?;
    Ok(())
}

/// Writes one batch in one transaction.
fn write_batch(
    db: &Database,
    batch: &[Mutation],
    durability: Durability,
    sweep_at: Option<u64>,
) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(durability)?;
    {
        let mut members = txn.open_table(MEMBERS)?;
        let mut versions = txn.open_table(VERSIONS)?;
        let mut idem = txn.open_table(IDEMPOTENCY)?;
        let mut audit = txn.open_table(AUDIT)?;
        let mut snapshots = txn.open_table(SNAPSHOTS)?;
        let mut newest: HashMap<ShardKey<'_>, u64> = HashMap::new();
        for m in batch {
            match m {
                Mutation::Write {
                    board,
                    period,
                    applied,
                } => {
                    let (b, p, s, v) = (board.as_str(), &**period, applied.shard, applied.version);
                    let a = &applied.audit;
                    let member = a.member.as_str();
                    let key = (b, p, s, member);
                    let newer = members.get(key)?.is_none_or(|row| row.value().1 < v);
                    if newer {
                        members.insert(key, (applied.score, v))?;
                    }
                    let top = newest.entry((b, p, s)).or_insert(0);
                    *top = (*top).max(v);
                    if let Some(r) = &applied.idempotency {
                        idem.insert(
                            (r.expires_at_ms, b, p, s, member, r.key.as_str()),
                            (r.digest, r.score),
                        )?;
                    }
                    audit.insert(
                        (b, p, s, v),
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
                }
                Mutation::Snapshot { key, seq, bytes } => {
                    let newer = snapshots
                        .get(key.as_str())?
                        .is_none_or(|row| row.value().0 < *seq);
                    if newer {
                        snapshots.insert(key.as_str(), (*seq, &bytes[..]))?;
                    }
                }
            }
        }
        for ((b, p, s), v) in newest {
            let current = versions.get((b, p, s))?.map_or(0, |row| row.value());
            if v > current {
                versions.insert((b, p, s), v)?;
            }
            let keep = AUDIT_CAPACITY as u64;
            if v > keep {
                audit
                    .retain_in::<AuditKey<'_>, _>((b, p, s, 0)..=(b, p, s, v - keep), |_, _| {
                        false
                    })?;
            }
        }
        if let Some(now) = sweep_at {
            sweep(&mut idem, now)?;
        }
    }
    txn.commit()?;
    Ok(())
}

/// The committer task; see the module docs.
async fn committer(
    db: Arc<Database>,
    mut rx: mpsc::Receiver<Job>,
    sync: Sync,
    failed: Arc<AtomicBool>,
    file: PathBuf,
) {
    let mut last_durable = Instant::now();
    let mut last_sweep = Instant::now();
    // Interval mode: commits since the last durable one.
    let mut dirty = false;
    loop {
        let first = match (sync, dirty) {
            (Sync::Interval(every), true) => {
                tokio::select! {
                    job = rx.recv() => job,
                    _ = tokio::time::sleep_until((last_durable + every).into()) => {
                        run(&db, Vec::new(), Durability::Immediate, None, &failed, &file).await;
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
        let durability = match sync {
            Sync::Commit => Durability::Immediate,
            Sync::Interval(every) if last_durable.elapsed() >= every => Durability::Immediate,
            Sync::Interval(_) => Durability::None,
        };
        let sweep_at = (last_sweep.elapsed() >= EXPIRY_SWEEP).then(|| {
            last_sweep = Instant::now();
            crate::store::now_ms()
        });
        let (mutations, dones): (Vec<_>, Vec<_>) =
            jobs.into_iter().map(|j| (j.mutation, j.done)).unzip();
        run(&db, mutations, durability, sweep_at, &failed, &file).await;
        if matches!(durability, Durability::Immediate) {
            dirty = false;
            last_durable = Instant::now();
        } else {
            dirty = true;
        }
        for done in dones {
            let _ = done.send(());
        }
    }
    if dirty {
        run(&db, Vec::new(), Durability::Immediate, None, &failed, &file).await;
    }
}

/// Commits one batch on a blocking thread; panics (after marking the store
/// failed) if it cannot.
async fn run(
    db: &Arc<Database>,
    batch: Vec<Mutation>,
    durability: Durability,
    sweep_at: Option<u64>,
    failed: &AtomicBool,
    file: &Path,
) {
    let db = db.clone();
    let n = batch.len();
    let result =
        tokio::task::spawn_blocking(move || write_batch(&db, &batch, durability, sweep_at)).await;
    let error = match result {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    failed.store(true, Ordering::Release);
    tracing::error!(
        file = %file.display(),
        writes = n,
        error = %error,
        "durable store commit failed; memory is ahead of disk, stopping (a restart reloads every acknowledged write)"
    );
    panic!("durable store commit to {} failed: {error}", file.display());
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
            board: board.name.clone(),
            period: board.period.clone(),
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

    async fn neighbours(
        &self,
        board: &Board,
        shards: &[u32],
        anchor: &Entry,
        n: usize,
    ) -> Result<Vec<Neighbours>, StoreError> {
        self.memory.neighbours(board, shards, anchor, n).await
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
        let seq = {
            let mut seq = self.snapshot_seq.lock().unwrap_or_else(|p| p.into_inner());
            *seq += 1;
            self.memory.restore_snapshot(key.clone(), bytes.clone());
            *seq
        };
        Self::commit(permit, Mutation::Snapshot { key, seq, bytes }).await
    }

    async fn get_snapshot(&self, board: &Board, scope: Scope) -> Result<Option<Bytes>, StoreError> {
        self.memory.get_snapshot(board, scope).await
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
    use crate::store::memory::IdempotencyRecord;

    fn applied(version: u64, score: f64, key: Option<&str>) -> Mutation {
        let member = MemberId::new("m:1").unwrap();
        Mutation::Write {
            board: BoardName::new("ord").unwrap(),
            period: Arc::from("all"),
            applied: Applied {
                shard: 1,
                version,
                score,
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
                    expires_at_ms: crate::store::now_ms() + 60_000,
                }),
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
        )
        .unwrap();
        write_batch(&db, &[applied(1, 10.0, None)], im, None).unwrap();
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
