//! What `ties = "first_achiever"` costs against `shared`, side by side in
//! one run, on each store: a real 3-master Redis Cluster (started here on
//! loopback ports), the durable embedded store and the memory store.
//!
//! 1. Bytes: every one of `MEMBERS` members written once to a fresh
//!    board of each kind (Redis: the masters' `used_memory` before and
//!    after, per member).
//! 2. Writes: rounds of `incr` writes over `CONCURRENCY` tasks to random
//!    members, alternating the two boards so both see the same machine
//!    noise; every write changes the score, so on the first_achiever board
//!    each one stamps a new tie (the dearer case). Median over rounds of
//!    writes/s, p99 and the store's CPU per write (Redis: the masters'
//!    `used_cpu_sys + used_cpu_user`; in process: the process's CPU).
//! 3. Ranks: `rank::standings` of `RANKS` random members one at a time,
//!    alternating the boards: a count by score (`ZCOUNT` per shard) on
//!    `shared`, the neighbours script's count of entries before the
//!    member's (score, tie) on `first_achiever`, both over every shard.
//!
//! Then the ratios first_achiever / shared. Figures are printed, never
//! asserted. `cargo bench -p standings-core --bench ties` (a release
//! build); `BENCH_MEMBERS` (default 50000), `BENCH_WRITES` (default 20000
//! per round), `BENCH_ROUNDS` (default 3) and `BENCH_RANKS` (default 2000)
//! size it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use standings_core::rank;
use standings_core::{Board, BoardName, MemberId, Op, Score, Store, Ties, Write};
use standings_test_support::bench::{median, on_every_store};
use standings_test_support::process::env_or;

const CONCURRENCY: usize = 64;

fn boards(tag: &str) -> [(&'static str, Board); 2] {
    let named = |n: &str| Board::new(BoardName::new(&format!("bench-{n}-{tag}")).unwrap());
    [
        ("shared", named("shared")),
        (
            "first_achiever",
            Board {
                ties: Ties::FirstAchiever,
                ..named("fa")
            },
        ),
    ]
}

fn member(n: u64) -> MemberId {
    MemberId::new(&format!("user:{n}")).unwrap()
}

fn write(n: u64, op: Op, value: f64) -> Write {
    Write {
        member: member(n),
        op,
        value: Score::new(value).unwrap(),
        idempotency_key: None,
        request_id: String::new(),
        meta: None,
    }
}

/// A xorshift step: the same random members for both boards of a round.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Runs `n` calls of `call(i)` over `CONCURRENCY` tasks; answers the
/// latencies.
async fn spread<F, Fut>(n: usize, call: F) -> Vec<Duration>
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let mut tasks = Vec::new();
    for t in 0..CONCURRENCY {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for i in (t..n).step_by(CONCURRENCY) {
                let at = Instant::now();
                call(i).await;
                latencies.push(at.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    all.sort();
    all
}

/// One measured pass: rate, p99 (µs) and CPU µs per call.
#[derive(Clone, Copy)]
struct Pass {
    rate: f64,
    p99_us: f64,
    cpu_us: f64,
}

async fn measure<F, Fut>(n: usize, cpu: &dyn Fn() -> f64, call: F) -> Pass
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let before = cpu();
    let started = Instant::now();
    let all = spread(n, call).await;
    let elapsed = started.elapsed().as_secs_f64();
    let spent = cpu() - before;
    let p99 = all[((all.len() as f64 * 0.99) as usize).min(all.len() - 1)];
    Pass {
        rate: all.len() as f64 / elapsed,
        p99_us: p99.as_secs_f64() * 1e6,
        cpu_us: spent * 1e6 / all.len() as f64,
    }
}

fn summary(passes: &[Pass]) -> Pass {
    Pass {
        rate: median(passes.iter().map(|p| p.rate).collect()),
        p99_us: median(passes.iter().map(|p| p.p99_us).collect()),
        cpu_us: median(passes.iter().map(|p| p.cpu_us).collect()),
    }
}

fn print_pair(name: &str, what: &str, passes: &[Vec<Pass>; 2]) {
    let [shared, fa] = [summary(&passes[0]), summary(&passes[1])];
    for (label, p) in [("shared", shared), ("first_achiever", fa)] {
        println!(
            "{name:<8} {what:<6} {label:<15} {:>9.0}/s  p99 {:>7.0} us  cpu {:>6.1} us each",
            p.rate, p.p99_us, p.cpu_us
        );
    }
    println!(
        "{name:<8} {what:<6} first_achiever / shared: rate {:.2}x, p99 {:.2}x, cpu {:.2}x",
        fa.rate / shared.rate,
        fa.p99_us / shared.p99_us,
        fa.cpu_us / shared.cpu_us
    );
}

async fn compare(
    name: &str,
    store: Arc<dyn Store>,
    cpu: &dyn Fn() -> f64,
    memory: Option<&dyn Fn() -> u64>,
) {
    let members: u64 = env_or("BENCH_MEMBERS", 50_000);
    let writes: usize = env_or("BENCH_WRITES", 20_000);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let ranks: usize = env_or("BENCH_RANKS", 2_000);
    let boards = boards(name);

    // 1. Every member once, scores 0..1000 (about 50 per score).
    for (label, board) in &boards {
        let before = memory.map(|m| m());
        let (store, board) = (store.clone(), board.clone());
        spread(members as usize, move |i| {
            let (store, board) = (store.clone(), board.clone());
            async move {
                let n = i as u64;
                let w = write(n, Op::Set, (n * 7919 % 1000) as f64);
                store.apply(&board, &w).await.expect("seed");
            }
        })
        .await;
        if let (Some(before), Some(m)) = (before, memory) {
            let bytes = m().saturating_sub(before) as f64 / members as f64;
            println!("{name:<8} bytes  {label:<15} {bytes:>7.1} B per member ({members} members, used_memory)");
        }
    }

    // 2. Writes, 3. ranks: alternating the boards each round.
    let mut wrote: [Vec<Pass>; 2] = [Vec::new(), Vec::new()];
    let mut ranked: [Vec<Pass>; 2] = [Vec::new(), Vec::new()];
    for r in 0..rounds as u64 {
        for (i, (_, board)) in boards.iter().enumerate() {
            let (s, b) = (store.clone(), board.clone());
            wrote[i].push(
                measure(writes, cpu, move |k| {
                    let (s, b) = (s.clone(), b.clone());
                    let mut x = (k as u64 + 1) * 0x9e37_79b9 + r;
                    let n = next(&mut x) % members;
                    async move {
                        s.apply(&b, &write(n, Op::Incr, 1.0)).await.expect("write");
                    }
                })
                .await,
            );
        }
        for (i, (_, board)) in boards.iter().enumerate() {
            let (s, b) = (store.clone(), board.clone());
            ranked[i].push(
                measure(ranks, cpu, move |k| {
                    let (s, b) = (s.clone(), b.clone());
                    let mut x = (k as u64 + 7) * 0x85eb_ca6b + r;
                    let m = member(next(&mut x) % members);
                    async move {
                        let got = rank::standings(s.as_ref(), &b, &[m]).await.expect("rank");
                        assert!(got[0].is_some(), "every member has a score");
                    }
                })
                .await,
            );
        }
    }
    print_pair(name, "writes", &wrote);
    print_pair(name, "ranks", &ranked);
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!(
        "ties bench: {} members, {} writes and {} ranks x {} rounds per board, {CONCURRENCY} concurrent callers (median over rounds)",
        env_or::<u64>("BENCH_MEMBERS", 50_000),
        env_or::<usize>("BENCH_WRITES", 20_000),
        env_or::<usize>("BENCH_RANKS", 2_000),
        env_or::<usize>("BENCH_ROUNDS", 3)
    );
    on_every_store("ties", |s| async move {
        compare(s.name, s.store, &*s.cpu, s.memory.as_deref()).await;
    })
    .await;
}
