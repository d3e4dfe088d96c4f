//! `standings-loadtest bench-likes`: like events through the gateway, side
//! by side in one run with raw Redis doing the seed's own three commands
//! for a like on the same cluster (issue 13).
//!
//! One run starts a 3-master Redis Cluster on free loopback ports (the
//! test-support harness), one `standings-agent --role all` and the gateway
//! as separate processes with one config ([`config_toml`]: a board fed by
//! target events, `likes.shards` = its 100 shards, `cooldown = "0s"`, one
//! period `all`), checks that one like answers 200 `applied: true`, then:
//!
//! 1. the gateway: wrk with `loadtest/wrk/like.lua` on `POST /v1/events`,
//!    one like per request with a unique id, random actor and target;
//! 2. waits until the agent's event consumer has caught up (the store's
//!    `event_lag` is 0), so its work is counted on the gateway's side and
//!    does not run during the baseline;
//! 3. the baseline: [`super::raw_likes`], the same connections, threads
//!    and duration, on the same cluster.
//!
//! CPU per like is read from `/proc/PID/stat` of the gateway, the agent
//! and the masters (`INFO server` `process_id`) around each side. It writes
//! `TARGET/bench/likes.json` and prints the table. Figures are printed,
//! never asserted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::json;
use standings_core::store::{RedisOptions, RedisStore};
use standings_core::Store;
use standings_test_support::RedisCluster;

use super::commandstats;
use super::raw_likes::{RawLikes, BOARD_KEY};
use super::results::Machine;
use super::stats::{ratio, thousands, Load};
use super::wrk::{self, LikesTally, Wrk};
use super::{procs, stack};

/// The target-fed board of the run.
pub const BOARD: &str = "likes";

/// Its shards, which `likes.shards` must equal.
pub const SHARDS: u32 = 100;

/// Agent and gateway tick of the run.
const TICK_MS: u64 = 1000;

/// How long the agent's consumer may take to catch up after the gateway
/// run.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(180);

/// The goal, as issue 13 states it.
pub const GOAL: &str = "likes/s >= 0.5x raw Redis on the same cluster; p99 < 2 ms";

/// `bench-likes` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct LikesArgs {
    /// Finish in about a minute: 4 s per side (unless --duration).
    #[arg(long)]
    pub quick: bool,
    /// Seconds per side [default: 10; 4 with --quick].
    #[arg(long)]
    pub duration: Option<u64>,
    /// Connections on both sides (wrk -c; raw client workers, one like in
    /// flight each).
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Client threads on both sides (wrk -t; the raw client's runtime).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Actors u:0..N the likes come from.
    #[arg(long, default_value_t = 1_000_000)]
    pub actors: u64,
    /// Targets v:0..N the likes go to.
    #[arg(long, default_value_t = 100_000)]
    pub targets: u64,
    /// Where to write the results [default: TARGET/bench/likes.json].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The flags with their defaults resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct LikesPlan {
    /// `--quick`.
    pub quick: bool,
    /// Each side's length.
    pub duration: Duration,
    /// Connections per side.
    pub connections: usize,
    /// Client threads per side.
    pub threads: usize,
    /// Actors.
    pub actors: u64,
    /// Targets.
    pub targets: u64,
}

impl LikesPlan {
    /// Resolves the defaults of `args`.
    pub fn new(args: &LikesArgs) -> anyhow::Result<Self> {
        let plan = Self {
            quick: args.quick,
            duration: Duration::from_secs(args.duration.unwrap_or(if args.quick { 4 } else { 10 })),
            connections: args.connections,
            threads: args.threads,
            actors: args.actors,
            targets: args.targets,
        };
        if plan.connections < plan.threads || plan.threads == 0 {
            bail!("--connections must be at least --threads, and --threads at least 1");
        }
        if plan.actors == 0 || plan.targets == 0 {
            bail!("--actors and --targets must be at least 1");
        }
        if plan.duration.is_zero() || plan.duration > Duration::from_secs(600) {
            bail!("--duration must be 1 to 600 seconds");
        }
        Ok(plan)
    }
}

/// The gateway and agent config of the run: the cluster store, 1-second
/// ticks, the spool in `spool`, likes over [`SHARDS`] shards without a
/// cooldown (random likes are never refused), and one board fed by target
/// events, a like worth 2, one period.
pub fn config_toml(nodes: &[String], gateway_port: u16, tick_ms: u64, spool: &Path) -> String {
    let nodes = nodes
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "# Written by standings-loadtest bench-likes.
[store]
kind = \"redis\"
nodes = [{nodes}]
connect_timeout_ms = 1000
response_timeout_ms = 1000
retries = 2

[gateway]
listen = \"127.0.0.1:{gateway_port}\"
refresh_interval_ms = {tick_ms}
request_timeout_ms = 5000
shutdown_grace_ms = 1000
static_dir = \"\"

[agent]
precompute_interval_ms = {tick_ms}

[events]
rate_per_actor = 0
spool_dir = {spool:?}

[likes]
shards = {SHARDS}
cooldown = \"0s\"

[[boards]]
name = \"{BOARD}\"
periods = [\"all\"]
source = {{events = \"target\", weights = {{like = 2}}}}
shards = {SHARDS}
groups = 10
top_k = 1000
shard_by = \"hash\"
",
        spool = spool.display().to_string()
    )
}

/// Runs the likes bench. Ctrl-C drops the run and with it every process it
/// started.
pub async fn run(args: &LikesArgs) -> anyhow::Result<()> {
    let plan = LikesPlan::new(args)?;
    let out = match &args.out {
        Some(path) => path.clone(),
        None => procs::target_dir()?.join("bench").join("likes.json"),
    };
    tokio::select! {
        outcome = run_plan(&plan, &out) => outcome,
        _ = tokio::signal::ctrl_c() => bail!("interrupted; every process the run started was stopped"),
    }
}

async fn run_plan(plan: &LikesPlan, out: &Path) -> anyhow::Result<()> {
    for tool in ["wrk", "redis-server", "redis-cli"] {
        if super::which(tool).is_none() {
            bail!("`{tool}` is not on the PATH: run scripts/likes-bench.sh, which installs it");
        }
    }
    let work = out.with_extension("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let load_before = procs::load_average();
    let started_at = super::humantime_now();
    eprintln!("bench-likes: {plan:?}; load average {load_before}");

    eprintln!("bench-likes: starting a 3-master Redis Cluster");
    let cluster = tokio::task::block_in_place(|| RedisCluster::start(3, 0));
    let nodes = cluster.nodes();

    let gateway_port = procs::free_port()?;
    let config_path = work.join("standings.toml");
    let config_text = config_toml(&nodes, gateway_port, TICK_MS, &work.join("spool"));
    std::fs::write(&config_path, &config_text)?;
    let config = standings_config::Config::parse(&config_text, &config_path.display().to_string())?;

    eprintln!("bench-likes: starting standings-agent --role all and the gateway");
    let mut services = stack::Services::start_with(
        &work,
        &config_path,
        gateway_port,
        &[("agent-all", &["--role", "all"])],
    )
    .await?;
    let base = services.base();
    probe_like(&base).await?;

    let scripts = work.join("wrk");
    wrk::write_scripts(&scripts)?;
    let ticks = procs::ticks_per_sec();
    let cluster_pids = super::cluster_pids(&cluster);
    let gateway_pid = services.gateway.pid();
    let agent_pid = services.agents[0].pid();

    let gateway = Wrk {
        threads: plan.threads,
        connections: plan.connections,
        duration: plan.duration,
        script: wrk::script_path(&scripts, "like.lua"),
        url: base.clone(),
        script_args: vec![
            plan.actors.to_string(),
            plan.targets.to_string(),
            format!("b{}", std::process::id()),
        ],
    };
    eprintln!(
        "bench-likes: gateway, POST /v1/events for {:?}",
        plan.duration
    );
    commandstats::reset(&cluster);
    let gateway_meter = procs::CpuMeter::start(&[gateway_pid], ticks);
    let cluster_meter = procs::CpuMeter::start(&cluster_pids, ticks);
    let agent_meter = procs::CpuMeter::start(&[agent_pid], ticks);
    let (g, output) = gateway.run_with_output().await?;
    let gateway_cpu = gateway_meter.used();
    let cluster_run_cpu = cluster_meter.used();
    services.ensure_running()?;
    let tally = wrk::parse_likes(&output).with_context(|| format!("wrk output:\n{output}"))?;
    check_tally(&tally)?;

    eprintln!("bench-likes: waiting for the agent's event consumer to catch up");
    let settle_meter = procs::CpuMeter::start(&cluster_pids, ticks);
    let settle = wait_for_consumer(&nodes, &config).await;
    let cluster_settle_cpu = settle_meter.used();
    let agent_cpu = agent_meter.used();
    let cluster_commands = commandstats::read(&cluster);
    services.ensure_running()?;

    let raw = RawLikes {
        nodes: nodes.clone(),
        connections: plan.connections,
        threads: plan.threads,
        duration: plan.duration,
        actors: plan.actors,
        targets: plan.targets,
    };
    eprintln!(
        "bench-likes: raw Redis, the seed's SADD + HINCRBY + ZINCRBY for {:?}",
        plan.duration
    );
    let raw_meter = procs::CpuMeter::start(&cluster_pids, ticks);
    let r = raw.run().await?;
    let raw_cluster_cpu = raw_meter.used();
    services.ensure_running()?;
    let board_members = zcard(&nodes).await?;

    let per_like =
        |cpu: Duration, load: &Load| cpu.as_secs_f64() * 1e6 / load.requests.max(1) as f64;
    let gateway_side = Side {
        what: "the gateway: POST /v1/events, one like per request (the events script)".into(),
        command: super::shell_join(&gateway.argv()),
        load: g,
        applied: tally.applied,
        applied_share: share(tally.applied, g.requests),
        not_200: tally.not_ok(),
        cpu_us_per_like: BTreeMap::from([
            ("gateway".to_string(), per_like(gateway_cpu, &g)),
            (
                "cluster".to_string(),
                per_like(cluster_run_cpu + cluster_settle_cpu, &g),
            ),
            ("agent".to_string(), per_like(agent_cpu, &g)),
        ]),
    };
    let raw_side = Side {
        what: format!(
            "raw Redis Cluster: SADD likers:{{v:N}} + HINCRBY counts:{{v:N}} pipelined, ZINCRBY {BOARD_KEY} at once"
        ),
        command: raw.describe(),
        load: r.load,
        applied: r.new_likes,
        applied_share: share(r.new_likes, r.load.requests),
        not_200: 0,
        cpu_us_per_like: BTreeMap::from([(
            "cluster".to_string(),
            per_like(raw_cluster_cpu, &r.load),
        )]),
    };
    let results = LikesResults {
        started_at,
        quick: plan.quick,
        settings: LikesSettings {
            threads: plan.threads,
            connections: plan.connections,
            duration_secs: plan.duration.as_secs(),
            actors: plan.actors,
            targets: plan.targets,
            likes_shards: SHARDS,
            tick_ms: TICK_MS,
        },
        machine: Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            load_before,
            load_after: procs::load_average(),
            tools: super::tool_versions(),
        },
        ratio: ratio(g.rps, r.load.rps),
        goal: GOAL.into(),
        settle: json!({
            "consumer_caught_up_secs": settle.as_ref().ok().map(Duration::as_secs_f64),
            "error": settle.as_ref().err().map(|e| format!("{e:#}")),
            "cluster_cpu_us_per_like": per_like(cluster_settle_cpu, &g),
            "what": "after the gateway run, until the store's event_lag is 0; counted in the gateway side's cluster and agent CPU",
        }),
        raw_board_members: board_members,
        cluster_commands,
        services: services.commands.clone(),
        gateway: gateway_side,
        raw: raw_side,
    };
    std::fs::write(out, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("writing {}", out.display()))?;
    println!("{}", results.table());
    println!(
        "The gateway side's cluster time by command (INFO commandstats of the masters, \
         the run and the consumer's catch-up; a script's commands are inside its evalsha):\n{}",
        commandstats::table(&results.cluster_commands, g.requests, "like")
    );
    println!(
        "{} connections, {} threads, {} s per side; actors {}, targets {}, {} likes shards; \
         consumer caught up {}",
        plan.connections,
        plan.threads,
        plan.duration.as_secs(),
        thousands(plan.actors as f64),
        thousands(plan.targets as f64),
        SHARDS,
        match &settle {
            Ok(t) => format!("{:.1} s after the gateway run", t.as_secs_f64()),
            Err(e) => format!("? ({e:#})"),
        }
    );
    println!("services: {}", services.commands.join("; "));
    println!("results: {}", out.display());
    Ok(())
}

/// One like must answer 200 `applied: true` before anything is measured:
/// a 202 `queued` or a 503 means the store cannot apply events (the Redis
/// events script is missing, or the cluster is not reachable).
async fn probe_like(base: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    let response = client
        .post(format!("{base}/v1/events"))
        .header("content-type", "application/json")
        .body(r#"{"id":"probe-1","type":"like","actor":"u:probe","target":"v:probe"}"#)
        .send()
        .await?;
    let status = response.status();
    let body = response.text().await?;
    if status != 200 || !body.contains("\"applied\":true") {
        bail!(
            "a like answered {status} {body}: the store does not apply events here \
             (has the Redis events script landed?)"
        );
    }
    Ok(())
}

/// More than 1% of answers that were not 200 (a 202 `queued`, a 503, a
/// 429) make the run measure something else than applied likes.
fn check_tally(tally: &LikesTally) -> anyhow::Result<()> {
    if tally.answered == 0 {
        bail!("wrk read no answer");
    }
    if tally.not_ok() * 100 > tally.answered {
        bail!(
            "{} of {} likes did not answer 200 (queued, refused or failed)",
            tally.not_ok(),
            tally.answered
        );
    }
    Ok(())
}

/// Waits until the agent has applied every event of the run (the store's
/// `event_lag` over every likes shard is 0), within [`SETTLE_TIMEOUT`];
/// answers how long that took.
async fn wait_for_consumer(
    nodes: &[String],
    config: &standings_config::Config,
) -> anyhow::Result<Duration> {
    let store = RedisStore::connect(nodes, RedisOptions::default()).await?;
    let tenant = standings_core::BoardName::new(standings_config::PUBLIC_TENANT)?;
    let space = config.like_space(&tenant);
    let shards: Vec<u32> = (0..space.shards).collect();
    let started = Instant::now();
    loop {
        let lag = store.event_lag(&space, &shards).await;
        match lag {
            Ok(0) => return Ok(started.elapsed()),
            Ok(_) => {}
            Err(e) if started.elapsed() > Duration::from_secs(5) => {
                bail!("reading the event lag: {e}")
            }
            Err(_) => {}
        }
        if started.elapsed() > SETTLE_TIMEOUT {
            bail!(
                "the consumer still lags by {} events after {SETTLE_TIMEOUT:?}",
                lag.unwrap_or(0)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Members of the raw side's board: every target liked at least once.
async fn zcard(nodes: &[String]) -> anyhow::Result<u64> {
    let urls: Vec<String> = nodes.iter().map(|n| format!("redis://{n}/")).collect();
    let client = redis::cluster::ClusterClient::new(urls)?;
    let mut conn = client.get_async_connection().await?;
    Ok(redis::cmd("ZCARD")
        .arg(BOARD_KEY)
        .query_async(&mut conn)
        .await?)
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// One side of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    /// What it is.
    pub what: String,
    /// The command line (or client) that measured it.
    pub command: String,
    /// Likes/s, p50, p99, likes done, failures.
    #[serde(flatten)]
    pub load: Load,
    /// Likes that applied: `"applied":true` answers; on the raw side,
    /// `SADD` answers 1.
    pub applied: u64,
    /// `applied` over the likes done.
    pub applied_share: f64,
    /// Answers that were not 200 (gateway side).
    pub not_200: u64,
    /// CPU microseconds per like, by process group.
    pub cpu_us_per_like: BTreeMap<String, f64>,
}

impl Side {
    /// `gateway 20.1 + cluster 30.2 + agent 4.0`, in that order.
    fn cpu_text(&self) -> String {
        ["gateway", "cluster", "agent"]
            .iter()
            .filter_map(|k| self.cpu_us_per_like.get(*k).map(|v| format!("{k} {v:.1}")))
            .collect::<Vec<_>>()
            .join(" + ")
    }

    fn cpu_total(&self) -> f64 {
        self.cpu_us_per_like.values().sum()
    }
}

/// Load settings shared by both sides.
#[derive(Debug, Clone, Serialize)]
pub struct LikesSettings {
    /// Client threads.
    pub threads: usize,
    /// Connections (raw: workers with one like in flight each).
    pub connections: usize,
    /// Seconds per side.
    pub duration_secs: u64,
    /// Actors drawn from.
    pub actors: u64,
    /// Targets drawn from.
    pub targets: u64,
    /// `likes.shards`, = the board's shards.
    pub likes_shards: u32,
    /// Agent and gateway tick.
    pub tick_ms: u64,
}

/// `likes.json`.
#[derive(Debug, Clone, Serialize)]
pub struct LikesResults {
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// `--quick`.
    pub quick: bool,
    /// Load settings.
    pub settings: LikesSettings,
    /// What the machine looked like.
    pub machine: Machine,
    /// Gateway likes/s over raw likes/s.
    pub ratio: Option<f64>,
    /// The goal we steer by (never asserted).
    pub goal: String,
    /// The agent's catch-up after the gateway run.
    pub settle: serde_json::Value,
    /// `ZCARD board:likes` after the raw run.
    pub raw_board_members: u64,
    /// The gateway side's cluster commands, calls and µs inside Redis
    /// (`INFO commandstats`, summed over the masters).
    pub cluster_commands: commandstats::Stats,
    /// The services' command lines.
    pub services: Vec<String>,
    /// Through the gateway.
    pub gateway: Side,
    /// Raw Redis.
    pub raw: Side,
}

impl LikesResults {
    /// The Markdown table `docs/benchmarks.md` quotes.
    pub fn table(&self) -> String {
        let row = |name: &str, s: &Side| {
            format!(
                "| {name} | {} | {:.2} ms | {:.2} ms | {:.1}% | {} (total {:.1}) |\n",
                thousands(s.load.rps),
                s.load.p50_ms,
                s.load.p99_ms,
                s.applied_share * 100.0,
                s.cpu_text(),
                s.cpu_total()
            )
        };
        let mut out = String::from(
            "| side | likes/s | p50 | p99 | applied | CPU µs per like |\n| --- | --- | --- | --- | --- | --- |\n",
        );
        out.push_str(&row(
            "gateway `POST /v1/events` (wrk, like.lua)",
            &self.gateway,
        ));
        out.push_str(&row(
            "raw Redis: `SADD` + `HINCRBY` pipelined, `ZINCRBY` (redis-rs)",
            &self.raw,
        ));
        let cpu = ratio(self.gateway.cpu_total(), self.raw.cpu_total())
            .map_or("—".into(), |r| format!("{r:.1}x the raw total"));
        let cluster = ratio(
            self.gateway
                .cpu_us_per_like
                .get("cluster")
                .copied()
                .unwrap_or(f64::NAN),
            self.raw
                .cpu_us_per_like
                .get("cluster")
                .copied()
                .unwrap_or(0.0),
        )
        .map_or("—".into(), |r| format!("{r:.1}x in the cluster"));
        out.push_str(&format!(
            "| gateway ÷ raw (goal: >= 0.5, p99 < 2 ms) | **{}** | | {:.1}x | | {cpu}; {cluster} |\n",
            self.ratio.map_or("—".into(), |r| format!("{r:.3}")),
            self.gateway.load.p99_ms / self.raw.load.p99_ms,
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> LikesArgs {
        LikesArgs {
            quick: false,
            duration: None,
            connections: 32,
            threads: 2,
            actors: 1_000_000,
            targets: 100_000,
            out: None,
        }
    }

    #[test]
    fn quick_runs_are_shorter() {
        assert_eq!(LikesPlan::new(&args()).unwrap().duration.as_secs(), 10);
        let quick = LikesPlan::new(&LikesArgs {
            quick: true,
            ..args()
        })
        .unwrap();
        assert_eq!(quick.duration.as_secs(), 4);
        let custom = LikesPlan::new(&LikesArgs {
            quick: true,
            duration: Some(7),
            ..args()
        })
        .unwrap();
        assert_eq!(custom.duration.as_secs(), 7);
        for bad in [
            LikesArgs {
                threads: 0,
                ..args()
            },
            LikesArgs {
                connections: 1,
                ..args()
            },
            LikesArgs {
                targets: 0,
                ..args()
            },
            LikesArgs {
                duration: Some(0),
                ..args()
            },
        ] {
            assert!(LikesPlan::new(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_config_has_a_target_fed_board_in_the_likes_slots() {
        let nodes = vec!["127.0.0.1:30001".to_string()];
        let text = config_toml(&nodes, 18080, 1000, Path::new("/tmp/spool dir"));
        let config = standings_config::Config::parse(&text, "likes.toml").unwrap();
        assert_eq!(config.likes.shards, SHARDS);
        assert_eq!(config.likes.cooldown, "0s");
        assert_eq!(config.events.spool_dir, "/tmp/spool dir");
        let board = &config.boards()[0];
        assert_eq!((board.name.as_str(), board.shards), (BOARD, SHARDS));
        let source = board.source.as_ref().expect("fed by events");
        assert_eq!(source.weights.get("like"), 2.0);
    }

    #[test]
    fn tallies_with_many_non_200_answers_are_refused() {
        let ok = LikesTally {
            answered: 1000,
            ok: 995,
            applied: 990,
        };
        assert!(check_tally(&ok).is_ok());
        let queued = LikesTally { ok: 10, ..ok };
        let err = check_tally(&queued).unwrap_err().to_string();
        assert!(err.contains("990 of 1000"), "{err}");
        assert!(check_tally(&LikesTally {
            answered: 0,
            ok: 0,
            applied: 0
        })
        .is_err());
    }

    fn side(rps: f64, p99: f64, cpu: &[(&str, f64)]) -> Side {
        Side {
            what: "w".into(),
            command: "c".into(),
            load: Load {
                rps,
                p50_ms: p99 / 2.0,
                p99_ms: p99,
                requests: 1000,
                errors: 0,
            },
            applied: 999,
            applied_share: 0.999,
            not_200: 0,
            cpu_us_per_like: cpu.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn the_table_compares_the_sides() {
        let results = LikesResults {
            started_at: "2026-12-02T00:00:00Z".into(),
            quick: true,
            settings: LikesSettings {
                threads: 2,
                connections: 32,
                duration_secs: 4,
                actors: 1_000_000,
                targets: 100_000,
                likes_shards: 100,
                tick_ms: 1000,
            },
            machine: Machine {
                cpus: 2,
                load_before: "1".into(),
                load_after: "2".into(),
                tools: vec![],
            },
            ratio: Some(0.25),
            goal: GOAL.into(),
            settle: json!({}),
            raw_board_members: 10,
            cluster_commands: commandstats::Stats::new(),
            services: vec![],
            gateway: side(
                10_000.0,
                4.0,
                &[("gateway", 20.0), ("cluster", 40.0), ("agent", 5.0)],
            ),
            raw: side(40_000.0, 2.0, &[("cluster", 10.0)]),
        };
        let table = results.table();
        assert_eq!(table.lines().count(), 5, "{table}");
        assert!(
            table.contains("| 10,000 | 2.00 ms | 4.00 ms | 99.9% | gateway 20.0 + cluster 40.0 + agent 5.0 (total 65.0) |"),
            "{table}"
        );
        assert!(table.contains("**0.250**"), "{table}");
        assert!(table.contains("| 2.0x |"), "{table}");
        assert!(
            table.contains("6.5x the raw total; 4.0x in the cluster"),
            "{table}"
        );
        let json = serde_json::to_value(&results).unwrap();
        assert_eq!(json["gateway"]["rps"], 10_000.0);
        assert_eq!(json["raw"]["cpu_us_per_like"]["cluster"], 10.0);
        assert_eq!(json["ratio"], 0.25);
    }
}
