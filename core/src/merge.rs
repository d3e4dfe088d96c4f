//! The top-K merge: shard lists into a group list, group lists into the
//! global list.
//!
//! Every input list is already sorted best first, so the top K of their union
//! is a k-way merge popped K times, not a sort of lists * K candidates. The
//! merge is a loser tree (a tournament tree holding one cursor per list): each
//! pop replays one leaf-to-root path, log2(lists) comparisons, against about
//! twice that for a binary heap. Cursors compare by an integer rank key
//! computed once per entry from its score, so most comparisons never touch
//! the entries; member bytes are read only to break ties. (It replaced a
//! binary heap: 7 µs against 27 µs for the top 1000 of 100 x 1000, see
//! `docs/benchmarks.md`.)
//!
//! Because every member lives in exactly one shard, and each shard list is
//! that shard's exact TOP-K, the merged TOP-N (N <= K) is exact.

use std::cmp::Ordering;

use crate::types::{Entry, Order};

/// Maps a score to a `u64` that sorts best first for `order`: the IEEE bits
/// made monotonic (flip all bits of negatives, the sign bit of positives),
/// inverted for descending boards. Scores are never `-0.0` or NaN.
fn rank_key(score: f64, order: Order) -> u64 {
    let bits = score.to_bits();
    let ascending = if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    };
    match order {
        Order::Asc => ascending,
        Order::Desc => !ascending,
    }
}

/// The best `k` entries of the union of `lists`, each sorted best first by
/// `order` (as [`Order::cmp_entries`] defines it), returned best first.
pub fn merge_sorted(lists: &[&[Entry]], k: usize, order: Order) -> Vec<Entry> {
    merge_sorted_refs(lists, k, order)
        .into_iter()
        .cloned()
        .collect()
}

/// [`merge_sorted`] without copying the entries: borrows of the winners,
/// best first. Cloning an entry bumps an atomic reference count, which is a
/// large share of the cost of a 1000-entry merge; callers that only read the
/// result skip it.
pub fn merge_sorted_refs<'a>(lists: &[&'a [Entry]], k: usize, order: Order) -> Vec<&'a Entry> {
    let total: usize = lists.iter().map(|l| l.len()).sum();
    let mut out = Vec::with_capacity(k.min(total));
    if lists.is_empty() {
        return out;
    }
    let mut tree = LoserTree::new(lists, order);
    while out.len() < k {
        match tree.pop() {
            Some(entry) => out.push(entry),
            None => break,
        }
    }
    out
}

/// A tournament ("loser") tree over the heads of the lists.
///
/// Internal node i (1..n) holds the list that lost the match played there;
/// slot 0 holds the overall winner. Leaves are implicit at n..2n. Popping
/// the winner replays only its leaf-to-root path: log2(n) comparisons, half
/// what a binary heap's sift-down costs, and each is usually one integer
/// compare of the cached [`rank_key`]s.
struct LoserTree<'l, 'a> {
    lists: &'l [&'a [Entry]],
    order: Order,
    /// Losers at internal nodes; `tree[0]` is the current winner.
    tree: Vec<u32>,
    /// Rank key of each list's head; `u64::MAX` once a list is exhausted.
    keys: Vec<u64>,
    /// Index of each list's head.
    heads: Vec<u32>,
}

impl<'l, 'a> LoserTree<'l, 'a> {
    fn new(lists: &'l [&'a [Entry]], order: Order) -> Self {
        let n = lists.len();
        let keys = lists
            .iter()
            .map(|l| l.first().map_or(u64::MAX, |e| rank_key(e.score, order)))
            .collect();
        let mut this = Self {
            lists,
            order,
            tree: vec![0; n],
            keys,
            heads: vec![0; n],
        };
        // Play every match bottom-up; winners[i] is who won at node i.
        let mut winners = vec![0u32; 2 * n];
        for (i, w) in winners[n..].iter_mut().enumerate() {
            *w = i as u32;
        }
        for node in (1..n).rev() {
            let (a, b) = (winners[2 * node], winners[2 * node + 1]);
            let (win, lose) = if this.beats(a, b) { (a, b) } else { (b, a) };
            winners[node] = win;
            this.tree[node] = lose;
        }
        this.tree[0] = if n > 1 { winners[1] } else { 0 };
        this
    }

    fn exhausted(&self, list: u32) -> bool {
        self.heads[list as usize] as usize >= self.lists[list as usize].len()
    }

    fn head(&self, list: u32) -> &'a Entry {
        &self.lists[list as usize][self.heads[list as usize] as usize]
    }

    /// Whether list `a`'s head ranks before list `b`'s. Exhausted lists lose
    /// to everything; exact ties (two exhausted lists) go to the lower index.
    fn beats(&self, a: u32, b: u32) -> bool {
        let (ka, kb) = (self.keys[a as usize], self.keys[b as usize]);
        if ka != kb {
            return ka < kb;
        }
        match (self.exhausted(a), self.exhausted(b)) {
            (false, false) => self.order.cmp_entries(self.head(a), self.head(b)) == Ordering::Less,
            (false, true) => true,
            (true, false) => false,
            (true, true) => a < b,
        }
    }

    /// Takes the best head, advances its list and replays its path.
    fn pop(&mut self) -> Option<&'a Entry> {
        let winner = self.tree[0];
        if self.exhausted(winner) {
            return None;
        }
        let entry = self.head(winner);
        let w = winner as usize;
        self.heads[w] += 1;
        self.keys[w] = self.lists[w]
            .get(self.heads[w] as usize)
            .map_or(u64::MAX, |e| rank_key(e.score, self.order));
        let mut candidate = winner;
        let mut node = (w + self.tree.len()) / 2;
        while node >= 1 {
            let stored = self.tree[node];
            if self.beats(stored, candidate) {
                self.tree[node] = candidate;
                candidate = stored;
            }
            node /= 2;
        }
        self.tree[0] = candidate;
        Some(entry)
    }
}

/// The best `k` of unsorted candidates, best first, keeping at most `k` in a
/// bounded heap whose root is the worst kept (so memory is O(k), not
/// O(candidates)).
pub fn top_k_unsorted<I: IntoIterator<Item = Entry>>(
    candidates: I,
    k: usize,
    order: Order,
) -> Vec<Entry> {
    // Wrapper whose `Ord` puts the worst entry on top of std's max-heap.
    struct Kept(Entry, Order);
    impl PartialEq for Kept {
        fn eq(&self, other: &Self) -> bool {
            self.cmp(other) == Ordering::Equal
        }
    }
    impl Eq for Kept {}
    impl PartialOrd for Kept {
        fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
            Some(self.cmp(other))
        }
    }
    impl Ord for Kept {
        fn cmp(&self, other: &Self) -> Ordering {
            self.1.cmp_entries(&self.0, &other.0)
        }
    }

    if k == 0 {
        return Vec::new();
    }
    let mut heap = std::collections::BinaryHeap::with_capacity(k + 1);
    for entry in candidates {
        if heap.len() < k {
            heap.push(Kept(entry, order));
        } else if let Some(mut worst) = heap.peek_mut() {
            if order.cmp_entries(&entry, &worst.0) == Ordering::Less {
                worst.0 = entry;
            }
        }
    }
    heap.into_sorted_vec().into_iter().map(|k| k.0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{MemberId, Score};
    use proptest::prelude::*;

    /// Random lists with unique members across lists (as shards guarantee)
    /// and many tied scores.
    fn lists_strategy() -> impl Strategy<Value = (Vec<Vec<Entry>>, usize, bool)> {
        (
            prop::collection::vec(prop::collection::vec(0i32..20, 0..40), 0..12),
            0usize..300,
            any::<bool>(),
        )
            .prop_map(|(raw, k, asc)| {
                let order = if asc { Order::Asc } else { Order::Desc };
                let mut id = 0;
                let lists = raw
                    .into_iter()
                    .map(|scores| {
                        let mut list: Vec<Entry> = scores
                            .into_iter()
                            .map(|s| {
                                id += 1;
                                Entry::new(
                                    MemberId::new(&format!("m{:03}", id * 7919 % 1000)).unwrap(),
                                    Score::new(f64::from(s)).unwrap(),
                                )
                            })
                            .collect();
                        list.sort_by(|a, b| order.cmp_entries(a, b));
                        list
                    })
                    .collect();
                (lists, k, asc)
            })
    }

    fn brute_force(lists: &[Vec<Entry>], k: usize, order: Order) -> Vec<Entry> {
        let mut all: Vec<Entry> = lists.iter().flatten().cloned().collect();
        all.sort_by(|a, b| order.cmp_entries(a, b));
        all.truncate(k);
        all
    }

    proptest! {
        #[test]
        fn merge_equals_brute_force((lists, k, asc) in lists_strategy()) {
            let order = if asc { Order::Asc } else { Order::Desc };
            let refs: Vec<&[Entry]> = lists.iter().map(|l| l.as_slice()).collect();
            prop_assert_eq!(merge_sorted(&refs, k, order), brute_force(&lists, k, order));
        }

        #[test]
        fn bounded_heap_equals_brute_force((lists, k, asc) in lists_strategy()) {
            let order = if asc { Order::Asc } else { Order::Desc };
            let candidates = lists.iter().flatten().cloned();
            prop_assert_eq!(top_k_unsorted(candidates, k, order), brute_force(&lists, k, order));
        }
    }

    #[test]
    fn rank_keys_sort_like_scores() {
        let scores = [-9e15, -1.5, -0.0, 0.0, 1e-300, 0.5, 2.0, 9e15];
        for w in scores.windows(2) {
            assert!(
                rank_key(w[0], Order::Asc) <= rank_key(w[1], Order::Asc),
                "{w:?}"
            );
            assert!(
                rank_key(w[0], Order::Desc) >= rank_key(w[1], Order::Desc),
                "{w:?}"
            );
        }
    }

    #[test]
    fn empty_inputs() {
        assert!(merge_sorted(&[], 10, Order::Desc).is_empty());
        assert!(merge_sorted(&[&[], &[]], 10, Order::Desc).is_empty());
        assert!(top_k_unsorted(Vec::new(), 10, Order::Desc).is_empty());
    }
}
