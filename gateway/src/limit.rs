//! Per-client write rate limits: a token bucket per client IP address.
//!
//! Writes are what a misbehaving client can hurt (each is a store round
//! trip and a version bump); reads are served from memory or bounded
//! fan-outs, so only writes are limited. Over the limit a write is refused
//! before it reaches the store, with 429 and `Retry-After`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most clients tracked at once; beyond it, full (idle) buckets are dropped.
const MAX_TRACKED: usize = 100_000;

/// Token buckets by client address.
pub struct RateLimiter {
    /// Tokens added per second.
    rate: f64,
    /// Bucket size: how many writes a quiet client may send at once.
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// `rate` writes per second per client, bursts up to `burst`; `None`
    /// when `rate` is 0 (no limit).
    pub fn new(rate: f64, burst: u32) -> Option<Self> {
        (rate > 0.0).then(|| Self {
            rate,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one token for `client` at `now`, or says how long until one is
    /// available.
    pub fn take(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&client) {
            self.forget_idle(&mut buckets, now);
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }

    /// Drops buckets that have refilled: those clients start full anyway.
    fn forget_idle(&self, buckets: &mut HashMap<IpAddr, Bucket>, now: Instant) {
        buckets.retain(|_, b| {
            let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
            b.tokens + elapsed * self.rate < self.burst
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_at_the_rate() {
        let limiter = RateLimiter::new(2.0, 3).unwrap();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take(a, t0).is_ok(), "a burst of 3");
        }
        let wait = limiter.take(a, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500), "one token every 500 ms");
        assert!(limiter.take(b, t0).is_ok(), "clients are apart");
        assert!(limiter.take(a, t0 + Duration::from_millis(500)).is_ok());
        assert!(limiter.take(a, t0 + Duration::from_millis(500)).is_err());
        for _ in 0..3 {
            assert!(
                limiter.take(a, t0 + Duration::from_secs(60)).is_ok(),
                "refills to the burst, not beyond"
            );
        }
        assert!(limiter.take(a, t0 + Duration::from_secs(60)).is_err());
    }

    #[test]
    fn zero_rate_means_no_limiter() {
        assert!(RateLimiter::new(0.0, 10).is_none());
    }
}
