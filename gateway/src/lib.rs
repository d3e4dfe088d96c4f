//! The Standings gateway: the HTTP API of `api.md` over a [`Store`], the
//! global merge behind an `ArcSwap`, pre-serialised TOP20/100/1000 bodies,
//! static JSON files, CDN purges when they change, metrics and graceful
//! shutdown.
//!
//! Modules: [`router`] finds the endpoint, [`service::handle`] dispatches
//! it, [`state`] is what every handler shares, [`reads`] and [`writes`] are
//! the handlers, [`request`] reads queries, bodies and headers, [`reply`]
//! builds JSON responses, [`error`] is the one place errors become
//! responses, [`view`] holds the published TOP-K
//! and its bodies, [`refresh`] merges groups and writes static files,
//! [`purge`] tells the CDN, [`server`] is the accept loop.
//!
//! [`run`] is what the binary calls and what integration tests call: give it
//! a config, a bound listener and a shutdown token. [`Gateway`] is the same
//! service without a socket, for tests that call [`Gateway::handle`] in
//! process.

pub mod admin;
pub mod around;
pub mod auth;
pub mod error;
pub mod events;
pub mod likes;
pub mod limit;
pub mod members;
pub mod pages;
pub mod period;
pub mod purge;
pub mod rank_index;
pub mod ranks;
pub mod reads;
pub mod refresh;
pub mod reply;
pub mod request;
pub mod router;
pub mod server;
pub mod service;
pub mod spool;
pub mod state;
pub mod telemetry;
pub mod view;
pub mod writes;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use standings_config::{Config, StoreKind};
use standings_core::Store;
use standings_runtime::{open_embedded, open_store, supervise, OpenStoreError, Phase, Supervised};
use standings_shard_agent::{Agent, Assignment};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::refresh::{refresh_board_slots, Refreshed, StaticWriter};
use crate::state::AppState;

/// How long a panicked refresher waits before it is started again.
const RESTART_BACKOFF: Duration = Duration::from_secs(1);

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The store could not be opened.
    #[error("opening the store: {0}")]
    Store(#[from] OpenStoreError),
    /// The event spool could not be opened.
    #[error("opening the event spool: {0}")]
    Spool(#[from] spool::SpoolError),
}

impl GatewayError {
    /// The exit status the binary answers it with.
    pub fn exit_code(&self) -> u8 {
        match self {
            GatewayError::Store(e) => e.exit_code(),
            // EX_CANTCREAT, as for a data directory that cannot be used.
            GatewayError::Spool(_) => 73,
        }
    }
}

/// The service with its store opened and its state built, not yet serving.
pub struct Gateway {
    state: Arc<AppState>,
    config: Config,
}

impl Gateway {
    /// Opens the store the config names and builds the shared state.
    pub async fn open(config: Config) -> Result<Self, GatewayError> {
        Self::open_with(config, None).await
    }

    /// [`Gateway::open`] with a way to re-read the config for reloads
    /// (`POST /v1/admin/reload`, SIGHUP).
    pub async fn open_with(
        config: Config,
        reloader: Option<state::Reloader>,
    ) -> Result<Self, GatewayError> {
        Self::open_inner(config, reloader, None).await
    }

    /// [`Gateway::open_with`] for a gateway serving on `port`: a networked
    /// store gets an event spool named for the port.
    async fn open_inner(
        config: Config,
        reloader: Option<state::Reloader>,
        port: Option<u16>,
    ) -> Result<Self, GatewayError> {
        let spool = match port.filter(|_| !config.store.kind.in_process()) {
            Some(port) => Some(spool::Spool::open(
                std::path::Path::new(&config.events.spool_dir),
                port,
                config.events.spool_capacity,
            )?),
            None => None,
        };
        // The embedded store is kept typed as well, for backups.
        let (store, backups): (Arc<dyn Store>, _) = if config.store.kind == StoreKind::Embedded {
            let durable = Arc::new(open_embedded(&config)?);
            let backups = state::Backups {
                store: durable.clone(),
                path: std::path::Path::new(&config.store.data_dir).join("backup.redb"),
                running: tokio::sync::Mutex::new(()),
            };
            (durable, Some(backups))
        } else {
            (open_store(&config).await?, None)
        };
        let catalog = match store.catalog().await {
            Ok(catalog) => catalog,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the board catalog yet; runtime boards follow at the first refresh");
                Vec::new()
            }
        };
        let weights = store.weights().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read run-time weights yet; they follow at the first refresh");
            Vec::new()
        });
        let registry = state::Registry::of(&config, None, catalog, weights);
        let keeps_index = store.keeps_rank_index();
        let limiter = |rate_per_sec, burst| {
            limit::RateLimiter::with_config(limit::LimitConfig {
                rate_per_sec,
                burst,
                max_keys: config.gateway.rate_limit_max_clients,
            })
        };
        let state = Arc::new(AppState {
            registry: arc_swap::ArcSwap::from_pointee(registry),
            reloader,
            started_with: config.boards.iter().map(|b| b.name.clone()).collect(),
            purger: std::sync::OnceLock::new(),
            store,
            metrics: telemetry::metrics_handle(),
            max_body_bytes: config.gateway.max_body_bytes,
            max_batch_body_bytes: config.gateway.max_batch_body_bytes,
            request_timeout: Duration::from_millis(config.gateway.request_timeout_ms),
            request_counter: AtomicU64::new(0),
            route_metrics: telemetry::RouteMetrics::new(),
            write_limiter: limiter(
                config.gateway.write_rate_per_client,
                config.gateway.write_burst_per_client,
            ),
            read_limiter: limiter(
                config.gateway.read_rate_per_client,
                config.gateway.read_burst_per_client,
            ),
            trusted_proxies: config
                .gateway
                .trusted_proxies
                .iter()
                .map(|p| limit::parse_net(p).expect("validated with the config"))
                .collect(),
            backups,
            spool,
            actor_limiter: {
                let rate = config.events.rate_per_actor;
                limit::Limiter::new(rate, (rate.ceil() as u32).max(1))
            },
            last_seen: likes::LastSeen::default(),
            refresher: Supervised::new("refresher"),
            fanout: tokio::sync::Semaphore::new(config.gateway.max_fanout_in_flight),
            ranks: {
                let bound = Duration::from_millis(config.gateway.rank_staleness_ms);
                let cache = ranks::RankCache::new(bound, config.gateway.rank_cache_entries);
                let mode = config.gateway.rank_index;
                if mode != standings_config::RankIndexMode::Off && keeps_index {
                    let members = mode == standings_config::RankIndexMode::Members;
                    cache.with_index(Arc::new(rank_index::RankIndex::new(bound, members)))
                } else {
                    cache
                }
            },
            #[cfg(test)]
            panic_refresher: std::sync::atomic::AtomicBool::new(false),
        });
        Ok(Self { state, config })
    }

    /// The shared state the handlers see.
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Starts the refresher (and in embedded mode the agents) under
    /// supervision: a panic is logged, counted in
    /// `standings_task_restarts_total{task="refresher"}` and restarted after
    /// a back-off, and `/readyz` answers 503 until the new one has run.
    /// The handle ends once `shutdown` is cancelled and the loop stopped.
    pub fn start_background(&self, shutdown: CancellationToken) -> JoinHandle<()> {
        let state = self.state.clone();
        let config = self.config.clone();
        let purger = purge::Purger::spawn(&config.cdn, shutdown.clone());
        let (purger, purge_task) = match purger {
            Some((purger, task)) => (Some(purger), Some(task)),
            None => (None, None),
        };
        if let Some(p) = &purger {
            let _ = state.purger.set(p.clone());
        }
        let health = state.refresher.clone();
        let token = shutdown.clone();
        let drain = tokio::spawn(spool::drain(state.clone(), shutdown.clone()));
        let index = state
            .ranks
            .index()
            .map(|index| tokio::spawn(index.clone().follow(state.store.clone(), shutdown.clone())));
        tokio::spawn(async move {
            supervise(health, RESTART_BACKOFF, token.clone(), move || {
                refresh_loop(state.clone(), config.clone(), purger.clone(), token.clone())
            })
            .await;
            if let Some(task) = purge_task {
                let _ = task.await;
            }
            let _ = drain.await;
            if let Some(index) = index {
                let _ = index.await;
            }
        })
    }

    /// Serves one request in process, as from a loopback client.
    pub async fn handle(&self, req: Request<Full<Bytes>>) -> Response<Full<Bytes>> {
        service::handle(self.state.clone(), IpAddr::V4(Ipv4Addr::LOCALHOST), req).await
    }
}

/// Runs the gateway on `listener` until `shutdown` is cancelled.
///
/// With the in-process store (embedded mode) the shard and group agents run
/// inside the gateway, in the same loop as the refresher, so a write reaches
/// `/top` within one interval.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), GatewayError> {
    run_with(config, None, listener, shutdown).await
}

/// [`run`] with a way to re-read the config: `POST /v1/admin/reload` and
/// SIGHUP reload boards, tenants and keys.
pub async fn run_with(
    config: Config,
    reloader: Option<state::Reloader>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), GatewayError> {
    let port = listener.local_addr().ok().map(|a| a.port());
    let gateway = Gateway::open_inner(config, reloader, port).await?;
    let background = gateway.start_background(shutdown.clone());
    reload_on_sighup(gateway.state.clone(), shutdown.clone());
    let embedded = gateway.config.store.kind.in_process();
    tracing::info!(addr = ?listener.local_addr().ok(), embedded, "gateway listening");
    let gw = &gateway.config.gateway;
    let limits = server::Limits {
        max_connections: gw.max_connections,
        max_connections_per_client: gw.max_connections_per_client,
        header_read_timeout: Duration::from_millis(gw.header_read_timeout_ms),
        keep_alive_idle: Duration::from_millis(gw.keep_alive_idle_ms),
        grace: Duration::from_millis(gw.shutdown_grace_ms),
    };
    server::serve(listener, gateway.state.clone(), limits, shutdown).await;
    let _ = background.await;
    tracing::info!("gateway stopped");
    Ok(())
}

/// Reloads the config on every SIGHUP until `shutdown`; a config that does
/// not load is logged and the old one stays.
fn reload_on_sighup(state: Arc<AppState>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot watch SIGHUP; reload with POST /v1/admin/reload");
            return;
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = hup.recv() => {
                    if let Err(e) = state.reload() {
                        tracing::error!(error = %e, "reload on SIGHUP refused; the old config stays");
                    }
                }
            }
        }
    });
}

/// Refreshes every board each interval; in embedded mode runs an agent tick
/// first. Reports each pass to the supervisor. Stops on shutdown.
async fn refresh_loop(
    state: Arc<AppState>,
    config: Config,
    purger: Option<purge::Purger>,
    shutdown: CancellationToken,
) {
    let store: Arc<dyn Store> = state.store.clone();
    let embedded = config.store.kind.in_process();
    let interval = if embedded {
        config.refresh_interval().min(config.precompute_interval())
    } else {
        config.refresh_interval()
    };
    let assignment = Assignment::everything();
    let mut agent = Agent::new();
    let mut static_writer = (!config.gateway.static_dir.is_empty())
        .then(|| StaticWriter::new(&config.gateway.static_dir));
    // Embedded mode runs the whole pipeline in this loop; otherwise refresh
    // at the gateway phase, after the agents' stages of the same interval.
    let phase = if embedded {
        Phase::Shard
    } else {
        Phase::Gateway
    };
    let mut first = true;
    loop {
        if !first {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = phase.sleep(interval) => {}
            }
        }
        first = false;
        #[cfg(test)]
        if state
            .panic_refresher
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            panic!("refresher panic injected by a test");
        }
        if embedded {
            let boards: Vec<_> = state
                .registry
                .load()
                .boards
                .values()
                .map(|b| b.board.clone())
                .collect();
            agent.tick(store.as_ref(), &boards, &assignment).await;
        }
        if let Err(e) = state.sync_catalog().await {
            tracing::warn!(error = %e, "cannot read the board catalog; keeping the boards as they are");
        }
        let registry = state.registry.load_full();
        report_event_lag(store.as_ref(), &registry).await;
        for board in registry.boards.values() {
            let (outcome, slots) = refresh_board_slots(store.as_ref(), board).await;
            if outcome != Refreshed::Changed {
                continue;
            }
            let mut dirs = Vec::new();
            for slot in slots {
                if let Some(writer) = static_writer.as_mut() {
                    if let Err(e) = writer.write_slot(board, slot) {
                        metrics::counter!("standings_static_write_errors_total").increment(1);
                        tracing::warn!(board = %board.board.name, error = %e, "writing static JSON failed");
                    }
                }
                dirs.extend(StaticWriter::dirs(board, slot));
            }
            // After the files are written: the CDN's next fetch gets them.
            if let (Some(purger), false) = (&purger, dirs.is_empty()) {
                purger.board_changed(board.board.name.as_str(), dirs);
            }
        }
        state.metrics.run_upkeep();
        state.refresher.beat();
    }
}

/// Sets `standings_event_lag{tenant}`: events the stream consumer has not
/// applied yet (the actors' lists and owners' totals trail by them).
async fn report_event_lag(store: &dyn Store, registry: &state::Registry) {
    for (tenant, events) in &registry.events {
        let shards: Vec<u32> = (0..events.space.shards).collect();
        match store.event_lag(&events.space, &shards).await {
            Ok(lag) => metrics::gauge!("standings_event_lag", "tenant" => tenant.to_string())
                .set(lag as f64),
            Err(e) => tracing::debug!(%tenant, error = %e, "cannot read the event lag"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    async fn get(gw: &Gateway, path: &str) -> (u16, serde_json::Value) {
        let req = Request::get(path).body(Full::new(Bytes::new())).unwrap();
        let response = gw.handle(req).await;
        let status = response.status().as_u16();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    }

    async fn until(gw: &Gateway, what: &str, want: u16) -> serde_json::Value {
        for _ in 0..500 {
            let (status, body) = get(gw, "/readyz").await;
            if status == want {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_refresher_is_restarted_and_readyz_says_so() {
        let mut config = Config::embedded();
        // Volatile: these tests need no files; the durable store has its own.
        config.store.kind = standings_config::StoreKind::Memory;
        config.gateway.refresh_interval_ms = 20;
        config.agent.precompute_interval_ms = 20;
        config.gateway.static_dir = String::new();
        let gw = Gateway::open(config).await.unwrap();
        let shutdown = CancellationToken::new();
        let background = gw.start_background(shutdown.clone());
        let ready = until(&gw, "the first refresh", 200).await;
        assert_eq!(ready["status"], "ready");
        assert!(ready["snapshot_age_ms"].is_u64(), "{ready}");

        gw.state.panic_refresher.store(true, Ordering::Relaxed);
        let down = until(&gw, "readyz to report the dead refresher", 503).await;
        assert_eq!(down["error"]["code"], "not_ready", "{down}");
        assert!(gw.state.refresher.restarts() >= 1, "the panic was counted");

        gw.state.panic_refresher.store(false, Ordering::Relaxed);
        until(&gw, "the restarted refresher", 200).await;
        assert!(gw.state.refresher.is_running());

        shutdown.cancel();
        background.await.unwrap();
    }
}
