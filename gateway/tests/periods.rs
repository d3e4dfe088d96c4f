//! Boards in time through real processes, on both stores: the gateway
//! binary on the durable embedded store, and the gateway with a
//! `standings-agent --role all` on a real Redis Cluster. The boards use
//! `every:2s` and `every:6s` periods, so the whole run takes seconds.
//!
//! - writes before and after a boundary land in the periods the store
//!   reported, and `/top`, ranks and around of the closed period equal a
//!   brute-force oracle of that window's writes and do not change after
//!   further writes; `period=every:2s/previous` and its id address it;
//!   retention removes it (on Redis its keys are gone);
//! - the blend `hot` (0.7 x current + 0.3 x previous) equals the weighted
//!   oracle after writes, after a roll-over, and after a weight change
//!   through `PUT /v1/admin/boards/mix/blends/hot`.
//!
//! Each step first waits until just after a boundary (by the wall clock,
//! which the stores on this machine share) and then works well inside the
//! period; every id is checked against what the store answered, never
//! guessed. Nothing asserts on time.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use standings_core::blend::weighted_sum;
use standings_core::{Period, Timezone};
use standings_test_support::redis;
use support::deploy::{post_score, Deployment, Tuning};
use support::{enc, entries, oracle};
use tokio::sync::Mutex;

const SETTLE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(25);

/// One deployment at a time: the Redis one runs a cluster and two processes.
static SERIAL: Mutex<()> = Mutex::const_new(());

const BOARDS: &str = r#"
[[boards]]
name = "rounds"
periods = ["all", "every:2s"]
closed_retention = "5s"
shards = 4
groups = 2
top_k = 100

[[boards]]
name = "mix"
periods = ["all", "every:6s"]
closed_retention = "1h"
shards = 4
groups = 2
top_k = 100
blends = [{name = "hot", parts = [{period = "every:6s", weight = 0.7}, {period = "every:6s/previous", weight = 0.3}]}]
"#;

/// Refresh and precompute every 100 ms; Redis calls time out after 500 ms.
const TUNING: Tuning = Tuning {
    interval_ms: 100,
    store_extra: "connect_timeout_ms = 500\nresponse_timeout_ms = 500\n",
    client_timeout: Duration::from_secs(20),
};

/// Writes `incr value` for `member` and answers the period ids and scores
/// the store reported.
async fn incr(d: &Deployment, board: &str, member: &str, value: f64) -> HashMap<String, f64> {
    post_score(&d.client, &d.base, board, member, "incr", value).await
}

/// Polls `path` until `check` accepts its 200 body; answers it.
async fn until(
    d: &mut Deployment,
    path: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + SETTLE;
    loop {
        d.assert_running();
        let (status, body) = d.get(path).await;
        if status == 200 && check(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {path} never matched; last answer {status} {body}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Sleeps until 150 ms after the next multiple of `every_ms`.
async fn after_boundary(every_ms: u64) {
    let now = standings_core::store::now_ms();
    let next = (now / every_ms + 1) * every_ms + 150;
    tokio::time::sleep(Duration::from_millis(next - now)).await;
}

/// The one period id among `scores` of the kind `prefix` names.
fn id_with(scores: &HashMap<String, f64>, prefix: &str) -> String {
    let ids: Vec<&String> = scores.keys().filter(|id| id.starts_with(prefix)).collect();
    assert_eq!(ids.len(), 1, "one {prefix} period in {scores:?}");
    ids[0].clone()
}

/// `(rank, member, score)` of the oracle as `top` lists it.
fn expect_top(scores: &HashMap<String, f64>) -> Vec<(u64, String, f64)> {
    oracle(scores)
}

/// Ranks and around of the closed period `p1` by its id, against `want`.
async fn check_live(d: &Deployment, p1: &str, want: &[(u64, String, f64)]) {
    for (rank, member, score) in want.iter().step_by(5) {
        let path = format!(
            "/v1/boards/rounds/members/{}?period={}",
            enc(member),
            enc(p1)
        );
        let (status, body) = d.get(&path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["rank"].as_u64(), Some(*rank), "{member} rank");
        assert_eq!(body["score"].as_f64(), Some(*score));
        assert_eq!(body["total"].as_u64(), Some(want.len() as u64));
        assert_eq!(body["period"]["id"], p1);
    }
    let at = 10;
    let member = &want[at].1;
    let path = format!(
        "/v1/boards/rounds/members/{}/around?radius=3&period={}",
        enc(member),
        enc(p1)
    );
    let (status, body) = d.get(&path).await;
    assert_eq!(status, 200, "{path}: {body}");
    let window: Vec<_> = want[at.saturating_sub(3)..(at + 4).min(want.len())].to_vec();
    assert_eq!(entries(&body), window, "around {member}");
}

async fn closed_periods_are_frozen_and_expire(d: &mut Deployment) {
    let tz = Timezone::utc();
    after_boundary(2000).await;
    let mut first: HashMap<String, f64> = HashMap::new();
    let mut p1 = None;
    for i in 0..24u64 {
        let member = format!("user:{i}");
        let value = ((i * 37) % 9) as f64 + 1.0;
        let scores = incr(d, "rounds", &member, value).await;
        let id = id_with(&scores, "every:2s/");
        assert!(p1.get_or_insert(id.clone()) == &id, "one window");
        *first.entry(member).or_default() += value;
    }
    let p1 = p1.unwrap();
    after_boundary(2000).await;
    let mut second: HashMap<String, f64> = HashMap::new();
    let mut p2 = None;
    for i in (0..24u64).step_by(3) {
        let member = format!("user:{i}");
        let scores = incr(d, "rounds", &member, 50.0).await;
        let id = id_with(&scores, "every:2s/");
        assert!(p2.get_or_insert(id.clone()) == &id, "one window");
        second.insert(member, 50.0);
    }
    let p2 = p2.unwrap();
    let closed = Period::parse_id(&p1, &tz).unwrap();
    assert_eq!(
        closed.next(&tz).unwrap().id.as_ref(),
        p2,
        "writes after the boundary went to the next period"
    );

    // The closed period, addressed as kind/previous: final snapshot, exact.
    let want = expect_top(&first);
    let previous = until(
        d,
        "/v1/boards/rounds/top?limit=100&period=every:2s/previous",
        "the closed period's top",
        |b| b["period"]["id"] == p1.as_str() && entries(b) == want,
    )
    .await;
    assert_eq!(previous["period"]["closed"], true);
    assert_eq!(previous["period"]["kind"], "every:2s");
    assert_eq!(
        previous["period"]["starts_at"],
        standings_core::period::format_ms(closed.starts_ms.unwrap())
    );
    let current = expect_top(&second);
    until(
        d,
        "/v1/boards/rounds/top?limit=100&period=every:2s",
        "the current period's top",
        |b| b["period"]["id"] == p2.as_str() && entries(b) == current,
    )
    .await;
    let mut all = first.clone();
    for (m, s) in &second {
        *all.entry(m.clone()).or_default() += s;
    }
    let all_top = expect_top(&all);
    until(d, "/v1/boards/rounds/top?limit=100", "all-time", |b| {
        entries(b) == all_top
    })
    .await;

    // Ranks and around of the closed period by its id, against the oracle.
    check_live(d, &p1, &want).await;

    // Further writes (a new period) change nothing of the closed one.
    after_boundary(2000).await;
    for i in 0..24u64 {
        incr(d, "rounds", &format!("user:{i}"), 1000.0).await;
    }
    let path = format!("/v1/boards/rounds/top?limit=100&period={}", enc(&p1));
    let (status, body) = d.get(&path).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(entries(&body), want, "the closed period did not change");
    assert_eq!(body["period"]["closed"], true);
    check_live(d, &p1, &want).await;
    let (status, body) = d
        .get("/v1/boards/rounds/periods?kind=every:2s&limit=5")
        .await;
    assert_eq!(status, 200, "{body}");
    let listed: Vec<&str> = body["periods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&p1.as_str()), "{p1} held: {listed:?}");
    let held = body["periods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == p1.as_str())
        .unwrap();
    assert_eq!(held["members"].as_u64(), Some(first.len() as u64));

    // Retention: 5 s after its end the period is gone.
    let expires = closed.ends_ms.unwrap() + 5000;
    let wait = (expires - standings_core::store::now_ms_i64()).max(0) as u64 + 500;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let (status, body) = d.get(&path).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "unknown_period");
    let (_, body) = d
        .get("/v1/boards/rounds/periods?kind=every:2s&limit=30")
        .await;
    assert!(
        !body.to_string().contains(&p1),
        "{p1} no longer listed: {body}"
    );
    if let Some(cluster) = &d.cluster {
        for shard in 0..4 {
            for suffix in ["z", "v", "snap"] {
                let key = format!("{{st:rounds:{shard}}}:{suffix}:{p1}");
                let master = cluster.master_of_key(&key);
                let exists = cluster.query(&master, redis::cmd("EXISTS").arg(&key));
                assert_eq!(exists, redis::Value::Int(0), "{key} expired");
            }
        }
    }
}

/// The blend oracle: 0.7 (or `w`) x current + 0.3 (or `v`) x previous.
fn blend_oracle(
    weights: (f64, f64),
    current: &HashMap<String, f64>,
    previous: &HashMap<String, f64>,
) -> HashMap<String, f64> {
    current
        .keys()
        .chain(previous.keys())
        .map(|m| {
            let sum = weighted_sum([
                (weights.0, current.get(m).copied()),
                (weights.1, previous.get(m).copied()),
            ]);
            (m.clone(), sum.unwrap())
        })
        .collect()
}

async fn blends_follow_writes_roll_overs_and_weights(d: &mut Deployment) {
    let hot = "/v1/boards/mix/top?limit=100&period=hot";
    after_boundary(6000).await;
    let mut a: HashMap<String, f64> = HashMap::new();
    for i in 0..16u64 {
        let member = format!("user:{i}");
        let value = ((i * 13) % 7) as f64 + 0.5;
        incr(d, "mix", &member, value).await;
        *a.entry(member).or_default() += value;
    }
    let none = HashMap::new();
    let want = expect_top(&blend_oracle((0.7, 0.3), &a, &none));
    let body = until(d, hot, "the blend after writes", |b| entries(b) == want).await;
    assert_eq!(body["period"]["kind"], "blend");
    assert_eq!(body["period"]["id"], "hot");

    after_boundary(6000).await;
    let want = expect_top(&blend_oracle((0.7, 0.3), &none, &a));
    until(d, hot, "the blend after a roll-over", |b| {
        entries(b) == want
    })
    .await;
    let mut b: HashMap<String, f64> = HashMap::new();
    for i in (0..20u64).step_by(2) {
        let member = format!("user:{i}");
        incr(d, "mix", &member, 4.0).await;
        b.insert(member, 4.0);
    }
    let want = expect_top(&blend_oracle((0.7, 0.3), &b, &a));
    until(d, hot, "the blend after writes in the new period", |x| {
        entries(x) == want
    })
    .await;

    let r = d
        .client
        .put(format!("{}/v1/admin/boards/mix/blends/hot", d.base))
        .json(&json!({"parts": [{"period": "every:6s", "weight": 2}, {"period": "every:6s/previous", "weight": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let want = expect_top(&blend_oracle((2.0, 1.0), &b, &a));
    until(d, hot, "the blend after a weight change", |x| {
        entries(x) == want
    })
    .await;
    incr(d, "mix", "user:3", 10.0).await;
    *b.entry("user:3".into()).or_default() += 10.0;
    let want = expect_top(&blend_oracle((2.0, 1.0), &b, &a));
    until(d, hot, "a write with the new weights", |x| {
        entries(x) == want
    })
    .await;
    let (status, body) = d
        .get(&format!(
            "/v1/boards/mix/members/{}?period=hot",
            enc("user:3")
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["score"].as_f64(),
        want.iter().find(|e| e.1 == "user:3").map(|e| e.2)
    );

    // Bad weights are refused, naming the part.
    let r = d
        .client
        .put(format!("{}/v1/admin/boards/mix/blends/hot", d.base))
        .json(&json!({"parts": [{"period": "daily", "weight": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["field"], "parts[0].period", "{body}");
}

async fn static_files_per_kind(d: &mut Deployment) {
    let (status, body) = d.get("/static/rounds/every:2s/top20.json").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["period"]["kind"], "every:2s");
    let (status, body) = d.get("/static/mix/hot/top20.json").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["period"]["id"], "hot");
    let (status, _) = d.get("/static/rounds/weekly/top20.json").await;
    assert_eq!(status, 404, "a kind the board does not have");
    let file = d.dir.path().join("static/rounds/every:2s/top20.json");
    assert!(file.exists(), "{} written", file.display());
}

async fn scenario(mut d: Deployment) {
    closed_periods_are_frozen_and_expire(&mut d).await;
    blends_follow_writes_roll_overs_and_weights(&mut d).await;
    static_files_per_kind(&mut d).await;
    let (status, body) = d.get("/v1/boards/rounds/top?period=monthly").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_period");
    assert_eq!(body["error"]["field"], "period");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periods_on_the_embedded_store() {
    let _one = SERIAL.lock().await;
    scenario(Deployment::embedded_with("periods", BOARDS, &TUNING).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periods_on_a_redis_cluster() {
    let _one = SERIAL.lock().await;
    scenario(Deployment::redis_with("periods", BOARDS, &TUNING).await).await;
}
