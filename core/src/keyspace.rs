//! Key names, shared by every backend so that operators see one layout.
//!
//! All keys of one shard carry the same Redis hash tag, `{st:BOARD:PERIOD:SHARD}`,
//! so they live in one cluster slot and a write is one atomic script:
//!
//! | key | type | what |
//! | --- | --- | --- |
//! | `{st:b:p:s}:z` | sorted set | member -> score |
//! | `{st:b:p:s}:v` | string (int) | shard version, bumped by every applied write |
//! | `{st:b:p:s}:i:LEN:MEMBER:KEY` | string | idempotency record: `"<digest hex> <score>"`, the first write's [`crate::store::request_digest`] (16 hex digits) and resulting score, with the board's TTL; scoped to (member, key). A record of only a score (previous release) matches any digest |
//! | `{st:b:p:s}:a` | stream | audit log of applied writes, trimmed `MAXLEN ~` |
//! | `{st:b:p:s}:snap` | string | the shard's TOP-K snapshot |
//! | `{sg:b:p:g}:snap` | string | group g's merged TOP-K snapshot |
//!
//! Board names cannot hold `{`, `}` or `:`, so tags never collide.

use crate::board::Board;

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

/// The hash tag shared by every key of one shard, braces included.
pub fn shard_tag(board: &Board, shard: u32) -> String {
    format!("{{st:{}:{}:{}}}", board.name, board.period, shard)
}

/// `{st:BOARD:PERIOD:SHARD}` and then `suffix`, in one allocation sized up
/// front: a rank fans out over every shard, so each request builds one key
/// per shard (with `format!` over [`shard_tag`], two allocations and their
/// regrowth were a visible share of the gateway's time).
fn shard_key(board: &Board, shard: u32, suffix: &str) -> String {
    use std::fmt::Write;
    let name = board.name.as_str();
    let mut key = String::with_capacity(name.len() + board.period.len() + suffix.len() + 16);
    let _ = write!(key, "{{st:{name}:{}:{shard}}}{suffix}", board.period);
    key
}

/// The sorted set of a shard.
pub fn shard_zset(board: &Board, shard: u32) -> String {
    shard_key(board, shard, ":z")
}

/// The version counter of a shard.
pub fn shard_version(board: &Board, shard: u32) -> String {
    shard_key(board, shard, ":v")
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

/// The audit stream of a shard.
pub fn shard_audit(board: &Board, shard: u32) -> String {
    format!("{}:a", shard_tag(board, shard))
}

/// Where a snapshot of `scope` is stored.
pub fn snapshot(board: &Board, scope: Scope) -> String {
    match scope {
        Scope::Shard(s) => format!("{}:snap", shard_tag(board, s)),
        Scope::Group(g) => format!("{{sg:{}:{}:{}}}:snap", board.name, board.period, g),
        Scope::Global => format!("{{sx:{}:{}}}:snap", board.name, board.period),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::BoardName;

    #[test]
    fn shard_keys_share_one_tag() {
        let b = Board::new(BoardName::new("global").unwrap());
        let tag = "{st:global:all:17}";
        for key in [
            shard_zset(&b, 17),
            shard_version(&b, 17),
            shard_idempotency_prefix(&b, 17),
            shard_audit(&b, 17),
            snapshot(&b, Scope::Shard(17)),
        ] {
            assert!(key.starts_with(tag), "{key}");
        }
        assert_eq!(snapshot(&b, Scope::Group(3)), "{sg:global:all:3}:snap");
    }
}
