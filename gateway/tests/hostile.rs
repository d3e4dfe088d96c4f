//! Hostile clients through real sockets: stalled headers, idle keep-alive
//! connections and one address opening too many; and in process, rank reads
//! over the fan-out limit being shed while `/top` keeps serving.
//!
//! Waits are bounded by generous deadlines (`eventually`); nothing here
//! asserts how long something took.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{eventually, InProcess, TestGateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection (EOF or reset); returns
/// what it sent before that.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return seen,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_headers_are_closed_and_a_normal_client_is_served_meanwhile() {
    let mut config = TestGateway::config("slowloris");
    config.gateway.header_read_timeout_ms = 1_000;
    config.gateway.max_connections_per_client = 5_000;
    let gw = TestGateway::start(config).await;
    let mut stalled = Vec::new();
    for _ in 0..2_000 {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(b"G").await.unwrap();
        stalled.push(s);
    }
    // A normal client is answered while 2,000 connections stall.
    let (status, body) = gw.get_json("/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, _) = gw
        .write("global", json!({"member": "u:1", "score": 5}), None)
        .await;
    assert_eq!(status, 200);

    // Every stalled connection is closed by the server (the deadline only
    // bounds the test; the server's own timeout is 1 s).
    let closing = stalled.into_iter().map(|mut s| {
        tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(30), until_closed(&mut s))
                .await
                .is_ok()
        })
    });
    let mut closed = 0;
    for c in closing {
        closed += usize::from(c.await.unwrap());
    }
    assert_eq!(closed, 2_000, "every stalled connection was closed");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed_after_their_timeout() {
    let mut config = TestGateway::config("idle");
    config.gateway.keep_alive_idle_ms = 300;
    // Long enough that only the idle timeout can close the connection.
    config.gateway.header_read_timeout_ms = 60_000;
    let gw = TestGateway::start(config).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Kept alive: a second request on the same connection is served.
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Then nothing: the server closes it.
    let rest = tokio::time::timeout(Duration::from_secs(30), until_closed(&mut s))
        .await
        .expect("the idle connection was closed");
    assert!(rest.is_empty(), "no further bytes before the close");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_over_its_connection_cap_is_refused() {
    let mut config = TestGateway::config("percap");
    config.gateway.max_connections_per_client = 3;
    config.gateway.header_read_timeout_ms = 60_000;
    let gw = TestGateway::start(config).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(b"GET /heal").await.unwrap();
        held.push(s);
    }
    // The server counts a connection once it has accepted it: wait until a
    // fourth is refused, then check the refusal.
    let refusal = eventually(
        "a fourth connection to be refused",
        Duration::from_secs(10),
        || async {
            let mut s = TcpStream::connect(gw.addr).await.ok()?;
            s.write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n")
                .await
                .ok()?;
            let text = String::from_utf8_lossy(&until_closed(&mut s).await).to_string();
            text.starts_with("HTTP/1.1 503").then_some(text)
        },
    )
    .await;
    assert!(refusal.contains("retry-after: 1"), "{refusal}");
    let body = refusal.split_once("\r\n\r\n").unwrap().1;
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["error"]["code"], "overloaded");
    // Freeing one slot lets the address in again.
    drop(held.pop());
    let served = eventually(
        "a slot to be given back",
        Duration::from_secs(10),
        || async {
            let r = gw.client.get(gw.url("/healthz")).send().await.ok()?;
            (r.status() == 200).then_some(())
        },
    )
    .await;
    assert_eq!(served, ());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rank_reads_over_the_fan_out_limit_are_shed_and_top_keeps_serving() {
    let mut config = TestGateway::config("shed");
    config.gateway.max_fanout_in_flight = 2;
    let gw = InProcess::start(config).await;
    assert_eq!(
        gw.write("global", json!({"member": "u:1", "score": 5}), None)
            .await
            .status,
        200
    );
    let member = gw.get("/v1/boards/global/members/u:1").await;
    assert_eq!(member.status, 200, "under the limit: served");

    // Every permit taken, as by two rank reads in flight.
    let state = gw.gateway.state();
    let _busy = state.fanout.try_acquire_many(2).unwrap();
    for path in [
        "/v1/boards/global/members/u:1",
        "/v1/boards/global/members/u:1/around?radius=3",
    ] {
        let shed = gw.get(path).await;
        assert_eq!(shed.status, 503, "{path}");
        assert_eq!(shed.body["error"]["code"], "overloaded", "{path}");
        assert_eq!(shed.headers["retry-after"], "1", "{path}");
    }
    let top = gw.get("/v1/boards/global/top?limit=20").await;
    assert_eq!(top.status, 200, "/top does not fan out and keeps serving");
    let static_json = gw.get("/static/global/top20.json").await;
    assert_eq!(static_json.status, 200);
    drop(_busy);
    assert_eq!(gw.get("/v1/boards/global/members/u:1").await.status, 200);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_over_the_client_rate_get_429_with_ratelimit_headers_per_forwarded_client() {
    let mut config = TestGateway::config("readlimit");
    config.gateway.read_rate_per_client = 0.5;
    config.gateway.read_burst_per_client = 2;
    config.gateway.trusted_proxies = vec!["127.0.0.1".into()];
    let gw = InProcess::start(config).await;
    let from = |client: &'static str| [("x-forwarded-for", client)];
    let top = "/v1/boards/global/top?limit=20";
    for _ in 0..2 {
        assert_eq!(
            gw.send("GET", top, &from("203.0.113.5"), vec![])
                .await
                .status,
            200
        );
    }
    let limited = gw.send("GET", top, &from("203.0.113.5"), vec![]).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.body["error"]["code"], "rate_limited");
    assert!(limited.headers.contains_key("retry-after"));
    let policy = limited.headers["ratelimit-policy"].to_str().unwrap();
    assert!(policy.starts_with("\"reads\";q=2;w="), "{policy}");
    let state = limited.headers["ratelimit"].to_str().unwrap();
    assert!(state.starts_with("\"reads\";r=0;t="), "{state}");
    // Another client behind the same trusted proxy has its own budget.
    assert_eq!(
        gw.send("GET", top, &from("203.0.113.6"), vec![])
            .await
            .status,
        200
    );
    // A spoofed left-most entry does not help: the rightmost untrusted
    // address is the client.
    let spoofed = gw
        .send("GET", top, &from("198.51.100.1, 203.0.113.5"), vec![])
        .await;
    assert_eq!(spoofed.status, 429);
    // Operations endpoints are never limited.
    assert_eq!(
        gw.send("GET", "/healthz", &from("203.0.113.5"), vec![])
            .await
            .status,
        200
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_reused_with_another_body_is_422_and_changes_nothing() {
    let gw = InProcess::start(TestGateway::config("conflict")).await;
    let write = |score: i64| json!({"member": "user:10086", "score": score, "op": "incr"});
    // Someone claims the README's example key with +0 first ...
    let first = gw.write("global", write(0), Some("first-write")).await;
    assert_eq!((first.status, &first.body["applied"]), (200, &json!(true)));
    // ... the real +50 under the same key is refused, not silently dropped.
    let conflict = gw.write("global", write(50), Some("first-write")).await;
    assert_eq!(conflict.status, 422, "{}", conflict.body);
    assert_eq!(conflict.body["error"]["code"], "idempotency_conflict");
    assert_eq!(conflict.body["error"]["field"], "Idempotency-Key");
    // An exact repeat still answers the first outcome.
    let repeat = gw.write("global", write(0), Some("first-write")).await;
    assert_eq!(
        (repeat.status, &repeat.body["applied"]),
        (200, &json!(false))
    );
    let member = gw.get("/v1/boards/global/members/user:10086").await;
    assert_eq!(member.body["score"], 0, "the refused write changed nothing");
    gw.stop().await;
}
