//! The Lua scripts the store runs on the cluster, their KEYS and ARGV, and
//! the limit that follows from how Lua formats numbers.
//!
//! Each script lives in `.lua` files so that it can be read and linted as
//! Lua; `include_str!` puts their exact bytes into the constants, so a
//! script's SHA1 (what `EVALSHA` sends) is that of its text. The write,
//! blend and events scripts share a head, `periods.lua` (the `#!lua`
//! shebang, the store's clock, the choice of current periods, blend parts
//! resolved and rebuilt), which is prepended to `write.lua`, `blend.lua`
//! and `events.lua`; the write and events scripts also share `move.lua`,
//! one board's shard moved for one member (open the board: periods and
//! blends; plan the move: every period's new score, range-checked; commit
//! it: sets, versions, expiry, blends), so an event moves a target-fed
//! board exactly as an `incr` write does. Scores
//! leave the scripts as `string.format('%.17g', x)` text, see the module
//! doc of [`super`].
//!
//! # Keys
//!
//! Every key of a shard carries the tag `{st:STORAGE:SHARD}` (the board's
//! storage name, which may hold a `.` but never a brace), or for a board
//! fed by target events `{sl:TENANT:SHARD}:b:STORAGE` (the tenant's likes
//! slot, see [`crate::keyspace::shard_tag`]), and the scripts cut it from
//! a key of known suffix (the audit stream's `:a`, a blend's `:z:NAME`),
//! never from the braces alone. Keys whose names do not depend on the
//! clock are passed in `KEYS` (the audit stream, the idempotency record and
//! each blend's four keys); the keys of periods (`:z:P`, `:v:P`, for `all`
//! too) are built in the script from the tag and the period id it picked,
//! since which period is current is only known there. Redis 7 allows a
//! script (with a shebang) to touch keys it did not declare as long as they
//! are in the slot of the ones it did.
//!
//! # The clock
//!
//! Which period of a kind is current is decided by the store's clock
//! (`TIME` on the node that owns the shard), so that every gateway writes a
//! shard's roll-over at the same instant. The gateway sends, for each kind
//! of the board, four consecutive periods around ITS clock's current period
//! p: the ids of p-2, p-1, p and p+1, the starts of p-1, p and p+1 and the
//! end of p+1 (ms since the Unix epoch; `inf`/`-inf` where the calendar
//! has none). The script picks the one of p-1, p, p+1 that holds the
//! store's time, whose previous is then known too (for `/previous` blend
//! parts). A store time outside [start of p-1, end of p+1) means the
//! gateway's clock is off by more than a period: the script writes nothing
//! and answers `{'skew', kind, store ms}`, which is
//! [`crate::store::StoreError::Unavailable`]. The kind `all` is sent as
//! `all` alone: its one period, `all`, is always current and never
//! expires.
//!
//! A period descriptor in ARGV is therefore `all`, or these 9 entries:
//! kind (as `PeriodKind` displays it), id p-2, id p-1, start p-1, id p,
//! start p, id p+1, start p+1, end p+1.

/// The counts script: the counts of many shards on ONE node for many probe
/// scores, in one call (a lookup of a list of members ranks every member
/// with one call per node instead of two commands per shard and member).
///
/// `KEYS`: 1 the first shard's sorted set, which routes the call to its
/// node. `ARGV`: 1 the probe count n; 2..n+1 each probe score as an
/// exclusive bound, `(SCORE`; then the sorted sets of the other shards of
/// that node. Declared keys must share one slot, so the others go in
/// `ARGV`: `allow-cross-slot-keys` lets the script touch keys of other
/// slots as long as this node serves them; one that it does not serve
/// (the slot moved, or is migrating and the key is elsewhere) fails the
/// call with "non local key", and the caller counts that node's shards
/// again with plain commands, which redis-rs redirects.
///
/// Answers, for each set in order (KEYS[1] first): its `ZCARD`, then for
/// each probe the members above it and below it (`ZCOUNT (s +inf` and
/// `ZCOUNT -inf (s`); better and worse by the board's order.
pub const COUNTS_SCRIPT: &str = include_str!("counts.lua");

/// The write script: one call per write, every key in the shard's slot.
///
/// `KEYS`: 1 the audit stream `{st:b:s}:a`; then for each blend of the
/// board, in board order, its `:z:NAME`, `:v:NAME`, `:bp:NAME` and
/// `:bs:NAME`; last, only when the write has an idempotency key, the
/// record of (member, key).
///
/// `ARGV`: 1 member, 2 op, 3 value, 4 order (`desc`/`asc`, followed by
/// ` first_achiever` on such a board: its sets are `:f:P`, naming each
/// member by its tie's 16 digits and the member, with the tie in the hash
/// `:t:P`; a changed score takes the store's time as its tie), 5 idempotency
/// TTL in ms, 6 request id, 7 the gateway's time in ms (the audit record's
/// `at_ms`), 8 idempotency key (audit only), 9 audit MAXLEN, 10 the write's
/// [`crate::store::request_digest`] as 16 lowercase hex digits (1 to 10 as
/// in the release before periods), 11 the board's closed retention in ms,
/// 12 K the number of period kinds, 13 B the number of blends; from 14, K
/// period descriptors (see the module docs) in board order; then B texts,
/// each blend's parts from the board's config
/// ([`crate::blend::encode_parts`]); last (always `ARGV[#ARGV]`) the
/// write's meta ([`crate::Meta::as_str`]), empty for none.
///
/// In one atomic step: the idempotency check; the current period of each
/// kind by the store's clock; every period's new score (incr, set or best
/// by the board's order), all checked for range before any is written;
/// each blend's parts (`GET :bp:NAME`, else the config's) resolved to
/// period ids; then per period `ZADD` and `INCR :v:P`, and when that INCR
/// answers 1 (the period's first write in the shard), or a member new to
/// the set finds it without an expiry, `PEXPIREAT` of `:z:P` (`:f:P`,
/// `:t:P`) and `:v:P` at the period's end plus the retention (not for
/// `all`); per blend a rebuild when `:bs:NAME` is not what the parts
/// resolve to now ([`crate::blend::built_from`]), and, when a part is a
/// current period, the member's blend score recomputed as
/// [`crate::blend::weighted_sum`] does (`ZADD`, or `ZREM` when it has none)
/// and `INCR :v:NAME`; the meta (`HSET :m member meta`, only when the
/// write has one); the idempotency record; one audit record (`score`
/// is the first period's; `ix` is `id old new` per period, `-` for no old
/// score, what the rank index applies; events and removals write it too).
/// A board of `all` alone never reads the clock.
///
/// The idempotency record holds `"<digest hex> <score>"` and, on a board
/// with more than one period, `" <id>=<score>"` per period in board order,
/// set with the board's TTL (`PX`, `NX`). A repeat whose digest matches
/// answers the recorded outcome; one whose digest differs answers
/// `{'conflict'}` and writes nothing. A record of only `digest score`, or
/// of only a score (the release before digests, counted as matching so a
/// retry across a rolling upgrade is still a repeat), answers that score
/// for the first period by the store's clock.
///
/// Answers `{'applied', first score, id1, score1, id2, score2, ...}` or
/// `{'repeat', ...}` likewise, periods in board order; `{'conflict'}`;
/// `{'range'}` (beyond +-2^53 in some period; nothing written);
/// `{'skew', kind, store ms}` (see the module docs; nothing written); or
/// `{'badpart', blend key, part}` (a blend part names a kind the board does
/// not write, so no period id is known for it; nothing written). The
/// shebang makes Redis refuse the whole script up front when it is out of
/// memory, instead of failing at a write half way through.
pub const WRITE_SCRIPT: &str = concat!(
    include_str!("periods.lua"),
    include_str!("move.lua"),
    include_str!("write.lua")
);

/// The events script: a batch of behaviour events of one likes shard
/// `{sl:TENANT:SHARD}`, applied in order, each atomically (see
/// [`crate::events`] for the state machine, `events.lua` for the steps).
///
/// `KEYS`: 1 the shard's event stream `{sl:t:s}:x`; then for each board
/// fed by `target`, in the order of the boards in ARGV, its audit stream
/// (`{sl:t:s}:b:STORAGE:a`) and its blends' four keys each as for the write;
/// then for each event, 4 keys: its dedup record `:e:ID`, the pair's
/// cooldown `:cd:LEN:TARGET:ACTOR`, the pair's state `:ls:LEN:TARGET:ACTOR`
/// and the target's counts `:lc:TARGET` (see [`crate::keyspace::likes_tag`]).
///
/// `ARGV`: 1 dedup TTL in ms, 2 cooldown in ms (0: none), 3 event stream
/// MAXLEN, 4 audit MAXLEN, 5 the gateway's time in ms (the audit records'
/// `at_ms`), 6 NB the number of boards, 7 NE the number of events; then NB
/// boards, each: feed (`target`, `actor`, `owner`), storage name, `like`
/// weight, `dislike` weight, and for `target` also order (as for the write),
/// closed retention in ms, K, B, K period descriptors and B blend parts
/// texts as for the write; then NE events, each: id, [`crate::events::Event::digest`]
/// as 16 hex digits, type (`like`, `unlike`, `dislike`, `undislike` or a
/// counted type), actor, target, owner (empty: none), and for a counted
/// type NB weights, its weight on each board in board order.
///
/// Per event, with nothing written when it is refused: a dedup record
/// answers `repeat` with its recorded state (same digest) or `conflict`;
/// a like action whose pair's cooldown key exists answers `cooldown`;
/// the transition of the pair's state; each board's delta
/// ([`crate::events::Weights::delta`]: a like action that changes nothing
/// moves nothing, a counted type always moves by its weight) and every
/// target-fed board's move planned by `plan_move` (`range` past +-2^53).
/// Then: the cooldown (`SET PX`), the dedup record (`"<digest hex>
/// <state>"`, state `n`/`l`/`d` or `-` for a counted type, `PX` the TTL),
/// the pair's state (deleted at none) and the counts (`HINCRBY`, a field
/// at 0 deleted), each target-fed board's move committed as an `incr`
/// write's (every current period and blend, versions, expiry) with an
/// audit record (request id `event ID`), and, when the like count moved or
/// an actor- or owner-fed board has a nonzero delta, one `XADD` to the
/// shard's stream (`MAXLEN ~`) with fields `id`, `a` actor, `t` target,
/// `l` the like delta (-1, 0, 1), `at` the store's time in ms, `o` the
/// owner when there is one, and `b:STORAGE` the delta of each actor- or
/// owner-fed board (the weights of the call, so weights changed later do
/// not reach back).
///
/// Answers two entries per event, in order: a status (`applied`, `noop`,
/// `repeat`, `conflict`, `cooldown`, `range`) and a state code (`n`, `l`,
/// `d`, `-` for none known, empty when refused); or `{'skew', ...}` /
/// `{'badpart', ...}` as the write does, with nothing written for any
/// event.
pub const EVENTS_SCRIPT: &str = concat!(
    include_str!("periods.lua"),
    include_str!("move.lua"),
    include_str!("events.lua")
);

/// The take script of the event-stream consumer: the next entries of one
/// shard's stream for one consumer of the group.
///
/// `KEYS`: 1 the stream. `ARGV`: 1 group, 2 consumer, 3 COUNT, 4 the claim
/// idle time in ms. Asks `XPENDING` first: with nothing pending (the usual
/// poll) it answers new entries (`XREADGROUP ... >`) at once; else the
/// consumer's own pending entries (`XREADGROUP ... 0`) if it holds any,
/// else entries idle longer than the claim time (`XAUTOCLAIM`, empty while
/// another consumer holds them), so each stream is applied in order by one
/// holder at a time. Creates the group at id 0 only when `XPENDING` finds
/// none and the stream exists (`BUSYGROUP` ignored). Entries are `[id, [field, value, ...]]`; the fields of one
/// trimmed away since delivery are nil.
pub const FOLLOW_TAKE_SCRIPT: &str = include_str!("follow_take.lua");

/// The follow script: what one batch of stream entries changes in one
/// actor's or owner's shard.
///
/// `KEYS`: per op, its dedup record `{sl:t:s}:f:ID:a` (or `:o`) and the
/// actor's list `:al:ACTOR` (or the owner's total `:ow:OWNER`). `ARGV`:
/// 1 dedup TTL in ms, 2 the length of an actor's list, then per op: side
/// (`a`/`o`), like delta (-1/1), target, at ms. Per op whose dedup record
/// is new (`SET NX PX`): a like adds the target at `at` and trims the list
/// to the newest, an unlike removes it; the owner's total moves by the
/// delta and is deleted at 0 or below. Answers 1 (applied) or 0 (a repeat)
/// per op.
pub const FOLLOW_SCRIPT: &str = include_str!("follow.lua");

/// The lag script, read-only: entries of one shard's stream the group has
/// not applied.
///
/// `KEYS`: 1 the stream. `ARGV`: 1 group. Answers the group's `lag`
/// (`XINFO GROUPS`; counted with `XRANGE` past its last delivered id when
/// Redis cannot say) plus its pending count, the stream's length when the
/// group does not exist, 0 without a stream.
pub const LAG_SCRIPT: &str = include_str!("lag.lua");

/// The blend script: a shard's blends brought up to date with the store's
/// clock (`maintain`), or one blend given new parts (`set`).
///
/// `KEYS`: for each blend, its `:z:NAME`, `:v:NAME`, `:bp:NAME` and
/// `:bs:NAME` (`set`: one blend). `ARGV`: 1 mode (`maintain`/`set`), 2 K
/// the number of period kinds, 3 B the number of blends; from 4, K period
/// descriptors as for the write; then B parts texts: for `maintain` each
/// blend's config parts (used when `:bp:NAME` is absent), for `set` the new
/// parts.
///
/// `maintain` rebuilds each blend whose `:bs:NAME` differs from what its
/// parts resolve to now; `set` stores the parts in `:bp:NAME` and rebuilds
/// whatever `:bs:` holds. A rebuild is `ZUNIONSTORE` of the parts' sets
/// with their weights (folded two at a time, so sums add in part order),
/// `SET :bs:NAME` and `INCR :v:NAME`. Answers `{'rebuilt', count}`, or
/// `{'skew', ...}`/`{'badpart', ...}` as the write does, rebuilding
/// nothing.
pub const BLEND_SCRIPT: &str = concat!(include_str!("periods.lua"), include_str!("blend.lua"));

/// The remove script: a member out of every period and blend of one shard.
///
/// `KEYS`: 1 the shard's audit stream. `ARGV`: 1 member, 2 request id,
/// 3 time in ms, 4 audit MAXLEN, then period ids and blend names to try
/// besides those in the shard's index `{st:b:s}:periods` (a sorted set of
/// period id by expiry, `inf` for none, that the write script fills on
/// each period's first write in the shard). Drops expired index entries,
/// `ZREM`s the member from each set, bumps the version of each it was in,
/// deletes the member's meta (`HDEL :m`), and appends one audit record
/// with op `remove` when it was in any set or had meta. Answers how many
/// sets it was removed from, plus one when it had meta.
pub const REMOVE_SCRIPT: &str = include_str!("remove.lua");

/// The neighbours script, read-only: the anchor's place in one shard and up
/// to n entries on each side, in ascending (score, member bytes) order.
///
/// `KEYS`: 1 sorted set. `ARGV`: 1 anchor score, 2 anchor member, 3 n,
/// 4 (optional, default n) n for the side above the anchor, so a deep page
/// reads only the side it needs.
/// Answers `{below, above, card, down, up}`: `[0, below)` are the ascending
/// positions before the anchor, `[above, card)` after it (`above = below + 1`
/// when the anchor itself is in the shard with that score), `down` the n
/// entries before `below` and `up` the n (ARGV 4) from `above`, each ascending with
/// scores (`WITHSCORES`). Ties are placed by a binary search over the tied
/// index range comparing bytes with `string.byte`, because Lua's `<` on
/// strings follows the server's locale (`strcoll`), not Redis's byte order
/// (`place.lua`, shared with [`PLACES_SCRIPT`]).
pub const NEIGHBOURS_SCRIPT: &str = concat!(
    "#!lua flags=no-writes\n",
    include_str!("place.lua"),
    include_str!("neighbours.lua")
);

/// The places script, read-only and across slots (`allow-cross-slot-keys`,
/// Redis >= 7.0, like [`COUNTS_SCRIPT`]): where each of several anchors
/// sits in each of one node's shards, what ranks a `first_achiever` board
/// (a rank is a position there, not a count by score).
///
/// `KEYS`: 1 the first shard's sorted set (it routes the call). `ARGV`: 1
/// the number of anchors n, then n pairs of anchor score and name (a
/// stored name: tie digits and member), then the node's other sorted sets.
/// Answers per set, in order: `ZCARD`, then per anchor the entries after
/// it and the entries before it in ascending (score, name) order, the
/// anchor itself in neither (the same runs as [`COUNTS_SCRIPT`]'s, with
/// positions for scores).
pub const PLACES_SCRIPT: &str = concat!(
    "#!lua flags=no-writes,allow-cross-slot-keys\n",
    include_str!("place.lua"),
    include_str!("places.lua")
);

/// The entry script, read-only: one member's entry on a `first_achiever`
/// board, whose sorted sets name it by its tie and the member.
///
/// `KEYS`: 1 the period's sorted set, 2 its ties hash `:t:PERIOD`, 3 the
/// shard's meta hash. `ARGV`: 1 the member. Answers `{score, tie, meta}`,
/// each nil when absent (the tie's 16 digits as text).
pub const ENTRY_SCRIPT: &str = include_str!("entry.lua");

/// The top script, read-only: a shard's best entries and their metas in
/// one round trip.
///
/// `KEYS`: 1 the period's sorted set, 2 the shard's meta hash
/// `{st:b:s}:m`. `ARGV`: 1 the last index (k - 1), 2 `rev` for a desc
/// board, 3 the board's ties (`shared` or `first_achiever`, whose names
/// are a tie's 16 digits and the member, the metas' field). Answers `{entries, metas}`: `entries` as `ZRANGE ... WITHSCORES`,
/// `metas` one per entry (nil for none), or empty when the shard keeps no
/// meta at all.
pub const TOP_SCRIPT: &str = include_str!("top.lua");

/// The rank index's scan, read-only: one shard's audit stream position
/// and, in the same atomic step, its score counts per period (see
/// [`crate::store::index`]).
///
/// `KEYS`: 1 the shard's audit stream. `ARGV`: the sorted sets of the
/// periods to count. Answers `{'ok', store ms, last id ('0-0' for none),
/// entries-added, runs...}` with one `{score, count, ...}` array per set in
/// order (scores as Redis keeps them, best last), or `{'old'}` on a Redis
/// before 7.0, whose `XINFO STREAM` has no `entries-added`. The whole
/// sorted set is read in one step: fine at thousands of members per shard,
/// a pause of about a second at a million (docs/scale.md).
pub const INDEX_SCAN_SCRIPT: &str = include_str!("index_scan.lua");

/// The rank index's tail, read-only: the records of one shard's audit
/// stream after a position, as (id, `ix` text), or `{'gap'}` when some
/// were trimmed unread (the index then scans again).
///
/// `KEYS`: 1 the audit stream. `ARGV`: 1 the last id read, 2 the
/// stream's `entries-added` as of that id, 3 the most records to answer.
/// Answers `{'ok', id, ix, id, ix, ...}` (`ix` is `?` for a record
/// written without one, by a release before the index), `{'gap'}` or
/// `{'old'}`.
pub const INDEX_TAIL_SCRIPT: &str = include_str!("index_tail.lua");

/// Largest `n` sent to the neighbours script: Lua formats numbers passed to
/// `redis.call` with 14 significant digits, so indexes must stay below
/// 10^14; no shard holds anywhere near 10^12 members.
pub(super) const MAX_NEIGHBOURS: usize = 1_000_000_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_start_with_the_shebang_once() {
        for script in [WRITE_SCRIPT, BLEND_SCRIPT, EVENTS_SCRIPT] {
            assert!(script.starts_with("#!lua\n"));
            assert_eq!(script.matches("#!lua").count(), 1);
        }
        assert!(NEIGHBOURS_SCRIPT.starts_with("#!lua flags=no-writes\n"));
        assert!(TOP_SCRIPT.starts_with("#!lua flags=no-writes\n"));
        assert!(LAG_SCRIPT.starts_with("#!lua flags=no-writes\n"));
        assert!(INDEX_SCAN_SCRIPT.starts_with("#!lua flags=no-writes\n"));
        assert!(INDEX_TAIL_SCRIPT.starts_with("#!lua flags=no-writes\n"));
        for script in [FOLLOW_TAKE_SCRIPT, FOLLOW_SCRIPT] {
            assert!(script.starts_with("#!lua\n"));
        }
    }
}
