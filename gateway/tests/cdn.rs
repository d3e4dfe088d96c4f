//! The gateway behind a real Varnish running the shipped VCL
//! (`config/varnish/standings.vcl`), with that Varnish as its purge URL:
//! static JSON is cached (miss, then hit), the API passes through, a change
//! to the top 20 is purged so the next read through Varnish misses and
//! carries the new entries, and a PURGE from a non-loopback client is
//! refused by the VCL's ACL. And, in front of a gateway with a tenant and a
//! keyed board: API keys pass through Varnish (no key: the gateway's 401
//! with its JSON body), `/static` never carries a key, and `/metrics` and
//! `/v1/admin/...` are served only to the `operators` ACL (the harness's
//! site VCL is the shipped one: 127.0.0.1 and ::1), so a client at
//! 127.0.0.2 gets Varnish's 403 and the gateway never sees the request.
//!
//! No assertion is about time: waits are `eventually`, and the one-minute
//! TTL is far longer than any wait, so only a purge can explain a miss.

mod support;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use standings_config::{key_digest, Config, StoreKind};
use standings_test_support::varnish::Varnish;
use support::eventually;
use tokio_util::sync::CancellationToken;

/// What one GET through Varnish saw.
struct Seen {
    status: u16,
    x_cache: String,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn get(client: &reqwest::Client, url: &str) -> Seen {
    let r = client.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let x_cache = headers
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = r.json().await.unwrap_or(Value::Null);
    Seen {
        status,
        x_cache,
        headers,
        body,
    }
}

/// `(member, score)` of each entry of a `top` body.
fn members(body: &Value) -> Vec<(String, f64)> {
    body["entries"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["member"].as_str().unwrap_or("").to_string(),
                        e["score"].as_f64().unwrap_or(f64::NAN),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The value of the series `series` (name and labels, exactly as printed)
/// from `/metrics`; 0 when it does not exist yet.
async fn metric(client: &reqwest::Client, metrics_url: &str, series: &str) -> f64 {
    let text = client
        .get(metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// `standings_cdn_purges_total{result="<result>"}`.
async fn purges(client: &reqwest::Client, metrics_url: &str, result: &str) -> u64 {
    let series = format!("standings_cdn_purges_total{{result=\"{result}\"}}");
    metric(client, metrics_url, &series).await as u64
}

/// Waits until the purges have settled: the backlog gauge is 0 and no
/// purge was sent over a quiet spell of several refresh intervals. The
/// quiet spell covers the moment between the refresher swapping in a new
/// view (which the test may already see) and queueing its purge, a few
/// file writes later. `after` names what was purged, for the message.
async fn purges_settled(client: &reqwest::Client, metrics_url: &str, after: &str) {
    let backlog = "standings_cdn_purge_backlog";
    eventually(
        &format!("the purges after {after} to reach Varnish"),
        Duration::from_secs(30),
        || async {
            let before = purges(client, metrics_url, "ok").await;
            let idle = metric(client, metrics_url, backlog).await == 0.0;
            tokio::time::sleep(QUIET).await;
            let still = metric(client, metrics_url, backlog).await == 0.0;
            let after = purges(client, metrics_url, "ok").await;
            (idle && still && before == after).then_some(())
        },
    )
    .await;
}

/// Several refresh intervals of the test config (50 ms).
const QUIET: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn varnish_caches_static_json_and_the_gateway_purges_it_on_change() {
    // The gateway's socket first, so Varnish can point at it and the
    // gateway can purge Varnish.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = listener.local_addr().unwrap();
    let varnish = tokio::task::spawn_blocking(move || Varnish::start(gateway))
        .await
        .unwrap();
    let mut config = support::TestGateway::config("cdn");
    config.cdn.purge_urls = vec![varnish.base_url()];
    config.cdn.timeout_ms = 2_000;
    let static_dir = config.gateway.static_dir.clone();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(standings_gateway::run(config, listener, shutdown.clone()));

    let client = reqwest::Client::new();
    let direct = |path: &str| format!("http://{gateway}{path}");
    let metrics = direct("/metrics");
    let top20 = varnish.url("/static/global/top20.json");

    // The first refresh loads the (empty) board: one change, purged once
    // per static file. After that nothing changes until we write.
    eventually(
        "the first load's purges",
        Duration::from_secs(30),
        || async { (purges(&client, &metrics, "ok").await >= 3).then_some(()) },
    )
    .await;
    purges_settled(&client, &metrics, "the first load").await;
    let loaded_purges = purges(&client, &metrics, "ok").await;

    // A fresh cache misses, the second read hits.
    let first = get(&client, &top20).await;
    assert_eq!(first.status, 200, "{}", varnish.log());
    assert_eq!(first.x_cache, "MISS");
    assert_eq!(
        first.headers.get("cache-control").unwrap(),
        "public, max-age=60",
        "the gateway's Cache-Control reaches the reader"
    );
    assert!(
        first.headers.get("xkey").is_none() && first.headers.get("surrogate-key").is_none(),
        "purge keys are the cache's business, not the reader's"
    );
    let second = get(&client, &top20).await;
    assert_eq!(second.x_cache, "HIT");
    assert_eq!(second.body, first.body);
    assert!(members(&second.body).is_empty(), "nothing written yet");

    // The API is never cached.
    for _ in 0..2 {
        let api = get(&client, &varnish.url("/v1/boards/global/top?limit=5")).await;
        assert_eq!((api.status, api.x_cache.as_str()), (200, "PASS"));
    }

    // Writes that change the top 20; every other member carries meta,
    // which must reach the static file (and the CDN's copy) verbatim.
    let meta_of = |i: i32| (i % 2 == 0).then(|| json!({"name": format!("User {i}"), "lvl": i}));
    for i in 0..25 {
        let mut body = json!({"member": format!("user:{i}"), "score": 1000 + i, "op": "set"});
        if let Some(meta) = meta_of(i) {
            body["meta"] = meta;
        }
        let r = client
            .post(direct("/v1/boards/global/scores"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let expected_metas: Vec<Option<Value>> = (5..25).rev().map(meta_of).collect();
    let metas = |body: &Value| -> Vec<Option<Value>> {
        body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.get("meta").cloned())
            .collect()
    };
    let expected: Vec<(String, f64)> = (5..25)
        .rev()
        .map(|i| (format!("user:{i}"), f64::from(1000 + i)))
        .collect();

    // Wait until the gateway serves them, merged from every shard (the
    // version counts applied writes), and until its purges have been sent.
    // Nothing changes after that.
    eventually(
        "the gateway to merge every write",
        Duration::from_secs(30),
        || async {
            let r = client
                .get(direct("/v1/boards/global/top?limit=20"))
                .send()
                .await
                .unwrap();
            let body: Value = r.json().await.unwrap();
            (body["version"].as_u64() == Some(25) && members(&body) == expected).then_some(())
        },
    )
    .await;
    purges_settled(&client, &metrics, "the writes").await;

    // Varnish held the empty file for a minute and we have not read through
    // it since: only the gateway's purge can make this read miss and carry
    // the new entries.
    let fresh = get(&client, &top20).await;
    assert_eq!(fresh.status, 200);
    assert_eq!(
        (fresh.x_cache.as_str(), members(&fresh.body)),
        ("MISS", expected.clone()),
        "the purge removed the old file, so the new one came from the gateway"
    );
    assert_eq!(
        metas(&fresh.body),
        expected_metas,
        "the metas came through the gateway's static file"
    );
    let on_disk: Value = serde_json::from_slice(
        &std::fs::read(Path::new(&static_dir).join("global/top20.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        metas(&on_disk),
        expected_metas,
        "and are in the file on disk"
    );
    assert!(purges(&client, &metrics, "ok").await > loaded_purges);
    assert_eq!(purges(&client, &metrics, "failed").await, 0);
    let again = get(&client, &top20).await;
    assert_eq!(again.x_cache, "HIT");
    assert_eq!(members(&again.body), expected);
    assert_eq!(
        metas(&again.body),
        expected_metas,
        "the cached copy has them"
    );

    // PURGE is for the purgers ACL (loopback) only. Through the PROXY
    // listener Varnish believes the client is 192.0.2.1 (TEST-NET-1); the
    // bytes never leave the machine.
    let purge = "PURGE /static/global/top20.json HTTP/1.1\r\nHost: standings";
    let refused =
        tokio::task::block_in_place(|| varnish.request_as(Ipv4Addr::new(192, 0, 2, 1), purge));
    assert!(
        refused.starts_with("HTTP/1.1 403"),
        "a non-loopback PURGE is refused: {refused}"
    );
    assert_eq!(
        get(&client, &top20).await.x_cache,
        "HIT",
        "the refused PURGE removed nothing"
    );
    let allowed = tokio::task::block_in_place(|| varnish.request_as(Ipv4Addr::LOCALHOST, purge));
    assert!(
        allowed.starts_with("HTTP/1.1 200"),
        "a loopback PURGE is accepted: {allowed}"
    );
    assert_eq!(get(&client, &top20).await.x_cache, "MISS");

    shutdown.cancel();
    task.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(static_dir);
    tokio::task::spawn_blocking(move || drop(varnish))
        .await
        .unwrap();
}

/// The API key of tenant `acme` (the config holds only its SHA-256).
const ACME_KEY: &str = "sk_cdn-test-key-of-acme";

/// A client address outside every ACL of the shipped site VCL: still
/// loopback, so nothing leaves the machine, but not 127.0.0.1.
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// One tenant with one key that may do everything, and one board of that
/// tenant (with a blend, for the admin route); reads need the key too.
fn keyed_config(name: &str) -> Config {
    let sha256: String = key_digest(ACME_KEY.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let text = format!(
        r#"
[[tenants]]
id = "acme"
keys = [{{id = "acme-all", sha256 = "{sha256}", scopes = ["read", "write", "admin"]}}]

[[boards]]
name = "videos"
tenant = "acme"
periods = ["all", "daily"]
blends = [{{name = "hot", parts = [{{period = "daily", weight = 1}}]}}]
shards = 4
groups = 2
"#
    );
    let mut config = Config::parse(&text, "cdn-keys.toml").expect("valid config");
    config.store.kind = StoreKind::Memory;
    config.gateway.refresh_interval_ms = 50;
    config.agent.precompute_interval_ms = 50;
    let dir = std::env::temp_dir().join(format!("standings-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    config.gateway.static_dir = dir.display().to_string();
    config
}

/// How many requests the gateway counted on `route` (its label), any status.
async fn route_requests(client: &reqwest::Client, metrics_url: &str, route: &str) -> f64 {
    let text = client
        .get(metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let label = format!("route=\"{route}\"");
    text.lines()
        .filter(|l| l.starts_with("standings_http_requests_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The status line and the body of a raw response.
fn status_and_body(raw: &str) -> (&str, &str) {
    let status = raw.lines().next().unwrap_or("");
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn varnish_passes_api_keys_on_and_keeps_operator_paths_to_its_acl() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = listener.local_addr().unwrap();
    let varnish = tokio::task::spawn_blocking(move || Varnish::start(gateway))
        .await
        .unwrap();
    let config = keyed_config("cdn-keys");
    let static_dir = config.gateway.static_dir.clone();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(standings_gateway::run(config, listener, shutdown.clone()));
    let client = reqwest::Client::new();
    let metrics = format!("http://{gateway}/metrics");
    eventually(
        "the gateway to be ready through Varnish",
        Duration::from_secs(30),
        || async {
            let r = client.get(varnish.url("/readyz")).send().await.ok()?;
            (r.status() == 200).then_some(())
        },
    )
    .await;

    // An anonymous write to the keyed board: the gateway's 401, JSON body
    // and WWW-Authenticate intact, never cached.
    let scores = varnish.url("/v1/boards/videos/scores");
    let write = json!({"member": "user:1", "score": 7, "op": "set"});
    let r = client.post(&scores).json(&write).send().await.unwrap();
    assert_eq!(r.status(), 401, "{}", varnish.log());
    assert_eq!(r.headers()["x-cache"], "PASS");
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    assert_eq!(body["error"]["field"], "Authorization", "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    // A key the gateway does not know is 401 too.
    let r = client
        .post(&scores)
        .bearer_auth("sk_not-a-key")
        .json(&write)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The tenant's key reaches the gateway through Varnish: the write applies.
    let r = client
        .post(&scores)
        .bearer_auth(ACME_KEY)
        .json(&write)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let top = varnish.url("/v1/boards/videos/top");
    assert_eq!(client.get(&top).send().await.unwrap().status(), 401);
    let r = client.get(&top).bearer_auth(ACME_KEY).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // /static never carries a key past Varnish (one cached object serves
    // every reader): a board whose reads need a key has no static JSON
    // through the CDN, whatever the reader sends; public_reads is for that.
    let r = client
        .get(varnish.url("/static/videos/top20.json"))
        .bearer_auth(ACME_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "Authorization is dropped on /static");

    // /metrics from outside the operators ACL: Varnish's 403, short text.
    let get_metrics = "GET /metrics HTTP/1.1\r\nHost: standings";
    let outside = tokio::task::block_in_place(|| varnish.request_as(OUTSIDE, get_metrics));
    let (status, body) = status_and_body(&outside);
    assert!(status.starts_with("HTTP/1.1 403"), "{outside}");
    assert!(
        outside
            .to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{outside}"
    );
    assert_eq!(
        body.trim(),
        "/metrics and /v1/admin/ are for operators only"
    );
    // The same from the operators' address: the gateway's metrics.
    let inside =
        tokio::task::block_in_place(|| varnish.request_as(Ipv4Addr::LOCALHOST, get_metrics));
    let (status, body) = status_and_body(&inside);
    assert!(status.starts_with("HTTP/1.1 200"), "{inside}");
    assert!(body.contains("standings_http_requests_total"), "{inside}");

    // The admin API likewise: from outside even the admin key is refused by
    // Varnish, and the gateway never counts the request.
    let blend = "/v1/admin/boards/videos/blends/hot";
    for request in [
        format!(
            "PUT {blend} HTTP/1.1\r\nHost: standings\r\nAuthorization: Bearer {ACME_KEY}\r\n\
             Content-Type: application/json\r\nContent-Length: 0"
        ),
        format!("POST /v1/admin/backup HTTP/1.1\r\nHost: standings\r\nAuthorization: Bearer {ACME_KEY}\r\nContent-Length: 0"),
        // Leading slashes the gateway ignores do not slip past the ACL.
        "GET //metrics HTTP/1.1\r\nHost: standings".to_string(),
    ] {
        let answer = tokio::task::block_in_place(|| varnish.request_as(OUTSIDE, &request));
        assert!(answer.starts_with("HTTP/1.1 403"), "{request}: {answer}");
    }
    assert_eq!(route_requests(&client, &metrics, "admin_blend").await, 0.0);
    assert_eq!(route_requests(&client, &metrics, "admin_backup").await, 0.0);
    // From the operators' address (the plain listener is 127.0.0.1) with the
    // admin key, the blend change goes through.
    let r = client
        .put(varnish.url(blend))
        .bearer_auth(ACME_KEY)
        .json(&json!({"parts": [{"period": "daily", "weight": 2}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(route_requests(&client, &metrics, "admin_blend").await, 1.0);

    shutdown.cancel();
    task.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(static_dir);
    tokio::task::spawn_blocking(move || drop(varnish))
        .await
        .unwrap();
}
