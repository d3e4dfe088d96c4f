//! `standings-gateway`: parse flags, load config, start tracing, bind, and
//! run until SIGINT/SIGTERM; or `standings-gateway backup --to FILE`, or
//! `standings-gateway keygen`.

mod backup;

/// mimalloc rather than the system allocator: the request paths allocate
/// many small short-lived buffers (JSON, script arguments, replies), and
/// with mimalloc a lookup from the members index costs a third less
/// gateway CPU, a window or a like about a sixth less (docs/benchmarks.md,
/// "The allocator").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use standings_config::{Config, ConfigArgs};
use standings_runtime::exit;

/// Standings gateway: the leaderboard HTTP API.
#[derive(Parser, Debug, Clone)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Address to listen on [default: the config's gateway.listen, 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<String>,
    /// A CDN endpoint to purge when static JSON changes (repeatable); added
    /// to the config's cdn.purge_urls.
    #[arg(long = "cdn-purge-url")]
    cdn_purge_urls: Vec<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug, Clone)]
enum Command {
    /// Writes a consistent copy of the embedded store to FILE and exits,
    /// whether a gateway is serving the data_dir (it is asked over HTTP at
    /// --listen / gateway.listen) or not (the file is read directly).
    /// Restore: stop the gateway, put FILE in place of
    /// DATA_DIR/standings.redb, start it.
    Backup {
        /// Where the copy goes; written under a temporary name and renamed.
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Prints a new random API key and the SHA-256 to put in the config
    /// (`[[tenants]] keys = [{id, sha256, scopes}]`). The key is shown once;
    /// the config keeps only the hash.
    Keygen,
}

const PROGRAM: &str = "standings-gateway";

#[tokio::main]
async fn main() -> ExitCode {
    standings_runtime::init_tracing();
    let args = Args::parse();
    if let Some(Command::Keygen) = &args.command {
        let (key, sha256) = keygen();
        println!("key:    {key}\nsha256: {sha256}");
        return ExitCode::SUCCESS;
    }
    let config = match load(&args) {
        Ok(c) => c,
        Err(e) => return exit::fail(PROGRAM, &e, exit::EX_USAGE),
    };
    if let Some(Command::Backup { to }) = &args.command {
        return match backup::run(&config, to).await {
            Ok(message) => {
                println!("{message}");
                ExitCode::SUCCESS
            }
            Err((e, code)) => exit::fail(PROGRAM, &e, code),
        };
    }
    let listener = match tokio::net::TcpListener::bind(&config.gateway.listen).await {
        Ok(l) => l,
        Err(e) => {
            let e = format!("binding {}: {e}", config.gateway.listen);
            return exit::fail(PROGRAM, &e, exit::EX_OSERR);
        }
    };
    let shutdown = standings_runtime::shutdown_on_signal();
    let again = args.clone();
    let reloader: standings_gateway::state::Reloader =
        Box::new(move || load(&again).map_err(|e| e.to_string()));
    match standings_gateway::run_with(config, Some(reloader), listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => exit::fail(PROGRAM, &e, e.exit_code()),
    }
}

/// A new API key (`sk_` and 32 random bytes as 64 hex digits, from the
/// operating system's generator) and its SHA-256 in hex.
fn keygen() -> (String, String) {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let key = format!("sk_{}", hex(&bytes));
    let digest = standings_config::key_digest(key.as_bytes());
    (key, hex(&digest))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The config with the command line's overrides applied, validated.
fn load(args: &Args) -> Result<Config, standings_config::ConfigError> {
    let mut config = args.config.load()?;
    if let Some(listen) = &args.listen {
        config.gateway.listen = listen.clone();
    }
    config
        .cdn
        .purge_urls
        .extend(args.cdn_purge_urls.iter().cloned());
    config.validate("command line")
}
