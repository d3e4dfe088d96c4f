//! Config to store: the one place that turns `[store]` into a backend, so
//! the agent, the gateway and the tools open it the same way.

use std::sync::Arc;
use std::time::Duration;

use standings_config::{Config, StoreKind};
use standings_core::store::{RedisOptions, RedisStore};
use standings_core::{MemoryStore, Store, StoreError};

/// Opens the store the config names. For `redis`, connects to the cluster
/// through `store.nodes` with the configured timeouts and retries, and fails
/// (within those bounds) when it cannot be reached.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    match config.store.kind {
        StoreKind::Memory => Ok(Arc::new(MemoryStore::new())),
        StoreKind::Redis => {
            let opts = RedisOptions {
                connect_timeout: Duration::from_millis(config.store.connect_timeout_ms),
                response_timeout: Duration::from_millis(config.store.response_timeout_ms),
                retries: config.store.retries,
            };
            Ok(Arc::new(
                RedisStore::connect(&config.store.nodes, opts).await?,
            ))
        }
    }
}
