//! Behaviour events and likes: the domain half, shared by every backend.
//!
//! An event names an actor, a target and (optionally) an owner, and has a
//! type: one of the four like actions or a counted type (`comment`,
//! `share`, ...) named in some board's weights. Likes are a state per
//! (actor, target) — none, liked or disliked — and [`transition`] is the one
//! definition of how an action moves it, which every backend (the Lua script
//! included, see `store/redis/events.lua`) follows:
//!
//! | from \ action | like | unlike | dislike | undislike |
//! | --- | --- | --- | --- | --- |
//! | none | liked (+1 like) | — | disliked (+1 dislike) | — |
//! | liked | — | none (−1 like) | disliked (−1 like, +1 dislike) | — |
//! | disliked | liked (−1 dislike, +1 like) | — | — | none (−1 dislike) |
//!
//! "—" changes nothing, moves nothing and answers `applied: false`. A board
//! fed by events ([`EventSource`]) moves by [`Weights::delta`] of the
//! change: an unlike subtracts the like's weight, a switch subtracts one
//! weight and adds the other.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::board::fnv1a64;
use crate::types::{BoardName, InputCode, InvalidInput, MemberId};

/// Longest event id in bytes.
pub const MAX_EVENT_ID_LEN: usize = 128;

/// Longest counted type name in bytes.
pub const MAX_TYPE_LEN: usize = 32;

/// Most events in one request.
pub const MAX_BATCH: usize = 1000;

/// An event id: 1 to 128 bytes of printable ASCII without spaces
/// (`0x21..=0x7e`), so it can sit in a key and a log line as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(Arc<str>);

impl EventId {
    /// Validates `id`.
    pub fn new(id: &str) -> Result<Self, InvalidInput> {
        if id.is_empty() || id.len() > MAX_EVENT_ID_LEN {
            return Err(invalid(
                "id",
                format!("event id must be 1 to {MAX_EVENT_ID_LEN} bytes"),
            ));
        }
        if !id.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(invalid(
                "id",
                "event id must be printable ASCII without spaces",
            ));
        }
        Ok(Self(Arc::from(id)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A like action: what moves the (actor, target) state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LikeAction {
    /// none -> liked, disliked -> liked.
    Like,
    /// liked -> none.
    Unlike,
    /// none -> disliked, liked -> disliked.
    Dislike,
    /// disliked -> none.
    Undislike,
}

impl LikeAction {
    /// The action as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            LikeAction::Like => "like",
            LikeAction::Unlike => "unlike",
            LikeAction::Dislike => "dislike",
            LikeAction::Undislike => "undislike",
        }
    }
}

/// What an event is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventType {
    /// One of the four like actions.
    Like(LikeAction),
    /// A counted type (`comment`, `share`, ...): moves boards by its weight
    /// each time, keeps no state.
    Counted(Arc<str>),
}

impl EventType {
    /// Parses a type name: the four like actions, or any other
    /// `[a-z][a-z0-9_]{0,31}` (whether a board weighs it is the caller's
    /// check, since it depends on the tenant's boards).
    pub fn parse(name: &str) -> Result<Self, InvalidInput> {
        Ok(match name {
            "like" => EventType::Like(LikeAction::Like),
            "unlike" => EventType::Like(LikeAction::Unlike),
            "dislike" => EventType::Like(LikeAction::Dislike),
            "undislike" => EventType::Like(LikeAction::Undislike),
            other => {
                check_type_name(other).map_err(|m| invalid("type", m))?;
                EventType::Counted(Arc::from(other))
            }
        })
    }

    /// The type as the API spells it.
    pub fn as_str(&self) -> &str {
        match self {
            EventType::Like(a) => a.as_str(),
            EventType::Counted(t) => t,
        }
    }
}

/// Checks a counted type or weight name: `[a-z][a-z0-9_]{0,31}`.
pub fn check_type_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let ok = name.len() <= MAX_TYPE_LEN
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "event type {name:?} must match [a-z][a-z0-9_]{{0,{}}}",
            MAX_TYPE_LEN - 1
        ))
    }
}

/// One validated event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Applies once per tenant within the dedup window.
    pub id: EventId,
    /// What happened.
    pub kind: EventType,
    /// Who did it.
    pub actor: MemberId,
    /// To what.
    pub target: MemberId,
    /// Who receives the target's likes, if anyone.
    pub owner: Option<MemberId>,
}

impl Event {
    /// The digest the dedup record keeps: FNV-1a 64 over
    /// `"type|actor|target|owner"`. A repeat id with another digest is a
    /// conflict, not a repeat. Pinned by a test: every backend and release
    /// must compute the same value.
    pub fn digest(&self) -> u64 {
        let owner = self.owner.as_ref().map(MemberId::as_str).unwrap_or("");
        fnv1a64(
            format!(
                "{}|{}|{}|{}",
                self.kind.as_str(),
                self.actor.as_str(),
                self.target.as_str(),
                owner
            )
            .as_bytes(),
        )
    }
}

/// The like state of one (actor, target).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LikeState {
    /// Neither liked nor disliked.
    #[default]
    None,
    /// Liked.
    Liked,
    /// Disliked.
    Disliked,
}

impl LikeState {
    /// The state as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            LikeState::None => "none",
            LikeState::Liked => "liked",
            LikeState::Disliked => "disliked",
        }
    }

    /// One byte for storage: `n`, `l`, `d`.
    pub fn code(self) -> u8 {
        match self {
            LikeState::None => b'n',
            LikeState::Liked => b'l',
            LikeState::Disliked => b'd',
        }
    }

    /// The state of a stored byte; anything else is none.
    pub fn from_code(code: u8) -> Self {
        match code {
            b'l' => LikeState::Liked,
            b'd' => LikeState::Disliked,
            _ => LikeState::None,
        }
    }
}

/// What one event changes: the new state and the count deltas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Change {
    /// The state after the event.
    pub state: LikeState,
    /// -1, 0 or +1 to the target's likes.
    pub likes: i64,
    /// -1, 0 or +1 to the target's dislikes.
    pub dislikes: i64,
}

impl Change {
    /// Whether anything moved.
    pub fn changed(&self) -> bool {
        self.likes != 0 || self.dislikes != 0
    }
}

/// The state machine of the module docs.
pub fn transition(from: LikeState, action: LikeAction) -> Change {
    use LikeAction as A;
    use LikeState as S;
    let (state, likes, dislikes) = match (from, action) {
        (S::None, A::Like) => (S::Liked, 1, 0),
        (S::None, A::Dislike) => (S::Disliked, 0, 1),
        (S::Liked, A::Unlike) => (S::None, -1, 0),
        (S::Liked, A::Dislike) => (S::Disliked, -1, 1),
        (S::Disliked, A::Like) => (S::Liked, 1, -1),
        (S::Disliked, A::Undislike) => (S::None, 0, -1),
        (s, _) => (s, 0, 0),
    };
    Change {
        state,
        likes,
        dislikes,
    }
}

/// Whose score an event-fed board moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feed {
    /// The target's (in the same atomic step as the like).
    Target,
    /// The actor's (follows the event stream).
    Actor,
    /// The owner's (follows the event stream; events without an owner
    /// move nothing).
    Owner,
}

impl Feed {
    /// Parses `target`, `actor` or `owner`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "target" => Some(Feed::Target),
            "actor" => Some(Feed::Actor),
            "owner" => Some(Feed::Owner),
            _ => None,
        }
    }

    /// The feed as the config spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Feed::Target => "target",
            Feed::Actor => "actor",
            Feed::Owner => "owner",
        }
    }
}

/// A board's weights: type name -> points. `like` is what a like adds
/// (an unlike takes it back), `dislike` what a dislike adds (usually
/// negative or absent), any other name a counted type.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Weights(pub Arc<BTreeMap<String, f64>>);

impl Weights {
    /// Weights from pairs; names are checked with [`check_type_name`],
    /// values must be finite and within +-2^53.
    pub fn new(pairs: BTreeMap<String, f64>) -> Result<Self, String> {
        for (name, w) in &pairs {
            check_type_name(name)?;
            if !w.is_finite() || w.abs() > crate::types::MAX_SCORE {
                return Err(format!(
                    "weight of {name:?} must be a finite number within +-2^53"
                ));
            }
        }
        Ok(Self(Arc::new(pairs)))
    }

    /// The weight of `name`, 0 when absent.
    pub fn get(&self, name: &str) -> f64 {
        self.0.get(name).copied().unwrap_or(0.0)
    }

    /// What an event moves a board by: for a like action, the count
    /// deltas times the `like` and `dislike` weights; for a counted type,
    /// its weight.
    pub fn delta(&self, kind: &EventType, change: Change) -> f64 {
        match kind {
            EventType::Like(_) => {
                change.likes as f64 * self.get("like")
                    + change.dislikes as f64 * self.get("dislike")
            }
            EventType::Counted(t) => self.get(t),
        }
    }

    /// The weights as a JSON object, as the admin API and the store keep
    /// them.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&*self.0).unwrap_or_else(|_| "{}".into())
    }

    /// Weights from a JSON object.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let pairs: BTreeMap<String, f64> =
            serde_json::from_str(text).map_err(|e| format!("weights: {e}"))?;
        Self::new(pairs)
    }
}

/// Where a board's scores come from when it is fed by events.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSource {
    /// Whose score moves.
    pub feed: Feed,
    /// By how much, per type.
    pub weights: Weights,
}

/// A tenant's likes: where they live and the rules they keep.
///
/// Like state and counts live in the target's shard of the tenant's likes
/// space, `{sl:TENANT:SHARD}` in Redis (see [`crate::keyspace`]); every
/// board fed by `target` events keeps its shards in the same slots, so a
/// like, its counts and those boards' scores are one atomic step.
#[derive(Debug, Clone, PartialEq)]
pub struct LikeSpace {
    /// The tenant.
    pub tenant: BoardName,
    /// Shards targets (and actors, and owners) are spread over; every
    /// target-fed board of the tenant has this many.
    pub shards: u32,
    /// How long an event id is remembered.
    pub dedup_ttl: Duration,
    /// At most one like action per (actor, target) this often.
    pub cooldown: Duration,
    /// How many of an actor's likes its list keeps, newest first.
    pub recent_per_actor: usize,
}

impl LikeSpace {
    /// The space of `tenant` with the defaults: 100 shards (a board's
    /// default), events remembered a day, a 1 s cooldown, 1000 recent likes.
    pub fn new(tenant: BoardName) -> Self {
        Self {
            tenant,
            shards: 100,
            dedup_ttl: Duration::from_secs(86_400),
            cooldown: Duration::from_secs(1),
            recent_per_actor: 1000,
        }
    }

    /// The shard of a target, actor or owner: the boards' hash shard
    /// function ([`crate::board::fnv1a64`] of the id, mod shards), so a
    /// target-fed board's member and the like state of that target are in
    /// the same shard.
    pub fn shard_of(&self, member: &MemberId) -> u32 {
        crate::board::hash_shard(member, self.shards)
    }
}

/// What an event did.
#[derive(Debug, Clone, PartialEq)]
pub struct EventOutcome {
    /// True when it changed something (for a repeat id: false).
    pub applied: bool,
    /// For a like action: the (actor, target) state after it.
    pub state: Option<LikeState>,
    /// Why it was not applied, when that is an error the client must see
    /// rather than a repeat.
    pub refused: Option<Refusal>,
}

/// An event the store refused, with nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The id was used before (within the dedup window) for another event.
    Conflict,
    /// A like action on this (actor, target) within the cooldown.
    Cooldown,
    /// A board score would leave +-2^53.
    OutOfRange,
}

impl Refusal {
    /// The error code as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Conflict => "idempotency_conflict",
            Refusal::Cooldown => "rate_limited",
            Refusal::OutOfRange => "invalid_score",
        }
    }
}

/// A target's counts, and one actor's state on it when asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LikeCounts {
    /// Likes that stand now.
    pub likes: u64,
    /// Dislikes that stand now.
    pub dislikes: u64,
    /// The asked actor's state (none when no actor was asked).
    pub state: LikeState,
}

/// One entry of an actor's list: a target it likes now, and when it liked
/// it (ms since the Unix epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct LikedTarget {
    /// The target.
    pub target: MemberId,
    /// When the like was applied.
    pub at_ms: u64,
}

fn invalid(field: &'static str, message: impl Into<String>) -> InvalidInput {
    InvalidInput::new(InputCode::InvalidEvent, field, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use LikeAction as A;
    use LikeState as S;

    #[test]
    fn every_transition_of_the_table() {
        let cases = [
            (S::None, A::Like, S::Liked, 1, 0),
            (S::None, A::Unlike, S::None, 0, 0),
            (S::None, A::Dislike, S::Disliked, 0, 1),
            (S::None, A::Undislike, S::None, 0, 0),
            (S::Liked, A::Like, S::Liked, 0, 0),
            (S::Liked, A::Unlike, S::None, -1, 0),
            (S::Liked, A::Dislike, S::Disliked, -1, 1),
            (S::Liked, A::Undislike, S::Liked, 0, 0),
            (S::Disliked, A::Like, S::Liked, 1, -1),
            (S::Disliked, A::Unlike, S::Disliked, 0, 0),
            (S::Disliked, A::Dislike, S::Disliked, 0, 0),
            (S::Disliked, A::Undislike, S::None, 0, -1),
        ];
        for (from, action, state, likes, dislikes) in cases {
            let c = transition(from, action);
            assert_eq!(
                c,
                Change {
                    state,
                    likes,
                    dislikes
                },
                "{from:?} {action:?}"
            );
            assert_eq!(c.changed(), likes != 0 || dislikes != 0);
        }
    }

    #[test]
    fn deltas_follow_the_weights() {
        let w = Weights::new(BTreeMap::from([
            ("like".into(), 2.0),
            ("dislike".into(), -1.0),
            ("comment".into(), 3.0),
        ]))
        .unwrap();
        let like = EventType::Like(A::Like);
        assert_eq!(w.delta(&like, transition(S::None, A::Like)), 2.0);
        assert_eq!(w.delta(&like, transition(S::Disliked, A::Like)), 3.0);
        let unlike = EventType::Like(A::Unlike);
        assert_eq!(w.delta(&unlike, transition(S::Liked, A::Unlike)), -2.0);
        let dislike = EventType::Like(A::Dislike);
        assert_eq!(w.delta(&dislike, transition(S::Liked, A::Dislike)), -3.0);
        assert_eq!(w.delta(&like, transition(S::Liked, A::Like)), 0.0);
        assert_eq!(
            w.delta(&EventType::Counted("comment".into()), Change::default()),
            3.0
        );
        assert_eq!(
            w.delta(&EventType::Counted("share".into()), Change::default()),
            0.0
        );
        assert_eq!(Weights::from_json(&w.to_json()).unwrap(), w);
        assert!(Weights::from_json(r#"{"Like": 1}"#).is_err());
        assert!(Weights::from_json(r#"{"like": 1e300}"#).is_err());
    }

    #[test]
    fn ids_and_types_are_checked() {
        assert!(EventId::new("evt-7f3a").is_ok());
        assert!(EventId::new("").is_err());
        assert!(EventId::new("has space").is_err());
        assert!(EventId::new(&"x".repeat(129)).is_err());
        assert!(EventId::new("é").is_err());
        assert_eq!(EventType::parse("like").unwrap(), EventType::Like(A::Like));
        assert_eq!(
            EventType::parse("comment").unwrap(),
            EventType::Counted("comment".into())
        );
        assert!(EventType::parse("Comment").is_err());
        assert!(EventType::parse("").is_err());
    }

    /// Pinned: the dedup record's digest must not change across releases.
    #[test]
    fn event_digest_is_stable() {
        let e = Event {
            id: EventId::new("e1").unwrap(),
            kind: EventType::Like(A::Like),
            actor: MemberId::new("user:1").unwrap(),
            target: MemberId::new("video:9").unwrap(),
            owner: Some(MemberId::new("user:5").unwrap()),
        };
        assert_eq!(e.digest(), fnv1a64(b"like|user:1|video:9|user:5"));
        let no_owner = Event {
            owner: None,
            ..e.clone()
        };
        assert_ne!(no_owner.digest(), e.digest());
    }
}
