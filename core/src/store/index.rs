//! What a store tells a rank index (see the gateway's `ranks` module):
//! one shard's score counts per period together with the audit stream
//! position they are exact at ([`IndexScan`]), and the records after a
//! position ([`IndexTail`]), each of which names, per period it touched,
//! the member's score before and after ([`IndexMove`]). Applying a shard's
//! records in order to its scan gives its counts as of the last record.
//!
//! Only stores whose ranks cost a fan-out over the network keep these
//! (Redis, whose audit streams carry them); the in-process stores rank
//! from their own order-statistic trees and answer
//! [`StoreError::Unavailable`].

use std::sync::Arc;

use super::StoreError;
use crate::types::{MemberId, Meta};

/// Where a shard's index stands in its audit stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexPos {
    /// The last record applied (`0-0`: none).
    pub id: String,
    /// How many records the stream had been given up to and with `id`
    /// (Redis's `entries-added`), which tells a trimmed record apart.
    pub added: u64,
}

/// One shard's counts, exact at `pos`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IndexScan {
    /// The stream position the counts are exact at.
    pub pos: IndexPos,
    /// The store's clock at the scan, ms since the Unix epoch: a period
    /// that starts later cannot have had a write before `pos`.
    pub at_ms: i64,
    /// Per period asked, in order: (score, members holding it).
    pub counts: Vec<Vec<(f64, u64)>>,
    /// When the members were asked for: per period, every member and its
    /// score (empty otherwise).
    pub members: Vec<Vec<(MemberId, f64)>>,
    /// When the members were asked for: every member's meta on the board.
    pub metas: Vec<(MemberId, Meta)>,
}

/// One audit record as the index reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexRecord {
    /// Whose record it is.
    pub member: MemberId,
    /// A removal: the member left every period, and its meta is gone.
    pub removed: bool,
    /// What it did to each period.
    pub moves: Vec<IndexMove>,
    /// The meta the write set, if it set one.
    pub meta: Option<Meta>,
}

/// One period's change in one record: the member's score before and
/// after (`None`: it had none, or has none now).
#[derive(Debug, Clone, PartialEq)]
pub struct IndexMove {
    /// The period id.
    pub period: Arc<str>,
    /// Its score before.
    pub old: Option<f64>,
    /// Its score after.
    pub new: Option<f64>,
}

/// One shard's records after a position.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexTail {
    /// The records, in order, and the position after the last (the same
    /// position when there were none).
    Records {
        /// The records.
        records: Vec<IndexRecord>,
        /// Where the shard stands after them.
        pos: IndexPos,
    },
    /// Records after the position are gone (trimmed unread) or cannot be
    /// read (written without moves); the shard must be scanned again.
    Gap,
}

/// The moves of one record's `ix` text: `id old new` per period, scores
/// as Redis keeps them, `-` for none. `None` when the text is not that
/// (a record of a release before the index, or damage).
pub fn parse_moves(text: &str) -> Option<Vec<IndexMove>> {
    let score = |t: &str| -> Option<Option<f64>> {
        if t == "-" {
            return Some(None);
        }
        let x: f64 = t.parse().ok()?;
        x.is_finite().then_some(Some(x + 0.0))
    };
    let words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
    if !words.len().is_multiple_of(3) {
        return None;
    }
    words
        .chunks(3)
        .map(|w| {
            Some(IndexMove {
                period: Arc::from(w[0]),
                old: score(w[1])?,
                new: score(w[2])?,
            })
        })
        .collect()
}

/// What the in-process stores answer: they keep no index.
pub(crate) fn unsupported() -> StoreError {
    StoreError::Unavailable("this store keeps no rank index".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_parse_and_refuse_what_is_not_moves() {
        let m = parse_moves("all - 5 daily/2026-12-01 3.5 -0").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(&*m[0].period, "all");
        assert_eq!((m[0].old, m[0].new), (None, Some(5.0)));
        assert_eq!((m[1].old, m[1].new), (Some(3.5), Some(0.0)));
        assert!(m[1].new.unwrap().is_sign_positive(), "-0 is 0");
        assert_eq!(parse_moves(""), Some(vec![]));
        assert_eq!(parse_moves("?"), None);
        assert_eq!(parse_moves("all 1"), None);
        assert_eq!(parse_moves("all x 2"), None);
        assert_eq!(parse_moves("all inf 2"), None);
    }
}
