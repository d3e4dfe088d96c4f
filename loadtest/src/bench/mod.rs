//! `standings-loadtest bench`: the figures that prove the design, each
//! measured side by side with its baseline in the same run.
//!
//! One run starts a 3-master Redis Cluster on free loopback ports (the
//! test-support harness), seeds the members over 100 shards through the
//! store's write path (`seed::seed_store`), starts two shard agents, a
//! group agent and the gateway as separate processes with 1-second ticks,
//! and measures:
//!
//! | key | the gateway | its baseline, same run |
//! | --- | --- | --- |
//! | `top20` | wrk on `GET /top?limit=20` | wrk on nginx serving the same bytes as a file |
//! | `rank` | wrk on `GET /members/{random}` (100-shard fan-out) | redis-benchmark `ZREVRANK` on one sorted set |
//! | `write` | wrk on `POST /scores` (`incr`) | redis-benchmark `ZINCRBY` on that set |
//! | `freshness` | write's 200 to the member in `/top` | the design card's 5 min + 1 min |
//! | `merge` | `merge_sorted_refs`, top 1000 of 100 x 1000 | the seed design's 30 ms |
//! | `memory` | Redis bytes per member, gateway RSS | — |
//!
//! It writes `TARGET/bench/results.json` ([`results`]) and prints the table.
//! Figures are printed, never asserted: goals are what we steer by.
//!
//! Every process the run starts is a guard that stops it on drop, and
//! Ctrl-C drops the run (see [`run`]).
//!
//! This file is the run plan: which processes start in which order and
//! which measurement follows which. Each measurement's own code is in its
//! submodule; what stays here reads top to bottom as the run does, so it is
//! one piece (about 800 lines).

mod commandstats;
mod freshness;
mod likes;
mod merge;
mod nginx;
mod procs;
mod rank_freshness;
mod raw_likes;
mod redis_bench;
mod results;
mod seeding;
mod stack;
mod stats;
mod wrk;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use standings_core::store::{RedisOptions, RedisStore};
use standings_core::Board;
use standings_test_support::RedisCluster;

use self::redis_bench::RedisBench;
use self::results::{Entry, Machine, Results, Settings};
use self::stats::{percentile, ratio, thousands, Load};
use self::wrk::Wrk;

pub use self::likes::{run as run_likes, LikesArgs};

/// The seed design's global merge: about 30 ms.
const SEED_MERGE_US: f64 = 30_000.0;

/// The design card's freshness: shard TOP-K every 5 minutes, TOP20 every
/// minute.
const DESIGN_FRESHNESS_MS: f64 = 360_000.0;

/// Agent and gateway tick of the run.
const TICK_MS: u64 = 1000;

/// `gateway.rank_staleness_ms` of the second gateway, whose ranks come
/// from its score cache.
const RANK_STALENESS_MS: u64 = 1000;

/// Timed merge runs (after as many untimed ones).
const MERGE_RUNS: usize = 2001;

/// `bench` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Finish in under 3 minutes: 100,000 members (unless --members), 4 s
    /// per load run, 30 freshness probes.
    #[arg(long)]
    pub quick: bool,
    /// Members to seed [default: 1,000,000; 100,000 with --quick].
    #[arg(long)]
    pub members: Option<u64>,
    /// Seconds per load run [default: 10; 4 with --quick].
    #[arg(long)]
    pub duration: Option<u64>,
    /// Connections on both sides of every comparison.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Client threads on both sides (wrk -t, redis-benchmark --threads).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Freshness probes [default: 200; 30 with --quick].
    #[arg(long)]
    pub probes: Option<usize>,
    /// Where to write the results [default: TARGET/bench/results.json].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The flags with their defaults resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// `--quick`.
    pub quick: bool,
    /// Members seeded.
    pub members: u64,
    /// Each load run's length.
    pub duration: Duration,
    /// Connections per side.
    pub connections: usize,
    /// Client threads per side.
    pub threads: usize,
    /// Freshness probes.
    pub probes: usize,
    /// Of which in flight at once.
    pub probe_concurrency: usize,
}

impl Plan {
    /// Resolves the defaults of `args`.
    pub fn new(args: &BenchArgs) -> anyhow::Result<Self> {
        let quick = args.quick;
        let plan = Self {
            quick,
            members: args
                .members
                .unwrap_or(if quick { 100_000 } else { 1_000_000 }),
            duration: Duration::from_secs(args.duration.unwrap_or(if quick { 4 } else { 10 })),
            connections: args.connections,
            threads: args.threads,
            probes: args.probes.unwrap_or(if quick { 30 } else { 200 }),
            probe_concurrency: if quick { 4 } else { 8 },
        };
        if plan.members < 20 {
            bail!("--members must be at least 20 (the TOP20 must be full)");
        }
        if plan.connections < plan.threads || plan.threads == 0 {
            bail!("--connections must be at least --threads, and --threads at least 1");
        }
        Ok(plan)
    }
}

/// Runs the bench. Ctrl-C drops the run, and with it every guard: each
/// process it started is stopped before this returns.
pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let plan = Plan::new(args)?;
    let out = match &args.out {
        Some(path) => path.clone(),
        None => procs::target_dir()?.join("bench").join("results.json"),
    };
    tokio::select! {
        outcome = run_plan(&plan, &out) => outcome,
        _ = tokio::signal::ctrl_c() => bail!("interrupted; every process the run started was stopped"),
    }
}

/// The run itself; every process it starts lives in a local guard.
async fn run_plan(plan: &Plan, out: &Path) -> anyhow::Result<()> {
    check_tools()?;
    // Beside the results and named after them (`results.work/`), so that
    // clearing it never touches anything the run did not make.
    let work = out.with_extension("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let load_before = procs::load_average();
    let started_at = humantime_now();
    eprintln!("bench: {plan:?}; load average {load_before}");

    eprintln!("bench: timing the merge in process");
    let merge = measure_merge();

    eprintln!("bench: starting a 3-master Redis Cluster and the baseline Redis");
    let cluster = tokio::task::block_in_place(|| RedisCluster::start(3, 0));
    let nodes = cluster.nodes();
    let (single, single_port, single_cmd) = stack::start_single_redis(&work).await?;

    let gateway_port = procs::free_port()?;
    let config_path = work.join("standings.toml");
    let config_text = stack::config_toml(&nodes, gateway_port, TICK_MS);
    std::fs::write(&config_path, &config_text)?;
    let config = standings_config::Config::parse(&config_text, &config_path.display().to_string())?;
    let board = config.boards().remove(0);

    let mut memory = seed(plan, &cluster, &nodes, &board).await?;
    eprintln!("bench: loading the baseline's single sorted set");
    seeding::seed_baseline(single_port, plan.members).await?;

    eprintln!("bench: starting the agents and the gateway");
    let mut services = stack::Services::start(&work, &config_path, gateway_port).await?;
    let base = services.base();
    let body = stack::wait_for_view(&base, plan.members, Duration::from_secs(120)).await?;

    let scripts = work.join("wrk");
    wrk::write_scripts(&scripts)?;
    let pids = Pids {
        gateway: services.gateway.pid(),
        cluster: cluster_pids(&cluster),
        single: single.pid(),
        ticks: procs::ticks_per_sec(),
    };
    let top20 = measure_top20(plan, &work, &base, &body, &scripts, &pids).await?;
    services.ensure_running()?;
    let rank = measure_against_redis(&RANK, plan, &base, single_port, &scripts, &pids).await?;
    services.ensure_running()?;
    eprintln!("bench: lookups and around on the live gateway");
    let (lookup, around) =
        lookups_and_around(plan, &base, single_port, &scripts, &pids, &rank).await?;
    services.ensure_running()?;
    let ranks = |g| measure_cached_ranks(plan, &work, &nodes, single_port, &scripts, &pids, g);
    let rank_cached = ranks(&RANK_CACHED).await?.rank;
    services.ensure_running()?;
    let indexed = ranks(&RANK_INDEXED).await?;
    let rank_freshness = indexed
        .freshness
        .context("the indexed gateway measures freshness")?;
    let (lookup_indexed, around_indexed) = indexed
        .lookup_around
        .context("the indexed gateway measures lookups")?;
    services.ensure_running()?;
    let members = ranks(&RANK_MEMBERS).await?;
    let (lookup_members, around_members) = members
        .lookup_around
        .context("the members gateway measures lookups")?;
    services.ensure_running()?;
    let write = measure_against_redis(&WRITE, plan, &base, single_port, &scripts, &pids).await?;
    services.ensure_running()?;
    eprintln!("bench: freshness, {} probes", plan.probes);
    let freshness = measure_freshness(plan, &base).await?;
    services.ensure_running()?;

    add_gateway_rss(&mut memory, services.gateway.pid())?;

    let results = Results {
        started_at,
        quick: plan.quick,
        members: plan.members,
        shards: stack::SHARDS,
        settings: Settings {
            threads: plan.threads,
            connections: plan.connections,
            duration_secs: plan.duration.as_secs(),
            tick_ms: TICK_MS,
            probes: plan.probes,
            probe_concurrency: plan.probe_concurrency,
        },
        machine: Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            load_before,
            load_after: procs::load_average(),
            tools: tool_versions(),
        },
        top20,
        rank,
        lookup,
        around,
        rank_cached,
        rank_indexed: indexed.rank,
        lookup_indexed,
        around_indexed,
        rank_members: members.rank,
        lookup_members,
        around_members,
        rank_freshness,
        write,
        freshness,
        merge,
        memory,
    };
    std::fs::write(out, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("writing {}", out.display()))?;
    println!("{}", results.table());
    println!(
        "members {}, {} shards, {} connections, {} threads, {} s per run",
        thousands(plan.members as f64),
        stack::SHARDS,
        plan.connections,
        plan.threads,
        plan.duration.as_secs()
    );
    println!(
        "services: {}; baseline Redis: {single_cmd}",
        services.commands.join("; ")
    );
    println!("results: {}", out.display());
    Ok(())
}

/// Adds the gateway's resident memory, read after the load runs, to the
/// `memory` entry.
fn add_gateway_rss(memory: &mut Entry, pid: u32) -> anyhow::Result<()> {
    let rss = procs::rss_of(pid)?;
    memory.value["gateway_rss_bytes"] = json!(rss.now);
    memory.value["gateway_peak_rss_bytes"] = json!(rss.peak);
    memory.summary = format!(
        "{} (gateway RSS {:.1} MiB, peak {:.1} MiB)",
        memory.summary,
        mib(rss.now),
        mib(rss.peak)
    );
    memory.command = format!(
        "{}; gateway: /proc/{pid}/status VmRSS, VmHWM after the load runs",
        memory.command
    );
    Ok(())
}

/// Seeds the cluster through the store and measures what it cost in
/// Redis memory: the partial `memory` entry (the gateway's RSS is added at
/// the end of the run).
async fn seed(
    plan: &Plan,
    cluster: &RedisCluster,
    nodes: &[String],
    board: &Board,
) -> anyhow::Result<Entry> {
    let store = RedisStore::connect(nodes, RedisOptions::default()).await?;
    let before = cluster.used_memory();
    eprintln!(
        "bench: seeding {} members (seed::seed_store, through RedisStore::apply)",
        thousands(plan.members as f64)
    );
    let seeded_run = seeding::seed_cluster(&store, board, plan.members).await?;
    let took = seeded_run.elapsed;
    let seeded = cluster.used_memory();
    drop_audit_streams(nodes, board).await?;
    let without_audit = cluster.used_memory();
    let n = plan.members as f64;
    let per_member = without_audit.saturating_sub(before) as f64 / n;
    let with_audit = seeded.saturating_sub(before) as f64 / n;
    eprintln!(
        "  seeded in {took:.1?} ({}/s); {per_member:.1} B/member, {with_audit:.1} with audit records",
        thousands(n / took.as_secs_f64())
    );
    Ok(Entry {
        value: json!({
            "redis_bytes_per_member": per_member,
            "redis_bytes_per_member_with_audit": with_audit,
            "used_memory_before": before,
            "used_memory_seeded": seeded,
            "used_memory_audit_dropped": without_audit,
            "seed_secs": took.as_secs_f64(),
        }),
        baseline: Value::Null,
        ratio: None,
        command: "INFO memory used_memory summed over the 3 masters before seeding, after \
                  seeding, and after DEL of the 100 audit streams (capped per shard, not per member)"
            .into(),
        baseline_command: None,
        goal: "< 120 B/member in Redis; gateway RSS < 64 MiB".into(),
        summary: format!("{per_member:.1} B/member ({with_audit:.1} with audit streams)"),
        baseline_summary: "—".into(),
    })
}

/// Deletes every shard's audit stream, so `used_memory` shows what members
/// cost. The stream is capped per shard (`MAXLEN ~ 10000`), not per member:
/// at 1M members over 100 shards it holds one record per member, at 100M
/// one per hundred, so counting it per member would mislead.
async fn drop_audit_streams(nodes: &[String], board: &Board) -> anyhow::Result<()> {
    let urls: Vec<String> = nodes.iter().map(|n| format!("redis://{n}/")).collect();
    let client = redis::cluster::ClusterClient::new(urls)?;
    let mut conn = client.get_async_connection().await?;
    for shard in 0..board.shards {
        redis::cmd("DEL")
            .arg(standings_core::keyspace::shard_audit(board, shard))
            .query_async::<()>(&mut conn)
            .await?;
    }
    Ok(())
}

/// The in-process merge figures.
fn measure_merge() -> Entry {
    let big = merge::median_us(100, MERGE_RUNS);
    let small = merge::median_us(10, MERGE_RUNS);
    Entry {
        value: json!({"us_100x1000": big, "us_10x1000": small, "runs": MERGE_RUNS}),
        baseline: json!({"us": SEED_MERGE_US, "what": "the seed design's global merge"}),
        ratio: ratio(SEED_MERGE_US, big),
        command: format!(
            "standings-loadtest bench: merge_sorted_refs top 1000, median of {MERGE_RUNS} runs"
        ),
        baseline_command: None,
        goal: "< 20 µs for 100 × 1000".into(),
        summary: format!("100 × 1000: {big:.1} µs; 10 × 1000: {small:.1} µs"),
        baseline_summary: "30 ms (seed design)".into(),
    }
}

/// top20: the gateway's pre-serialised body against nginx serving it.
async fn measure_top20(
    plan: &Plan,
    work: &Path,
    base: &str,
    body: &[u8],
    scripts: &Path,
    pids: &Pids,
) -> anyhow::Result<Entry> {
    let path = format!("/v1/boards/{}/top", stack::BOARD);
    let ng = nginx::Nginx::prepare(&work.join("nginx"), procs::free_port()?, &path, body)?;
    let mut nginx_proc = ng.start()?;
    if let Err(e) = procs::wait_for_port(ng.port, Duration::from_secs(10)).await {
        nginx_proc.ensure_running()?;
        return Err(e);
    }
    let nginx_url = format!("http://127.0.0.1:{}{path}?limit=20", ng.port);
    let served = reqwest::Client::builder()
        .no_proxy()
        .build()?
        .get(&nginx_url)
        .send()
        .await?
        .bytes()
        .await?;
    if served.as_ref() != body {
        bail!("nginx does not serve the gateway's top20 bytes");
    }
    let script = wrk::script_path(scripts, "static.lua");
    let gateway = wrk_run(plan, &script, format!("{base}{path}?limit=20"), vec![]);
    let baseline = wrk_run(plan, &script, nginx_url, vec![]);
    eprintln!("bench: top20, gateway then nginx");
    let meter = procs::CpuMeter::start(&[pids.gateway], pids.ticks);
    let g = gateway.run().await?;
    let gateway_cpu = meter.used();
    let mut nginx_pids = procs::children_of(nginx_proc.pid());
    nginx_pids.push(nginx_proc.pid());
    let meter = procs::CpuMeter::start(&nginx_pids, pids.ticks);
    let b = baseline.run().await?;
    let nginx_cpu = meter.used();
    drop(nginx_proc);
    let mut entry = load_entry(
        g,
        b,
        &gateway.argv(),
        &baseline.argv(),
        "nginx (Debian), same bytes as a static file",
        "ratio >= 1.0; p99 < 1 ms",
        json!({"nginx_workers": nginx::WORKERS, "nginx_command": ng.argv().join(" ")}),
    );
    add_cpu(
        &mut entry,
        &[("gateway", gateway_cpu, g)],
        &[("nginx", nginx_cpu, b)],
    );
    Ok(entry)
}

/// One gateway load run compared with one redis-benchmark command on the
/// single sorted set: what differs between `rank` and `write`.
struct AgainstRedis {
    /// Name in progress messages.
    name: &'static str,
    /// The wrk script driving the gateway.
    script: &'static str,
    /// The redis-benchmark command for the baseline.
    redis: &'static [&'static str],
    /// What the baseline is, for the results.
    what: &'static str,
    /// The goal, as the issue states it.
    goal: &'static str,
    /// Ranks one gateway request answers (a lookup's list size; passed to
    /// the script after MEMBERS and BOARD when above 1): the ratio is
    /// ranks per second over the baseline's commands per second.
    ranks_per_request: u64,
}

/// rank: exact rank over 100 shards against `ZREVRANK` on one set.
const RANK: AgainstRedis = AgainstRedis {
    name: "rank, gateway then ZREVRANK",
    script: "rank.lua",
    redis: &["ZREVRANK", seeding::BASELINE_KEY, "user:__rand_int__"],
    what: "ZREVRANK on one sorted set (one redis-server)",
    goal: "p99 < 2 ms; ratio >= 0.5",
    ranks_per_request: 1,
};

/// Members one bench lookup ranks (issue 14's measure).
const LOOKUP_SIZE: u64 = 20;

/// lookup: `POST .../members:lookup` of 20 random members against
/// `ZREVRANK`, ranks per second.
const LOOKUP: AgainstRedis = AgainstRedis {
    name: "lookup of 20, gateway then ZREVRANK",
    script: "lookup.lua",
    goal: "ranks/s ratio >= 0.5; cluster CPU per member 5x below a single rank's",
    ranks_per_request: LOOKUP_SIZE,
    ..RANK
};

/// around: `GET .../members/{m}/around?radius=5` against `ZREVRANK`.
const AROUND: AgainstRedis = AgainstRedis {
    name: "around (radius 5), gateway then ZREVRANK",
    script: "around.lua",
    goal: "cheaper with the index than live",
    ..RANK
};

/// One of the bench's extra rank gateways: its `gateway.rank_index`
/// (all with `rank_staleness_ms` = [`RANK_STALENESS_MS`]), the name of
/// its files, and its load against `ZREVRANK`.
struct RankGateway {
    mode: &'static str,
    name: &'static str,
    cmp: AgainstRedis,
}

/// rank_cached: the same ranks as [`RANK`] with the score cache alone.
const RANK_CACHED: RankGateway = RankGateway {
    mode: "off",
    name: "cached",
    cmp: AgainstRedis {
        name: "rank from the score cache, gateway then ZREVRANK",
        ..RANK
    },
};

/// rank_indexed: with the stream-fed rank index keeping counts; the one
/// whose freshness is probed.
const RANK_INDEXED: RankGateway = RankGateway {
    mode: "counts",
    name: "indexed",
    cmp: AgainstRedis {
        name: "rank from the rank index (counts), gateway then ZREVRANK",
        ..RANK
    },
};

/// rank_members: with the index keeping every member.
const RANK_MEMBERS: RankGateway = RankGateway {
    mode: "members",
    name: "members",
    cmp: AgainstRedis {
        name: "rank from the rank index (members), gateway then ZREVRANK",
        ..RANK
    },
};

/// write: `POST /scores` incr against `ZINCRBY` on one set.
const WRITE: AgainstRedis = AgainstRedis {
    name: "write, gateway then ZINCRBY",
    script: "write.lua",
    redis: &["ZINCRBY", seeding::BASELINE_KEY, "1", "user:__rand_int__"],
    what: "ZINCRBY on one sorted set (one redis-server)",
    goal: "ratio >= 0.5; p99 < 2 ms",
    ranks_per_request: 1,
};

/// Runs `cmp`'s gateway load and its redis-benchmark baseline with the
/// same threads and connections, and their CPU per request.
async fn measure_against_redis(
    cmp: &AgainstRedis,
    plan: &Plan,
    base: &str,
    port: u16,
    scripts: &Path,
    pids: &Pids,
) -> anyhow::Result<Entry> {
    let mut args = vec![plan.members.to_string(), stack::BOARD.into()];
    if cmp.ranks_per_request > 1 {
        args.push(cmp.ranks_per_request.to_string());
    }
    let gateway = wrk_run(
        plan,
        &wrk::script_path(scripts, cmp.script),
        base.to_string(),
        args,
    );
    let baseline = redis_bench(plan, port, cmp.redis);
    eprintln!("bench: {}", cmp.name);
    let (g, b, b_argv, cpu) = gateway_then_redis(plan, &gateway, &baseline, pids).await?;
    let mut entry = load_entry(
        g,
        b,
        &gateway.argv(),
        &b_argv,
        cmp.what,
        cmp.goal,
        Value::Null,
    );
    add_cpu(&mut entry, &cpu.0, &cpu.1);
    if cmp.ranks_per_request > 1 {
        let n = cmp.ranks_per_request as f64;
        entry.ratio = ratio(g.rps * n, b.rps);
        entry.value["ranks_per_request"] = json!(cmp.ranks_per_request);
        entry.value["ranks_per_sec"] = json!(g.rps * n);
        entry.summary = format!(
            "{} ranks/s ({} per request); {}",
            thousands(g.rps * n),
            cmp.ranks_per_request,
            entry.summary
        );
    }
    Ok(entry)
}

/// Adds to a lookup entry what one of its members costs in cluster CPU
/// against one single rank of the same gateway (`rank`): issue 14's
/// "at least 5x cheaper in cluster CPU per member".
fn against_single_ranks(lookup: &mut Entry, rank: &Entry) {
    let cluster = |e: &Entry| e.value["cpu_us_per_req"]["cluster"].as_f64();
    let (Some(per_lookup), Some(per_rank)) = (cluster(lookup), cluster(rank)) else {
        return;
    };
    let per_member = per_lookup / LOOKUP_SIZE as f64;
    let cheaper = per_rank / per_member.max(f64::MIN_POSITIVE);
    lookup.value["cluster_us_per_member"] = json!(per_member);
    lookup.value["single_rank_cluster_us"] = json!(per_rank);
    lookup.value["cheaper_than_single_ranks"] = json!(cheaper);
    lookup.summary.push_str(&format!(
        "; cluster µs/member {per_member:.2} against {per_rank:.2} for a single rank ({cheaper:.1}x cheaper)"
    ));
}

/// A gateway's lookup and around runs against `ZREVRANK`, the lookup's
/// cluster CPU per member set against `rank`, that gateway's single ranks.
async fn lookups_and_around(
    plan: &Plan,
    base: &str,
    single_port: u16,
    scripts: &Path,
    pids: &Pids,
    rank: &Entry,
) -> anyhow::Result<(Entry, Entry)> {
    let mut lookup = measure_against_redis(&LOOKUP, plan, base, single_port, scripts, pids).await?;
    against_single_ranks(&mut lookup, rank);
    let before = rank_freshness::index_report(base).await?;
    let mut around = measure_against_redis(&AROUND, plan, base, single_port, scripts, pids).await?;
    let after = rank_freshness::index_report(base).await?;
    let (members, band, neighbours, live) = (
        after.around_members - before.around_members,
        after.around_band - before.around_band,
        after.around_neighbours - before.around_neighbours,
        after.around_live - before.around_live,
    );
    around.value["windows"] =
        json!({"members": members, "band": band, "neighbours": neighbours, "live": live});
    around.summary.push_str(&format!(
        "; windows: {members} from the members index, {band} from the index's band, {neighbours} by live neighbours ranked from the index, {live} all live"
    ));
    Ok((lookup, around))
}

/// What one extra rank gateway measured.
struct RankRuns {
    rank: Entry,
    /// Its lookups and around, when it has an index.
    lookup_around: Option<(Entry, Entry)>,
    /// Write-to-rank delay, on the counts gateway.
    freshness: Option<Entry>,
}

/// Starts another gateway, `g`, and measures its ranks against
/// `ZREVRANK`; with an index, what it holds, and with the counts index
/// how long a write takes to show in another member's rank there.
async fn measure_cached_ranks(
    plan: &Plan,
    work: &Path,
    nodes: &[String],
    single_port: u16,
    scripts: &Path,
    pids: &Pids,
    g: &RankGateway,
) -> anyhow::Result<RankRuns> {
    let port = procs::free_port()?;
    let index = g.mode != "off";
    let config = work.join(format!("standings-{}.toml", g.name));
    std::fs::write(
        &config,
        stack::config_toml_with(nodes, port, TICK_MS, RANK_STALENESS_MS, g.mode),
    )?;
    let mut gateway =
        stack::start_gateway(work, &format!("gateway-{}", g.name), &config, port).await?;
    let base = format!("http://127.0.0.1:{port}");
    let built = if index {
        eprintln!("bench: waiting for the rank index's first view");
        rank_freshness::wait_for_index(&base, stack::BOARD, Duration::from_secs(120)).await?
    } else {
        Duration::ZERO
    };
    let cached_pids = Pids {
        gateway: gateway.pid(),
        cluster: pids.cluster.clone(),
        ..*pids
    };
    let mut rank =
        measure_against_redis(&g.cmp, plan, &base, single_port, scripts, &cached_pids).await?;
    if !index {
        gateway.ensure_running()?;
        return Ok(RankRuns {
            rank,
            lookup_around: None,
            freshness: None,
        });
    }
    gateway.ensure_running()?;
    eprintln!("bench: lookups and around on the {} gateway", g.name);
    let lookup_around =
        Some(lookups_and_around(plan, &base, single_port, scripts, &cached_pids, &rank).await?);
    let held = rank_freshness::index_report(&base).await?;
    let rss = procs::rss_of(gateway.pid())?;
    rank.value["index_distinct_scores"] = json!(held.distinct_scores);
    rank.value["index_members"] = json!(held.members);
    rank.value["index_build_ms"] = json!(built.as_millis() as u64);
    rank.value["index_hits"] = json!(held.hits);
    rank.value["index_misses"] = json!(held.misses);
    rank.value["gateway_rss_bytes"] = json!(rss.now);
    // A counts index holds no members, and says nothing of them.
    let members = match held.members {
        0 => String::new(),
        n => format!("{n} members, "),
    };
    rank.summary.push_str(&format!(
        "; index: {members}{} distinct scores, built in {} ms, {} hits / {} misses, gateway RSS {:.1} MiB",
        held.distinct_scores,
        built.as_millis(),
        held.hits,
        held.misses,
        rss.now as f64 / (1024.0 * 1024.0)
    ));
    if g.mode != "counts" {
        gateway.ensure_running()?;
        return Ok(RankRuns {
            rank,
            lookup_around,
            freshness: None,
        });
    }
    gateway.ensure_running()?;
    eprintln!("bench: rank freshness, {} probes", plan.probes);
    let bound = Duration::from_millis(RANK_STALENESS_MS);
    let f = rank_freshness::measure(&base, stack::BOARD, plan.probes, bound).await?;
    gateway.ensure_running()?;
    let p50 = percentile(&f.samples_ms, 50.0).unwrap_or(f64::NAN);
    let p99 = percentile(&f.samples_ms, 99.0).unwrap_or(f64::NAN);
    let bound_ms = RANK_STALENESS_MS as f64;
    let freshness = Entry {
        value: json!({
            "p50_ms": p50, "p99_ms": p99, "probes": plan.probes,
            "timed_out": f.timed_out, "rank_staleness_ms": RANK_STALENESS_MS,
        }),
        baseline: json!({"ms": bound_ms, "what": "gateway.rank_staleness_ms"}),
        ratio: ratio(bound_ms, p99),
        command: format!(
            "standings-loadtest bench: {} probes: POST set above the probe member, then GET its rank every 5 ms",
            plan.probes
        ),
        baseline_command: None,
        goal: "p99 within the bound (ratio >= 1, less the 5 ms poll)".into(),
        summary: format!(
            "p50 {p50:.0} ms, p99 {p99:.0} ms ({} probes, {} timed out)",
            plan.probes, f.timed_out
        ),
        baseline_summary: format!("{RANK_STALENESS_MS} ms bound"),
    };
    Ok(RankRuns {
        rank,
        lookup_around,
        freshness: Some(freshness),
    })
}

/// freshness: write to `/top` with 1-second ticks.
async fn measure_freshness(plan: &Plan, base: &str) -> anyhow::Result<Entry> {
    let f = freshness::measure(
        base,
        stack::BOARD,
        plan.probes,
        plan.probe_concurrency,
        Duration::from_millis(TICK_MS),
    )
    .await?;
    let p50 = percentile(&f.samples_ms, 50.0).unwrap_or(f64::NAN);
    let p99 = percentile(&f.samples_ms, 99.0).unwrap_or(f64::NAN);
    let max = percentile(&f.samples_ms, 100.0).unwrap_or(f64::NAN);
    Ok(Entry {
        value: json!({
            "p50_ms": p50, "p99_ms": p99, "max_ms": max,
            "probes": plan.probes, "timed_out": f.timed_out, "tick_ms": TICK_MS,
        }),
        baseline: json!({"ms": DESIGN_FRESHNESS_MS, "what": "design card: shard TOP-K every 5 min + TOP20 every 1 min"}),
        ratio: ratio(DESIGN_FRESHNESS_MS, p99),
        command: format!(
            "standings-loadtest bench: {} probes, {} at once: POST set, then GET /top?limit=20 every 5 ms",
            plan.probes, plan.probe_concurrency
        ),
        baseline_command: None,
        goal: "p99 < 1.5 s with 1-second ticks".into(),
        summary: format!(
            "p50 {p50:.0} ms, p99 {p99:.0} ms ({} probes, {} timed out)",
            plan.probes, f.timed_out
        ),
        baseline_summary: "360,000 ms (5 min + 1 min)".into(),
    })
}

/// CPU used per process group during a run, with the run it divides by.
type CpuUse = Vec<(&'static str, Duration, Load)>;

/// The wrk run on the gateway and the redis-benchmark run on the single
/// Redis, each with the CPU its servers used: the gateway and the cluster's
/// masters on one side, the single redis-server on the other.
async fn gateway_then_redis(
    plan: &Plan,
    gateway: &Wrk,
    baseline: &RedisBench,
    pids: &Pids,
) -> anyhow::Result<(Load, Load, Vec<String>, (CpuUse, CpuUse))> {
    let gateway_meter = procs::CpuMeter::start(&[pids.gateway], pids.ticks);
    let cluster_meter = procs::CpuMeter::start(&pids.cluster, pids.ticks);
    let g = gateway.run().await?;
    let (gateway_cpu, cluster_cpu) = (gateway_meter.used(), cluster_meter.used());
    let requests = baseline.calibrate(plan.duration).await?;
    let single_meter = procs::CpuMeter::start(&[pids.single], pids.ticks);
    let b = baseline.run_sized(requests, plan.duration).await?;
    let single_cpu = single_meter.used();
    let cpu = (
        vec![("gateway", gateway_cpu, g), ("cluster", cluster_cpu, g)],
        vec![("redis", single_cpu, b)],
    );
    Ok((g, b, baseline.argv(requests), cpu))
}

/// Process ids whose CPU time the load runs measure.
struct Pids {
    /// `standings-gateway`.
    gateway: u32,
    /// The cluster's masters (`INFO server` `process_id`).
    cluster: Vec<u32>,
    /// The baselines' standalone redis-server.
    single: u32,
    /// `/proc` clock ticks per second.
    ticks: u64,
}

/// The masters' process ids, as each reports in `INFO server`.
fn cluster_pids(cluster: &RedisCluster) -> Vec<u32> {
    let mut cmd = redis::cmd("INFO");
    cmd.arg("server");
    cluster
        .on_every_master(&cmd)
        .iter()
        .map(standings_test_support::cluster::value_text)
        .filter_map(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("process_id:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .collect()
}

/// Adds CPU microseconds per request of each side's servers to the entry's
/// JSON (`cpu_us_per_req`) and table text: what a request costs, which a
/// busy shared machine disturbs less than the request rate does.
fn add_cpu(
    entry: &mut Entry,
    side: &[(&str, Duration, Load)],
    baseline: &[(&str, Duration, Load)],
) {
    fn per_req(cpu: Duration, load: &Load) -> f64 {
        cpu.as_secs_f64() * 1e6 / (load.requests.max(1) as f64)
    }
    fn text(parts: &[(&str, Duration, Load)]) -> String {
        parts
            .iter()
            .map(|(name, cpu, load)| format!("{name} {:.1}", per_req(*cpu, load)))
            .collect::<Vec<_>>()
            .join(" + ")
    }
    fn json_of(parts: &[(&str, Duration, Load)]) -> Value {
        Value::Object(
            parts
                .iter()
                .map(|(name, cpu, load)| ((*name).to_string(), json!(per_req(*cpu, load))))
                .collect(),
        )
    }
    entry.value["cpu_us_per_req"] = json_of(side);
    entry.baseline["cpu_us_per_req"] = json_of(baseline);
    entry.summary = format!("{}; CPU µs/req: {}", entry.summary, text(side));
    entry.baseline_summary = format!("{}; CPU µs/req: {}", entry.baseline_summary, text(baseline));
}

fn wrk_run(plan: &Plan, script: &Path, url: String, script_args: Vec<String>) -> Wrk {
    Wrk {
        threads: plan.threads,
        connections: plan.connections,
        duration: plan.duration,
        script: script.to_path_buf(),
        url,
        script_args,
    }
}

fn redis_bench(plan: &Plan, port: u16, command: &[&str]) -> RedisBench {
    RedisBench {
        port,
        threads: plan.threads,
        connections: plan.connections,
        keyspace: plan.members,
        command: command.iter().map(|s| s.to_string()).collect(),
    }
}

/// An entry comparing two load runs: ratio = gateway req/s / baseline req/s.
fn load_entry(
    gateway: Load,
    baseline: Load,
    argv: &[String],
    baseline_argv: &[String],
    baseline_what: &str,
    goal: &str,
    extra: Value,
) -> Entry {
    let mut baseline_value = json!(baseline);
    baseline_value["what"] = json!(baseline_what);
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            baseline_value[k] = v;
        }
    }
    Entry {
        value: json!(gateway),
        baseline: baseline_value,
        ratio: ratio(gateway.rps, baseline.rps),
        command: shell_join(argv),
        baseline_command: Some(shell_join(baseline_argv)),
        goal: goal.into(),
        summary: gateway.summary(),
        baseline_summary: baseline.summary(),
    }
}

/// Runs `argv` to completion within `bound` (killed past it, or when the
/// run is dropped) and answers its stdout; a failure quotes stderr.
async fn run_bounded(argv: &[String], bound: Duration) -> anyhow::Result<String> {
    let (program, args) = argv.split_first().context("an empty command line")?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).kill_on_drop(true);
    let output = tokio::time::timeout(bound, cmd.output())
        .await
        .with_context(|| format!("{} ran past {bound:?}", shell_join(argv)))?
        .with_context(|| format!("running {program}"))?;
    if !output.status.success() {
        bail!(
            "{} failed ({}): {}",
            shell_join(argv),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A command line as a shell would take it: arguments quoted when they hold
/// anything but plain characters.
pub fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Fails early, naming the install script, when a tool is missing.
fn check_tools() -> anyhow::Result<()> {
    for tool in ["wrk", "redis-benchmark", "redis-server", "redis-cli"] {
        if which(tool).is_none() {
            bail!("`{tool}` is not on the PATH: run scripts/bench.sh, which installs it");
        }
    }
    if which("nginx").is_none() && !Path::new("/usr/sbin/nginx").is_file() {
        bail!("`nginx` is not installed: run scripts/bench.sh, which installs it");
    }
    Ok(())
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// The first line each tool prints about its version.
fn tool_versions() -> Vec<String> {
    [
        ("redis-server", "--version"),
        ("nginx", "-v"),
        ("wrk", "-v"),
    ]
    .iter()
    .filter_map(|(tool, flag)| {
        let program = if *tool == "nginx" && which("nginx").is_none() {
            "/usr/sbin/nginx"
        } else {
            tool
        };
        let out = std::process::Command::new(program)
            .arg(flag)
            .output()
            .ok()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        text.lines().next().map(|l| l.trim().to_string())
    })
    .collect()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Now as RFC 3339, seconds.
fn humantime_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> BenchArgs {
        BenchArgs {
            quick: false,
            members: None,
            duration: None,
            connections: 32,
            threads: 2,
            probes: None,
            out: None,
        }
    }

    #[test]
    fn quick_runs_default_lower() {
        let full = Plan::new(&args()).unwrap();
        assert_eq!(
            (full.members, full.duration.as_secs(), full.probes),
            (1_000_000, 10, 200)
        );
        let quick = Plan::new(&BenchArgs {
            quick: true,
            ..args()
        })
        .unwrap();
        assert_eq!(
            (quick.members, quick.duration.as_secs(), quick.probes),
            (100_000, 4, 30)
        );
        let custom = Plan::new(&BenchArgs {
            quick: true,
            members: Some(5000),
            ..args()
        })
        .unwrap();
        assert_eq!(custom.members, 5000);
        assert!(Plan::new(&BenchArgs {
            members: Some(3),
            ..args()
        })
        .is_err());
    }

    #[test]
    fn command_lines_quote_what_a_shell_would_split() {
        let argv: Vec<String> = ["wrk", "-c32", "http://127.0.0.1:1/top?limit=20", "a b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            shell_join(&argv),
            "wrk -c32 'http://127.0.0.1:1/top?limit=20' 'a b'"
        );
    }
}
