//! Period arithmetic for boards that live in time: which period an instant
//! belongs to, where that period starts and ends, and the period's id.
//!
//! Period ids are part of the on-disk key layout (a board's keys carry the id,
//! so a new period starts from empty shards), so their text is exact and
//! pinned by the tests below:
//!
//! | kind       | id                      | meaning                                  |
//! |------------|-------------------------|------------------------------------------|
//! | `all`      | `all`                   | one period forever, no start, no end     |
//! | `hourly`   | `hourly/2026-12-01T13`  | local date and hour in the board's zone  |
//! | `daily`    | `daily/2026-12-01`      | local date                               |
//! | `weekly`   | `weekly/2026-W49`       | ISO week-year and ISO week (Monday first)|
//! | `monthly`  | `monthly/2026-12`       | local year and month                     |
//! | `every:D`  | `every:10s/1764597610`  | the period's start in Unix seconds       |
//!
//! # Local-clock periods (hourly, daily, weekly, monthly)
//!
//! Their boundaries follow the board's IANA time zone. A local-clock period is
//! the set of instants whose local wall-clock time falls in
//! `[the period's local start, the next period's local start)`. Its
//! `starts_ms` is the first instant of that local period and its `ends_ms` is
//! the `starts_ms` of the next period, so periods of a kind are contiguous and
//! never overlap. Concretely the "first instant" of a local start is:
//!
//! - its only occurrence, when the local time happens once;
//! - its first occurrence, when a clock change repeats it (a fold);
//! - the instant the clock jumps over it, when a clock change skips it (a
//!   gap). For a gap that begins exactly at the boundary, e.g. a midnight
//!   that does not exist, this is what jiff's `start_of_day` returns. For a
//!   boundary strictly inside a gap, jiff would pick an instant after the
//!   gap's end; we take the gap's end itself, so that the start of a period is
//!   never later than the start of the one after it.
//!
//! Consequences: in `America/New_York` the spring-forward day 2026-03-08 is
//! 23 hours and the fall-back day 2026-11-01 is 25 hours. At fall-back the
//! repeated hour 01:00-02:00 is one hourly period, `hourly/2026-11-01T01`, of
//! two real hours. At spring-forward the skipped hour 02 has no period at all:
//! `hourly/2026-03-08T01` ends where `hourly/2026-03-08T03` starts, and
//! `hourly/2026-03-08T02` is not a valid id.
//!
//! # Fixed-length periods (`every:D`)
//!
//! `start = floor(t / D) * D` in Unix time and `end = start + D`, whatever the
//! board's zone: they are aligned to the Unix epoch in UTC so that every
//! process computes the same boundaries without a zone. `D` is a whole number
//! of seconds from 1 s to 366 days, written as a positive integer and a unit
//! `s`, `m`, `h` or `d`. The canonical text uses the largest unit that divides
//! `D` evenly: `every:120s` is the same kind as `every:2m`, and both display
//! as `every:2m`. Ids always use the canonical text, so one period has one id.
//!
//! # Range
//!
//! Periods are supported from year 1 to the end of year 9999 (UTC), so that
//! every id has a four-digit year and every bound can be formatted by
//! [`format_ms`]. Instants are untrusted input, so nothing here panics:
//! [`PeriodKind::containing`] clamps instants to years 4..9996 (where a period
//! and its neighbours are always representable), and [`Period::previous`] and
//! [`Period::next`] return `None` past the edges.

use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;
use std::sync::Arc;

use jiff::civil::{Date, DateTime, ISOWeekDate, Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan};

/// A period kind, as named in config and in `period=` parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeriodKind {
    /// One period forever.
    All,
    /// Local hours.
    Hourly,
    /// Local days.
    Daily,
    /// Local ISO weeks, Monday to Sunday.
    Weekly,
    /// Local calendar months.
    Monthly,
    /// Fixed-length periods of this many seconds, aligned to the Unix epoch.
    /// Parsing accepts 1 s to 366 days; a longer length built directly works
    /// as long as its periods fit in the supported range.
    Every(NonZeroU64),
}

/// An IANA time zone, kept with its name (compared by name).
#[derive(Debug, Clone)]
pub struct Timezone {
    /// The canonical IANA name, as the bundled database spells it.
    name: Arc<str>,
    tz: TimeZone,
}

/// One period of one kind: its id and its bounds in ms since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// The kind this period is one of.
    pub kind: PeriodKind,
    /// The id, as in keys and URLs: `daily/2026-12-01`.
    pub id: Arc<str>,
    /// None only for `all`.
    pub starts_ms: Option<i64>,
    /// None only for `all`; exclusive.
    pub ends_ms: Option<i64>,
}

/// Why a period kind, id or zone was refused; the message is shown to users
/// (in HTTP 400 bodies and config errors), so it says what is wrong and what
/// is right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PeriodError(pub String);

/// The longest `every:` period: a leap year.
const MAX_EVERY_SECONDS: u64 = 366 * 86_400;

/// The supported range of period bounds: 0001-01-01T00:00:00Z ..=
/// 9999-12-30T00:00:00Z. The upper end stays a little short of jiff's
/// largest timestamp (9999-12-30T22:00:00Z, which leaves room for any
/// offset) so that every bound is representable and printable.
const SUPPORTED_LOW_MS: i64 = -62_135_596_800_000;
const SUPPORTED_HIGH_MS: i64 = 253_402_128_000_000;

/// Instants are clamped to 0004-01-01T00:00:00Z ..= 9996-01-01T00:00:00Z
/// before finding their period: three years inside the supported range, more
/// than twice the longest period (366 days) plus any zone offset, so the
/// containing period and both its neighbours are always representable.
const CLAMP_LOW_MS: i64 = -62_040_988_800_000;
const CLAMP_HIGH_MS: i64 = 253_276_070_400_000;

/// A local-clock period kind: the four kinds whose boundaries follow a zone.
#[derive(Debug, Clone, Copy)]
enum Clock {
    Hour,
    Day,
    Week,
    Month,
}

impl Clock {
    fn kind(self) -> PeriodKind {
        match self {
            Clock::Hour => PeriodKind::Hourly,
            Clock::Day => PeriodKind::Daily,
            Clock::Week => PeriodKind::Weekly,
            Clock::Month => PeriodKind::Monthly,
        }
    }

    /// The local start of the period whose local range holds `dt`.
    fn truncate(self, dt: DateTime) -> Option<DateTime> {
        let date = dt.date();
        let (date, hour) = match self {
            Clock::Hour => (date, dt.hour()),
            Clock::Day => (date, 0),
            Clock::Week => (date.iso_week_date().first_of_week().ok()?.date(), 0),
            Clock::Month => (date.first_of_month(), 0),
        };
        DateTime::new(date.year(), date.month(), date.day(), hour, 0, 0, 0).ok()
    }

    /// The local start of the next (or previous) period. Civil arithmetic:
    /// an hour after 01:00 is 02:00 even on a day when 02:00 is skipped.
    fn step(self, local: DateTime, forward: bool) -> Option<DateTime> {
        let span = match self {
            Clock::Hour => 1.hour(),
            Clock::Day => 1.day(),
            Clock::Week => 1.week(),
            Clock::Month => 1.month(),
        };
        if forward {
            local.checked_add(span).ok()
        } else {
            local.checked_sub(span).ok()
        }
    }

    /// The id of the period whose local start is `local`.
    fn id(self, local: DateTime) -> String {
        let (y, m, d, h) = (local.year(), local.month(), local.day(), local.hour());
        match self {
            Clock::Hour => format!("hourly/{y:04}-{m:02}-{d:02}T{h:02}"),
            Clock::Day => format!("daily/{y:04}-{m:02}-{d:02}"),
            Clock::Week => {
                let week = local.date().iso_week_date();
                format!("weekly/{:04}-W{:02}", week.year(), week.week())
            }
            Clock::Month => format!("monthly/{y:04}-{m:02}"),
        }
    }

    /// Reads the part of an id after `kind/` as a local start, checking only
    /// its shape and that it names a real calendar date, week or hour.
    fn parse_local(self, text: &str) -> Result<DateTime, String> {
        let (shape, example) = match self {
            Clock::Hour => ("YYYY-MM-DDTHH", "2026-12-01T13"),
            Clock::Day => ("YYYY-MM-DD", "2026-12-01"),
            Clock::Week => ("YYYY-Www", "2026-W49"),
            Clock::Month => ("YYYY-MM", "2026-12"),
        };
        let bad_shape = || format!("expected {shape}, e.g. {example}");
        let fields = match_shape(text, shape).ok_or_else(bad_shape)?;
        // One number per run of letters in the shape, each at most 9999.
        let field = |i: usize, default: u16| fields.get(i).copied().unwrap_or(default);
        let year = field(0, 0) as i16;
        if let Clock::Week = self {
            let week = field(1, 0) as i8;
            let monday = ISOWeekDate::new(year, week, Weekday::Monday).map_err(|_| {
                let weeks =
                    ISOWeekDate::new(year, 1, Weekday::Monday).map_or(52, |w| w.weeks_in_year());
                format!("{year:04} has no ISO week {week:02} (its weeks are 01 to {weeks})")
            })?;
            return Ok(monday.date().to_datetime(Time::midnight()));
        }
        let (month, day, hour) = (field(1, 1) as i8, field(2, 1) as i8, field(3, 0) as i8);
        let date = Date::new(year, month, day).map_err(|_| {
            let (what, written) = match self {
                Clock::Month => ("month", text),
                _ => ("date", text.get(..10).unwrap_or(text)),
            };
            format!("{written} is not a calendar {what}")
        })?;
        if hour > 23 {
            return Err(format!(
                "hour {hour:02} does not exist (hours are 00 to 23)"
            ));
        }
        Ok(date.to_datetime(Time::new(hour, 0, 0, 0).map_err(|_| bad_shape())?))
    }
}

/// Matches `text` against a shape such as `YYYY-MM-DDTHH`: each run of
/// letters from `YMDHw` is a fixed-width run of ASCII digits, every other
/// character must match exactly. Returns the numbers in order.
fn match_shape(text: &str, shape: &str) -> Option<Vec<u16>> {
    if text.len() != shape.len() || !text.is_ascii() {
        return None;
    }
    let mut fields = Vec::new();
    let mut current: Option<u16> = None;
    let mut last_letter = ' ';
    for (t, s) in text.bytes().zip(shape.chars()) {
        let is_field = matches!(s, 'Y' | 'M' | 'D' | 'H' | 'w');
        if is_field {
            if !t.is_ascii_digit() {
                return None;
            }
            let digit = u16::from(t - b'0');
            current = Some(match current {
                Some(n) if last_letter == s => n * 10 + digit,
                Some(n) => {
                    fields.push(n);
                    digit
                }
                None => digit,
            });
            last_letter = s;
        } else {
            if t != s as u8 {
                return None;
            }
            if let Some(n) = current.take() {
                fields.push(n);
            }
            last_letter = ' ';
        }
    }
    fields.extend(current);
    Some(fields)
}

/// The first instant whose local time is at or past `local` (see the module
/// docs): its only or first occurrence, or the end of the gap that skips it.
fn first_instant(tz: &TimeZone, local: DateTime) -> Option<Timestamp> {
    match tz.to_ambiguous_timestamp(local).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(local).ok(),
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(local).ok(),
        AmbiguousOffset::Gap { after, .. } => {
            // With the later offset, `local` names an instant just before the
            // gap; the next transition is where the clock jumps over it.
            let before_gap = after.to_timestamp(local).ok()?;
            tz.following(before_gap).next().map(|t| t.timestamp())
        }
    }
}

/// A period from its bounds, or None if it leaves the supported range.
fn bounded(kind: PeriodKind, id: String, starts_ms: i64, ends_ms: i64) -> Option<Period> {
    (SUPPORTED_LOW_MS <= starts_ms && ends_ms <= SUPPORTED_HIGH_MS).then(|| Period {
        kind,
        id: Arc::from(id),
        starts_ms: Some(starts_ms),
        ends_ms: Some(ends_ms),
    })
}

/// The local-clock period holding the instant `at_ms`, or None outside the
/// supported range.
fn clock_period(clock: Clock, tz: &TimeZone, at_ms: i64) -> Option<Period> {
    let at = Timestamp::from_millisecond(at_ms).ok()?;
    let mut local = clock.truncate(tz.to_datetime(at))?;
    let mut start = first_instant(tz, local)?;
    // Usually the first pass returns. More passes happen when a clock change
    // makes a period empty (its local start is skipped along with the next
    // one's) or when the clock is set back across a boundary, so the local
    // time of `at` repeats a period that has already ended. Both move
    // forward; the bound only guards against a corrupt zone.
    for _ in 0..1000 {
        let next_local = clock.step(local, true)?;
        let end = first_instant(tz, next_local)?;
        if at < end {
            if start > at {
                return None;
            }
            return bounded(
                clock.kind(),
                clock.id(local),
                start.as_millisecond(),
                end.as_millisecond(),
            );
        }
        local = next_local;
        start = end;
    }
    None
}

/// The `every:` period of `seconds` holding `at_ms`. i128 so that a kind
/// built directly with an out-of-spec length cannot overflow.
fn every_period(seconds: NonZeroU64, at_ms: i64) -> Option<Period> {
    let len_ms = i128::from(seconds.get()) * 1000;
    let start = i128::from(at_ms).div_euclid(len_ms) * len_ms;
    let starts_ms = i64::try_from(start).ok()?;
    let ends_ms = i64::try_from(start + len_ms).ok()?;
    let id = format!(
        "{}/{}",
        PeriodKind::Every(seconds),
        starts_ms.div_euclid(1000)
    );
    bounded(PeriodKind::Every(seconds), id, starts_ms, ends_ms)
}

fn all_period() -> Period {
    Period {
        kind: PeriodKind::All,
        id: Arc::from("all"),
        starts_ms: None,
        ends_ms: None,
    }
}

impl PeriodKind {
    fn clock(self) -> Option<Clock> {
        match self {
            PeriodKind::Hourly => Some(Clock::Hour),
            PeriodKind::Daily => Some(Clock::Day),
            PeriodKind::Weekly => Some(Clock::Week),
            PeriodKind::Monthly => Some(Clock::Month),
            PeriodKind::All | PeriodKind::Every(_) => None,
        }
    }

    /// The period holding `at_ms`, unclamped; None outside the supported range.
    fn period_at(self, tz: &TimeZone, at_ms: i64) -> Option<Period> {
        match self {
            PeriodKind::All => Some(all_period()),
            PeriodKind::Every(seconds) => every_period(seconds, at_ms),
            _ => clock_period(self.clock()?, tz, at_ms),
        }
    }

    /// The period of this kind that contains the instant `at_ms` in zone `tz`.
    /// Instants outside years 4..9996 are clamped into them (see the module
    /// docs), so this always answers.
    pub fn containing(self, tz: &Timezone, at_ms: i64) -> Period {
        let at_ms = at_ms.clamp(CLAMP_LOW_MS, CLAMP_HIGH_MS);
        self.period_at(&tz.tz, at_ms)
            // Not reached for parsed kinds: inside the clamped range every
            // zone of the bundled database resolves (the test
            // `every_zone_resolves_its_transitions` walks them all). A request
            // must not panic if a future database proves that wrong, so fall
            // back to UTC, whose arithmetic cannot fail there. Only an
            // `Every` built by hand with a length of millennia, whose periods
            // cannot fit in years 1..9999, gets the period that always exists.
            .or_else(|| self.period_at(&TimeZone::UTC, at_ms))
            .unwrap_or_else(all_period)
    }

    /// The current period and the two around it: [previous, current, next] of
    /// the instant (for `all`: three copies of the `all` period).
    pub fn window(self, tz: &Timezone, at_ms: i64) -> [Period; 3] {
        let current = self.containing(tz, at_ms);
        // Both neighbours exist inside the clamped range; the fallbacks only
        // keep this total (and cover `all`, which has no neighbours).
        let previous = current.previous(tz).unwrap_or_else(|| current.clone());
        let next = current.next(tz).unwrap_or_else(|| current.clone());
        [previous, current, next]
    }
}

impl FromStr for PeriodKind {
    type Err = PeriodError;

    fn from_str(s: &str) -> Result<Self, PeriodError> {
        Ok(match s {
            "all" => PeriodKind::All,
            "hourly" => PeriodKind::Hourly,
            "daily" => PeriodKind::Daily,
            "weekly" => PeriodKind::Weekly,
            "monthly" => PeriodKind::Monthly,
            _ => match s.strip_prefix("every:") {
                Some(length) => PeriodKind::Every(parse_every(s, length)?),
                None => {
                    return Err(PeriodError(format!(
                        "unknown period kind {s:?}: expected all, hourly, daily, weekly, monthly \
                         or every:<n><unit> with unit s, m, h or d (e.g. every:15m)"
                    )));
                }
            },
        })
    }
}

/// Reads the length of `every:<n><unit>` as seconds.
fn parse_every(kind: &str, length: &str) -> Result<NonZeroU64, PeriodError> {
    let bad = || {
        PeriodError(format!(
            "invalid period kind {kind:?}: expected every: followed by a positive whole number \
             and a unit s, m, h or d, e.g. every:10s or every:15m"
        ))
    };
    let split = length
        .len()
        .checked_sub(1)
        .filter(|&i| length.is_char_boundary(i))
        .ok_or_else(bad)?;
    let (number, unit) = length.split_at(split);
    let unit_seconds: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let too_long = || {
        PeriodError(format!(
            "period kind {kind:?} is too long: the longest is every:366d"
        ))
    };
    let count: u64 = number.parse().map_err(|_| too_long())?;
    let seconds = count.checked_mul(unit_seconds).ok_or_else(too_long)?;
    if seconds > MAX_EVERY_SECONDS {
        return Err(too_long());
    }
    NonZeroU64::new(seconds).ok_or_else(|| {
        PeriodError(format!(
            "period kind {kind:?} is empty: the shortest is every:1s"
        ))
    })
}

impl fmt::Display for PeriodKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeriodKind::All => f.write_str("all"),
            PeriodKind::Hourly => f.write_str("hourly"),
            PeriodKind::Daily => f.write_str("daily"),
            PeriodKind::Weekly => f.write_str("weekly"),
            PeriodKind::Monthly => f.write_str("monthly"),
            PeriodKind::Every(seconds) => {
                let s = seconds.get();
                let (count, unit) = [(86_400, "d"), (3600, "h"), (60, "m")]
                    .into_iter()
                    .find(|&(unit, _)| s % unit == 0)
                    .map_or((s, "s"), |(unit, name)| (s / unit, name));
                write!(f, "every:{count}{unit}")
            }
        }
    }
}

impl Timezone {
    /// UTC, the default zone of a board.
    pub fn utc() -> Self {
        Self {
            name: Arc::from("UTC"),
            tz: TimeZone::UTC,
        }
    }

    /// An IANA zone from the bundled database: `UTC`, `Asia/Shanghai`,
    /// `America/New_York`. Lookup ignores case; the name kept is the
    /// database's spelling, so `america/new_york` equals `America/New_York`.
    pub fn parse(name: &str) -> Result<Self, PeriodError> {
        let unknown = || {
            PeriodError(format!(
                "unknown time zone {name:?}: expected an IANA time zone name such as UTC, \
                 Asia/Shanghai or America/New_York"
            ))
        };
        let tz = TimeZone::get(name).map_err(|_| unknown())?;
        // `Etc/Unknown` resolves to jiff's "unknown" zone, which has no IANA name.
        let canonical = tz.iana_name().ok_or_else(unknown)?;
        Ok(Self {
            name: Arc::from(canonical),
            tz,
        })
    }

    /// The zone's IANA name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl PartialEq for Timezone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Timezone {}

impl Period {
    /// The period just before this one of the same kind (None for `all`, and
    /// before year 1).
    pub fn previous(&self, tz: &Timezone) -> Option<Period> {
        match self.kind {
            PeriodKind::All => None,
            kind => kind.period_at(&tz.tz, self.starts_ms?.checked_sub(1)?),
        }
    }

    /// The period just after (None for `all`, and after year 9999).
    pub fn next(&self, tz: &Timezone) -> Option<Period> {
        match self.kind {
            PeriodKind::All => None,
            kind => kind.period_at(&tz.tz, self.ends_ms?),
        }
    }

    /// Parses an id as written in the module docs, in zone `tz`. Refuses
    /// anything that is not the canonical text of a real period: bad formats,
    /// `daily/2026-02-30`, `hourly/2026-03-08T02` in America/New_York (a
    /// skipped hour), week 53 of a year that has none, an `every:` id whose
    /// start is not aligned to its length, non-canonical kind text such as
    /// `every:120s/...` (canonical is `every:2m/...`), surrounding spaces.
    pub fn parse_id(id: &str, tz: &Timezone) -> Result<Period, PeriodError> {
        let invalid = |why: &str| PeriodError(format!("invalid period id {id:?}: {why}"));
        if id == "all" {
            return Ok(all_period());
        }
        let (kind_text, rest) = id
            .split_once('/')
            .ok_or_else(|| invalid("expected all or <kind>/<period>, e.g. daily/2026-12-01"))?;
        let kind: PeriodKind = kind_text.parse().map_err(|e: PeriodError| invalid(&e.0))?;
        let canonical = kind.to_string();
        if canonical != kind_text {
            return Err(invalid(&format!(
                "write the kind as {canonical}, not {kind_text}"
            )));
        }
        let out_of_range = || invalid("outside the supported range (years 0001 to 9999)");
        match kind {
            PeriodKind::All => Err(invalid("all has no /<period> part; the id is just all")),
            PeriodKind::Every(seconds) => {
                let start: i64 = rest
                    .parse()
                    .ok()
                    .filter(|s: &i64| s.to_string() == rest)
                    .ok_or_else(|| invalid("expected the period's start in Unix seconds, e.g. every:10s/1764597610"))?;
                let length = i64::try_from(seconds.get()).map_err(|_| out_of_range())?;
                if start.rem_euclid(length) != 0 {
                    let aligned = start.div_euclid(length) * length;
                    return Err(invalid(&format!(
                        "{canonical} periods start at multiples of {length} seconds since the Unix epoch; \
                         the period holding {start} is {canonical}/{aligned}"
                    )));
                }
                let start_ms = start.checked_mul(1000).ok_or_else(out_of_range)?;
                every_period(seconds, start_ms).ok_or_else(out_of_range)
            }
            _ => {
                let clock = kind.clock().ok_or_else(out_of_range)?;
                let local = clock.parse_local(rest).map_err(|why| invalid(&why))?;
                let start = first_instant(&tz.tz, local).ok_or_else(out_of_range)?;
                let period =
                    clock_period(clock, &tz.tz, start.as_millisecond()).ok_or_else(out_of_range)?;
                if *period.id != *id {
                    return Err(invalid(&format!(
                        "that local time does not exist in {} (a clock change skips it); \
                         the period at that instant is {}",
                        tz.name, period.id
                    )));
                }
                Ok(period)
            }
        }
    }

    /// Whether the period has ended by `now_ms` (never for `all`).
    pub fn is_closed(&self, now_ms: i64) -> bool {
        self.ends_ms.is_some_and(|ends| now_ms >= ends)
    }
}

/// Formats ms since the Unix epoch as RFC 3339 UTC with milliseconds:
/// `2026-12-01T00:00:00.000Z` (the shape of every timestamp in the API).
/// Instants outside years 0000..9999 saturate to the ends of that range, as
/// RFC 3339 has four-digit years; period bounds never reach them.
pub fn format_ms(ms: i64) -> String {
    const YEAR_0_MS: i64 = -62_167_219_200_000;
    // jiff's largest timestamp in whole ms: `from_millisecond` refuses the
    // sub-second tail of `Timestamp::MAX`, so stop at its second.
    let ms = ms.clamp(YEAR_0_MS, Timestamp::MAX.as_second() * 1000);
    // Never the fallback: the clamped range is inside jiff's.
    let ts = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
    format!("{ts:.3}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RFC 3339 literal as ms; jiff parses the literal, the value is ours.
    fn ms(rfc3339: &str) -> i64 {
        rfc3339.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn tz(name: &str) -> Timezone {
        Timezone::parse(name).unwrap()
    }

    fn kind(text: &str) -> PeriodKind {
        text.parse().unwrap()
    }

    fn every(seconds: u64) -> PeriodKind {
        PeriodKind::Every(NonZeroU64::new(seconds).unwrap())
    }

    /// Asserts a period's id and bounds, the bounds as RFC 3339 literals.
    #[track_caller]
    fn assert_period(p: &Period, id: &str, starts: &str, ends: &str) {
        assert_eq!(&*p.id, id);
        assert_eq!(p.starts_ms, Some(ms(starts)), "start of {id}");
        assert_eq!(p.ends_ms, Some(ms(ends)), "end of {id}");
    }

    fn hours(p: &Period) -> i64 {
        (p.ends_ms.unwrap() - p.starts_ms.unwrap()) / 3_600_000
    }

    fn err(id: &str, zone: &Timezone) -> String {
        Period::parse_id(id, zone).unwrap_err().0
    }

    #[test]
    fn range_constants_are_the_dates_they_claim() {
        assert_eq!(SUPPORTED_LOW_MS, ms("0001-01-01T00:00:00Z"));
        assert_eq!(SUPPORTED_HIGH_MS, ms("9999-12-30T00:00:00Z"));
        assert_eq!(CLAMP_LOW_MS, ms("0004-01-01T00:00:00Z"));
        assert_eq!(CLAMP_HIGH_MS, ms("9996-01-01T00:00:00Z"));
    }

    #[test]
    fn kinds_parse_and_display_canonically() {
        for (text, parsed, shown) in [
            ("all", PeriodKind::All, "all"),
            ("hourly", PeriodKind::Hourly, "hourly"),
            ("daily", PeriodKind::Daily, "daily"),
            ("weekly", PeriodKind::Weekly, "weekly"),
            ("monthly", PeriodKind::Monthly, "monthly"),
            ("every:10s", every(10), "every:10s"),
            ("every:90s", every(90), "every:90s"),
            ("every:120s", every(120), "every:2m"),
            ("every:2m", every(120), "every:2m"),
            ("every:15m", every(900), "every:15m"),
            ("every:60m", every(3600), "every:1h"),
            ("every:90m", every(5400), "every:90m"),
            ("every:2h", every(7200), "every:2h"),
            ("every:24h", every(86_400), "every:1d"),
            ("every:1d", every(86_400), "every:1d"),
            ("every:86400s", every(86_400), "every:1d"),
            ("every:366d", every(31_622_400), "every:366d"),
            ("every:1s", every(1), "every:1s"),
        ] {
            assert_eq!(kind(text), parsed, "{text}");
            assert_eq!(parsed.to_string(), shown, "{text}");
        }
        for bad in [
            "",
            "All",
            "Daily",
            " daily",
            "daily ",
            "day",
            "every",
            "every:",
            "every:s",
            "every:10",
            "every:0s",
            "every:0d",
            "every:-1s",
            "every:+1s",
            "every:1.5h",
            "every:1w",
            "every:10S",
            "every: 10s",
            "every:367d",
            "every:31622401s",
            "every:99999999999999999999s",
            "every:9999999999999999d",
            "every:1é",
            "every:é",
        ] {
            assert!(
                bad.parse::<PeriodKind>().is_err(),
                "{bad:?} should be refused"
            );
        }
        let e = "every:400d".parse::<PeriodKind>().unwrap_err().0;
        assert!(e.contains("every:400d") && e.contains("every:366d"), "{e}");
        let e = "weekl".parse::<PeriodKind>().unwrap_err().0;
        assert!(e.contains("\"weekl\"") && e.contains("every:15m"), "{e}");
        let e = "every:0s".parse::<PeriodKind>().unwrap_err().0;
        assert!(e.contains("every:1s"), "{e}");
    }

    #[test]
    fn zones_parse_by_iana_name() {
        assert_eq!(Timezone::utc().name(), "UTC");
        assert_eq!(tz("UTC"), Timezone::utc());
        assert_eq!(tz("utc"), Timezone::utc());
        assert_eq!(tz("Asia/Shanghai").name(), "Asia/Shanghai");
        assert_eq!(tz("america/new_york").name(), "America/New_York");
        assert_eq!(tz("america/new_york"), tz("America/New_York"));
        assert_ne!(tz("Asia/Shanghai"), tz("America/New_York"));
        for bad in [
            "Mars/Olympus",
            "",
            " UTC",
            "Etc/Unknown",
            "+08:00",
            "../etc/passwd",
        ] {
            let e = Timezone::parse(bad).unwrap_err().0;
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn utc_ids_and_bounds() {
        let utc = Timezone::utc();
        let at = ms("2026-12-01T13:45:10.123Z");
        let p = |k: &str| kind(k).containing(&utc, at);
        assert_period(
            &p("hourly"),
            "hourly/2026-12-01T13",
            "2026-12-01T13:00:00Z",
            "2026-12-01T14:00:00Z",
        );
        assert_period(
            &p("daily"),
            "daily/2026-12-01",
            "2026-12-01T00:00:00Z",
            "2026-12-02T00:00:00Z",
        );
        assert_period(
            &p("weekly"),
            "weekly/2026-W49",
            "2026-11-30T00:00:00Z",
            "2026-12-07T00:00:00Z",
        );
        assert_period(
            &p("monthly"),
            "monthly/2026-12",
            "2026-12-01T00:00:00Z",
            "2027-01-01T00:00:00Z",
        );
        let all = p("all");
        assert_eq!(
            all,
            Period {
                kind: PeriodKind::All,
                id: Arc::from("all"),
                starts_ms: None,
                ends_ms: None
            }
        );
        // The hour's first and last millisecond belong to it, the next one does not.
        let hourly = PeriodKind::Hourly;
        assert_eq!(
            &*hourly.containing(&utc, ms("2026-12-01T13:00:00Z")).id,
            "hourly/2026-12-01T13"
        );
        assert_eq!(
            &*hourly.containing(&utc, ms("2026-12-01T13:59:59.999Z")).id,
            "hourly/2026-12-01T13"
        );
        assert_eq!(
            &*hourly.containing(&utc, ms("2026-12-01T14:00:00Z")).id,
            "hourly/2026-12-01T14"
        );
        assert_eq!(
            &*hourly.containing(&utc, ms("2026-12-01T00:00:00Z")).id,
            "hourly/2026-12-01T00"
        );
        assert_eq!(
            &*hourly.containing(&utc, ms("2026-12-01T23:30:00Z")).id,
            "hourly/2026-12-01T23"
        );
    }

    #[test]
    fn shanghai_is_eight_hours_ahead_all_year() {
        let sh = tz("Asia/Shanghai");
        let at = ms("2026-12-01T05:30:00Z"); // 13:30 in Shanghai
        let p = |k: &str| kind(k).containing(&sh, at);
        assert_period(
            &p("hourly"),
            "hourly/2026-12-01T13",
            "2026-12-01T05:00:00Z",
            "2026-12-01T06:00:00Z",
        );
        assert_period(
            &p("daily"),
            "daily/2026-12-01",
            "2026-11-30T16:00:00Z",
            "2026-12-01T16:00:00Z",
        );
        assert_period(
            &p("weekly"),
            "weekly/2026-W49",
            "2026-11-29T16:00:00Z",
            "2026-12-06T16:00:00Z",
        );
        assert_period(
            &p("monthly"),
            "monthly/2026-12",
            "2026-11-30T16:00:00Z",
            "2026-12-31T16:00:00Z",
        );
        // Local midnight, not UTC midnight, divides the days.
        let daily = PeriodKind::Daily;
        assert_eq!(
            &*daily.containing(&sh, ms("2026-11-30T15:59:59.999Z")).id,
            "daily/2026-11-30"
        );
        assert_eq!(
            &*daily.containing(&sh, ms("2026-11-30T16:00:00Z")).id,
            "daily/2026-12-01"
        );
        // Summer is the same: no DST.
        assert_period(
            &daily.containing(&sh, ms("2026-07-01T00:00:00Z")),
            "daily/2026-07-01",
            "2026-06-30T16:00:00Z",
            "2026-07-01T16:00:00Z",
        );
        // A new year arrives in Shanghai while UTC is still in the old one.
        assert_period(
            &PeriodKind::Monthly.containing(&sh, ms("2026-12-31T20:00:00Z")),
            "monthly/2027-01",
            "2026-12-31T16:00:00Z",
            "2027-01-31T16:00:00Z",
        );
    }

    #[test]
    fn new_york_spring_forward_day_is_23_hours_and_skips_hour_02() {
        let ny = tz("America/New_York");
        let day = PeriodKind::Daily.containing(&ny, ms("2026-03-08T12:00:00Z"));
        assert_period(
            &day,
            "daily/2026-03-08",
            "2026-03-08T05:00:00Z",
            "2026-03-09T04:00:00Z",
        );
        assert_eq!(hours(&day), 23);

        let t00 = PeriodKind::Hourly.containing(&ny, ms("2026-03-08T05:30:00Z"));
        assert_period(
            &t00,
            "hourly/2026-03-08T00",
            "2026-03-08T05:00:00Z",
            "2026-03-08T06:00:00Z",
        );
        let t01 = t00.next(&ny).unwrap();
        assert_period(
            &t01,
            "hourly/2026-03-08T01",
            "2026-03-08T06:00:00Z",
            "2026-03-08T07:00:00Z",
        );
        let t03 = t01.next(&ny).unwrap();
        assert_period(
            &t03,
            "hourly/2026-03-08T03",
            "2026-03-08T07:00:00Z",
            "2026-03-08T08:00:00Z",
        );
        let t04 = t03.next(&ny).unwrap();
        assert_period(
            &t04,
            "hourly/2026-03-08T04",
            "2026-03-08T08:00:00Z",
            "2026-03-08T09:00:00Z",
        );
        assert_eq!(t03.previous(&ny).unwrap(), t01);

        let hourly = PeriodKind::Hourly;
        assert_eq!(hourly.containing(&ny, ms("2026-03-08T06:59:59.999Z")), t01);
        assert_eq!(hourly.containing(&ny, ms("2026-03-08T07:00:00Z")), t03);

        let e = err("hourly/2026-03-08T02", &ny);
        assert!(
            e.contains("America/New_York") && e.contains("hourly/2026-03-08T03"),
            "{e}"
        );
        // The same hour exists in UTC and Shanghai.
        assert!(Period::parse_id("hourly/2026-03-08T02", &Timezone::utc()).is_ok());
        assert!(Period::parse_id("hourly/2026-03-08T02", &tz("Asia/Shanghai")).is_ok());
    }

    #[test]
    fn new_york_fall_back_day_is_25_hours_and_hour_01_is_two_hours() {
        let ny = tz("America/New_York");
        let day = PeriodKind::Daily.containing(&ny, ms("2026-11-01T12:00:00Z"));
        assert_period(
            &day,
            "daily/2026-11-01",
            "2026-11-01T04:00:00Z",
            "2026-11-02T05:00:00Z",
        );
        assert_eq!(hours(&day), 25);

        let t00 = PeriodKind::Hourly.containing(&ny, ms("2026-11-01T04:00:00Z"));
        assert_period(
            &t00,
            "hourly/2026-11-01T00",
            "2026-11-01T04:00:00Z",
            "2026-11-01T05:00:00Z",
        );
        let t01 = t00.next(&ny).unwrap();
        assert_period(
            &t01,
            "hourly/2026-11-01T01",
            "2026-11-01T05:00:00Z",
            "2026-11-01T07:00:00Z",
        );
        assert_eq!(hours(&t01), 2);
        let t02 = t01.next(&ny).unwrap();
        assert_period(
            &t02,
            "hourly/2026-11-01T02",
            "2026-11-01T07:00:00Z",
            "2026-11-01T08:00:00Z",
        );
        assert_eq!(t02.previous(&ny).unwrap(), t01);
        assert_eq!(t01.previous(&ny).unwrap(), t00);

        // Both 01:30s, EDT (05:30Z) and EST (06:30Z), are in the one period.
        let hourly = PeriodKind::Hourly;
        assert_eq!(hourly.containing(&ny, ms("2026-11-01T05:30:00Z")), t01);
        assert_eq!(hourly.containing(&ny, ms("2026-11-01T06:30:00Z")), t01);
        assert_eq!(hourly.containing(&ny, ms("2026-11-01T06:59:59.999Z")), t01);
        assert_eq!(Period::parse_id("hourly/2026-11-01T01", &ny), Ok(t01));
    }

    #[test]
    fn a_boundary_inside_a_gap_starts_at_the_gap_end() {
        // Samoa skipped 2011-12-30: 2011-12-29T23:59:59-10:00 was followed by
        // 2011-12-31T00:00:00+14:00 (2011-12-30T10:00:00Z).
        let apia = tz("Pacific/Apia");
        let t23 = PeriodKind::Hourly.containing(&apia, ms("2011-12-30T09:30:00Z"));
        assert_period(
            &t23,
            "hourly/2011-12-29T23",
            "2011-12-30T09:00:00Z",
            "2011-12-30T10:00:00Z",
        );
        assert_period(
            &t23.next(&apia).unwrap(),
            "hourly/2011-12-31T00",
            "2011-12-30T10:00:00Z",
            "2011-12-30T11:00:00Z",
        );
        let day = PeriodKind::Daily.containing(&apia, ms("2011-12-30T09:30:00Z"));
        assert_period(
            &day,
            "daily/2011-12-29",
            "2011-12-29T10:00:00Z",
            "2011-12-30T10:00:00Z",
        );
        assert_period(
            &day.next(&apia).unwrap(),
            "daily/2011-12-31",
            "2011-12-30T10:00:00Z",
            "2011-12-31T10:00:00Z",
        );
        assert!(err("daily/2011-12-30", &apia).contains("daily/2011-12-31"));
        assert!(err("hourly/2011-12-30T05", &apia).contains("hourly/2011-12-31T00"));

        // Sao Paulo's 2015-10-18 began at 01:00 (midnight was skipped), as
        // jiff's start_of_day says: 01:00-02:00 is 03:00Z.
        let sp = tz("America/Sao_Paulo");
        let day = PeriodKind::Daily.containing(&sp, ms("2015-10-18T12:00:00Z"));
        assert_period(
            &day,
            "daily/2015-10-18",
            "2015-10-18T03:00:00Z",
            "2015-10-19T02:00:00Z",
        );
        assert_eq!(hours(&day), 23);
        assert_period(
            &day.previous(&sp).unwrap(),
            "daily/2015-10-17",
            "2015-10-17T03:00:00Z",
            "2015-10-18T03:00:00Z",
        );
        assert!(Period::parse_id("hourly/2015-10-18T00", &sp).is_err());
    }

    #[test]
    fn iso_week_53_and_week_years() {
        let utc = Timezone::utc();
        let w53 = Period::parse_id("weekly/2026-W53", &utc).unwrap();
        assert_period(
            &w53,
            "weekly/2026-W53",
            "2026-12-28T00:00:00Z",
            "2027-01-04T00:00:00Z",
        );
        // 2027-01-01 is in the ISO week-year 2026.
        assert_eq!(
            PeriodKind::Weekly.containing(&utc, ms("2027-01-01T12:00:00Z")),
            w53
        );
        assert_period(
            &w53.next(&utc).unwrap(),
            "weekly/2027-W01",
            "2027-01-04T00:00:00Z",
            "2027-01-11T00:00:00Z",
        );
        assert_period(
            &w53.previous(&utc).unwrap(),
            "weekly/2026-W52",
            "2026-12-21T00:00:00Z",
            "2026-12-28T00:00:00Z",
        );
        // 2025 has 52 weeks, and its last days are in 2026-W01.
        let e = err("weekly/2025-W53", &utc);
        assert!(
            e.contains("2025 has no ISO week 53") && e.contains("01 to 52"),
            "{e}"
        );
        let w01 = PeriodKind::Weekly.containing(&utc, ms("2025-12-29T00:00:00Z"));
        assert_period(
            &w01,
            "weekly/2026-W01",
            "2025-12-29T00:00:00Z",
            "2026-01-05T00:00:00Z",
        );
        assert_period(
            &w01.previous(&utc).unwrap(),
            "weekly/2025-W52",
            "2025-12-22T00:00:00Z",
            "2025-12-29T00:00:00Z",
        );
        // 2020 had a week 53 too.
        assert_period(
            &Period::parse_id("weekly/2020-W53", &utc).unwrap(),
            "weekly/2020-W53",
            "2020-12-28T00:00:00Z",
            "2021-01-04T00:00:00Z",
        );
        // Weeks start on Monday: Sunday 2026-12-06 is still W49.
        assert_eq!(
            &*PeriodKind::Weekly
                .containing(&utc, ms("2026-12-06T23:59:59Z"))
                .id,
            "weekly/2026-W49"
        );
        assert_eq!(
            &*PeriodKind::Weekly
                .containing(&utc, ms("2026-12-07T00:00:00Z"))
                .id,
            "weekly/2026-W50"
        );
        // A week with the spring-forward Sunday is 167 hours in New York.
        let ny = tz("America/New_York");
        let w10 = Period::parse_id("weekly/2026-W10", &ny).unwrap();
        assert_period(
            &w10,
            "weekly/2026-W10",
            "2026-03-02T05:00:00Z",
            "2026-03-09T04:00:00Z",
        );
        assert_eq!(hours(&w10), 167);
    }

    #[test]
    fn month_ends() {
        let utc = Timezone::utc();
        let jan = PeriodKind::Monthly.containing(&utc, ms("2026-01-31T23:59:59.999Z"));
        assert_period(
            &jan,
            "monthly/2026-01",
            "2026-01-01T00:00:00Z",
            "2026-02-01T00:00:00Z",
        );
        assert_period(
            &jan.next(&utc).unwrap(),
            "monthly/2026-02",
            "2026-02-01T00:00:00Z",
            "2026-03-01T00:00:00Z",
        );
        assert_period(
            &Period::parse_id("monthly/2028-02", &utc).unwrap(),
            "monthly/2028-02",
            "2028-02-01T00:00:00Z",
            "2028-03-01T00:00:00Z",
        );
        let leap_day = Period::parse_id("daily/2028-02-29", &utc).unwrap();
        assert_period(
            &leap_day,
            "daily/2028-02-29",
            "2028-02-29T00:00:00Z",
            "2028-03-01T00:00:00Z",
        );
        assert_eq!(&*leap_day.next(&utc).unwrap().id, "daily/2028-03-01");
        assert_eq!(&*leap_day.previous(&utc).unwrap().id, "daily/2028-02-28");
        assert!(err("daily/2027-02-29", &utc).contains("not a calendar date"));
        assert!(err("daily/2026-02-30", &utc).contains("not a calendar date"));
        let dec = Period::parse_id("monthly/2026-12", &utc).unwrap();
        assert_period(
            &dec.next(&utc).unwrap(),
            "monthly/2027-01",
            "2027-01-01T00:00:00Z",
            "2027-02-01T00:00:00Z",
        );
        let new_years_eve = Period::parse_id("daily/2026-12-31", &utc).unwrap();
        assert_eq!(&*new_years_eve.next(&utc).unwrap().id, "daily/2027-01-01");
        let last_hour = Period::parse_id("hourly/2026-12-31T23", &utc).unwrap();
        assert_eq!(&*last_hour.next(&utc).unwrap().id, "hourly/2027-01-01T00");
        // Months with a clock change in New York.
        let ny = tz("America/New_York");
        assert_period(
            &Period::parse_id("monthly/2026-03", &ny).unwrap(),
            "monthly/2026-03",
            "2026-03-01T05:00:00Z",
            "2026-04-01T04:00:00Z",
        );
        assert_period(
            &Period::parse_id("monthly/2026-11", &ny).unwrap(),
            "monthly/2026-11",
            "2026-11-01T04:00:00Z",
            "2026-12-01T05:00:00Z",
        );
    }

    #[test]
    fn every_is_aligned_to_the_unix_epoch() {
        let utc = Timezone::utc();
        let at = 1_764_597_615_123;
        let p = every(10).containing(&utc, at);
        assert_eq!(&*p.id, "every:10s/1764597610");
        assert_eq!(
            (p.starts_ms, p.ends_ms),
            (Some(1_764_597_610_000), Some(1_764_597_620_000))
        );
        let p = kind("every:15m").containing(&utc, at);
        assert_eq!(&*p.id, "every:15m/1764597600");
        assert_eq!(
            (p.starts_ms, p.ends_ms),
            (Some(1_764_597_600_000), Some(1_764_598_500_000))
        );
        let p = every(7).containing(&utc, at);
        assert_eq!(&*p.id, "every:7s/1764597611");
        assert_eq!(
            (p.starts_ms, p.ends_ms),
            (Some(1_764_597_611_000), Some(1_764_597_618_000))
        );
        assert_eq!(&*p.next(&utc).unwrap().id, "every:7s/1764597618");
        assert_eq!(&*p.previous(&utc).unwrap().id, "every:7s/1764597604");
        // Before the epoch, floor not truncation.
        let p = every(7).containing(&utc, -1);
        assert_eq!(&*p.id, "every:7s/-7");
        assert_eq!((p.starts_ms, p.ends_ms), (Some(-7000), Some(0)));
        // The zone does not matter: every:1d is a UTC day even in Shanghai.
        let p = kind("every:1d").containing(&tz("Asia/Shanghai"), ms("2026-11-30T19:00:00Z"));
        assert_period(
            &p,
            "every:1d/1795996800",
            "2026-11-30T00:00:00Z",
            "2026-12-01T00:00:00Z",
        );
        let ny = tz("America/New_York");
        assert_eq!(
            kind("every:2h").containing(&ny, at),
            kind("every:2h").containing(&utc, at)
        );
        assert_eq!(
            &*kind("every:2h").containing(&ny, at).id,
            "every:2h/1764597600"
        );

        // Ids: aligned, canonical kind, canonical number.
        assert_eq!(
            Period::parse_id("every:10s/1764597610", &utc),
            Ok(every(10).containing(&utc, at))
        );
        let e = err("every:10s/1764597615", &utc);
        assert!(e.contains("every:10s/1764597610"), "{e}");
        let e = err("every:120s/1764597600", &utc);
        assert!(e.contains("every:2m"), "{e}");
        let p = Period::parse_id("every:2m/1764597600", &utc).unwrap();
        assert_eq!(p.kind, every(120));
        assert_eq!(
            (p.starts_ms, p.ends_ms),
            (Some(1_764_597_600_000), Some(1_764_597_720_000))
        );
        assert_eq!(
            Period::parse_id("every:7s/-7", &utc),
            Ok(every(7).containing(&utc, -1))
        );
        for bad in [
            "every:7s/+7",
            "every:7s/07",
            "every:7s/-0",
            "every:7s/",
            "every:7s/7.0",
            "every:7s/ 7",
        ] {
            assert!(
                Period::parse_id(bad, &utc).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn parse_id_refuses_what_is_not_a_canonical_period() {
        let utc = Timezone::utc();
        for bad in [
            "",
            "/",
            "all/",
            "all/2026",
            " all",
            "all ",
            "ALL",
            "daily",
            "daily/",
            "daily/2026-12-01 ",
            " daily/2026-12-01",
            "Daily/2026-12-01",
            "daily/2026-12-1",
            "daily/2026-12-01T00",
            "daily/2026/12/01",
            "daily/2026-13-01",
            "daily/2026-00-10",
            "daily/2026-12-00",
            "daily/2026-12-0\u{e9}",
            "daily/\u{e9}\u{e9}\u{e9}\u{e9}-12-01",
            "daily/+026-12-01",
            "daily/0000-12-31",
            "daily/10000-01-01",
            "hourly/2026-12-01T24",
            "hourly/2026-12-01T1",
            "hourly/2026-12-01 13",
            "hourly/2026-12-01",
            "weekly/2026-W00",
            "weekly/2026-W5",
            "weekly/2026-w05",
            "weekly/2026-W54",
            "monthly/2026-13",
            "monthly/2026-00",
            "monthly/2026-1",
            "monthly/9999-12",
            "every:0s/0",
            "every:10s",
            "every:10s/9223372036854775800",
            "every:10s/-9223372036854775800",
            "every:10s/99999999999999999999",
            "fortnightly/2026-W49",
        ] {
            assert!(
                Period::parse_id(bad, &utc).is_err(),
                "{bad:?} should be refused"
            );
        }
        assert!(err("daily/2026-1-01", &utc).contains("YYYY-MM-DD"));
        assert!(err("hourly/2026-12-01T24", &utc).contains("00 to 23"));
        assert!(err("monthly/2026-13", &utc).contains("not a calendar month"));
        assert!(err("yearly/2026", &utc).contains("expected all, hourly"));
        assert!(err("monthly/9999-12", &utc).contains("supported range"));
        assert_eq!(Period::parse_id("all", &utc), Ok(all_period()));
    }

    #[test]
    fn chains_are_contiguous_across_clock_changes() {
        let ny = tz("America/New_York");
        // Days around both changes, with their lengths in hours.
        let mut day = Period::parse_id("daily/2026-03-06", &ny).unwrap();
        let mut seen = Vec::new();
        for _ in 0..5 {
            let next = day.next(&ny).unwrap();
            assert_eq!(next.starts_ms, day.ends_ms);
            assert_eq!(next.previous(&ny).unwrap(), day);
            seen.push((day.id.to_string(), hours(&day)));
            day = next;
        }
        let expected = [
            ("daily/2026-03-06", 24),
            ("daily/2026-03-07", 24),
            ("daily/2026-03-08", 23),
            ("daily/2026-03-09", 24),
            ("daily/2026-03-10", 24),
        ];
        assert_eq!(seen, expected.map(|(id, h)| (id.to_string(), h)));

        // Every hour from 2026-10-31T00:00 EDT to 2026-11-03T00:00 EST: 73 real
        // hours in 72 periods, because 01:00 on Nov 1 lasts two.
        let first = Period::parse_id("hourly/2026-10-31T00", &ny).unwrap();
        assert_eq!(first.starts_ms, Some(ms("2026-10-31T04:00:00Z")));
        let mut hour = first.clone();
        let mut count = 0;
        while hour.ends_ms.unwrap() <= ms("2026-11-03T05:00:00Z") {
            let next = hour.next(&ny).unwrap();
            assert_eq!(next.starts_ms, hour.ends_ms);
            assert_eq!(next.previous(&ny).unwrap(), hour);
            count += 1;
            hour = next;
        }
        assert_eq!(count, 72);
        assert_eq!(&*hour.id, "hourly/2026-11-03T00");
        assert_eq!(hour.starts_ms, Some(ms("2026-11-03T05:00:00Z")));

        // And back across the spring change: 03, 01, 00 of 2026-03-08.
        let t03 = Period::parse_id("hourly/2026-03-08T03", &ny).unwrap();
        let t01 = t03.previous(&ny).unwrap();
        let t00 = t01.previous(&ny).unwrap();
        assert_eq!(
            (&*t01.id, &*t00.id),
            ("hourly/2026-03-08T01", "hourly/2026-03-08T00")
        );
        assert_eq!((t00.ends_ms, t01.ends_ms), (t01.starts_ms, t03.starts_ms));
    }

    #[test]
    fn window_is_previous_current_next() {
        let utc = Timezone::utc();
        let [a, b, c] = PeriodKind::Daily.window(&utc, ms("2026-12-01T12:00:00Z"));
        assert_period(
            &a,
            "daily/2026-11-30",
            "2026-11-30T00:00:00Z",
            "2026-12-01T00:00:00Z",
        );
        assert_period(
            &b,
            "daily/2026-12-01",
            "2026-12-01T00:00:00Z",
            "2026-12-02T00:00:00Z",
        );
        assert_period(
            &c,
            "daily/2026-12-02",
            "2026-12-02T00:00:00Z",
            "2026-12-03T00:00:00Z",
        );
        let ny = tz("America/New_York");
        let ids = PeriodKind::Hourly
            .window(&ny, ms("2026-11-01T06:30:00Z"))
            .map(|p| p.id.to_string());
        assert_eq!(
            ids,
            [
                "hourly/2026-11-01T00",
                "hourly/2026-11-01T01",
                "hourly/2026-11-01T02"
            ]
        );
        let ids = PeriodKind::Hourly
            .window(&ny, ms("2026-03-08T07:00:00Z"))
            .map(|p| p.id.to_string());
        assert_eq!(
            ids,
            [
                "hourly/2026-03-08T01",
                "hourly/2026-03-08T03",
                "hourly/2026-03-08T04"
            ]
        );
        let ids = every(10)
            .window(&utc, 1_764_597_615_123)
            .map(|p| p.id.to_string());
        assert_eq!(
            ids,
            [
                "every:10s/1764597600",
                "every:10s/1764597610",
                "every:10s/1764597620"
            ]
        );
        assert_eq!(
            PeriodKind::All.window(&ny, 0),
            [all_period(), all_period(), all_period()]
        );
        assert_eq!(all_period().next(&ny), None);
        assert_eq!(all_period().previous(&ny), None);
    }

    #[test]
    fn closed_once_the_end_is_reached() {
        let p = every(10).containing(&Timezone::utc(), 1_764_597_615_123);
        assert!(!p.is_closed(1_764_597_610_000));
        assert!(!p.is_closed(1_764_597_619_999));
        assert!(p.is_closed(1_764_597_620_000));
        assert!(!all_period().is_closed(i64::MAX));
    }

    #[test]
    fn format_ms_is_rfc3339_utc_with_millis() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(1_764_597_615_123), "2025-12-01T14:00:15.123Z");
        assert_eq!(format_ms(1_796_083_200_000), "2026-12-01T00:00:00.000Z");
        assert_eq!(format_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_ms(SUPPORTED_LOW_MS), "0001-01-01T00:00:00.000Z");
        assert_eq!(format_ms(SUPPORTED_HIGH_MS), "9999-12-30T00:00:00.000Z");
        assert_eq!(format_ms(i64::MIN), "0000-01-01T00:00:00.000Z");
        assert_eq!(format_ms(i64::MAX), "9999-12-30T22:00:00.000Z");
    }

    const ZONES: [&str; 3] = ["UTC", "Asia/Shanghai", "America/New_York"];

    fn kinds() -> [PeriodKind; 8] {
        use PeriodKind::*;
        [
            Hourly,
            Daily,
            Weekly,
            Monthly,
            every(7),
            every(900),
            every(86_400),
            every(31_622_400),
        ]
    }

    /// The invariants every period from `containing` keeps: it holds the
    /// instant, is not empty, touches its neighbours and round-trips its id.
    #[track_caller]
    fn assert_invariants(kind: PeriodKind, zone: &Timezone, t: i64) {
        let p = kind.containing(zone, t);
        let (start, end) = (p.starts_ms.unwrap(), p.ends_ms.unwrap());
        assert!(
            start <= t && t < end,
            "{} [{start}, {end}) does not hold {t} in {}",
            p.id,
            zone.name()
        );
        let next = p.next(zone).unwrap();
        assert_eq!(
            next.starts_ms,
            p.ends_ms,
            "next of {} in {}",
            p.id,
            zone.name()
        );
        assert_eq!(
            next.previous(zone).as_ref(),
            Some(&p),
            "next of {} in {}",
            p.id,
            zone.name()
        );
        let previous = p.previous(zone).unwrap();
        assert_eq!(
            previous.ends_ms,
            p.starts_ms,
            "previous of {} in {}",
            p.id,
            zone.name()
        );
        assert!(previous.starts_ms < previous.ends_ms && next.starts_ms < next.ends_ms);
        assert_eq!(
            Period::parse_id(&p.id, zone).as_ref(),
            Ok(&p),
            "round trip in {}",
            zone.name()
        );
    }

    #[test]
    fn many_instants_keep_the_invariants() {
        let from = ms("2024-01-01T00:00:00Z");
        for name in ZONES {
            let zone = tz(name);
            for kind in kinds() {
                for i in 0..20_000 {
                    // 9467 s is odd and prime, so the instants hit every hour
                    // and minute offset; the ms part varies as well.
                    assert_invariants(kind, &zone, from + i * 9_467_001);
                }
            }
        }
    }

    #[test]
    fn extremes_clamp_instead_of_panicking() {
        for name in ZONES {
            let zone = tz(name);
            for kind in kinds()
                .into_iter()
                .chain([PeriodKind::All, every(u64::MAX)])
            {
                for t in [
                    i64::MIN,
                    i64::MIN + 1,
                    SUPPORTED_LOW_MS,
                    0,
                    SUPPORTED_HIGH_MS,
                    i64::MAX - 1,
                    i64::MAX,
                ] {
                    let p = kind.containing(&zone, t);
                    let _ = kind.window(&zone, t);
                    let _ = p.next(&zone).and_then(|p| p.next(&zone));
                    let _ = p.previous(&zone).and_then(|p| p.previous(&zone));
                    let _ = Period::parse_id(&p.id, &zone);
                }
            }
            for kind in kinds() {
                assert_eq!(
                    kind.containing(&zone, i64::MIN),
                    kind.containing(&zone, CLAMP_LOW_MS)
                );
                assert_eq!(
                    kind.containing(&zone, i64::MAX),
                    kind.containing(&zone, CLAMP_HIGH_MS)
                );
                assert_invariants(kind, &zone, CLAMP_LOW_MS);
                assert_invariants(kind, &zone, CLAMP_HIGH_MS);
            }
        }
        // Walking off the end of the range ends in None, not a panic.
        let utc = Timezone::utc();
        let mut p = PeriodKind::Monthly.containing(&utc, i64::MAX);
        assert_eq!(&*p.id, "monthly/9996-01");
        let mut steps = 0;
        while let Some(next) = p.next(&utc) {
            p = next;
            steps += 1;
        }
        assert_eq!(&*p.id, "monthly/9999-11");
        assert_eq!(steps, 46);
        let mut p = PeriodKind::Daily.containing(&utc, i64::MIN);
        assert_eq!(&*p.id, "daily/0004-01-01");
        while let Some(previous) = p.previous(&utc) {
            p = previous;
        }
        assert_eq!(&*p.id, "daily/0001-01-01");
    }

    #[test]
    fn every_zone_resolves_its_transitions() {
        // Every zone of the bundled database, at both sides of each of its
        // clock changes from 1800 to 2040: the historical ones include odd
        // offsets, skipped days and clocks set back across midnight.
        let from = "1800-01-01T00:00:00Z".parse::<Timestamp>().unwrap();
        let until = "2040-01-01T00:00:00Z".parse::<Timestamp>().unwrap();
        let mut checked = 0;
        for name in jiff::tz::db().available() {
            let zone = Timezone::parse(name.as_str()).unwrap();
            for transition in zone
                .tz
                .following(from)
                .take_while(|t| t.timestamp() < until)
            {
                let t = transition.timestamp().as_millisecond();
                for kind in [
                    PeriodKind::Hourly,
                    PeriodKind::Daily,
                    PeriodKind::Weekly,
                    PeriodKind::Monthly,
                ] {
                    assert_invariants(kind, &zone, t - 1);
                    assert_invariants(kind, &zone, t);
                    checked += 1;
                }
            }
        }
        assert!(checked > 10_000, "only {checked} transitions checked");
    }
}
