//! The `period=` parameter: which of a board's periods a read is of, and
//! the `period` object every read answer carries (so a client can show
//! "resets in 3 h").
//!
//! The refresher keeps a view of every [`Slot`] of a board: the current
//! and the last closed period of each kind, and each blend. A `period=`
//! naming one of those is served from its view; an older id the board still
//! holds is read on demand ([`Target::Id`]).

use std::sync::Arc;

use serde::Serialize;
use standings_core::period::format_ms;
use standings_core::{Board, Period, PeriodKind};

use crate::error::{short, ApiError, ErrorCode};

/// A period the refresher keeps a view of.
#[derive(Debug, Clone, PartialEq)]
pub enum Slot {
    /// The current period of a kind.
    Current(PeriodKind),
    /// The last closed period of a kind (never `all`).
    Previous(PeriodKind),
    /// A blend, by name.
    Blend(Arc<str>),
}

impl Slot {
    /// Every slot of `board`, the board's first period first (what a read
    /// without `period=` is of), then the other kinds' current periods,
    /// the previous periods, and the blends.
    pub fn all(board: &Board) -> Vec<Slot> {
        let mut slots: Vec<Slot> = board.periods.iter().map(|k| Slot::Current(*k)).collect();
        slots.extend(
            board
                .periods
                .iter()
                .filter(|k| **k != PeriodKind::All)
                .map(|k| Slot::Previous(*k)),
        );
        slots.extend(board.blends.iter().map(|b| Slot::Blend(b.name.clone())));
        slots
    }

    /// The period this slot names at `now_ms`.
    pub fn resolve(&self, board: &Board, now_ms: i64) -> PeriodInfo {
        match self {
            Slot::Current(kind) => {
                PeriodInfo::of(&kind.containing(&board.timezone, now_ms), now_ms)
            }
            Slot::Previous(kind) => {
                let current = kind.containing(&board.timezone, now_ms);
                let previous = current.previous(&board.timezone).unwrap_or(current);
                PeriodInfo::of(&previous, now_ms)
            }
            Slot::Blend(name) => PeriodInfo::blend(name),
        }
    }

    /// The directory of its static files under the board's, if it has
    /// them: current periods by kind, blends by name.
    pub fn static_dir(&self) -> Option<String> {
        match self {
            Slot::Current(kind) => Some(kind.to_string()),
            Slot::Previous(_) => None,
            Slot::Blend(name) => Some(name.to_string()),
        }
    }
}

/// What a `period=` value names.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A period with a view: index into [`Slot::all`].
    Slot(usize),
    /// An older period the board still holds.
    Id(Period),
}

/// The `period` object of a read answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeriodInfo {
    /// `all`, `daily/2026-12-01`, ..., or a blend's name.
    #[serde(serialize_with = "text")]
    pub id: Arc<str>,
    /// The kind (`daily`, `every:10s`), or `blend`.
    pub kind: String,
    /// Its start, RFC 3339 UTC; null for `all` and blends.
    pub starts_at: Option<String>,
    /// Its end (exclusive); null for `all` and blends.
    pub ends_at: Option<String>,
    /// Whether it had ended when the answer was made.
    pub closed: bool,
}

impl PeriodInfo {
    /// The object of `period` as of `now_ms`.
    pub fn of(period: &Period, now_ms: i64) -> Self {
        Self {
            id: period.id.clone(),
            kind: period.kind.to_string(),
            starts_at: period.starts_ms.map(format_ms),
            ends_at: period.ends_ms.map(format_ms),
            closed: period.is_closed(now_ms),
        }
    }

    /// The object of a blend.
    pub fn blend(name: &Arc<str>) -> Self {
        Self {
            id: name.clone(),
            kind: "blend".into(),
            starts_at: None,
            ends_at: None,
            closed: false,
        }
    }
}

fn text<S: serde::Serializer>(value: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(value)
}

fn invalid(board: &Board, text: &str, why: &str) -> ApiError {
    let kinds: Vec<String> = board.periods.iter().map(|k| k.to_string()).collect();
    let blends: Vec<&str> = board.blends.iter().map(|b| &*b.name).collect();
    let mut message = format!(
        "period {:?} {why}; board {} has the periods {}",
        short(text),
        board.name,
        kinds.join(", ")
    );
    if !blends.is_empty() {
        message.push_str(&format!(" and the blends {}", blends.join(", ")));
    }
    message.push_str(" (a kind, KIND/previous, a period id such as daily/2026-12-01, or a blend)");
    ApiError::bad_field(ErrorCode::InvalidPeriod, "period", message)
}

/// Reads `period=` (absent: the board's first period) at `now_ms`.
///
/// `slots` are the board's [`Slot::all`], kept by its state so that the
/// default read allocates nothing.
pub fn target(
    board: &Board,
    slots: &[Slot],
    text: Option<&str>,
    now_ms: i64,
) -> Result<Target, ApiError> {
    let Some(text) = text else {
        return Ok(Target::Slot(0));
    };
    let index = |slot: Slot| slots.iter().position(|s| *s == slot);
    if let Some(i) = board
        .blends
        .iter()
        .position(|b| &*b.name == text)
        .and_then(|_| index(Slot::Blend(Arc::from(text))))
    {
        return Ok(Target::Slot(i));
    }
    let has = |kind: PeriodKind| board.periods.contains(&kind);
    if let Some(kind) = text.strip_suffix("/previous") {
        let kind: PeriodKind = kind
            .parse()
            .map_err(|_| invalid(board, text, "is not a period of the board"))?;
        if !has(kind) || kind == PeriodKind::All {
            return Err(invalid(board, text, "is not a period of the board"));
        }
        return index(Slot::Previous(kind))
            .map(Target::Slot)
            .ok_or_else(|| invalid(board, text, "is not a period of the board"));
    }
    if let Ok(kind) = text.parse::<PeriodKind>() {
        return index(Slot::Current(kind))
            .filter(|_| has(kind))
            .map(Target::Slot)
            .ok_or_else(|| invalid(board, text, "is not a period of the board"));
    }
    let period = Period::parse_id(text, &board.timezone)
        .map_err(|e| invalid(board, text, &format!("is not a period ({e})")))?;
    if !has(period.kind) {
        return Err(invalid(board, text, "is of a kind the board does not have"));
    }
    let current = period.kind.containing(&board.timezone, now_ms);
    if current.id == period.id {
        return Ok(index(Slot::Current(period.kind)).map_or(Target::Id(period), Target::Slot));
    }
    if current
        .previous(&board.timezone)
        .is_some_and(|p| p.id == period.id)
    {
        return Ok(index(Slot::Previous(period.kind)).map_or(Target::Id(period), Target::Slot));
    }
    if period.starts_ms.is_some_and(|s| s > now_ms) {
        return Err(ApiError::bad_field(
            ErrorCode::UnknownPeriod,
            "period",
            format!("period {} has not started yet", period.id),
        ));
    }
    if board
        .expires_at_ms(&period.id)
        .is_some_and(|at| at <= now_ms)
    {
        return Err(ApiError::bad_field(
            ErrorCode::UnknownPeriod,
            "period",
            format!(
                "period {} is no longer held (board {} keeps closed periods for {})",
                period.id,
                board.name,
                humantime::format_duration(board.closed_retention)
            ),
        ));
    }
    Ok(Target::Id(period))
}

/// The period `target` names at `now_ms`, and the board addressing it.
pub fn resolve(board: &Board, slots: &[Slot], target: &Target, now_ms: i64) -> (Board, PeriodInfo) {
    let info = match target {
        Target::Slot(i) => slots
            .get(*i)
            .map(|slot| slot.resolve(board, now_ms))
            .unwrap_or_else(|| PeriodInfo::blend(&board.period)),
        Target::Id(period) => PeriodInfo::of(period, now_ms),
    };
    (board.at(info.id.clone()), info)
}
