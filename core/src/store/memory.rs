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
    check_shard, AuditRecord, Neighbours, PeriodScores, ShardCounts, ShardCountsMany, ShardPage,
    Store, StoreError, Write, WriteOutcome,
};
use crate::blend::{self, Blend, BlendPart};
use crate::board::{Board, Schedule, StorageName};
use crate::events::{Event, EventOutcome, LikeCounts, LikeSpace, LikedTarget, Weights};
use crate::keyspace::{self, Scope};
use crate::ostree::OrderStatTree;
use crate::types::{Entry, MemberId, Meta, Order, Ties};

/// How many audit records each shard keeps (Redis trims its stream to about
/// the same with `MAXLEN ~`).
pub const AUDIT_CAPACITY: usize = 10_000;

/// A score and its tie ([`Entry::tie`], 0 on a `shared` board) with a
/// total order, for the tree. Scores are finite and never `-0.0` (see
/// [`crate::types::Score`]), so `total_cmp` equals numeric order.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Key {
    score: f64,
    tie: u64,
}

impl Key {
    /// A score without a tie (a `shared` board, or a blend).
    fn shared(score: f64) -> Self {
        Self { score, tie: 0 }
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.score
            .total_cmp(&other.score)
            .then(self.tie.cmp(&other.tie))
    }
}

/// One period (or blend) of one shard: member -> score (and tie), and
/// Redis's ascending (score, tie, member) order in `sorted`.
#[derive(Default)]
struct Set {
    scores: HashMap<MemberId, Key>,
    sorted: OrderStatTree<(Key, MemberId)>,
    /// Bumped by every applied write that moves this set.
    version: u64,
    /// When the set expires (closed period past retention), ms since the
    /// Unix epoch; `None` for never.
    expires_at_ms: Option<i64>,
}

/// A shard's state of one blend.
#[derive(Default, Clone)]
struct ShardBlend {
    /// Parts set at run time ([`Store::set_blend`]); `None`: the board's.
    parts: Option<Arc<[BlendPart]>>,
    /// What the blend's set was built from: each part's period id and
    /// weight (the in-memory form of [`blend::built_from`]); empty until
    /// built.
    built_from: Vec<(Arc<str>, u64)>,
}

/// One shard of one board: its periods and blends, and the idempotency
/// records and audit log every write of the shard shares.
#[derive(Default)]
struct Shard {
    sets: HashMap<Arc<str>, Set>,
    /// Bumped by every applied write: orders the shard's audit records.
    seq: u64,
    /// (member, key) -> the first write's record; see [`Seen`].
    idempotency: HashMap<(MemberId, String), Seen>,
    /// Expiry queue for `idempotency`; the TTL is per board so it is FIFO.
    idempotency_expiry: VecDeque<(Instant, (MemberId, String))>,
    audit: VecDeque<AuditRecord>,
    blends: HashMap<Arc<str>, ShardBlend>,
    /// The earliest `expires_at_ms` of `sets`, so the sweep is one
    /// comparison while nothing is due.
    next_expiry: Option<i64>,
    /// Each member's metadata on the board (for every period alike), set
    /// under the same lock as its scores.
    metas: HashMap<MemberId, Meta>,
    /// When the shard's last write of a `first_achiever` board reached its
    /// scores, µs since the Unix epoch: the next one is later.
    last_at_us: u64,
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

    /// Drops the sets past their expiry; answers their ids.
    fn expire_sets(&mut self, now_ms: i64) -> Vec<Arc<str>> {
        if self.next_expiry.is_none_or(|at| at > now_ms) {
            return Vec::new();
        }
        let expired: Vec<Arc<str>> = self
            .sets
            .iter()
            .filter(|(_, set)| set.expires_at_ms.is_some_and(|at| at <= now_ms))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.sets.remove(id);
        }
        self.next_expiry = self.sets.values().filter_map(|s| s.expires_at_ms).min();
        expired
    }

    fn push_audit(&mut self, record: AuditRecord) {
        if self.audit.len() == AUDIT_CAPACITY {
            self.audit.pop_front();
        }
        self.audit.push_back(record);
    }

    /// The set of `id`, created (with its expiry) if missing.
    fn set_mut(&mut self, id: &Arc<str>, expires_at_ms: Option<i64>) -> &mut Set {
        if !self.sets.contains_key(id) {
            if let Some(at) = expires_at_ms {
                self.next_expiry = Some(self.next_expiry.map_or(at, |n| n.min(at)));
            }
            self.sets.insert(
                id.clone(),
                Set {
                    expires_at_ms,
                    ..Set::default()
                },
            );
        }
        self.sets.get_mut(id).expect("inserted above")
    }

    fn key_in(&self, id: &str, member: &MemberId) -> Option<Key> {
        self.sets
            .get(id)
            .and_then(|s| s.scores.get(member).copied())
    }

    fn score_in(&self, id: &str, member: &MemberId) -> Option<f64> {
        self.sets
            .get(id)
            .and_then(|s| s.scores.get(member).map(|k| k.score))
    }

    /// The parts blend `blend` of this shard uses: those set at run time
    /// when every one of them names a kind the board writes (as
    /// `schedule` shows), else the board's own. Weights stored for a kind
    /// the board no longer has are ignored, as the Redis store does.
    fn parts_of(&self, blend: &Blend, schedule: &Schedule) -> Arc<[BlendPart]> {
        self.blends
            .get(&blend.name)
            .and_then(|b| b.parts.clone())
            .filter(|parts| parts.iter().all(|p| schedule.window(p.kind).is_some()))
            .unwrap_or_else(|| blend.parts.clone())
    }

    /// Rebuilds `blend`'s set if what it was built from is not what its
    /// parts resolve to under `schedule`: the blend's set becomes the
    /// weighted sum of its parts' sets, one member at a time. Answers
    /// whether it rebuilt.
    fn ensure_blend(&mut self, board: &Board, blend: &Blend, schedule: &Schedule) -> bool {
        let parts = self.parts_of(blend, schedule);
        let ids = part_ids(board, &parts, schedule);
        let built = self.blends.get(&blend.name).is_some_and(|b| {
            b.built_from.len() == ids.len()
                && b.built_from
                    .iter()
                    .zip(&ids)
                    .all(|((id, bits), (want, w))| id == want && *bits == w.to_bits())
        });
        if built {
            return false;
        }
        let mut members: Vec<MemberId> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (id, _) in &ids {
            if let Some(set) = self.sets.get(id) {
                for m in set.scores.keys() {
                    if seen.insert(m.clone()) {
                        members.push(m.clone());
                    }
                }
            }
        }
        let mut fresh = Set::default();
        for m in members {
            let sum = blend::weighted_sum(ids.iter().map(|(id, w)| (*w, self.score_in(id, &m))));
            if let Some(score) = sum {
                fresh.scores.insert(m.clone(), Key::shared(score));
                fresh.sorted.insert((Key::shared(score), m));
            }
        }
        let version = self.sets.get(&blend.name).map_or(0, |s| s.version);
        fresh.version = version + 1;
        self.sets.insert(blend.name.clone(), fresh);
        let entry = self.blends.entry(blend.name.clone()).or_default();
        entry.built_from = ids.into_iter().map(|(id, w)| (id, w.to_bits())).collect();
        true
    }

    /// Recomputes `member`'s score in `blend` from its parts (after a
    /// write moved them); answers the new score.
    fn update_blend(
        &mut self,
        board: &Board,
        blend: &Blend,
        member: &MemberId,
        schedule: &Schedule,
    ) -> Option<f64> {
        let parts = self.parts_of(blend, schedule);
        let ids = part_ids(board, &parts, schedule);
        let sum = blend::weighted_sum(ids.iter().map(|(id, w)| (*w, self.score_in(id, member))));
        let set = self.set_mut(&blend.name, None);
        match sum {
            Some(score) => set.set_score(member, Key::shared(score)),
            None => set.remove(member),
        }
        set.version += 1;
        sum
    }
}

/// Each part's period id under `schedule` (worked out from the calendar for
/// a part of a kind the board does not write, which validation refuses)
/// and its weight.
/// The member's tie in a period after a write took its score from `old`
/// to `new` at `at_us`: a `first_achiever` board keeps the tie of a score
/// that did not change (who reached it first still did) and stamps a new
/// one; a `shared` board has none.
fn tie_after(board: &Board, old: Option<Key>, new: f64, at_us: u64) -> u64 {
    match (board.ties, old) {
        (Ties::Shared, _) => 0,
        (Ties::FirstAchiever, Some(k)) if k.score == new => k.tie,
        (Ties::FirstAchiever, _) => board.order.tie_at(at_us),
    }
}

fn part_ids(board: &Board, parts: &[BlendPart], schedule: &Schedule) -> Vec<(Arc<str>, f64)> {
    parts
        .iter()
        .map(|p| {
            let id = schedule
                .part_id(p)
                .cloned()
                .unwrap_or_else(|| p.resolve(&board.timezone, schedule.valid_from_ms.max(0)).id);
            (id, p.weight)
        })
        .collect()
}

impl Set {
    fn set_score(&mut self, member: &MemberId, key: Key) {
        if let Some(old) = self.scores.insert(member.clone(), key) {
            self.sorted.remove(&(old, member.clone()));
        }
        self.sorted.insert((key, member.clone()));
    }

    fn remove(&mut self, member: &MemberId) {
        if let Some(old) = self.scores.remove(member) {
            self.sorted.remove(&(old, member.clone()));
        }
    }

    /// The member's entry here (score and tie, no meta).
    fn entry_of(&self, member: &MemberId) -> Option<Entry> {
        self.scores
            .get(member)
            .map(|k| Entry::stored(member.clone(), k.score).with_tie(k.tie))
    }

    /// Entries best first starting at best-first position `from`.
    fn best_first(&self, order: Order, from: usize, n: usize) -> Vec<Entry> {
        match order {
            Order::Asc => self.up_from(from, n),
            Order::Desc => self.down_from(self.sorted.len().saturating_sub(from), n),
        }
    }

    fn count_better(&self, order: Order, score: f64) -> u64 {
        let n = match order {
            Order::Desc => {
                self.sorted.len() - self.sorted.partition_point(|(k, _)| k.score <= score)
            }
            Order::Asc => self.sorted.partition_point(|(k, _)| k.score < score),
        };
        n as u64
    }

    /// Members strictly worse than `score`: the other side of
    /// [`Set::count_better`].
    fn count_worse(&self, order: Order, score: f64) -> u64 {
        let n = match order {
            Order::Desc => self.sorted.partition_point(|(k, _)| k.score < score),
            Order::Asc => {
                self.sorted.len() - self.sorted.partition_point(|(k, _)| k.score <= score)
            }
        };
        n as u64
    }

    /// The anchor's place in ascending positions: `[0, below)` are below
    /// it, `[above, len)` above it, whether or not the anchor itself is in
    /// this shard.
    fn place(&self, anchor: &Entry) -> (usize, usize) {
        let key = Key {
            score: anchor.score,
            tie: anchor.tie,
        };
        let probe = (key, anchor.member.clone());
        let below = self.sorted.rank(&probe);
        (below, below + usize::from(self.sorted.contains(&probe)))
    }

    /// Up to `n` entries before ascending position `end`, nearest first.
    fn down_from(&self, end: usize, n: usize) -> Vec<Entry> {
        match end.checked_sub(1) {
            Some(last) => self
                .sorted
                .iter_rev_from(last)
                .take(n)
                .map(to_entry)
                .collect(),
            None => Vec::new(),
        }
    }

    /// Up to `n` entries from ascending position `start`, nearest first.
    fn up_from(&self, start: usize, n: usize) -> Vec<Entry> {
        self.sorted.iter_from(start).take(n).map(to_entry).collect()
    }

    fn neighbours(&self, order: Order, anchor: &Entry, n: usize) -> Neighbours {
        let (below, above) = self.place(anchor);
        match order {
            Order::Desc => Neighbours {
                better: self.up_from(above, n),
                worse: self.down_from(below, n),
                ahead: (self.sorted.len() - above) as u64,
                total: self.sorted.len() as u64,
            },
            Order::Asc => Neighbours {
                better: self.down_from(below, n),
                worse: self.up_from(above, n),
                ahead: below as u64,
                total: self.sorted.len() as u64,
            },
        }
    }

    /// The `n` entries after `after` (the best `n` without it) and how many
    /// are not after it.
    fn page_after(&self, order: Order, after: Option<&Entry>, n: usize) -> ShardPage {
        let Some(anchor) = after else {
            return ShardPage {
                entries: self.best_first(order, 0, n),
                ahead: 0,
            };
        };
        let (below, above) = self.place(anchor);
        match order {
            Order::Desc => ShardPage {
                entries: self.down_from(below, n),
                ahead: (self.sorted.len() - below) as u64,
            },
            Order::Asc => ShardPage {
                entries: self.up_from(above, n),
                ahead: above as u64,
            },
        }
    }
}

fn to_entry((k, m): &(Key, MemberId)) -> Entry {
    Entry::stored(m.clone(), k.score).with_tie(k.tie)
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
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    /// The member's score in the first period after the first write.
    score: f64,
    /// [`super::request_digest`] of the first write's op and value.
    digest: u64,
    /// Its scores in every period, when the board has more than one.
    scores: Option<PeriodScores>,
}

/// A shard of one board: (the board's storage name, shard index). The
/// storage name, not the board name, so that boards of one name in two
/// tenants are separate shards ([`Board::storage_name`]).
pub(crate) type ShardId = (StorageName, u32);

/// One set a write moved: its id (period id or blend name), the member's
/// score there (`None`: removed) and the set's version after the write.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SetChange {
    /// The period id or blend name.
    pub id: Arc<str>,
    /// The member's score in it after the write.
    pub score: Option<f64>,
    /// Its [`Entry::tie`] there (0 on a `shared` board, a blend, or a
    /// removal).
    pub tie: u64,
    /// The set's version after the write.
    pub version: u64,
    /// When the set expires (a period that will close), if ever.
    pub expires_at_ms: Option<i64>,
}

/// What an applied write changed, for a durable backend to persist.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Applied {
    /// The member's shard.
    pub shard: u32,
    /// The shard's sequence number after the write: strictly increasing per
    /// shard in the order writes were applied here.
    pub seq: u64,
    /// The member's score in the first period after the write.
    pub score: f64,
    /// Every period and blend set the write moved.
    pub sets: Vec<SetChange>,
    /// Sets dropped before the write because their retention ran out.
    pub expired: Vec<Arc<str>>,
    /// The audit record the write appended (it names the member).
    pub audit: AuditRecord,
    /// The idempotency record the write created, if it had a key.
    pub idempotency: Option<IdempotencyRecord>,
    /// What happened to the member's metadata, if anything.
    pub meta: Option<MetaChange>,
}

/// A change to a member's metadata, for a durable backend to persist.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MetaChange {
    /// A write set it.
    Set(Meta),
    /// A removal dropped it.
    Remove,
}

/// A new idempotency record of [`Applied::audit`]'s member.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IdempotencyRecord {
    /// The idempotency key.
    pub key: String,
    /// [`super::request_digest`] of the write.
    pub digest: u64,
    /// The member's score in the first period after the write.
    pub score: f64,
    /// Its scores in every period, when the board has more than one.
    pub scores: Option<PeriodScores>,
    /// When the record expires, ms since the Unix epoch.
    pub expires_at_ms: u64,
}

/// The in-process store. Cheap to share behind an `Arc`.
#[derive(Default)]
pub struct MemoryStore {
    /// Shards are created on first touch; the outer lock is taken for
    /// writing only then.
    shards: RwLock<HashMap<ShardId, Arc<Mutex<Shard>>>>,
    /// Snapshots by [`keyspace::snapshot`] key, with their expiry.
    snapshots: RwLock<HashMap<String, (Bytes, Option<i64>)>>,
    /// Boards created at run time: name -> definition.
    catalog: RwLock<std::collections::BTreeMap<String, String>>,
    /// Like states, counts, dedup records, lists and totals of every
    /// tenant (see [`super::likes`]).
    pub(crate) likes: Mutex<super::likes::Likes>,
    /// Weights set at run time: board storage name -> weights.
    weights: RwLock<std::collections::BTreeMap<String, Weights>>,
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
        self.with_shard_id((board.storage().clone(), shard), f)
    }

    fn with_shard_id<T>(&self, id: ShardId, f: impl FnOnce(&mut Shard) -> T) -> T {
        let shard = self.shard(id);
        let mut guard = shard.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Runs `f` on the set `board.period` of `shard`, or on an empty set
    /// when it does not exist (never written, or expired).
    /// `f` of each member's shard and the member, in the order given.
    fn each_member<T>(
        &self,
        board: &Board,
        members: &[MemberId],
        f: impl Fn(&Shard, &MemberId) -> T,
    ) -> Result<Vec<T>, StoreError> {
        members
            .iter()
            .map(|m| {
                let shard = board
                    .shard_of(m)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(self.with_shard(board, shard, |s| f(s, m)))
            })
            .collect()
    }

    fn with_set<T>(&self, board: &Board, shard: u32, f: impl FnOnce(&Set) -> T) -> T {
        self.with_shard(board, shard, |s| match s.sets.get(&board.period) {
            Some(set) => f(set),
            None => f(&Set::default()),
        })
    }

    /// [`Store::apply`], also saying what the write did when it applied
    /// (`None` for a repeat of an idempotency key): everything a durable
    /// backend must persist to replay it. The sequence number in
    /// [`Applied`] is assigned under the shard lock, so it is strictly
    /// increasing per shard in the order writes were applied here.
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
        let now_ms = super::now_ms_i64();
        let schedule = board.schedule(now_ms);
        let retention = i64::try_from(board.closed_retention.as_millis()).unwrap_or(i64::MAX);
        self.with_shard(board, shard, |s| {
            // Read under the lock, and never behind the shard's last one:
            // writes of a shard reach their scores in the order they are
            // applied, whatever the clock does.
            let at_us = super::now_us().max(s.last_at_us + 1);
            let now = Instant::now();
            s.expire_idempotency(now);
            let expired = s.expire_sets(now_ms);
            let idem = write
                .idempotency_key
                .as_ref()
                .map(|k| (write.member.clone(), k.clone()));
            let digest = write.digest();
            if let Some(seen) = idem.as_ref().and_then(|k| s.idempotency.get(k)) {
                if seen.digest != digest {
                    return Err(StoreError::IdempotencyConflict);
                }
                let scores = match &seen.scores {
                    Some(all) => all.to_vec(),
                    None => schedule
                        .kinds
                        .first()
                        .map(|w| vec![(w.current.id.clone(), seen.score)])
                        .unwrap_or_default(),
                };
                return Ok((
                    WriteOutcome {
                        score: seen.score,
                        applied: false,
                        scores,
                    },
                    None,
                ));
            }
            // Every period's new score first: out of range in one of them
            // applies none.
            let periods = schedule.kinds.iter().map(|w| &w.current);
            let mut scores: Vec<(Arc<str>, f64)> = Vec::with_capacity(schedule.kinds.len());
            let mut ties: Vec<u64> = Vec::with_capacity(schedule.kinds.len());
            for p in periods.clone() {
                let old = s.key_in(&p.id, &write.member);
                let new = write
                    .op
                    .apply(board.order, old.map(|k| k.score), write.value.get())
                    .ok_or(StoreError::OutOfRange)?;
                scores.push((p.id.clone(), new));
                ties.push(tie_after(board, old, new, at_us));
            }
            if let Some(meta) = &write.meta {
                s.metas.insert(write.member.clone(), meta.clone());
            }
            let mut sets = Vec::new();
            for ((p, (id, score)), &tie) in periods.zip(&scores).zip(&ties) {
                let expires = p.ends_ms.map(|end| end.saturating_add(retention));
                let set = s.set_mut(id, expires);
                set.set_score(&write.member, Key { score: *score, tie });
                set.version += 1;
                if record {
                    sets.push(SetChange {
                        id: id.clone(),
                        score: Some(*score),
                        tie,
                        version: set.version,
                        expires_at_ms: set.expires_at_ms,
                    });
                }
            }
            for blend in board.blends.iter() {
                s.ensure_blend(board, blend, &schedule);
                let moves = s.parts_of(blend, &schedule).iter().any(|p| !p.previous);
                if moves {
                    let score = s.update_blend(board, blend, &write.member, &schedule);
                    if record {
                        let version = s.sets.get(&blend.name).map_or(0, |b| b.version);
                        sets.push(SetChange {
                            id: blend.name.clone(),
                            score,
                            tie: 0,
                            version,
                            expires_at_ms: None,
                        });
                    }
                }
            }
            if board.ties == Ties::FirstAchiever {
                s.last_at_us = at_us;
            }
            let score = scores.first().map_or(0.0, |(_, v)| *v);
            let all_scores: Option<PeriodScores> =
                (scores.len() > 1).then(|| Arc::from(scores.as_slice()));
            s.seq += 1;
            let at_ms = now_ms.max(0) as u64;
            let idempotency = idem.and_then(|key| {
                s.idempotency.insert(
                    key.clone(),
                    Seen {
                        score,
                        digest,
                        scores: all_scores.clone(),
                    },
                );
                let made = record.then(|| IdempotencyRecord {
                    key: key.1.clone(),
                    digest,
                    score,
                    scores: all_scores.clone(),
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
                seq: s.seq,
                score,
                sets,
                expired,
                audit: audit.clone(),
                idempotency,
                meta: write.meta.clone().map(MetaChange::Set),
            });
            s.push_audit(audit);
            Ok((
                WriteOutcome {
                    score,
                    applied: true,
                    scores,
                },
                applied,
            ))
        })
    }

    /// [`Store::remove`], also saying what it changed for a durable backend
    /// (`None` when the member had no score).
    pub(crate) fn remove_recorded(
        &self,
        board: &Board,
        member: &MemberId,
        request_id: &str,
    ) -> Result<Option<Applied>, StoreError> {
        let shard = board
            .shard_of(member)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let now_ms = super::now_ms_i64();
        Ok(self.with_shard(board, shard, |s| {
            let expired = s.expire_sets(now_ms);
            let mut sets = Vec::new();
            for (id, set) in s.sets.iter_mut() {
                if set.scores.contains_key(member) {
                    set.remove(member);
                    set.version += 1;
                    sets.push(SetChange {
                        id: id.clone(),
                        score: None,
                        tie: 0,
                        version: set.version,
                        expires_at_ms: set.expires_at_ms,
                    });
                }
            }
            let meta = s.metas.remove(member).map(|_| MetaChange::Remove);
            if sets.is_empty() && meta.is_none() {
                return None;
            }
            s.seq += 1;
            let audit = AuditRecord {
                member: member.clone(),
                op: crate::types::Op::Remove,
                value: 0.0,
                score: 0.0,
                idempotency_key: None,
                request_id: request_id.to_owned(),
                at_ms: now_ms.max(0) as u64,
            };
            s.push_audit(audit.clone());
            Some(Applied {
                shard,
                seq: s.seq,
                score: 0.0,
                sets,
                expired,
                audit,
                idempotency: None,
                meta,
            })
        }))
    }

    /// [`Store::maintain`] for one shard: expires sets past retention and
    /// rebuilds stale blends; answers the expired ids and whether any blend
    /// was rebuilt.
    pub(crate) fn maintain_shard(&self, board: &Board, shard: u32) -> (Vec<Arc<str>>, u64) {
        let now_ms = super::now_ms_i64();
        let schedule = board.schedule(now_ms);
        self.with_shard(board, shard, |s| {
            let expired = s.expire_sets(now_ms);
            let rebuilt = board
                .blends
                .iter()
                .filter(|blend| s.ensure_blend(board, blend, &schedule))
                .count() as u64;
            (expired, rebuilt)
        })
    }

    /// Sets the parts of `blend` on one shard and rebuilds its set.
    pub(crate) fn set_blend_shard(&self, board: &Board, shard: u32, blend: &Blend) {
        let schedule = board.schedule(super::now_ms_i64());
        self.with_shard(board, shard, |s| {
            let entry = s.blends.entry(blend.name.clone()).or_default();
            entry.parts = Some(blend.parts.clone());
            entry.built_from.clear();
            s.ensure_blend(board, blend, &schedule);
        });
    }

    /// Restores a run of one set's member scores under one lock (loading a
    /// durable store reads them set by set).
    pub(crate) fn restore_scores(
        &self,
        id: ShardId,
        set: Arc<str>,
        expires_at_ms: Option<i64>,
        scores: Vec<(MemberId, f64, u64)>,
    ) {
        self.with_shard_id(id, |s| {
            let target = s.set_mut(&set, expires_at_ms);
            target.scores.reserve(scores.len());
            for (member, score, tie) in &scores {
                let key = Key {
                    score: *score,
                    tie: *tie,
                };
                target.set_score(member, key);
            }
        });
    }

    /// Restores a run of one shard's member metadata (loading a durable
    /// store).
    pub(crate) fn restore_metas(&self, id: ShardId, metas: Vec<(MemberId, Meta)>) {
        self.with_shard_id(id, |s| s.metas.extend(metas));
    }

    /// Each entry's metadata from its shard's map (entries of one shard).
    fn fill_metas(s: &Shard, entries: &mut [Entry]) {
        if s.metas.is_empty() {
            return;
        }
        for e in entries {
            e.meta = s.metas.get(&e.member).cloned();
        }
    }

    /// Restores a run of one shard's audit records, oldest first.
    pub(crate) fn restore_audits(&self, id: ShardId, records: Vec<AuditRecord>) {
        self.with_shard_id(id, |s| {
            for record in records {
                s.push_audit(record);
            }
        });
    }

    /// Restores a set's version and the shard's sequence number (loading a
    /// durable store).
    pub(crate) fn restore_version(
        &self,
        id: ShardId,
        set: Arc<str>,
        expires_at_ms: Option<i64>,
        version: u64,
    ) {
        self.with_shard_id(id, |s| {
            s.set_mut(&set, expires_at_ms).version = version;
        });
    }

    /// Restores a shard's sequence number.
    pub(crate) fn restore_seq(&self, id: ShardId, seq: u64) {
        self.with_shard_id(id, |s| s.seq = s.seq.max(seq));
    }

    /// Restores the run-time parts of a shard's blend (its set is rebuilt
    /// by the next write or [`Store::maintain`]).
    pub(crate) fn restore_blend_parts(&self, id: ShardId, name: Arc<str>, parts: Arc<[BlendPart]>) {
        self.with_shard_id(id, |s| {
            let entry = s.blends.entry(name).or_default();
            entry.parts = Some(parts);
            entry.built_from.clear();
        });
    }

    /// Restores an idempotency record that expires `remaining` from now.
    /// Records of one shard must be restored in order of expiry, since the
    /// expiry queue is FIFO.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn restore_idempotency(
        &self,
        id: ShardId,
        member: &MemberId,
        key: &str,
        digest: u64,
        score: f64,
        scores: Option<PeriodScores>,
        remaining: Duration,
    ) {
        self.with_shard_id(id, |s| {
            let k = (member.clone(), key.to_owned());
            s.idempotency.insert(
                k.clone(),
                Seen {
                    score,
                    digest,
                    scores,
                },
            );
            s.idempotency_expiry
                .push_back((Instant::now() + remaining, k));
        });
    }

    /// Stores a snapshot under its [`keyspace::snapshot`] key (loading a
    /// durable store, or putting one), expiring at `expires_at_ms`.
    pub(crate) fn restore_snapshot(&self, key: String, bytes: Bytes, expires_at_ms: Option<i64>) {
        let mut snapshots = self.snapshots.write().unwrap_or_else(|p| p.into_inner());
        snapshots.insert(key, (bytes, expires_at_ms));
    }

    /// Drops the snapshots past their expiry; answers their keys.
    pub(crate) fn expire_snapshots(&self, now_ms: i64) -> Vec<String> {
        let due = |at: &Option<i64>| at.is_some_and(|at| at <= now_ms);
        if !read(&self.snapshots).values().any(|(_, at)| due(at)) {
            return Vec::new();
        }
        let mut snapshots = self.snapshots.write().unwrap_or_else(|p| p.into_inner());
        let keys: Vec<String> = snapshots
            .iter()
            .filter(|(_, (_, at))| due(at))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &keys {
            snapshots.remove(k);
        }
        keys
    }

    fn each_set<T>(
        &self,
        board: &Board,
        shards: &[u32],
        f: impl Fn(&Set) -> T,
    ) -> Result<Vec<T>, StoreError> {
        shards
            .iter()
            .map(|&s| {
                check_shard(board, s)?;
                Ok(self.with_set(board, s, |set| f(set)))
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
        self.apply_inner(board, write, false)
            .map(|(outcome, _)| outcome)
    }

    async fn top(&self, board: &Board, shard: u32, k: usize) -> Result<Vec<Entry>, StoreError> {
        check_shard(board, shard)?;
        Ok(self.with_shard(board, shard, |s| {
            let mut entries = match s.sets.get(&board.period) {
                Some(set) => set.best_first(board.order, 0, k),
                None => Vec::new(),
            };
            Self::fill_metas(s, &mut entries);
            entries
        }))
    }

    async fn metas(
        &self,
        board: &Board,
        members: &[MemberId],
    ) -> Result<Vec<Option<Meta>>, StoreError> {
        self.each_member(board, members, |s, m| s.metas.get(m).cloned())
    }

    async fn score(
        &self,
        board: &Board,
        shard: u32,
        member: &MemberId,
    ) -> Result<Option<f64>, StoreError> {
        check_shard(board, shard)?;
        Ok(self.with_set(board, shard, |s| s.scores.get(member).map(|k| k.score)))
    }

    async fn counts(
        &self,
        board: &Board,
        shards: &[u32],
        score: f64,
    ) -> Result<Vec<ShardCounts>, StoreError> {
        self.each_set(board, shards, |s| ShardCounts {
            better: s.count_better(board.order, score),
            total: s.scores.len() as u64,
        })
    }

    async fn scores_many(
        &self,
        board: &Board,
        members: &[MemberId],
    ) -> Result<Vec<Option<f64>>, StoreError> {
        self.each_member(board, members, |s, m| {
            Some(s.sets.get(&board.period)?.scores.get(m)?.score)
        })
    }

    async fn counts_many(
        &self,
        board: &Board,
        shards: &[u32],
        scores: &[f64],
    ) -> Result<Vec<ShardCountsMany>, StoreError> {
        self.each_set(board, shards, |s| ShardCountsMany {
            better: scores
                .iter()
                .map(|&x| s.count_better(board.order, x))
                .collect(),
            worse: scores
                .iter()
                .map(|&x| s.count_worse(board.order, x))
                .collect(),
            total: s.scores.len() as u64,
        })
    }

    async fn apply_many(
        &self,
        board: &Board,
        writes: &[Write],
    ) -> Vec<Result<WriteOutcome, StoreError>> {
        writes
            .iter()
            .map(|w| self.apply_inner(board, w, false).map(|(o, _)| o))
            .collect()
    }

    async fn neighbours(
        &self,
        board: &Board,
        shards: &[u32],
        anchor: &Entry,
        n: usize,
    ) -> Result<Vec<Neighbours>, StoreError> {
        self.each_set(board, shards, |s| s.neighbours(board.order, anchor, n))
    }

    async fn places_many(
        &self,
        board: &Board,
        shards: &[u32],
        anchors: &[Entry],
    ) -> Result<Vec<ShardCountsMany>, StoreError> {
        self.each_set(board, shards, |s| {
            let len = s.sorted.len() as u64;
            let (mut better, mut worse) = (Vec::new(), Vec::new());
            for anchor in anchors {
                let (below, above) = s.place(anchor);
                let (before, after) = (below as u64, len - above as u64);
                let (b, w) = match board.order {
                    Order::Desc => (after, before),
                    Order::Asc => (before, after),
                };
                better.push(b);
                worse.push(w);
            }
            ShardCountsMany {
                better,
                worse,
                total: len,
            }
        })
    }

    async fn entries_of(
        &self,
        board: &Board,
        members: &[MemberId],
    ) -> Result<Vec<Option<Entry>>, StoreError> {
        self.each_member(board, members, |s, m| {
            let mut entry = s.sets.get(&board.period)?.entry_of(m)?;
            entry.meta = s.metas.get(m).cloned();
            Some(entry)
        })
    }

    async fn page_after(
        &self,
        board: &Board,
        shards: &[u32],
        after: Option<&Entry>,
        n: usize,
    ) -> Result<Vec<ShardPage>, StoreError> {
        self.each_set(board, shards, |s| s.page_after(board.order, after, n))
    }

    async fn versions(&self, board: &Board, shards: &[u32]) -> Result<Vec<u64>, StoreError> {
        self.each_set(board, shards, |s| s.version)
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
        let expires = board.expires_at_ms(&board.period);
        self.restore_snapshot(keyspace::snapshot(board, scope), bytes, expires);
        Ok(())
    }

    async fn get_snapshot(&self, board: &Board, scope: Scope) -> Result<Option<Bytes>, StoreError> {
        let now = super::now_ms_i64();
        Ok(read(&self.snapshots)
            .get(&keyspace::snapshot(board, scope))
            .filter(|(_, at)| at.is_none_or(|at| at > now))
            .map(|(bytes, _)| bytes.clone()))
    }

    async fn maintain(&self, board: &Board, shards: &[u32]) -> Result<u64, StoreError> {
        let mut rebuilt = 0;
        for &shard in shards {
            check_shard(board, shard)?;
            rebuilt += self.maintain_shard(board, shard).1;
        }
        self.expire_snapshots(super::now_ms_i64());
        Ok(rebuilt)
    }

    async fn set_blend(&self, board: &Board, blend: &Blend) -> Result<(), StoreError> {
        for shard in 0..board.shards {
            self.set_blend_shard(board, shard, blend);
        }
        Ok(())
    }

    async fn remove(
        &self,
        board: &Board,
        member: &MemberId,
        request_id: &str,
    ) -> Result<bool, StoreError> {
        Ok(self.remove_recorded(board, member, request_id)?.is_some())
    }

    async fn catalog(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(read(&self.catalog)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn catalog_add(&self, name: &str, definition: &str) -> Result<bool, StoreError> {
        Ok(self.catalog_put(name, Some(definition)))
    }

    async fn catalog_remove(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.catalog_put(name, None))
    }

    async fn apply_events(
        &self,
        space: &LikeSpace,
        boards: &[Board],
        events: &[Event],
    ) -> Result<Vec<EventOutcome>, StoreError> {
        events
            .iter()
            .map(|e| self.apply_event(space, boards, e).map(|(o, _)| o))
            .collect()
    }

    async fn like_counts(
        &self,
        space: &LikeSpace,
        targets: &[MemberId],
        actor: Option<&MemberId>,
    ) -> Result<Vec<LikeCounts>, StoreError> {
        Ok(self.with_likes(|l| {
            targets
                .iter()
                .map(|t| l.counts(&space.tenant, t, actor))
                .collect()
        }))
    }

    async fn actor_likes(
        &self,
        space: &LikeSpace,
        actor: &MemberId,
        limit: usize,
    ) -> Result<Vec<LikedTarget>, StoreError> {
        Ok(self.with_likes(|l| l.actor_likes(&space.tenant, actor, limit)))
    }

    async fn owner_likes(&self, space: &LikeSpace, owner: &MemberId) -> Result<u64, StoreError> {
        Ok(self.with_likes(|l| l.owner_likes(&space.tenant, owner)))
    }

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
        Ok(read(&self.weights)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn set_weights(&self, board: &Board, weights: &Weights) -> Result<(), StoreError> {
        self.put_weights(board.storage_name(), weights.clone());
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl MemoryStore {
    /// Keeps run-time weights for a board storage name.
    pub(crate) fn put_weights(&self, storage: &str, weights: Weights) {
        self.weights
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(storage.to_string(), weights);
    }

    /// The largest magnitude of `member`'s score in any set of its shard:
    /// what an event's move is range-checked against before it applies.
    pub(crate) fn max_abs_score(&self, board: &Board, shard: u32, member: &MemberId) -> f64 {
        self.with_shard(board, shard, |s| {
            s.sets
                .values()
                .filter_map(|set| set.scores.get(member))
                .fold(0.0_f64, |m, v| m.max(v.score.abs()))
        })
    }

    /// Adds `definition` under `name` if absent (`Some`), or removes it
    /// (`None`); answers whether anything changed.
    pub(crate) fn catalog_put(&self, name: &str, definition: Option<&str>) -> bool {
        let mut catalog = self.catalog.write().unwrap_or_else(|p| p.into_inner());
        match definition {
            Some(d) if !catalog.contains_key(name) => {
                catalog.insert(name.to_owned(), d.to_owned());
                true
            }
            Some(_) => false,
            None => catalog.remove(name).is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The struct sizes the cost quoted on [`Seen`] is built from.
    #[test]
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    fn idempotency_record_size() {
        assert_eq!(std::mem::size_of::<((MemberId, String), Seen)>(), 72);
        assert_eq!(std::mem::size_of::<(Instant, (MemberId, String))>(), 56);
    }
}
