//! What member metadata costs the snapshot path: bytes of a shard
//! snapshot of 1000 entries, its encoding, and the group level's work
//! (decode 10 shard snapshots of 1000 and merge their top 1000), each
//! without meta and with a ~100-byte meta on every entry, side by side in
//! one run so the ratio is fair on a shared machine.

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use standings_core::merge::merge_sorted;
use standings_core::snapshot::Snapshot;
use standings_core::{BoardName, Entry, Meta, Order, Scope};
use standings_test_support::merge_sample::sample_lists;

/// A meta of about 100 bytes: what a display name, an avatar URL and a
/// level take.
fn meta_of(n: usize) -> Meta {
    let text = format!(
        r#"{{"name":"Player {n:06}","avatar":"https://cdn.example.com/a/{n:06}.png","lvl":{},"team":"red"}}"#,
        n % 90
    );
    Meta::parse(&text).expect("a valid meta")
}

fn snapshots(with_meta: bool) -> Vec<Snapshot> {
    sample_lists(10, 1000)
        .into_iter()
        .enumerate()
        .map(|(s, mut entries)| {
            if with_meta {
                for (i, e) in entries.iter_mut().enumerate() {
                    e.meta = Some(meta_of(s * 1000 + i));
                }
            }
            Snapshot {
                board: BoardName::new("global").expect("name"),
                period: Arc::from("all"),
                scope: Scope::Shard(s as u32),
                order: Order::Desc,
                version: 1,
                computed_at_ms: 1,
                entries,
            }
        })
        .collect()
}

/// What the group agent (and the gateway, over group snapshots) does with
/// stored bytes: decode each list and merge the top 1000.
fn decode_and_merge(encoded: &[bytes::Bytes]) -> Vec<Entry> {
    let decoded: Vec<Snapshot> = encoded
        .iter()
        .map(|b| Snapshot::decode(b).expect("decodes"))
        .collect();
    let lists: Vec<&[Entry]> = decoded.iter().map(|s| s.entries.as_slice()).collect();
    merge_sorted(&lists, 1000, Order::Desc)
}

fn bench(c: &mut Criterion) {
    for (label, with_meta) in [("without meta", false), ("with ~100-byte meta", true)] {
        let snaps = snapshots(with_meta);
        let encoded: Vec<bytes::Bytes> = snaps.iter().map(Snapshot::encode).collect();
        let meta_bytes: usize = snaps[0]
            .entries
            .iter()
            .filter_map(|e| e.meta.as_ref())
            .map(|m| m.as_str().len())
            .sum();
        println!(
            "snapshot of 1000 entries {label}: {} bytes (meta text {} bytes, {:.1} per entry)",
            encoded[0].len(),
            meta_bytes,
            meta_bytes as f64 / 1000.0
        );
        c.bench_function(&format!("encode shard snapshot 1000 {label}"), |b| {
            b.iter(|| black_box(&snaps[0]).encode())
        });
        c.bench_function(&format!("decode+merge 10x1000 {label}"), |b| {
            b.iter(|| decode_and_merge(black_box(&encoded)))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
