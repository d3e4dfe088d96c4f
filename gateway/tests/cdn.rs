//! The gateway behind a real Varnish running the shipped VCL
//! (`config/varnish/standings.vcl`), with that Varnish as its purge URL:
//! static JSON is cached (miss, then hit), the API passes through, a change
//! to the top 20 is purged so the next read through Varnish misses and
//! carries the new entries, and a PURGE from a non-loopback client is
//! refused by the VCL's ACL.
//!
//! No assertion is about time: waits are `eventually`, and the one-minute
//! TTL is far longer than any wait, so only a purge can explain a miss.

mod support;

use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::{json, Value};
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

    // Writes that change the top 20.
    for i in 0..25 {
        let r = client
            .post(direct("/v1/boards/global/scores"))
            .json(&json!({"member": format!("user:{i}"), "score": 1000 + i, "op": "set"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
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
    assert!(purges(&client, &metrics, "ok").await > loaded_purges);
    assert_eq!(purges(&client, &metrics, "failed").await, 0);
    let again = get(&client, &top20).await;
    assert_eq!(again.x_cache, "HIT");
    assert_eq!(members(&again.body), expected);

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
