//! The global merge: top 1000 of 100 sorted lists of 1000 (the shard level)
//! and of 10 lists of 1000 (the group level). The seed design spends about
//! 30 ms on this; the goal is under 20 µs for 100 x 1000.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use standings_core::merge::{merge_sorted, merge_sorted_refs};
use standings_core::{Entry, Order};
use standings_test_support::merge_sample::sample_lists;

fn bench(c: &mut Criterion) {
    for (n, len) in [(100, 1000), (10, 1000)] {
        let data = sample_lists(n, len);
        let refs: Vec<&[Entry]> = data.iter().map(|l| l.as_slice()).collect();
        c.bench_function(&format!("merge top1000 of {n}x{len}"), |b| {
            b.iter(|| merge_sorted_refs(black_box(&refs), 1000, Order::Desc))
        });
        c.bench_function(&format!("merge+clone top1000 of {n}x{len}"), |b| {
            b.iter(|| merge_sorted(black_box(&refs), 1000, Order::Desc))
        });
        // The baseline the seed design implies: gather every candidate and
        // sort them all, measured in the same run for a fair ratio.
        c.bench_function(&format!("baseline sort-all top1000 of {n}x{len}"), |b| {
            b.iter(|| {
                let mut all: Vec<&Entry> = black_box(&refs).iter().flat_map(|l| l.iter()).collect();
                all.sort_unstable_by(|a, b| Order::Desc.cmp_entries(a, b));
                all.truncate(1000);
                all
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
