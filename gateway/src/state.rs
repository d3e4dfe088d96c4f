//! The state every request handler shares: boards and their views, the
//! store, limits, metrics and the refresher's health.

use std::collections::HashMap;

use arc_swap::ArcSwap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use standings_core::events::{LikeSpace, Weights};
use standings_core::{Board, BoardName, Store};
use standings_runtime::Supervised;

use crate::error::{ApiError, ErrorCode};
use crate::limit::{rate_limit_headers, Decision, IpNet, Limiter, RateLimiter};
use crate::telemetry::RouteMetrics;
use crate::view::BoardState;

/// What a reload or a board created at run time replaces as a whole: the
/// boards by name and the API keys.
pub struct Registry {
    /// Boards by name: the config's, then those created at run time.
    pub boards: HashMap<String, Arc<BoardState>>,
    /// The configured API keys.
    pub keys: crate::auth::Keys,
    /// Each tenant's limiters, by tenant id.
    pub limits: HashMap<Arc<str>, TenantLimiters>,
    /// The config the boards and keys came from (runtime boards are
    /// checked against it).
    pub config: Arc<standings_config::Config>,
    /// The store's catalog as last read: (name, definition).
    pub catalog: Vec<(String, String)>,
    /// Weights set at run time as last read from the store: (board
    /// storage name, weights).
    pub weights: Vec<(String, Weights)>,
    /// Each tenant's likes space and event-fed boards, by tenant id
    /// (`public` and every configured tenant).
    pub events: HashMap<Arc<str>, Arc<TenantEvents>>,
}

/// What `POST /v1/events` of one tenant needs: where its likes live, its
/// event-fed boards with the weights in force (the store's run-time
/// weights over the config's), and the counted types they name.
pub struct TenantEvents {
    /// The tenant's likes space.
    pub space: LikeSpace,
    /// Its boards fed by events, weights in force.
    pub boards: Vec<Board>,
    /// Every counted type some board weighs (`comment`, `share`, ...).
    pub counted: std::collections::BTreeSet<String>,
}

impl TenantEvents {
    fn of(
        config: &standings_config::Config,
        tenant: &str,
        boards: &HashMap<String, Arc<BoardState>>,
        weights: &[(String, Weights)],
    ) -> Option<Self> {
        let id = BoardName::new(tenant).ok()?;
        let mut fed: Vec<Board> = boards
            .values()
            .filter(|b| &*b.tenant == tenant && b.board.source.is_some())
            .map(|b| {
                let mut board = b.board.clone();
                let set = weights.iter().find(|(n, _)| n == board.storage_name());
                if let (Some(source), Some((_, w))) = (board.source.as_mut(), set) {
                    source.weights = w.clone();
                }
                board
            })
            .collect();
        fed.sort_by(|a, b| a.name.cmp(&b.name));
        let counted = fed
            .iter()
            .filter_map(|b| b.source.as_ref())
            .flat_map(|s| s.weights.0.keys())
            .filter(|k| !matches!(k.as_str(), "like" | "dislike"))
            .cloned()
            .collect();
        Some(Self {
            space: config.like_space(&id),
            boards: fed,
            counted,
        })
    }
}

/// The rate limiters of one tenant (`None`: that limit is off).
pub struct TenantLimiters {
    /// Writes per API key.
    pub writes_per_key: Option<Limiter<Arc<str>>>,
    /// Reads per API key.
    pub reads_per_key: Option<Limiter<Arc<str>>>,
    /// Writes to the tenant's boards.
    pub writes: Option<Limiter<()>>,
    /// Reads of the tenant's boards.
    pub reads: Option<Limiter<()>>,
}

impl TenantLimiters {
    fn of(limits: &standings_config::TenantLimits) -> Self {
        let burst = |rate: f64| limits.burst(rate);
        Self {
            writes_per_key: Limiter::new(limits.writes_per_key, burst(limits.writes_per_key)),
            reads_per_key: Limiter::new(limits.reads_per_key, burst(limits.reads_per_key)),
            writes: Limiter::new(limits.writes_per_tenant, burst(limits.writes_per_tenant)),
            reads: Limiter::new(limits.reads_per_tenant, burst(limits.reads_per_tenant)),
        }
    }

    /// Takes one request of `key` (`None`: anonymous) from the tenant's
    /// limiters for writes or reads; 429 with the IETF headers when over.
    pub fn admit(&self, write: bool, key: Option<&Arc<str>>) -> Result<(), ApiError> {
        let (what, per_key, all) = if write {
            ("writes", &self.writes_per_key, &self.writes)
        } else {
            ("reads", &self.reads_per_key, &self.reads)
        };
        let now = std::time::Instant::now();
        if let (Some(limiter), Some(key)) = (per_key, key) {
            over(limiter, limiter.check(key, now), what, "of this API key")?;
        }
        if let Some(limiter) = all {
            over(limiter, limiter.check(&(), now), what, "to this tenant")?;
        }
        Ok(())
    }
}

/// 429 for a limited `decision` of `limiter`.
fn over<K>(
    limiter: &Limiter<K>,
    decision: Decision,
    what: &'static str,
    whose: &str,
) -> Result<(), ApiError>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
{
    match decision {
        Decision::Allowed { .. } => Ok(()),
        Decision::Limited { retry_after, .. } => {
            metrics::counter!("standings_rate_limited_total", "what" => what).increment(1);
            let headers = rate_limit_headers(what, limiter.policy(), &decision);
            let mut e = ApiError::over_limit(what, retry_after, headers.into());
            e.message = format!("too many {what} {whose}; retry after Retry-After").into();
            Err(e)
        }
    }
}

/// Re-reads the config for a reload: the file and the command line's
/// overrides, validated (the binary builds it; tests may not have one).
pub type Reloader = Box<dyn Fn() -> Result<standings_config::Config, String> + Send + Sync>;

/// Everything a request handler needs; shared by all connections.
pub struct AppState {
    /// Boards and keys, swapped whole by a reload or a catalog change.
    pub registry: ArcSwap<Registry>,
    /// How to re-read the config; `None`: reloads are refused.
    pub reloader: Option<Reloader>,
    /// The config's boards at start: `/readyz` waits for these only.
    pub started_with: std::collections::HashSet<String>,
    /// The CDN purge queue, once the background tasks have started it
    /// (never, when no CDN is configured).
    pub purger: std::sync::OnceLock<crate::purge::Purger>,
    /// Where scores live.
    pub store: Arc<dyn Store>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Largest accepted body of a batch of writes.
    pub max_batch_body_bytes: usize,
    /// Bound on one request.
    pub request_timeout: Duration,
    /// Source of request ids for the audit log.
    pub request_counter: AtomicU64,
    /// Request counters and latency histograms, registered once.
    pub route_metrics: RouteMetrics,
    /// Per-client write limits; `None` when off.
    pub write_limiter: Option<RateLimiter>,
    /// Per-client read limits (top, members, around, static); `None` when
    /// off.
    pub read_limiter: Option<RateLimiter>,
    /// Proxies whose `X-Forwarded-For` names the client; empty: the peer
    /// address is the client.
    pub trusted_proxies: Vec<IpNet>,
    /// Permits for live fan-out reads: a rank or around that cannot get one
    /// at once is shed with 503 `overloaded` instead of queueing (queued
    /// fan-outs grew memory to 550 MB and timed out anyway).
    pub fanout: tokio::sync::Semaphore,
    /// Member ranks by score within `gateway.rank_staleness_ms`.
    pub ranks: crate::ranks::RankCache,
    /// The embedded store's backups; `None` on another store.
    pub backups: Option<Backups>,
    /// Where events wait while the store is unreachable (a networked
    /// store served on a socket; `None` otherwise).
    pub spool: Option<crate::spool::Spool>,
    /// `events.rate_per_actor`, keyed by (tenant, actor); `None` when off.
    pub actor_limiter: Option<Limiter<(Arc<str>, standings_core::MemberId)>>,
    /// The last like values answered, for degraded answers.
    pub last_seen: crate::likes::LastSeen,
    /// Whether the snapshot refresher runs: `/readyz` is 503 while not.
    pub refresher: Arc<Supervised>,
    /// Test-only: makes the refresher panic on its next pass, to show that
    /// supervision restarts it.
    #[cfg(test)]
    pub panic_refresher: std::sync::atomic::AtomicBool,
}

impl Registry {
    /// The registry of `config`, keeping the state (views) of every board
    /// of `old` whose definition did not change, so a reload does not
    /// empty `/top`.
    pub fn of(
        config: &standings_config::Config,
        old: Option<&Registry>,
        catalog: Vec<(String, String)>,
        weights: Vec<(String, Weights)>,
    ) -> Self {
        let runtime = config.runtime_boards(&catalog);
        let boards = config
            .boards
            .iter()
            .map(|c| (c, false))
            .chain(runtime.iter().map(|c| (c, true)))
            .map(|(c, runtime)| {
                let board = c.to_board();
                let tenant: Arc<str> = Arc::from(c.tenant());
                let kept = old
                    .and_then(|r| r.boards.get(&c.name))
                    .filter(|b| {
                        b.board == board
                            && b.tenant == tenant
                            && b.public_reads == c.public_reads
                            && b.runtime == runtime
                    })
                    .cloned();
                let state = kept.unwrap_or_else(|| {
                    let mut state = BoardState::owned(board, tenant, c.public_reads);
                    state.runtime = runtime;
                    Arc::new(state)
                });
                (c.name.clone(), state)
            })
            .collect();
        let limits = config
            .tenants
            .iter()
            .map(|t| (Arc::from(t.id.as_str()), TenantLimiters::of(&t.limits)))
            .collect();
        let events = std::iter::once(standings_config::PUBLIC_TENANT)
            .chain(config.tenants.iter().map(|t| t.id.as_str()))
            .filter_map(|t| {
                TenantEvents::of(config, t, &boards, &weights).map(|e| (Arc::from(t), Arc::new(e)))
            })
            .collect();
        Self {
            boards,
            keys: crate::auth::Keys::from_config(config),
            limits,
            config: Arc::new(config.clone()),
            catalog,
            weights,
            events,
        }
    }

    /// The events setup of `tenant` (every tenant of the config has one).
    pub fn events_of(&self, tenant: &str) -> Option<&Arc<TenantEvents>> {
        self.events.get(tenant)
    }
}

impl AppState {
    /// Reads the store's catalog and, when it changed, swaps in a registry
    /// with its boards (added or removed), keeping every other board's
    /// views. The refresher calls it every pass, and the admin routes after
    /// a change, so a board created on one gateway is served by all within
    /// one refresh interval.
    pub async fn sync_catalog(&self) -> Result<bool, standings_core::StoreError> {
        let catalog = self.store.catalog().await?;
        let weights = self.store.weights().await?;
        let old = self.registry.load_full();
        if old.catalog == catalog && old.weights == weights {
            return Ok(false);
        }
        let fresh = Registry::of(&old.config, Some(&old), catalog, weights);
        tracing::info!(
            boards = fresh.boards.len(),
            "board catalog or weights changed"
        );
        self.registry.store(Arc::new(fresh));
        Ok(true)
    }

    /// Re-reads the config and swaps in its boards and keys. A config that
    /// does not load or validate is refused and the old one stays. Settings
    /// other than boards, tenants and keys need a restart.
    pub fn reload(&self) -> Result<usize, String> {
        let Some(reloader) = &self.reloader else {
            return Err("this gateway was started without a config file to re-read".into());
        };
        let config = match reloader() {
            Ok(config) => config,
            Err(e) => {
                metrics::counter!("standings_config_reloads_total", "result" => "error")
                    .increment(1);
                tracing::error!(error = %e, "config reload refused; the running config stays");
                return Err(e);
            }
        };
        let old = self.registry.load();
        let fresh = Registry::of(
            &config,
            Some(&old),
            old.catalog.clone(),
            old.weights.clone(),
        );
        let boards = fresh.boards.len();
        self.registry.store(Arc::new(fresh));
        metrics::counter!("standings_config_reloads_total", "result" => "ok").increment(1);
        tracing::info!(boards, "config reloaded");
        Ok(boards)
    }

    /// Takes one request of the client from `limiter` (`what` names it in
    /// the 429: `reads`, `writes`). The client's address is only worked
    /// out (`X-Forwarded-For` parsed) when a limit is on.
    pub fn admit(
        &self,
        limiter: &Option<RateLimiter>,
        what: &'static str,
        client: impl FnOnce() -> std::net::IpAddr,
    ) -> Result<(), ApiError> {
        let Some(limiter) = limiter else {
            return Ok(());
        };
        let decision = limiter.check(&client(), std::time::Instant::now());
        match decision {
            Decision::Allowed { .. } => Ok(()),
            Decision::Limited { retry_after, .. } => {
                metrics::counter!("standings_rate_limited_total", "what" => what).increment(1);
                let headers = rate_limit_headers(what, limiter.policy(), &decision);
                Err(ApiError::over_limit(what, retry_after, headers.into()))
            }
        }
    }

    /// A fan-out permit, or 503 `overloaded` when all are taken.
    ///
    /// The permit is held across one yield to the scheduler before the
    /// fan-out runs. A fan-out on the in-process store never awaits, so
    /// without it each rank read would start and finish within one poll,
    /// no two would ever be in flight, and a storm of them would never be
    /// shed: it would queue ahead of `/top` instead (measured with
    /// `scripts/storm.sh`, docs/benchmarks.md "Rank storm").
    pub async fn fanout_permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
        let permit = self.fanout.try_acquire().map_err(|_| {
            metrics::counter!("standings_shed_total", "reason" => "fanout").increment(1);
            ApiError::unavailable(
                ErrorCode::Overloaded,
                "too many live rank reads in flight; retry after Retry-After",
            )
        })?;
        tokio::task::yield_now().await;
        Ok(permit)
    }

    /// The board named `name`; 400 `invalid_board` for a name outside the
    /// board-name pattern (it can never be a board), 404 for a well-formed
    /// name that is not one. Checked only on a miss, so serving a board
    /// costs no pattern check.
    pub fn board(&self, name: &str) -> Result<Arc<BoardState>, ApiError> {
        if let Some(b) = self.registry.load().boards.get(name) {
            return Ok(b.clone());
        }
        standings_core::BoardName::new(name)?;
        Err(ApiError::unknown_board(name))
    }
}

/// The embedded store and where its backups go.
pub struct Backups {
    /// The store to copy.
    pub store: Arc<standings_core::store::DurableStore>,
    /// `DATA_DIR/backup.redb`: replaced atomically by each backup.
    pub path: std::path::PathBuf,
    /// One backup at a time: they share the file.
    pub running: tokio::sync::Mutex<()>,
}
