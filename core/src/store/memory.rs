//! The in-process store, the embedded default: one lock per shard, each
//! shard an order-statistic tree beside a member -> score map, so every
//! operation is O(log n) and writes to different shards never contend.
//!
//! It keeps the Redis backend's semantics exactly (same total order, same
//! tie-break, same idempotency and audit behaviour); the conformance suite
//! holds both to that.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    check_shard, now_ms, AuditRecord, Neighbours, ShardCounts, Store, StoreError, Write,
    WriteOutcome,
};
use crate::board::Board;
use crate::keyspace::{self, Scope};
use crate::ostree::OrderStatTree;
use crate::types::{Entry, MemberId, Order};

/// How many audit records each shard keeps (Redis trims its stream to about
/// the same with `MAXLEN ~`).
pub const AUDIT_CAPACITY: usize = 10_000;

/// A score with a total order, for the tree. Scores are finite and never
/// `-0.0` (see [`crate::types::Score`]), so `total_cmp` equals numeric order.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Key(f64);

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// One shard: Redis's ascending (score, member) order in `sorted`.
#[derive(Default)]
struct Shard {
    scores: HashMap<MemberId, f64>,
    sorted: OrderStatTree<(Key, MemberId)>,
    version: u64,
    /// (member, key) -> the first write's record; see [`Seen`].
    idempotency: HashMap<(MemberId, String), Seen>,
    /// Expiry queue for `idempotency`; the TTL is per board so it is FIFO.
    idempotency_expiry: VecDeque<(Instant, (MemberId, String))>,
    audit: VecDeque<AuditRecord>,
}

impl Shard {
    fn expire_idempotency(&mut self, now: Instant) {
        while let Some((at, _)) = self.idempotency_expiry.front() {
            if *at > now {
                break;
            }
            if let Some((_, key)) = self.idempotency_expiry.pop_front() {
                self.idempotency.remove(&key);
            }
        }
    }

    fn push_audit(&mut self, record: AuditRecord) {
        if self.audit.len() == AUDIT_CAPACITY {
            self.audit.pop_front();
        }
        self.audit.push_back(record);
    }

    fn set_score(&mut self, member: &MemberId, score: f64) {
        if let Some(old) = self.scores.insert(member.clone(), score) {
            self.sorted.remove(&(Key(old), member.clone()));
        }
        self.sorted.insert((Key(score), member.clone()));
    }

    /// Entries best first starting at best-first position `from`.
    fn best_first(&self, order: Order, from: usize, n: usize) -> Vec<Entry> {
        let to_entry = |(k, m): &(Key, MemberId)| Entry {
            member: m.clone(),
            score: k.0,
        };
        match order {
            Order::Asc => self.sorted.iter_from(from).take(n).map(to_entry).collect(),
            Order::Desc => {
                let len = self.sorted.len();
                if from >= len {
                    return Vec::new();
                }
                self.sorted
                    .iter_rev_from(len - 1 - from)
                    .take(n)
                    .map(to_entry)
                    .collect()
            }
        }
    }

    fn count_better(&self, order: Order, score: f64) -> u64 {
        let n = match order {
            Order::Desc => self.sorted.len() - self.sorted.partition_point(|(k, _)| k.0 <= score),
            Order::Asc => self.sorted.partition_point(|(k, _)| k.0 < score),
        };
        n as u64
    }

    fn neighbours(&self, order: Order, anchor: &Entry, n: usize) -> Neighbours {
        let probe = (Key(anchor.score), anchor.member.clone());
        // Ascending positions: [0, below) are below the anchor, [above, len)
        // above it, whether or not the anchor itself is in this shard.
        let below = self.sorted.rank(&probe);
        let above = below + usize::from(self.sorted.contains(&probe));
        let to_entry = |(k, m): &(Key, MemberId)| Entry {
            member: m.clone(),
            score: k.0,
        };
        let down = || -> Vec<Entry> {
            match below.checked_sub(1) {
                Some(last) => self
                    .sorted
                    .iter_rev_from(last)
                    .take(n)
                    .map(to_entry)
                    .collect(),
                None => Vec::new(),
            }
        };
        let up = || -> Vec<Entry> { self.sorted.iter_from(above).take(n).map(to_entry).collect() };
        match order {
            Order::Desc => Neighbours {
                better: up(),
                worse: down(),
                ahead: (self.sorted.len() - above) as u64,
            },
            Order::Asc => Neighbours {
                better: down(),
                worse: up(),
                ahead: below as u64,
            },
        }
    }
}

/// The idempotency record of one (member, key): the first write's resulting
/// score and its [`super::request_digest`], so that a repeat with another op
/// or value is refused instead of answered.
///
/// Cost of one keyed record on x86_64 Linux (the struct sizes are pinned by
/// the `idempotency_record_size` test): a 56-byte map slot
/// (`(MemberId, String)` + `Seen`) plus hashbrown's control byte, at 8/7 to
/// 16/7 slots per record; a 56-byte expiry-queue slot
/// (`(Instant, (MemberId, String))`), at 1 to 2 slots per record; and the
/// key string allocated twice (a 36-byte key is a 48-byte glibc chunk).
/// `MemberId` is an `Arc<str>` shared with the score map, so the member's
/// bytes cost nothing more. That is 217 to 338 bytes per record for a
/// 36-byte key, depending on where the tables are in their doubling;
/// measured as RSS growth, 249 to 260 bytes per record for 100k to 917k
/// records (members `user:NNNNNN`, 11 bytes; UUID-shaped 36-byte keys).
/// The audit record of the write keeps a third copy of the key, bounded by
/// [`AUDIT_CAPACITY`] per shard.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Seen {
    /// The member's score after the first write.
    score: f64,
    /// [`super::request_digest`] of the first write's op and value.
    digest: u64,
}

/// A shard of one board period: (board name, period, shard index).
pub(crate) type ShardId = (crate::types::BoardName, Arc<str>, u32);

/// What an applied write changed, for a durable backend to persist.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Applied {
    /// The member's shard.
    pub shard: u32,
    /// The shard's version after the write.
    pub version: u64,
    /// The member's score after the write.
    pub score: f64,
    /// The audit record the write appended (it names the member).
    pub audit: AuditRecord,
    /// The idempotency record the write created, if it had a key.
    pub idempotency: Option<IdempotencyRecord>,
}

/// A new idempotency record of [`Applied::audit`]'s member.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IdempotencyRecord {
    /// The idempotency key.
    pub key: String,
    /// [`super::request_digest`] of the write.
    pub digest: u64,
    /// The member's score after the write.
    pub score: f64,
    /// When the record expires, ms since the Unix epoch.
    pub expires_at_ms: u64,
}

/// The in-process store. Cheap to share behind an `Arc`.
#[derive(Default)]
pub struct MemoryStore {
    /// Shards are created on first touch; the outer lock is taken for
    /// writing only then.
    shards: RwLock<HashMap<ShardId, Arc<Mutex<Shard>>>>,
    snapshots: RwLock<HashMap<String, Bytes>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn shard(&self, id: ShardId) -> Arc<Mutex<Shard>> {
        if let Some(s) = read(&self.shards).get(&id) {
            return s.clone();
        }
        let mut shards = self.shards.write().unwrap_or_else(|p| p.into_inner());
        shards.entry(id).or_default().clone()
    }

    fn with_shard<T>(&self, board: &Board, shard: u32, f: impl FnOnce(&mut Shard) -> T) -> T {
        self.with_shard_id((board.name.clone(), board.period.clone(), shard), f)
    }

    fn with_shard_id<T>(&self, id: ShardId, f: impl FnOnce(&mut Shard) -> T) -> T {
        let shard = self.shard(id);
        let mut guard = shard.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// [`Store::apply`], also saying what the write did when it applied
    /// (`None` for a repeat of an idempotency key): everything a durable
    /// backend must persist to replay it. The version in [`Applied`] is
    /// assigned under the shard lock, so it is strictly increasing per shard
    /// in the order writes were applied here.
    pub(crate) fn apply_recorded(
        &self,
        board: &Board,
        write: &Write,
    ) -> Result<(WriteOutcome, Option<Applied>), StoreError> {
        self.apply_inner(board, write, true)
    }

    /// The one apply: [`Store::apply`] passes `record: false` and gets no
    /// [`Applied`], so the in-memory store does not pay for the clones.
    fn apply_inner(
        &self,
        board: &Board,
        write: &Write,
        record: bool,
    ) -> Result<(WriteOutcome, Option<Applied>), StoreError> {
        let shard = board
            .shard_of(&write.member)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.with_shard(board, shard, |s| {
            let now = Instant::now();
            s.expire_idempotency(now);
            let idem = write
                .idempotency_key
                .as_ref()
                .map(|k| (write.member.clone(), k.clone()));
            let digest = write.digest();
            if let Some(seen) = idem.as_ref().and_then(|k| s.idempotency.get(k)) {
                if seen.digest != digest {
                    return Err(StoreError::IdempotencyConflict);
                }
                return Ok((
                    WriteOutcome {
                        score: seen.score,
                        applied: false,
                    },
                    None,
                ));
            }
            let old = s.scores.get(&write.member).copied();
            let score = write
                .op
                .apply(board.order, old, write.value.get())
                .ok_or(StoreError::OutOfRange)?;
            s.set_score(&write.member, score);
            s.version += 1;
            let at_ms = now_ms();
            let idempotency = idem.and_then(|key| {
                s.idempotency.insert(key.clone(), Seen { score, digest });
                let made = record.then(|| IdempotencyRecord {
                    key: key.1.clone(),
                    digest,
                    score,
                    expires_at_ms: at_ms.saturating_add(board.idempotency_ttl.as_millis() as u64),
                });
                s.idempotency_expiry
                    .push_back((now + board.idempotency_ttl, key));
                made
            });
            let audit = AuditRecord {
                member: write.member.clone(),
                op: write.op,
                value: write.value.get(),
                score,
                idempotency_key: write.idempotency_key.clone(),
                request_id: write.request_id.clone(),
                at_ms,
            };
            let applied = record.then(|| Applied {
                shard,
                version: s.version,
                score,
                audit: audit.clone(),
                idempotency,
            });
            s.push_audit(audit);
            Ok((
                WriteOutcome {
                    score,
                    applied: true,
                },
                applied,
            ))
        })
    }

    /// Restores a run of one shard's member scores under one lock (loading
    /// a durable store reads them shard by shard).
    pub(crate) fn restore_scores(&self, id: ShardId, scores: Vec<(MemberId, f64)>) {
        self.with_shard_id(id, |s| {
            s.scores.reserve(scores.len());
            for (member, score) in &scores {
                s.set_score(member, *score);
            }
        });
    }

    /// Restores a run of one shard's audit records, oldest first.
    pub(crate) fn restore_audits(&self, id: ShardId, records: Vec<AuditRecord>) {
        self.with_shard_id(id, |s| {
            for record in records {
                s.push_audit(record);
            }
        });
    }

    /// Restores a shard's version (loading a durable store).
    pub(crate) fn restore_version(&self, id: ShardId, version: u64) {
        self.with_shard_id(id, |s| s.version = version);
    }

    /// Restores an idempotency record that expires `remaining` from now.
    /// Records of one shard must be restored in order of expiry, since the
    /// expiry queue is FIFO.
    pub(crate) fn restore_idempotency(
        &self,
        id: ShardId,
        member: &MemberId,
        key: &str,
        digest: u64,
        score: f64,
        remaining: Duration,
    ) {
        self.with_shard_id(id, |s| {
            let k = (member.clone(), key.to_owned());
            s.idempotency.insert(k.clone(), Seen { score, digest });
            s.idempotency_expiry
                .push_back((Instant::now() + remaining, k));
        });
    }

    /// Stores a snapshot under its [`keyspace::snapshot`] key (loading a
    /// durable store).
    pub(crate) fn restore_snapshot(&self, key: String, bytes: Bytes) {
        let mut snapshots = self.snapshots.write().unwrap_or_else(|p| p.into_inner());
        snapshots.insert(key, bytes);
    }

    fn each_shard<T>(
        &self,
        board: &Board,
        shards: &[u32],
        f: impl Fn(&Shard) -> T,
    ) -> Result<Vec<T>, StoreError> {
        shards
            .iter()
            .map(|&s| {
                check_shard(board, s)?;
                Ok(self.with_shard(board, s, |shard| f(shard)))
            })
            .collect()
    }
}

/// Reads through a poisoned lock: every critical section here leaves the
/// data consistent before anything that could panic.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

#[async_trait]
impl Store for MemoryStore {
    async fn apply(&self, board: &Board, write: &Write) -> Result<WriteOutcome, StoreError> {
        self.apply_recorded(board, write)
            .map(|(outcome, _)| outcome)
    }

    async fn top(&self, board: &Board, shard: u32, k: usize) -> Result<Vec<Entry>, StoreError> {
        check_shard(board, shard)?;
        Ok(self.with_shard(board, shard, |s| s.best_first(board.order, 0, k)))
    }

    async fn score(
        &self,
        board: &Board,
        shard: u32,
        member: &MemberId,
    ) -> Result<Option<f64>, StoreError> {
        check_shard(board, shard)?;
        Ok(self.with_shard(board, shard, |s| s.scores.get(member).copied()))
    }

    async fn counts(
        &self,
        board: &Board,
        shards: &[u32],
        score: f64,
    ) -> Result<Vec<ShardCounts>, StoreError> {
        self.each_shard(board, shards, |s| ShardCounts {
            better: s.count_better(board.order, score),
            total: s.scores.len() as u64,
        })
    }

    async fn neighbours(
        &self,
        board: &Board,
        shards: &[u32],
        anchor: &Entry,
        n: usize,
    ) -> Result<Vec<Neighbours>, StoreError> {
        self.each_shard(board, shards, |s| s.neighbours(board.order, anchor, n))
    }

    async fn versions(&self, board: &Board, shards: &[u32]) -> Result<Vec<u64>, StoreError> {
        self.each_shard(board, shards, |s| s.version)
    }

    async fn audit_tail(
        &self,
        board: &Board,
        shard: u32,
        n: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        check_shard(board, shard)?;
        Ok(self.with_shard(board, shard, |s| {
            s.audit.iter().rev().take(n).cloned().collect()
        }))
    }

    async fn put_snapshot(
        &self,
        board: &Board,
        scope: Scope,
        bytes: Bytes,
    ) -> Result<(), StoreError> {
        let mut snapshots = self.snapshots.write().unwrap_or_else(|p| p.into_inner());
        snapshots.insert(keyspace::snapshot(board, scope), bytes);
        Ok(())
    }

    async fn get_snapshot(&self, board: &Board, scope: Scope) -> Result<Option<Bytes>, StoreError> {
        Ok(read(&self.snapshots)
            .get(&keyspace::snapshot(board, scope))
            .cloned())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The struct sizes the cost quoted on [`Seen`] is built from.
    #[test]
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    fn idempotency_record_size() {
        assert_eq!(std::mem::size_of::<((MemberId, String), Seen)>(), 56);
        assert_eq!(std::mem::size_of::<(Instant, (MemberId, String))>(), 56);
    }
}
