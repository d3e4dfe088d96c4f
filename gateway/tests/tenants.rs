//! Tenants and API keys over every route, on the durable embedded store and
//! on a real Redis Cluster: a key of tenant A gets 404 for everything of
//! tenant B (as for a board that does not exist), no key gets 401 and a key
//! without the scope gets 403, each with the JSON error body; `public`
//! boards need no key and `public_reads` boards need none for reads; the
//! same `Idempotency-Key` from two API keys applies once for each.

mod support;

use serde_json::{json, Value};
use standings_config::{key_digest, Config, StoreKind};
use standings_test_support::RedisCluster;
use support::{Answer, InProcess};

const KEYS: [(&str, &str, &str); 5] = [
    ("ta", "ta-all", "key-of-tenant-a-all"),
    ("ta", "root", "key-of-the-operators"),
    ("ta", "ta-read", "key-of-tenant-a-read"),
    ("ta", "ta-writer", "key-of-tenant-a-writer"),
    ("tb", "tb-all", "key-of-tenant-b-all"),
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn config_text() -> String {
    let key = |id: &str| KEYS.iter().find(|k| k.1 == id).unwrap();
    let entry = |id: &str, scopes: &str| {
        format!(
            "{{id = \"{id}\", sha256 = \"{}\", scopes = [{scopes}]}}",
            hex(&key_digest(key(id).2.as_bytes()))
        )
    };
    format!(
        r#"
[[tenants]]
id = "ta"
keys = [{}, {}, {}, {}]

[[tenants]]
id = "tb"
keys = [{}]

[[boards]]
name = "alpha"
tenant = "ta"
periods = ["all", "daily"]
blends = [{{name = "hot", parts = [{{period = "daily", weight = 1}}]}}]
shards = 4
groups = 2

[[boards]]
name = "beta"
tenant = "tb"
shards = 4
groups = 2

[[boards]]
name = "open"
shards = 4
groups = 2

[[boards]]
name = "cdn"
tenant = "ta"
public_reads = true
shards = 4
groups = 2
"#,
        entry("ta-all", "\"read\", \"write\", \"admin\""),
        entry("ta-read", "\"read\""),
        entry("ta-writer", "\"read\", \"write\""),
        entry("root", "\"operator\""),
        entry("tb-all", "\"read\", \"write\", \"admin\""),
    )
}

fn config(kind: StoreKind, dir: &std::path::Path, nodes: Option<Vec<String>>) -> Config {
    let mut config = Config::parse(&config_text(), "tenants.toml").expect("valid config");
    config.store.kind = kind;
    config.store.data_dir = dir.join("data").display().to_string();
    config.gateway.refresh_interval_ms = 50;
    config.agent.precompute_interval_ms = 50;
    config.gateway.static_dir = dir.join("static").display().to_string();
    if let Some(nodes) = nodes {
        config.store.nodes = nodes;
    }
    config
}

/// Sends a request with an optional API key.
async fn call(
    gw: &InProcess,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let bearer = key.map(|k| format!("Bearer {k}"));
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(b) = &bearer {
        headers.push(("authorization", b));
    }
    let bytes = match &body {
        Some(v) => {
            headers.push(("content-type", "application/json"));
            v.to_string().into_bytes()
        }
        None => Vec::new(),
    };
    gw.send(method, path, &headers, bytes).await
}

fn key(id: &str) -> &'static str {
    KEYS.iter().find(|k| k.1 == id).unwrap().2
}

/// Every board route of `board`, as (method, path, body).
fn routes(board: &str) -> Vec<(&'static str, String, Option<Value>)> {
    vec![
        (
            "POST",
            format!("/v1/boards/{board}/scores"),
            Some(json!({"member": "user:1", "score": 5})),
        ),
        ("GET", format!("/v1/boards/{board}/top"), None),
        ("GET", format!("/v1/boards/{board}/members/user%3A1"), None),
        (
            "GET",
            format!("/v1/boards/{board}/members/user%3A1/around"),
            None,
        ),
        ("GET", format!("/v1/boards/{board}/periods"), None),
        ("GET", format!("/v1/boards/{board}/entries"), None),
        ("GET", format!("/static/{board}/top20.json"), None),
        (
            "DELETE",
            format!("/v1/boards/{board}/members/user%3A1"),
            None,
        ),
        (
            "PUT",
            format!("/v1/admin/boards/{board}/blends/hot"),
            Some(json!({"parts": [{"period": "daily", "weight": 2}]})),
        ),
    ]
}

fn assert_error(a: &Answer, status: u16, code: &str, what: &str) {
    assert_eq!(a.status, status, "{what}: {}", a.body);
    assert_eq!(a.body["error"]["code"], code, "{what}: {}", a.body);
    assert!(
        a.body["error"]["message"].is_string(),
        "{what}: JSON error body"
    );
}

/// `incr 10` of user:77 on alpha with Idempotency-Key `shared-key-1`.
async fn keyed_write(gw: &InProcess, k: &str) -> Answer {
    let bearer = format!("Bearer {}", key(k));
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
        ("idempotency-key", "shared-key-1"),
    ];
    let body = json!({"member": "user:77", "score": 10, "op": "incr"});
    gw.send(
        "POST",
        "/v1/boards/alpha/scores",
        &headers,
        body.to_string().into_bytes(),
    )
    .await
}

async fn scenario(gw: InProcess) {
    // Data to find: one score on each board, by its own tenant.
    for (board, k) in [
        ("alpha", Some("ta-all")),
        ("beta", Some("tb-all")),
        ("open", None),
        ("cdn", Some("ta-all")),
    ] {
        let body = json!({"member": "user:1", "score": 5});
        let a = call(
            &gw,
            "POST",
            &format!("/v1/boards/{board}/scores"),
            k.map(key),
            Some(body),
        )
        .await;
        assert_eq!(a.status, 200, "{board}: {}", a.body);
    }

    // A key of tenant A sees nothing of tenant B: every route is 404, the
    // same answer as a board that does not exist.
    let unknown = call(
        &gw,
        "GET",
        "/v1/boards/nosuch/top",
        Some(key("ta-all")),
        None,
    )
    .await;
    assert_error(
        &unknown,
        404,
        "unknown_board",
        "a board that does not exist",
    );
    for (method, path, body) in routes("beta") {
        let a = call(&gw, method, &path, Some(key("ta-all")), body).await;
        assert_error(
            &a,
            404,
            "unknown_board",
            &format!("A's key on {method} {path}"),
        );
        assert_eq!(
            a.body["error"]["message"],
            unknown.body["error"]["message"]
                .as_str()
                .unwrap()
                .replace("nosuch", "beta"),
            "the 404 does not reveal that beta exists"
        );
    }
    // No key on a keyed board: 401 everywhere, with WWW-Authenticate.
    for (method, path, body) in routes("alpha") {
        let a = call(&gw, method, &path, None, body).await;
        assert_error(
            &a,
            401,
            "unauthorized",
            &format!("no key on {method} {path}"),
        );
        assert_eq!(
            a.headers
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            Some("Bearer")
        );
    }
    // An unknown key is 401 anywhere, even on a public board.
    let a = call(&gw, "GET", "/v1/boards/open/top", Some("not-a-key"), None).await;
    assert_error(&a, 401, "unauthorized", "an unknown key");
    // A read key may read, not write or administer: 403.
    let read = key("ta-read");
    for (method, path, body) in routes("alpha") {
        let a = call(&gw, method, &path, Some(read), body).await;
        match method {
            "GET" => assert!(
                [200, 404].contains(&a.status) && a.body["error"]["code"] != "unknown_board",
                "read key reads {path}: {} {}",
                a.status,
                a.body
            ),
            _ => assert_error(
                &a,
                403,
                "forbidden",
                &format!("read key on {method} {path}"),
            ),
        }
    }
    // A write key may not administer.
    let (method, path, body) = routes("alpha").pop().unwrap();
    let a = call(&gw, method, &path, Some(key("ta-writer")), body).await;
    assert_error(&a, 403, "forbidden", "write key on the admin route");
    // Its own tenant's key does everything.
    for (method, path, body) in routes("alpha") {
        let a = call(&gw, method, &path, Some(key("ta-all")), body).await;
        assert!(
            a.status < 400
                || a.status == 404 && a.body["error"]["code"] == "member_not_found"
                || path.contains("static") && a.status == 404,
            "{method} {path}: {} {}",
            a.status,
            a.body
        );
    }
    // The member removal above (by the tenant's admin key) took user:1 out
    // of every period; a second one finds nothing.
    let a = call(
        &gw,
        "GET",
        "/v1/boards/alpha/members/user%3A1",
        Some(key("ta-all")),
        None,
    )
    .await;
    assert_error(&a, 404, "member_not_found", "removed from all");
    let a = call(
        &gw,
        "GET",
        "/v1/boards/alpha/members/user%3A1?period=daily",
        Some(key("ta-all")),
        None,
    )
    .await;
    assert_error(&a, 404, "member_not_found", "removed from daily");
    let a = call(
        &gw,
        "DELETE",
        "/v1/boards/alpha/members/user%3A1",
        Some(key("ta-all")),
        None,
    )
    .await;
    assert_error(&a, 404, "member_not_found", "nothing left to remove");

    // Public boards need no key; public_reads boards need none for reads.
    for (method, path, body) in routes("open").into_iter().take(5) {
        let a = call(&gw, method, &path, None, body).await;
        assert!(
            a.status < 400,
            "public {method} {path}: {} {}",
            a.status,
            a.body
        );
    }
    let a = call(&gw, "GET", "/v1/boards/cdn/members/user%3A1", None, None).await;
    assert_eq!(a.status, 200, "public_reads: {}", a.body);
    let a = call(
        &gw,
        "POST",
        "/v1/boards/cdn/scores",
        None,
        Some(json!({"member": "u", "score": 1})),
    )
    .await;
    assert_error(&a, 401, "unauthorized", "public_reads does not open writes");
    let a = call(
        &gw,
        "POST",
        "/v1/boards/cdn/scores",
        Some(key("tb-all")),
        Some(json!({"member": "u", "score": 1})),
    )
    .await;
    assert_error(
        &a,
        404,
        "unknown_board",
        "another tenant's key on a public_reads board",
    );

    // Operator routes need an admin key once tenants exist.
    let a = call(&gw, "POST", "/v1/admin/backup", None, None).await;
    assert_error(&a, 401, "unauthorized", "backup without a key");
    let a = call(&gw, "POST", "/v1/admin/backup", Some(read), None).await;
    assert_error(&a, 403, "forbidden", "backup with a read key");

    // The board list shows public boards, public_reads boards and the
    // caller's own, never another tenant's.
    let names = |a: &Answer| -> Vec<String> {
        a.body["boards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["name"].as_str().unwrap().to_string())
            .collect()
    };
    let a = call(&gw, "GET", "/v1/boards", None, None).await;
    assert_eq!(names(&a), ["cdn", "open"], "anonymous: {}", a.body);
    let a = call(&gw, "GET", "/v1/boards", Some(key("ta-read")), None).await;
    assert_eq!(names(&a), ["alpha", "cdn", "open"]);
    let a = call(&gw, "GET", "/v1/boards", Some(key("tb-all")), None).await;
    assert_eq!(names(&a), ["beta", "cdn", "open"]);

    // Purge now: the board's admin only.
    let a = call(
        &gw,
        "POST",
        "/v1/admin/boards/alpha/purge",
        Some(key("ta-all")),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["cdn"], false, "no CDN configured here: {}", a.body);
    assert!(
        a.body["dirs"].as_array().is_some_and(|d| d.len() >= 2),
        "{}",
        a.body
    );
    let a = call(
        &gw,
        "POST",
        "/v1/admin/boards/alpha/purge",
        Some(key("tb-all")),
        None,
    )
    .await;
    assert_error(&a, 404, "unknown_board", "another tenant's purge");
    let a = call(
        &gw,
        "POST",
        "/v1/admin/boards/alpha/purge",
        Some(key("ta-writer")),
        None,
    )
    .await;
    assert_error(&a, 403, "forbidden", "purge without admin");
    let a = call(&gw, "POST", "/v1/admin/reload", Some(key("root")), None).await;
    assert_error(&a, 404, "not_found", "no config file to re-read in process");

    // Operator routes and public boards' admin routes: operators only, not
    // any tenant's admin.
    let a = call(&gw, "POST", "/v1/admin/backup", Some(key("ta-all")), None).await;
    assert_error(
        &a,
        403,
        "forbidden",
        "a tenant's admin key may not back up every tenant",
    );
    let a = call(&gw, "POST", "/v1/admin/backup", Some(key("root")), None).await;
    assert!(
        [200, 404].contains(&a.status),
        "operator backup: {} {}",
        a.status,
        a.body
    );
    let a = call(&gw, "POST", "/v1/admin/reload", Some(key("ta-all")), None).await;
    assert_error(&a, 403, "forbidden", "a tenant's admin key may not reload");
    for k in [None, Some(key("ta-all"))] {
        let a = call(&gw, "POST", "/v1/admin/boards/open/purge", k, None).await;
        assert!(
            [401, 403].contains(&a.status),
            "public board admin with {k:?}: {}",
            a.body
        );
    }
    let a = call(
        &gw,
        "POST",
        "/v1/admin/boards/open/purge",
        Some(key("root")),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);

    // The same Idempotency-Key from two API keys applies once for each.
    let first = keyed_write(&gw, "ta-all").await;
    assert_eq!(
        (
            first.status,
            first.body["applied"].clone(),
            first.body["score"].clone()
        ),
        (200, json!(true), json!(10))
    );
    let other = keyed_write(&gw, "ta-writer").await;
    assert_eq!(
        (other.body["applied"].clone(), other.body["score"].clone()),
        (json!(true), json!(20)),
        "another API key's write with the same Idempotency-Key applies: {}",
        other.body
    );
    let repeat = keyed_write(&gw, "ta-all").await;
    assert_eq!(
        (repeat.body["applied"].clone(), repeat.body["score"].clone()),
        (json!(false), json!(10)),
        "a repeat by the first key answers its own first outcome"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_and_keys_on_the_embedded_store() {
    let dir = standings_test_support::process::ScratchDir::new("tenants-embedded");
    let gw = InProcess::start(config(StoreKind::Embedded, dir.path(), None)).await;
    scenario(gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_and_keys_on_a_redis_cluster() {
    let cluster = RedisCluster::start(3, 0);
    let dir = standings_test_support::process::ScratchDir::new("tenants-redis");
    let gw = InProcess::start(config(StoreKind::Redis, dir.path(), Some(cluster.nodes()))).await;
    scenario(gw).await;
}

/// The gateway binary on a config file: `POST /v1/admin/reload` and SIGHUP
/// pick up a new board and a new key; a broken file is refused with 422 and
/// the old config stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_picks_up_boards_and_keys_and_refuses_a_broken_file() {
    use standings_test_support::process::{free_loopback_port, Process, ScratchDir};
    let dir = ScratchDir::new("tenants-reload");
    let path = dir.path().join("standings.toml");
    let base_text = format!(
        "[store]\nkind = \"memory\"\n[gateway]\nrefresh_interval_ms = 50\n[agent]\nprecompute_interval_ms = 50\n{}",
        config_text()
    );
    std::fs::write(&path, &base_text).unwrap();
    let listen = format!("127.0.0.1:{}", free_loopback_port());
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_standings-gateway"));
    cmd.arg("--config")
        .arg(&path)
        .arg("--listen")
        .arg(&listen)
        .env("NO_COLOR", "1");
    let mut gateway = Process::spawn("gateway", cmd, dir.path());
    let base = format!("http://{listen}");
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        gateway.assert_running();
        let ready = client.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway was not ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let admin = format!("Bearer {}", key("root"));
    let reload = || async {
        let r = client
            .post(format!("{base}/v1/admin/reload"))
            .header("authorization", &admin)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap())
    };
    let r = client
        .get(format!("{base}/v1/boards/gamma/top"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "no gamma yet");

    // A new public board: reload over HTTP.
    std::fs::write(
        &path,
        format!("{base_text}\n[[boards]]\nname = \"gamma\"\nshards = 2\ngroups = 1\n"),
    )
    .unwrap();
    let (status, body) = reload().await;
    assert_eq!((status, body["boards"].as_u64()), (200, Some(5)), "{body}");
    let r = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "a board added by a reload does not make the gateway unready"
    );
    let r = client
        .post(format!("{base}/v1/boards/gamma/scores"))
        .json(&json!({"member": "u:1", "score": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A broken file: 422, and gamma is still served.
    std::fs::write(&path, "[[boards]]\nname = \"Bad Name\"\n").unwrap();
    let (status, body) = reload().await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_config");
    let r = client
        .get(format!("{base}/v1/boards/gamma/members/u%3A1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the old config stays");

    // SIGHUP: gamma removed again.
    std::fs::write(&path, &base_text).unwrap();
    let pid = gateway.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    support::eventually(
        "SIGHUP to reload",
        std::time::Duration::from_secs(10),
        || async {
            let r = client
                .get(format!("{base}/v1/boards/gamma/top"))
                .send()
                .await
                .ok()?;
            (r.status() == 404).then_some(())
        },
    )
    .await;
    gateway.assert_running();
    // Keys never reach the logs: not the key, not its hash (the reloads
    // above logged at INFO, with the request's key in hand).
    let _ = client
        .get(format!("{base}/v1/boards/alpha/top"))
        .header("authorization", "Bearer not-a-key-at-all")
        .send()
        .await;
    let logs = std::fs::read_to_string(dir.path().join("gateway.stderr")).unwrap_or_default()
        + &std::fs::read_to_string(dir.path().join("gateway.stdout")).unwrap_or_default();
    assert!(
        logs.contains("config reloaded"),
        "the gateway logged: {logs}"
    );
    for secret in [
        key("root").to_string(),
        hex(&key_digest(key("root").as_bytes())),
        "not-a-key-at-all".into(),
    ] {
        assert!(!logs.contains(&secret), "a key or its hash in the logs");
    }
}

/// Limits per API key and per tenant, from the tenant's `limits`: rates so
/// low (one write per 100 s per key, two per tenant) that the second write
/// of a key is refused whatever the machine's speed.
#[tokio::test]
async fn writes_are_limited_per_key_and_per_tenant() {
    let digest = |k: &str| hex(&key_digest(k.as_bytes()));
    let text = format!(
        r#"
[store]
kind = "memory"

[[tenants]]
id = "tl"
limits = {{writes_per_key = 0.01, writes_per_tenant = 0.02, burst_seconds = 100}}
keys = [
  {{id = "k1", sha256 = "{}", scopes = ["read", "write"]}},
  {{id = "k2", sha256 = "{}", scopes = ["read", "write"]}},
  {{id = "k3", sha256 = "{}", scopes = ["read", "write"]}},
]

[[boards]]
name = "limited"
tenant = "tl"
shards = 2
groups = 1
"#,
        digest("limit-key-1"),
        digest("limit-key-2"),
        digest("limit-key-3")
    );
    let config = Config::parse(&text, "limits.toml").expect("valid config");
    let gw = InProcess::start(config).await;
    let body = || Some(json!({"member": "u:1", "score": 1}));
    let path = "/v1/boards/limited/scores";
    let a = call(&gw, "POST", path, Some("limit-key-1"), body()).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = call(&gw, "POST", path, Some("limit-key-1"), body()).await;
    assert_error(&a, 429, "rate_limited", "the key's second write");
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("API key"),
        "{}",
        a.body
    );
    assert!(a.headers.contains_key("retry-after") && a.headers.contains_key("ratelimit"));
    let a = call(&gw, "POST", path, Some("limit-key-2"), body()).await;
    assert_eq!(
        a.status, 200,
        "another key has its own allowance: {}",
        a.body
    );
    let a = call(&gw, "POST", path, Some("limit-key-3"), body()).await;
    assert_error(&a, 429, "rate_limited", "the tenant's third write");
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tenant"),
        "{}",
        a.body
    );
    let a = call(
        &gw,
        "GET",
        "/v1/boards/limited/top",
        Some("limit-key-1"),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "reads are not limited here");
    gw.stop().await;
}

/// A board created at run time on one gateway process is served by a second
/// gateway process and published by a separate agent, within a refresh
/// interval, on a real Redis Cluster; deleting it stops it everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_board_reaches_every_process_on_a_redis_cluster() {
    let mut stack = Stack::start("tenants-runtime", 2).await;
    let client = stack.client.clone();
    let (one, two) = (stack.gateways[0].1.clone(), stack.gateways[1].1.clone());
    let admin = format!("Bearer {}", key("ta-all"));
    let create = |base: String, body: Value, auth: Option<String>| {
        let client = client.clone();
        async move {
            let mut req = client.post(format!("{base}/v1/admin/boards")).json(&body);
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let live = json!({"name": "live", "periods": ["all", "daily"], "shards": 4, "groups": 2});
    let (status, body) = create(one.clone(), live.clone(), None).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = create(
        one.clone(),
        json!({"name": "bad", "periods": ["fortnightly"]}),
        Some(admin.clone()),
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("periods[0]")),
        "{body}"
    );
    for (bad, field) in [
        (json!({"name": "bad", "ties": "fastest"}), "ties"),
        (
            json!({"name": "bad", "ties": "first_achiever", "periods": ["all", "daily"],
                   "blends": [{"name": "hot", "parts": [{"period": "daily", "weight": 1}]}]}),
            "ties",
        ),
    ] {
        let (status, body) = create(one.clone(), bad, Some(admin.clone())).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (400, Some(field)),
            "{body}"
        );
    }
    let (status, body) = create(
        one.clone(),
        json!({"name": "other", "tenant": "tb"}),
        Some(admin.clone()),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = create(one.clone(), live.clone(), Some(admin.clone())).await;
    assert_eq!(
        (status, body["status"].as_str(), body["tenant"].as_str()),
        (201, Some("created"), Some("ta")),
        "{body}"
    );
    let (status, body) = create(one.clone(), live.clone(), Some(admin.clone())).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("board_exists")),
        "{body}"
    );

    // The second gateway takes writes for it, and the agent publishes it.
    let body = json!({"member": "user:5", "score": 42});
    stack
        .until_written(
            "gateway 2 to serve the new board",
            &two,
            "live",
            Some(&admin),
            body,
        )
        .await;
    stack
        .until(
            "the new board's top on gateway 2",
            &two,
            "/v1/boards/live/top",
            Some(&admin),
            |_, b| b["entries"][0]["member"] == "user:5",
        )
        .await;
    let r = client
        .get(format!("{two}/v1/boards/live/top"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a tenant's runtime board needs its key");

    // Deleting it on gateway 2 stops it on gateway 1; its name stays taken
    // while its data is kept; boards of the file are not deleted here.
    let r = client
        .delete(format!("{two}/v1/admin/boards/live"))
        .header("authorization", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    stack
        .until(
            "gateway 1 to stop serving it",
            &one,
            "/v1/boards/live/top",
            Some(&admin),
            |status, _| status == 404,
        )
        .await;
    let (status, body) = create(one.clone(), live.clone(), Some(admin.clone())).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("board_exists")),
        "data kept: {body}"
    );
    let r = client
        .delete(format!("{one}/v1/admin/boards/alpha"))
        .header("authorization", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "a board of the config file");
    stack.agent.assert_running();
    for (p, _) in &mut stack.gateways {
        p.assert_running();
    }
}

/// SIGHUP makes a separate `standings-agent` re-read the config file as it
/// does the gateway: a board added to the file is published without a
/// restart, on a real Redis Cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_agent_too() {
    let mut stack = Stack::start("tenants-agent-hup", 1).await;
    let base = stack.gateways[0].1.clone();
    let added = format!(
        "{}\n[[boards]]\nname = \"delta\"\nshards = 2\ngroups = 1\n",
        stack.text
    );
    std::fs::write(&stack.path, added).unwrap();
    for pid in [stack.agent.id(), stack.gateways[0].0.id()] {
        let sent = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }
    let body = json!({"member": "u:9", "score": 9});
    stack
        .until_written(
            "the gateway to take writes for delta",
            &base,
            "delta",
            None,
            body,
        )
        .await;
    stack
        .until(
            "the agent to publish delta",
            &base,
            "/v1/boards/delta/top",
            None,
            |_, b| b["entries"][0]["member"] == "u:9",
        )
        .await;
    stack.agent.assert_running();
    stack.gateways[0].0.assert_running();
}

/// A config file with this file's tenants and boards on a real 3-master
/// Redis Cluster, a `standings-agent --role all` and `gateways` gateway
/// processes on it, each ready.
struct Stack {
    agent: standings_test_support::process::Process,
    gateways: Vec<(standings_test_support::process::Process, String)>,
    path: std::path::PathBuf,
    text: String,
    client: reqwest::Client,
    // Dropped after the processes: their logs live in it, and they use it.
    _cluster: RedisCluster,
    _dir: standings_test_support::process::ScratchDir,
}

impl Stack {
    async fn start(label: &str, gateways: usize) -> Self {
        use standings_test_support::process::{
            free_loopback_port, workspace_bin, Process, ScratchDir,
        };
        let cluster = RedisCluster::start(3, 0);
        let nodes = cluster.nodes().join(",");
        let dir = ScratchDir::new(label);
        let path = dir.path().join("standings.toml");
        let text = format!(
            "[store]\nkind = \"redis\"\nnodes = [\"{}\"]\n[gateway]\nrefresh_interval_ms = 100\n[agent]\nprecompute_interval_ms = 100\n{}",
            cluster.nodes()[0],
            config_text()
        );
        std::fs::write(&path, &text).unwrap();
        let command = |bin: std::path::PathBuf, extra: &[&str]| {
            let mut cmd = std::process::Command::new(bin);
            cmd.arg("--config")
                .arg(&path)
                .arg("--redis-nodes")
                .arg(&nodes);
            cmd.args(extra).env("NO_COLOR", "1");
            cmd
        };
        let agent_bin = workspace_bin("standings-shard-agent", "standings-agent");
        let agent = Process::spawn("agent", command(agent_bin, &["--role", "all"]), dir.path());
        let client = reqwest::Client::new();
        let mut started = Vec::new();
        for n in 1..=gateways {
            let name = format!("gateway-{n}");
            let listen = format!("127.0.0.1:{}", free_loopback_port());
            let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_standings-gateway"));
            let mut p = Process::spawn(&name, command(bin, &["--listen", &listen]), dir.path());
            let base = format!("http://{listen}");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            loop {
                p.assert_running();
                let ready = client.get(format!("{base}/readyz")).send().await;
                if ready.is_ok_and(|r| r.status() == 200) {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "{name} was not ready");
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            started.push((p, base));
        }
        Self {
            agent,
            gateways: started,
            path,
            text,
            client,
            _cluster: cluster,
            _dir: dir,
        }
    }

    /// Polls `GET base+path` (with `auth`) until `check` accepts its status
    /// and body.
    async fn until(
        &self,
        what: &str,
        base: &str,
        path: &str,
        auth: Option<&str>,
        check: impl Fn(u16, &Value) -> bool,
    ) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let mut req = self.client.get(format!("{base}{path}"));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            if let Ok(r) = req.send().await {
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                if check(status, &body) {
                    return;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    /// Polls a write of `body` to `board` at `base` until it answers 200.
    async fn until_written(
        &self,
        what: &str,
        base: &str,
        board: &str,
        auth: Option<&str>,
        body: Value,
    ) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let url = format!("{base}/v1/boards/{board}/scores");
            let mut req = self.client.post(url).json(&body);
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            if req.send().await.is_ok_and(|r| r.status() == 200) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }
}
