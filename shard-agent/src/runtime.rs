//! What both binaries do around their `run`: logging set-up, shutdown on
//! SIGINT/SIGTERM, and sysexits-style exit codes.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

/// Bad flags or config (EX_USAGE).
pub const EX_USAGE: u8 = 64;
/// A needed service (the store) is unavailable (EX_UNAVAILABLE).
pub const EX_UNAVAILABLE: u8 = 69;
/// The OS refused something, e.g. binding the listen address (EX_OSERR).
pub const EX_OSERR: u8 = 71;

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}

/// A token cancelled on the first SIGINT or SIGTERM.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(term) => term,
            Err(e) => {
                tracing::error!(error = %e, "cannot watch SIGTERM; only SIGINT stops the process");
                let _ = tokio::signal::ctrl_c().await;
                cancel.cancel();
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutdown requested");
        cancel.cancel();
    });
    token
}

/// Prints `program: error` and returns `code`.
pub fn fail(program: &str, error: &dyn std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("{program}: {error}");
    ExitCode::from(code)
}
