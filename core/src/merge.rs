//! The top-K merge: shard lists into a group list, group lists into the
//! global list.
//!
//! Every input list is already sorted best first, so the top K of their union
//! is a k-way merge: a heap holds one cursor per list (at most G or S of
//! them) and is popped K times. That is K * log(lists) comparisons instead of
//! sorting lists * K candidates. The heap stores each cursor's score inline
//! so that most comparisons never touch the entries; member bytes are read
//! only to break ties.
//!
//! Because every member lives in exactly one shard, and each shard list is
//! that shard's exact TOP-K, the merged TOP-N (N <= K) is exact.

use std::cmp::Ordering;

use crate::types::{Entry, Order};

/// Position of the next unmerged entry of one input list.
#[derive(Clone, Copy)]
struct Cursor {
    /// The score at `pos`, copied so comparisons stay in the heap's memory.
    score: f64,
    list: u32,
    pos: u32,
}

/// The best `k` entries of the union of `lists`, each sorted best first by
/// `order` (as [`Order::cmp_entries`] defines it), returned best first.
pub fn merge_sorted(lists: &[&[Entry]], k: usize, order: Order) -> Vec<Entry> {
    let cmp = |a: &Cursor, b: &Cursor| -> Ordering {
        let by_score = match order {
            Order::Desc => b.score.total_cmp(&a.score),
            Order::Asc => a.score.total_cmp(&b.score),
        };
        by_score.then_with(|| {
            let ea = &lists[a.list as usize][a.pos as usize];
            let eb = &lists[b.list as usize][b.pos as usize];
            order.cmp_entries(ea, eb)
        })
    };
    let mut heap: Vec<Cursor> = lists
        .iter()
        .enumerate()
        .filter_map(|(i, list)| {
            list.first().map(|e| Cursor {
                score: e.score,
                list: i as u32,
                pos: 0,
            })
        })
        .collect();
    for i in (0..heap.len() / 2).rev() {
        sift_down(&mut heap, i, &cmp);
    }
    let total: usize = lists.iter().map(|l| l.len()).sum();
    let mut out = Vec::with_capacity(k.min(total));
    while out.len() < k {
        let Some(top) = heap.first_mut() else { break };
        let list = lists[top.list as usize];
        out.push(list[top.pos as usize].clone());
        top.pos += 1;
        match list.get(top.pos as usize) {
            Some(next) => top.score = next.score,
            None => {
                let last = heap.len() - 1;
                heap.swap(0, last);
                heap.pop();
            }
        }
        sift_down(&mut heap, 0, &cmp);
    }
    out
}

/// Restores the heap property below `i`; `cmp` orders best first, so the
/// best cursor sits at the root.
fn sift_down<F: Fn(&Cursor, &Cursor) -> Ordering>(heap: &mut [Cursor], mut i: usize, cmp: &F) {
    loop {
        let left = 2 * i + 1;
        if left >= heap.len() {
            return;
        }
        let right = left + 1;
        let child = if right < heap.len() && cmp(&heap[right], &heap[left]) == Ordering::Less {
            right
        } else {
            left
        };
        if cmp(&heap[child], &heap[i]) != Ordering::Less {
            return;
        }
        heap.swap(i, child);
        i = child;
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
    fn empty_inputs() {
        assert!(merge_sorted(&[], 10, Order::Desc).is_empty());
        assert!(merge_sorted(&[&[], &[]], 10, Order::Desc).is_empty());
        assert!(top_k_unsorted(Vec::new(), 10, Order::Desc).is_empty());
    }
}
