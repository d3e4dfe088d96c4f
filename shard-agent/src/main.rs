//! `standings-agent`: parse flags, load config, start tracing, run the
//! precompute loops until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use standings_config::Config;
use standings_shard_agent::{open_store, parse_range, run, Assignment, Role};
use tokio_util::sync::CancellationToken;

/// Standings precompute agent: publishes shard TOP-K snapshots and merges
/// them into group snapshots.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Config file (TOML); default: the embedded example config.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Redis Cluster seed nodes, HOST:PORT,...; selects the Redis store
    /// whatever the config file names.
    #[arg(long)]
    redis_nodes: Option<String>,
    /// Which loops to run.
    #[arg(long, value_enum, default_value_t = Role::All)]
    role: Role,
    /// Shards owned by the shard role, A-B inclusive; default: all.
    #[arg(long, value_parser = parse_range)]
    shards: Option<std::ops::Range<u32>>,
    /// Groups owned by the group role, A-B inclusive; default: all.
    #[arg(long, value_parser = parse_range)]
    groups: Option<std::ops::Range<u32>>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let mut config = match Config::load_or_embedded(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return usage_error(&e),
    };
    if let Some(nodes) = &args.redis_nodes {
        if let Err(e) = config.use_redis_nodes(nodes) {
            return usage_error(&e);
        }
    }
    let store = match open_store(&config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("standings-agent: {e}");
            return ExitCode::from(69); // EX_UNAVAILABLE
        }
    };
    let assignment = Assignment {
        role: args.role,
        shards: args.shards,
        groups: args.groups,
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    run(
        store,
        config.boards(),
        assignment,
        config.precompute_interval(),
        shutdown,
    )
    .await;
    ExitCode::SUCCESS
}

/// Bad flags or config exit with EX_USAGE (64), like linkerd.
fn usage_error(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("standings-agent: {e}");
    ExitCode::from(64)
}

async fn cancel_on_signal(token: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested");
    token.cancel();
}
