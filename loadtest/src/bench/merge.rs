//! The merge, timed in process: the global top 1000 of 100 sorted lists of
//! 1000 (the shard level) and of 10 (the group level) with
//! `standings_core::merge::merge_sorted_refs`, the median of many runs.
//!
//! The lists are built exactly as `core/benches/merge.rs` builds them (a
//! fixed xorshift), so this figure and the criterion one measure the same
//! input; this one runs in the same bench run as everything else.

use std::hint::black_box;
use std::time::Instant;

use standings_core::merge::merge_sorted_refs;
use standings_core::{Entry, MemberId, Order, Score};

use super::stats::median;

/// Entries kept: the boards' TOP-K.
const K: usize = 1000;

/// `lists` sorted lists of `len` entries with distinct members.
pub fn lists(lists: usize, len: usize) -> Vec<Vec<Entry>> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..lists)
        .map(|l| {
            let mut list: Vec<Entry> = (0..len)
                .map(|i| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let member =
                        MemberId::new(&format!("user:{}", l * len + i)).expect("a valid member id");
                    let score = Score::new((x % 10_000_000) as f64).expect("a finite score");
                    Entry::new(member, score)
                })
                .collect();
            list.sort_by(|a, b| Order::Desc.cmp_entries(a, b));
            list
        })
        .collect()
}

/// Median microseconds of one merge of the top [`K`] of `n` lists of
/// 1000, over `runs` timed runs after as many untimed ones.
pub fn median_us(n: usize, runs: usize) -> f64 {
    let data = lists(n, 1000);
    let refs: Vec<&[Entry]> = data.iter().map(Vec::as_slice).collect();
    for _ in 0..runs {
        black_box(merge_sorted_refs(black_box(&refs), K, Order::Desc));
    }
    let samples: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            black_box(merge_sorted_refs(black_box(&refs), K, Order::Desc));
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    median(&samples).unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_sorted_and_timing_is_positive() {
        let data = lists(3, 50);
        for list in &data {
            assert!(list
                .windows(2)
                .all(|w| Order::Desc.cmp_entries(&w[0], &w[1]).is_le()));
        }
        assert!(median_us(2, 5) > 0.0);
    }
}
