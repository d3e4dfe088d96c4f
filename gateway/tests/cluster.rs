//! The gateway and the agents as separate processes on a real Redis
//! Cluster, deployed the way `docs/operations.md` describes: a cluster
//! started by the harness, two `standings-agent --role shard` processes
//! splitting the 100 shards (`--shards 0-49`, `--shards 50-99`), one
//! `standings-agent --role group`, and one `standings-gateway`, all with
//! `--redis-nodes` and a config derived from `config/examples/cluster.toml`
//! with 200 ms intervals and store timeouts of 250 ms.
//!
//! - writes over HTTP reach `/top` and match a brute-force oracle member for
//!   member and rank for rank; `/members/{m}` and `around` are exact;
//! - a write that timed out (its master's writes paused) and is retried
//!   with its `Idempotency-Key` is applied once, and bad scores never reach
//!   Redis;
//! - with every master dead, `/top` and `/static/...` are served from the
//!   gateway's memory as `stale: true` with `age_ms`, and writes answer 503
//!   with `Retry-After`;
//! - with a replica per master, killing a master costs writes only until
//!   the replica is promoted, and `/top` is exact again afterwards.
//!
//! Every process writes its output to files in a scratch directory; a
//! failing test prints their tails and keeps the directory. Nothing waits a
//! fixed time: readiness and convergence are polled against deadlines, and
//! no assertion is about how long something took.
//!
//! One file of about 700 lines: the four scenarios share one deployment
//! harness (processes, config, oracle plan), and splitting them would mean
//! one more shared module for tests that only make sense together.

mod support;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use standings_config::Config;
use standings_core::store::{RedisOptions, RedisStore};
use standings_core::{keyspace, Board, MemberId, Store};
use standings_test_support::process::{free_loopback_port, workspace_bin, Process, ScratchDir};
use standings_test_support::{redis, RedisCluster};
use support::{enc, entries, eventually, oracle};
use tokio::sync::Mutex;

/// Overrides of `config/examples/cluster.toml`: ticks of 200 ms instead of
/// minutes, and store bounds small enough that an unreachable cluster
/// answers within a second (a store call's bound is connect + 2 x response
/// = 750 ms, well inside the 3 s request timeout).
const FAST: [(&str, &str); 6] = [
    ("refresh_interval_ms", "200"),
    ("precompute_interval_ms", "200"),
    ("connect_timeout_ms", "250"),
    ("response_timeout_ms", "250"),
    ("retries", "2"),
    ("request_timeout_ms", "3000"),
];

/// Bound on any one HTTP request from the test. Generous: it only turns a
/// hang into a failure, and no assertion is about time.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// How long the gateway may take to answer `/readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long writes may take to reach `/top`, and a failover to finish.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Pause between polls.
const POLL: Duration = Duration::from_millis(50);

/// How long the failover test leaves the promotion to Redis's election.
const ELECTION: Duration = Duration::from_secs(20);

/// Each test runs a cluster and up to four processes; one test at a time
/// keeps them from starving each other (and a starved Redis node from being
/// failed over) on a small machine. An async mutex: the guard is held across
/// the whole test, and each test has its own runtime.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// `text` with its one `key = ...` line set to `key = value`. Panics unless
/// exactly one line sets `key`, so a key renamed in the example fails here.
fn set_key(text: &str, key: &str, value: &str) -> String {
    let mut found = 0;
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line.split_once('=').is_some_and(|(k, _)| k.trim() == key) {
            found += 1;
            out.push_str(&format!("{key} = {value}"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    assert_eq!(found, 1, "config/examples/cluster.toml sets `{key}` once");
    out
}

/// Writes `config/examples/cluster.toml` with [`FAST`] and a private static
/// dir into `dir`, and loads it back (so a bad derivation fails here, with
/// the config's own message).
fn write_config(dir: &Path, extra: &[(&str, &str)]) -> (PathBuf, Config) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/cluster.toml");
    let mut text = std::fs::read_to_string(&example)
        .unwrap_or_else(|e| panic!("reading {}: {e}", example.display()));
    // Debug quoting of a path is a valid TOML basic string.
    let static_dir = format!("{:?}", dir.join("static").display().to_string());
    let static_dir = [("static_dir", static_dir.as_str())];
    for (key, value) in FAST.iter().chain(&static_dir).chain(extra) {
        text = set_key(&text, key, value);
    }
    let path = dir.join("standings.toml");
    std::fs::write(&path, &text).expect("write the config");
    let config =
        Config::load(&path).unwrap_or_else(|e| panic!("derived config is invalid: {e}\n{text}"));
    (path, config)
}

/// One of our binaries with the shared flags. `NO_COLOR` keeps escape codes
/// out of the log files.
fn command(bin: &Path, config: &Path, nodes: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("--config")
        .arg(config)
        .arg("--redis-nodes")
        .arg(nodes)
        .args(extra)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    cmd
}

/// A reply: status, JSON body (`Null` when there is none) and `Retry-After`.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: Value,
    retry_after: Option<String>,
}

impl Reply {
    async fn from(r: reqwest::Response) -> Self {
        let status = r.status().as_u16();
        let retry_after = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let bytes = r.bytes().await.expect("read the body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Self {
            status,
            body,
            retry_after,
        }
    }

    /// A 503 the way the contract says: `Retry-After` and an error body.
    fn assert_unavailable(&self, what: &str) {
        assert_eq!(self.status, 503, "{what}: {self:?}");
        assert!(
            self.retry_after.is_some(),
            "{what}: 503 without Retry-After"
        );
        let code = self.body["error"]["code"].as_str().unwrap_or("");
        assert!(
            ["store_unavailable", "outcome_unknown", "timeout"].contains(&code),
            "{what}: error code {code:?}"
        );
    }
}

/// The agents and the gateway as processes on one cluster. Dropping it
/// kills every process (printing their output if the test failed).
struct Deployment {
    /// The board every test uses, from the derived config.
    board: Board,
    /// `standings-agent` processes (none for gateway-only tests).
    agents: Vec<Process>,
    /// The `standings-gateway` process.
    gateway: Process,
    /// `http://127.0.0.1:PORT` of the gateway.
    base: String,
    /// HTTP client with [`CLIENT_TIMEOUT`].
    client: reqwest::Client,
    /// Config and logs. Declared last so it is dropped after the processes,
    /// whose logs are printed from it on failure.
    _dir: ScratchDir,
}

impl Deployment {
    /// Starts the agents (when `with_agents`) and the gateway on `cluster`
    /// and returns once the gateway answers `/readyz` with 200.
    async fn start(cluster: &RedisCluster, label: &str, with_agents: bool) -> Self {
        Self::start_with(cluster, label, with_agents, &[]).await
    }

    /// [`Deployment::start`] with `extra` config keys set on top of
    /// [`FAST`].
    async fn start_with(
        cluster: &RedisCluster,
        label: &str,
        with_agents: bool,
        extra: &[(&str, &str)],
    ) -> Self {
        let dir = ScratchDir::new(label);
        let (config_path, config) = write_config(dir.path(), extra);
        let board = config.boards().remove(0);
        assert_eq!(
            (board.name.as_str(), board.shards, board.groups),
            ("global", 100, 10),
            "the example's board"
        );
        let nodes = cluster.nodes().join(",");
        let mut agents = Vec::new();
        if with_agents {
            let bin = workspace_bin("standings-shard-agent", "standings-agent");
            let roles: [(&str, &[&str]); 3] = [
                ("shard-agent-0-49", &["--role", "shard", "--shards", "0-49"]),
                (
                    "shard-agent-50-99",
                    &["--role", "shard", "--shards", "50-99"],
                ),
                ("group-agent", &["--role", "group", "--groups", "0-9"]),
            ];
            for (name, args) in roles {
                let cmd = command(&bin, &config_path, &nodes, args);
                agents.push(Process::spawn(name, cmd, dir.path()));
            }
        }
        let client = reqwest::Client::builder()
            .timeout(CLIENT_TIMEOUT)
            .build()
            .expect("HTTP client");
        let (gateway, base) = start_gateway(dir.path(), &config_path, &nodes, &client).await;
        let mut deployment = Self {
            board,
            agents,
            gateway,
            base,
            client,
            _dir: dir,
        };
        deployment.assert_running();
        deployment
    }

    /// Panics (and the drop prints their output) if any process died.
    fn assert_running(&mut self) {
        self.gateway.assert_running();
        for agent in &mut self.agents {
            agent.assert_running();
        }
    }

    async fn get(&self, path: &str) -> Reply {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        Reply::from(r).await
    }

    /// Posts `body` as it is (it need not be valid JSON) to the board.
    async fn post(&self, body: String, key: Option<&str>) -> Reply {
        let mut req = self
            .client
            .post(format!("{}/v1/boards/global/scores", self.base))
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        Reply::from(req.send().await.expect("POST a score")).await
    }

    async fn write(&self, body: &Value, key: Option<&str>) -> Reply {
        self.post(body.to_string(), key).await
    }

    /// Sends `plan` over 8 connections; a member's writes all go over one
    /// connection, in plan order, so the oracle's order is the store's.
    async fn send(&self, plan: &[PlannedWrite]) {
        let lanes = 8;
        let mut tasks = Vec::new();
        for lane in 0..lanes {
            let mine: Vec<PlannedWrite> = plan
                .iter()
                .filter(|(m, _, _)| member_number(m) % lanes == lane)
                .cloned()
                .collect();
            let client = self.client.clone();
            let url = format!("{}/v1/boards/global/scores", self.base);
            tasks.push(tokio::spawn(async move {
                for (m, op, v) in mine {
                    let body = json!({"member": m, "score": v, "op": op});
                    let r = client.post(&url).json(&body).send().await;
                    let r = r.unwrap_or_else(|e| panic!("write {body}: {e}"));
                    assert_eq!(r.status(), 200, "write {body}");
                }
            }));
        }
        for t in tasks {
            t.await.expect("a write lane panicked");
        }
    }

    /// Waits until `/top?limit=1000` is fresh and its version counts
    /// `writes` applied writes (every write merged through shard, group and
    /// global snapshots), checking meanwhile that no process died.
    async fn wait_for_version(&mut self, writes: u64) -> Value {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            self.assert_running();
            let top = self.get("/v1/boards/global/top?limit=1000").await;
            if top.status == 200
                && top.body["stale"] == false
                && top.body["version"].as_u64() == Some(writes)
            {
                return top.body;
            }
            assert!(
                Instant::now() < deadline,
                "/top never reached version {writes}; last answer: {} version {} stale {}",
                top.status,
                top.body["version"],
                top.body["stale"]
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Starts the gateway on a free port and waits until it is ready. A port
/// taken between choosing and binding makes the gateway exit with 71
/// (EX_OSERR); it is then started again on another port, at most 3 times.
async fn start_gateway(
    dir: &Path,
    config: &Path,
    nodes: &str,
    client: &reqwest::Client,
) -> (Process, String) {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_standings-gateway"));
    for _ in 0..3 {
        let listen = format!("127.0.0.1:{}", free_loopback_port());
        let cmd = command(&bin, config, nodes, &["--listen", &listen]);
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

/// Polls `/readyz` until 200; `Err` with the exit status if the gateway
/// exits first.
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
            "the gateway did not become ready within {READY_TIMEOUT:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// One planned write: member, op, operand.
type PlannedWrite = (String, &'static str, f64);

/// The number in `user:N`.
fn member_number(member: &str) -> usize {
    member["user:".len()..].parse().expect("user:N")
}

/// A reproducible write plan: one `set` per member (scores 0..600, so about
/// `members / 600` members share each score: ties everywhere), then `extra`
/// random `incr`/`best`/`set` on random members (some negative). Returns
/// the plan and every member's final score.
fn plan(members: usize, extra: usize, seed: u64) -> (Vec<PlannedWrite>, HashMap<String, f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut plan = Vec::with_capacity(members + extra);
    for i in 0..members {
        plan.push((format!("user:{i}"), "set", f64::from(rng.gen_range(0..600))));
    }
    for _ in 0..extra {
        let m = format!("user:{}", rng.gen_range(0..members));
        let op = ["incr", "best", "set"][rng.gen_range(0..3)];
        plan.push((m, op, f64::from(rng.gen_range(-50..800))));
    }
    let mut scores = HashMap::new();
    for (m, op, v) in &plan {
        let old: Option<f64> = scores.get(m).copied();
        let new = match (*op, old) {
            ("incr", o) => o.unwrap_or(0.0) + v,
            ("best", Some(o)) if o >= *v => o,
            _ => *v,
        };
        scores.insert(m.clone(), new);
    }
    (plan, scores)
}

/// Checks `/members/{m}` for `samples` random members and `around` for the
/// board's ends, its middle and `samples / 5` random members, against the
/// oracle.
async fn check_live_reads(dep: &Deployment, expected: &[(u64, String, f64)], samples: usize) {
    let n = expected.len();
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..samples {
        let (rank, member, score) = &expected[rng.gen_range(0..n)];
        let r = dep
            .get(&format!("/v1/boards/global/members/{}", enc(member)))
            .await;
        assert_eq!(r.status, 200, "member {member}: {r:?}");
        assert_eq!(r.body["rank"].as_u64(), Some(*rank), "rank of {member}");
        assert_eq!(r.body["score"].as_f64(), Some(*score), "score of {member}");
        assert_eq!(r.body["total"].as_u64(), Some(n as u64), "total");
    }
    let positions: HashMap<&str, usize> = expected
        .iter()
        .enumerate()
        .map(|(i, e)| (e.1.as_str(), i))
        .collect();
    let picks: Vec<usize> = (0..samples / 5).map(|_| rng.gen_range(0..n)).collect();
    for i in [0, 1, 2, n / 2, n - 2, n - 1].into_iter().chain(picks) {
        let member = &expected[i].1;
        let radius = rng.gen_range(1..=12);
        let r = dep
            .get(&format!(
                "/v1/boards/global/members/{}/around?radius={radius}",
                enc(member)
            ))
            .await;
        assert_eq!(r.status, 200, "around {member}: {r:?}");
        let at = positions[member.as_str()];
        let window = &expected[at.saturating_sub(radius)..(at + radius + 1).min(n)];
        assert_eq!(entries(&r.body), window, "around {member} radius {radius}");
    }
}

/// A shard's version and audit stream length (`XLEN`), read from Redis.
async fn shard_state(
    store: &RedisStore,
    cluster: &RedisCluster,
    board: &Board,
    shard: u32,
) -> (u64, u64) {
    let version = store.versions(board, &[shard]).await.expect("versions")[0];
    let key = keyspace::shard_audit(board, shard);
    let mut xlen = redis::cmd("XLEN");
    xlen.arg(&key);
    let len = redis::from_redis_value(cluster.query(&cluster.master_of_key(&key), &xlen))
        .expect("XLEN is an integer");
    (version, len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_the_gateway_reach_top_exactly_across_processes() {
    let _serial = SERIAL.lock().await;
    let cluster = RedisCluster::start(3, 0);
    let mut dep = Deployment::start(&cluster, "cluster-oracle", true).await;
    let (plan, scores) = plan(3_000, 1_500, 42);
    dep.send(&plan).await;
    let expected = oracle(&scores);

    let top = dep.wait_for_version(plan.len() as u64).await;
    assert_eq!(
        entries(&top),
        expected[..1000],
        "top 1000, member for member and rank for rank"
    );
    let page = dep.get("/v1/boards/global/top?limit=50&offset=900").await;
    assert_eq!(entries(&page.body), expected[900..950], "an offset page");
    let file = dep.get("/static/global/top20.json").await;
    assert_eq!(file.status, 200);
    assert_eq!(file.body["stale"], false);
    assert_eq!(entries(&file.body), expected[..20], "static top20");

    check_live_reads(&dep, &expected, 150).await;
    dep.assert_running();
}

/// Member metadata across processes on the cluster: the write script keeps
/// it in the shard's slot, the shard agents' snapshots and the group
/// agent's merge carry it, the gateway serves it in top, the static file
/// (also on disk), around and the member answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metas_reach_top_static_around_and_members_across_processes() {
    let _serial = SERIAL.lock().await;
    let cluster = RedisCluster::start(3, 0);
    let mut dep = Deployment::start(&cluster, "cluster-meta", true).await;
    let (plan, _) = plan(300, 0, 9);
    dep.send(&plan).await;
    support::write_meta_members(&dep.client, &dep.base).await;
    let file = dep._dir.path().join("static/global/top20.json");
    support::check_meta_members(&dep.client, &dep.base, Some(&file)).await;
    dep.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_write_retried_with_its_key_applies_once_and_bad_scores_never_reach_redis() {
    let _serial = SERIAL.lock().await;
    let cluster = RedisCluster::start(3, 0);
    let mut dep = Deployment::start(&cluster, "cluster-retry", false).await;
    let store = RedisStore::connect(&cluster.nodes(), RedisOptions::default())
        .await
        .expect("connect to the cluster");
    let board = dep.board.clone();

    // The first attempt: the master of the member's slot queues writes, so
    // the gateway's store call times out (503) with the write still queued.
    let member = MemberId::new("retry:1").expect("member");
    let shard = board.shard_of(&member).expect("shard");
    let master = cluster.master_of_key(&keyspace::shard_zset(&board, shard));
    let before = shard_state(&store, &cluster, &board, shard).await;
    let body = json!({"member": "retry:1", "score": 7, "op": "incr"});
    cluster.pause_writes(&master, Duration::from_secs(60));
    let first = dep.write(&body, Some("retry-key-1")).await;
    cluster.unpause(&master);
    first.assert_unavailable("a write whose master does not answer in time");
    assert_eq!(
        first.body["error"]["code"], "outcome_unknown",
        "the write was sent: it may have been applied"
    );

    // The client retries with the same key until the store answers: the
    // write is applied once, whichever attempt ran first.
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let retried = loop {
        let r = dep.write(&body, Some("retry-key-1")).await;
        if r.status == 200 {
            break r.body;
        }
        r.assert_unavailable("a retry while the master recovers");
        assert!(Instant::now() < deadline, "the retry never succeeded");
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(retried["score"], 7, "{retried}");
    eprintln!(
        "the paused attempt {} before the retry",
        if retried["applied"] == false {
            "ran"
        } else {
            "did not run"
        }
    );
    let again = dep.write(&body, Some("retry-key-1")).await;
    assert_eq!(
        again.body,
        json!({"member": "retry:1", "score": 7, "applied": false, "scores": {"all": 7}})
    );
    assert_eq!(
        store.score(&board, shard, &member).await.expect("score"),
        Some(7.0),
        "applied once"
    );
    let after = shard_state(&store, &cluster, &board, shard).await;
    assert_eq!(
        (after.0, after.1),
        (before.0 + 1, before.1 + 1),
        "one version bump and one audit record"
    );
    let audit = store.audit_tail(&board, shard, 10).await.expect("audit");
    let mine: Vec<_> = audit.iter().filter(|r| r.member == member).collect();
    assert_eq!(mine.len(), 1, "one audit record for the member: {audit:?}");
    assert_eq!(mine[0].idempotency_key.as_deref(), Some("retry-key-1"));
    assert_eq!(mine[0].score, 7.0);
    let live = dep.get("/v1/boards/global/members/retry%3A1").await;
    assert_eq!(live.body["score"], 7);

    // Bad scores are refused at the edge and never reach Redis.
    let bad = MemberId::new("bad:1").expect("member");
    let bad_shard = board.shard_of(&bad).expect("shard");
    let before = shard_state(&store, &cluster, &board, bad_shard).await;
    let bodies = [
        (r#"{"member":"bad:1","score":1e300}"#, Some("score")),
        (
            r#"{"member":"bad:1","score":-1e300,"op":"set"}"#,
            Some("score"),
        ),
        (
            r#"{"member":"bad:1","score":9007199254740994}"#,
            Some("score"),
        ),
        (r#"{"member":"bad:1","score":"NaN"}"#, Some("score")),
        (r#"{"member":"bad:1","score":NaN}"#, None),
        (r#"{"member":"bad:1","score":Infinity}"#, None),
        (r#"{"member":"bad:1","score":1e400}"#, None),
    ];
    for (raw, field) in bodies {
        let r = dep.post(raw.to_string(), Some("bad-key")).await;
        assert_eq!(r.status, 400, "{raw}: {r:?}");
        assert!(r.body["error"]["code"].is_string(), "{raw}: {r:?}");
        if let Some(field) = field {
            assert_eq!(r.body["error"]["field"], field, "{raw}: {r:?}");
        }
    }
    assert_eq!(
        shard_state(&store, &cluster, &board, bad_shard).await,
        before,
        "the shard's version and audit stream did not move"
    );
    assert_eq!(
        store.score(&board, bad_shard, &bad).await.expect("score"),
        None
    );
    let missing = dep.get("/v1/boards/global/members/bad%3A1").await;
    assert_eq!(missing.status, 404, "{missing:?}");
    dep.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_degrade_and_writes_fail_fast_when_the_cluster_is_down() {
    let _serial = SERIAL.lock().await;
    let mut cluster = RedisCluster::start(3, 0);
    let mut dep = Deployment::start(&cluster, "cluster-outage", true).await;
    let (plan, scores) = plan(400, 100, 7);
    dep.send(&plan).await;
    let expected = oracle(&scores);
    let fresh = dep.wait_for_version(plan.len() as u64).await;
    assert_eq!(entries(&fresh), expected, "all 400 members in /top");

    for _ in 0..3 {
        cluster.kill_master(0);
    }

    // The refresher's next tick cannot reach the store: the last good view
    // stays, marked stale with its age.
    let stale = eventually("/top to turn stale", SETTLE_TIMEOUT, || async {
        let top = dep.get("/v1/boards/global/top?limit=1000").await;
        (top.status == 200 && top.body["stale"] == true).then_some(top.body)
    })
    .await;
    assert_eq!(entries(&stale), expected, "the last good snapshot");
    assert_eq!(stale["version"], fresh["version"]);
    assert!(stale["age_ms"].is_u64(), "age_ms on a stale body: {stale}");

    let file = dep.get("/static/global/top20.json").await;
    assert_eq!(file.status, 200, "{file:?}");
    assert_eq!(file.body["stale"], true);
    assert!(file.body["age_ms"].is_u64());
    assert_eq!(entries(&file.body), expected[..20]);
    let page = dep.get("/v1/boards/global/top?limit=50&offset=100").await;
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(page.body["stale"], true);
    assert!(page.body["age_ms"].is_u64());
    assert_eq!(entries(&page.body), expected[100..150]);

    // Writes and live reads answer 503 with Retry-After, never hang.
    for i in 0..5 {
        let body = json!({"member": format!("user:{i}"), "score": 1, "op": "incr"});
        let key = format!("outage-{i}");
        dep.write(&body, Some(&key))
            .await
            .assert_unavailable("a write with every master down");
    }
    dep.get("/v1/boards/global/members/user%3A1")
        .await
        .assert_unavailable("a live rank with every master down");
    // Readiness follows the refresher, not the store: a gateway serving a
    // stale snapshot still serves, and says how old it is.
    let ready = dep.get("/readyz").await;
    assert_eq!(ready.status, 200, "{ready:?}");
    assert_eq!(ready.body["stale"], true, "{ready:?}");
    assert!(ready.body["snapshot_age_ms"].is_u64(), "{ready:?}");
    assert_eq!(dep.get("/healthz").await.status, 200);
    dep.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_recover_after_a_master_fails_over() {
    let _serial = SERIAL.lock().await;
    let mut cluster = RedisCluster::start(3, 1);
    cluster.set_node_timeout(1000);
    let mut dep = Deployment::start(&cluster, "cluster-failover", true).await;
    let (plan, mut scores) = plan(300, 0, 11);
    dep.send(&plan).await;
    dep.wait_for_version(300).await;
    cluster.wait_replicated(SETTLE_TIMEOUT);

    let killed = cluster.kill_master(0);
    // One incr per member, retried until accepted: writes to the killed
    // master's slots answer 503 until its replica is promoted. The client
    // believes each code: after `store_unavailable` ("nothing was
    // applied") it retries under a NEW key, after `outcome_unknown` under
    // the same key. If either claim were false, the exact oracle below
    // would see a member counted twice (or never).
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    // Redis's own election normally promotes the replica within seconds;
    // on a loaded 2-core CI host it has been seen to take longer than the
    // whole deadline. This test is about the gateway's side of a failover,
    // so past `ELECTION` the replica is told to take over (and it says so).
    let take_over_at = Instant::now() + ELECTION;
    let mut took_over = false;
    let mut answers: HashMap<String, usize> = HashMap::new();
    for i in 0..300 {
        let member = format!("user:{i}");
        let body = json!({"member": member, "score": 1, "op": "incr"});
        let mut attempt = 0;
        loop {
            let key = format!("after-failover-{i}-{attempt}");
            let r = dep.write(&body, Some(&key)).await;
            let code = r.body["error"]["code"].as_str().unwrap_or("ok");
            *answers.entry(code.to_string()).or_default() += 1;
            if r.status == 200 {
                break;
            }
            r.assert_unavailable("a write during the failover");
            if code == "store_unavailable" {
                attempt += 1;
            }
            if !took_over && Instant::now() >= take_over_at {
                took_over = true;
                let replica = cluster.take_over_from(&killed);
                eprintln!("no failover after {ELECTION:?}; {replica:?} told to take over");
            }
            assert!(
                Instant::now() < deadline,
                "writes never recovered (answers {answers:?}, last {r:?}); the cluster:\n{}",
                cluster.describe()
            );
            tokio::time::sleep(POLL).await;
        }
        *scores.get_mut(&member).expect("planned member") += 1.0;
    }
    eprintln!("write answers through the failover: {answers:?}");
    cluster.wait_until_ok(SETTLE_TIMEOUT);
    assert!(!cluster.masters().contains(&killed), "a replica took over");

    let expected = oracle(&scores);
    let top = dep.wait_for_version(600).await;
    assert_eq!(
        entries(&top),
        expected,
        "every write, before and after the failover, exactly once"
    );
    check_live_reads(&dep, &expected, 50).await;
    dep.assert_running();
}

/// Lookups of random lists (members on many shards of three masters,
/// unknown members, repeats) and batches of good and bad writes through
/// the gateway process on a real cluster equal the oracle; the scenario is
/// `support/lists.rs`, shared with the embedded-store test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_and_batches_equal_the_oracle() {
    let _serial = SERIAL.lock().await;
    let cluster = RedisCluster::start(3, 0);
    let dep = Deployment::start(&cluster, "cluster-lists", false).await;
    support::lists::run(&dep.client, &dep.base, 15).await;
}

/// One write of the rank-staleness test: when it was sent and acknowledged
/// and the member's score after it.
struct Timed {
    member: usize,
    sent: Instant,
    acked: Instant,
    score: f64,
}

/// One rank read of a probe: when it was sent and answered, and the rank.
struct Read {
    probe: usize,
    sent: Instant,
    answered: Instant,
    rank: u64,
}

/// Fixed scores of the probe members (`probe:I`), which nobody writes
/// while the others climb past them.
const PROBES: [f64; 4] = [50.0, 150.0, 300.0, 600.0];

/// Members that climb: each only ever gains, so how many are better than
/// a fixed score only grows, and an answer can be placed in time.
const CLIMBERS: usize = 400;

/// Under concurrent writes, every probe's rank lies between what was
/// acknowledged `bound` before the read was sent and what was sent before
/// it was answered: exact as of at most `bound` ago. With the bound 0
/// that is exact as of the request. Once the writes stop and the bound has
/// passed, every rank equals the oracle.
async fn ranks_are_exact_within(cluster: &RedisCluster, bound_ms: u64, mode: &str) {
    let bound = bound_ms.to_string();
    let index = mode != "off";
    let quoted = format!("{mode:?}");
    let dep = Deployment::start_with(
        cluster,
        &format!("cluster-rank-bound-{bound_ms}-{mode}"),
        true,
        &[
            ("rank_staleness_ms", bound.as_str()),
            ("rank_index", quoted.as_str()),
        ],
    )
    .await;
    // Asked once, the index starts following the board; wait for its
    // first view so the reads below are answered by it.
    if index && bound_ms > 0 {
        dep.get("/v1/boards/global/members/nobody").await;
        eventually("the index's first view", SETTLE_TIMEOUT, || async {
            dep.write(
                &json!({"member": "probe:warm", "score": -1e9, "op": "set"}),
                None,
            )
            .await;
            dep.get("/v1/boards/global/members/probe:warm").await;
            (index_hits(&dep).await > 0.0).then_some(())
        })
        .await;
        let r = dep
            .client
            .delete(format!("{}/v1/boards/global/members/probe:warm", dep.base))
            .send()
            .await
            .expect("remove");
        assert_eq!(r.status(), 200, "remove the warm-up member");
    }
    for (i, score) in PROBES.iter().enumerate() {
        let r = dep
            .write(
                &json!({"member": format!("probe:{i}"), "score": score, "op": "set"}),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "probe write {r:?}");
    }
    // The probes' own places are fixed from here on: any answer within
    // the bound counts them (the accounting below assumes it).
    tokio::time::sleep(Duration::from_millis(bound_ms + 50)).await;
    let base = dep.base.clone();
    let mut writers = Vec::new();
    for lane in 0..4 {
        let client = dep.client.clone();
        let url = format!("{base}/v1/boards/global/scores");
        writers.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(lane);
            let mut scores = vec![0.0; CLIMBERS];
            let mut done = Vec::new();
            for _ in 0..300 {
                let m = lane as usize + 4 * rng.gen_range(0..CLIMBERS / 4);
                let step = f64::from(rng.gen_range(1..40));
                let body = json!({"member": format!("user:{m}"), "score": step, "op": "incr"});
                let sent = Instant::now();
                let r = client.post(&url).json(&body).send().await.expect("write");
                assert_eq!(r.status(), 200, "write {body}");
                scores[m] += step;
                done.push(Timed {
                    member: m,
                    sent,
                    acked: Instant::now(),
                    score: scores[m],
                });
            }
            done
        }));
    }
    let readers_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let client = dep.client.clone();
        let stop = readers_stop.clone();
        tokio::spawn(async move {
            let mut reads = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let probe = i % PROBES.len();
                i += 1;
                let sent = Instant::now();
                let r = client
                    .get(format!("{base}/v1/boards/global/members/probe:{probe}"))
                    .send()
                    .await
                    .expect("rank read");
                let body: Value = r.json().await.expect("rank body");
                let rank = body["rank"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("rank of probe:{probe}: {body}"));
                reads.push(Read {
                    probe,
                    sent,
                    answered: Instant::now(),
                    rank,
                });
            }
            reads
        })
    };
    let mut writes = Vec::new();
    for w in writers {
        writes.extend(w.await.expect("a writer panicked"));
    }
    readers_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.await.expect("the reader panicked");
    assert!(reads.len() > 50, "only {} reads ran", reads.len());

    // A climber's first write past a probe score is when it became better.
    let better_than = |score: f64| -> Vec<(Instant, Instant)> {
        let mut first: HashMap<usize, (Instant, Instant)> = HashMap::new();
        for w in writes.iter().filter(|w| w.score > score) {
            let e = first.entry(w.member).or_insert((w.sent, w.acked));
            if w.sent < e.0 {
                *e = (w.sent, w.acked);
            }
        }
        first.into_values().collect()
    };
    let bound = Duration::from_millis(bound_ms);
    for (p, &score) in PROBES.iter().enumerate() {
        let crossings = better_than(score);
        let probes_better = PROBES.iter().filter(|&&s| s > score).count() as u64;
        for read in reads.iter().filter(|r| r.probe == p) {
            let oldest = read.sent.checked_sub(bound).unwrap_or(read.sent);
            let at_least = crossings
                .iter()
                .filter(|(_, acked)| *acked < oldest)
                .count() as u64;
            let at_most = crossings
                .iter()
                .filter(|(sent, _)| *sent < read.answered)
                .count() as u64;
            let better = read.rank - 1 - probes_better;
            assert!(
                (at_least..=at_most).contains(&better),
                "probe:{p} (score {score}) ranked {} with bound {bound_ms} ms: {better} better, \
                 but {at_least} were acknowledged by the bound and {at_most} sent by the answer",
                read.rank
            );
        }
    }
    // Quiet now: past the bound every rank is the oracle's.
    tokio::time::sleep(bound + Duration::from_millis(50)).await;
    for (p, &score) in PROBES.iter().enumerate() {
        let expected = 1
            + better_than(score).len() as u64
            + PROBES.iter().filter(|&&s| s > score).count() as u64;
        let r = dep
            .get(&format!("/v1/boards/global/members/probe:{p}"))
            .await;
        assert_eq!(
            r.body["rank"].as_u64(),
            Some(expected),
            "probe:{p} once quiet: {r:?}"
        );
    }
    // Who answered: the index, or (without it) never the index.
    let hits = index_hits(&dep).await;
    if index && bound_ms > 0 {
        assert!(
            hits > reads.len() as f64 / 2.0,
            "the index answered {hits} of {} ranks",
            reads.len()
        );
    } else {
        assert_eq!(hits, 0.0, "no index without one");
    }
}

/// `standings_rank_index_total{result="hit"}` of the deployment's gateway.
async fn index_hits(dep: &Deployment) -> f64 {
    metric(dep, "standings_rank_index_total{result=\"hit\"}").await
}

/// The value of the `/metrics` line of `dep` that starts with `series`
/// (a name with its labels), 0 when there is none.
async fn metric(dep: &Deployment, series: &str) -> f64 {
    let text = dep
        .client
        .get(format!("{}/metrics", dep.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranks_are_exact_as_of_at_most_the_staleness_bound() {
    let _serial = SERIAL.lock().await;
    for (bound_ms, mode) in [
        (0, "counts"),
        (1000, "off"),
        (1000, "counts"),
        (1000, "members"),
    ] {
        let cluster = RedisCluster::start(3, 0);
        ranks_are_exact_within(&cluster, bound_ms, mode).await;
    }
}

/// Every member's rank on `board` in `period` (`None`: the default)
/// equals the oracle's competition rank (and percentile), each answered by
/// the index; `Err` names the first that does not.
async fn ranks_match(
    dep: &Deployment,
    board: &str,
    period: Option<&str>,
    oracle: &HashMap<String, f64>,
    metas: &HashMap<String, Value>,
) -> Result<(), String> {
    let before = index_hits(dep).await;
    let query = period.map(|p| format!("?period={p}")).unwrap_or_default();
    for (m, &score) in oracle {
        let r = dep
            .get(&format!("/v1/boards/{board}/members/{m}{query}"))
            .await;
        let better = oracle.values().filter(|&&s| s > score).count() as u64;
        let worse = oracle.values().filter(|&&s| s < score).count() as u64;
        let pct = 100.0 * worse as f64 / oracle.len() as f64;
        let got = (r.body["rank"].as_u64(), r.body["total"].as_u64());
        let meta = r.body.get("meta");
        if got != (Some(1 + better), Some(oracle.len() as u64))
            || (r.body["percentile"].as_f64().unwrap_or(-1.0) - pct).abs() > 1e-9
            || r.body["score"].as_f64() != Some(score)
            || meta != metas.get(m)
        {
            return Err(format!(
                "{board} {m} ({score}) in {period:?}: expected rank {} of {}, percentile {pct}; got {r:?}",
                1 + better,
                oracle.len()
            ));
        }
    }
    let answered = index_hits(dep).await - before;
    if answered != oracle.len() as f64 {
        return Err(format!(
            "the index answered {answered} of {} ranks",
            oracle.len()
        ));
    }
    Ok(())
}

/// [`ranks_match`], given the index a few polls to read the last writes
/// (it answers as of at most the bound ago; the test's bound is larger
/// than the wait, so an answer that never becomes exact fails).
async fn ranks_equal(
    dep: &Deployment,
    board: &str,
    period: Option<&str>,
    oracle: &HashMap<String, f64>,
    metas: &HashMap<String, Value>,
) {
    let mut last = String::new();
    for _ in 0..50 {
        match ranks_match(dep, board, period, oracle, metas).await {
            Ok(()) => return,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("ranks never equalled the oracle: {last}");
}

/// A lookup of `asked` on `board` equals the oracle: the known members
/// best first with score, rank and meta, the others apart. Answers how
/// many ranks the gateway's index counted as answered meanwhile.
async fn lookup_matches(
    dep: &Deployment,
    board: &str,
    asked: &[String],
    oracle: &HashMap<String, f64>,
    metas: &HashMap<String, Value>,
) -> f64 {
    let before = index_hits(dep).await;
    let r = dep
        .client
        .post(format!("{}/v1/boards/{board}/members:lookup", dep.base))
        .json(&json!({ "members": asked }))
        .send()
        .await
        .expect("lookup");
    let r = Reply::from(r).await;
    assert_eq!(r.status, 200, "lookup {r:?}");
    let mut known: Vec<&String> = asked.iter().filter(|m| oracle.contains_key(*m)).collect();
    // The board order: best first, ties by member bytes reversed (desc).
    known.sort_by(|a, b| oracle[*b].total_cmp(&oracle[*a]).then(b.cmp(a)));
    let entries = r.body["entries"].as_array().expect("entries");
    let got: Vec<&str> = entries
        .iter()
        .map(|e| e["member"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        got,
        known.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        "lookup order"
    );
    for e in entries {
        let m = e["member"].as_str().unwrap_or_default();
        let better = oracle.values().filter(|&&s| s > oracle[m]).count() as u64;
        assert_eq!(
            e["rank"].as_u64(),
            Some(1 + better),
            "lookup rank of {m}: {e}"
        );
        assert_eq!(e["score"].as_f64(), Some(oracle[m]), "lookup score of {m}");
        assert_eq!(e.get("meta"), metas.get(m), "lookup meta of {m}");
    }
    let missing: Vec<&str> = asked
        .iter()
        .filter(|m| !oracle.contains_key(*m))
        .map(String::as_str)
        .collect();
    let not_found: Vec<&str> = r.body["not_found"]
        .as_array()
        .expect("not_found")
        .iter()
        .map(|v| v.as_str().unwrap_or(""))
        .collect();
    assert_eq!(not_found, missing, "not found");
    index_hits(dep).await - before
}

/// The window around `member` on `board` equals the oracle's: the board
/// order (best first, ties by member bytes reversed), `radius` on each
/// side, each with its competition rank, score and meta, read again (up to 5 s) until the
/// gateway's index has caught up. The answer that matched was found the
/// way `source` names (`standings_around_total{source}`), and every rank
/// in it came from the index.
async fn around_matches(
    dep: &Deployment,
    board: &str,
    member: &str,
    radius: usize,
    oracle: &HashMap<String, f64>,
    metas: &HashMap<String, Value>,
    source: &str,
) {
    let order = order_of(oracle);
    let at = order
        .iter()
        .position(|m| m == member)
        .expect("the member is on the board");
    let want: Vec<(String, u64, f64, Option<&Value>)> = order
        [at.saturating_sub(radius)..(at + radius + 1).min(order.len())]
        .iter()
        .map(|m| {
            let better = oracle.values().filter(|&&s| s > oracle[m]).count() as u64;
            (m.clone(), 1 + better, oracle[m], metas.get(m))
        })
        .collect();
    let sourced = format!("standings_around_total{{source=\"{source}\"}}");
    let mut last = String::new();
    for _ in 0..50 {
        let (hits, ways) = (index_hits(dep).await, metric(dep, &sourced).await);
        let r = dep
            .get(&format!(
                "/v1/boards/{board}/members/{member}/around?radius={radius}"
            ))
            .await;
        assert_eq!(r.status, 200, "around {r:?}");
        let got: Vec<(String, u64, f64, Option<&Value>)> = r.body["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| {
                (
                    e["member"].as_str().unwrap_or_default().to_string(),
                    e["rank"].as_u64().unwrap_or(0),
                    e["score"].as_f64().unwrap_or(f64::NAN),
                    e.get("meta"),
                )
            })
            .collect();
        if got == want && r.body["total"].as_u64() == Some(oracle.len() as u64) {
            assert_eq!(
                metric(dep, &sourced).await - ways,
                1.0,
                "the window around {member} was found by {source}"
            );
            assert_eq!(
                index_hits(dep).await - hits,
                want.len() as f64,
                "the index ranked the window around {member}"
            );
            return;
        }
        last = format!("got {got:?} total {}", r.body["total"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the window around {member} never equalled {want:?}: {last}");
}

/// Asks for `member`'s rank on `board` until the gateway's index answers
/// one: the first ask starts the index, a scan builds its first view.
async fn warm_index(dep: &Deployment, board: &str, member: &str) {
    let path = format!("/v1/boards/{board}/members/{member}");
    dep.get(&path).await;
    eventually("the index's first view", SETTLE_TIMEOUT, || async {
        dep.get(&path).await;
        (index_hits(dep).await > 0.0).then_some(())
    })
    .await;
}

/// The stream-fed index on a board in time: writes of every op (some
/// with meta) and removals, before and after the index's scan, leave
/// every member's score, rank, percentile and meta in the all-time and
/// the daily period equal to the oracle; a second gateway (a restart of
/// the index), keeping members, builds its own from a scan and agrees,
/// and both follow later writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rank_index_follows_every_op_and_removal_and_rebuilds_on_restart() {
    let _serial = SERIAL.lock().await;
    let cluster = RedisCluster::start(3, 0);
    let first = Deployment::start_with(
        &cluster,
        "cluster-rank-index-a",
        false,
        &[("rank_staleness_ms", "2000")],
    )
    .await;
    let mut rng = StdRng::seed_from_u64(1515);
    let mut oracle: HashMap<String, f64> = HashMap::new();
    let mut metas: HashMap<String, Value> = HashMap::new();
    let url = format!("{}/v1/boards/arena", first.base);
    let client = first.client.clone();
    let churn = |rounds: usize,
                 rng: &mut StdRng,
                 oracle: &mut HashMap<String, f64>,
                 metas: &mut HashMap<String, Value>| {
        let mut plan = Vec::new();
        for i in 0..rounds {
            let m = format!("user:{}", rng.gen_range(0..120));
            if rng.gen_range(0..12) == 0 {
                oracle.remove(&m);
                metas.remove(&m);
                plan.push((m, None));
                continue;
            }
            let v = f64::from(rng.gen_range(0..30));
            let op = ["incr", "set", "best"][rng.gen_range(0..3)];
            let old = oracle.get(&m).copied();
            let new = match op {
                "incr" => old.unwrap_or(0.0) + v,
                "set" => v,
                _ => old.map_or(v, |o: f64| o.max(v)),
            };
            oracle.insert(m.clone(), new);
            let mut body = json!({"score": v, "op": op});
            if i % 5 == 0 {
                let meta = json!({"name": format!("n{i}")});
                metas.insert(m.clone(), meta.clone());
                body["meta"] = meta;
            }
            plan.push((m, Some(body)));
        }
        let client = client.clone();
        let url = url.clone();
        async move {
            for (m, body) in plan {
                let r = match body {
                    Some(mut body) => {
                        body["member"] = json!(m);
                        client
                            .post(format!("{url}/scores"))
                            .json(&body)
                            .send()
                            .await
                    }
                    None => client.delete(format!("{url}/members/{m}")).send().await,
                }
                .expect("write");
                assert!(
                    matches!(r.status().as_u16(), 200 | 404),
                    "{m}: {}",
                    r.status()
                );
            }
        }
    };
    churn(400, &mut rng, &mut oracle, &mut metas).await;
    // The first rank asked starts the index: a scan of what is there now.
    let known = oracle.keys().next().cloned().expect("members");
    warm_index(&first, "arena", &known).await;
    // Then writes and removals it follows from the streams.
    churn(400, &mut rng, &mut oracle, &mut metas).await;
    ranks_equal(&first, "arena", None, &oracle, &metas).await;
    ranks_equal(&first, "arena", Some("daily"), &oracle, &metas).await;
    // With the index caught up, a lookup's and an around's ranks come
    // from it (one hit per distinct score of a lookup, one per entry of
    // a window) and equal the oracle; the window itself is read live.
    let mut asked: Vec<String> = oracle.keys().take(20).cloned().collect();
    asked.push("nobody:here".into());
    let distinct: HashSet<u64> = asked
        .iter()
        .filter_map(|m| oracle.get(m))
        .map(|s| s.to_bits())
        .collect();
    let answered = lookup_matches(&first, "arena", &asked, &oracle, &metas).await;
    assert_eq!(
        answered,
        distinct.len() as f64,
        "the counts index ranked the lookup"
    );
    let order = order_of(&oracle);
    for (at, radius) in [(0, 3), (order.len() / 2, 5), (order.len() - 1, 4)] {
        let member = order[at].clone();
        around_matches(&first, "arena", &member, radius, &oracle, &metas, "band").await;
    }

    // A second gateway, keeping members, builds its own index from a scan.
    let second = Deployment::start_with(
        &cluster,
        "cluster-rank-index-b",
        false,
        &[("rank_staleness_ms", "2000"), ("rank_index", "\"members\"")],
    )
    .await;
    let known = oracle.keys().next().cloned().expect("members");
    warm_index(&second, "arena", &known).await;
    ranks_equal(&second, "arena", None, &oracle, &metas).await;
    // Lookups: a list the members index holds is answered by it; one
    // with an unknown member is read live; both equal the oracle.
    let mut asked: Vec<String> = oracle.keys().take(20).cloned().collect();
    let answered = lookup_matches(&second, "arena", &asked, &oracle, &metas).await;
    assert_eq!(
        answered,
        asked.len() as f64,
        "the index answered the lookup"
    );
    asked.push("nobody:here".into());
    lookup_matches(&second, "arena", &asked, &oracle, &metas).await;
    churn(300, &mut rng, &mut oracle, &mut metas).await;
    for dep in [&first, &second] {
        ranks_equal(dep, "arena", None, &oracle, &metas).await;
        ranks_equal(dep, "arena", Some("weekly"), &oracle, &metas).await;
    }

    // A tie group bigger than an around's band may hold: on the counts
    // index its windows are found by the live neighbours fan-out and
    // still ranked by the index; the members index answers from memory.
    let ties: Vec<Value> = (0..1001)
        .map(|i| json!({"member": format!("tie:{i:04}"), "score": 7, "op": "set"}))
        .collect();
    for batch in ties.chunks(600) {
        let r = client
            .post(format!("{url}/scores:batch"))
            .json(&json!({ "writes": batch }))
            .send()
            .await
            .expect("batch");
        assert_eq!(r.status(), 200, "tie batch");
    }
    for i in 0..1001 {
        oracle.insert(format!("tie:{i:04}"), 7.0);
    }
    for (dep, source) in [(&first, "neighbours"), (&second, "members")] {
        around_matches(dep, "arena", "tie:0500", 5, &oracle, &metas, source).await;
    }
    let order = order_of(&oracle);
    let (top, last) = (&order[0], &order[order.len() - 1]);
    around_matches(&first, "arena", last, 3, &oracle, &metas, "band").await;
    around_matches(&second, "arena", last, 3, &oracle, &metas, "members").await;
    around_matches(&second, "arena", top, 4, &oracle, &metas, "members").await;
}

/// The members of `oracle` in the board order: best first, ties by
/// member bytes reversed.
fn order_of(oracle: &HashMap<String, f64>) -> Vec<String> {
    let mut order: Vec<String> = oracle.keys().cloned().collect();
    order.sort_by(|a, b| oracle[b].total_cmp(&oracle[a]).then(b.cmp(a)));
    order
}
