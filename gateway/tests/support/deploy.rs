//! A deployment of real processes on one config: the gateway binary on
//! the durable embedded store, or the gateway with a `standings-agent
//! --role all` on a real Redis Cluster the harness starts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use standings_test_support::process::{free_loopback_port, workspace_bin, Process, ScratchDir};
use standings_test_support::RedisCluster;

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(25);

/// What a test tunes in its deployment's config and client.
pub struct Tuning {
    /// The gateway's refresh and the agent's precompute interval.
    pub interval_ms: u64,
    /// More `[store]` keys, one per line (e.g. short Redis timeouts).
    pub store_extra: &'static str,
    /// The test client's timeout per request.
    pub client_timeout: Duration,
}

/// Refresh and precompute every 200 ms, the store's own timeouts, 30 s
/// per request.
pub const DEFAULT: Tuning = Tuning {
    interval_ms: 200,
    store_extra: "",
    client_timeout: Duration::from_secs(30),
};

/// Writes a config of `store` with `boards` (`[[boards]]` TOML) into
/// `dir`, as `tuning` says, and checks it loads.
fn write_config(dir: &Path, store: &str, boards: &str, tuning: &Tuning) -> PathBuf {
    let data = format!("{:?}", dir.join("data").display().to_string());
    let statics = format!("{:?}", dir.join("static").display().to_string());
    let (every, extra) = (tuning.interval_ms, tuning.store_extra);
    let text = format!(
        "[store]\n{store}\ndata_dir = {data}\n{extra}\n\
         [gateway]\nrefresh_interval_ms = {every}\nstatic_dir = {statics}\n\n\
         [agent]\nprecompute_interval_ms = {every}\n{boards}"
    );
    let path = dir.join("standings.toml");
    std::fs::write(&path, text).expect("write the config");
    standings_config::Config::load(&path).expect("the test config is valid");
    path
}

/// The processes of one deployment, stopped when it drops.
pub struct Deployment {
    pub processes: Vec<Process>,
    pub base: String,
    pub client: reqwest::Client,
    /// The Redis Cluster of a Redis deployment.
    pub cluster: Option<RedisCluster>,
    /// Where its config, data and static files are.
    pub dir: ScratchDir,
}

impl Deployment {
    /// The gateway alone on the durable embedded store.
    pub async fn embedded(name: &str, boards: &str) -> Self {
        Self::embedded_with(name, boards, &DEFAULT).await
    }

    /// The gateway and an agent on a 3-master Redis Cluster.
    pub async fn redis(name: &str, boards: &str) -> Self {
        Self::redis_with(name, boards, &DEFAULT).await
    }

    /// [`Deployment::embedded`] tuned.
    pub async fn embedded_with(name: &str, boards: &str, tuning: &Tuning) -> Self {
        let dir = ScratchDir::new(&format!("{name}-embedded"));
        let config = write_config(dir.path(), "kind = \"embedded\"", boards, tuning);
        Self::start(dir, &config, None, tuning).await
    }

    /// [`Deployment::redis`] tuned.
    pub async fn redis_with(name: &str, boards: &str, tuning: &Tuning) -> Self {
        let cluster = RedisCluster::start(3, 0);
        let dir = ScratchDir::new(&format!("{name}-redis"));
        let config = write_config(dir.path(), "kind = \"memory\"", boards, tuning);
        Self::start(dir, &config, Some(cluster), tuning).await
    }

    async fn start(
        dir: ScratchDir,
        config: &Path,
        cluster: Option<RedisCluster>,
        tuning: &Tuning,
    ) -> Self {
        let client = reqwest::Client::builder()
            .timeout(tuning.client_timeout)
            .build()
            .unwrap();
        let mut processes = Vec::new();
        let nodes = cluster.as_ref().map(|c| c.nodes().join(","));
        let command = |bin: PathBuf, extra: &[&str]| {
            let mut cmd = Command::new(bin);
            cmd.arg("--config")
                .arg(config)
                .args(extra)
                .env("NO_COLOR", "1");
            if let Some(nodes) = &nodes {
                cmd.arg("--redis-nodes").arg(nodes);
            }
            cmd
        };
        if cluster.is_some() {
            let bin = workspace_bin("standings-shard-agent", "standings-agent");
            processes.push(Process::spawn(
                "agent",
                command(bin, &["--role", "all"]),
                dir.path(),
            ));
        }
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_standings-gateway"));
        for _ in 0..3 {
            let listen = format!("127.0.0.1:{}", free_loopback_port());
            let mut gateway = Process::spawn(
                "gateway",
                command(bin.clone(), &["--listen", &listen]),
                dir.path(),
            );
            let base = format!("http://{listen}");
            let deadline = Instant::now() + READY_TIMEOUT;
            loop {
                if let Some(status) = gateway.exited() {
                    assert_eq!(status.code(), Some(71), "the gateway exited: {status}");
                    break;
                }
                let ready = client.get(format!("{base}/readyz")).send().await;
                if ready.is_ok_and(|r| r.status() == 200) {
                    processes.push(gateway);
                    return Self {
                        processes,
                        base,
                        client,
                        cluster,
                        dir,
                    };
                }
                assert!(Instant::now() < deadline, "the gateway was not ready");
                tokio::time::sleep(POLL).await;
            }
        }
        panic!("no free port in 3 tries");
    }

    /// `GET path`: the status and the JSON body (null when not JSON).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        get(&self.client, &self.base, path).await
    }

    /// `POST path` with a JSON body: the status and the JSON body.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Panics when a process of the deployment has exited.
    pub fn assert_running(&mut self) {
        for p in &mut self.processes {
            p.assert_running();
        }
    }
}

/// `GET base path` with `client`: the status and the JSON body.
pub async fn get(client: &reqwest::Client, base: &str, path: &str) -> (u16, Value) {
    let r = client
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Writes `op value` for `member` on `board`, asserting a 200; answers
/// the scores by period id the store reported.
pub async fn post_score(
    client: &reqwest::Client,
    base: &str,
    board: &str,
    member: &str,
    op: &str,
    value: f64,
) -> HashMap<String, f64> {
    let r = client
        .post(format!("{base}/v1/boards/{board}/scores"))
        .json(&json!({"member": member, "score": value, "op": op}))
        .send()
        .await
        .expect("POST a score");
    assert_eq!(r.status(), 200, "write {member} to {board}");
    let body: Value = r.json().await.unwrap();
    body["scores"]
        .as_object()
        .unwrap_or_else(|| panic!("no scores in {body}"))
        .iter()
        .map(|(id, s)| (id.clone(), s.as_f64().unwrap()))
        .collect()
}
