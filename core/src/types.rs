//! Validated domain types: board names, member ids, scores, sort order,
//! write operations and ranked entries.
//!
//! Every constructor checks its input and refuses bad values with an
//! [`InvalidInput`] that names the field, so that nothing invalid can reach a
//! store: a `Score` is always finite and within +-2^53, a `MemberId` is always
//! 1 to 128 bytes without control characters.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use crate::meta::Meta;

/// The largest magnitude a score may have: 2^53, the last integer an `f64`
/// (and therefore a Redis sorted-set score) represents exactly.
pub const MAX_SCORE: f64 = 9_007_199_254_740_992.0;

/// Longest member id in bytes.
pub const MAX_MEMBER_LEN: usize = 128;

/// Longest board name in bytes.
pub const MAX_BOARD_LEN: usize = 64;

/// What kind of value failed validation; the API answers it as its error
/// code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputCode {
    /// A board name outside `[a-z0-9][a-z0-9_-]{0,63}`.
    InvalidBoard,
    /// A member id that is empty, too long, or holds refused characters.
    InvalidMember,
    /// A score that is not finite or beyond +-2^53.
    InvalidScore,
    /// An op that is not `incr`, `set` or `best`.
    InvalidOp,
    /// An event whose id, type or parties are malformed.
    InvalidEvent,
    /// A `meta` that is not a JSON object of at most 512 bytes.
    InvalidMeta,
}

impl InputCode {
    /// The code as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            InputCode::InvalidBoard => "invalid_board",
            InputCode::InvalidMember => "invalid_member",
            InputCode::InvalidScore => "invalid_score",
            InputCode::InvalidOp => "invalid_op",
            InputCode::InvalidEvent => "invalid_event",
            InputCode::InvalidMeta => "invalid_meta",
        }
    }
}

impl PartialEq<&str> for InputCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A value that failed validation: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidInput {
    /// Machine-readable error code.
    pub code: InputCode,
    /// The request field at fault, as a client names it.
    pub field: &'static str,
    /// A sentence a person can act on.
    pub message: String,
}

impl InvalidInput {
    /// Builds an error for `field` with a code and a message.
    pub fn new(code: InputCode, field: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            field,
            message: message.into(),
        }
    }
}

/// A board name: `[a-z0-9][a-z0-9_-]{0,63}`. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BoardName(Arc<str>);

impl BoardName {
    /// Validates `name` against the board-name pattern.
    pub fn new(name: &str) -> Result<Self, InvalidInput> {
        let bytes = name.as_bytes();
        let valid_first = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let valid_rest = |b: u8| valid_first(b) || b == b'_' || b == b'-';
        let ok = !bytes.is_empty()
            && bytes.len() <= MAX_BOARD_LEN
            && valid_first(bytes[0])
            && bytes[1..].iter().all(|&b| valid_rest(b));
        if ok {
            Ok(Self(Arc::from(name)))
        } else {
            Err(InvalidInput::new(
                InputCode::InvalidBoard,
                "board",
                "board must match [a-z0-9][a-z0-9_-]{0,63}",
            ))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BoardName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A member id: 1 to 128 bytes of UTF-8 without control characters.
///
/// Held as an `Arc<str>` because the same id sits in a shard, several
/// snapshots and the global TOP-K at once; cloning it is a counter bump.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(Arc<str>);

impl MemberId {
    /// Validates `id`: 1 to 128 bytes, and none of the characters a public
    /// board must not show: controls (Cc), format characters (Cf, e.g.
    /// U+200B zero width space, U+202E right-to-left override, which make
    /// look-alike or reversed names), line and paragraph separators (Zl,
    /// Zp) and noncharacters (U+FDD0..U+FDEF and the last two code points
    /// of every plane, U+FFFE, U+FFFF, U+1FFFE, ...).
    pub fn new(id: &str) -> Result<Self, InvalidInput> {
        if id.is_empty() || id.len() > MAX_MEMBER_LEN {
            return Err(InvalidInput::new(
                InputCode::InvalidMember,
                "member",
                format!("member must be 1 to {MAX_MEMBER_LEN} bytes of UTF-8"),
            ));
        }
        if id.chars().any(char::is_control) {
            return Err(InvalidInput::new(
                InputCode::InvalidMember,
                "member",
                "member must not contain control characters",
            ));
        }
        // ASCII (the common case) has no format, separator or noncharacter.
        if !id.is_ascii() {
            if let Some(c) = id.chars().find(|&c| refused(c)) {
                return Err(InvalidInput::new(
                    InputCode::InvalidMember,
                    "member",
                    format!(
                        "member must not contain format characters, line or paragraph separators or noncharacters (found U+{:04X})",
                        u32::from(c)
                    ),
                ));
            }
        }
        Ok(Self(Arc::from(id)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Format characters, line and paragraph separators, and noncharacters.
fn refused(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    let code = u32::from(c);
    let noncharacter = (0xFDD0..=0xFDEF).contains(&code) || code & 0xFFFE == 0xFFFE;
    noncharacter
        || matches!(
            c.general_category(),
            GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
        )
}

impl fmt::Debug for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A score: finite and within +-2^53. `-0.0` is stored as `0.0` so that the
/// two never sort apart.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Score(f64);

impl Score {
    /// Validates `value` for the request field `field` (`score`, `delta`, ...).
    pub fn new_for(value: f64, field: &'static str) -> Result<Self, InvalidInput> {
        if !value.is_finite() || value.abs() > MAX_SCORE {
            return Err(InvalidInput::new(
                InputCode::InvalidScore,
                field,
                format!("{field} must be a finite number within +-2^53 (9007199254740992)"),
            ));
        }
        Ok(Self(value + 0.0))
    }

    /// Validates `value` as the `score` field.
    pub fn new(value: f64) -> Result<Self, InvalidInput> {
        Self::new_for(value, "score")
    }

    /// The score as a float.
    pub fn get(self) -> f64 {
        self.0
    }
}

/// Which way a board ranks: higher scores first (`desc`, the default) or
/// lower scores first (`asc`, e.g. lap times).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Highest score ranks first.
    #[default]
    Desc,
    /// Lowest score ranks first.
    Asc,
}

impl Order {
    /// Whether score `a` ranks strictly better than score `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Order::Desc => a > b,
            Order::Asc => a < b,
        }
    }

    /// The total order of entries, best first.
    ///
    /// Ties on score break on [`Entry::tie`] (always 0 on a `shared` board),
    /// then on member bytes: both descending for `desc` boards and
    /// ascending for `asc` boards. That is exactly the order of a Redis
    /// sorted set read with `ZREVRANGE` (desc) or `ZRANGE` (asc), whose
    /// members on a `first_achiever` board are the tie's 16 digits followed
    /// by the member ([`stored_name`]), so a shard's list and the merge
    /// never disagree.
    pub fn cmp_entries(self, a: &Entry, b: &Entry) -> Ordering {
        let natural = a
            .score
            .total_cmp(&b.score)
            .then_with(|| a.tie.cmp(&b.tie))
            .then_with(|| {
                a.member
                    .as_str()
                    .as_bytes()
                    .cmp(b.member.as_str().as_bytes())
            });
        match self {
            Order::Desc => natural.reverse(),
            Order::Asc => natural,
        }
    }
}

/// How a board ranks members of equal score (api.md, "ties").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ties {
    /// Equal scores share a rank, competition style (1, 2, 2, 4); they are
    /// listed by member bytes.
    #[default]
    Shared,
    /// Among equal scores, who reached the score first ranks higher; every
    /// rank is unique (1, 2, 3, 4). Each member's place among its equals
    /// is its [`Entry::tie`].
    FirstAchiever,
}

impl Ties {
    /// The config and API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Ties::Shared => "shared",
            Ties::FirstAchiever => "first_achiever",
        }
    }
}

/// The largest [`Entry::tie`]: 2^53 - 1, so that the scripts' Lua numbers
/// (doubles) compute every tie exactly; 16 decimal digits at most, the
/// width of a stored name's prefix ([`stored_name`]). Microseconds since
/// the Unix epoch stay below it until the year 2255.
pub const TIE_MAX: u64 = (1 << 53) - 1;

/// How many bytes the tie takes at the front of a stored name.
pub const TIE_DIGITS: usize = 16;

impl Order {
    /// The [`Entry::tie`] of a score reached at `at_us` (microseconds since
    /// the Unix epoch) on a `first_achiever` board: whichever way the board
    /// sorts, an earlier time sorts better, so the tie counts down from
    /// [`TIE_MAX`] on a `desc` board and up from 0 on an `asc` one.
    pub fn tie_at(self, at_us: u64) -> u64 {
        let at = at_us.min(TIE_MAX);
        match self {
            Order::Desc => TIE_MAX - at,
            Order::Asc => at,
        }
    }

    /// The time [`Order::tie_at`] made `tie` from.
    pub fn achieved_at_us(self, tie: u64) -> u64 {
        match self {
            Order::Desc => TIE_MAX - tie.min(TIE_MAX),
            Order::Asc => tie,
        }
    }
}

/// The name a `first_achiever` board's member has in a Redis sorted set:
/// its tie as 16 zero-padded decimal digits, then the member. Byte order
/// of these names is (tie, member) order, so the set sorts equal scores by
/// who reached them first with no second structure.
pub fn stored_name(tie: u64, member: &str) -> String {
    format!("{:016}{member}", tie.min(TIE_MAX))
}

/// The tie and member of a [`stored_name`]; `None` for a name that is not
/// one.
pub fn split_stored_name(name: &str) -> Option<(u64, &str)> {
    let digits = name.get(..TIE_DIGITS)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let tie = digits.parse().ok()?;
    Some((tie, &name[TIE_DIGITS..]))
}

/// How a write changes a member's score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Add the value to the current score (absent counts as 0).
    Incr,
    /// Replace the score.
    Set,
    /// Keep the better of the current score and the value, by board order.
    Best,
    /// The member was removed from every period (an admin's removal, in
    /// audit records only): no write takes it, and no config can name it.
    #[serde(skip)]
    Remove,
}

impl Op {
    /// The wire name of the operation.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Incr => "incr",
            Op::Set => "set",
            Op::Best => "best",
            Op::Remove => "remove",
        }
    }

    /// Parses an op as an audit record keeps it: a write's op, or
    /// `remove`.
    pub fn parse_audit(s: &str) -> Result<Self, InvalidInput> {
        match s {
            "remove" => Ok(Op::Remove),
            other => Self::parse(other),
        }
    }

    /// Parses a wire name; the error names the `op` field.
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        match s {
            "incr" => Ok(Op::Incr),
            "set" => Ok(Op::Set),
            "best" => Ok(Op::Best),
            _ => Err(InvalidInput::new(
                InputCode::InvalidOp,
                "op",
                "op must be one of incr, set, best",
            )),
        }
    }

    /// The score after applying this op with `value` to `old`, or `None`
    /// when the result would leave +-2^53.
    pub fn apply(self, order: Order, old: Option<f64>, value: f64) -> Option<f64> {
        let new = match (self, old) {
            (Op::Incr, old) => checked_add(old.unwrap_or(0.0), value)?,
            (Op::Set, _) => value,
            (Op::Best, Some(old)) if !order.better(value, old) => old,
            (Op::Best, _) => value,
            // Not a write: removal goes through `Store::remove`.
            (Op::Remove, old) => old?,
        };
        (new.is_finite() && new.abs() <= MAX_SCORE).then_some(new + 0.0)
    }
}

/// `a + b`, or `None` when the exact sum lies beyond +-2^53.
///
/// Rounding can pull an out-of-range sum back onto the bound (2^53 + 1
/// rounds to 2^53), which would silently drop an increment; Knuth's
/// TwoSum recovers the rounding error `e` (`a + b == s + e` exactly), so a
/// sum on the bound with an error pointing outward is refused. The Redis
/// write script does the same arithmetic.
pub fn checked_add(a: f64, b: f64) -> Option<f64> {
    let s = a + b;
    let bb = s - a;
    let e = (a - (s - bb)) + (b - bb);
    let beyond =
        s.abs() > MAX_SCORE || (s.abs() == MAX_SCORE && e != 0.0 && e.signum() == s.signum());
    (!beyond).then_some(s)
}

/// One member and its score, as stored and as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Who.
    pub member: MemberId,
    /// Their score; always finite and within +-2^53.
    pub score: f64,
    /// The member's metadata on the board, if a write gave it one. It does
    /// not take part in the order ([`Order::cmp_entries`]).
    pub meta: Option<Meta>,
    /// The member's place among equal scores, after the score in the
    /// order: 0 on a `shared` board; on a `first_achiever` board
    /// [`Order::tie_at`] of when the member reached its score.
    pub tie: u64,
}

impl Entry {
    /// Builds an entry without metadata from validated parts.
    pub fn new(member: MemberId, score: Score) -> Self {
        Self::with_meta(member, score, None)
    }

    /// Builds an entry from validated parts and the member's metadata.
    pub fn with_meta(member: MemberId, score: Score, meta: Option<Meta>) -> Self {
        Self {
            member,
            score: score.get(),
            meta,
            tie: 0,
        }
    }

    /// An entry of a score a store or snapshot already holds (finite,
    /// within +-2^53, never `-0.0`), without metadata.
    pub fn stored(member: MemberId, score: f64) -> Self {
        Self {
            member,
            score,
            meta: None,
            tie: 0,
        }
    }

    /// The same entry with `tie` ([`Entry::tie`]).
    pub fn with_tie(mut self, tie: u64) -> Self {
        self.tie = tie;
        self
    }
}

/// The ranks of a best-first list that starts at the top of the board:
/// [`competition_ranks`] on a `shared` board, positions (1, 2, 3, ...) on a
/// `first_achiever` one.
pub fn ranks(ties: Ties, entries: &[Entry]) -> Vec<u64> {
    match ties {
        Ties::Shared => competition_ranks(entries),
        Ties::FirstAchiever => (1..=entries.len() as u64).collect(),
    }
}

/// Competition ranks ("1224") for a best-first list that starts at the top of
/// the board: equal scores share the rank of the first of them.
///
/// Exact only when `entries` is a prefix of the board, which every TOP-K is.
pub fn competition_ranks(entries: &[Entry]) -> Vec<u64> {
    let mut ranks = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let tied_with_previous = i > 0 && entries[i - 1].score == entry.score;
        let rank = if tied_with_previous {
            ranks[i - 1]
        } else {
            i as u64 + 1
        };
        ranks.push(rank);
    }
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(m: &str, s: f64) -> Entry {
        Entry::new(MemberId::new(m).unwrap(), Score::new(s).unwrap())
    }

    #[test]
    fn board_names() {
        for ok in ["global", "a", "0", "weekly_2026-47", &"a".repeat(64)] {
            assert!(BoardName::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Global", "_x", "-x", "a b", "a/b", &"a".repeat(65), "ü"] {
            let err = BoardName::new(bad).unwrap_err();
            assert_eq!(err.field, "board", "{bad}");
        }
    }

    #[test]
    fn member_ids() {
        assert!(MemberId::new("user:10086").is_ok());
        assert!(MemberId::new("名前").is_ok());
        assert!(MemberId::new(&"x".repeat(128)).is_ok());
        for bad in ["", "a\nb", "\u{7f}", "tab\t"] {
            assert_eq!(MemberId::new(bad).unwrap_err().field, "member");
        }
        assert_eq!(
            MemberId::new(&"x".repeat(129)).unwrap_err().code,
            "invalid_member"
        );
    }

    #[test]
    fn member_ids_refuse_invisible_and_reserved_characters() {
        for (bad, class) in [
            ("a\u{200B}b", "Cf zero width space"),
            ("adm\u{202E}nimda", "Cf right-to-left override"),
            ("\u{FEFF}user", "Cf byte order mark"),
            ("\u{E0041}tag", "Cf tag character"),
            ("line\u{2028}sep", "Zl"),
            ("para\u{2029}sep", "Zp"),
            ("x\u{FFFF}", "noncharacter U+FFFF"),
            ("x\u{FDD0}", "noncharacter U+FDD0"),
            ("x\u{1FFFE}", "noncharacter U+1FFFE"),
            ("x\u{10FFFF}", "noncharacter U+10FFFF"),
        ] {
            let e = MemberId::new(bad).unwrap_err();
            assert_eq!(
                (e.code, e.field),
                (InputCode::InvalidMember, "member"),
                "{class}"
            );
        }
        for good in ["名前", "Zoë", "user:ß", "😀", "\u{FFFD}", "\u{FFFC}"] {
            assert!(MemberId::new(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn scores() {
        assert!(Score::new(MAX_SCORE).is_ok());
        assert!(Score::new(-MAX_SCORE).is_ok());
        for bad in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
            MAX_SCORE * 2.0,
        ] {
            assert_eq!(Score::new(bad).unwrap_err().code, "invalid_score");
        }
        assert!(Score::new(-0.0).unwrap().get().is_sign_positive());
        assert_eq!(
            Score::new_for(f64::NAN, "delta").unwrap_err().field,
            "delta"
        );
    }

    #[test]
    fn ops() {
        let d = Order::Desc;
        assert_eq!(Op::Incr.apply(d, None, 5.0), Some(5.0));
        assert_eq!(Op::Incr.apply(d, Some(5.0), -7.0), Some(-2.0));
        assert_eq!(Op::Set.apply(d, Some(5.0), 1.0), Some(1.0));
        assert_eq!(Op::Best.apply(d, Some(5.0), 1.0), Some(5.0));
        assert_eq!(Op::Best.apply(d, Some(5.0), 9.0), Some(9.0));
        assert_eq!(Op::Best.apply(Order::Asc, Some(5.0), 1.0), Some(1.0));
        assert_eq!(Op::Best.apply(d, None, 1.0), Some(1.0));
        assert_eq!(Op::Incr.apply(d, Some(MAX_SCORE), 1.0), None);
        assert_eq!(Op::Incr.apply(d, Some(-MAX_SCORE), -1.0), None);
        assert_eq!(
            Op::Incr.apply(d, Some(MAX_SCORE), -1.0),
            Some(MAX_SCORE - 1.0)
        );
        assert_eq!(
            Op::Incr.apply(d, Some(MAX_SCORE - 1.0), 1.0),
            Some(MAX_SCORE)
        );
        assert_eq!(
            Op::Incr.apply(d, Some(0.1), 0.2),
            Some(0.1 + 0.2),
            "inexact but in range"
        );
        assert_eq!(Op::parse("decr").unwrap_err().field, "op");
    }

    #[test]
    fn order_breaks_ties_like_redis() {
        let a = entry("a", 1.0);
        let b = entry("b", 1.0);
        let top = entry("z", 2.0);
        // ZREVRANGE: score desc, then member desc.
        assert_eq!(Order::Desc.cmp_entries(&b, &a), Ordering::Less);
        assert_eq!(Order::Desc.cmp_entries(&top, &b), Ordering::Less);
        // ZRANGE: score asc, then member asc.
        assert_eq!(Order::Asc.cmp_entries(&a, &b), Ordering::Less);
        assert_eq!(Order::Asc.cmp_entries(&a, &top), Ordering::Less);
    }

    #[test]
    fn first_achievers_rank_before_later_equals_in_either_order() {
        for order in [Order::Desc, Order::Asc] {
            // "z" reached 5 first, then "a"; "m" holds a better score.
            let early = entry("z", 5.0).with_tie(order.tie_at(1_000));
            let late = entry("a", 5.0).with_tie(order.tie_at(2_000));
            let better = match order {
                Order::Desc => entry("m", 6.0),
                Order::Asc => entry("m", 4.0),
            }
            .with_tie(order.tie_at(3_000));
            assert_eq!(
                order.cmp_entries(&early, &late),
                Ordering::Less,
                "{order:?}"
            );
            assert_eq!(
                order.cmp_entries(&better, &early),
                Ordering::Less,
                "{order:?}"
            );
            assert_eq!(order.achieved_at_us(early.tie), 1_000);
            // The stored names sort as the entries do: ZREVRANGE (desc)
            // lists larger names first, ZRANGE (asc) smaller.
            let (e, l) = (stored_name(early.tie, "z"), stored_name(late.tie, "a"));
            match order {
                Order::Desc => assert!(e > l),
                Order::Asc => assert!(e < l),
            }
            assert_eq!(split_stored_name(&e), Some((early.tie, "z")));
        }
        assert_eq!(split_stored_name("user:1"), None);
        assert_eq!(split_stored_name("00000000000000x1user"), None);
        assert_eq!(stored_name(7, "u").len(), TIE_DIGITS + 1);
    }

    #[test]
    fn first_achiever_ranks_are_positions() {
        let list = [entry("a", 2.0), entry("b", 1.0), entry("c", 1.0)];
        assert_eq!(ranks(Ties::FirstAchiever, &list), vec![1, 2, 3]);
        assert_eq!(ranks(Ties::Shared, &list), vec![1, 2, 2]);
    }

    #[test]
    fn ranks_are_competition_ranks() {
        let list = [
            entry("a", 9.0),
            entry("b", 7.0),
            entry("c", 7.0),
            entry("d", 3.0),
        ];
        assert_eq!(competition_ranks(&list), vec![1, 2, 2, 4]);
        assert!(competition_ranks(&[]).is_empty());
    }
}
