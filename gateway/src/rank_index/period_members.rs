//! One period's members in a members index: each member's score, and
//! every (score, member) in the board's order, so that a window around a
//! member is a walk of a few steps in memory instead of a fan-out.
//!
//! Only the follower writes (one record at a time), readers look up
//! concurrently: the scores sit in a `DashMap` (a rank reads one member),
//! the order in a `BTreeSet` behind a `RwLock` (a window holds the read
//! lock for a search and `2 * radius` steps; the follower takes the write
//! lock once per move). Between the two updates of one move a reader may
//! see the new score before the new position; a window then does not find
//! its member in the order and the caller reads it another way.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::RwLock;

use dashmap::DashMap;
use standings_core::{MemberId, Order};

use super::Key;

/// One period's members, by member and in order.
#[derive(Debug, Default)]
pub struct PeriodMembers {
    scores: DashMap<MemberId, f64>,
    /// (score, member bytes) ascending: the `asc` board order, and the
    /// `desc` order read backwards (the store's tie-break either way).
    order: RwLock<BTreeSet<(Key, MemberId)>>,
}

impl PeriodMembers {
    /// Sets `member`'s score (moving it in the order).
    pub fn set(&self, member: MemberId, score: f64) {
        let old = self.scores.insert(member.clone(), score);
        let mut order = self.order.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = old {
            order.remove(&(Key::of(old), member.clone()));
        }
        order.insert((Key::of(score), member));
    }

    /// Removes `member`, if held.
    pub fn remove(&self, member: &MemberId) {
        if let Some((_, old)) = self.scores.remove(member) {
            self.order
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&(Key::of(old), member.clone()));
        }
    }

    /// `member`'s score, if held.
    pub fn score(&self, member: &MemberId) -> Option<f64> {
        self.scores.get(member).map(|s| *s)
    }

    /// Members held.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// `member` with up to `radius` members on each side, best first, in
    /// `order`; `None` when `member` is not held (or is mid-move).
    pub fn window(
        &self,
        member: &MemberId,
        radius: usize,
        order: Order,
    ) -> Option<Vec<(MemberId, f64)>> {
        let score = self.score(member)?;
        let anchor = (Key::of(score), member.clone());
        let set = self.order.read().unwrap_or_else(|p| p.into_inner());
        if !set.contains(&anchor) {
            return None;
        }
        let above = set.range((Bound::Excluded(&anchor), Bound::Unbounded));
        let below = set.range(..&anchor).rev();
        let entry = |(k, m): &(Key, MemberId)| (m.clone(), k.score());
        // Nearest first on each side; "better" is above for desc.
        let (better, worse): (Vec<_>, Vec<_>) = match order {
            Order::Desc => (
                above.take(radius).map(entry).collect(),
                below.take(radius).map(entry).collect(),
            ),
            Order::Asc => (
                below.take(radius).map(entry).collect(),
                above.take(radius).map(entry).collect(),
            ),
        };
        let mut window: Vec<(MemberId, f64)> = better.into_iter().rev().collect();
        window.push((member.clone(), score));
        window.extend(worse);
        Some(window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> MemberId {
        MemberId::new(s).expect("valid member")
    }

    fn names(w: &[(MemberId, f64)]) -> Vec<&str> {
        w.iter().map(|(m, _)| m.as_str()).collect()
    }

    #[test]
    fn windows_follow_the_board_order_with_ties_by_member_bytes() {
        let p = PeriodMembers::default();
        for (m, s) in [("a", 5.0), ("b", 5.0), ("c", 9.0), ("d", 1.0), ("e", 5.0)] {
            p.set(id(m), s);
        }
        // desc: c 9, then the 5s by bytes reversed (e b a), then d 1.
        let w = p.window(&id("b"), 2, Order::Desc).expect("held");
        assert_eq!(names(&w), ["c", "e", "b", "a", "d"]);
        let w = p.window(&id("c"), 2, Order::Desc).expect("held");
        assert_eq!(names(&w), ["c", "e", "b"]);
        // asc: d 1, a b e, c 9.
        let w = p.window(&id("e"), 1, Order::Asc).expect("held");
        assert_eq!(names(&w), ["b", "e", "c"]);
        assert_eq!(w[2].1, 9.0);
    }

    #[test]
    fn a_move_or_removal_leaves_no_stale_position() {
        let p = PeriodMembers::default();
        p.set(id("a"), 1.0);
        p.set(id("b"), 2.0);
        p.set(id("a"), 3.0);
        let w = p.window(&id("b"), 5, Order::Desc).expect("held");
        assert_eq!(names(&w), ["a", "b"]);
        p.remove(&id("a"));
        p.remove(&id("nobody"));
        assert_eq!(p.len(), 1);
        assert!(p.window(&id("a"), 1, Order::Desc).is_none());
        let w = p.window(&id("b"), 5, Order::Desc).expect("held");
        assert_eq!(names(&w), ["b"]);
        p.set(id("c"), -0.5);
        let w = p.window(&id("c"), 5, Order::Asc).expect("held");
        assert_eq!(names(&w), ["c", "b"]);
    }
}
