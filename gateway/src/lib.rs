//! The Standings gateway: the HTTP API of `api.md` over a [`Store`], the
//! global merge behind an `ArcSwap`, pre-serialised TOP20/100/1000 bodies,
//! static JSON files, CDN purges when they change, metrics and graceful
//! shutdown.
//!
//! [`run`] is what the binary calls and what integration tests call: give it
//! a config, a bound listener and a shutdown token.

pub mod api;
pub mod error;
pub mod limit;
pub mod purge;
pub mod refresh;
pub mod server;
pub mod telemetry;
pub mod view;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use standings_config::{Config, StoreKind};
use standings_core::{Store, StoreError};
use standings_shard_agent::{open_store, Agent, Assignment, Phase};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::AppState;
use crate::refresh::{refresh_board, Refreshed, StaticWriter};
use crate::view::BoardState;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The store could not be opened.
    #[error("opening the store: {0}")]
    Store(#[from] StoreError),
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
    let store = open_store(&config).await?;
    let boards: HashMap<String, Arc<BoardState>> = config
        .boards()
        .into_iter()
        .map(|b| (b.name.to_string(), Arc::new(BoardState::new(b))))
        .collect();
    let state = Arc::new(AppState {
        boards,
        store: store.clone(),
        metrics: telemetry::metrics_handle(),
        max_body_bytes: config.gateway.max_body_bytes,
        request_timeout: Duration::from_millis(config.gateway.request_timeout_ms),
        request_counter: AtomicU64::new(0),
        route_metrics: telemetry::RouteMetrics::new(),
        write_limiter: limit::RateLimiter::new(
            config.gateway.write_rate_per_client,
            config.gateway.write_burst_per_client,
        ),
    });
    let embedded = config.store.kind == StoreKind::Memory;
    let background = tokio::spawn(refresh_loop(
        store,
        state.clone(),
        config.clone(),
        embedded,
        shutdown.clone(),
    ));
    tracing::info!(addr = ?listener.local_addr().ok(), embedded, "gateway listening");
    server::serve(
        listener,
        state,
        config.gateway.max_connections,
        Duration::from_millis(config.gateway.shutdown_grace_ms),
        shutdown,
    )
    .await;
    let _ = background.await;
    tracing::info!("gateway stopped");
    Ok(())
}

/// Refreshes every board each interval; in embedded mode runs an agent tick
/// first. Stops on shutdown.
async fn refresh_loop(
    store: Arc<dyn Store>,
    state: Arc<AppState>,
    config: Config,
    embedded: bool,
    shutdown: CancellationToken,
) {
    let interval = if embedded {
        config.refresh_interval().min(config.precompute_interval())
    } else {
        config.refresh_interval()
    };
    let boards = config.boards();
    let assignment = Assignment::everything();
    let mut agent = Agent::new();
    let mut static_writer = (!config.gateway.static_dir.is_empty())
        .then(|| StaticWriter::new(&config.gateway.static_dir));
    let purger = purge::Purger::spawn(&config.cdn, shutdown.clone());
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
        if embedded {
            agent.tick(store.as_ref(), &boards, &assignment).await;
        }
        for board in state.boards.values() {
            let outcome = refresh_board(store.as_ref(), board).await;
            if outcome == Refreshed::Changed {
                if let Some(writer) = static_writer.as_mut() {
                    if let Err(e) = writer.write(board) {
                        metrics::counter!("standings_static_write_errors_total").increment(1);
                        tracing::warn!(board = %board.board.name, error = %e, "writing static JSON failed");
                    }
                }
                // After the files are written: the CDN's next fetch gets them.
                if let Some((purger, _)) = &purger {
                    purger.board_changed(board.board.name.as_str());
                }
            }
        }
        state.metrics.run_upkeep();
    }
    if let Some((purger, task)) = purger {
        drop(purger);
        let _ = task.await;
    }
}
