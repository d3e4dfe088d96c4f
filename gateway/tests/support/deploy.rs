//! A deployment of real processes on one config: the gateway binary on
//! the durable embedded store, or the gateway with a `standings-agent
//! --role all` on a real Redis Cluster the harness starts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use standings_test_support::process::{free_loopback_port, workspace_bin, Process, ScratchDir};
use standings_test_support::RedisCluster;

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(25);

/// Writes a config of `store` with `boards` (`[[boards]]` TOML) into
/// `dir`, refreshing and precomputing every 200 ms, and checks it loads.
fn write_config(dir: &Path, store: &str, boards: &str) -> PathBuf {
    let data = format!("{:?}", dir.join("data").display().to_string());
    let statics = format!("{:?}", dir.join("static").display().to_string());
    let text = format!(
        "[store]\n{store}\ndata_dir = {data}\n\n\
         [gateway]\nrefresh_interval_ms = 200\nstatic_dir = {statics}\n\n\
         [agent]\nprecompute_interval_ms = 200\n{boards}"
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
    _cluster: Option<RedisCluster>,
    _dir: ScratchDir,
}

impl Deployment {
    /// The gateway alone on the durable embedded store.
    pub async fn embedded(name: &str, boards: &str) -> Self {
        let dir = ScratchDir::new(&format!("{name}-embedded"));
        let config = write_config(dir.path(), "kind = \"embedded\"", boards);
        Self::start(dir, &config, None).await
    }

    /// The gateway and an agent on a 3-master Redis Cluster.
    pub async fn redis(name: &str, boards: &str) -> Self {
        let cluster = RedisCluster::start(3, 0);
        let dir = ScratchDir::new(&format!("{name}-redis"));
        let config = write_config(dir.path(), "kind = \"memory\"", boards);
        Self::start(dir, &config, Some(cluster)).await
    }
    async fn start(dir: ScratchDir, config: &Path, cluster: Option<RedisCluster>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
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
                        _cluster: cluster,
                        _dir: dir,
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
