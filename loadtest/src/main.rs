//! `standings-loadtest`: the Rust side of Standings' load tests.
//!
//! One binary with a subcommand per tool, so that each keeps its own flags:
//!
//! - `goose [GOOSE FLAGS...]`: the top, rank, write, mixed and cdn
//!   scenarios (the same mixes as the k6 scripts in `loadtest/k6/`), run
//!   by goose with goose's own command line (`--scenarios`, `--users`,
//!   `--run-time`, `--report-file`, `--threshold`, ...). See [`scenarios`].
//! - `bench [--quick] [--members N]`: the figures side by side with their
//!   baselines (nginx, one Redis, the design card) in one run, written to
//!   `target/bench/results.json`. See [`bench`].
//! - `bench-likes [--quick] [--duration S]`: like events through the
//!   gateway against raw Redis doing the seed's three commands per like,
//!   on the same cluster, written to `target/bench/likes.json`.
//! - `seed --members N --board B [--redis-nodes ... | --config FILE]
//!   [--seed S] [--concurrency C]`: loads N members into a board of a Redis
//!   Cluster through the store, with reproducible scores. See [`seed`].
//!
//! Exit status: 0 when the run passed (no failed request, every threshold
//! met), 1 otherwise, 2 for a bad command line.

mod bench;
mod scenarios;
mod seed;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Standings load tests (k6 scripts live beside this crate in `loadtest/k6/`).
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the goose scenarios (top, rank, write, mixed, cdn). Every flag after
    /// `goose` is goose's own: `standings-loadtest goose --help` lists them.
    #[command(disable_help_flag = true)]
    Goose {
        /// Goose's flags, passed through unchanged.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Measure the gateway side by side with its baselines (nginx, one
    /// Redis, the design card) and write target/bench/results.json.
    Bench(bench::BenchArgs),
    /// Like events through the gateway against raw Redis doing the seed's
    /// three commands per like, on one cluster; writes
    /// target/bench/likes.json.
    BenchLikes(bench::LikesArgs),
    /// Load N members (user:0..N) into a board of a Redis Cluster through
    /// the store, with reproducible long-tailed integer scores.
    Seed(seed::SeedArgs),
    // Further subcommands go here, one variant and one module each.
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Goose { args } => scenarios::run(&args).await,
        Command::Bench(args) => bench::run(&args).await,
        Command::BenchLikes(args) => bench::run_likes(&args).await,
        Command::Seed(args) => seed::run(&args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("standings-loadtest: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn goose_flags_pass_through_untouched() {
        let cli = Cli::try_parse_from([
            "standings-loadtest",
            "goose",
            "--help",
            "-H",
            "http://127.0.0.1:8080",
            "--scenarios",
            "mixed",
        ])
        .unwrap();
        let Command::Goose { args } = cli.command else {
            panic!("goose parses as goose");
        };
        assert_eq!(
            args,
            [
                "--help",
                "-H",
                "http://127.0.0.1:8080",
                "--scenarios",
                "mixed"
            ]
        );
    }
}
