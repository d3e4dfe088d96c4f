//! Events and likes through real processes on a real Redis Cluster: one
//! `standings-agent --role all` (snapshots and the event-stream consumer)
//! and one `standings-gateway`, on a 3-master cluster the harness starts.
//!
//! - A reproducible random mix of 20,000 events (likes, unlikes, dislikes,
//!   undislikes and switches, comments and shares, repeats of earlier ids,
//!   and duplicates sent concurrently, as single events and batches over
//!   8 connections) leaves every target's counts and every (actor, target)
//!   state, and the target-fed board's top, ranks and around, equal to a
//!   brute-force oracle; once the consumer's lag is zero, the actors'
//!   lists, the owners' totals and the actor- and owner-fed boards equal
//!   it too. Half-way through, the agent is killed with SIGKILL and a new
//!   one started, so the stream entries its consumer had read and not
//!   acknowledged are claimed and applied by the next one: once.
//! - With every master stopped, like reads answer 200 `degraded: true` and
//!   events 202 `queued: true`; once the masters run again the spool
//!   drains and the oracle agrees, nothing applied twice.
//!
//! The oracle is exact because all events of one target travel over one
//! connection in plan order (the target's slot sees them in that order),
//! and a duplicate is sent twice at once and waited for before the lane
//! goes on. Nothing waits a fixed time: convergence is polled against
//! deadlines, and no assertion is about how long something took.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use standings_test_support::process::{free_loopback_port, workspace_bin, Process, ScratchDir};
use standings_test_support::RedisCluster;
use support::{enc, entries, oracle};
use tokio::sync::Mutex;

const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(100);

/// One test at a time: each runs a cluster and two processes.
static SERIAL: Mutex<()> = Mutex::const_new(());

const TARGETS: usize = 300;
const ACTORS: usize = 200;
const OWNERS: usize = 20;

fn config_text(nodes: &[String], spool: &Path) -> String {
    let nodes: Vec<String> = nodes.iter().map(|n| format!("{n:?}")).collect();
    format!(
        r#"
[store]
kind = "redis"
nodes = [{}]
connect_timeout_ms = 250
response_timeout_ms = 250
retries = 2

[gateway]
refresh_interval_ms = 200
request_timeout_ms = 3000

[agent]
precompute_interval_ms = 200

[events]
spool_dir = {:?}

[likes]
shards = 8
cooldown = "0s"

[[boards]]
name = "videos"
shards = 8
groups = 2
periods = ["all", "daily"]
source = {{events = "target", weights = {{like = 2, dislike = -1, comment = 3, share = 5}}}}

[[boards]]
name = "fans"
shards = 8
groups = 2
source = {{events = "actor", weights = {{like = 1, comment = 1}}}}

[[boards]]
name = "creators"
shards = 8
groups = 2
source = {{events = "owner", weights = {{like = 10, dislike = -2}}}}
"#,
        nodes.join(", "),
        spool.display().to_string()
    )
}

/// One planned event, and whether to send it twice at once.
#[derive(Clone, Debug)]
struct Planned {
    id: String,
    kind: &'static str,
    actor: String,
    target: String,
    owner: Option<String>,
    twice: bool,
}

impl Planned {
    fn json(&self) -> Value {
        let mut e =
            json!({"id": self.id, "type": self.kind, "actor": self.actor, "target": self.target});
        if let Some(o) = &self.owner {
            e["owner"] = json!(o);
        }
        e
    }
}

fn owner_of(target: usize) -> Option<String> {
    // Every tenth target has no owner.
    (target % 10 != 9).then(|| format!("c:{}", target % OWNERS))
}

/// `n` events from `seed`: a tenth are repeats of an earlier event (same
/// id and body), a twentieth are sent twice at once.
fn plan(n: usize, seed: u64, prefix: &str) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out: Vec<Planned> = Vec::with_capacity(n);
    for i in 0..n {
        if i > 10 && rng.gen_bool(0.1) {
            let mut again = out[rng.gen_range(0..out.len())].clone();
            again.twice = false;
            out.push(again);
            continue;
        }
        let target = rng.gen_range(0..TARGETS);
        let kind = match rng.gen_range(0..100) {
            0..=34 => "like",
            35..=49 => "unlike",
            50..=64 => "dislike",
            65..=74 => "undislike",
            75..=89 => "comment",
            _ => "share",
        };
        out.push(Planned {
            id: format!("{prefix}-{i}"),
            kind,
            actor: format!("u:{}", rng.gen_range(0..ACTORS)),
            target: format!("v:{target}"),
            owner: owner_of(target),
            twice: rng.gen_bool(0.05),
        });
    }
    out
}

/// What the events should leave behind.
#[derive(Default, Debug)]
struct Oracle {
    seen: BTreeSet<String>,
    states: HashMap<(String, String), &'static str>,
    counts: BTreeMap<String, (i64, i64)>,
    videos: HashMap<String, f64>,
    fans: HashMap<String, f64>,
    creators: HashMap<String, f64>,
    liked: BTreeMap<String, BTreeSet<String>>,
    owners: BTreeMap<String, i64>,
}

impl Oracle {
    fn apply(&mut self, e: &Planned) {
        if !self.seen.insert(e.id.clone()) {
            return;
        }
        let key = (e.actor.clone(), e.target.clone());
        let from = self.states.get(&key).copied().unwrap_or("none");
        let (to, dl, dd) = match (from, e.kind) {
            ("none", "like") => ("liked", 1, 0),
            ("none", "dislike") => ("disliked", 0, 1),
            ("liked", "unlike") => ("none", -1, 0),
            ("liked", "dislike") => ("disliked", -1, 1),
            ("disliked", "like") => ("liked", 1, -1),
            ("disliked", "undislike") => ("none", 0, -1),
            (s, _) => (s, 0, 0),
        };
        let (dl, dd) = (dl as f64, dd as f64);
        let bump = |map: &mut HashMap<String, f64>, who: &str, delta: f64| {
            if delta != 0.0 {
                *map.entry(who.to_string()).or_default() += delta;
            }
        };
        match e.kind {
            "comment" => {
                bump(&mut self.videos, &e.target, 3.0);
                bump(&mut self.fans, &e.actor, 1.0);
            }
            "share" => bump(&mut self.videos, &e.target, 5.0),
            _ => {
                if to == "none" {
                    self.states.remove(&key);
                } else {
                    self.states.insert(key, to);
                }
                let c = self.counts.entry(e.target.clone()).or_default();
                c.0 += dl as i64;
                c.1 += dd as i64;
                bump(&mut self.videos, &e.target, 2.0 * dl - dd);
                bump(&mut self.fans, &e.actor, dl);
                if let Some(o) = &e.owner {
                    bump(&mut self.creators, o, 10.0 * dl - 2.0 * dd);
                    *self.owners.entry(o.clone()).or_default() += dl as i64;
                }
                let list = self.liked.entry(e.actor.clone()).or_default();
                if dl > 0.0 {
                    list.insert(e.target.clone());
                } else if dl < 0.0 {
                    list.remove(&e.target);
                }
            }
        }
    }
}

fn command(bin: &Path, config: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("--config")
        .arg(config)
        .args(extra)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    cmd
}

#[derive(Debug)]
struct Reply {
    status: u16,
    body: Value,
}

struct Deployment {
    config: PathBuf,
    agent: Process,
    agents_started: usize,
    gateway: Process,
    base: String,
    client: reqwest::Client,
    dir: ScratchDir,
}

impl Deployment {
    async fn start(cluster: &RedisCluster, label: &str) -> Self {
        let dir = ScratchDir::new(label);
        let config = dir.path().join("standings.toml");
        let text = config_text(&cluster.nodes(), &dir.path().join("spool"));
        std::fs::write(&config, &text).expect("write the config");
        standings_config::Config::load(&config)
            .unwrap_or_else(|e| panic!("the test config is invalid: {e}\n{text}"));
        let agent = Self::spawn_agent(&config, dir.path(), 0);
        let client = reqwest::Client::builder()
            .timeout(CLIENT_TIMEOUT)
            .build()
            .expect("HTTP client");
        let (gateway, base) = start_gateway(dir.path(), &config, &client).await;
        Self {
            config,
            agent,
            agents_started: 1,
            gateway,
            base,
            client,
            dir,
        }
    }

    fn spawn_agent(config: &Path, dir: &Path, n: usize) -> Process {
        let bin = workspace_bin("standings-shard-agent", "standings-agent");
        let cmd = command(&bin, config, &["--role", "all"]);
        Process::spawn(&format!("agent-{n}"), cmd, dir)
    }

    /// SIGKILL of the agent, then a new one.
    fn restart_agent(&mut self) {
        self.agent.kill();
        self.agent = Self::spawn_agent(&self.config, self.dir.path(), self.agents_started);
        self.agents_started += 1;
    }

    fn assert_running(&mut self) {
        self.gateway.assert_running();
        self.agent.assert_running();
    }

    async fn get(&self, path: &str) -> Reply {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = r.status().as_u16();
        let body = r.json().await.unwrap_or(Value::Null);
        Reply { status, body }
    }

    async fn post(&self, path: &str, body: &Value) -> Reply {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = r.status().as_u16();
        let body = r.json().await.unwrap_or(Value::Null);
        Reply { status, body }
    }

    /// Sends `plan` over 8 lanes by target; runs of up to 20 events of one
    /// lane go as one batch (a run stops before a duplicate, which goes
    /// alone, twice at once). `ok` are the statuses accepted.
    async fn send(&self, plan: &[Planned], ok: &'static [u16]) {
        let lanes = 8;
        let mut tasks = Vec::new();
        for lane in 0..lanes {
            let mine: Vec<Planned> = plan
                .iter()
                .filter(|e| target_number(&e.target) % lanes == lane)
                .cloned()
                .collect();
            let client = self.client.clone();
            let url = format!("{}/v1/events", self.base);
            tasks.push(tokio::spawn(async move {
                let post = |body: Value| {
                    let client = client.clone();
                    let url = url.clone();
                    async move {
                        let r = client.post(&url).json(&body).send().await;
                        let r = r.unwrap_or_else(|e| panic!("POST {body}: {e}"));
                        let status = r.status().as_u16();
                        let text = r.text().await.unwrap_or_default();
                        assert!(ok.contains(&status), "POST {body}: {status} {text}");
                    }
                };
                let mut i = 0;
                let mut rng = StdRng::seed_from_u64(lane as u64);
                while i < mine.len() {
                    if mine[i].twice {
                        let body = mine[i].json();
                        tokio::join!(post(body.clone()), post(body));
                        i += 1;
                        continue;
                    }
                    let run = rng.gen_range(1..=20);
                    let end = (i..mine.len().min(i + run))
                        .find(|&j| mine[j].twice)
                        .unwrap_or(mine.len().min(i + run));
                    if end - i == 1 {
                        post(mine[i].json()).await;
                    } else {
                        let events: Vec<Value> = mine[i..end].iter().map(Planned::json).collect();
                        post(json!({ "events": events })).await;
                    }
                    i = end;
                }
            }));
        }
        for t in tasks {
            t.await.expect("a lane panicked");
        }
    }

    /// `/metrics` as text.
    async fn metrics(&self) -> String {
        let r = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("GET /metrics");
        r.text().await.unwrap_or_default()
    }
}

fn target_number(t: &str) -> usize {
    t["v:".len()..].parse().expect("v:N")
}

/// A gauge's value in `/metrics` text (labels ignored), summed.
fn gauge(metrics: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = metrics
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

async fn start_gateway(dir: &Path, config: &Path, client: &reqwest::Client) -> (Process, String) {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_standings-gateway"));
    for _ in 0..3 {
        let listen = format!("127.0.0.1:{}", free_loopback_port());
        let cmd = command(&bin, config, &["--listen", &listen]);
        let mut gateway = Process::spawn("gateway", cmd, dir);
        let base = format!("http://{listen}");
        match wait_ready(&mut gateway, client, &base).await {
            Ok(()) => return (gateway, base),
            Err(status) if status.code() == Some(71) => continue,
            Err(status) => panic!("the gateway exited ({status}) before it was ready"),
        }
    }
    panic!("the gateway found no free port in 3 tries");
}

async fn wait_ready(
    gateway: &mut Process,
    client: &reqwest::Client,
    base: &str,
) -> Result<(), ExitStatus> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = gateway.exited() {
            return Err(status);
        }
        let ready = client.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            return Ok(());
        }
        assert!(
            Instant::now() < deadline,
            "the gateway was not ready in time"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `check` until it answers `None` (no difference left); panics with
/// the last difference after [`SETTLE_TIMEOUT`].
async fn converge<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let Some(diff) = check().await else {
            return;
        };
        assert!(
            Instant::now() < deadline,
            "{what} never matched the oracle: {diff}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Counts and states of every target for every actor, by lookup pages.
async fn check_counts_and_states(dep: &Deployment, o: &Oracle) {
    let targets: Vec<String> = (0..TARGETS).map(|t| format!("v:{t}")).collect();
    for a in 0..ACTORS {
        let actor = format!("u:{a}");
        for page in targets.chunks(100) {
            let r = dep
                .post(
                    "/v1/likes:lookup",
                    &json!({"actor": actor, "targets": page}),
                )
                .await;
            assert_eq!(r.status, 200, "{r:?}");
            assert!(r.body.get("degraded").is_none(), "{r:?}");
            for e in r.body["entries"].as_array().expect("entries") {
                let t = e["target"].as_str().unwrap().to_string();
                let (l, d) = o.counts.get(&t).copied().unwrap_or_default();
                assert!(l >= 0 && d >= 0, "the oracle never goes negative");
                assert_eq!(
                    (e["likes"].as_i64(), e["dislikes"].as_i64()),
                    (Some(l), Some(d)),
                    "counts of {t}"
                );
                let state = o
                    .states
                    .get(&(actor.clone(), t.clone()))
                    .copied()
                    .unwrap_or("none");
                assert_eq!(e["state"].as_str(), Some(state), "state of {actor} on {t}");
            }
        }
    }
}

/// The target-fed board's top is the oracle's, in both periods; ranks and
/// around of sampled targets are exact.
async fn videos_diff(dep: &Deployment, o: &Oracle) -> Option<String> {
    let want = oracle(&o.videos);
    for period in ["all", "daily"] {
        let top = dep
            .get(&format!("/v1/boards/videos/top?limit=1000&period={period}"))
            .await;
        if top.status != 200 {
            return Some(format!("top {period}: {top:?}"));
        }
        let got = entries(&top.body);
        if got != want {
            let first = got.iter().zip(&want).position(|(a, b)| a != b);
            return Some(format!(
                "top {period}: {} entries, want {}; first difference at {first:?}",
                got.len(),
                want.len()
            ));
        }
    }
    None
}

async fn check_live_ranks(dep: &Deployment, o: &Oracle) {
    if let Some(diff) = ranks_diff(&dep.client, &dep.base, "videos", &o.videos).await {
        panic!("live ranks: {diff}");
    }
}

/// The first difference between 30 sampled ranks, scores and windows of
/// `board` at the gateway `base` and the oracle's `scores`, if any.
async fn ranks_diff(
    client: &reqwest::Client,
    base: &str,
    board: &str,
    scores: &HashMap<String, f64>,
) -> Option<String> {
    let want = oracle(scores);
    let n = want.len();
    let mut rng = StdRng::seed_from_u64(11);
    let get = |path: String| async move {
        let r = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("GET");
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap_or(Value::Null))
    };
    for _ in 0..30 {
        let at = rng.gen_range(0..n);
        let (rank, member, score) = &want[at];
        let (status, body) = get(format!("/v1/boards/{board}/members/{}", enc(member))).await;
        if status != 200
            || body["rank"].as_u64() != Some(*rank)
            || body["score"].as_f64() != Some(*score)
        {
            return Some(format!(
                "{member}: {status} {body}, want rank {rank} score {score}"
            ));
        }
        let radius = rng.gen_range(1..=5);
        let (status, body) = get(format!(
            "/v1/boards/{board}/members/{}/around?radius={radius}",
            enc(member)
        ))
        .await;
        let window = &want[at.saturating_sub(radius)..(at + radius + 1).min(n)];
        if status != 200 || entries(&body) != window {
            return Some(format!("around {member}: {status} {body}"));
        }
    }
    None
}

/// A second gateway on the same cluster, with a rank index (`counts`, 2 s
/// bound) and its own spool: it follows the audit records the events
/// script (`videos`, target fed) and the stream consumer's writes (`fans`,
/// actor fed) leave, so its ranks and windows equal the oracle and come
/// from the index.
async fn check_indexed_ranks(dep: &Deployment, cluster: &RedisCluster, o: &Oracle) {
    let text = config_text(&cluster.nodes(), &dep.dir.path().join("spool-indexed")).replacen(
        "[gateway]\n",
        "[gateway]\nrank_staleness_ms = 2000\n",
        1,
    );
    let config = dep.dir.path().join("indexed.toml");
    std::fs::write(&config, &text).expect("write the indexed config");
    let (mut gateway, base) = start_gateway(dep.dir.path(), &config, &dep.client).await;
    for (board, scores) in [("videos", &o.videos), ("fans", &o.fans)] {
        converge(&format!("{board} ranks from the rank index"), || {
            ranks_diff(&dep.client, &base, board, scores)
        })
        .await;
    }
    let metrics = dep
        .client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .unwrap_or_default();
    let hits = metrics
        .lines()
        .find(|l| l.starts_with("standings_rank_index_total{result=\"hit\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(hits >= 60.0, "the index answered the ranks: {hits} hits");
    gateway.assert_running();
}

/// What follows from the stream: lists, owners' totals, actor- and
/// owner-fed boards.
async fn followers_diff(dep: &Deployment, o: &Oracle) -> Option<String> {
    let lag = gauge(&dep.metrics().await, "standings_event_lag");
    if lag != Some(0.0) {
        return Some(format!("event lag {lag:?}"));
    }
    for a in 0..ACTORS {
        let actor = format!("u:{a}");
        let r = dep
            .get(&format!("/v1/actors/{}/likes?limit=1000", enc(&actor)))
            .await;
        let got: BTreeSet<String> = r.body["entries"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|e| e["target"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let want = o.liked.get(&actor).cloned().unwrap_or_default();
        if got != want {
            return Some(format!(
                "list of {actor}: {} targets, want {}",
                got.len(),
                want.len()
            ));
        }
        let at: Vec<u64> = r.body["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["at"].as_u64())
            .collect();
        assert!(at.windows(2).all(|w| w[0] >= w[1]), "newest first: {actor}");
    }
    for c in 0..OWNERS {
        let owner = format!("c:{c}");
        let r = dep.get(&format!("/v1/owners/{}/likes", enc(&owner))).await;
        let want = o.owners.get(&owner).copied().unwrap_or(0);
        if r.body["likes_received"].as_i64() != Some(want) {
            return Some(format!("owner {owner}: {:?}, want {want}", r.body));
        }
    }
    for (board, scores) in [("fans", &o.fans), ("creators", &o.creators)] {
        let top = dep.get(&format!("/v1/boards/{board}/top?limit=1000")).await;
        if entries(&top.body) != oracle(scores) {
            return Some(format!("{board} top differs"));
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_events_match_the_oracle_across_a_consumer_kill() {
    let _serial = SERIAL.lock().await;
    let cluster = RedisCluster::start(3, 0);
    let mut dep = Deployment::start(&cluster, "likes-oracle").await;
    let plan = plan(20_000, 2026, "e");
    let mut o = Oracle::default();
    for e in &plan {
        o.apply(e);
    }
    let (first, second) = plan.split_at(plan.len() / 2);
    dep.send(first, &[200]).await;
    // The consumer is killed mid-stream: what it read and did not
    // acknowledge is claimed by the next one.
    dep.restart_agent();
    dep.send(second, &[200]).await;
    check_counts_and_states(&dep, &o).await;
    converge("the videos board", || videos_diff(&dep, &o)).await;
    check_live_ranks(&dep, &o).await;
    converge("the stream's followers", || followers_diff(&dep, &o)).await;
    check_indexed_ranks(&dep, &cluster, &o).await;
    assert_eq!(dep.agents_started, 2);
    dep.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_master_stopped_reads_degrade_events_queue_and_drain_once() {
    let _serial = SERIAL.lock().await;
    let mut cluster = RedisCluster::start(3, 0);
    let mut dep = Deployment::start(&cluster, "likes-outage").await;
    let plan = plan(3000, 77, "o");
    let mut o = Oracle::default();
    for e in &plan {
        o.apply(e);
    }
    let (before, during) = plan.split_at(1000);
    dep.send(before, &[200]).await;
    // A value this gateway has seen, for the degraded answer to repeat.
    let seen = dep.get("/v1/likes/v%3A1").await;
    assert_eq!(seen.status, 200);

    cluster.stop_masters();
    let r = dep.get("/v1/likes/v%3A1").await;
    assert_eq!(r.status, 200, "a like read with the cluster down: {r:?}");
    assert_eq!(r.body["degraded"], json!(true));
    assert_eq!(r.body["likes"], seen.body["likes"], "the last value seen");
    let r = dep.get("/v1/likes/v%3A299?actor=u%3A1").await;
    assert_eq!((r.status, r.body["degraded"].clone()), (200, json!(true)));
    let r = dep.get("/v1/owners/c%3A1/likes").await;
    assert_eq!((r.status, r.body["degraded"].clone()), (200, json!(true)));
    let r = dep
        .post(
            "/v1/events",
            &json!({"id": "probe-1", "type": "comment", "actor": "u:1", "target": "v:1"}),
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.body["queued"], json!(true));
    o.apply(&Planned {
        id: "probe-1".into(),
        kind: "comment",
        actor: "u:1".into(),
        target: "v:1".into(),
        owner: None,
        twice: false,
    });
    // Events sent while the cluster is down are queued (202); a few sent
    // just as it stopped may still be answered by the store.
    dep.send(during, &[200, 202]).await;
    let depth = gauge(&dep.metrics().await, "standings_event_spool_depth").unwrap_or(0.0);
    assert!(depth > 0.0, "events wait in the spool");

    cluster.resume_masters();
    converge("the spool to drain", || async {
        let depth = gauge(&dep.metrics().await, "standings_event_spool_depth");
        (depth != Some(0.0)).then(|| format!("spool depth {depth:?}"))
    })
    .await;
    check_counts_and_states(&dep, &o).await;
    converge("the videos board", || videos_diff(&dep, &o)).await;
    converge("the stream's followers", || followers_diff(&dep, &o)).await;
    dep.assert_running();
}
