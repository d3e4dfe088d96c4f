//! What every Standings process does around its own work: logging set-up,
//! shutdown on SIGINT/SIGTERM, sysexits-style exit codes, the wall-clock
//! phases the pipeline ticks at, supervision of background tasks, and
//! opening the store the config names.
//!
//! None of this is agent or gateway logic; both binaries (and the gateway's
//! embedded mode) use it, so it lives apart from both, as linkerd2-proxy
//! keeps its signal handling in a crate of its own.

pub mod exit;
pub mod phase;
pub mod signal;
pub mod store;
pub mod supervise;

pub use phase::Phase;
pub use signal::shutdown_on_signal;
pub use store::{open_embedded, open_store, OpenStoreError};
pub use supervise::{supervise, Supervised};

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}
