//! The system under test, started the way an operator runs it: the
//! `standings-agent` and `standings-gateway` release binaries as separate
//! processes on a Redis Cluster, with one config file of 1-second ticks;
//! and the baselines' standalone Redis.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::procs::{free_port, sibling_binary, wait_for_port, Proc};

/// The board every measurement uses.
pub const BOARD: &str = "global";

/// Shards of the board, as the design card has them.
pub const SHARDS: u32 = 100;

/// The gateway and agent config: the Redis Cluster store, 1-second ticks
/// for the agents and the gateway refresh, one board of [`SHARDS`] shards
/// in 10 groups of TOP-1000.
pub fn config_toml(nodes: &[String], gateway_port: u16, tick_ms: u64) -> String {
    config_toml_with(nodes, gateway_port, tick_ms, 0, "off")
}

/// [`config_toml`] with `gateway.rank_staleness_ms` and
/// `gateway.rank_index` set: the gateways that measure ranks from the
/// score cache alone and from the stream-fed rank index.
pub fn config_toml_with(
    nodes: &[String],
    gateway_port: u16,
    tick_ms: u64,
    rank_staleness_ms: u64,
    rank_index: &str,
) -> String {
    let nodes = nodes
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "# Written by standings-loadtest bench.
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
rank_staleness_ms = {rank_staleness_ms}
rank_index = \"{rank_index}\"

[agent]
precompute_interval_ms = {tick_ms}

[[boards]]
name = \"{BOARD}\"
shards = {SHARDS}
groups = 10
top_k = 1000
order = \"desc\"
default_op = \"incr\"
shard_by = \"hash\"
"
    )
}

/// The agents and the gateway, stopped on drop (gateway first: fields drop
/// in declaration order).
pub struct Services {
    /// `standings-gateway --config FILE`.
    pub gateway: Proc,
    /// Two shard agents (shards 0-49, 50-99) and one group agent.
    pub agents: Vec<Proc>,
    /// The gateway's port on 127.0.0.1.
    pub port: u16,
    /// The command lines, for the notes.
    pub commands: Vec<String>,
}

impl Services {
    /// Starts the three agents and the gateway with `config`, and waits for
    /// the gateway's port.
    pub async fn start(work: &Path, config: &Path, port: u16) -> anyhow::Result<Self> {
        Self::start_with(
            work,
            config,
            port,
            &[
                (
                    "agent-shards-0-49",
                    &["--role", "shard", "--shards", "0-49"],
                ),
                (
                    "agent-shards-50-99",
                    &["--role", "shard", "--shards", "50-99"],
                ),
                ("agent-group", &["--role", "group"]),
            ],
        )
        .await
    }

    /// Starts `agents` (a log name and the role flags of each) and the
    /// gateway with `config`, and waits for the gateway's port.
    pub async fn start_with(
        work: &Path,
        config: &Path,
        port: u16,
        agents_to_start: &[(&str, &[&str])],
    ) -> anyhow::Result<Self> {
        let agent_bin = sibling_binary("standings-agent")?;
        let gateway_bin = sibling_binary("standings-gateway")?;
        let mut commands = Vec::new();
        let mut agents = Vec::new();
        for &(name, role_args) in agents_to_start {
            let mut cmd = Command::new(&agent_bin);
            cmd.arg("--config").arg(config).args(role_args);
            cmd.env("RUST_LOG", "warn");
            commands.push(format!("{cmd:?}"));
            agents.push(Proc::start(name, cmd, &work.join(format!("{name}.log")))?);
        }
        let mut cmd = Command::new(&gateway_bin);
        cmd.arg("--config").arg(config).env("RUST_LOG", "warn");
        commands.push(format!("{cmd:?}"));
        let mut gateway = Proc::start("standings-gateway", cmd, &work.join("gateway.log"))?;
        if let Err(e) = wait_for_port(port, Duration::from_secs(30)).await {
            gateway.ensure_running()?;
            return Err(e);
        }
        let mut services = Self {
            gateway,
            agents,
            port,
            commands,
        };
        services.ensure_running()?;
        Ok(services)
    }

    /// Fails when any of them died.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.gateway.ensure_running()?;
        for agent in &mut self.agents {
            agent.ensure_running()?;
        }
        Ok(())
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A second gateway on the same cluster (no agents of its own: it reads
/// the snapshots the agents publish), with `config`; waits for its port.
pub async fn start_gateway(
    work: &Path,
    name: &str,
    config: &Path,
    port: u16,
) -> anyhow::Result<Proc> {
    let mut cmd = Command::new(sibling_binary("standings-gateway")?);
    cmd.arg("--config").arg(config).env("RUST_LOG", "warn");
    let mut gateway = Proc::start(name, cmd, &work.join(format!("{name}.log")))?;
    if let Err(e) = wait_for_port(port, Duration::from_secs(30)).await {
        gateway.ensure_running()?;
        return Err(e);
    }
    Ok(gateway)
}

/// Waits until the gateway's `/top` carries version `writes` (every seeded
/// write merged through shard agents, group agent and gateway) and answers
/// that TOP20 body.
pub async fn wait_for_view(base: &str, writes: u64, timeout: Duration) -> anyhow::Result<Vec<u8>> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let url = format!("{base}/v1/boards/{BOARD}/top?limit=20");
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        if let Ok(response) = client.get(&url).send().await {
            let body = response.bytes().await?.to_vec();
            let (version, entries) = body_entries(&body);
            if version == Some(writes) && entries == writes.min(20) as usize {
                return Ok(body);
            }
            last = String::from_utf8_lossy(&body).into_owned();
        }
        if Instant::now() > deadline {
            bail!(
                "the gateway did not show version {writes} within {timeout:?}; last body: {last}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `version` and the number of `entries` of a `top` body.
pub fn body_entries(body: &[u8]) -> (Option<u64>, usize) {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (None, 0);
    };
    (
        json["version"].as_u64(),
        json["entries"].as_array().map_or(0, Vec::len),
    )
}

/// A standalone Redis (no cluster, no persistence) on a free loopback
/// port: the baselines' single sorted set.
pub async fn start_single_redis(work: &Path) -> anyhow::Result<(Proc, u16, String)> {
    let dir = work.join("redis-single");
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let mut cmd = Command::new("redis-server");
    cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir);
    let line = format!("{cmd:?}");
    let mut proc = Proc::start("redis-server (baseline)", cmd, &dir.join("redis.log"))?;
    if let Err(e) = wait_for_port(port, Duration::from_secs(10)).await {
        proc.ensure_running()?;
        return Err(e).context("the baseline redis-server did not start");
    }
    Ok((proc, port, line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_is_valid_and_ticks_every_second() {
        let nodes = vec!["127.0.0.1:30001".to_string(), "127.0.0.1:30002".to_string()];
        let text = config_toml(&nodes, 18080, 1000);
        let config = standings_config::Config::parse(&text, "bench.toml").unwrap();
        assert_eq!(config.store.nodes, nodes);
        assert_eq!(config.gateway.listen, "127.0.0.1:18080");
        assert_eq!(config.refresh_interval(), Duration::from_secs(1));
        assert_eq!(config.precompute_interval(), Duration::from_secs(1));
        let board = &config.boards()[0];
        assert_eq!(
            (board.name.as_str(), board.shards, board.groups),
            (BOARD, SHARDS, 10)
        );
    }

    #[test]
    fn reads_top_bodies() {
        let body = br#"{"board":"global","version":12,"entries":[{"rank":1},{"rank":2}]}"#;
        assert_eq!(body_entries(body), (Some(12), 2));
        assert_eq!(body_entries(b"not json"), (None, 0));
    }
}
