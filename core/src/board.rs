//! A board as the stores and agents see it: its name, its periods and
//! blends, its order and how its members are spread over shards and groups.
//!
//! One `Board` value also addresses one of the board's periods
//! ([`Board::period`]): reads, versions and snapshots are of that period,
//! while a write moves the current period of every kind in
//! [`Board::periods`] and every blend at once. [`Board::at`] makes the value
//! for another period, cheaply (every field is shared).
//!
//! The shard function is part of the on-disk contract (a member must land on
//! the same shard forever, or its old score would be orphaned), so both
//! choices are spelled out here and pinned by tests:
//!
//! - `hash` (default): FNV-1a 64 of the member's UTF-8 bytes, mod shards.
//!   FNV-1a is a dozen lines in any language, so other tools can compute it.
//! - `numeric`: the member's trailing run of ASCII digits as a `u64`, mod
//!   shards (the seed design's `user_id mod shards`): `user:10086` is shard
//!   86 of 100. A member without trailing digits is refused on such a board.
//!
//! # Tenants and the storage name
//!
//! Every board belongs to a tenant ([`Board::tenant`], [`PUBLIC_TENANT`]
//! when none is configured), and tenant and board together name the
//! keyspace: every key and row a store writes is built from the board's
//! storage name ([`Board::storage_name`]), never from [`Board::name`]
//! alone, so boards of the same name in two tenants never touch each
//! other's data. The storage name is
//!
//! - exactly the board name for tenant `public`, so data written before
//!   tenants existed (all of it public) stays where it is in every store;
//! - `TENANT.BOARD` for any other tenant. `.` matches neither the tenant
//!   nor the board pattern, so `a.b` can only be board `b` of tenant `a`
//!   and never collides with a public board's name.
//!
//! It is computed once, by [`Board::new`] and [`Board::in_tenant`] (a
//! store builds a key per shard per request, so it must not be re-joined
//! each time), and kept in a field of an opaque type ([`StorageName`])
//! rather than a private field: Rust refuses struct-update syntax
//! (`Board { shards: 4, ..Board::new(name) }`) outside this crate on a
//! struct with a private field, and that syntax is how boards are built
//! everywhere. Its consequence: set the tenant with [`Board::in_tenant`],
//! never by assigning [`Board::tenant`] or overriding it (or
//! [`Board::name`]) in a struct update, which would leave the storage name
//! of the base board ([`Board::storage_name`] asserts this in debug
//! builds).

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::blend::Blend;
use crate::period::{Period, PeriodKind, Timezone};
use crate::types::{BoardName, InputCode, InvalidInput, MemberId, Op, Order, Ties};

/// The tenant of boards configured without one.
pub const PUBLIC_TENANT: &str = "public";

/// The string every storage key and row of a board is built from; see the
/// module docs. Only [`Board::new`] and [`Board::in_tenant`] make one from
/// a board (so it always matches the board's tenant and name), and
/// [`StorageName::parse`] from stored text. Cloning it is a counter bump.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageName(Arc<str>);

impl StorageName {
    /// The storage name of board `name` of `tenant`: the board name for
    /// [`PUBLIC_TENANT`], `tenant.name` otherwise.
    fn of(tenant: &BoardName, name: &BoardName) -> Self {
        if tenant.as_str() == PUBLIC_TENANT {
            Self(Arc::from(name.as_str()))
        } else {
            Self(Arc::from(format!("{tenant}.{name}")))
        }
    }

    /// Validates stored text as a storage name: one board-name-pattern part
    /// (a public board), or two joined by one `.` (tenant, board).
    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        let mut parts = text.splitn(2, '.');
        let first = parts.next().unwrap_or("");
        BoardName::new(first)?;
        if let Some(board) = parts.next() {
            BoardName::new(board)?;
        }
        Ok(Self(Arc::from(text)))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the storage name of board `name` of `tenant`,
    /// without allocating.
    fn is_of(&self, tenant: &BoardName, name: &BoardName) -> bool {
        if tenant.as_str() == PUBLIC_TENANT {
            &*self.0 == name.as_str()
        } else {
            self.0
                .strip_prefix(tenant.as_str())
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|rest| rest == name.as_str())
        }
    }
}

impl std::fmt::Display for StorageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How long a closed period is kept by default: a week.
pub const DEFAULT_CLOSED_RETENTION: Duration = Duration::from_secs(7 * 86_400);

/// How members map to shards; see the module docs for the exact functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShardBy {
    /// FNV-1a 64 of the member bytes.
    #[default]
    Hash,
    /// The member's trailing decimal digits.
    Numeric,
}

/// Everything a store, an agent or the gateway needs to know about one board.
#[derive(Debug, Clone, PartialEq)]
pub struct Board {
    /// The board's name, as in URLs.
    pub name: BoardName,
    /// The tenant that owns the board ([`PUBLIC_TENANT`] by default). Set
    /// it with [`Board::in_tenant`], which also sets the storage name.
    pub tenant: BoardName,
    /// What every key and row of the board is built from; read it with
    /// [`Board::storage_name`]. Set by [`Board::new`] and
    /// [`Board::in_tenant`] only (see the module docs for why it is a
    /// public field of an opaque type).
    pub storage: StorageName,
    /// The period this value addresses (a period id such as `all` or
    /// `daily/2026-12-01`, or a blend's name): what reads, versions and
    /// snapshots are of. Writes ignore it.
    pub period: Arc<str>,
    /// The period kinds a write moves, the first one the default of reads.
    pub periods: Arc<[PeriodKind]>,
    /// The zone whose wall clock decides hourly, daily, weekly and monthly
    /// boundaries.
    pub timezone: Timezone,
    /// How long a closed period is kept before its data expires.
    pub closed_retention: Duration,
    /// The blends every write keeps live.
    pub blends: Arc<[Blend]>,
    /// The periods around now, computed once per period instead of per
    /// write (shared by every clone; see [`Board::schedule`]).
    pub schedule: Arc<ScheduleCache>,
    /// Which scores rank first.
    pub order: Order,
    /// How equal scores rank: shared competition ranks, or first achiever
    /// first (see [`crate::types::Ties`]).
    pub ties: Ties,
    /// Number of shards the board's members are spread over.
    pub shards: u32,
    /// Number of groups; shard agents merge each group's shards.
    pub groups: u32,
    /// The shard function.
    pub shard_by: ShardBy,
    /// How many entries each snapshot (shard, group, global) keeps.
    pub top_k: usize,
    /// The op a write without `op` uses.
    pub default_op: Op,
    /// How long an idempotency key is remembered.
    pub idempotency_ttl: Duration,
    /// Where scores come from when the board is fed by behaviour events
    /// (`None`: direct writes only). A board fed by `target` keeps its
    /// shards in its tenant's likes slots (see [`crate::keyspace`]).
    pub source: Option<crate::events::EventSource>,
}

impl Board {
    /// A board with the defaults of the embedded example: 100 shards in 10
    /// groups, TOP-1000, descending, `incr`, hashed, keys kept a day.
    /// The board belongs to [`PUBLIC_TENANT`]; see [`Board::in_tenant`].
    pub fn new(name: BoardName) -> Self {
        let tenant = BoardName::new(PUBLIC_TENANT).expect("`public` is a valid tenant id");
        Self {
            storage: StorageName::of(&tenant, &name),
            name,
            tenant,
            period: Arc::from("all"),
            periods: Arc::from([PeriodKind::All]),
            timezone: Timezone::utc(),
            closed_retention: DEFAULT_CLOSED_RETENTION,
            blends: Arc::from([]),
            schedule: Arc::default(),
            order: Order::Desc,
            ties: Ties::Shared,
            shards: 100,
            groups: 10,
            shard_by: ShardBy::Hash,
            top_k: 1000,
            default_op: Op::Incr,
            idempotency_ttl: Duration::from_secs(86_400),
            source: None,
        }
    }

    /// The same board owned by `tenant`, with the storage name that goes
    /// with it; every other field is kept.
    pub fn in_tenant(self, tenant: BoardName) -> Board {
        Board {
            storage: StorageName::of(&tenant, &self.name),
            tenant,
            ..self
        }
    }

    /// The string every storage key and row of the board is built from:
    /// the board name for tenant `public`, `TENANT.BOARD` otherwise (see
    /// the module docs).
    pub fn storage_name(&self) -> &str {
        debug_assert!(
            self.storage.is_of(&self.tenant, &self.name),
            "board {} of tenant {} carries storage name {}: set the tenant with \
             Board::in_tenant, not a struct update",
            self.name,
            self.tenant,
            self.storage
        );
        self.storage.as_str()
    }

    /// Whether the board is fed by `target` events, so its shards share the
    /// tenant's likes slots.
    pub fn fed_by_target(&self) -> bool {
        self.source
            .as_ref()
            .is_some_and(|s| s.feed == crate::events::Feed::Target)
    }

    /// [`Board::storage_name`] as its own (cheaply cloned) value.
    pub fn storage(&self) -> &StorageName {
        debug_assert!(self.storage.is_of(&self.tenant, &self.name));
        &self.storage
    }

    /// The same board addressing `period` (a period id or a blend name);
    /// tenant and storage name are kept.
    pub fn at(&self, period: impl Into<Arc<str>>) -> Board {
        Board {
            period: period.into(),
            ..self.clone()
        }
    }

    /// The board's first period kind: what a read without `period=` means.
    pub fn first_kind(&self) -> PeriodKind {
        self.periods.first().copied().unwrap_or(PeriodKind::All)
    }

    /// The current period of each kind at `now_ms`, in the order of
    /// [`Board::periods`]: the periods a write at that instant moves.
    pub fn current_periods(&self, now_ms: i64) -> Vec<Period> {
        self.schedule(now_ms)
            .kinds
            .iter()
            .map(|w| w.current.clone())
            .collect()
    }

    /// The periods of every kind around `now_ms`: computed when the first
    /// call of a period comes and then shared until one of them ends, so a
    /// write does no calendar arithmetic (a `daily` period in a time zone
    /// costs a few microseconds to work out, which was most of an
    /// in-memory write).
    pub fn schedule(&self, now_ms: i64) -> Arc<Schedule> {
        self.schedule.get(self, now_ms)
    }

    /// The blend named `name`, if the board has one.
    pub fn blend(&self, name: &str) -> Option<&Blend> {
        self.blends.iter().find(|b| &*b.name == name)
    }

    /// When the data of period `id` expires, ms since the Unix epoch: its
    /// end plus the board's retention. `None` for what never expires
    /// (`all`, blends) and for text that is not a period id.
    pub fn expires_at_ms(&self, id: &str) -> Option<i64> {
        let period = Period::parse_id(id, &self.timezone).ok()?;
        let retention = i64::try_from(self.closed_retention.as_millis()).unwrap_or(i64::MAX);
        period.ends_ms.map(|end| end.saturating_add(retention))
    }

    /// The shard that holds `member`.
    pub fn shard_of(&self, member: &MemberId) -> Result<u32, InvalidInput> {
        let key = match self.shard_by {
            ShardBy::Hash => return Ok(hash_shard(member, self.shards)),
            ShardBy::Numeric => trailing_number(member.as_str()).ok_or_else(|| {
                InvalidInput::new(
                    InputCode::InvalidMember,
                    "member",
                    format!(
                        "board {} shards by number: member must end in a decimal id",
                        self.name
                    ),
                )
            })?,
        };
        Ok((key % u64::from(self.shards)) as u32)
    }

    /// The group that merges `shard`.
    pub fn group_of(&self, shard: u32) -> u32 {
        ((u64::from(shard) * u64::from(self.groups)) / u64::from(self.shards)) as u32
    }

    /// The shards of `group`: a contiguous block, the inverse of [`group_of`].
    ///
    /// [`group_of`]: Board::group_of
    pub fn shards_of_group(&self, group: u32) -> Range<u32> {
        let start = |g: u32| -> u32 {
            // Smallest s with s * G / S >= g, i.e. ceil(g * S / G).
            ((u64::from(g) * u64::from(self.shards)).div_ceil(u64::from(self.groups))) as u32
        };
        start(group)..start(group + 1)
    }

    /// All shards of the board.
    pub fn all_shards(&self) -> Vec<u32> {
        (0..self.shards).collect()
    }
}

/// The periods of one kind around an instant: the two before the current
/// one, the current one and the next.
#[derive(Debug, Clone, PartialEq)]
pub struct KindWindow {
    /// The kind.
    pub kind: PeriodKind,
    /// The period before `previous` (for `all`: `all`).
    pub earlier: Period,
    /// The last closed period (for `all`: `all`).
    pub previous: Period,
    /// The current period.
    pub current: Period,
    /// The next period (for `all`: `all`).
    pub next: Period,
}

/// Every kind's [`KindWindow`] of a board, valid for instants in
/// `[valid_from_ms, valid_until_ms)`: from the latest start to the
/// earliest end of the current periods.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// In the order of [`Board::periods`].
    pub kinds: Vec<KindWindow>,
    /// The first instant it holds for.
    pub valid_from_ms: i64,
    /// The first instant it no longer holds for.
    pub valid_until_ms: i64,
    /// The kinds and zone it was computed for (a board value built from
    /// another with other periods must not use its schedule).
    periods: Arc<[PeriodKind]>,
    timezone: Timezone,
}

impl Schedule {
    fn compute(board: &Board, now_ms: i64) -> Self {
        let tz = &board.timezone;
        let kinds: Vec<KindWindow> = board
            .periods
            .iter()
            .map(|&kind| {
                let [previous, current, next] = kind.window(tz, now_ms);
                let earlier = previous.previous(tz).unwrap_or_else(|| previous.clone());
                KindWindow {
                    kind,
                    earlier,
                    previous,
                    current,
                    next,
                }
            })
            .collect();
        let valid_from_ms = kinds
            .iter()
            .filter_map(|w| w.current.starts_ms)
            .max()
            .unwrap_or(i64::MIN);
        let valid_until_ms = kinds
            .iter()
            .filter_map(|w| w.current.ends_ms)
            .min()
            .unwrap_or(i64::MAX);
        Self {
            kinds,
            valid_from_ms,
            valid_until_ms,
            periods: board.periods.clone(),
            timezone: tz.clone(),
        }
    }

    fn holds(&self, board: &Board, now_ms: i64) -> bool {
        (self.valid_from_ms..self.valid_until_ms).contains(&now_ms)
            && Arc::ptr_eq(&self.periods, &board.periods)
            && self.timezone == board.timezone
    }

    /// The window of `kind`, if the board has that kind.
    pub fn window(&self, kind: PeriodKind) -> Option<&KindWindow> {
        self.kinds.iter().find(|w| w.kind == kind)
    }

    /// The id of the period blend part `part` reads: its kind's current
    /// period, or the previous one for `/previous`; `None` when the board
    /// has no such kind.
    pub fn part_id(&self, part: &crate::blend::BlendPart) -> Option<&Arc<str>> {
        self.window(part.kind).map(|w| {
            if part.previous {
                &w.previous.id
            } else {
                &w.current.id
            }
        })
    }
}

/// Where a board keeps its [`Schedule`]; shared by every clone of the
/// board, compared as always equal (it is a cache, not part of the board).
#[derive(Default)]
pub struct ScheduleCache(std::sync::RwLock<Option<Arc<Schedule>>>);

impl ScheduleCache {
    fn get(&self, board: &Board, now_ms: i64) -> Arc<Schedule> {
        let cached = self.0.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(schedule) = cached.filter(|s| s.holds(board, now_ms)) {
            return schedule;
        }
        let fresh = Arc::new(Schedule::compute(board, now_ms));
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(fresh.clone());
        fresh
    }
}

impl PartialEq for ScheduleCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for ScheduleCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScheduleCache")
    }
}

/// The hash shard function: FNV-1a 64 of the member id, mod `shards`.
/// Boards that shard by hash and every likes space use it, so a
/// target-fed board's member and that target's like state share a shard.
pub fn hash_shard(member: &MemberId, shards: u32) -> u32 {
    (fnv1a64(member.as_str().as_bytes()) % u64::from(shards.max(1))) as u32
}

/// FNV-1a, 64-bit: offset basis 0xcbf29ce484222325, prime 0x100000001b3.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The trailing run of ASCII digits of `s` as a number, if there is one that
/// fits a `u64`.
fn trailing_number(s: &str) -> Option<u64> {
    let digits = s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    s[s.len() - digits..].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(shards: u32, groups: u32) -> Board {
        Board {
            shards,
            groups,
            ..Board::new(BoardName::new("b").unwrap())
        }
    }

    fn m(s: &str) -> MemberId {
        MemberId::new(s).unwrap()
    }

    #[test]
    fn fnv_matches_published_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn hash_sharding_is_stable() {
        let b = board(100, 10);
        // Pinned: changing these would orphan every stored score.
        assert_eq!(
            b.shard_of(&m("user:10086")).unwrap(),
            (fnv1a64(b"user:10086") % 100) as u32
        );
        assert_eq!(
            b.shard_of(&m("a")).unwrap(),
            (0xaf63dc4c8601ec8c_u64 % 100) as u32
        );
    }

    #[test]
    fn numeric_sharding_uses_trailing_digits() {
        let b = Board {
            shard_by: ShardBy::Numeric,
            ..board(100, 10)
        };
        assert_eq!(b.shard_of(&m("user:10086")).unwrap(), 86);
        assert_eq!(b.shard_of(&m("7")).unwrap(), 7);
        assert_eq!(b.shard_of(&m("alice")).unwrap_err().field, "member");
        assert!(b.shard_of(&m("99999999999999999999999")).is_err());
    }

    #[test]
    fn the_schedule_is_shared_within_a_period_and_follows_the_clock() {
        let kinds: Arc<[PeriodKind]> =
            Arc::from(["all".parse().unwrap(), "every:10s".parse().unwrap()]);
        let b = Board {
            periods: kinds,
            ..board(4, 2)
        };
        let t = 1_764_597_615_123;
        let first = b.schedule(t);
        assert!(
            Arc::ptr_eq(&first, &b.schedule(t + 4_000)),
            "same period: cached"
        );
        assert!(
            Arc::ptr_eq(&first, &b.at("all").schedule(t)),
            "clones share it"
        );
        assert_eq!(&*first.kinds[1].current.id, "every:10s/1764597610");
        assert_eq!(&*first.kinds[1].previous.id, "every:10s/1764597600");
        assert_eq!(&*first.kinds[1].earlier.id, "every:10s/1764597590");
        assert_eq!(&*first.kinds[1].next.id, "every:10s/1764597620");
        let later = b.schedule(t + 5_000);
        assert_eq!(
            &*later.kinds[1].current.id, "every:10s/1764597620",
            "recomputed at the boundary"
        );
        let other = Board {
            periods: Arc::from(["daily".parse::<PeriodKind>().unwrap()]),
            ..b.clone()
        };
        assert_eq!(
            other.schedule(t).kinds[0].kind.to_string(),
            "daily",
            "not another board's"
        );
    }

    #[test]
    fn the_storage_name_joins_tenant_and_board() {
        let name = |s: &str| BoardName::new(s).unwrap();
        let public = board(4, 2);
        assert_eq!(public.tenant.as_str(), PUBLIC_TENANT);
        assert_eq!(public.storage_name(), "b", "public keeps the bare name");
        let acme = public.clone().in_tenant(name("acme"));
        assert_eq!(acme.storage_name(), "acme.b");
        assert_eq!((acme.shards, acme.groups), (4, 2), "other fields kept");
        let daily = acme.at("daily/2026-12-01");
        assert_eq!(daily.storage_name(), "acme.b", "at keeps the tenant");
        assert_eq!(daily.tenant.as_str(), "acme");
        let back = acme.in_tenant(name(PUBLIC_TENANT));
        assert_eq!(back.storage_name(), "b");
        assert_eq!(back, public);
        let updated = Board {
            shards: 8,
            ..Board::new(name("videos")).in_tenant(name("acme"))
        };
        assert_eq!(
            updated.storage_name(),
            "acme.videos",
            "struct update keeps it"
        );
    }

    #[test]
    fn storage_names_parse_as_one_or_two_parts() {
        for ok in ["global", "acme.videos", "a.b", "0-x_y.z"] {
            assert_eq!(StorageName::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "", ".", "a.", ".b", "a..b", "a.b.c", "A.b", "a.B", "a:b", "a{b",
        ] {
            assert!(StorageName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "Board::in_tenant")]
    fn a_tenant_set_by_struct_update_is_caught() {
        let b = Board {
            tenant: BoardName::new("acme").unwrap(),
            ..board(4, 2)
        };
        let _ = b.storage_name();
    }

    #[test]
    fn groups_partition_shards() {
        for (shards, groups) in [(100, 10), (100, 7), (5, 5), (1, 1), (10, 3)] {
            let b = board(shards, groups);
            let mut seen = Vec::new();
            for g in 0..groups {
                for s in b.shards_of_group(g) {
                    assert_eq!(b.group_of(s), g, "shard {s} of {shards}/{groups}");
                    seen.push(s);
                }
            }
            assert_eq!(seen, (0..shards).collect::<Vec<_>>());
        }
    }
}
