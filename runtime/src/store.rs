//! Config to store: the one place that turns `[store]` into a backend, so
//! the agent, the gateway and the tools open it the same way.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use standings_config::{Config, StoreKind};
use standings_core::store::{DurableOptions, DurableStore, OpenError, RedisOptions, RedisStore};
use standings_core::{MemoryStore, Store, StoreError};

use crate::exit;

/// Why the configured store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenStoreError {
    /// The Redis Cluster could not be reached.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The embedded store's directory or file could not be used.
    #[error(transparent)]
    Embedded(#[from] OpenError),
    /// `store.sync` did not parse (validated configs never get here).
    #[error("store.sync: {0}")]
    Sync(String),
}

impl OpenStoreError {
    /// The sysexits code a binary exits with: 73 (EX_CANTCREAT) when the
    /// data directory or file cannot be created or written, 65 (EX_DATAERR)
    /// for a file that is not a Standings database, 75 (EX_TEMPFAIL) when
    /// another process holds the directory, 69 (EX_UNAVAILABLE) otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            OpenStoreError::Embedded(OpenError::Io { .. }) => exit::EX_CANTCREAT,
            OpenStoreError::Embedded(OpenError::Corrupt { .. }) => exit::EX_DATAERR,
            OpenStoreError::Embedded(OpenError::Locked { .. }) => exit::EX_TEMPFAIL,
            OpenStoreError::Sync(_) => exit::EX_USAGE,
            OpenStoreError::Store(_) => exit::EX_UNAVAILABLE,
        }
    }
}

/// Opens the store the config names. For `embedded`, opens (creating when
/// missing) `store.data_dir` and loads it; for `redis`, connects to the
/// cluster through `store.nodes` with the configured timeouts and retries,
/// and fails (within those bounds) when it cannot be reached.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, OpenStoreError> {
    match config.store.kind {
        StoreKind::Memory => Ok(Arc::new(MemoryStore::new())),
        StoreKind::Embedded => Ok(Arc::new(open_embedded(config)?)),
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

/// Opens the embedded store of `config` (whatever `store.kind` says).
pub fn open_embedded(config: &Config) -> Result<DurableStore, OpenStoreError> {
    let sync = config.store.sync.parse().map_err(
        |e: standings_core::store::durable::ParseSyncError| OpenStoreError::Sync(e.to_string()),
    )?;
    let store = DurableStore::open(
        Path::new(&config.store.data_dir),
        DurableOptions {
            sync,
            ..DurableOptions::default()
        },
    )?;
    Ok(store)
}
