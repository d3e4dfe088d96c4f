//! Shared test support: start a real gateway on a free loopback port, and
//! wait for a condition without sleeping a fixed time.

#![allow(dead_code)]

pub mod deploy;
pub mod lists;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use standings_config::Config;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A gateway running in this process on 127.0.0.1:<free port>.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<()>,
    pub static_dir: PathBuf,
    pub client: reqwest::Client,
}

impl TestGateway {
    /// The embedded example config with fast ticks and a private static dir.
    pub fn config(name: &str) -> Config {
        let mut config = Config::embedded();
        // Volatile: these tests need no files; the durable store has its own.
        config.store.kind = standings_config::StoreKind::Memory;
        config.gateway.refresh_interval_ms = 50;
        config.agent.precompute_interval_ms = 50;
        let dir = std::env::temp_dir().join(format!("standings-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        config.gateway.static_dir = dir.display().to_string();
        config
    }

    /// Starts `config` and returns once the socket is bound.
    pub async fn start(config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let static_dir = PathBuf::from(&config.gateway.static_dir);
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            standings_gateway::run(config, listener, token)
                .await
                .unwrap();
        });
        Self {
            addr,
            shutdown,
            task,
            static_dir,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self.get(path).await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    /// Posts a score write; returns status and body.
    pub async fn write(
        &self,
        board: &str,
        body: serde_json::Value,
        key: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut req = self
            .client
            .post(self.url(&format!("/v1/boards/{board}/scores")))
            .json(&body);
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
        let _ = std::fs::remove_dir_all(&self.static_dir);
    }
}

/// A gateway in this process without a socket: requests go straight to
/// `Gateway::handle`, which is the same service the server runs.
pub struct InProcess {
    pub gateway: standings_gateway::Gateway,
    pub shutdown: CancellationToken,
    pub background: JoinHandle<()>,
}

/// One in-process answer: status, headers and the JSON body (`Null` when
/// the body is not JSON).
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: serde_json::Value,
}

impl InProcess {
    /// Opens `config` and starts its refresher (and embedded agents).
    pub async fn start(config: Config) -> Self {
        let gateway = standings_gateway::Gateway::open(config).await.unwrap();
        let shutdown = CancellationToken::new();
        let background = gateway.start_background(shutdown.clone());
        Self {
            gateway,
            shutdown,
            background,
        }
    }

    /// Sends `method path` with an optional content type and a body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        let mut req = http::Request::builder().method(method).uri(path);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let response = self.gateway.handle(req).await;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        Answer {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        }
    }

    /// Posts a JSON score write to `board`.
    pub async fn write(&self, board: &str, body: serde_json::Value, key: Option<&str>) -> Answer {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(key) = key {
            headers.push(("idempotency-key", key));
        }
        let path = format!("/v1/boards/{board}/scores");
        self.send("POST", &path, &headers, body.to_string().into_bytes())
            .await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, &[], Vec::new()).await
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.background.await.unwrap();
    }
}

/// Polls `check` every 20 ms until it returns `Some`, for at most `limit`;
/// panics with `what` if it never does.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Percent-encodes a member id for a path segment.
pub fn enc(member: &str) -> String {
    member
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The board sorted as the contract says (score desc, then member bytes
/// desc) with competition ranks (1 + members strictly better): the
/// brute-force oracle the end-to-end tests compare the gateway with.
pub fn oracle(scores: &HashMap<String, f64>) -> Vec<(u64, String, f64)> {
    let mut sorted: Vec<(&String, &f64)> = scores.iter().collect();
    sorted.sort_by(|a, b| {
        b.1.total_cmp(a.1)
            .then_with(|| b.0.as_bytes().cmp(a.0.as_bytes()))
    });
    sorted
        .iter()
        .map(|(m, &s)| {
            let better = scores.values().filter(|&&o| o > s).count() as u64;
            (better + 1, (*m).clone(), s)
        })
        .collect()
}

/// `(rank, member, score)` of a `top` or `around` body.
pub fn entries(body: &serde_json::Value) -> Vec<(u64, String, f64)> {
    body["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries in {body}"))
        .iter()
        .map(|e| {
            (
                e["rank"].as_u64().expect("rank"),
                e["member"].as_str().expect("member").to_string(),
                e["score"].as_f64().expect("score"),
            )
        })
        .collect()
}

/// The score of `meta:I`: far above any other member of the tests.
fn meta_score(i: u64) -> f64 {
    1e12 + i as f64
}

/// The meta `meta:I` is written with (`v` tells writes apart).
fn meta_value(i: u64, v: &str) -> serde_json::Value {
    serde_json::json!({"name": format!("Meta {i}"), "v": v, "tags": ["a", i]})
}

/// Member metadata through a running gateway at `base` (any store): writes
/// members `meta:0..5` far above any other score, three of them with meta,
/// one replaced by a later write and one kept by a later write without
/// meta; [`check_meta_members`] then reads them back.
pub async fn write_meta_members(client: &reqwest::Client, base: &str) {
    use serde_json::{json, Value};
    let post = |body: Value| {
        let client = client.clone();
        let url = format!("{base}/v1/boards/global/scores");
        async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 200, "write {body}");
        }
    };
    for i in 0..5u64 {
        let mut body = json!({"member": format!("meta:{i}"), "score": meta_score(i), "op": "set"});
        if i % 2 == 0 {
            body["meta"] = meta_value(i, "first");
        }
        post(body).await;
    }
    // meta:0 replaced; meta:2 kept by a write without meta (same score).
    post(json!({"member": "meta:0", "score": meta_score(0), "op": "set", "meta": meta_value(0, "second")}))
        .await;
    post(json!({"member": "meta:2", "score": meta_score(2), "op": "set"})).await;
}

/// Checks every answer that lists the members [`write_meta_members`]
/// wrote against its oracle: `top`, the static `top20.json` (through the
/// shard, group and global snapshots), `around` and the member answer; a
/// member without meta has no `meta` field. `static_file`: the gateway's
/// `top20.json` on disk, checked too when given.
pub async fn check_meta_members(
    client: &reqwest::Client,
    base: &str,
    static_file: Option<&std::path::Path>,
) {
    use serde_json::Value;
    let want: Vec<(String, Option<Value>)> = (0..5u64)
        .rev()
        .map(|i| {
            let meta = match i {
                0 => Some(meta_value(0, "second")),
                2 | 4 => Some(meta_value(i, "first")),
                _ => None,
            };
            (format!("meta:{i}"), meta)
        })
        .collect();
    let listed = |body: &Value| -> Vec<(String, Option<Value>)> {
        body["entries"]
            .as_array()
            .map(|a| {
                a.iter()
                    .take(5)
                    .map(|e| {
                        let m = e["member"].as_str().unwrap_or("").to_string();
                        (m, e.get("meta").cloned())
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let get = |path: String| {
        let client = client.clone();
        let url = format!("{base}{path}");
        async move {
            let r = client.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for path in [
        "/v1/boards/global/top?limit=20",
        "/static/global/top20.json",
    ] {
        eventually(
            &format!("{path} to list the metas"),
            Duration::from_secs(60),
            || async { (listed(&get(path.to_string()).await.1) == want).then_some(()) },
        )
        .await;
    }
    if let Some(file) = static_file {
        eventually(
            "the static file on disk",
            Duration::from_secs(60),
            || async {
                let bytes = std::fs::read(file).ok()?;
                let body: Value = serde_json::from_slice(&bytes).ok()?;
                (listed(&body) == want).then_some(())
            },
        )
        .await;
    }
    let (status, around) = get("/v1/boards/global/members/meta%3A2/around?radius=1".into()).await;
    assert_eq!(status, 200, "{around}");
    assert_eq!(listed(&around), want[1..4].to_vec(), "around meta:2");
    for (member, meta) in &want {
        let (status, body) = get(format!("/v1/boards/global/members/{}", enc(member))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body.get("meta"), meta.as_ref(), "member answer of {member}");
    }
}
