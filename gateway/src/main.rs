//! `standings-gateway`: parse flags, load config, start tracing, bind, and
//! run until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use standings_config::Config;
use tokio_util::sync::CancellationToken;

/// Standings gateway: the leaderboard HTTP API.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Config file (TOML); default: the embedded example config (in-process
    /// store, agents in-process, 1-second refresh).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Redis Cluster seed nodes, HOST:PORT,...; selects the Redis store
    /// whatever the config file names.
    #[arg(long)]
    redis_nodes: Option<String>,
    /// Address to listen on [default: the config's gateway.listen, 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<String>,
    /// A CDN endpoint to purge when static JSON changes (repeatable); added
    /// to the config's cdn.purge_urls.
    #[arg(long = "cdn-purge-url")]
    cdn_purge_urls: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let config = match load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("standings-gateway: {e}");
            return ExitCode::from(64); // EX_USAGE
        }
    };
    let listener = match tokio::net::TcpListener::bind(&config.gateway.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("standings-gateway: binding {}: {e}", config.gateway.listen);
            return ExitCode::from(71); // EX_OSERR
        }
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    match standings_gateway::run(config, listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("standings-gateway: {e}");
            ExitCode::from(69) // EX_UNAVAILABLE
        }
    }
}

/// The config with the command line's overrides applied, validated.
fn load(args: &Args) -> Result<Config, standings_config::ConfigError> {
    let mut config = Config::load_or_embedded(args.config.as_deref())?;
    if let Some(nodes) = &args.redis_nodes {
        config.use_redis_nodes(nodes)?;
    }
    if let Some(listen) = &args.listen {
        config.gateway.listen = listen.clone();
    }
    config
        .cdn
        .purge_urls
        .extend(args.cdn_purge_urls.iter().cloned());
    config.validate("command line")
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
