//! `standings-agent`: parse flags, load config, start tracing, run the
//! precompute loops until SIGINT/SIGTERM; SIGHUP re-reads the config.

/// mimalloc rather than the system allocator, as in the gateway: the
/// event consumer and the snapshot loops allocate many small short-lived
/// buffers (stream entries, script arguments, replies); with mimalloc the
/// agent's CPU per like fell by about a fifth (docs/benchmarks.md, "The
/// allocator").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;
use standings_config::ConfigArgs;
use standings_runtime::{exit, open_store};
use standings_shard_agent::{parse_range, run_with_catalog, Assignment, Role};

/// Standings precompute agent: publishes shard TOP-K snapshots and merges
/// them into group snapshots.
#[derive(Parser, Debug, Clone)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
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

const PROGRAM: &str = "standings-agent";

#[tokio::main]
async fn main() -> ExitCode {
    standings_runtime::init_tracing();
    let args = Args::parse();
    let config = match args.config.load() {
        Ok(c) => c,
        Err(e) => return exit::fail(PROGRAM, &e, exit::EX_USAGE),
    };
    let store = match open_store(&config).await {
        Ok(s) => s,
        Err(e) => return exit::fail(PROGRAM, &e, e.exit_code()),
    };
    let assignment = Assignment {
        role: args.role,
        shards: args.shards,
        groups: args.groups,
    };
    let shutdown = standings_runtime::shutdown_on_signal();
    let again = args.config.clone();
    let reload: standings_shard_agent::Reloader =
        Box::new(move || again.load().map_err(|e| e.to_string()));
    run_with_catalog(
        store,
        config.boards(),
        Some(config.clone()),
        Some(reload),
        assignment,
        config.precompute_interval(),
        shutdown,
    )
    .await;
    ExitCode::SUCCESS
}
