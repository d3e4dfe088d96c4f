//! The two Lua scripts the store runs on the cluster, and the limit that
//! follows from how Lua formats numbers.
//!
//! Each script lives in its own `.lua` file so that it can be read and
//! linted as Lua; `include_str!` puts its exact bytes into the constant, so
//! its SHA1 (what `EVALSHA` sends) is that of the file. Scores leave the
//! scripts as `string.format('%.17g', x)` text, see the module doc of
//! [`super`].

/// The write script: one call per write, all keys in the shard's slot.
///
/// `KEYS`: 1 sorted set, 2 version, 3 audit stream, 4 (optional) the
/// idempotency record of (member, key). `ARGV`: 1 member, 2 op, 3 value,
/// 4 order (`desc`/`asc`), 5 idempotency TTL in ms, 6 request id, 7 time
/// in ms, 8 idempotency key, 9 audit MAXLEN, 10 the write's
/// [`crate::store::request_digest`] as 16 lowercase hex digits (sent with
/// or without a key; read only with `KEYS[4]`).
///
/// The idempotency record holds `"<digest hex> <score>"`: the digest of the
/// first write and the score after it, set with the board's TTL (`PX`,
/// `NX`) in the same call that applies the write. A repeat whose digest
/// matches answers `{'repeat', first score}`; one whose digest differs
/// answers `{'conflict'}` and writes nothing. A record without a space holds
/// only a score, as the previous release wrote it: it counts as matching,
/// so that a retry across a rolling upgrade is still a repeat, not a
/// conflict.
///
/// Answers `{'applied', score}`, `{'repeat', first score}`, `{'conflict'}`
/// (the key was used with another op or value; nothing written) or
/// `{'range'}` (incr beyond +-2^53; nothing written). The shebang makes
/// Redis refuse the whole script up front when it is out of memory, instead
/// of failing at a write half way through.
pub const WRITE_SCRIPT: &str = include_str!("write.lua");

/// The neighbours script, read-only: the anchor's place in one shard and up
/// to n entries on each side, in ascending (score, member bytes) order.
///
/// `KEYS`: 1 sorted set. `ARGV`: 1 anchor score, 2 anchor member, 3 n.
/// Answers `{below, above, card, down, up}`: `[0, below)` are the ascending
/// positions before the anchor, `[above, card)` after it (`above = below + 1`
/// when the anchor itself is in the shard with that score), `down` the n
/// entries before `below` and `up` the n from `above`, each ascending with
/// scores (`WITHSCORES`). Ties are placed by a binary search over the tied
/// index range comparing bytes with `string.byte`, because Lua's `<` on
/// strings follows the server's locale (`strcoll`), not Redis's byte order.
pub const NEIGHBOURS_SCRIPT: &str = include_str!("neighbours.lua");

/// Largest `n` sent to the neighbours script: Lua formats numbers passed to
/// `redis.call` with 14 significant digits, so indexes must stay below
/// 10^14; no shard holds anywhere near 10^12 members.
pub(super) const MAX_NEIGHBOURS: usize = 1_000_000_000_000;
