//! The keyed rate limiter against the limiter it replaced, side by side in
//! one run: the median cost of one check with 1,000 and with 150,000
//! distinct client addresses, and how many keys each tracks afterwards.
//! The rate is low (0.01/s, burst 100) so that no bucket refills during
//! the run, as with many clients that each write now and then: then every
//! new client at the map's 100,000-entry mark costs the map a full scan.
//!
//!     cargo bench -p standings-gateway --bench limiter
//!
//! The baseline is the earlier limiter as it was: a token bucket per
//! address in one `Mutex<HashMap>`, which scanned the whole table under the
//! lock once it held 100,000 entries (measured through the gateway: write
//! p50 0.31 ms -> 8.5 ms with 121,000 addresses).

use std::collections::HashMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::Instant;

use standings_gateway::limit::{LimitConfig, RateLimiter};

/// The replaced limiter, verbatim in behaviour.
struct MapLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl MapLimiter {
    const MAX_TRACKED: usize = 100_000;

    fn take(&self, client: IpAddr, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap();
        if buckets.len() >= Self::MAX_TRACKED && !buckets.contains_key(&client) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, (tokens, last)| {
                *tokens + now.saturating_duration_since(*last).as_secs_f64() * rate < burst
            });
        }
        let bucket = buckets.entry(client).or_insert((self.burst, now));
        let elapsed = now.saturating_duration_since(bucket.1).as_secs_f64();
        bucket.0 = (bucket.0 + elapsed * self.rate).min(self.burst);
        bucket.1 = now;
        if bucket.0 >= 1.0 {
            bucket.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

fn addr(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
}

/// Mean ns per check over one pass through `distinct` addresses in a
/// shuffled order (a stride coprime to the count): on the first pass every
/// check is a new client, on the second every check is a known one.
fn pass_ns(distinct: u32, check: &mut impl FnMut(IpAddr, Instant) -> bool) -> f64 {
    let started = Instant::now();
    let mut at = 0u64;
    for _ in 0..distinct {
        black_box(check(addr(at as u32), Instant::now()));
        at = (at + 7919) % u64::from(distinct);
    }
    started.elapsed().as_nanos() as f64 / f64::from(distinct)
}

fn main() {
    println!("| distinct clients | pass | limiter ns/check | replaced map ns/check | ratio map/limiter |");
    println!("| --- | --- | --- | --- | --- |");
    for distinct in [1_000u32, 150_000] {
        let limiter = RateLimiter::with_config(LimitConfig {
            rate_per_sec: 0.01,
            burst: 100,
            max_keys: 100_000,
        })
        .expect("a limit");
        let map = MapLimiter {
            rate: 0.01,
            burst: 100.0,
            buckets: Mutex::new(HashMap::new()),
        };
        let mut ours = |a: IpAddr, now| limiter.check(&a, now).is_allowed();
        let mut theirs = |a: IpAddr, now| map.take(a, now);
        for pass in ["new clients", "known clients"] {
            let (o, t) = (pass_ns(distinct, &mut ours), pass_ns(distinct, &mut theirs));
            println!("| {distinct} | {pass} | {o:.0} | {t:.0} | {:.1} |", t / o);
        }
        println!(
            "| {distinct} | keys tracked after | {} | {} | |",
            limiter.tracked(),
            map.buckets.lock().unwrap().len()
        );
    }
}
