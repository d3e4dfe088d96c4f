//! Events and likes through the HTTP API, in process on the embedded
//! stores: the shapes of api.md, errors that name their field, the
//! cooldown and actor rate, tenant scoping, and weights that change without
//! a restart (run-time `PUT .../weights`, and a reload of the file, where a
//! broken file changes nothing).

mod support;

use std::sync::Arc;

use serde_json::{json, Value};
use standings_config::{Config, StoreKind};
use support::{Answer, InProcess};

const CONFIG: &str = r#"
[likes]
shards = 4
cooldown = "0s"
recent_per_actor = 5

[[boards]]
name = "videos"
shards = 4
groups = 2
periods = ["all", "daily"]
source = {events = "target", weights = {like = 2, dislike = -1, comment = 3, share = 5}}

[[boards]]
name = "fans"
shards = 4
groups = 2
source = {events = "actor", weights = {like = 1, comment = 1}}

[[boards]]
name = "creators"
shards = 4
groups = 2
source = {events = "owner", weights = {like = 10}}

[[boards]]
name = "plain"
shards = 4
groups = 2
"#;

fn config(kind: StoreKind, dir: &std::path::Path, text: &str) -> Config {
    let mut config = Config::parse(text, "events.toml").expect("valid config");
    config.store.kind = kind;
    config.store.data_dir = dir.join("data").display().to_string();
    config.gateway.refresh_interval_ms = 50;
    config.agent.precompute_interval_ms = 50;
    config
}

async fn post(gw: &InProcess, path: &str, body: Value) -> Answer {
    gw.send(
        "POST",
        path,
        &[("content-type", "application/json")],
        body.to_string().into_bytes(),
    )
    .await
}

async fn put(gw: &InProcess, path: &str, body: Value) -> Answer {
    gw.send(
        "PUT",
        path,
        &[("content-type", "application/json")],
        body.to_string().into_bytes(),
    )
    .await
}

fn ev(id: &str, kind: &str, actor: &str, target: &str, owner: Option<&str>) -> Value {
    let mut e = json!({"id": id, "type": kind, "actor": actor, "target": target});
    if let Some(o) = owner {
        e["owner"] = json!(o);
    }
    e
}

async fn score(gw: &InProcess, board: &str, member: &str) -> Option<f64> {
    let a = gw
        .get(&format!(
            "/v1/boards/{board}/members/{}",
            support::enc(member)
        ))
        .await;
    match a.status {
        200 => a.body["score"].as_f64(),
        404 => None,
        other => panic!("member read answered {other}: {}", a.body),
    }
}

async fn likes_flow(gw: &InProcess) {
    let a = post(
        gw,
        "/v1/events",
        ev("e1", "like", "u:1", "v:9", Some("c:5")),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.body,
        json!({"results": [{"id": "e1", "applied": true, "state": "liked"}]})
    );
    // The same id again: a repeat.
    let a = post(
        gw,
        "/v1/events",
        ev("e1", "like", "u:1", "v:9", Some("c:5")),
    )
    .await;
    assert_eq!(a.body["results"][0]["applied"], json!(false));
    // Liking twice under a new id changes nothing.
    let a = post(
        gw,
        "/v1/events",
        ev("e2", "like", "u:1", "v:9", Some("c:5")),
    )
    .await;
    assert_eq!(
        a.body["results"][0],
        json!({"id": "e2", "applied": false, "state": "liked"})
    );
    // A batch: another like, a comment, a switch of u:3.
    let batch = json!({"events": [
        ev("e3", "like", "u:2", "v:9", Some("c:5")),
        ev("e4", "comment", "u:2", "v:9", None),
        ev("e5", "like", "u:3", "v:9", Some("c:5")),
        ev("e6", "dislike", "u:3", "v:9", Some("c:5")),
    ]});
    let a = post(gw, "/v1/events", batch).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let applied: Vec<bool> = a.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["applied"].as_bool().unwrap())
        .collect();
    assert_eq!(applied, [true, true, true, true]);
    assert_eq!(a.body["results"][3]["state"], json!("disliked"));
    assert!(
        a.body["results"][1].get("state").is_none(),
        "a comment has no state"
    );

    let a = gw.get("/v1/likes/v%3A9?actor=u%3A3").await;
    assert_eq!(
        a.body,
        json!({"target": "v:9", "likes": 2, "dislikes": 1, "state": "disliked"})
    );
    let a = gw.get("/v1/likes/v%3A9").await;
    assert_eq!(a.body, json!({"target": "v:9", "likes": 2, "dislikes": 1}));
    let a = post(
        gw,
        "/v1/likes:lookup",
        json!({"actor": "u:1", "targets": ["v:9", "v:none"]}),
    )
    .await;
    assert_eq!(
        a.body,
        json!({"entries": [
            {"target": "v:9", "likes": 2, "dislikes": 1, "state": "liked"},
            {"target": "v:none", "likes": 0, "dislikes": 0, "state": "none"}
        ]})
    );
    let a = gw.get("/v1/actors/u%3A1/likes?limit=5").await;
    assert_eq!(a.body["actor"], json!("u:1"));
    assert_eq!(a.body["entries"][0]["target"], json!("v:9"));
    assert!(a.body["entries"][0]["at"].as_u64().unwrap() > 1_700_000_000_000);
    let a = gw.get("/v1/owners/c%3A5/likes").await;
    assert_eq!(a.body, json!({"owner": "c:5", "likes_received": 2}));

    // videos: 3 likes (+6), a comment (+3), a switch (-2 -1) = 6, in
    // every period.
    assert_eq!(score(gw, "videos", "v:9").await, Some(6.0));
    let daily = gw.get("/v1/boards/videos/members/v%3A9?period=daily").await;
    assert_eq!(daily.body["score"].as_f64(), Some(6.0), "{}", daily.body);
    // fans: u:2 liked and commented.
    assert_eq!(score(gw, "fans", "u:2").await, Some(2.0));
    // creators: three likes, one switched away.
    assert_eq!(score(gw, "creators", "c:5").await, Some(20.0));
}

async fn errors_name_their_field(gw: &InProcess) {
    let cases = [
        (
            json!({"type": "like", "actor": "u", "target": "v"}),
            400,
            "id",
        ),
        (
            json!({"id": "x", "type": "poke", "actor": "u", "target": "v"}),
            400,
            "type",
        ),
        (
            json!({"id": "x", "type": "like", "actor": "", "target": "v"}),
            400,
            "actor",
        ),
        (
            json!({"id": "x", "type": "like", "actor": "u", "target": "a\u{200b}b"}),
            400,
            "target",
        ),
        (
            json!({"id": "x", "type": "like", "actor": "u", "target": "v", "owner": 5}),
            400,
            "owner",
        ),
        (
            json!({"events": [ev("a", "like", "u", "v", None), {"id": "b", "type": "like", "actor": "u"}]}),
            400,
            "events[1].target",
        ),
        (json!({"events": []}), 400, "events"),
        (
            json!({"id": "x", "type": "like", "actor": "u", "target": "v", "extra": 1}),
            400,
            "extra",
        ),
    ];
    for (body, status, field) in cases {
        let a = post(gw, "/v1/events", body.clone()).await;
        assert_eq!(a.status, status, "{body}: {}", a.body);
        assert_eq!(a.body["error"]["field"], json!(field), "{body}: {}", a.body);
    }
    let too_many: Vec<Value> = (0..1001)
        .map(|i| ev(&format!("m{i}"), "like", "u", "v", None))
        .collect();
    let a = post(gw, "/v1/events", json!({"events": too_many})).await;
    assert_eq!(
        (a.status, a.body["error"]["field"].clone()),
        (400, json!("events"))
    );
    // Nothing of a rejected batch was applied.
    assert_eq!(gw.get("/v1/likes/v").await.body["likes"], json!(0));
    let a = post(
        gw,
        "/v1/likes:lookup",
        json!({"targets": (0..101).map(|i| format!("t{i}")).collect::<Vec<_>>()}),
    )
    .await;
    assert_eq!(
        (a.status, a.body["error"]["field"].clone()),
        (400, json!("targets"))
    );
    let a = post(gw, "/v1/likes:lookup", json!({"targets": ["ok", 7]})).await;
    assert_eq!(a.body["error"]["field"], json!("targets[1]"));
    let a = gw.get("/v1/actors/u/likes?limit=0").await;
    assert_eq!(
        (a.status, a.body["error"]["field"].clone()),
        (400, json!("limit"))
    );
    let a = gw.get("/v1/likes/v?colour=red").await;
    assert_eq!(a.status, 400);
    let a = put(
        gw,
        "/v1/admin/boards/plain/weights",
        json!({"weights": {"like": 1}}),
    )
    .await;
    assert_eq!(
        (a.status, a.body["error"]["field"].clone()),
        (400, json!("board"))
    );
    let a = put(
        gw,
        "/v1/admin/boards/videos/weights",
        json!({"weights": {"Like": 1}}),
    )
    .await;
    assert_eq!(
        (a.status, a.body["error"]["field"].clone()),
        (400, json!("weights"))
    );
    let a = put(
        gw,
        "/v1/admin/boards/videos/weights",
        json!({"weights": {"like": "2"}}),
    )
    .await;
    assert_eq!(a.status, 400);
    let a = gw.send("GET", "/v1/events", &[], Vec::new()).await;
    assert_eq!(a.status, 405);
}

async fn weights_at_run_time(gw: &InProcess) {
    let a = put(
        gw,
        "/v1/admin/boards/videos/weights",
        json!({"weights": {"like": 7, "comment": 1}}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.body,
        json!({"board": "videos", "weights": {"comment": 1.0, "like": 7.0}})
    );
    let a = post(gw, "/v1/events", ev("w1", "like", "u:1", "v:w", None)).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        score(gw, "videos", "v:w").await,
        Some(7.0),
        "the next like weighs 7"
    );
    // share is no longer weighed by any board (videos named it before).
    let a = post(gw, "/v1/events", ev("w2", "share", "u:1", "v:w", None)).await;
    assert_eq!(
        (a.status, a.body["error"]["field"].clone()),
        (400, json!("type"))
    );
}

#[tokio::test]
async fn events_and_likes_on_both_embedded_stores() {
    for kind in [StoreKind::Memory, StoreKind::Embedded] {
        let dir = standings_test_support::process::ScratchDir::new("events");
        let gw = InProcess::start(config(kind, dir.path(), CONFIG)).await;
        likes_flow(&gw).await;
        errors_name_their_field(&gw).await;
        weights_at_run_time(&gw).await;
        gw.stop().await;
    }
}

#[tokio::test]
async fn cooldown_and_actor_rate_answer_429() {
    let dir = standings_test_support::process::ScratchDir::new("events");
    let text = CONFIG.replace("cooldown = \"0s\"", "cooldown = \"60s\"")
        + "\n[events]\nrate_per_actor = 3\n";
    let gw = InProcess::start(config(StoreKind::Memory, dir.path(), &text)).await;
    assert_eq!(
        post(&gw, "/v1/events", ev("c1", "like", "u:1", "v:1", None))
            .await
            .status,
        200
    );
    let a = post(&gw, "/v1/events", ev("c2", "unlike", "u:1", "v:1", None)).await;
    assert_eq!(a.status, 429, "{}", a.body);
    assert!(a.headers.contains_key("retry-after"));
    assert_eq!(
        gw.get("/v1/likes/v%3A1").await.body["likes"],
        json!(1),
        "the unlike did nothing"
    );
    // In a batch the cooling event is refused on its own.
    let a = post(
        &gw,
        "/v1/events",
        json!({"events": [ev("c3", "unlike", "u:1", "v:1", None)]}),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["results"][0]["error"]["code"], json!("rate_limited"));
    // u:1 has sent 3 events: the 4th within the second is over its rate.
    let a = post(&gw, "/v1/events", ev("c4", "comment", "u:1", "v:2", None)).await;
    assert_eq!(a.status, 429, "{}", a.body);
    assert_eq!(a.body["error"]["field"], json!("actor"));
    // Another actor is not held up.
    assert_eq!(
        post(&gw, "/v1/events", ev("c5", "comment", "u:2", "v:2", None))
            .await
            .status,
        200
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_reload_changes_the_weights_and_a_broken_file_changes_nothing() {
    let dir = standings_test_support::process::ScratchDir::new("events");
    let path = dir.path().join("events.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let base = config(StoreKind::Memory, dir.path(), CONFIG);
    let again = path.clone();
    let overrides = base.clone();
    let reloader: standings_gateway::state::Reloader = Box::new(move || {
        let text = std::fs::read_to_string(&again).map_err(|e| e.to_string())?;
        let mut c = Config::parse(&text, "events.toml").map_err(|e| e.to_string())?;
        c.store = overrides.store.clone();
        c.gateway = overrides.gateway.clone();
        c.agent = overrides.agent.clone();
        Ok(c)
    });
    let gateway = standings_gateway::Gateway::open_with(base, Some(reloader))
        .await
        .unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let background = gateway.start_background(shutdown.clone());
    let gw = Arc::new(InProcess {
        gateway,
        shutdown,
        background,
    });
    post(&gw, "/v1/events", ev("r1", "like", "u:1", "v:r", None)).await;
    assert_eq!(score(&gw, "videos", "v:r").await, Some(2.0));
    std::fs::write(&path, CONFIG.replace("like = 2,", "like = 4,")).unwrap();
    let a = post(&gw, "/v1/admin/reload", json!({})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    post(&gw, "/v1/events", ev("r2", "like", "u:2", "v:r", None)).await;
    assert_eq!(
        score(&gw, "videos", "v:r").await,
        Some(6.0),
        "the next like weighs 4"
    );
    std::fs::write(&path, CONFIG.replace("like = 2,", "like = \"many\",")).unwrap();
    let a = post(&gw, "/v1/admin/reload", json!({})).await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("events.toml"),
        "{}",
        a.body
    );
    post(&gw, "/v1/events", ev("r3", "like", "u:3", "v:r", None)).await;
    assert_eq!(
        score(&gw, "videos", "v:r").await,
        Some(10.0),
        "still 4 after the broken file"
    );
    let gw = Arc::try_unwrap(gw).ok().expect("one owner");
    gw.stop().await;
}
