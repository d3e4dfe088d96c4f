//! Per-client write rate limits: GCRA over a bounded concurrent cache.
//!
//! Writes are what a misbehaving client can hurt (each is a store round
//! trip and a version bump); reads are served from memory or bounded
//! fan-outs, so only writes are limited. Over the limit a write is refused
//! before it reaches the store, with 429 and `Retry-After`.
//!
//! # Why this shape
//!
//! The first limiter kept a token bucket per client address in one
//! `Mutex<HashMap<IpAddr, Bucket>>`. The map grew without bound, and once it
//! held 100,000 entries every write from a new address scanned the whole
//! table under the one lock to drop idle buckets: with 121,000 distinct
//! client addresses the write p50 went from 0.31 ms to 8.5 ms. This module
//! keeps the same per-client limit with work per check that does not depend
//! on how many clients there are, and memory that is bounded whatever their
//! number:
//!
//! * **GCRA** (the generic cell rate algorithm, the one the `governor` crate
//!   implements): the whole state of a key is one `u64`, its *theoretical
//!   arrival time* (TAT) in nanoseconds since an [`Instant`] taken when the
//!   limiter is built. With emission interval `T = 1 / rate` and tolerance
//!   `tau = burst * T`, a request at `now` is allowed when
//!   `max(tat, now) + T - now <= tau`, and then the TAT becomes
//!   `max(tat, now) + T`. That is exactly a token bucket of `burst` tokens
//!   refilled at `rate` per second, with no floating point on the hot path.
//! * **A bounded cache of keys**: [`quick_cache::sync::Cache`] (sharded,
//!   S3-FIFO-like eviction, no background threads) holds at most
//!   [`LimitConfig::max_keys`] keys. Each value is an `Arc<AtomicU64>`
//!   updated with a compare-and-swap loop outside the cache's locks, so
//!   concurrent requests for one key are counted exactly and a hit takes
//!   only a shard's read lock. A miss inserts through the cache's
//!   placeholder, so racing first requests of one key share one cell.
//!
//! # The trade-off: an evicted key starts with a full burst
//!
//! When the cache is full, a new key evicts one that has not been used
//! lately; if that key comes back it starts again with a full burst, as a
//! new client would. A client can therefore get a fresh burst only by
//! staying away long enough to be evicted, or by an attacker pushing enough
//! new keys through the cache. S3-FIFO makes the latter slow: once the
//! cache is full, new keys enter a small probationary queue and are evicted
//! from it first unless seen again, while keys seen again (the clients
//! actually being limited) sit in the main queue (see the test
//! `a_key_used_again_and_again_survives_a_flood_of_new_keys`). Sizing `max_keys` above the number of clients active within one
//! refill period (`burst / rate`) makes the effect vanish for honest
//! traffic. We accept it in exchange for a hard memory bound.
//!
//! `governor`'s keyed limiters were the other candidate: they use the same
//! GCRA, but their keyed stores (`DashMap` or a `Mutex<HashMap>`) grow with
//! every distinct key, and `retain_recent` is a periodic whole-table sweep
//! that can only drop keys that are already idle: it cannot bound a burst of
//! new keys arriving between sweeps, which is the very case that hurt us.
//!
//! # Memory bound
//!
//! Per tracked key, with `K = IpAddr` on x86-64 and quick_cache 0.7, as
//! `Cache::memory_used` counts it (the test `memory_per_key_is_bounded`):
//!
//! * one slab entry, 48 bytes: the 17-byte key and the 8-byte `Arc`
//!   pointer, plus quick_cache's per-entry overhead (21 bytes by its docs:
//!   list links, state) and padding;
//! * half a slab entry more, 24 bytes: quick_cache remembers the hashes of
//!   recently evicted keys ("ghosts", half the capacity by default) in slots
//!   of the same size;
//! * about 13 bytes of hash table (a 4-byte index and a control byte per
//!   bucket, the bucket count a power of two);
//! * the `Arc<AtomicU64>` heap block, 24 bytes (32 with malloc's header).
//!
//! That is about 110 bytes per key: **about 11 MB for the default 100,000
//! keys** (10.9 MB by quick_cache's count plus the `Arc` blocks, 11.7 MB with
//! allocator rounding), and it stays there however many distinct clients
//! arrive (quick_cache's own rule of thumb, `(key + value + 21) * (1.5 *
//! keys).next_power_of_two()`, gives 12 MB as an upper estimate). A debug
//! build's resident set grew by about 14 MB over 400,000 distinct
//! addresses, allocator overhead included.
//!
//! # Keys and headers
//!
//! [`Limiter`] is generic over its key, so limits can be keyed by API key or
//! tenant as well as by client address ([`RateLimiter`] is the address
//! keyed one the gateway uses). [`client_ip`] finds the client address
//! behind trusted proxies; [`rate_limit_headers`] renders a decision as the
//! IETF `RateLimit-Policy` and `RateLimit` fields.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
pub use ipnet::IpNet;
use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{OptionsBuilder, UnitWeighter};

/// Keys tracked at once unless configured otherwise.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// Nanoseconds in a second.
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Smallest shard quick_cache is happy with; fewer, larger shards below it.
const MIN_KEYS_PER_SHARD: usize = 32;

/// Slab slots reserved per shard beyond its keys and ghosts, for the
/// placeholders of misses in flight (a miss holds one until it is inserted
/// and the shard evicts); past it a shard's slab would double.
const PLACEHOLDER_HEADROOM: usize = 64;

/// How a [`Limiter`] limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitConfig {
    /// Requests per second per key, sustained. 0 (or anything not above 0)
    /// means no limit.
    pub rate_per_sec: f64,
    /// How many requests a key that has been quiet may send at once; 0 is
    /// taken as 1.
    pub burst: u32,
    /// Most keys tracked at once; beyond it the least useful are evicted
    /// (and start again with a full burst). 0 is taken as 1.
    pub max_keys: usize,
}

impl LimitConfig {
    /// `rate_per_sec` and `burst` with [`DEFAULT_MAX_KEYS`].
    pub fn new(rate_per_sec: f64, burst: u32) -> Self {
        Self {
            rate_per_sec,
            burst,
            max_keys: DEFAULT_MAX_KEYS,
        }
    }
}

/// What [`Limiter::check`] decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The request may go ahead; it has been counted.
    Allowed {
        /// How many more requests would be allowed right now.
        remaining: u32,
        /// Time until the key's bucket is full again.
        reset: Duration,
    },
    /// The request is over the limit; it has not been counted.
    Limited {
        /// Time until one request would be allowed.
        retry_after: Duration,
        /// Time until the key's bucket is full again.
        reset: Duration,
    },
}

impl Decision {
    /// Whether the request may go ahead.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed { .. })
    }

    /// How many more requests would be allowed right now (0 when limited).
    pub fn remaining(&self) -> u32 {
        match *self {
            Self::Allowed { remaining, .. } => remaining,
            Self::Limited { .. } => 0,
        }
    }

    /// Time until the key's bucket is full again.
    pub fn reset(&self) -> Duration {
        match *self {
            Self::Allowed { reset, .. } | Self::Limited { reset, .. } => reset,
        }
    }
}

/// The cache of per-key theoretical arrival times.
///
/// SipHash (std's `RandomState`) rather than quick_cache's faster default:
/// keys are chosen by clients (an IPv6 client picks from 2^64 addresses, an
/// API key is any string), so the table must not be open to hash flooding.
type TatCache<K> =
    Cache<K, Arc<AtomicU64>, UnitWeighter, RandomState, DefaultLifecycle<K, Arc<AtomicU64>>>;

/// A GCRA rate limiter keyed by `K`, tracking a bounded number of keys.
///
/// See the [module docs](self) for the algorithm and the eviction trade-off.
pub struct Limiter<K> {
    /// TAT of each tracked key, in nanoseconds since `base`.
    tats: TatCache<K>,
    /// The origin of the stored TATs; `now` before it counts as `base`.
    base: Instant,
    /// `T`: nanoseconds between requests at the sustained rate (at least 1).
    emission_ns: u64,
    /// `tau = burst * T`: how far ahead of `now` a TAT may run.
    tolerance_ns: u64,
    /// The burst, at least 1.
    burst: u32,
    /// The configured bound on tracked keys (at least 1).
    max_keys: usize,
}

/// Client-address limiter, the one the gateway uses today.
pub type RateLimiter = Limiter<IpAddr>;

impl<K> Limiter<K>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    /// `rate` requests per second per key, bursts up to `burst`, tracking at
    /// most [`DEFAULT_MAX_KEYS`] keys; `None` when `rate` is 0 (no limit).
    pub fn new(rate: f64, burst: u32) -> Option<Self> {
        Self::with_config(LimitConfig::new(rate, burst))
    }

    /// A limiter as `config` says; `None` when its rate is not above 0 (no
    /// limit).
    pub fn with_config(config: LimitConfig) -> Option<Self> {
        let rate = config.rate_per_sec;
        if rate.is_nan() || rate <= 0.0 {
            return None;
        }
        let burst = config.burst.max(1);
        // Keep `tau` far from overflow: this only matters for rates below
        // about one request per century.
        let max_emission = (u64::MAX / 4) / u64::from(burst);
        let emission = (NANOS_PER_SEC as f64 / rate).round();
        let emission_ns = if emission >= max_emission as f64 {
            max_emission
        } else {
            (emission as u64).max(1)
        };
        let max_keys = config.max_keys.max(1);
        Some(Self {
            tats: new_cache(max_keys),
            base: Instant::now(),
            emission_ns,
            tolerance_ns: emission_ns * u64::from(burst),
            burst,
            max_keys,
        })
    }

    /// Counts one request of `key` at `now` if the limit allows it.
    ///
    /// Exact under concurrency for a tracked key: of any number of
    /// simultaneous checks, exactly as many are allowed as the bucket
    /// holds.
    pub fn check(&self, key: &K, now: Instant) -> Decision {
        let now = self.nanos_since_base(now);
        let cell = match self.tats.get_or_insert_with(key, || {
            Ok::<_, std::convert::Infallible>(Arc::new(AtomicU64::new(0)))
        }) {
            Ok(cell) => cell,
            Err(never) => match never {},
        };
        let (t, tau) = (self.emission_ns, self.tolerance_ns);
        let mut tat = cell.load(Ordering::Acquire);
        loop {
            // A TAT in the past is a full bucket: it restarts from `now`.
            let start = tat.max(now);
            let next = start.saturating_add(t);
            let ahead = next - now;
            if ahead > tau {
                return Decision::Limited {
                    retry_after: Duration::from_nanos(ahead - tau),
                    reset: Duration::from_nanos(start - now),
                };
            }
            match cell.compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    return Decision::Allowed {
                        // At most burst - 1, so it fits.
                        remaining: u32::try_from((tau - ahead) / t).unwrap_or(u32::MAX),
                        reset: Duration::from_nanos(ahead),
                    };
                }
                Err(current) => tat = current,
            }
        }
    }

    /// How many keys are tracked now; never more than the configured
    /// `max_keys`.
    pub fn tracked(&self) -> usize {
        self.tats.len()
    }

    /// The configured bound on tracked keys.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// Roughly how many bytes the tracked keys take: the cache's own
    /// structures (as quick_cache counts them: slab entries, ghosts included,
    /// and hash table) plus one `Arc<AtomicU64>` block per tracked key. Heap
    /// memory the keys own (a `String` key's text) is not counted.
    pub fn memory_bytes(&self) -> usize {
        // An `Arc`'s heap block: strong and weak counts, then the value.
        const ARC_BLOCK: usize =
            2 * std::mem::size_of::<usize>() + std::mem::size_of::<AtomicU64>();
        self.tats.memory_used().total() + self.tats.len() * ARC_BLOCK
    }

    /// The limit as "`quota` requests per `window` seconds", for the
    /// `RateLimit-Policy` field: the burst, per the time it takes to refill
    /// (rounded up to whole seconds, at least 1). A client that sends no
    /// more than `quota` requests in any `window` seconds is never refused.
    /// The rate actually allowed is at least `quota / window`: more when the
    /// refill time is not a whole number of seconds, or under one second.
    pub fn policy(&self) -> (u32, u64) {
        (self.burst, ceil_secs(self.tolerance_ns).max(1))
    }

    /// Compatibility with the first limiter: takes one request for `key` at
    /// `now`, or says how long until one would be allowed.
    pub fn take(&self, key: K, now: Instant) -> Result<(), Duration> {
        match self.check(&key, now) {
            Decision::Allowed { .. } => Ok(()),
            Decision::Limited { retry_after, .. } => Err(retry_after),
        }
    }

    fn nanos_since_base(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.base).as_nanos();
        u64::try_from(since).unwrap_or(u64::MAX)
    }
}

impl<K> fmt::Debug for Limiter<K>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("emission_ns", &self.emission_ns)
            .field("burst", &self.burst)
            .field("max_keys", &self.max_keys)
            .field("tracked", &self.tats.len())
            .finish_non_exhaustive()
    }
}

/// A cache that never holds more than `max_keys` keys.
///
/// quick_cache bounds each shard separately, at its capacity divided by the
/// shard count rounded *up*, so the total can pass a capacity that is not a
/// multiple of the shard count. Choosing the (power of two) shard count here
/// and giving each shard `max_keys / shards` keeps the sum at or under
/// `max_keys`. The slabs and tables are reserved up front for the keys, the
/// ghosts and some placeholders, so they never reallocate (a copy of a whole
/// shard under its lock) and never carry a doubling's slack; untouched
/// pages cost no resident memory until keys arrive.
fn new_cache<K: Hash + Eq + Clone>(max_keys: usize) -> TatCache<K> {
    let cores = std::thread::available_parallelism().map_or(4, NonZeroUsize::get);
    let mut shards = cores.saturating_mul(4).next_power_of_two();
    while shards > 1 && max_keys / shards < MIN_KEYS_PER_SHARD {
        shards /= 2;
    }
    let capacity = (max_keys / shards) * shards;
    let options = OptionsBuilder::new()
        .shards(shards)
        .estimated_items_capacity(capacity)
        .weight_capacity(capacity as u64)
        .build()
        .expect("both capacities are set");
    let cache = Cache::with_options(
        options,
        UnitWeighter,
        RandomState::new(),
        DefaultLifecycle::default(),
    );
    cache.reserve(capacity + shards * PLACEHOLDER_HEADROOM);
    cache
}

/// Whole seconds in `nanos`, rounded up.
fn ceil_secs(nanos: u64) -> u64 {
    nanos.div_ceil(NANOS_PER_SEC)
}

/// `X-Forwarded-For`, which `http` has no constant for.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// `RateLimit-Policy`, lower case as `HeaderName` wants it.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`, lower case as `HeaderName` wants it.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The `RateLimit-Policy` and `RateLimit` fields for `decision` under the
/// policy `name` with `policy` = [`Limiter::policy`], as
/// draft-ietf-httpapi-ratelimit-headers-10 (sections 3 and 4; the form is
/// the same from -08 to -11) defines them:
///
/// ```text
/// RateLimit-Policy: "<name>";q=<quota>;w=<window seconds>
/// RateLimit: "<name>";r=<remaining>;t=<seconds until full, rounded up>
/// ```
///
/// The name is a structured-field String: `"` and `\` are escaped, and
/// anything outside printable ASCII (which a String cannot hold) becomes
/// `_`.
pub fn rate_limit_headers(
    name: &str,
    policy: (u32, u64),
    decision: &Decision,
) -> [(HeaderName, HeaderValue); 2] {
    let name = sf_string(name);
    let (quota, window) = policy;
    let policy = format!("{name};q={quota};w={window}");
    let reset = decision.reset();
    let reset_secs = reset.as_secs() + u64::from(reset.subsec_nanos() > 0);
    let limit = format!("{name};r={};t={reset_secs}", decision.remaining());
    [
        (RATELIMIT_POLICY, header_value(policy)),
        (RATELIMIT, header_value(limit)),
    ]
}

/// `s` as a structured-field String (RFC 8941 section 3.3.3), quotes
/// included.
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('_'),
        }
    }
    out.push('"');
    out
}

fn header_value(s: String) -> HeaderValue {
    HeaderValue::try_from(s).expect("printable ASCII only")
}

pub use standings_config::parse_net;

/// The address to limit a request by: `peer` (the TCP peer) itself unless
/// it is one of the `trusted` proxies, in which case the rightmost address
/// of `X-Forwarded-For` that is not itself trusted.
///
/// Each proxy appends the address it received the request from, so the
/// entries to the right were written by our own proxies and those to the
/// left by whoever sent the request: walking from the right and stopping at
/// the first untrusted address means a client cannot choose its key by
/// sending an `X-Forwarded-For` of its own. If every entry is trusted the
/// leftmost is taken (the request began inside our own network). The peer
/// is used when the header is missing, or when an entry reached on the walk
/// is not an address (a bare address, `a.b.c.d:port` and `[v6]:port` are
/// understood). Several `X-Forwarded-For` lines are read as one list, in
/// order. IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, as a dual-stack
/// socket reports IPv4 peers) match IPv4 networks.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |addr: IpAddr| {
        let addr = addr.to_canonical();
        trusted.iter().any(|net| net.contains(&addr))
    };
    if !is_trusted(peer) {
        return peer;
    }
    let mut lines = Vec::new();
    for value in headers.get_all(X_FORWARDED_FOR) {
        match value.to_str() {
            Ok(line) => lines.push(line),
            Err(_) => return peer,
        }
    }
    let mut leftmost = None;
    for entry in lines.iter().rev().flat_map(|line| line.rsplit(',')) {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let Some(addr) = parse_forwarded_addr(entry) else {
            return peer;
        };
        if !is_trusted(addr) {
            return addr;
        }
        leftmost = Some(addr);
    }
    leftmost.unwrap_or(peer)
}

/// One `X-Forwarded-For` entry: `a.b.c.d`, `v6`, `[v6]`, `a.b.c.d:port`
/// or `[v6]:port`.
fn parse_forwarded_addr(entry: &str) -> Option<IpAddr> {
    if let Ok(addr) = entry.parse::<IpAddr>() {
        return Some(addr);
    }
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .and_then(|e| e.parse::<std::net::Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::sync::Barrier;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

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
        assert!(RateLimiter::new(-1.0, 10).is_none());
        assert!(RateLimiter::new(f64::NAN, 10).is_none());
        assert!(RateLimiter::new(0.001, 10).is_some());
    }

    #[test]
    fn allows_a_burst_then_refuses_then_refills_at_the_rate() {
        let limiter = Limiter::<u32>::new(10.0, 5).unwrap();
        let t0 = Instant::now();
        for i in 0..5 {
            assert!(
                limiter.check(&1, t0).is_allowed(),
                "request {i} of the burst"
            );
        }
        assert!(!limiter.check(&1, t0).is_allowed(), "the burst is spent");
        assert!(!limiter.check(&1, t0 + ms(99)).is_allowed(), "not yet");
        assert!(
            limiter.check(&1, t0 + ms(100)).is_allowed(),
            "one per 100 ms"
        );
        assert!(!limiter.check(&1, t0 + ms(100)).is_allowed());
        // Sustained at the rate: one every 100 ms is always allowed.
        for i in 2..50 {
            assert!(limiter.check(&1, t0 + ms(100 * i)).is_allowed());
        }
        // A long quiet spell refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(3600);
        let allowed = (0..20).filter(|_| limiter.check(&1, later).is_allowed());
        assert_eq!(allowed.count(), 5);
    }

    #[test]
    fn keys_are_independent() {
        let limiter = Limiter::<String>::new(1.0, 2).unwrap();
        let t0 = Instant::now();
        let (a, b) = ("api-key-a".to_string(), "api-key-b".to_string());
        assert!(limiter.check(&a, t0).is_allowed());
        assert!(limiter.check(&a, t0).is_allowed());
        assert!(!limiter.check(&a, t0).is_allowed());
        assert!(limiter.check(&b, t0).is_allowed(), "b has its own bucket");
        assert!(limiter.check(&b, t0).is_allowed());
        assert!(!limiter.check(&b, t0).is_allowed());
        assert_eq!(limiter.tracked(), 2);

        let tenants = Limiter::<(u32, IpAddr)>::new(1.0, 1).unwrap();
        assert!(tenants.check(&(1, ip("10.0.0.1")), t0).is_allowed());
        assert!(tenants.check(&(2, ip("10.0.0.1")), t0).is_allowed());
        assert!(!tenants.check(&(1, ip("10.0.0.1")), t0).is_allowed());
    }

    #[test]
    fn decisions_say_remaining_retry_after_and_reset() {
        // 2 per second: one request every 500 ms, bursts of 3.
        let limiter = RateLimiter::new(2.0, 3).unwrap();
        let a = ip("192.0.2.1");
        let t0 = Instant::now();
        let allowed = |remaining, reset| Decision::Allowed { remaining, reset };
        let limited = |retry_after, reset| Decision::Limited { retry_after, reset };
        assert_eq!(limiter.check(&a, t0), allowed(2, ms(500)));
        assert_eq!(limiter.check(&a, t0), allowed(1, ms(1000)));
        assert_eq!(limiter.check(&a, t0), allowed(0, ms(1500)));
        assert_eq!(limiter.check(&a, t0), limited(ms(500), ms(1500)));
        assert_eq!(
            limiter.check(&a, t0 + ms(200)),
            limited(ms(300), ms(1300)),
            "a refused request is not counted"
        );
        assert_eq!(limiter.check(&a, t0 + ms(500)), allowed(0, ms(1500)));
        assert_eq!(limiter.check(&a, t0 + ms(1250)), allowed(0, ms(1250)));
        assert_eq!(limiter.check(&a, t0 + ms(1500)), allowed(0, ms(1500)));
        assert_eq!(
            limiter.check(&a, t0 + Duration::from_secs(10)),
            allowed(2, ms(500)),
            "full again"
        );
        let d = limiter.check(&a, t0 + Duration::from_secs(10));
        assert_eq!((d.remaining(), d.reset()), (1, ms(1000)));
    }

    #[test]
    fn time_before_the_limiter_counts_as_its_start() {
        let t0 = Instant::now();
        let limiter = RateLimiter::new(1.0, 1).unwrap();
        let a = ip("192.0.2.1");
        assert!(limiter.check(&a, t0).is_allowed());
        assert!(!limiter.check(&a, t0).is_allowed());
    }

    #[test]
    fn tracked_keys_stay_within_max_keys() {
        let limiter = RateLimiter::new(1.0, 5).unwrap();
        assert_eq!(limiter.max_keys(), DEFAULT_MAX_KEYS);
        let t0 = Instant::now();
        for i in 0..150_000u32 {
            let key = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            assert!(
                limiter.check(&key, t0).is_allowed(),
                "a new key has its burst"
            );
            assert!(limiter.tracked() <= DEFAULT_MAX_KEYS);
        }
        assert!(limiter.tracked() <= DEFAULT_MAX_KEYS);
        assert!(
            limiter.tracked() > DEFAULT_MAX_KEYS * 9 / 10,
            "the cache is used, tracked {}",
            limiter.tracked()
        );
        // Capacities that are not a multiple of the shard count hold too.
        for max_keys in [1, 7, 100, 1_001, 12_345] {
            let config = LimitConfig {
                max_keys,
                ..LimitConfig::new(1.0, 5)
            };
            let limiter = Limiter::<u32>::with_config(config).unwrap();
            for key in 0..(max_keys as u32) * 3 + 10 {
                limiter.check(&key, t0);
                assert!(limiter.tracked() <= max_keys, "max_keys {max_keys}");
            }
        }
    }

    #[test]
    fn memory_per_key_is_bounded() {
        let limiter = RateLimiter::new(1.0, 5).unwrap();
        let t0 = Instant::now();
        let check_range = |keys: std::ops::Range<u32>| {
            for i in keys {
                limiter.check(&IpAddr::V4(Ipv4Addr::from(i)), t0);
            }
        };
        check_range(0..150_000);
        let full = limiter.memory_bytes();
        let per_key = full / limiter.tracked();
        assert!(per_key <= 120, "{per_key} bytes per tracked key");
        check_range(150_000..300_000);
        assert!(
            limiter.memory_bytes() <= full + full / 50,
            "more distinct keys, no more memory: {} then {}",
            full,
            limiter.memory_bytes()
        );
        assert!(limiter.memory_bytes() <= 12_000_000);
    }

    #[test]
    fn a_key_used_again_and_again_survives_a_flood_of_new_keys() {
        let config = LimitConfig {
            max_keys: 1_000,
            ..LimitConfig::new(1.0, 3)
        };
        let limiter = Limiter::<u32>::with_config(config).unwrap();
        let t0 = Instant::now();
        let heavy = u32::MAX;
        for i in 0..10_000u32 {
            limiter.check(&i, t0);
            limiter.check(&heavy, t0);
        }
        assert!(
            !limiter.check(&heavy, t0).is_allowed(),
            "the limited key kept its state"
        );
    }

    #[test]
    fn concurrent_checks_of_one_key_admit_exactly_the_burst() {
        for round in 0..5 {
            let limiter = RateLimiter::new(1.0, 100).unwrap();
            let key = ip("198.51.100.7");
            let now = Instant::now();
            let start = Barrier::new(4);
            let allowed: usize = std::thread::scope(|s| {
                let workers: Vec<_> = (0..4)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            (0..1000)
                                .filter(|_| limiter.check(&key, now).is_allowed())
                                .count()
                        })
                    })
                    .collect();
                workers.into_iter().map(|w| w.join().unwrap()).sum()
            });
            assert_eq!(allowed, 100, "round {round}");
            assert_eq!(limiter.tracked(), 1);
        }
    }

    #[test]
    fn policy_is_the_burst_per_refill_time() {
        let policy = |rate, burst| RateLimiter::new(rate, burst).unwrap().policy();
        assert_eq!(policy(2.0, 3), (3, 2), "1.5 s rounded up");
        assert_eq!(policy(10.0, 20), (20, 2));
        assert_eq!(policy(100.0, 10), (10, 1), "at least 1 s");
        assert_eq!(policy(0.5, 1), (1, 2));
        assert_eq!(policy(1.0, 0), (1, 1), "a burst of 0 is 1");
    }

    #[test]
    fn headers_follow_the_ietf_draft() {
        let limiter = RateLimiter::new(2.0, 3).unwrap();
        let a = ip("192.0.2.1");
        let t0 = Instant::now();
        let first = limiter.check(&a, t0);
        let [(policy_name, policy), (limit_name, limit)] =
            rate_limit_headers("writes", limiter.policy(), &first);
        assert_eq!(policy_name.as_str(), "ratelimit-policy");
        assert_eq!(policy, "\"writes\";q=3;w=2");
        assert_eq!(limit_name.as_str(), "ratelimit");
        assert_eq!(limit, "\"writes\";r=2;t=1", "500 ms rounds up to 1 s");

        limiter.check(&a, t0);
        limiter.check(&a, t0);
        let refused = limiter.check(&a, t0);
        let [_, (_, limit)] = rate_limit_headers("writes", limiter.policy(), &refused);
        assert_eq!(limit, "\"writes\";r=0;t=2");

        let full = Decision::Allowed {
            remaining: 7,
            reset: Duration::from_secs(4),
        };
        let [(_, policy), (_, limit)] = rate_limit_headers("a\"b\\c\u{e9}", (8, 4), &full);
        assert_eq!(policy, r#""a\"b\\c_";q=8;w=4"#);
        assert_eq!(limit, r#""a\"b\\c_";r=7;t=4"#, "whole seconds stay");
    }

    #[test]
    fn nets_parse_with_clear_errors() {
        let net = |s| parse_net(s).unwrap().to_string();
        assert_eq!(net("127.0.0.1/32"), "127.0.0.1/32");
        assert_eq!(net("10.0.0.0/8"), "10.0.0.0/8");
        assert_eq!(net("10.1.2.3/8"), "10.0.0.0/8");
        assert_eq!(net("::1/128"), "::1/128");
        assert_eq!(net("127.0.0.1"), "127.0.0.1/32");
        assert_eq!(net(" ::1 "), "::1/128");
        assert_eq!(net("2001:db8::/32"), "2001:db8::/32");
        for bad in [
            "",
            "localhost",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/x",
        ] {
            let err = parse_net(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        assert!(parse_net("10.0.0.0/33").unwrap_err().contains("0 to 32"));
        assert!(parse_net("10.0.0/8")
            .unwrap_err()
            .contains("not an IP address"));
    }

    fn xff(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(X_FORWARDED_FOR, HeaderValue::from_str(line).unwrap());
        }
        headers
    }

    #[test]
    fn client_ip_takes_the_rightmost_untrusted_address() {
        let trusted = [parse_net("10.0.0.0/8").unwrap(), parse_net("::1").unwrap()];
        let proxy = ip("10.0.0.1");
        let client = ip("203.0.113.9");

        // An untrusted peer is the client, whatever it says.
        let outsider = ip("198.51.100.1");
        assert_eq!(
            client_ip(outsider, &xff(&["203.0.113.9"]), &trusted),
            outsider
        );
        assert_eq!(client_ip(outsider, &HeaderMap::new(), &[]), outsider);

        // Behind a trusted proxy, the address it saw.
        assert_eq!(client_ip(proxy, &xff(&["203.0.113.9"]), &trusted), client);
        // Prepended entries are the client's own words: skipped.
        assert_eq!(
            client_ip(proxy, &xff(&["6.6.6.6, 10.9.9.9, 203.0.113.9"]), &trusted),
            client
        );
        // A chain of our own proxies is walked through.
        assert_eq!(
            client_ip(
                proxy,
                &xff(&["6.6.6.6, 203.0.113.9, 10.0.0.7,10.0.0.8"]),
                &trusted
            ),
            client
        );
        // Several header lines are one list.
        assert_eq!(
            client_ip(
                proxy,
                &xff(&["6.6.6.6", "203.0.113.9", "10.0.0.7"]),
                &trusted
            ),
            client
        );
        // Ports are understood.
        assert_eq!(
            client_ip(proxy, &xff(&["203.0.113.9:5555"]), &trusted),
            client
        );
        // All trusted: the leftmost, where the request began.
        assert_eq!(
            client_ip(proxy, &xff(&["10.1.1.1, 10.2.2.2"]), &trusted),
            ip("10.1.1.1")
        );
        // No header, or nothing in it: the peer.
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
        assert_eq!(client_ip(proxy, &xff(&[" , "]), &trusted), proxy);
    }

    #[test]
    fn client_ip_handles_ipv6() {
        let trusted = [
            parse_net("::1/128").unwrap(),
            parse_net("10.0.0.0/8").unwrap(),
        ];
        let loopback = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(
            client_ip(loopback, &xff(&["2001:db8::1"]), &trusted),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_ip(
                loopback,
                &xff(&["2001:db8::6, [2001:db8::1]:443"]),
                &trusted
            ),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_ip(loopback, &xff(&["[2001:db8::1]"]), &trusted),
            ip("2001:db8::1")
        );
        // An IPv4 proxy as a dual-stack socket reports it.
        let mapped = ip("::ffff:10.0.0.1");
        assert_eq!(
            client_ip(mapped, &xff(&["192.0.2.5"]), &trusted),
            ip("192.0.2.5")
        );
        let untrusted_v6 = ip("2001:db8::99");
        assert_eq!(
            client_ip(untrusted_v6, &xff(&["192.0.2.5"]), &trusted),
            untrusted_v6
        );
    }

    #[test]
    fn client_ip_falls_back_to_the_peer_on_garbage() {
        let trusted = [parse_net("10.0.0.0/8").unwrap()];
        let proxy = ip("10.0.0.1");
        assert_eq!(client_ip(proxy, &xff(&["not-an-address"]), &trusted), proxy);
        assert_eq!(client_ip(proxy, &xff(&["unknown"]), &trusted), proxy);
        assert_eq!(
            client_ip(proxy, &xff(&["203.0.113.9, garbage"]), &trusted),
            proxy
        );
        assert_eq!(client_ip(proxy, &xff(&["1.2.3.4.5"]), &trusted), proxy);
        // Garbage to the left of the client is the client's, never read.
        assert_eq!(
            client_ip(proxy, &xff(&["garbage, 203.0.113.9"]), &trusted),
            ip("203.0.113.9")
        );
        // A value that is not text at all.
        let mut headers = HeaderMap::new();
        headers.insert(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"203.0.113.9\xff").unwrap(),
        );
        assert_eq!(client_ip(proxy, &headers, &trusted), proxy);
    }
}
