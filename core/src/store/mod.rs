//! The `Store` trait: everything the agents and the gateway ask of the place
//! where scores live, and its backends.
//!
//! Reads that fan out over many shards (counts, neighbours, pages,
//! versions) take a slice of shards and answer one value per shard, so that
//! a networked backend can send the commands for one node together and
//! query nodes concurrently, instead of paying one round trip per shard.

pub mod durable;
pub mod index;
mod likes;
pub mod memory;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::blend::Blend;
use crate::board::{fnv1a64, Board};
use crate::events::{Event, EventOutcome, LikeCounts, LikeSpace, LikedTarget, Weights};
use crate::keyspace::Scope;
use crate::types::{Entry, MemberId, Meta, Op, Score};

pub use self::redis::{RedisOptions, RedisStore};
pub use durable::{DurableOptions, DurableStore, OpenError, Sync};
pub use index::{IndexMove, IndexPos, IndexRecord, IndexScan, IndexTail};
pub use memory::MemoryStore;

/// One score write, already validated at the edge.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// Whose score changes.
    pub member: MemberId,
    /// How it changes.
    pub op: Op,
    /// The operand: delta for `incr`, new score for `set` and `best`.
    pub value: Score,
    /// Applies the write once per (board, member, key) within the board's
    /// idempotency TTL; a repeat with the same op, value and meta answers
    /// the first outcome, one with a different op, value or meta is
    /// [`StoreError::IdempotencyConflict`] (see [`request_digest_with_meta`]).
    pub idempotency_key: Option<String>,
    /// Recorded in the audit log so a write can be traced end to end.
    pub request_id: String,
    /// The member's new metadata on the board, kept in the same atomic
    /// step as the score (latest wins); `None` keeps what it has.
    pub meta: Option<Meta>,
}

impl Write {
    /// The digest of what this write asks for: [`request_digest_with_meta`]
    /// of its op, value and meta. The member is part of the idempotency
    /// record's key, and the request id is not part of the request (a retry
    /// gets a new one).
    pub fn digest(&self) -> u64 {
        request_digest_with_meta(self.op, self.value.get(), self.meta.as_ref())
    }
}

/// The digest an idempotency record keeps of the write that used its key:
/// FNV-1a 64 ([`fnv1a64`]) over `"{op}|{value:e}"`, the op's wire name and
/// the shortest text that parses back to the same `f64`. Defined once here
/// so that every backend and every gateway release computes the same value
/// for the same write; a repeat of a key with a different digest is
/// refused with [`StoreError::IdempotencyConflict`]. Values are [`Score`]s
/// (finite, never `-0.0`), so equal values have one text.
pub fn request_digest(op: Op, value: f64) -> u64 {
    fnv1a64(format!("{}|{value:e}", op.as_str()).as_bytes())
}

/// [`request_digest`] of a write that may carry meta: without meta it is
/// exactly [`request_digest`] (so records of writes without meta, and of
/// releases before meta, keep matching); with meta it is FNV-1a 64 over
/// `"{op}|{value:e}|{meta}"`, the meta as its canonical text
/// ([`Meta::as_str`]: compact, keys sorted). So a repeat of a key with
/// other meta (or with meta where the first had none, or none where it
/// had some) is an [`StoreError::IdempotencyConflict`], like a repeat
/// with another value, and one whose meta only differs in spacing or key
/// order is the same write.
pub fn request_digest_with_meta(op: Op, value: f64, meta: Option<&Meta>) -> u64 {
    match meta {
        None => request_digest(op, value),
        Some(m) => fnv1a64(format!("{}|{value:e}|{}", op.as_str(), m.as_str()).as_bytes()),
    }
}

/// A member's score in each period a write moved, by period id, in the
/// order of the board's periods.
pub type PeriodScores = Arc<[(Arc<str>, f64)]>;

/// What a write did.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOutcome {
    /// The member's score in the board's first period after the write (for
    /// a repeat: after the first).
    pub score: f64,
    /// False when the idempotency key had already been applied.
    pub applied: bool,
    /// The member's score in every period the write moved, by period id, in
    /// the order of the board's periods (for a repeat: the first write's).
    pub scores: Vec<(Arc<str>, f64)>,
}

/// One applied write, as the audit log keeps it for reconciliation.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// Whose score changed.
    pub member: MemberId,
    /// The op applied.
    pub op: Op,
    /// Its operand.
    pub value: f64,
    /// The score after it.
    pub score: f64,
    /// The idempotency key, if the write had one.
    pub idempotency_key: Option<String>,
    /// The request id given with the write.
    pub request_id: String,
    /// When it was applied, ms since the Unix epoch.
    pub at_ms: u64,
}

/// The entries next to an anchor in one shard, in the board's total order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Neighbours {
    /// Up to n entries strictly better than the anchor, nearest first.
    pub better: Vec<Entry>,
    /// Up to n entries strictly worse than the anchor, nearest first.
    pub worse: Vec<Entry>,
    /// How many entries of the shard come before the anchor in the total
    /// order (score, then the member tie-break). Summed over shards it is
    /// the anchor's 0-based position on the board, which turns the window
    /// into exact competition ranks.
    pub ahead: u64,
    /// Members in the shard.
    pub total: u64,
}

/// One shard's next entries after a page cursor, in the board's total
/// order (see [`Store::page_after`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ShardPage {
    /// Up to n entries strictly after the cursor (the shard's best without
    /// one), best first.
    pub entries: Vec<Entry>,
    /// How many entries of the shard are not after the cursor (the cursor's
    /// own entry included, if the shard holds it; 0 without a cursor).
    /// Summed over shards it is the 0-based board position of the page's
    /// first entry, which turns the page into exact competition ranks.
    pub ahead: u64,
}

/// Per-shard counts for an exact rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShardCounts {
    /// Members whose score is strictly better than the probe score.
    pub better: u64,
    /// Members in the shard.
    pub total: u64,
}

/// Per-shard counts for several probe scores at once (a lookup of a list
/// of members ranks all of them with one fan-out).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShardCountsMany {
    /// For each probe score, in the order given: members strictly better.
    pub better: Vec<u64>,
    /// For each probe score: members strictly worse (for percentiles).
    pub worse: Vec<u64>,
    /// Members in the shard.
    pub total: u64,
}

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached, or refused the call before running it;
    /// nothing was applied. For a read: also a read that got no answer in
    /// time. Callers answer 503 and serve reads from snapshots.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The write was sent and no answer came in time, or the connection
    /// dropped after sending; it may have been applied; retry with the same
    /// idempotency key. Only writes ([`Store::apply`]) fail this way.
    #[error("write outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// The key was used before with a different write; nothing was applied.
    #[error("idempotency key was used before with a different write")]
    IdempotencyConflict,
    /// The write would take the score outside +-2^53; nothing was applied.
    #[error("resulting score would leave +-2^53")]
    OutOfRange,
    /// The store answered something this release cannot read.
    #[error("store data corrupt: {0}")]
    Corrupt(String),
}

/// Where scores and snapshots live. Every backend passes
/// the conformance suite in `standings-test-support`, which pins each semantic below.
#[async_trait]
pub trait Store: Send + std::marker::Sync + 'static {
    /// Applies `write` to the member's shard atomically: idempotency check,
    /// the op in the current period of every kind of the board (current by
    /// the store's own clock, one per shard), the member's score in every
    /// blend, a version bump of each period and blend touched, and one
    /// audit record; or none of them. A key
    /// already used by the member with the same [`request_digest`] answers
    /// the first outcome (`applied: false`); with a different one it is
    /// [`StoreError::IdempotencyConflict`].
    async fn apply(&self, board: &Board, write: &Write) -> Result<WriteOutcome, StoreError>;

    /// The best `k` entries of `shard`, best first, each with its member's
    /// metadata (fetched in the same step: a shard list carries what its
    /// snapshot and every answer built from it serve).
    async fn top(&self, board: &Board, shard: u32, k: usize) -> Result<Vec<Entry>, StoreError>;

    /// The member's score in `board.period`, if it has one (looked up in
    /// `shard`).
    async fn score(
        &self,
        board: &Board,
        shard: u32,
        member: &MemberId,
    ) -> Result<Option<f64>, StoreError>;

    /// Each member's metadata on `board` (looked up in its shard), in the
    /// order asked; `None` for a member without any. Meta is per member and
    /// board, not per period: `board.period` does not matter.
    async fn metas(
        &self,
        board: &Board,
        members: &[MemberId],
    ) -> Result<Vec<Option<Meta>>, StoreError>;

    /// For each shard: how many members score strictly better than `score`,
    /// and how many members it holds.
    async fn counts(
        &self,
        board: &Board,
        shards: &[u32],
        score: f64,
    ) -> Result<Vec<ShardCounts>, StoreError>;

    /// For each member, looked up in its own shard: its score in
    /// `board.period`, if it has one. One call for a whole list, so a
    /// networked backend sends the lookups of one node together. Every
    /// member must be placeable on the board ([`Board::shard_of`]).
    async fn scores_many(
        &self,
        board: &Board,
        members: &[MemberId],
    ) -> Result<Vec<Option<f64>>, StoreError>;

    /// For each shard: for each of `scores`, how many members score
    /// strictly better and how many strictly worse, and how many members
    /// it holds. [`Store::counts`] for many probes in one fan-out.
    async fn counts_many(
        &self,
        board: &Board,
        shards: &[u32],
        scores: &[f64],
    ) -> Result<Vec<ShardCountsMany>, StoreError>;

    /// Applies each write as [`Store::apply`] does, each atomic and
    /// idempotent on its own, in order (writes of one member apply in the
    /// order given); one outcome per write. A write that fails (conflict,
    /// out of range) does not stop the others; a failure of the store
    /// itself answers the same error for every write it touched.
    async fn apply_many(
        &self,
        board: &Board,
        writes: &[Write],
    ) -> Vec<Result<WriteOutcome, StoreError>>;

    /// For each shard: up to `n` entries on each side of `anchor` in the
    /// board's total order (the anchor itself excluded). The entries carry
    /// no metadata: a window keeps 2n+1 of up to 2n per shard, so callers
    /// look up the metas of the kept ones ([`crate::rank::fill_metas`]).
    async fn neighbours(
        &self,
        board: &Board,
        shards: &[u32],
        anchor: &Entry,
        n: usize,
    ) -> Result<Vec<Neighbours>, StoreError>;

    /// For each shard: up to `n` entries strictly after `after` in the
    /// board's total order (from the best without `after`), so that a walk
    /// of the whole board a page at a time skips and repeats nothing; the
    /// cursor entry need not be in any shard any more.
    async fn page_after(
        &self,
        board: &Board,
        shards: &[u32],
        after: Option<&Entry>,
        n: usize,
    ) -> Result<Vec<ShardPage>, StoreError>;

    /// For each shard: its version, which every applied write bumps (0 for a
    /// shard never written).
    async fn versions(&self, board: &Board, shards: &[u32]) -> Result<Vec<u64>, StoreError>;

    /// The newest `n` audit records of `shard`, newest first.
    async fn audit_tail(
        &self,
        board: &Board,
        shard: u32,
        n: usize,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// Stores an encoded snapshot of `scope`, replacing the previous one.
    async fn put_snapshot(
        &self,
        board: &Board,
        scope: Scope,
        bytes: Bytes,
    ) -> Result<(), StoreError>;

    /// The encoded snapshot of `scope`, if one was stored.
    async fn get_snapshot(&self, board: &Board, scope: Scope) -> Result<Option<Bytes>, StoreError>;

    /// Brings `shards` of `board` up to date with the clock: rebuilds each
    /// blend whose parts rolled over or whose weights changed since it was
    /// built (see [`crate::blend`]), and drops closed periods past the
    /// board's retention where the backend does not expire them itself.
    /// Agents call it every tick; writes do the same for the shard they
    /// touch. Answers how many shard blends it rebuilt.
    async fn maintain(&self, board: &Board, shards: &[u32]) -> Result<u64, StoreError>;

    /// Replaces the parts (and weights) of `blend` of `board` on every
    /// shard, rebuilding each shard's blend in the same atomic step, so
    /// every gateway and every later write uses the new weights.
    async fn set_blend(&self, board: &Board, blend: &Blend) -> Result<(), StoreError>;

    /// Removes `member` from every period (current and closed) and blend of
    /// `board`, in one step in its shard, bumping each touched period's
    /// version and appending one audit record (op `remove`, with
    /// `request_id`, which names who asked), and drops its metadata on the
    /// board in the same step. Answers whether the member had a score
    /// (or metadata) anywhere.
    async fn remove(
        &self,
        board: &Board,
        member: &MemberId,
        request_id: &str,
    ) -> Result<bool, StoreError>;

    /// The boards created at run time: (name, definition), by name. The
    /// definition is the admin API's JSON, kept as text; every gateway and
    /// agent reads the catalog each refresh.
    async fn catalog(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Adds a board to the catalog unless one of that name is there;
    /// answers whether it was added.
    async fn catalog_add(&self, name: &str, definition: &str) -> Result<bool, StoreError>;

    /// Removes a board from the catalog; answers whether it was there.
    async fn catalog_remove(&self, name: &str) -> Result<bool, StoreError>;

    /// Applies `events` of one tenant in order, each once per event id
    /// within `space.dedup_ttl` (see [`crate::events`]). For each event, in
    /// one atomic step in the target's shard: the dedup record, the like
    /// state and the target's counts (for a like action), the cooldown
    /// check, and every board of `boards` fed by `target` moved by its
    /// weights in every period and blend. The actor's list, the owner's
    /// total and the boards fed by `actor` or `owner` (also in `boards`)
    /// follow: in the same step where the backend can (memory, durable),
    /// or from the shard's event stream ([`Store::follow_events`], Redis).
    /// `boards` are the tenant's event-fed boards with the weights to use.
    async fn apply_events(
        &self,
        space: &LikeSpace,
        boards: &[Board],
        events: &[Event],
    ) -> Result<Vec<EventOutcome>, StoreError>;

    /// For each target: its counts, and `actor`'s state on it if asked.
    async fn like_counts(
        &self,
        space: &LikeSpace,
        targets: &[crate::types::MemberId],
        actor: Option<&crate::types::MemberId>,
    ) -> Result<Vec<LikeCounts>, StoreError>;

    /// The newest `limit` targets `actor` likes now, newest first.
    async fn actor_likes(
        &self,
        space: &LikeSpace,
        actor: &crate::types::MemberId,
        limit: usize,
    ) -> Result<Vec<LikedTarget>, StoreError>;

    /// How many likes the targets of `owner` hold now.
    async fn owner_likes(
        &self,
        space: &LikeSpace,
        owner: &crate::types::MemberId,
    ) -> Result<u64, StoreError>;

    /// One step of the event-stream consumer: applies up to `max` unread
    /// events of each of `shards` to the actors' lists, owners' totals
    /// and the `actor`- and `owner`-fed boards of `boards`, once per
    /// event id, and acknowledges them; events delivered to a consumer
    /// that died unacknowledged are claimed after a while. Answers how
    /// many it applied. Backends that apply all of it with the event
    /// answer 0.
    async fn follow_events(
        &self,
        space: &LikeSpace,
        boards: &[Board],
        shards: &[u32],
        consumer: &str,
        max: usize,
    ) -> Result<u64, StoreError>;

    /// Events of `shards` the consumer has not applied yet (0 where they
    /// are applied with the event).
    async fn event_lag(&self, space: &LikeSpace, shards: &[u32]) -> Result<u64, StoreError>;

    /// Weights set at run time: (board storage name, weights), by name.
    async fn weights(&self) -> Result<Vec<(String, Weights)>, StoreError>;

    /// Keeps `weights` for `board`, replacing what its config says for
    /// every gateway from its next refresh on.
    async fn set_weights(&self, board: &Board, weights: &Weights) -> Result<(), StoreError>;

    /// Cheap reachability check for readiness probes.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The member's score in `board.period` (looked up in `shard`) and its
    /// metadata on the board, read together: one round trip where the
    /// backend can (the member answer needs both).
    async fn score_and_meta(
        &self,
        board: &Board,
        shard: u32,
        member: &MemberId,
    ) -> Result<(Option<f64>, Option<Meta>), StoreError> {
        let score = self.score(board, shard, member).await?;
        let meta = self
            .metas(board, std::slice::from_ref(member))
            .await?
            .pop()
            .flatten();
        Ok((score, meta))
    }

    /// Each member's score in `board.period` and metadata on the board,
    /// in the order asked (each looked up in its own shard): what a lookup
    /// answers, read together in one round trip per node where the backend
    /// can. Every member must be placeable on the board.
    async fn scores_and_metas(
        &self,
        board: &Board,
        members: &[MemberId],
    ) -> Result<Vec<(Option<f64>, Option<Meta>)>, StoreError> {
        let scores = self.scores_many(board, members).await?;
        let metas = self.metas(board, members).await?;
        Ok(scores.into_iter().zip(metas).collect())
    }

    /// Where each of `anchors` sits in each of `shards` of `board.period`,
    /// by the board's total order: per anchor the entries before it
    /// (`better`) and after it (`worse`), the anchor itself in neither,
    /// and each shard's size. What ranks a `first_achiever` board, where a
    /// rank is a position: `1 + Σ better` ([`crate::rank::standing_at`]).
    /// One round trip per node on Redis.
    async fn places_many(
        &self,
        board: &Board,
        shards: &[u32],
        anchors: &[Entry],
    ) -> Result<Vec<ShardCountsMany>, StoreError>;

    /// Each member's entry in `board.period` (score, [`Entry::tie`] and
    /// metadata), in the order asked; `None` without a score. What a
    /// `first_achiever` board ranks by, where the score alone does not
    /// place a member. Every member must be placeable on the board.
    async fn entries_of(
        &self,
        board: &Board,
        members: &[MemberId],
    ) -> Result<Vec<Option<Entry>>, StoreError> {
        let read = self.scores_and_metas(board, members).await?;
        Ok(entries_from_scores(members, read))
    }

    /// Whether ranks cost a fan-out over the network here, so that a
    /// gateway keeps a rank index fed by [`Store::index_tail`]; the
    /// in-process stores rank from their own trees and say no.
    fn keeps_rank_index(&self) -> bool {
        false
    }

    /// For each shard: its audit stream position and, exact at it, how
    /// many members hold each score in each of `periods` (see [`index`]),
    /// and with `members` every member's score and meta too. Stores that
    /// keep no index answer [`StoreError::Unavailable`].
    async fn index_scan(
        &self,
        board: &Board,
        shards: &[u32],
        periods: &[Arc<str>],
        members: bool,
    ) -> Result<Vec<IndexScan>, StoreError> {
        let _ = (board, shards, periods, members);
        Err(index::unsupported())
    }

    /// For each shard: its entries scoring within `[min, max]` (either
    /// end may be infinite), in ascending (score, member) order, at most
    /// `limit` of them, without metas. What an around ranked by the rank
    /// index reads: the index's counts say which scores the window spans,
    /// so each shard sends only those. Stores that keep no index answer
    /// [`StoreError::Unavailable`].
    async fn entries_between(
        &self,
        board: &Board,
        shards: &[u32],
        min: f64,
        max: f64,
        limit: usize,
    ) -> Result<Vec<Vec<Entry>>, StoreError> {
        let _ = (board, shards, min, max, limit);
        Err(index::unsupported())
    }

    /// For each shard: up to `n` audit records after its position in
    /// `from` (one per shard, in order), or
    /// [`IndexTail::Gap`] when some of them are gone.
    async fn index_tail(
        &self,
        board: &Board,
        shards: &[u32],
        from: &[IndexPos],
        n: usize,
    ) -> Result<Vec<IndexTail>, StoreError> {
        let _ = (board, shards, from, n);
        Err(index::unsupported())
    }
}

/// Refuses a shard index the board does not have: a caller bug, reported
/// rather than letting a backend create a stray shard.
pub(crate) fn check_shard(board: &Board, shard: u32) -> Result<(), StoreError> {
    if shard >= board.shards {
        return Err(StoreError::Corrupt(format!(
            "shard {shard} out of range for board {} ({} shards)",
            board.name, board.shards
        )));
    }
    Ok(())
}

/// Milliseconds since the Unix epoch as a signed number, for period
/// arithmetic.
pub fn now_ms_i64() -> i64 {
    i64::try_from(now_ms()).unwrap_or(i64::MAX)
}

/// Milliseconds since the Unix epoch, for audit records and snapshots.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

/// Each member's entry (tie 0) from its score and meta, `None` without a
/// score: [`Store::entries_of`] of a `shared` board.
pub fn entries_from_scores(
    members: &[MemberId],
    read: Vec<(Option<f64>, Option<Meta>)>,
) -> Vec<Option<Entry>> {
    members
        .iter()
        .zip(read)
        .map(|(m, (score, meta))| {
            score.map(|s| {
                let mut e = Entry::stored(m.clone(), s);
                e.meta = meta;
                e
            })
        })
        .collect()
}

/// Microseconds since the Unix epoch: when a score was reached, for the
/// ties of a `first_achiever` board ([`crate::types::Order::tie_at`]).
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_micros() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pinned values: every backend and every release must compute the
    /// same digest for the same write, or retries across a rolling upgrade
    /// turn into conflicts.
    #[test]
    fn request_digests_are_stable_and_tell_writes_apart() {
        assert_eq!(request_digest(Op::Incr, 5.0), 0xe5cc_8d9d_f3ca_d1a9);
        assert_eq!(request_digest(Op::Set, 5.0), 0x1650_8f2c_1c5e_5165);
        assert_eq!(request_digest(Op::Incr, 6.0), 0xfee8_929e_01c4_06b8);
        assert_eq!(request_digest(Op::Best, -2.5), 0x601f_eb2b_7937_4586);
        let w = Write {
            member: MemberId::new("m:1").unwrap(),
            op: Op::Incr,
            value: Score::new(5.0).unwrap(),
            idempotency_key: Some("k".into()),
            request_id: "r".into(),
            meta: None,
        };
        assert_eq!(w.digest(), request_digest(Op::Incr, 5.0));
        let meta = |t: &str| Some(Meta::parse(t).unwrap());
        let with = Write {
            meta: meta(r#"{"a":1,"b":2}"#),
            ..w.clone()
        };
        assert_eq!(
            with.digest(),
            0xcda1_4f36_21cd_6945,
            "pinned: FNV-1a 64 of incr|5e0|{{\"a\":1,\"b\":2}}"
        );
        assert_ne!(with.digest(), w.digest(), "meta takes part when given");
        let reordered = Write {
            meta: meta(r#"{ "b": 2, "a": 1 }"#),
            ..w.clone()
        };
        assert_eq!(reordered.digest(), with.digest(), "canonical text");
        let other = Write {
            meta: meta(r#"{"a":2}"#),
            ..w.clone()
        };
        assert_ne!(other.digest(), with.digest());
        let other_request = Write {
            request_id: "another".into(),
            ..w.clone()
        };
        assert_eq!(
            other_request.digest(),
            w.digest(),
            "request id is not hashed"
        );
        assert_ne!(
            request_digest(Op::Incr, 0.1 + 0.2),
            request_digest(Op::Incr, 0.3),
            "values differing in the last bit differ"
        );
    }
}
