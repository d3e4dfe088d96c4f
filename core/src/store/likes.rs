//! The in-process likes engine of [`MemoryStore`] (and so of the durable
//! store, which persists what it reports): like states, counts, event dedup
//! records, cooldowns, actors' lists and owners' totals of every tenant,
//! behind one lock.
//!
//! One event is one step under that lock: dedup, cooldown, the transition,
//! the range check of every board it moves, and then all of it, so nothing
//! is half-applied. In one process there is no stream to follow: the
//! actor's list, the owner's total and the boards fed by `actor` or
//! `owner` move in the same step (their lag is always 0).
//!
//! Memory per standing like: one `states` entry, a `((tenant, target,
//! actor), u8)` slot, i.e. two `Arc<str>` ids shared with the rest (16
//! bytes each) plus the tenant's, about 64 bytes with the table's slack,
//! and one entry in the actor's list (a `BTreeMap` node share, about 40
//! bytes). Counts are one entry per target, not per like.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::memory::{Applied, MemoryStore};
use super::{now_ms, StoreError, Write};
use crate::board::Board;
use crate::events::{
    transition, Event, EventId, EventOutcome, EventType, Feed, LikeCounts, LikeSpace, LikeState,
    LikedTarget, Refusal,
};
use crate::types::{BoardName, MemberId, Op, Score, MAX_SCORE};

/// A tenant and a member: keys of everything per member.
type Who = (BoardName, MemberId);

/// What the dedup record of one event id keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Seen {
    /// [`Event::digest`] of the event that used the id.
    pub digest: u64,
    /// Its state after it (like actions; `None` for counted types).
    pub state: Option<LikeState>,
    /// When the record expires, ms since the Unix epoch.
    pub expires_at_ms: u64,
}

/// Everything the likes hold.
#[derive(Default)]
pub(crate) struct Likes {
    /// (tenant, target, actor) -> liked or disliked (none is absent).
    states: HashMap<(BoardName, MemberId, MemberId), LikeState>,
    /// (tenant, target) -> (likes, dislikes).
    counts: HashMap<Who, (u64, u64)>,
    /// (tenant, event id) -> its record.
    seen: HashMap<(BoardName, EventId), Seen>,
    /// Expiry queue of `seen`, in the order records were made (the TTL is
    /// per tenant, so it is FIFO per tenant; a record is dropped when its
    /// own time comes, checked against `seen`).
    seen_expiry: VecDeque<(u64, (BoardName, EventId))>,
    /// (tenant, target, actor) -> when its cooldown ends.
    cooldowns: HashMap<(BoardName, MemberId, MemberId), Instant>,
    /// (tenant, actor) -> target -> when it was liked; trimmed to the
    /// space's `recent_per_actor`.
    lists: HashMap<Who, HashMap<MemberId, u64>>,
    /// (tenant, owner) -> likes the owner's targets hold.
    owners: HashMap<Who, u64>,
}

/// What one applied event changed, for a durable backend to persist. The
/// board moves are in [`EventChange::moves`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EventChange {
    /// The tenant.
    pub tenant: BoardName,
    /// The event id and its new dedup record.
    pub seen: (EventId, Seen),
    /// The (target, actor) state after the event, when it changed.
    pub state: Option<(MemberId, MemberId, LikeState)>,
    /// The target's counts after the event, when they changed.
    pub counts: Option<(MemberId, u64, u64)>,
    /// The actor's list change: (actor, target, `Some(at)` added or `None`
    /// removed), and the targets trimmed off its end.
    pub list: Option<(MemberId, MemberId, Option<u64>, Vec<MemberId>)>,
    /// The owner's total after the event, when it changed.
    pub owner: Option<(MemberId, u64)>,
    /// Each board move: the board (by index into the `boards` given) and
    /// what its write changed.
    pub moves: Vec<(usize, Applied)>,
}

impl Likes {
    fn expire_seen(&mut self, now_ms: u64) {
        while let Some((at, _)) = self.seen_expiry.front() {
            if *at > now_ms {
                break;
            }
            if let Some((_, key)) = self.seen_expiry.pop_front() {
                if self
                    .seen
                    .get(&key)
                    .is_some_and(|s| s.expires_at_ms <= now_ms)
                {
                    self.seen.remove(&key);
                }
            }
        }
    }

    fn state(&self, tenant: &BoardName, target: &MemberId, actor: &MemberId) -> LikeState {
        self.states
            .get(&(tenant.clone(), target.clone(), actor.clone()))
            .copied()
            .unwrap_or_default()
    }

    /// The counts of `target`, and `actor`'s state on it.
    pub(crate) fn counts(
        &self,
        tenant: &BoardName,
        target: &MemberId,
        actor: Option<&MemberId>,
    ) -> LikeCounts {
        let (likes, dislikes) = self
            .counts
            .get(&(tenant.clone(), target.clone()))
            .copied()
            .unwrap_or_default();
        LikeCounts {
            likes,
            dislikes,
            state: actor.map_or(LikeState::None, |a| self.state(tenant, target, a)),
        }
    }

    /// The newest `limit` targets `actor` likes.
    pub(crate) fn actor_likes(
        &self,
        tenant: &BoardName,
        actor: &MemberId,
        limit: usize,
    ) -> Vec<LikedTarget> {
        let Some(list) = self.lists.get(&(tenant.clone(), actor.clone())) else {
            return Vec::new();
        };
        newest_first(list, limit)
    }

    /// The likes `owner`'s targets hold.
    pub(crate) fn owner_likes(&self, tenant: &BoardName, owner: &MemberId) -> u64 {
        self.owners
            .get(&(tenant.clone(), owner.clone()))
            .copied()
            .unwrap_or(0)
    }

    /// Restores one record at load (durable store).
    pub(crate) fn restore_seen(&mut self, tenant: BoardName, id: EventId, seen: Seen) {
        self.seen_expiry
            .push_back((seen.expires_at_ms, (tenant.clone(), id.clone())));
        self.seen.insert((tenant, id), seen);
    }

    /// Restores one like state at load (durable store).
    pub(crate) fn restore_state(
        &mut self,
        tenant: BoardName,
        target: MemberId,
        actor: MemberId,
        state: LikeState,
    ) {
        if state != LikeState::None {
            self.states.insert((tenant, target, actor), state);
        }
    }

    /// Restores one target's counts at load (durable store).
    pub(crate) fn restore_counts(&mut self, tenant: BoardName, target: MemberId, c: (u64, u64)) {
        self.counts.insert((tenant, target), c);
    }

    /// Restores one entry of an actor's list at load (durable store).
    pub(crate) fn restore_liked(
        &mut self,
        tenant: BoardName,
        actor: MemberId,
        target: MemberId,
        at_ms: u64,
    ) {
        self.lists
            .entry((tenant, actor))
            .or_default()
            .insert(target, at_ms);
    }

    /// Restores one owner's total at load (durable store).
    pub(crate) fn restore_owner(&mut self, tenant: BoardName, owner: MemberId, total: u64) {
        self.owners.insert((tenant, owner), total);
    }
}

/// The newest `limit` of a list, newest first (ties by target, so the
/// order is total).
fn newest_first(list: &HashMap<MemberId, u64>, limit: usize) -> Vec<LikedTarget> {
    let mut all: Vec<LikedTarget> = list
        .iter()
        .map(|(t, at)| LikedTarget {
            target: t.clone(),
            at_ms: *at,
        })
        .collect();
    all.sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then_with(|| b.target.cmp(&a.target)));
    all.truncate(limit);
    all
}

/// Whose score a board fed by `feed` moves for `event`.
fn fed_member(feed: Feed, event: &Event) -> Option<&MemberId> {
    match feed {
        Feed::Target => Some(&event.target),
        Feed::Actor => Some(&event.actor),
        Feed::Owner => event.owner.as_ref(),
    }
}

impl MemoryStore {
    /// Applies one event under the likes lock (see the module docs).
    /// Answers its outcome and, when it was applied, what it changed.
    pub(crate) fn apply_event(
        &self,
        space: &LikeSpace,
        boards: &[Board],
        event: &Event,
    ) -> Result<(EventOutcome, Option<EventChange>), StoreError> {
        self.apply_event_with(space, boards, event, |change| change)
    }

    /// [`MemoryStore::apply_event`], handing what the event changed to
    /// `persist` while the likes lock is still held, and answering what
    /// `persist` returned in its place.
    ///
    /// The durable store queues the change for its committer in `persist`:
    /// as every event takes this lock, the committer's channel then holds
    /// the like rows (states, counts, lists, totals) in the order they
    /// were applied here, and writing them in channel order leaves the disk
    /// as memory is. Were the change queued after the lock is released,
    /// two events on one (target, actor) could reach the disk swapped, and
    /// the older state would win.
    ///
    /// `persist` is also called when a board move fails after the like
    /// state has changed (nothing a range check let through should fail,
    /// but memory must never hold a change no one was told to persist);
    /// the error is answered all the same.
    pub(crate) fn apply_event_with<T>(
        &self,
        space: &LikeSpace,
        boards: &[Board],
        event: &Event,
        persist: impl FnOnce(EventChange) -> T,
    ) -> Result<(EventOutcome, Option<T>), StoreError> {
        let mut likes = self.likes.lock().unwrap_or_else(|p| p.into_inner());
        let now = now_ms();
        likes.expire_seen(now);
        let tenant = &space.tenant;
        let digest = event.digest();
        let seen_key = (tenant.clone(), event.id.clone());
        // The queue is FIFO per tenant only, so an expired record can sit
        // behind a longer-lived one: its own time decides.
        if let Some(seen) = likes.seen.get(&seen_key).filter(|s| s.expires_at_ms > now) {
            let refused = (seen.digest != digest).then_some(Refusal::Conflict);
            return Ok((
                EventOutcome {
                    applied: false,
                    state: if refused.is_some() { None } else { seen.state },
                    refused,
                },
                None,
            ));
        }
        let refuse = |r: Refusal| {
            Ok((
                EventOutcome {
                    applied: false,
                    state: None,
                    refused: Some(r),
                },
                None,
            ))
        };
        let pair = (tenant.clone(), event.target.clone(), event.actor.clone());
        let (change, action) = match &event.kind {
            EventType::Like(action) => {
                let at = Instant::now();
                if likes.cooldowns.get(&pair).is_some_and(|end| *end > at) {
                    return refuse(Refusal::Cooldown);
                }
                let from = likes.states.get(&pair).copied().unwrap_or_default();
                (Some(transition(from, *action)), Some(*action))
            }
            EventType::Counted(_) => (None, None),
        };
        let moved = change.is_none_or(|c| c.changed());
        // Every board move, checked before anything changes.
        let mut writes = Vec::new();
        if moved {
            for (i, board) in boards.iter().enumerate() {
                let Some(source) = &board.source else {
                    continue;
                };
                let Some(member) = fed_member(source.feed, event) else {
                    continue;
                };
                let delta = source
                    .weights
                    .delta(&event.kind, change.unwrap_or_default());
                if delta == 0.0 {
                    continue;
                }
                let shard = board
                    .shard_of(member)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let old = self.max_abs_score(board, shard, member);
                if old + delta.abs() > MAX_SCORE {
                    return refuse(Refusal::OutOfRange);
                }
                let value = Score::new(delta).map_err(|_| StoreError::OutOfRange)?;
                writes.push((
                    i,
                    Write {
                        member: member.clone(),
                        op: Op::Incr,
                        value,
                        idempotency_key: None,
                        request_id: format!("event {}", event.id),
                        meta: None,
                    },
                ));
            }
        }
        if action.is_some() && space.cooldown > Duration::ZERO {
            likes
                .cooldowns
                .insert(pair.clone(), Instant::now() + space.cooldown);
            if likes.cooldowns.len() > 100_000 {
                let at = Instant::now();
                likes.cooldowns.retain(|_, end| *end > at);
            }
        }
        let seen = Seen {
            digest,
            state: change.map(|c| c.state),
            expires_at_ms: now + space.dedup_ttl.as_millis() as u64,
        };
        likes.seen.insert(seen_key.clone(), seen);
        likes.seen_expiry.push_back((seen.expires_at_ms, seen_key));
        let mut out = EventChange {
            tenant: tenant.clone(),
            seen: (event.id.clone(), seen),
            state: None,
            counts: None,
            list: None,
            owner: None,
            moves: Vec::new(),
        };
        if let Some(c) = change.filter(|c| c.changed()) {
            if c.state == LikeState::None {
                likes.states.remove(&pair);
            } else {
                likes.states.insert(pair, c.state);
            }
            out.state = Some((event.target.clone(), event.actor.clone(), c.state));
            let key = (tenant.clone(), event.target.clone());
            let entry = likes.counts.entry(key).or_default();
            entry.0 = entry.0.saturating_add_signed(c.likes);
            entry.1 = entry.1.saturating_add_signed(c.dislikes);
            out.counts = Some((event.target.clone(), entry.0, entry.1));
            if c.likes != 0 {
                out.list = Some(self.move_list(&mut likes, space, event, c.likes > 0, now));
                if let Some(owner) = &event.owner {
                    let total = likes
                        .owners
                        .entry((tenant.clone(), owner.clone()))
                        .or_default();
                    *total = total.saturating_add_signed(c.likes);
                    out.owner = Some((owner.clone(), *total));
                }
            }
        }
        let mut failure = None;
        for (i, write) in writes {
            match self.apply_recorded(&boards[i], &write) {
                Ok((_, Some(applied))) => out.moves.push((i, applied)),
                Ok((_, None)) => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let persisted = persist(out);
        drop(likes);
        if let Some(e) = failure {
            return Err(e);
        }
        Ok((
            EventOutcome {
                applied: moved,
                state: change.map(|c| c.state),
                refused: None,
            },
            Some(persisted),
        ))
    }

    /// Adds the target to (or removes it from) the actor's list, trimming
    /// it to the space's `recent_per_actor`.
    fn move_list(
        &self,
        likes: &mut Likes,
        space: &LikeSpace,
        event: &Event,
        liked: bool,
        now: u64,
    ) -> (MemberId, MemberId, Option<u64>, Vec<MemberId>) {
        let list = likes
            .lists
            .entry((space.tenant.clone(), event.actor.clone()))
            .or_default();
        let mut trimmed = Vec::new();
        if liked {
            list.insert(event.target.clone(), now);
            if list.len() > space.recent_per_actor {
                let keep: BTreeMap<_, _> = newest_first(list, space.recent_per_actor)
                    .into_iter()
                    .map(|l| (l.target, l.at_ms))
                    .collect();
                trimmed = list
                    .keys()
                    .filter(|t| !keep.contains_key(*t))
                    .cloned()
                    .collect();
                for t in &trimmed {
                    list.remove(t);
                }
            }
        } else {
            list.remove(&event.target);
        }
        (
            event.actor.clone(),
            event.target.clone(),
            liked.then_some(now),
            trimmed,
        )
    }

    /// Reads under the likes lock.
    pub(crate) fn with_likes<T>(&self, f: impl FnOnce(&Likes) -> T) -> T {
        f(&self.likes.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Writes under the likes lock (durable store's load).
    pub(crate) fn with_likes_mut<T>(&self, f: impl FnOnce(&mut Likes) -> T) -> T {
        f(&mut self.likes.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventSource, LikeAction, Weights};

    /// The durable store relies on it: `persist` runs before the likes
    /// lock is released (so changes are queued in the order they were
    /// applied), gets every board move, and is not called for an event
    /// that changed nothing.
    #[test]
    fn the_change_is_handed_over_under_the_likes_lock() {
        let store = MemoryStore::new();
        let tenant = BoardName::new("acme").unwrap();
        let space = LikeSpace {
            cooldown: Duration::ZERO,
            ..LikeSpace::new(tenant.clone())
        };
        let board = Board {
            source: Some(EventSource {
                feed: Feed::Target,
                weights: Weights::new(BTreeMap::from([("like".to_string(), 2.0)])).unwrap(),
            }),
            ..Board::new(BoardName::new("clips").unwrap()).in_tenant(tenant)
        };
        let event = Event {
            id: EventId::new("e1").unwrap(),
            kind: EventType::Like(LikeAction::Like),
            actor: MemberId::new("u:1").unwrap(),
            target: MemberId::new("v:1").unwrap(),
            owner: None,
        };
        let boards = [board];
        let (outcome, held) = store
            .apply_event_with(&space, &boards, &event, |change| {
                assert_eq!(change.counts, Some((event.target.clone(), 1, 0)));
                assert_eq!(change.moves.len(), 1, "the board move is in the change");
                store.likes.try_lock().is_err()
            })
            .unwrap();
        assert!(outcome.applied);
        assert_eq!(held, Some(true), "persist ran under the likes lock");
        let (again, none) = store
            .apply_event_with(&space, &boards, &event, |_| -> bool {
                panic!("a repeat changes nothing to persist")
            })
            .unwrap();
        assert!(!again.applied);
        assert_eq!(none, None);
    }
}
