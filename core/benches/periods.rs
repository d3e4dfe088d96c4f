//! The cost of periods: writes to a board with one period (`all`) against
//! writes to a board with four (`all`, `daily`, `weekly`, `monthly`) and a
//! blend (0.7 x daily + 0.3 x weekly/previous), side by side in one run,
//! on each store: a real 3-master Redis Cluster (started here on loopback
//! ports), the durable embedded store and the memory store.
//!
//! Each round sends the same number of `incr` writes over `CONCURRENCY`
//! tasks to random members of one board, then to the other, alternating
//! for `ROUNDS` rounds, so both see the same machine noise. It prints, per
//! store and board, the median over rounds of writes per second, the p50
//! and p99 latency, and the CPU spent per write by the store: on Redis the
//! masters' `used_cpu_sys + used_cpu_user` (INFO cpu), in process the
//! whole process's CPU time (`/proc/self/stat`, which for the memory and
//! durable stores is the store's work plus this driver's). Then the ratio
//! four-periods / one-period of each. The goal: at most 1.5x the
//! single-period write in cluster CPU per write.
//!
//! `cargo bench -p standings-core --bench periods` (a release build);
//! `BENCH_WRITES` (default 20000 per round) and `BENCH_ROUNDS` (default 3)
//! size it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use standings_core::blend::{Blend, BlendPart};
use standings_core::{Board, BoardName, MemberId, Op, PeriodKind, Score, Store, Write};
use standings_test_support::bench::{median, on_every_store};
use standings_test_support::process::env_or;

const CONCURRENCY: usize = 64;
const MEMBERS: u64 = 100_000;

fn boards() -> (Board, Board, Board) {
    let kind = |k: &str| k.parse::<PeriodKind>().unwrap();
    let one = Board::new(BoardName::new("bench-one").unwrap());
    let part = |k: &str, previous, weight| BlendPart {
        kind: kind(k),
        previous,
        weight,
    };
    let periods: Arc<[PeriodKind]> =
        Arc::from([kind("all"), kind("daily"), kind("weekly"), kind("monthly")]);
    let four = Board {
        periods: periods.clone(),
        ..Board::new(BoardName::new("bench-four").unwrap())
    };
    let blended = Board {
        periods,
        blends: Arc::from([Blend {
            name: Arc::from("hot"),
            parts: Arc::from([part("daily", false, 0.7), part("weekly", true, 0.3)]),
        }]),
        ..Board::new(BoardName::new("bench-blend").unwrap())
    };
    (one, four, blended)
}

/// What one round measured.
#[derive(Debug, Clone, Copy)]
struct Round {
    rate: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us_per_write: f64,
}

async fn round(
    store: Arc<dyn Store>,
    board: &Board,
    writes: usize,
    cpu: &dyn Fn() -> f64,
    seed: u64,
) -> Round {
    let cpu_before = cpu();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..CONCURRENCY {
        let store = store.clone();
        let board = board.clone();
        let n = writes / CONCURRENCY;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(n);
            let mut x = seed ^ (t as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            for i in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let w = Write {
                    member: MemberId::new(&format!("user:{}", x % MEMBERS)).unwrap(),
                    op: Op::Incr,
                    value: Score::new((i % 10) as f64 + 1.0).unwrap(),
                    idempotency_key: None,
                    request_id: String::new(),
                    meta: None,
                };
                let at = Instant::now();
                store.apply(&board, &w).await.expect("write");
                latencies.push(at.elapsed());
            }
            latencies
        }));
    }
    let mut all: Vec<Duration> = Vec::with_capacity(writes);
    for t in tasks {
        all.extend(t.await.expect("writer"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_spent = cpu() - cpu_before;
    all.sort();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)].as_secs_f64() * 1e6;
    Round {
        rate: all.len() as f64 / elapsed,
        p50_us: at(0.50),
        p99_us: at(0.99),
        cpu_us_per_write: cpu_spent * 1e6 / all.len() as f64,
    }
}

async fn compare(name: &str, store: Arc<dyn Store>, cpu: &dyn Fn() -> f64) {
    let (one, four, blended) = boards();
    let writes: usize = env_or("BENCH_WRITES", 20_000);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let boards = [
        ("1 period", &one),
        ("4 periods", &four),
        ("4 periods + 1 blend", &blended),
    ];
    // Warm every board (shards created, scripts cached) before measuring.
    for (_, board) in boards {
        round(store.clone(), board, writes / 10, cpu, 1).await;
    }
    let mut measured: Vec<Vec<Round>> = vec![Vec::new(); boards.len()];
    for r in 0..rounds {
        for (i, (_, board)) in boards.iter().enumerate() {
            measured[i].push(round(store.clone(), board, writes, cpu, 7 + r as u64).await);
        }
    }
    let summary = |rs: &[Round]| {
        (
            median(rs.iter().map(|r| r.rate).collect()),
            median(rs.iter().map(|r| r.p50_us).collect()),
            median(rs.iter().map(|r| r.p99_us).collect()),
            median(rs.iter().map(|r| r.cpu_us_per_write).collect()),
        )
    };
    let base = summary(&measured[0]);
    for (i, (label, _)) in boards.iter().enumerate() {
        let (rate, p50, p99, cpu) = summary(&measured[i]);
        print!(
            "{name:<8} {label:<20} {rate:>9.0} writes/s  p50 {p50:>7.0} us  p99 {p99:>7.0} us  cpu {cpu:>6.1} us/write"
        );
        if i > 0 {
            print!(
                "  | vs 1 period: throughput {:.2}x, p99 {:.2}x, cpu/write {:.2}x",
                rate / base.0,
                p99 / base.2,
                cpu / base.3
            );
        }
        println!();
    }
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!(
        "periods bench: {} writes x {} rounds per board, {CONCURRENCY} concurrent writers, {MEMBERS} members (median over rounds)",
        env_or::<usize>("BENCH_WRITES", 20_000),
        env_or::<usize>("BENCH_ROUNDS", 3)
    );
    on_every_store("periods", |s| async move {
        compare(s.name, s.store, &*s.cpu).await;
    })
    .await;
}
