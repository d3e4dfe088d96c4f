//! Standings configuration: one TOML file, parsed into typed structs with
//! defaults, unknown keys refused, and every value validated before anything
//! starts, with errors that name the file and the key.
//!
//! [`ConfigHandle`] holds the live config behind an `ArcSwap`, so a reload
//! swaps in a new validated config without locking readers; a config that
//! fails validation is refused and the old one stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Deserialize;
use standings_core::events::{EventSource, Feed, LikeSpace, Weights};
use standings_core::{
    Blend, BlendPart, Board, BoardName, Op, Order, PeriodKind, ShardBy, Ties, Timezone,
};

/// The embedded example, compiled in: the config when no `--config` is given.
pub const EMBEDDED_EXAMPLE: &str = include_str!("../examples/embedded.toml");

/// The name used in errors for the compiled-in example.
pub const EMBEDDED_NAME: &str = "<embedded example config>";

/// Why a config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The path given.
        file: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown key or a value of the wrong type.
    #[error("{file}: {message}")]
    Parse {
        /// The path given.
        file: String,
        /// toml's message, which names the key and line.
        message: String,
    },
    /// Well-formed but not usable.
    #[error("{file}: {key}: {message}")]
    Invalid {
        /// The path given.
        file: String,
        /// The dotted key at fault, e.g. `boards[0].shards`.
        key: String,
        /// What is wrong and what would be right.
        message: String,
    },
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where scores live.
    #[serde(default)]
    pub store: StoreConfig,
    /// The HTTP server.
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// The precompute agents.
    #[serde(default)]
    pub agent: AgentConfig,
    /// CDN purging (see `docs/operations.md`).
    #[serde(default)]
    pub cdn: CdnConfig,
    /// The tenants and their API keys; none: every board belongs to
    /// `public`, which needs no key.
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    /// The boards served; at least one.
    #[serde(default)]
    pub boards: Vec<BoardConfig>,
    /// Behaviour events (`POST /v1/events`).
    #[serde(default)]
    pub events: EventsConfig,
    /// Likes: where they live and their anti-abuse rules.
    #[serde(default)]
    pub likes: LikesConfig,
}

/// `[events]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// How long an event id is remembered (`24h`).
    pub dedup_ttl: String,
    /// Events per second one actor may send (0: no limit), with a burst
    /// of one second's worth.
    pub rate_per_actor: f64,
    /// Where the gateway keeps events it could not hand to the store
    /// (Redis down): a durable spool applied in order once the store is
    /// back. Relative paths are relative to the working directory.
    pub spool_dir: String,
    /// At most this many events wait in the spool; past it, 503.
    pub spool_capacity: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            dedup_ttl: "24h".into(),
            rate_per_actor: 0.0,
            spool_dir: "./standings-spool".into(),
            spool_capacity: 100_000,
        }
    }
}

/// `[likes]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LikesConfig {
    /// Shards of each tenant's likes space; every board fed by `target`
    /// events has this many shards (its shards share the likes' slots).
    pub shards: u32,
    /// At most one like action per (actor, target) this often (`1s`;
    /// `0s`: none).
    pub cooldown: String,
    /// How many targets an actor's list keeps, newest first.
    pub recent_per_actor: usize,
}

impl Default for LikesConfig {
    fn default() -> Self {
        Self {
            shards: 100,
            cooldown: "1s".into(),
            recent_per_actor: 1000,
        }
    }
}

/// `source = {events = "target", weights = {like = 2, comment = 3}}` of a
/// board fed by behaviour events.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Whose score moves: `target`, `actor` or `owner`.
    pub events: String,
    /// Points per event type: `like` (an unlike takes it back),
    /// `dislike`, and counted types (`comment`, `share`, ...).
    #[serde(default)]
    pub weights: std::collections::BTreeMap<String, f64>,
}

/// The tenant of boards that name none; it needs no key.
pub const PUBLIC_TENANT: &str = "public";

/// One `[[tenants]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// `[a-z0-9][a-z0-9_-]{0,63}`, not `public`.
    pub id: String,
    /// Its API keys, by the SHA-256 of the key.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// Rates for the tenant's boards, per API key and for the tenant as a
    /// whole; on top of the per-client-address limits of `[gateway]`.
    #[serde(default)]
    pub limits: TenantLimits,
}

/// `limits = {...}` of a tenant: requests per second (0: no limit), each
/// allowing a burst of `burst_seconds` worth of its rate.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantLimits {
    /// Writes per second per API key.
    pub writes_per_key: f64,
    /// Reads per second per API key.
    pub reads_per_key: f64,
    /// Writes per second to the tenant's boards, all keys together.
    pub writes_per_tenant: f64,
    /// Reads per second of the tenant's boards, all callers together
    /// (anonymous `public_reads` included).
    pub reads_per_tenant: f64,
    /// How many seconds of its rate a quiet key or tenant may send at once.
    pub burst_seconds: f64,
}

impl Default for TenantLimits {
    fn default() -> Self {
        Self {
            writes_per_key: 0.0,
            reads_per_key: 0.0,
            writes_per_tenant: 0.0,
            reads_per_tenant: 0.0,
            burst_seconds: 1.0,
        }
    }
}

impl TenantLimits {
    /// The burst that goes with `rate`: `burst_seconds` of it, at least 1.
    pub fn burst(&self, rate: f64) -> u32 {
        (rate * self.burst_seconds)
            .ceil()
            .clamp(1.0, f64::from(u32::MAX)) as u32
    }
}

/// One API key of a tenant. The config holds only the key's SHA-256, so a
/// leaked config file leaks no key (`standings-gateway keygen` prints a new
/// key and its hash).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// A name for the key (board-name pattern), unique in its tenant: what
    /// logs and audit records show instead of the key.
    pub id: String,
    /// 64 hex digits: the SHA-256 of the key's UTF-8 bytes.
    pub sha256: String,
    /// What the key may do: `read`, `write`, `admin`.
    pub scopes: Vec<KeyScope>,
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyScope {
    /// Reads: top, members, around, periods, static JSON.
    Read,
    /// Score writes.
    Write,
    /// The admin API of the tenant's boards.
    Admin,
    /// The routes of the whole gateway, across tenants: backup, reload,
    /// creating boards of any tenant, and the admin routes of `public`
    /// boards once tenants exist. Give it to operators' keys only.
    Operator,
}

impl KeyScope {
    /// The scope as the config and errors spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Read => "read",
            KeyScope::Write => "write",
            KeyScope::Admin => "admin",
            KeyScope::Operator => "operator",
        }
    }
}

/// The SHA-256 of `key` as 32 bytes: how an API key is looked up.
pub fn key_digest(key: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(key).into()
}

/// `hex` (64 hex digits, either case) as 32 bytes.
pub fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// What the gateway's rank index keeps (`gateway.rank_index`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RankIndexMode {
    /// No index: ranks within the bound come from the score cache.
    Off,
    /// How many members hold each score: a few bytes per distinct score;
    /// a rank still reads the member's score and meta live.
    #[default]
    Counts,
    /// The counts and every member's score and meta: ranks within the
    /// bound need no store call at all, for about 100 bytes per member and
    /// period in each gateway.
    Members,
}

/// Which backend holds scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// In-process index, every write committed to `store.data_dir` before
    /// it is acknowledged: the embedded default.
    #[default]
    Embedded,
    /// In-process and volatile: lost on exit. For tests and benchmarks.
    Memory,
    /// A Redis Cluster given by `store.nodes`.
    Redis,
}

impl StoreKind {
    /// Whether the store lives in this process, so the gateway runs the
    /// agents itself.
    pub fn in_process(self) -> bool {
        matches!(self, StoreKind::Embedded | StoreKind::Memory)
    }
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `embedded`, `memory` or `redis`.
    pub kind: StoreKind,
    /// Where the embedded store keeps its database; created on first start.
    pub data_dir: String,
    /// When the embedded store fsyncs: `commit` (before acknowledging a
    /// write; the default) or `interval:100ms` (at most that late; a power
    /// loss can lose that window).
    pub sync: String,
    /// Redis Cluster seed nodes, `host:port`; the client discovers the rest.
    pub nodes: Vec<String>,
    /// Bound on establishing a connection to a node.
    pub connect_timeout_ms: u64,
    /// Bound on any one command; a slow node cannot hold a request longer.
    pub response_timeout_ms: u64,
    /// Retries on MOVED/ASK/connection errors (the client's default retries
    /// for minutes, which would turn an outage into hung requests).
    pub retries: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            kind: StoreKind::Embedded,
            data_dir: "./standings-data".into(),
            sync: "commit".into(),
            nodes: Vec::new(),
            connect_timeout_ms: 1000,
            response_timeout_ms: 1000,
            retries: 2,
        }
    }
}

/// The most `gateway.rank_staleness_ms` accepts: a rank older than the
/// default refresh interval would be staler than `/top` itself.
pub const MAX_RANK_STALENESS_MS: u64 = 60_000;

/// `[gateway]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Address to bind; `--listen` overrides it.
    pub listen: String,
    /// How often group snapshots are merged into the global TOP-K and the
    /// TOP20/100/1000 bodies re-serialised.
    pub refresh_interval_ms: u64,
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// Largest body of `POST .../scores:batch` (413 beyond): 1000 writes
    /// do not fit in `max_body_bytes`.
    pub max_batch_body_bytes: usize,
    /// Bound on one request, so a drain cannot hang.
    pub request_timeout_ms: u64,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace_ms: u64,
    /// Where static JSON files are written; empty for none.
    pub static_dir: String,
    /// Most connections served at once; more wait in the accept queue.
    pub max_connections: usize,
    /// Most connections one client address may hold at once; more are
    /// answered 503 `overloaded` and closed.
    pub max_connections_per_client: usize,
    /// Bound on receiving a request's headers (from accept, or from the
    /// first byte of a later request on a kept-alive connection).
    pub header_read_timeout_ms: u64,
    /// How long a kept-alive connection may sit idle between requests.
    pub keep_alive_idle_ms: u64,
    /// Most live fan-out reads (rank, around) in flight at once; over it,
    /// they are answered 503 `overloaded` at once instead of queueing.
    pub max_fanout_in_flight: usize,
    /// Writes per second allowed per client IP address (0: no limit).
    /// Over it, writes answer 429 with `Retry-After`.
    pub write_rate_per_client: f64,
    /// How many writes a client that has been quiet may send at once.
    pub write_burst_per_client: u32,
    /// Reads per second allowed per client (0: no limit); over it, 429.
    pub read_rate_per_client: f64,
    /// How many reads a client that has been quiet may send at once.
    pub read_burst_per_client: u32,
    /// Most clients the rate limiters track at once (memory stays bounded
    /// whatever the number of distinct clients; about 110 bytes each).
    pub rate_limit_max_clients: usize,
    /// Proxies (addresses or networks, e.g. `10.0.0.0/8`) whose
    /// `X-Forwarded-For` header names the client; the rightmost address not
    /// itself trusted is the client. Empty: the peer address is the client.
    pub trusted_proxies: Vec<String>,
    /// How old a member's rank may be (0: exact as of the request, one
    /// counts fan-out per rank). Above 0 the gateway reuses the counts of
    /// one fan-out for every rank of the same score within this time; the
    /// member's own score is always read live.
    pub rank_staleness_ms: u64,
    /// Most distinct (board, period, score) answers the rank cache keeps
    /// (about 100 bytes each).
    pub rank_cache_entries: usize,
    /// With `rank_staleness_ms` above 0 and a Redis Cluster store, what
    /// the stream-fed rank index keeps (counts per score, or members too),
    /// with the score cache as the fallback; `off`: the cache alone.
    pub rank_index: RankIndexMode,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            refresh_interval_ms: 60_000,
            max_body_bytes: 64 * 1024,
            max_batch_body_bytes: 1024 * 1024,
            request_timeout_ms: 5_000,
            shutdown_grace_ms: 5_000,
            static_dir: String::new(),
            max_connections: 10_000,
            max_connections_per_client: 256,
            header_read_timeout_ms: 5_000,
            keep_alive_idle_ms: 60_000,
            max_fanout_in_flight: 64,
            write_rate_per_client: 0.0,
            write_burst_per_client: 100,
            read_rate_per_client: 0.0,
            read_burst_per_client: 200,
            rate_limit_max_clients: 100_000,
            trusted_proxies: Vec::new(),
            rank_staleness_ms: 0,
            rank_cache_entries: 100_000,
            rank_index: RankIndexMode::Counts,
        }
    }
}

/// `[agent]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// How often shard agents publish moved shards and group agents merge.
    pub precompute_interval_ms: u64,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            precompute_interval_ms: 300_000,
        }
    }
}

/// `[cdn]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CdnConfig {
    /// CDN endpoints to send `PURGE` to when a board's static JSON changes,
    /// e.g. `http://127.0.0.1:6081`; `--cdn-purge-url` adds more.
    pub purge_urls: Vec<String>,
    /// Bound on one purge request.
    pub timeout_ms: u64,
    /// Retries of a failed purge.
    pub retries: u32,
    /// Also purge by surrogate key: `xkey` (Varnish xkey) or `fastly`.
    pub surrogate_key: Option<String>,
}

impl Default for CdnConfig {
    fn default() -> Self {
        Self {
            purge_urls: Vec::new(),
            timeout_ms: 2_000,
            retries: 3,
            surrogate_key: None,
        }
    }
}

/// One `[[boards]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardConfig {
    /// `[a-z0-9][a-z0-9_-]{0,63}`.
    pub name: String,
    /// Kept for configs written before `periods`: only `all` (the default)
    /// is accepted; a board in time lists `periods` instead.
    #[serde(default = "default_period")]
    pub period: String,
    /// The period kinds every write moves: `all`, `hourly`, `daily`,
    /// `weekly`, `monthly`, `every:DURATION`; the first is what reads
    /// without `period=` mean.
    #[serde(default = "default_periods")]
    pub periods: Vec<String>,
    /// The IANA time zone of hourly, daily, weekly and monthly boundaries.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// How long a closed period is kept (`7d`, `36h`, `10s`).
    #[serde(default = "default_closed_retention")]
    pub closed_retention: String,
    /// Weighted sums of the board's periods, kept live by every write.
    #[serde(default)]
    pub blends: Vec<BlendConfig>,
    /// Shards the members are spread over (1..=16384).
    #[serde(default = "default_shards")]
    pub shards: u32,
    /// Groups of shards merged by group agents (1..=shards).
    #[serde(default = "default_groups")]
    pub groups: u32,
    /// Entries per snapshot (1..=10000).
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// `desc` (high first) or `asc`.
    #[serde(default)]
    pub order: Order,
    /// How equal scores rank: `shared` (competition ranks 1, 2, 2, 4) or
    /// `first_achiever` (who reached the score first ranks higher; ranks
    /// unique).
    #[serde(default)]
    pub ties: Ties,
    /// The op of a write that names none.
    #[serde(default = "default_op")]
    pub default_op: Op,
    /// `hash` or `numeric`; see `standings_core::board`.
    #[serde(default)]
    pub shard_by: ShardBy,
    /// How long an idempotency key is remembered.
    #[serde(default = "default_idempotency_ttl")]
    pub idempotency_ttl_secs: u64,
    /// The tenant that owns the board (one of `[[tenants]]`); absent:
    /// `public`, which needs no key.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Whether reads (top, members, around, periods, static JSON) need no
    /// key, for CDN pulls; writes and admin still do.
    #[serde(default)]
    pub public_reads: bool,
    /// Set when the board is fed by behaviour events.
    #[serde(default)]
    pub source: Option<SourceConfig>,
}

impl BoardConfig {
    /// A board from its JSON form (the same fields as a `[[boards]]`
    /// entry): how the admin API takes a board and the store's catalog
    /// keeps it. Not validated; see [`Config::check_runtime_board`].
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// The tenant that owns the board.
    pub fn tenant(&self) -> &str {
        self.tenant.as_deref().unwrap_or(PUBLIC_TENANT)
    }
}

/// One `blends` entry of a board.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlendConfig {
    /// Read as `period=NAME`; the board-name pattern, not a period kind.
    pub name: String,
    /// Its parts, added in this order.
    pub parts: Vec<BlendPartConfig>,
}

/// One part of a blend.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlendPartConfig {
    /// A period kind of the board, or a kind and `/previous`.
    #[serde(with = "part_period")]
    pub period: (PeriodKind, bool),
    /// The factor its scores are multiplied by.
    pub weight: f64,
}

mod part_period {
    use serde::{Deserialize, Deserializer};
    use standings_core::{BlendPart, PeriodKind};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<(PeriodKind, bool), D::Error> {
        let text = String::deserialize(d)?;
        BlendPart::parse_period(&text).map_err(serde::de::Error::custom)
    }
}

/// The most period kinds one board may list.
pub const MAX_PERIODS: usize = 8;

/// The most blends one board may have.
pub const MAX_BLENDS: usize = 4;

/// A board's life in time, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeModel {
    /// The period kinds, in config order.
    pub kinds: Vec<PeriodKind>,
    /// The zone of the boundaries.
    pub timezone: Timezone,
    /// How long closed periods are kept.
    pub closed_retention: Duration,
    /// The blends.
    pub blends: Vec<Blend>,
}

/// A board's periods, zone, retention and blends, checked: what
/// [`BoardConfig::to_board`] builds from and what validation reports.
/// Errors are (field under the board, message).
pub fn time_model(
    periods: &[String],
    timezone: &str,
    closed_retention: &str,
    blends: &[BlendConfig],
) -> Result<TimeModel, (String, String)> {
    if periods.is_empty() {
        return Err(("periods".into(), "list at least one period kind".into()));
    }
    if periods.len() > MAX_PERIODS {
        return Err(("periods".into(), format!("at most {MAX_PERIODS} kinds")));
    }
    let mut kinds = Vec::with_capacity(periods.len());
    for (i, text) in periods.iter().enumerate() {
        let kind: PeriodKind = text
            .parse()
            .map_err(|e: standings_core::PeriodError| (format!("periods[{i}]"), e.0))?;
        if kinds.contains(&kind) {
            return Err((format!("periods[{i}]"), format!("{kind} is listed twice")));
        }
        kinds.push(kind);
    }
    let tz = Timezone::parse(timezone).map_err(|e| ("timezone".to_string(), e.0))?;
    let retention = humantime::parse_duration(closed_retention.trim())
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            (
                "closed_retention".to_string(),
                "must be a duration above zero, like 7d, 36h or 10s".to_string(),
            )
        })?;
    if blends.len() > MAX_BLENDS {
        return Err(("blends".into(), format!("at most {MAX_BLENDS} blends")));
    }
    let mut built = Vec::with_capacity(blends.len());
    for (i, blend) in blends.iter().enumerate() {
        let field = |f: &str| format!("blends[{i}].{f}");
        check_blend_name(&blend.name, &kinds).map_err(|m| (field("name"), m))?;
        if blends[..i].iter().any(|b| b.name == blend.name) {
            return Err((field("name"), "is defined twice".into()));
        }
        let parts: Vec<BlendPart> = blend.parts.iter().map(BlendPartConfig::to_part).collect();
        standings_core::blend::check_parts(&parts, &kinds)
            .map_err(|e| (e.path(&format!("blends[{i}].parts")), e.message))?;
        built.push(Blend {
            name: Arc::from(blend.name.as_str()),
            parts: Arc::from(parts),
        });
    }
    Ok(TimeModel {
        kinds,
        timezone: tz,
        closed_retention: retention,
        blends: built,
    })
}

/// A blend's name has the board-name pattern and is not a period kind.
pub fn check_blend_name(name: &str, _kinds: &[PeriodKind]) -> Result<(), String> {
    BoardName::new(name).map_err(|_| "must match [a-z0-9][a-z0-9_-]{0,63}".to_string())?;
    if name.parse::<PeriodKind>().is_ok() {
        return Err(format!("{name} is a period kind; pick another name"));
    }
    Ok(())
}

impl BlendPartConfig {
    /// The core type.
    pub fn to_part(&self) -> BlendPart {
        BlendPart {
            kind: self.period.0,
            previous: self.period.1,
            weight: self.weight,
        }
    }
}

fn default_period() -> String {
    "all".into()
}
fn default_periods() -> Vec<String> {
    vec!["all".into()]
}
fn default_timezone() -> String {
    "UTC".into()
}
fn default_closed_retention() -> String {
    "7d".into()
}
fn default_shards() -> u32 {
    100
}
fn default_groups() -> u32 {
    10
}
fn default_top_k() -> usize {
    1000
}
fn default_op() -> Op {
    Op::Incr
}
fn default_idempotency_ttl() -> u64 {
    86_400
}

impl Config {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            file: file.clone(),
            source,
        })?;
        Self::parse(&text, &file)
    }

    /// The compiled-in embedded example.
    pub fn embedded() -> Self {
        Self::parse(EMBEDDED_EXAMPLE, EMBEDDED_NAME).expect("the embedded example is valid")
    }

    /// Loads `path`, or the embedded example when `None`.
    pub fn load_or_embedded(path: Option<&Path>) -> Result<Self, ConfigError> {
        path.map_or_else(|| Ok(Self::embedded()), Self::load)
    }

    /// Parses and validates TOML text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        config.validate(file)
    }

    /// Checks every value; the error names the first bad key.
    pub fn validate(self, file: &str) -> Result<Self, ConfigError> {
        let invalid = |key: String, message: &str| ConfigError::Invalid {
            file: file.to_string(),
            key,
            message: message.to_string(),
        };
        if self.store.kind == StoreKind::Redis && self.store.nodes.is_empty() {
            return Err(invalid(
                "store.nodes".into(),
                "a redis store needs at least one seed node (host:port)",
            ));
        }
        if self.store.kind == StoreKind::Embedded && self.store.data_dir.trim().is_empty() {
            return Err(invalid(
                "store.data_dir".into(),
                "the embedded store needs a directory",
            ));
        }
        if let Err(e) = self.store.sync.parse::<standings_core::store::Sync>() {
            return Err(invalid("store.sync".into(), &e.to_string()));
        }
        for (i, node) in self.store.nodes.iter().enumerate() {
            if !valid_host_port(node) {
                return Err(invalid(format!("store.nodes[{i}]"), "must be host:port"));
            }
        }
        let positive = [
            ("store.connect_timeout_ms", self.store.connect_timeout_ms),
            ("store.response_timeout_ms", self.store.response_timeout_ms),
            (
                "gateway.refresh_interval_ms",
                self.gateway.refresh_interval_ms,
            ),
            (
                "gateway.request_timeout_ms",
                self.gateway.request_timeout_ms,
            ),
            ("gateway.max_body_bytes", self.gateway.max_body_bytes as u64),
            (
                "gateway.max_batch_body_bytes",
                self.gateway.max_batch_body_bytes as u64,
            ),
            (
                "gateway.max_connections",
                self.gateway.max_connections as u64,
            ),
            (
                "gateway.max_connections_per_client",
                self.gateway.max_connections_per_client as u64,
            ),
            (
                "gateway.header_read_timeout_ms",
                self.gateway.header_read_timeout_ms,
            ),
            (
                "gateway.keep_alive_idle_ms",
                self.gateway.keep_alive_idle_ms,
            ),
            (
                "gateway.max_fanout_in_flight",
                self.gateway.max_fanout_in_flight as u64,
            ),
            (
                "agent.precompute_interval_ms",
                self.agent.precompute_interval_ms,
            ),
            ("cdn.timeout_ms", self.cdn.timeout_ms),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(invalid(key.into(), "must be greater than 0"));
            }
        }
        for (key, rate) in [
            (
                "gateway.write_rate_per_client",
                self.gateway.write_rate_per_client,
            ),
            (
                "gateway.read_rate_per_client",
                self.gateway.read_rate_per_client,
            ),
        ] {
            if !rate.is_finite() || rate < 0.0 {
                return Err(invalid(
                    key.into(),
                    "must be a number >= 0 (0 turns the limit off)",
                ));
            }
        }
        if self.gateway.rank_staleness_ms > MAX_RANK_STALENESS_MS {
            return Err(invalid(
                "gateway.rank_staleness_ms".into(),
                &format!("must be at most {MAX_RANK_STALENESS_MS} (one minute)"),
            ));
        }
        if self.gateway.rank_staleness_ms > 0 && self.gateway.rank_cache_entries == 0 {
            return Err(invalid(
                "gateway.rank_cache_entries".into(),
                "must be greater than 0 when gateway.rank_staleness_ms is set",
            ));
        }
        if self.gateway.rate_limit_max_clients == 0 {
            return Err(invalid(
                "gateway.rate_limit_max_clients".into(),
                "must be greater than 0",
            ));
        }
        for (i, proxy) in self.gateway.trusted_proxies.iter().enumerate() {
            if let Err(why) = parse_net(proxy) {
                return Err(invalid(
                    format!("gateway.trusted_proxies[{i}]"),
                    &format!("must be an IP address or a network like 10.0.0.0/8 ({why})"),
                ));
            }
        }
        if self.gateway.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "gateway.listen".into(),
                "must be an IP:port address",
            ));
        }
        for (i, url) in self.cdn.purge_urls.iter().enumerate() {
            if !url.starts_with("http://") {
                return Err(invalid(
                    format!("cdn.purge_urls[{i}]"),
                    "must be an http:// URL",
                ));
            }
        }
        if let Some(kind) = &self.cdn.surrogate_key {
            if kind != "xkey" && kind != "fastly" {
                return Err(invalid(
                    "cdn.surrogate_key".into(),
                    "must be xkey or fastly",
                ));
            }
        }
        let mut digests = std::collections::HashSet::new();
        for (i, t) in self.tenants.iter().enumerate() {
            let key = |field: &str| format!("tenants[{i}].{field}");
            BoardName::new(&t.id)
                .map_err(|_| invalid(key("id"), "must match [a-z0-9][a-z0-9_-]{0,63}"))?;
            if t.id == PUBLIC_TENANT {
                return Err(invalid(
                    key("id"),
                    "public is the tenant of boards that name none; it needs no keys",
                ));
            }
            if self.tenants[..i].iter().any(|o| o.id == t.id) {
                return Err(invalid(key("id"), "is defined twice"));
            }
            let l = &t.limits;
            for (field, rate) in [
                ("writes_per_key", l.writes_per_key),
                ("reads_per_key", l.reads_per_key),
                ("writes_per_tenant", l.writes_per_tenant),
                ("reads_per_tenant", l.reads_per_tenant),
            ] {
                if !rate.is_finite() || rate < 0.0 {
                    return Err(invalid(
                        key(&format!("limits.{field}")),
                        "must be a number >= 0 (0 turns the limit off)",
                    ));
                }
            }
            if !(l.burst_seconds.is_finite() && l.burst_seconds > 0.0 && l.burst_seconds <= 3600.0)
            {
                return Err(invalid(
                    key("limits.burst_seconds"),
                    "must be above 0 and at most 3600",
                ));
            }
            for (j, k) in t.keys.iter().enumerate() {
                let key = |field: &str| format!("tenants[{i}].keys[{j}].{field}");
                BoardName::new(&k.id)
                    .map_err(|_| invalid(key("id"), "must match [a-z0-9][a-z0-9_-]{0,63}"))?;
                if t.keys[..j].iter().any(|o| o.id == k.id) {
                    return Err(invalid(key("id"), "is defined twice in this tenant"));
                }
                let Some(digest) = parse_digest(&k.sha256) else {
                    return Err(invalid(
                        key("sha256"),
                        "must be 64 hex digits: the SHA-256 of the key (standings-gateway keygen prints both)",
                    ));
                };
                if !digests.insert(digest) {
                    return Err(invalid(key("sha256"), "is the hash of a key listed before"));
                }
                if k.scopes.is_empty() {
                    return Err(invalid(
                        key("scopes"),
                        "list at least one of read, write, admin",
                    ));
                }
                if k.scopes
                    .iter()
                    .enumerate()
                    .any(|(n, s)| k.scopes[..n].contains(s))
                {
                    return Err(invalid(key("scopes"), "lists a scope twice"));
                }
            }
        }
        if self.boards.is_empty() {
            return Err(invalid("boards".into(), "define at least one [[boards]]"));
        }
        for (i, b) in self.boards.iter().enumerate() {
            let key = |field: &str| format!("boards[{i}].{field}");
            BoardName::new(&b.name)
                .map_err(|_| invalid(key("name"), "must match [a-z0-9][a-z0-9_-]{0,63}"))?;
            if self.boards[..i].iter().any(|other| other.name == b.name) {
                return Err(invalid(key("name"), "is defined twice"));
            }
            if let Some(tenant) = &b.tenant {
                if tenant != PUBLIC_TENANT && !self.tenants.iter().any(|t| &t.id == tenant) {
                    return Err(invalid(
                        key("tenant"),
                        "names no [[tenants]] entry (absent: public)",
                    ));
                }
            }
            if b.period != "all" {
                return Err(invalid(
                    key("period"),
                    "a fixed period label is no longer supported: list period kinds in `periods` (e.g. [\"all\", \"daily\"])",
                ));
            }
            if let Err((field, message)) =
                time_model(&b.periods, &b.timezone, &b.closed_retention, &b.blends)
            {
                return Err(invalid(key(&field), &message));
            }
            if b.ties == Ties::FirstAchiever && !b.blends.is_empty() {
                return Err(invalid(
                    key("ties"),
                    "\"first_achiever\" cannot go with blends: a blend's score is recomputed from its parts, never reached at one moment; use \"shared\" or drop the blends",
                ));
            }
            if !(1..=16_384).contains(&b.shards) {
                return Err(invalid(key("shards"), "must be 1 to 16384"));
            }
            if !(1..=b.shards).contains(&b.groups) {
                return Err(invalid(key("groups"), "must be 1 to the number of shards"));
            }
            if !(1..=10_000).contains(&b.top_k) {
                return Err(invalid(key("top_k"), "must be 1 to 10000"));
            }
            if b.idempotency_ttl_secs == 0 {
                return Err(invalid(
                    key("idempotency_ttl_secs"),
                    "must be greater than 0",
                ));
            }
            if let Some(source) = &b.source {
                let feed = Feed::parse(&source.events).ok_or_else(|| {
                    invalid(
                        key("source.events"),
                        "must be \"target\", \"actor\" or \"owner\"",
                    )
                })?;
                if let Err(e) = Weights::new(source.weights.clone()) {
                    return Err(invalid(key("source.weights"), &e));
                }
                if feed == Feed::Target && b.shards != self.likes.shards {
                    return Err(invalid(
                        key("shards"),
                        &format!(
                            "a board fed by target events keeps its shards in the likes' slots, so it must have likes.shards ({}) shards",
                            self.likes.shards
                        ),
                    ));
                }
                if feed == Feed::Target && b.shard_by != ShardBy::Hash {
                    return Err(invalid(
                        key("shard_by"),
                        "a board fed by target events shards like the likes do: \"hash\"",
                    ));
                }
            }
        }
        self.validate_events(file)?;
        Ok(self)
    }

    fn validate_events(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            file: file.to_string(),
            key: key.to_string(),
            message: message.to_string(),
        };
        let positive =
            |key: &str, text: &str, zero_ok: bool| match humantime::parse_duration(text.trim()) {
                Ok(d) if zero_ok || !d.is_zero() => Ok(d),
                Ok(_) => Err(invalid(key, "must be greater than 0")),
                Err(e) => Err(invalid(
                    key,
                    &format!("not a duration ({e}); e.g. \"24h\", \"1s\""),
                )),
            };
        positive("events.dedup_ttl", &self.events.dedup_ttl, false)?;
        positive("likes.cooldown", &self.likes.cooldown, true)?;
        if !(self.events.rate_per_actor.is_finite() && self.events.rate_per_actor >= 0.0) {
            return Err(invalid("events.rate_per_actor", "must be a number >= 0"));
        }
        if self.events.spool_dir.trim().is_empty() {
            return Err(invalid("events.spool_dir", "must name a directory"));
        }
        if self.events.spool_capacity == 0 {
            return Err(invalid("events.spool_capacity", "must be greater than 0"));
        }
        if !(1..=16_384).contains(&self.likes.shards) {
            return Err(invalid("likes.shards", "must be 1 to 16384"));
        }
        if !(1..=100_000).contains(&self.likes.recent_per_actor) {
            return Err(invalid("likes.recent_per_actor", "must be 1 to 100000"));
        }
        Ok(())
    }

    /// The likes space of `tenant` under this config; call only on a
    /// validated config.
    pub fn like_space(&self, tenant: &BoardName) -> LikeSpace {
        let d = |t: &str| humantime::parse_duration(t.trim()).unwrap_or_default();
        LikeSpace {
            tenant: tenant.clone(),
            shards: self.likes.shards,
            dedup_ttl: d(&self.events.dedup_ttl),
            cooldown: d(&self.likes.cooldown),
            recent_per_actor: self.likes.recent_per_actor,
        }
    }

    /// Checks a board created at run time exactly as the config file's
    /// boards are checked (with this config's tenants), and that its name
    /// is not one of the file's boards. Errors are (field, message), the
    /// field as the board's own key (`periods[1]`).
    pub fn check_runtime_board(&self, board: &BoardConfig) -> Result<(), (String, String)> {
        if self.boards.iter().any(|b| b.name == board.name) {
            return Err(("name".into(), "is a board of the config file".into()));
        }
        let probe = Config {
            boards: vec![board.clone()],
            ..self.clone()
        };
        match probe.validate("runtime board") {
            Ok(_) => Ok(()),
            Err(ConfigError::Invalid { key, message, .. }) => {
                let field = key.strip_prefix("boards[0].").unwrap_or(&key).to_string();
                Err((field, message))
            }
            Err(other) => Err(("board".into(), other.to_string())),
        }
    }

    /// The boards of a store's catalog (name, definition) that are valid
    /// against this config, in catalog order; an entry that no longer is
    /// (its tenant was removed, or a file board took its name) is skipped
    /// with a warning, and reappears if the config allows it again.
    pub fn runtime_boards(&self, catalog: &[(String, String)]) -> Vec<BoardConfig> {
        catalog
            .iter()
            .filter_map(|(name, definition)| {
                let board = BoardConfig::from_json(definition)
                    .ok()
                    .filter(|b| &b.name == name);
                let Some(board) = board else {
                    tracing::warn!(board = %name, "catalog entry does not parse; skipped");
                    return None;
                };
                match self.check_runtime_board(&board) {
                    Ok(()) => Some(board),
                    Err((field, message)) => {
                        tracing::warn!(board = %name, field, message, "catalog board no longer valid; skipped");
                        None
                    }
                }
            })
            .collect()
    }

    /// The boards as the core types see them.
    pub fn boards(&self) -> Vec<Board> {
        self.boards.iter().map(BoardConfig::to_board).collect()
    }

    /// Durations of the intervals, for the loops that use them.
    pub fn precompute_interval(&self) -> Duration {
        Duration::from_millis(self.agent.precompute_interval_ms)
    }

    /// How often the gateway refreshes its global TOP-K.
    pub fn refresh_interval(&self) -> Duration {
        Duration::from_millis(self.gateway.refresh_interval_ms)
    }

    /// Points the store at a Redis Cluster, as `--redis-nodes` does.
    pub fn use_redis_nodes(&mut self, nodes: &str) -> Result<(), ConfigError> {
        let nodes: Vec<String> = nodes
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(String::from)
            .collect();
        self.store.kind = StoreKind::Redis;
        self.store.nodes = nodes;
        let checked = self.clone().validate("--redis-nodes")?;
        *self = checked;
        Ok(())
    }
}

impl BoardConfig {
    /// The validated board; call only on a validated config.
    pub fn to_board(&self) -> Board {
        let name = BoardName::new(&self.name).expect("validated board name");
        let TimeModel {
            kinds,
            timezone,
            closed_retention,
            blends,
        } = time_model(
            &self.periods,
            &self.timezone,
            &self.closed_retention,
            &self.blends,
        )
        .expect("validated periods");
        Board {
            periods: Arc::from(kinds),
            timezone,
            closed_retention,
            blends: Arc::from(blends),
            order: self.order,
            ties: self.ties,
            shards: self.shards,
            groups: self.groups,
            shard_by: self.shard_by,
            top_k: self.top_k,
            default_op: self.default_op,
            idempotency_ttl: Duration::from_secs(self.idempotency_ttl_secs),
            source: self.source.as_ref().map(|s| EventSource {
                feed: Feed::parse(&s.events).expect("validated feed"),
                weights: Weights::new(s.weights.clone()).expect("validated weights"),
            }),
            ..Board::new(name)
        }
        .in_tenant(BoardName::new(self.tenant()).expect("validated tenant id"))
    }
}

/// Parses a trusted network: CIDR (`10.0.0.0/8`, `::1/128`) or a bare
/// address, meaning just that host (`/32` or `/128`). Host bits below the
/// prefix are cleared (`10.1.2.3/8` is `10.0.0.0/8`).
pub fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    if let Ok(addr) = s.parse::<std::net::IpAddr>() {
        return Ok(ipnet::IpNet::from(addr));
    }
    let Some((addr, prefix)) = s.split_once('/') else {
        return Err(format!(
            "{s:?} is neither an IP address nor a network like 10.0.0.0/8"
        ));
    };
    let addr: std::net::IpAddr = addr
        .parse()
        .map_err(|_| format!("{s:?}: {addr:?} is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= max)
        .ok_or_else(|| format!("{s:?}: the prefix length must be a number from 0 to {max}"))?;
    ipnet::IpNet::new(addr, prefix)
        .map(|net| net.trunc())
        .map_err(|e| format!("{s:?}: {e}"))
}

fn valid_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

/// The flags both binaries take to find their config, as `api.md` names
/// them; flatten into a binary's own `clap` struct.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// Config file (TOML); default: the embedded example config (in-process
    /// store, 1-second intervals).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Redis Cluster seed nodes, HOST:PORT,...; selects the Redis store
    /// whatever the config file names.
    #[arg(long)]
    pub redis_nodes: Option<String>,
}

impl ConfigArgs {
    /// The file (or the embedded example) with `--redis-nodes` applied.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut config = Config::load_or_embedded(self.config.as_deref())?;
        if let Some(nodes) = &self.redis_nodes {
            config.use_redis_nodes(nodes)?;
        }
        Ok(config)
    }
}

/// The live config, swappable without stopping readers.
pub struct ConfigHandle {
    current: ArcSwap<Config>,
    /// The file it came from, for reloads; `None` for the embedded example.
    path: Option<PathBuf>,
}

impl ConfigHandle {
    /// Wraps an already validated config.
    pub fn new(config: Config, path: Option<PathBuf>) -> Self {
        Self {
            current: ArcSwap::from_pointee(config),
            path,
        }
    }

    /// The config in force now.
    pub fn get(&self) -> Arc<Config> {
        self.current.load_full()
    }

    /// Re-reads the file; on any error the old config stays in force.
    pub fn reload(&self) -> Result<Arc<Config>, ConfigError> {
        let Some(path) = &self.path else {
            return Ok(self.get());
        };
        let fresh = Arc::new(Config::load(path)?);
        self.current.store(fresh.clone());
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::parse(text, "test.toml").unwrap_err().to_string()
    }

    #[test]
    fn embedded_example_is_the_documented_default() {
        let c = Config::embedded();
        let b = &c.boards()[0];
        assert_eq!(b.name.as_str(), "global");
        assert_eq!((b.shards, b.groups, b.top_k), (100, 10, 1000));
        assert_eq!((b.order, b.default_op), (Order::Desc, Op::Incr));
        assert_eq!(c.precompute_interval(), Duration::from_secs(1));
        assert_eq!(c.refresh_interval(), Duration::from_secs(1));
        assert_eq!(c.store.kind, StoreKind::Embedded);
        assert_eq!(c.store.data_dir, "./standings-data");
        assert_eq!(c.store.sync, "commit");
        let arena = &c.boards()[1];
        let kinds: Vec<String> = arena.periods.iter().map(|k| k.to_string()).collect();
        assert_eq!(kinds, ["all", "daily", "weekly"]);
        assert_eq!(arena.blends.len(), 1);
        assert_eq!(
            standings_core::blend::encode_parts(&arena.blends[0].parts),
            "daily*7e-1;weekly/previous*3e-1"
        );
        assert_eq!(arena.closed_retention, Duration::from_secs(7 * 86_400));
    }

    #[test]
    fn tenants_and_keys_are_validated_with_the_key_named() {
        let hash = "a".repeat(64);
        let ok = format!(
            "[[tenants]]\nid = \"acme\"\nkeys = [{{id = \"ops\", sha256 = \"{hash}\", scopes = [\"read\", \"admin\"]}}]\n\
             [[boards]]\nname = \"b\"\ntenant = \"acme\"\npublic_reads = true\n"
        );
        let c = Config::parse(&ok, "t").unwrap();
        assert_eq!(c.boards[0].tenant(), "acme");
        assert_eq!(
            c.boards()[0].storage_name(),
            "acme.b",
            "tenant and board name the keyspace"
        );
        assert_eq!(
            c.tenants[0].keys[0].scopes,
            [KeyScope::Read, KeyScope::Admin]
        );
        assert_eq!(parse_digest(&hash), Some([0xaa; 32]));
        let cases = [
            (
                ok.replace("id = \"acme\"", "id = \"public\""),
                "tenants[0].id",
            ),
            (
                ok.replace("id = \"acme\"", "id = \"Acme\""),
                "tenants[0].id",
            ),
            (ok.replace(&hash, "abc"), "tenants[0].keys[0].sha256"),
            (
                ok.replace("[\"read\", \"admin\"]", "[]"),
                "tenants[0].keys[0].scopes",
            ),
            (
                ok.replace("[\"read\", \"admin\"]", "[\"read\", \"read\"]"),
                "tenants[0].keys[0].scopes",
            ),
            (
                ok.replace("tenant = \"acme\"", "tenant = \"other\""),
                "boards[0].tenant",
            ),
        ];
        for (text, key) in cases {
            let e = err(&text);
            assert!(e.contains(key), "{key}: {e}");
        }
        assert!(
            err(&ok.replace("\"admin\"]", "\"root\"]")).contains("root"),
            "unknown scope"
        );
        let twice = ok.replace(
            "[[boards]]",
            &format!("[[tenants]]\nid = \"beta\"\nkeys = [{{id = \"k\", sha256 = \"{hash}\", scopes = [\"read\"]}}]\n[[boards]]"),
        );
        assert!(
            err(&twice).contains("tenants[1].keys[0].sha256"),
            "one key, one tenant"
        );
        assert_eq!(
            key_digest(b"abc")[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "SHA-256 of abc"
        );
    }

    #[test]
    fn periods_and_blends_are_validated_with_the_key_named() {
        let board = |extra: &str| format!("[[boards]]\nname = \"b\"\n{extra}\n");
        let cases = [
            ("periods = []", "boards[0].periods"),
            ("periods = [\"all\", \"fortnightly\"]", "boards[0].periods[1]"),
            ("periods = [\"daily\", \"daily\"]", "boards[0].periods[1]"),
            ("periods = [\"every:0s\"]", "boards[0].periods[0]"),
            ("timezone = \"Mars/Olympus\"", "boards[0].timezone"),
            ("closed_retention = \"soon\"", "boards[0].closed_retention"),
            ("closed_retention = \"0s\"", "boards[0].closed_retention"),
            ("period = \"season1\"", "boards[0].period"),
            (
                "blends = [{name = \"hot\", parts = [{period = \"weekly\", weight = 1}]}]",
                "boards[0].blends[0].parts[0].period",
            ),
            (
                "periods = [\"all\", \"daily\"]\nblends = [{name = \"daily\", parts = [{period = \"daily\", weight = 1}]}]",
                "boards[0].blends[0].name",
            ),
            (
                "periods = [\"all\", \"daily\"]\nblends = [{name = \"hot\", parts = []}]",
                "boards[0].blends[0].parts:",
            ),
        ];
        for (extra, key) in cases {
            let e = err(&board(extra));
            assert!(e.contains(key), "{extra}: {e}");
        }
        let ok = Config::parse(
            &board("periods = [\"daily\", \"every:15m\"]\ntimezone = \"America/New_York\"\nclosed_retention = \"36h\""),
            "t",
        )
        .unwrap();
        let b = &ok.boards()[0];
        assert_eq!(b.timezone.name(), "America/New_York");
        assert_eq!(b.closed_retention, Duration::from_secs(36 * 3600));
        assert_eq!(b.first_kind().to_string(), "daily");
    }

    #[test]
    fn cluster_example_parses_with_design_card_intervals() {
        let text = include_str!("../examples/cluster.toml");
        let c = Config::parse(text, "cluster.toml").unwrap();
        assert_eq!(c.store.kind, StoreKind::Redis);
        assert_eq!(c.precompute_interval(), Duration::from_secs(300));
        assert_eq!(c.refresh_interval(), Duration::from_secs(60));
    }

    #[test]
    fn errors_name_file_and_key() {
        let board = "[[boards]]\nname = \"g\"\n";
        let e = err(&format!("{board}shards = 0\n"));
        assert!(
            e.contains("test.toml") && e.contains("boards[0].shards"),
            "{e}"
        );
        let e = err(&format!("{board}groups = 101\n"));
        assert!(e.contains("boards[0].groups"), "{e}");
        let e = err("[[boards]]\nname = \"Bad Name\"\n");
        assert!(e.contains("boards[0].name"), "{e}");
        let e = err(&format!("{board}colour = \"red\"\n"));
        assert!(e.contains("colour"), "unknown keys are refused: {e}");
        let e = err(&format!("[gateway]\nwrite_rate_per_client = -1\n{board}"));
        assert!(e.contains("gateway.write_rate_per_client"), "{e}");
        let e = err(&format!(
            "[gateway]\ntrusted_proxies = [\"10.0.0.0/33\"]\n{board}"
        ));
        assert!(e.contains("gateway.trusted_proxies[0]"), "{e}");
        let e = err(&format!("[gateway]\nread_rate_per_client = -1\n{board}"));
        assert!(e.contains("gateway.read_rate_per_client"), "{e}");
        let e = err(&format!("[gateway]\nlisten = \"nowhere\"\n{board}"));
        assert!(e.contains("gateway.listen"), "{e}");
        let e = err(&format!("[store]\nkind = \"redis\"\n{board}"));
        assert!(e.contains("store.nodes"), "{e}");
        let e = err(&format!("{board}order = \"sideways\"\n"));
        assert!(e.contains("order") || e.contains("sideways"), "{e}");
        assert!(err("").contains("boards"));
        let e = err(&format!("{board}[[boards]]\nname = \"g\"\n"));
        assert!(e.contains("boards[1].name") && e.contains("twice"), "{e}");
    }

    #[test]
    fn ties_default_to_shared_and_first_achiever_refuses_blends() {
        let board = "[[boards]]\nname = \"g\"\n";
        let c = Config::parse(board, "test.toml").unwrap();
        assert_eq!(c.boards()[0].ties, Ties::Shared);
        let c = Config::parse(&format!("{board}ties = \"first_achiever\"\n"), "test.toml").unwrap();
        assert_eq!(c.boards()[0].ties, Ties::FirstAchiever);
        let e = err(&format!("{board}ties = \"fastest\"\n"));
        assert!(e.contains("ties") || e.contains("fastest"), "{e}");
        let e = err(&format!(
            "{board}ties = \"first_achiever\"\nperiods = [\"all\", \"daily\"]\n\
             blends = [{{name = \"hot\", parts = [{{period = \"daily\", weight = 1}}]}}]\n"
        ));
        assert!(e.contains("boards[0].ties") && e.contains("blends"), "{e}");
    }

    #[test]
    fn redis_nodes_flag_selects_redis() {
        let mut c = Config::embedded();
        c.use_redis_nodes("127.0.0.1:7000, 127.0.0.1:7001").unwrap();
        assert_eq!(c.store.kind, StoreKind::Redis);
        assert_eq!(c.store.nodes.len(), 2);
        let e = Config::embedded().use_redis_nodes("nohost").unwrap_err();
        assert!(e.to_string().contains("store.nodes[0]"), "{e}");
    }

    #[test]
    fn reload_keeps_old_config_on_error() {
        let dir = std::env::temp_dir().join(format!("standings-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "[[boards]]\nname = \"a\"\n").unwrap();
        let handle = ConfigHandle::new(Config::load(&path).unwrap(), Some(path.clone()));
        std::fs::write(&path, "[[boards]]\nname = \"b\"\n").unwrap();
        assert_eq!(handle.reload().unwrap().boards[0].name, "b");
        std::fs::write(&path, "[[boards]]\nname = \"B!\"\n").unwrap();
        assert!(handle.reload().is_err());
        assert_eq!(
            handle.get().boards[0].name,
            "b",
            "a bad file leaves the old config"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
