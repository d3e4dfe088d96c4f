//! The input of the merge benchmarks, shared so that the criterion bench
//! (`core/benches/merge.rs`) and `standings-loadtest bench` measure the same
//! thing. Kept out of core: the product build does not need it.

use standings_core::{Entry, MemberId, Order};

/// `lists` sorted (desc) lists of `len` entries with distinct members and
/// scores from a fixed xorshift: the input of the merge benchmarks. The
/// criterion bench and `standings-loadtest bench` both use it, so their
/// figures measure the same thing.
pub fn sample_lists(lists: usize, len: usize) -> Vec<Vec<Entry>> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..lists)
        .map(|l| {
            let mut list: Vec<Entry> = (0..len)
                .map(|i| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    Entry {
                        member: MemberId::new(&format!("user:{}", l * len + i))
                            .expect("user:N is a valid member id"),
                        score: (x % 10_000_000) as f64,
                        meta: None,
                        tie: 0,
                    }
                })
                .collect();
            list.sort_by(|a, b| Order::Desc.cmp_entries(a, b));
            list
        })
        .collect()
}
