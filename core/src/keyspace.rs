//! Key names, shared by every backend so that operators see one layout.
//!
//! Keys are built from the board's storage name ([`Board::storage_name`]),
//! `b` below: the board name for tenant `public` (so keys written before
//! tenants are where they were), `TENANT.BOARD` for any other tenant, so
//! boards of one name in two tenants share no key.
//!
//! All keys of one shard carry the same Redis hash tag, `{st:b:SHARD}`:
//! the tag names the board and the shard, not the period, so every period
//! and blend of a shard lives in one cluster slot and a write that moves all
//! of them is one atomic script. `P` below is a period id (`all`,
//! `daily/2026-12-01`, `every:10s/1764597610`) or a blend's name:
//!
//! | key | type | what |
//! | --- | --- | --- |
//! | `{st:b:s}:z:P` | sorted set | member -> score in period (or blend) P |
//! | `{st:b:s}:f:P` | sorted set | on a `first_achiever` board in place of `:z:P`: the tie's 16 digits and the member ([`crate::types::stored_name`]) -> score, so that a board whose `ties` changed starts clean instead of mixing names |
//! | `{st:b:s}:t:P` | hash | on a `first_achiever` board: member -> the 16 digits of its tie in P |
//! | `{st:b:s}:v:P` | string (int) | P's version, bumped by every applied write that moves P |
//! | `{st:b:s}:i:LEN:MEMBER:KEY` | string | idempotency record: `"<digest hex> <score>"` and, on a board with several periods, `" <id>=<score>"` per period; the first write's [`crate::store::request_digest`] (16 hex digits) and resulting scores, with the board's TTL; scoped to (member, key) |
//! | `{st:b:s}:a` | stream | audit log of applied writes (and removals), trimmed `MAXLEN ~` |
//! | `{st:b:s}:m` | hash | member -> its metadata on the board ([`crate::Meta`], canonical JSON), for every period alike |
//! | `{st:b:s}:periods` | sorted set | the shard's period ids by when they expire (`inf`: never), added on each period's first write, so a removal finds them all |
//! | `{st:b:s}:snap:P` | string | the shard's TOP-K snapshot of P |
//! | `{st:b:s}:bp:NAME` | string | blend NAME's parts set at run time ([`crate::blend::encode_parts`]) |
//! | `{st:b:s}:bs:NAME` | string | what blend NAME's set was built from ([`crate::blend::built_from`]) |
//! | `{sg:b:g}:snap:P` | string | group g's merged TOP-K snapshot of P |
//! | `{sx:b}:snap:P` | string | the global TOP-K of P (an encoding's key; not stored) |
//!
//! For example board `global` of tenant `public` keeps shard 17's `all` set
//! at `{st:global:17}:z:all`, board `videos` of tenant `acme` at
//! `{st:acme.videos:17}:z:all`.
//!
//! Keys of a closed period (`:z:P`, `:f:P`, `:t:P`, `:v:P`, `:snap:P`) expire at the
//! period's end plus the board's `closed_retention`.
//!
//! Tenant ids and board names cannot hold `{`, `}`, `:` or `.`, so tags
//! never collide, across boards or across tenants.
//!
//! Before periods (releases up to wave 1) the tag was `{st:b:all:s}` and
//! keys had no `:P` suffix; that layout is not read any more.

use crate::board::Board;

/// The catalog of boards created at run time: a hash, board name ->
/// definition (its own slot; read by every gateway and agent each
/// refresh).
pub const CATALOG: &str = "{standings-catalog}:boards";

/// Weights set at run time (`PUT /v1/admin/boards/{b}/weights`): a hash,
/// board storage name -> [`crate::events::Weights::to_json`], in the
/// catalog's slot and read with it each refresh.
pub const WEIGHTS: &str = "{standings-catalog}:weights";

/// Which snapshot: a shard's or a group's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One shard's TOP-K.
    Shard(u32),
    /// The merged TOP-K of one group of shards.
    Group(u32),
    /// The gateway's merge of every group (never stored, only encoded).
    Global,
}

/// The hash tag shared by every key of one shard, braces included; for a
/// board fed by `target` events, the tenant's likes tag followed by
/// `:b:STORAGE` ([`likes_tag`]; the `b` keeps a board named like a likes key, `e` or `lc`, from sharing its keys), so the board's shard shares the slot of the
/// like state of its members.
pub fn shard_tag(board: &Board, shard: u32) -> String {
    if board.fed_by_target() {
        return format!(
            "{{sl:{}:{}}}:b:{}",
            board.tenant,
            shard,
            board.storage_name()
        );
    }
    format!("{{st:{}:{}}}", board.storage_name(), shard)
}

/// The hash tag of one shard of a tenant's likes space, braces included:
/// `{sl:TENANT:SHARD}`. Every key of the like state, counts, dedup records
/// and event stream of the targets in that shard carries it, and so do
/// the shards of the tenant's target-fed boards; the actor's list and
/// the owner's total live under the actor's and the owner's shard of
/// the same space.
///
/// | key | type | what | bytes per like |
/// | --- | --- | --- | --- |
/// | `{sl:t:s}:ls:LEN:TARGET:ACTOR` | string | the like state, `l` or `d` (absent: none); one small key per standing like, never one big key per target | 190 to 199 while it stands |
/// | `{sl:t:s}:lc:TARGET` | hash | `l` likes, `d` dislikes (a field at 0 is deleted) | 6 to 7 (20 likes per target) |
/// | `{sl:t:s}:e:ID` | string | dedup record of an event id: `"<digest hex> <outcome>"`, expiring after `events.dedup_ttl` | 175 per event, for `dedup_ttl` |
/// | `{sl:t:s}:cd:LEN:TARGET:ACTOR` | string | the cooldown of a like action, expiring after `likes.cooldown` | 120 (`MEMORY USAGE`), for `cooldown` |
/// | `{sl:t:s}:x` | stream | the shard's applied events, read by the agents' consumer group `standings` | 90 per entry, until trimmed (~100,000 per shard) |
/// | `{sl:t:s}:al:ACTOR` | sorted set | the actor's liked targets by time (actor's shard) | 28 to 38 per entry up to 128 entries, 107 past them (`MEMORY USAGE` of 200) |
/// | `{sl:t:s}:ow:OWNER` | string (int) | likes the owner's targets hold now (owner's shard) | under 2 (200 likes per owner) |
/// | `{sl:t:s}:f:ID` | string | the consumer's record that event ID was applied in this (actor's or owner's) shard: `:f:ID:a` and `:f:ID:o` | 287 for both, for `dedup_ttl` |
///
/// The bytes are `used_memory` per like on the test cluster (Redis 7.0.15,
/// jemalloc, cluster mode, 3 masters), measured by
/// `measure_memory_per_like` in `core/tests/redis_cluster.rs` over 100,000
/// likes of distinct pairs with ids like `user:1000000` and
/// `video:5000000` (a 46-byte state key; `MEMORY USAGE` 152), 2,000 actors
/// of 50 likes and 5,000 targets of 20: each kind of key deleted in turn.
/// A standing like costs about 235 bytes for good and about 460 more for
/// `dedup_ttl`; each byte more of id costs about one byte more. The
/// `RedisStore` module docs have the whole table.
pub fn likes_tag(tenant: &str, shard: u32) -> String {
    format!("{{sl:{tenant}:{shard}}}")
}

/// `{st:STORAGE:SHARD}`, `suffix` and then `period`, in one allocation sized
/// up front: a rank fans out over every shard, so each request builds one
/// key per shard (with `format!` over [`shard_tag`], two allocations and
/// their regrowth were a visible share of the gateway's time).
fn shard_key(board: &Board, shard: u32, suffix: &str, period: &str) -> String {
    use std::fmt::Write;
    let name = board.storage_name();
    let mut key = String::with_capacity(2 * name.len() + period.len() + suffix.len() + 16);
    if board.fed_by_target() {
        let _ = write!(
            key,
            "{{sl:{}:{shard}}}:b:{name}{suffix}{period}",
            board.tenant
        );
    } else {
        let _ = write!(key, "{{st:{name}:{shard}}}{suffix}{period}");
    }
    key
}

/// The sorted set of `board.period` in a shard: `:z:` on a `shared`
/// board, `:f:` on a `first_achiever` one (whose members have other names).
pub fn shard_zset(board: &Board, shard: u32) -> String {
    let infix = match board.ties {
        crate::types::Ties::Shared => ":z:",
        crate::types::Ties::FirstAchiever => ":f:",
    };
    shard_key(board, shard, infix, &board.period)
}

/// The ties of `board.period` in a shard, on a `first_achiever` board:
/// member -> the 16 digits of its tie, which with the member make its name
/// in [`shard_zset`] ([`crate::types::stored_name`]).
pub fn shard_ties(board: &Board, shard: u32) -> String {
    shard_key(board, shard, ":t:", &board.period)
}

/// The version counter of `board.period` in a shard.
pub fn shard_version(board: &Board, shard: u32) -> String {
    shard_key(board, shard, ":v:", &board.period)
}

/// The prefix of a shard's idempotency records (`LEN:MEMBER:KEY` follows,
/// see the table above).
///
/// One keyed record, measured on the test cluster (Redis 7.0.15, jemalloc,
/// cluster mode) with the key `{st:global:all:67}:i:11:user:123456:` and a
/// 36-byte UUID (72 bytes in all; an 11-byte member) holding
/// `"750e2e4e4fe088ae 1234.5"` (23 bytes): `MEMORY USAGE` answers 168 bytes
/// (152 for the previous release's score-only value), and 100,000 such
/// records added 228.7 bytes each to `used_memory`, which also counts the
/// TTL's entry in the expires table and the tables' slack. Each byte more
/// of member or key costs about one byte more per record.
pub fn shard_idempotency_prefix(board: &Board, shard: u32) -> String {
    format!("{}:i:", shard_tag(board, shard))
}

/// The hash of a shard's member metadata (member -> meta text).
pub fn shard_meta(board: &Board, shard: u32) -> String {
    shard_key(board, shard, ":m", "")
}

/// The audit stream of a shard.
pub fn shard_audit(board: &Board, shard: u32) -> String {
    format!("{}:a", shard_tag(board, shard))
}

/// Where a snapshot of `scope` of `board.period` is stored.
pub fn snapshot(board: &Board, scope: Scope) -> String {
    match scope {
        Scope::Shard(s) => format!("{}:snap:{}", shard_tag(board, s), board.period),
        Scope::Group(g) => format!(
            "{{sg:{}:{}}}:snap:{}",
            board.storage_name(),
            g,
            board.period
        ),
        Scope::Global => format!("{{sx:{}}}:snap:{}", board.storage_name(), board.period),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::BoardName;

    #[test]
    fn shard_keys_share_one_tag() {
        let b = Board::new(BoardName::new("global").unwrap());
        let tag = "{st:global:17}";
        for key in [
            shard_zset(&b, 17),
            shard_version(&b, 17),
            shard_idempotency_prefix(&b, 17),
            shard_audit(&b, 17),
            shard_meta(&b, 17),
            snapshot(&b, Scope::Shard(17)),
        ] {
            assert!(key.starts_with(tag), "{key}");
        }
        assert_eq!(snapshot(&b, Scope::Group(3)), "{sg:global:3}:snap:all");
        assert_eq!(shard_zset(&b, 17), "{st:global:17}:z:all");
        let daily = b.at("daily/2026-12-01");
        assert_eq!(shard_zset(&daily, 2), "{st:global:2}:z:daily/2026-12-01");
        assert_eq!(shard_version(&daily, 2), "{st:global:2}:v:daily/2026-12-01");
    }

    /// Pinned: a public board's keys are what they were before tenants (the
    /// data already stored stays reachable), a tenant board's carry
    /// `TENANT.BOARD`.
    #[test]
    fn keys_of_public_and_tenant_boards() {
        let name = |s: &str| BoardName::new(s).unwrap();
        let public = Board::new(name("global"));
        assert_eq!(shard_tag(&public, 17), "{st:global:17}");
        assert_eq!(shard_zset(&public, 17), "{st:global:17}:z:all");
        assert_eq!(shard_version(&public, 17), "{st:global:17}:v:all");
        assert_eq!(shard_idempotency_prefix(&public, 17), "{st:global:17}:i:");
        assert_eq!(shard_audit(&public, 17), "{st:global:17}:a");
        assert_eq!(shard_meta(&public, 17), "{st:global:17}:m");
        assert_eq!(
            snapshot(&public, Scope::Shard(17)),
            "{st:global:17}:snap:all"
        );
        assert_eq!(snapshot(&public, Scope::Group(3)), "{sg:global:3}:snap:all");
        assert_eq!(snapshot(&public, Scope::Global), "{sx:global}:snap:all");

        let videos = Board::new(name("videos")).in_tenant(name("acme"));
        assert_eq!(shard_tag(&videos, 17), "{st:acme.videos:17}");
        assert_eq!(shard_zset(&videos, 17), "{st:acme.videos:17}:z:all");
        assert_eq!(shard_version(&videos, 17), "{st:acme.videos:17}:v:all");
        assert_eq!(
            shard_idempotency_prefix(&videos, 17),
            "{st:acme.videos:17}:i:"
        );
        assert_eq!(shard_audit(&videos, 17), "{st:acme.videos:17}:a");
        let daily = videos.at("daily/2026-12-01");
        assert_eq!(
            shard_zset(&daily, 17),
            "{st:acme.videos:17}:z:daily/2026-12-01"
        );
        assert_eq!(
            snapshot(&daily, Scope::Shard(17)),
            "{st:acme.videos:17}:snap:daily/2026-12-01"
        );
        assert_eq!(
            snapshot(&videos, Scope::Group(3)),
            "{sg:acme.videos:3}:snap:all"
        );
        assert_eq!(
            snapshot(&videos, Scope::Global),
            "{sx:acme.videos}:snap:all"
        );
    }

    /// A target-fed board's shard shares its tenant's likes slot; its keys
    /// still name the board, so two such boards share no key.
    #[test]
    fn target_fed_boards_live_in_the_likes_slot() {
        use crate::events::{EventSource, Feed, Weights};
        let name = |s: &str| BoardName::new(s).unwrap();
        let mut videos = Board::new(name("videos")).in_tenant(name("acme"));
        videos.source = Some(EventSource {
            feed: Feed::Target,
            weights: Weights::default(),
        });
        assert_eq!(shard_tag(&videos, 17), "{sl:acme:17}:b:acme.videos");
        assert_eq!(shard_zset(&videos, 17), "{sl:acme:17}:b:acme.videos:z:all");
        // `:b:` keeps a board named `e` or `lc` apart from the likes keys.
        assert_eq!(likes_tag("acme", 17), "{sl:acme:17}");
        videos.source.as_mut().unwrap().feed = Feed::Actor;
        assert_eq!(shard_tag(&videos, 17), "{st:acme.videos:17}");
    }
}
