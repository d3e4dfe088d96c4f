//! Blends: derived periods of a board whose score is a weighted sum of some
//! of its periods (the seed design's 70% realtime + 30% history).
//!
//! A blend lives in every shard next to the periods it is built from, so a
//! write moves a member's periods and its blend scores in one atomic step.
//! Each shard remembers what its blend was built from (the parts resolved to
//! period ids, with their weights: [`built_from`]); when that differs from
//! what the parts resolve to now (a part rolled over, or the weights
//! changed), the shard's blend is rebuilt from its parts before anything
//! else touches it.
//!
//! A member's blend score is always computed the same way, whether by a
//! rebuild or after a write: `sum of weight x score` over the parts in
//! which the member has a score, in the order the parts are listed, left
//! to right, skipping parts without one ([`weighted_sum`]). Both stores and
//! a test oracle therefore agree to the last bit. (Redis's `ZUNIONSTORE
//! ... WEIGHTS ... AGGREGATE SUM` does not keep that order: it sorts its
//! inputs by size first, so with three or more parts a sum can differ in
//! the last bit; the Redis store rebuilds by folding the parts into the
//! blend two at a time, in part order.)

use std::sync::Arc;

use crate::period::{Period, PeriodKind, Timezone};

/// Largest magnitude of a blend weight.
pub const MAX_WEIGHT: f64 = 1e6;

/// Most parts one blend may have.
pub const MAX_PARTS: usize = 8;

/// One part of a blend: a period kind of the board, its current period or
/// the last closed one, and a weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlendPart {
    /// Which period kind.
    pub kind: PeriodKind,
    /// The last closed period of that kind instead of the current one.
    pub previous: bool,
    /// The factor its scores are multiplied by.
    pub weight: f64,
}

impl BlendPart {
    /// Parses a part's period as the config and the admin API write it:
    /// a kind (`daily`) or a kind and `/previous` (`weekly/previous`).
    pub fn parse_period(text: &str) -> Result<(PeriodKind, bool), String> {
        let (kind, previous) = match text.strip_suffix("/previous") {
            Some(kind) => (kind, true),
            None => (text, false),
        };
        let kind: PeriodKind = kind.parse().map_err(|e: crate::period::PeriodError| e.0)?;
        if previous && kind == PeriodKind::All {
            return Err("`all` has no previous period".into());
        }
        Ok((kind, previous))
    }

    /// The part's period as text: `daily` or `weekly/previous`.
    pub fn period_text(&self) -> String {
        if self.previous {
            format!("{}/previous", self.kind)
        } else {
            self.kind.to_string()
        }
    }

    /// The period this part reads at `now_ms`.
    pub fn resolve(&self, tz: &Timezone, now_ms: i64) -> Period {
        let current = self.kind.containing(tz, now_ms);
        if self.previous {
            current.previous(tz).unwrap_or(current)
        } else {
            current
        }
    }
}

/// A blend of a board: a name (read as `period=NAME`) and its parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Blend {
    /// The blend's name; it has the board-name pattern and is not a kind.
    pub name: Arc<str>,
    /// The parts, in the order their products are added.
    pub parts: Arc<[BlendPart]>,
}

/// What is wrong with a blend's parts: the part (`None`: the list as a
/// whole), the field of it (`period` or `weight`) and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartsError {
    /// Index of the part at fault; `None` for the list.
    pub part: Option<usize>,
    /// `period` or `weight` (meaningless when `part` is `None`).
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

impl PartsError {
    /// The field as a path under `prefix` (`parts`, `blends[0].parts`):
    /// `parts[1].weight`, or `parts` for the list.
    pub fn path(&self, prefix: &str) -> String {
        match self.part {
            Some(i) => format!("{prefix}[{i}].{}", self.field),
            None => prefix.to_string(),
        }
    }
}

/// Checks a blend's parts against the kinds its board has.
pub fn check_parts(parts: &[BlendPart], kinds: &[PeriodKind]) -> Result<(), PartsError> {
    let list = |message: String| PartsError {
        part: None,
        field: "",
        message,
    };
    if parts.is_empty() {
        return Err(list("a blend needs at least one part".into()));
    }
    if parts.len() > MAX_PARTS {
        return Err(list(format!("a blend has at most {MAX_PARTS} parts")));
    }
    for (i, part) in parts.iter().enumerate() {
        let at = |field, message| PartsError {
            part: Some(i),
            field,
            message,
        };
        if !kinds.contains(&part.kind) {
            return Err(at(
                "period",
                format!(
                    "period {} is not one of the board's periods",
                    part.period_text()
                ),
            ));
        }
        if !part.weight.is_finite() || part.weight.abs() > MAX_WEIGHT {
            return Err(at(
                "weight",
                format!("weight must be a finite number within +-{MAX_WEIGHT:e}"),
            ));
        }
        if parts[..i]
            .iter()
            .any(|p| p.kind == part.kind && p.previous == part.previous)
        {
            return Err(at(
                "period",
                format!("period {} is listed twice", part.period_text()),
            ));
        }
    }
    Ok(())
}

/// The parts as stored with each shard: `period*weight` joined by `;`,
/// weights as the shortest text that parses back to the same `f64`
/// (`daily*7e-1;weekly/previous*3e-1`). Both stores keep this text.
pub fn encode_parts(parts: &[BlendPart]) -> String {
    parts
        .iter()
        .map(|p| format!("{}*{:e}", p.period_text(), p.weight))
        .collect::<Vec<_>>()
        .join(";")
}

/// The inverse of [`encode_parts`].
pub fn decode_parts(text: &str) -> Result<Vec<BlendPart>, String> {
    text.split(';')
        .map(|part| {
            let (period, weight) = part
                .split_once('*')
                .ok_or_else(|| format!("blend part {part:?} has no weight"))?;
            let (kind, previous) = BlendPart::parse_period(period)?;
            let weight: f64 = weight
                .parse()
                .map_err(|_| format!("blend part {part:?} has a bad weight"))?;
            Ok(BlendPart {
                kind,
                previous,
                weight,
            })
        })
        .collect()
}

/// What a shard's blend is built from at `now_ms`: each part's period id
/// and weight, `id*weight` joined by `;`. A shard whose stored text differs
/// rebuilds its blend.
pub fn built_from(parts: &[BlendPart], tz: &Timezone, now_ms: i64) -> String {
    parts
        .iter()
        .map(|p| format!("{}*{:e}", p.resolve(tz, now_ms).id, p.weight))
        .collect::<Vec<_>>()
        .join(";")
}

/// A member's blend score from its scores in the parts (`None` where it has
/// none), in part order; `None` when it has no score in any part. Like
/// every score it stays within +-2^53: a sum beyond saturates there (with
/// weights up to [`MAX_WEIGHT`] a blend can multiply a score past it).
pub fn weighted_sum(
    weights_and_scores: impl IntoIterator<Item = (f64, Option<f64>)>,
) -> Option<f64> {
    let mut sum: Option<f64> = None;
    for (weight, score) in weights_and_scores {
        if let Some(s) = score {
            let product = weight * s;
            sum = Some(match sum {
                Some(acc) => acc + product,
                None => product,
            });
        }
    }
    sum.map(|s| {
        if s == 0.0 {
            0.0
        } else {
            s.clamp(-crate::types::MAX_SCORE, crate::types::MAX_SCORE)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_round_trip_through_their_text() {
        let parts = vec![
            BlendPart {
                kind: PeriodKind::Daily,
                previous: false,
                weight: 0.7,
            },
            BlendPart {
                kind: PeriodKind::Weekly,
                previous: true,
                weight: 0.3,
            },
        ];
        let text = encode_parts(&parts);
        assert_eq!(text, "daily*7e-1;weekly/previous*3e-1");
        assert_eq!(decode_parts(&text).unwrap(), parts);
        assert!(decode_parts("daily").is_err());
        assert!(decode_parts("all/previous*1").is_err());
    }

    #[test]
    fn weighted_sum_skips_missing_parts_in_order() {
        assert_eq!(weighted_sum([(0.7, Some(10.0)), (0.3, None)]), Some(7.0));
        assert_eq!(weighted_sum([(0.7, None), (0.3, Some(10.0))]), Some(3.0));
        assert_eq!(weighted_sum([(0.7, None), (0.3, None)]), None);
        assert_eq!(
            weighted_sum([(0.7, Some(3.0)), (0.3, Some(7.0))]),
            Some(0.7 * 3.0 + 0.3 * 7.0)
        );
        assert_eq!(weighted_sum([(-1.0, Some(0.0))]), Some(0.0), "never -0");
        let max = crate::types::MAX_SCORE;
        assert_eq!(weighted_sum([(1e6, Some(max))]), Some(max), "saturates");
        assert_eq!(weighted_sum([(1e6, Some(-max))]), Some(-max));
        assert_eq!(
            weighted_sum([(1e6, Some(max)), (-1e6, Some(max))]),
            Some(0.0),
            "only the sum saturates, not each product"
        );
    }

    #[test]
    fn parts_are_checked_against_the_boards_kinds() {
        let kinds = [PeriodKind::All, PeriodKind::Daily];
        let part = |kind, weight| BlendPart {
            kind,
            previous: false,
            weight,
        };
        assert!(check_parts(&[part(PeriodKind::Daily, 1.0)], &kinds).is_ok());
        let err = check_parts(&[part(PeriodKind::Weekly, 1.0)], &kinds).unwrap_err();
        assert_eq!(err.path("parts"), "parts[0].period");
        let err = check_parts(&[part(PeriodKind::Daily, f64::NAN)], &kinds).unwrap_err();
        assert_eq!(err.path("parts"), "parts[0].weight");
        assert_eq!(check_parts(&[], &kinds).unwrap_err().path("parts"), "parts");
        let nine = vec![part(PeriodKind::Daily, 1.0); 9];
        assert_eq!(
            check_parts(&nine, &kinds).unwrap_err().path("parts"),
            "parts"
        );
        assert!(check_parts(
            &[part(PeriodKind::Daily, 1.0), part(PeriodKind::Daily, 2.0)],
            &kinds
        )
        .is_err());
    }
}
