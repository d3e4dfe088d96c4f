//! The gateway end to end through a real socket, in embedded mode: 10,000
//! members over 100 shards checked against a brute-force oracle, the
//! idempotency contract, static JSON, and every malformed request class.
//!
//! About 650 lines, most of them the table of malformed requests, which
//! reads best as one list.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use support::{enc, entries, eventually, oracle, InProcess, TestGateway};

/// Writes 10,000 members with a mix of ops (many ties) over 8 concurrent
/// connections; returns the oracle map and the number of writes.
async fn load(gw: &TestGateway) -> (HashMap<String, f64>, u64) {
    let mut rng = StdRng::seed_from_u64(42);
    let mut plan: Vec<(String, &str, f64)> = Vec::new();
    for i in 0..10_000 {
        plan.push((
            format!("user:{i}"),
            "set",
            f64::from(rng.gen_range(0..3000)),
        ));
    }
    for _ in 0..2_000 {
        let m = format!("user:{}", rng.gen_range(0..10_000));
        let op = ["incr", "best", "set"][rng.gen_range(0..3)];
        plan.push((m, op, f64::from(rng.gen_range(-100..4000))));
    }
    // The oracle applies the same ops in the same order per member; members
    // are split across connections by id so each member's writes stay ordered.
    let mut oracle: HashMap<String, f64> = HashMap::new();
    for (m, op, v) in &plan {
        let old = oracle.get(m).copied();
        let new = match (*op, old) {
            ("incr", o) => o.unwrap_or(0.0) + v,
            ("best", Some(o)) if o >= *v => o,
            _ => *v,
        };
        oracle.insert(m.clone(), new);
    }
    let lanes = 8;
    let mut tasks = Vec::new();
    for lane in 0..lanes {
        let mine: Vec<_> = plan
            .iter()
            .filter(|(m, _, _)| m[5..].parse::<usize>().unwrap() % lanes == lane)
            .cloned()
            .map(|(m, op, v)| (m, op.to_string(), v))
            .collect();
        let client = gw.client.clone();
        let url = gw.url("/v1/boards/global/scores");
        tasks.push(tokio::spawn(async move {
            for (m, op, v) in mine {
                let r = client
                    .post(&url)
                    .json(&json!({"member": m, "score": v, "op": op}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "write {m} {op} {v}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (oracle, plan.len() as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_members_match_the_oracle() {
    let gw = TestGateway::start(TestGateway::config("oracle")).await;
    let (scores, writes) = load(&gw).await;
    let expected = oracle(&scores);

    // The global version counts applied writes once every shard is merged.
    let top = eventually(
        "the snapshot version to reach every write",
        Duration::from_secs(30),
        || async {
            let (status, body) = gw.get_json("/v1/boards/global/top?limit=1000").await;
            (status == 200 && body["version"].as_u64() == Some(writes)).then_some(body)
        },
    )
    .await;
    assert_eq!(top["stale"], false);
    assert_eq!(
        entries(&top),
        expected[..1000].to_vec(),
        "top 1000, member for member and rank for rank"
    );

    let (_, page) = gw
        .get_json("/v1/boards/global/top?limit=50&offset=900")
        .await;
    assert_eq!(entries(&page), expected[900..950].to_vec(), "offset pages");
    let (_, top20) = gw.get_json("/v1/boards/global/top").await;
    assert_eq!(
        entries(&top20),
        expected[..20].to_vec(),
        "default limit is 20"
    );

    let positions: HashMap<&str, usize> = expected
        .iter()
        .enumerate()
        .map(|(i, e)| (e.1.as_str(), i))
        .collect();
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..200 {
        let i = rng.gen_range(0..expected.len());
        let (rank, member, score) = &expected[i];
        let (status, body) = gw
            .get_json(&format!("/v1/boards/global/members/{}", enc(member)))
            .await;
        assert_eq!(status, 200);
        assert_eq!(body["rank"].as_u64(), Some(*rank), "rank of {member}");
        assert_eq!(body["score"].as_f64(), Some(*score));
        assert_eq!(body["total"].as_u64(), Some(10_000));
    }
    let picks: Vec<usize> = (0..30).map(|_| rng.gen_range(0..10_000)).collect();
    for i in [0, 1, 2, 500, 5_000, 9_997, 9_999].into_iter().chain(picks) {
        let member = &expected[i].1;
        let radius = rng.gen_range(1..=12);
        let (status, body) = gw
            .get_json(&format!(
                "/v1/boards/global/members/{}/around?radius={radius}",
                enc(member)
            ))
            .await;
        assert_eq!(status, 200);
        let at = positions[member.as_str()];
        let window =
            expected[at.saturating_sub(radius)..(at + radius + 1).min(expected.len())].to_vec();
        assert_eq!(entries(&body), window, "around {member} radius {radius}");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_static_json_and_operations() {
    let gw = TestGateway::start(TestGateway::config("idem")).await;
    let w = json!({"member": "user:10086", "score": 50, "op": "incr"});
    let (s1, first) = gw.write("global", w.clone(), Some("req-1")).await;
    assert_eq!(
        (s1, &first),
        (
            200,
            &json!({"member": "user:10086", "score": 50, "applied": true, "scores": {"all": 50}})
        )
    );
    let (s2, repeat) = gw.write("global", w.clone(), Some("req-1")).await;
    assert_eq!(
        (s2, &repeat),
        (
            200,
            &json!({"member": "user:10086", "score": 50, "applied": false, "scores": {"all": 50}})
        )
    );
    let (_, other) = gw.write("global", w.clone(), Some("req-2")).await;
    assert_eq!(other["score"], 100, "a new key applies");
    let (_, no_op) = gw
        .write(
            "global",
            json!({"member": "user:10086", "score": 8000}),
            None,
        )
        .await;
    assert_eq!(no_op["score"], 8100, "the board's default op is incr");
    let (_, best) = gw
        .write(
            "global",
            json!({"member": "user:10086", "score": 10, "op": "best"}),
            None,
        )
        .await;
    assert_eq!(best["score"], 8100, "best keeps the higher score");
    let (_, member) = gw.get_json("/v1/boards/global/members/user%3A10086").await;
    assert_eq!(
        member,
        json!({"member": "user:10086", "score": 8100, "rank": 1, "total": 1,
               "percentile": 0.0,
               "period": {"id": "all", "kind": "all", "starts_at": null, "ends_at": null, "closed": false}}),
        "a lone member is percentile 0: no member is strictly worse"
    );

    // Static JSON: same bytes as /top, strong ETag, 304, cache headers, file on disk.
    let top = eventually(
        "the write to reach /top",
        Duration::from_secs(10),
        || async {
            let (_, body) = gw.get_json("/v1/boards/global/top").await;
            (body["entries"][0]["score"] == 8100).then_some(body)
        },
    )
    .await;
    let r = gw.get("/static/global/top20.json").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "public, max-age=60");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong etag {etag}"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, top);
    let cached = gw
        .client
        .get(gw.url("/static/global/top20.json"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    let other = gw
        .client
        .get(gw.url("/static/global/top20.json"))
        .header("If-None-Match", "\"nope\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    // The file matches what `/top` serves once both show the same view: a
    // refresh may land between the writes above (the `best` write still
    // bumps the version), so compare with `/top` as it is now, not with
    // the first body that showed 8100.
    let file = gw.static_dir.join("global/top20.json");
    let (on_disk, served) = eventually("top20.json on disk", Duration::from_secs(10), || async {
        let (_, served) = gw.get_json("/v1/boards/global/top").await;
        std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .filter(|v| v == &served)
            .map(|v| (v, served))
    })
    .await;
    assert_eq!(on_disk, served);
    assert_eq!(on_disk["entries"][0]["score"], 8100);
    for f in ["top100.json", "top1000.json"] {
        assert_eq!(gw.get(&format!("/static/global/{f}")).await.status(), 200);
    }

    assert_eq!(gw.get("/healthz").await.status(), 200);
    assert_eq!(gw.get("/readyz").await.status(), 200);
    let metrics = gw.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("standings_http_requests_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("standings_http_request_duration_seconds_bucket"),
        "latency histogram"
    );
    assert!(metrics.contains("standings_snapshot_age_seconds"));
    assert!(metrics.contains("standings_global_merge_seconds"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_over_the_client_rate_get_429() {
    let mut config = TestGateway::config("ratelimit");
    // One token per 1000 s: the third write cannot have refilled.
    config.gateway.write_rate_per_client = 0.001;
    config.gateway.write_burst_per_client = 2;
    let gw = TestGateway::start(config).await;
    for i in 0..2 {
        let (status, _) = gw
            .write(
                "global",
                json!({"member": format!("r{i}"), "score": 1}),
                None,
            )
            .await;
        assert_eq!(status, 200, "within the burst");
    }
    let r = gw
        .client
        .post(gw.url("/v1/boards/global/scores"))
        .json(&json!({"member": "r9", "score": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    let (status, _) = gw.get_json("/v1/boards/global/members/r9").await;
    assert_eq!(status, 404, "the refused write never reached the store");
    assert_eq!(
        gw.get("/v1/boards/global/top").await.status(),
        200,
        "reads are not limited"
    );
    gw.stop().await;
}

/// (method, path, content type, body, expected status, expected code, expected field)
type Case = (
    &'static str,
    String,
    Option<&'static str>,
    Vec<u8>,
    u16,
    &'static str,
    Option<&'static str>,
);

fn malformed_cases() -> Vec<Case> {
    let scores = "/v1/boards/global/scores".to_string();
    let post = |body: &str, status, code, field| -> Case {
        (
            "POST",
            "/v1/boards/global/scores".into(),
            Some("application/json"),
            body.as_bytes().to_vec(),
            status,
            code,
            field,
        )
    };
    let get = |path: &str, status, code, field| -> Case {
        ("GET", path.into(), None, Vec::new(), status, code, field)
    };
    let long = "x".repeat(129);
    // Meta: 513 bytes as compact JSON (`{"k":"` + 505 + `"}`), or not an
    // object (null included: omit the field to keep the member's meta), or
    // an object with a repeated key.
    let meta = |m: &str| format!(r#"{{"member":"a","score":1,"meta":{m}}}"#);
    let over = meta(&format!(r#"{{"k":"{}"}}"#, "x".repeat(505)));
    let bad_metas: Vec<Case> = [
        over.as_str(),
        &meta("[1,2]"),
        &meta(r#""text""#),
        &meta("42"),
        &meta("null"),
        &meta("true"),
        &meta(r#"{"a":1,"a":2}"#),
    ]
    .iter()
    .map(|body| post(body, 400, "invalid_meta", Some("meta")))
    .collect();
    let mut cases = vec![
        post("{", 400, "invalid_json", None),
        post(r#"{"member":"a","score":NaN}"#, 400, "invalid_json", None),
        post(
            r#"{"member":"a","score":1e300}"#,
            400,
            "invalid_score",
            Some("score"),
        ),
        post(
            r#"{"member":"a","score":-1e300}"#,
            400,
            "invalid_score",
            Some("score"),
        ),
        post(
            r#"{"member":"a","score":9007199254740994}"#,
            400,
            "invalid_score",
            Some("score"),
        ),
        // 2^53 + 1 is an f64 2^53 once parsed: the integer is checked as written.
        post(
            r#"{"member":"a","score":9007199254740993}"#,
            400,
            "invalid_score",
            Some("score"),
        ),
        post(
            r#"{"member":"a","score":-9007199254740993}"#,
            400,
            "invalid_score",
            Some("score"),
        ),
        post(r#"{"member":"a","score":1e400}"#, 400, "invalid_json", None),
        post(
            r#"{"member":"","score":1}"#,
            400,
            "invalid_member",
            Some("member"),
        ),
        post(
            &format!(r#"{{"member":"{long}","score":1}}"#),
            400,
            "invalid_member",
            Some("member"),
        ),
        post(
            r#"{"member":"a\u0001b","score":1}"#,
            400,
            "invalid_member",
            Some("member"),
        ),
        post(
            r#"{"member":7,"score":1}"#,
            400,
            "invalid_member",
            Some("member"),
        ),
        post(
            r#"{"member":"a","score":"1"}"#,
            400,
            "invalid_score",
            Some("score"),
        ),
        post(r#"{"member":"a"}"#, 400, "missing_field", Some("score")),
        post(r#"{"score":1}"#, 400, "missing_field", Some("member")),
        post(
            r#"{"member":"a","score":1,"op":"decr"}"#,
            400,
            "invalid_op",
            Some("op"),
        ),
        post(
            r#"{"member":"a","score":1,"scroe":2}"#,
            400,
            "unknown_field",
            Some("scroe"),
        ),
        post(r#"[{"member":"a","score":1}]"#, 400, "invalid_json", None),
        // A repeated field: two readers of "last one wins" could disagree.
        post(
            r#"{"member":"a","score":1,"score":1e300}"#,
            400,
            "invalid_json",
            Some("score"),
        ),
        post(
            r#"{"member":"a","score":1e300,"score":1}"#,
            400,
            "invalid_json",
            Some("score"),
        ),
        post(
            r#"{"member":"a","member":"b","score":1}"#,
            400,
            "invalid_json",
            Some("member"),
        ),
        // Format characters, separators and noncharacters in member ids.
        post(
            r#"{"member":"adm\u202enimda","score":1}"#,
            400,
            "invalid_member",
            Some("member"),
        ),
        post(
            r#"{"member":"a\u200bb","score":1}"#,
            400,
            "invalid_member",
            Some("member"),
        ),
        post(
            r#"{"member":"a\u2028b","score":1}"#,
            400,
            "invalid_member",
            Some("member"),
        ),
        post(
            r#"{"member":"a\u2029b","score":1}"#,
            400,
            "invalid_member",
            Some("member"),
        ),
        post(
            r#"{"member":"a\uffffb","score":1}"#,
            400,
            "invalid_member",
            Some("member"),
        ),
        post("", 400, "invalid_json", None),
        (
            "POST",
            "/v1/boards/nope/scores".into(),
            Some("application/json"),
            br#"{"member":"a","score":1}"#.to_vec(),
            404,
            "unknown_board",
            Some("board"),
        ),
        (
            "POST",
            scores.clone(),
            Some("text/plain"),
            br#"{"member":"a","score":1}"#.to_vec(),
            415,
            "unsupported_media_type",
            Some("Content-Type"),
        ),
        (
            "POST",
            scores.clone(),
            None,
            br#"{"member":"a","score":1}"#.to_vec(),
            415,
            "unsupported_media_type",
            Some("Content-Type"),
        ),
        (
            "POST",
            scores.clone(),
            Some("application/json"),
            vec![b' '; 70_000],
            413,
            "body_too_large",
            None,
        ),
        (
            "GET",
            scores.clone(),
            None,
            Vec::new(),
            405,
            "method_not_allowed",
            None,
        ),
        (
            "DELETE",
            "/v1/boards/global/top".into(),
            None,
            Vec::new(),
            405,
            "method_not_allowed",
            None,
        ),
        (
            "PUT",
            "/v1/boards/global/members/a".into(),
            None,
            Vec::new(),
            405,
            "method_not_allowed",
            None,
        ),
        get(
            "/v1/boards/global/top?limit=0",
            400,
            "invalid_parameter",
            Some("limit"),
        ),
        get(
            "/v1/boards/global/top?limit=1001",
            400,
            "invalid_parameter",
            Some("limit"),
        ),
        get(
            "/v1/boards/global/top?limit=abc",
            400,
            "invalid_parameter",
            Some("limit"),
        ),
        get(
            "/v1/boards/global/top?limit=-1",
            400,
            "invalid_parameter",
            Some("limit"),
        ),
        get(
            "/v1/boards/global/top?offset=1000",
            400,
            "invalid_parameter",
            Some("offset"),
        ),
        get(
            "/v1/boards/global/top?limt=5",
            400,
            "unknown_parameter",
            Some("limt"),
        ),
        get("/v1/boards/nope/top", 404, "unknown_board", Some("board")),
        get("/v1/boards/UPPER/top", 400, "invalid_board", Some("board")),
        get(
            "/v1/boards/a.b/members/m",
            400,
            "invalid_board",
            Some("board"),
        ),
        get("/static/-x/top20.json", 400, "invalid_board", Some("board")),
        get(
            "/v1/boards/global/members/nobody",
            404,
            "member_not_found",
            Some("member"),
        ),
        get(
            &format!("/v1/boards/global/members/{long}"),
            400,
            "invalid_member",
            Some("member"),
        ),
        get(
            "/v1/boards/global/members/%FF",
            400,
            "invalid_path",
            Some("member"),
        ),
        get(
            "/v1/boards/global/members/a%01b",
            400,
            "invalid_member",
            Some("member"),
        ),
        get(
            "/v1/boards/global/members/seed/around?radius=0",
            400,
            "invalid_parameter",
            Some("radius"),
        ),
        get(
            "/v1/boards/global/members/seed/around?radius=101",
            400,
            "invalid_parameter",
            Some("radius"),
        ),
        get(
            "/v1/boards/global/members/nobody/around",
            404,
            "member_not_found",
            Some("member"),
        ),
        get("/static/global/top7.json", 404, "not_found", None),
        get(
            "/static/nope/top20.json",
            404,
            "unknown_board",
            Some("board"),
        ),
        get("/v1/nope", 404, "not_found", None),
        get("/", 404, "not_found", None),
    ];
    cases.extend(bad_metas);
    cases
}

/// In process, through `Gateway::handle`: the same service the server runs,
/// without a socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_documented_errors() {
    let gw = InProcess::start(TestGateway::config("malformed")).await;
    let seeded = gw
        .write("global", json!({"member": "seed", "score": 1}), None)
        .await;
    assert_eq!(seeded.status, 200);
    let cases = malformed_cases();
    assert!(cases.len() >= 25);
    for (method, path, content_type, body, status, code, field) in cases {
        let headers: Vec<(&str, &str)> = content_type
            .map(|ct| vec![("content-type", ct)])
            .unwrap_or_default();
        let r = gw.send(method, &path, &headers, body).await;
        assert_eq!(r.status, status, "{method} {path}");
        assert_eq!(
            r.headers["content-type"], "application/json",
            "{method} {path}"
        );
        if status == 405 {
            assert!(
                r.headers.contains_key("allow"),
                "{method} {path} names the allowed methods"
            );
        }
        let body = r.body;
        assert_eq!(body["error"]["code"], code, "{method} {path}: {body}");
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert_eq!(
            body["error"]["field"].as_str(),
            field,
            "{method} {path}: {body}"
        );
    }
    // A bad Idempotency-Key header, and an incr that would leave +-2^53.
    let long_key = "k".repeat(129);
    let r = gw
        .send(
            "POST",
            "/v1/boards/global/scores",
            &[
                ("content-type", "application/json"),
                ("idempotency-key", &long_key),
            ],
            json!({"member": "a", "score": 1}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["field"], "Idempotency-Key");
    let set = gw
        .write(
            "global",
            json!({"member": "max", "score": 9007199254740992_u64, "op": "set"}),
            None,
        )
        .await;
    assert_eq!(set.status, 200);
    let over = gw
        .write(
            "global",
            json!({"member": "max", "score": 1, "op": "incr"}),
            None,
        )
        .await;
    assert_eq!(
        (over.status, over.body["error"]["code"].as_str()),
        (400, Some("invalid_score"))
    );
    let max = gw.get("/v1/boards/global/members/max").await.body;
    assert_eq!(
        max["score"].as_f64(),
        Some(9007199254740992.0),
        "the refused incr changed nothing"
    );
    // Nothing malformed reached the store, and the server still serves.
    let seed = gw.get("/v1/boards/global/members/seed").await.body;
    assert_eq!(seed["total"], 2, "only the two valid members exist");
    assert_eq!(gw.get("/healthz").await.status, 200);
    gw.stop().await;
}
