//! The merge, timed in process: the global top 1000 of 100 sorted lists of
//! 1000 (the shard level) and of 10 (the group level) with
//! `standings_core::merge::merge_sorted_refs`, the median of many runs.
//!
//! The lists are `merge_sample::sample_lists` (test-support), as in `core/benches/merge.rs`, so
//! this figure and the criterion one measure the same input; this one runs
//! in the same bench run as everything else.

use std::hint::black_box;
use std::time::Instant;

use standings_core::merge::merge_sorted_refs;
use standings_core::{Entry, Order};
use standings_test_support::merge_sample::sample_lists;

use super::stats::median;

/// Entries kept: the boards' TOP-K.
const K: usize = 1000;

/// Median microseconds of one merge of the top [`K`] of `n` lists of
/// 1000, over `runs` timed runs after as many untimed ones.
pub fn median_us(n: usize, runs: usize) -> f64 {
    let data = sample_lists(n, 1000);
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
        let data = sample_lists(3, 50);
        for list in &data {
            assert!(list
                .windows(2)
                .all(|w| Order::Desc.cmp_entries(&w[0], &w[1]).is_le()));
        }
        assert!(median_us(2, 5) > 0.0);
    }
}
