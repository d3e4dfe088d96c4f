//! The goose scenarios, the same mixes as the k6 scripts in `loadtest/k6/`:
//!
//! | scenario | requests |
//! | --- | --- |
//! | `top` | `GET /v1/boards/{b}/top?limit=20` |
//! | `rank` | `GET /v1/boards/{b}/members/user:N`, N random in `0..MEMBERS` |
//! | `write` | `POST /v1/boards/{b}/scores`, `incr` of a random member by 1..=100 |
//! | `mixed` | 90 `top` : 9 `rank` : 1 `write` |
//! | `cdn` | `GET /static/{b}/top20.json`, meant for `-H` pointing at Varnish |
//!
//! Pick one with goose's `--scenarios NAME`; without it, goose splits its
//! users over all five. The host defaults to `http://127.0.0.1:8080` (the
//! gateway's default listen address); `-H` changes it.
//!
//! Before goose starts, `MEMBERS` members (`user:0` ..) are written with
//! `op: set` (a bounded count, at most [`MAX_MEMBERS`]), so every `rank`
//! request finds its member. The board is `BOARD` (default `global`).
//!
//! Defaults added to goose's own, each replaced by the matching flag:
//! thresholds `p99<200ms` (the design target) and `error-rate<=0%`
//! (`--threshold`), and a run time of 10 s when neither `--run-time`,
//! `--iterations` nor `--test-plan` bounds the run, so a run always ends by
//! itself.

use std::sync::OnceLock;

use anyhow::Context;
use goose::config::GooseConfiguration;
use goose::prelude::*;
use rand::Rng;

/// Where requests go without `-H`: the gateway's default listen address.
pub const DEFAULT_HOST: &str = "http://127.0.0.1:8080";

/// Run time when the command line bounds the run in no other way.
const DEFAULT_RUN_TIME_SECS: usize = 10;

/// Members seeded (and picked from) without `MEMBERS`.
const DEFAULT_MEMBERS: usize = 1000;

/// Most members seeded, whatever `MEMBERS` says: seeding is sequential
/// batches, and a load test should not spend minutes preparing.
pub const MAX_MEMBERS: usize = 100_000;

/// Writes in flight at once while seeding.
const SEED_CONCURRENCY: usize = 16;

/// What the transactions read from the environment, once.
struct Settings {
    /// `BOARD`, default `global`.
    board: String,
    /// `MEMBERS`, default 1000, at most [`MAX_MEMBERS`].
    members: usize,
}

fn settings() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS.get_or_init(|| Settings {
        board: std::env::var("BOARD").unwrap_or_else(|_| "global".into()),
        members: std::env::var("MEMBERS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(DEFAULT_MEMBERS)
            .min(MAX_MEMBERS),
    })
}

/// Parses goose's flags from `args`, seeds the members, runs the scenarios
/// and fails when any request failed or any threshold was missed.
pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let argv = std::iter::once("standings-loadtest goose").chain(args.iter().map(String::as_str));
    let config = match <GooseConfiguration as clap::Parser>::try_parse_from(argv) {
        Ok(config) => config,
        // Help, or a bad flag: clap prints it and exits (0 or 2).
        Err(e) => e.exit(),
    };
    let informational = config.list || config.scenarios_list || config.version;
    // goose keeps its parsed test plan private: look for the flag itself.
    let test_plan = args
        .iter()
        .any(|a| a == "--test-plan" || a.starts_with("--test-plan="));
    let bounded = config.run_time.is_some() || config.iterations.is_some() || test_plan;
    let host = config
        .host
        .clone()
        .unwrap_or_else(|| DEFAULT_HOST.to_string());
    if !informational {
        let s = settings();
        seed_members(&host, &s.board, s.members).await?;
    }
    let mut attack = GooseAttack::initialize_with_config(config)?
        .set_default(GooseDefault::Host, DEFAULT_HOST)?
        .set_default(GooseDefault::Threshold, "p99<200ms")?
        .set_default(GooseDefault::Threshold, "error-rate<=0%")?;
    if !bounded {
        attack = attack.set_default(GooseDefault::RunTime, DEFAULT_RUN_TIME_SECS)?;
    }
    let metrics = attack
        .register_scenario(scenario!("top").register_transaction(transaction!(top).set_name("top")))
        .register_scenario(
            scenario!("rank").register_transaction(transaction!(rank).set_name("rank")),
        )
        .register_scenario(
            scenario!("write").register_transaction(transaction!(write).set_name("write")),
        )
        .register_scenario(
            scenario!("mixed")
                .register_transaction(transaction!(top).set_name("top").set_weight(90)?)
                .register_transaction(transaction!(rank).set_name("rank").set_weight(9)?)
                .register_transaction(transaction!(write).set_name("write").set_weight(1)?),
        )
        .register_scenario(scenario!("cdn").register_transaction(transaction!(cdn).set_name("cdn")))
        .execute()
        .await?;
    let failed: usize = metrics.requests.values().map(|r| r.fail_count).sum();
    let total: usize = metrics
        .requests
        .values()
        .map(|r| r.fail_count + r.success_count)
        .sum();
    anyhow::ensure!(failed == 0, "{failed} of {total} requests failed");
    Ok(())
}

/// Writes `user:0` .. `user:{count-1}` to `board` at `host` with `op: set`
/// (scores spread over 0..100000), [`SEED_CONCURRENCY`] at a time; any
/// failed write fails the seeding. The planned `seed` subcommand can reuse
/// it.
pub async fn seed_members(host: &str, board: &str, count: usize) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .no_proxy()
        .build()?;
    let url = format!("{}/v1/boards/{board}/scores", host.trim_end_matches('/'));
    let count = count.min(MAX_MEMBERS);
    let mut next = 0;
    while next < count {
        let end = (next + SEED_CONCURRENCY).min(count);
        let mut batch = tokio::task::JoinSet::new();
        for i in next..end {
            let request = client.post(&url).json(&serde_json::json!({
                "member": format!("user:{i}"),
                "score": (i * 7919) % 100_000,
                "op": "set",
            }));
            batch.spawn(async move { (i, request.send().await) });
        }
        while let Some(joined) = batch.join_next().await {
            let (i, sent) = joined?;
            let response = sent.with_context(|| format!("seeding user:{i} at {url}"))?;
            anyhow::ensure!(
                response.status().is_success(),
                "seeding user:{i} at {url}: answered {}",
                response.status()
            );
        }
        next = end;
    }
    Ok(())
}

/// A random seeded member id.
fn random_member() -> String {
    let n = rand::thread_rng().gen_range(0..settings().members);
    format!("user:{n}")
}

/// TOP20 from the pre-serialised snapshot.
async fn top(user: &mut GooseUser) -> TransactionResult {
    let path = format!("/v1/boards/{}/top?limit=20", settings().board);
    user.get_named(&path, "top").await?;
    Ok(())
}

/// Exact rank of a random member (live fan-out over every shard).
async fn rank(user: &mut GooseUser) -> TransactionResult {
    let path = format!(
        "/v1/boards/{}/members/{}",
        settings().board,
        random_member()
    );
    user.get_named(&path, "rank").await?;
    Ok(())
}

/// One score write: `incr` of a random member by 1..=100.
async fn write(user: &mut GooseUser) -> TransactionResult {
    let delta = rand::thread_rng().gen_range(1..=100);
    let body = serde_json::json!({"member": random_member(), "score": delta, "op": "incr"});
    let path = format!("/v1/boards/{}/scores", settings().board);
    let builder = user
        .get_request_builder(&GooseMethod::Post, &path)?
        .header("content-type", "application/json")
        .body(body.to_string());
    let request = GooseRequest::builder()
        .method(GooseMethod::Post)
        .path(path.as_str())
        .name("write")
        .set_request_builder(builder)
        .build();
    user.request(request).await?;
    Ok(())
}

/// The static TOP20 file, as a CDN serves it.
async fn cdn(user: &mut GooseUser) -> TransactionResult {
    let path = format!("/static/{}/top20.json", settings().board);
    user.get_named(&path, "cdn").await?;
    Ok(())
}
