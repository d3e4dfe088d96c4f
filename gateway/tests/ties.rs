//! `ties = "first_achiever"` through real processes, on both stores: the
//! gateway binary on the durable embedded store, and the gateway with a
//! `standings-agent --role all` on a real Redis Cluster.
//!
//! 400 members are written one after another, ten scores among them (40
//! members share each), in an order unlike their bytes; then some leave
//! their score and come back (reached again: last among their equals) and
//! some are written without a change (they keep their place). Against the
//! oracle of that write order, on a `desc` and an `asc` board: the TOP-100,
//! every member's rank, total and percentile, windows around members,
//! lookups of lists with unknown members, and a walk of deep pages: every
//! rank unique, equal scores in the order they were reached. And a board
//! fed by like events, whose targets reach their counts like by like.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::deploy::Deployment;
use support::enc;
use tokio::sync::Mutex;

/// One deployment at a time: the Redis one runs a cluster and two processes.
static SERIAL: Mutex<()> = Mutex::const_new(());

const MEMBERS: u64 = 400;

const BOARDS: &str = r#"
[likes]
cooldown = "0s"

[[boards]]
name = "race"
ties = "first_achiever"
shards = 8
groups = 2
top_k = 100

[[boards]]
name = "laps"
order = "asc"
ties = "first_achiever"
shards = 4
groups = 2
top_k = 100

[[boards]]
name = "liked"
ties = "first_achiever"
source = {events = "target", weights = {like = 1}}
top_k = 100
"#;

/// One write; answers the score the store reports.
async fn write(d: &Deployment, board: &str, member: &str, op: &str, value: f64) -> f64 {
    let body = json!({"member": member, "score": value, "op": op});
    let (status, reply) = d.post(&format!("/v1/boards/{board}/scores"), body).await;
    assert_eq!(status, 200, "write {member} to {board}: {reply}");
    reply["score"].as_f64().expect("a score")
}

fn name(n: u64) -> String {
    format!("racer:{n}")
}

/// Who reached which score when, in write order.
#[derive(Default)]
struct Oracle {
    scores: HashMap<String, (f64, u64)>,
    seq: u64,
}

impl Oracle {
    fn wrote(&mut self, member: &str, score: f64) {
        self.seq += 1;
        if self.scores.get(member).is_none_or(|&(s, _)| s != score) {
            self.scores.insert(member.to_string(), (score, self.seq));
        }
    }

    /// Best first: score by the board's order, then first reached first.
    fn order(&self, asc: bool) -> Vec<(String, f64)> {
        let mut all: Vec<(&String, f64, u64)> =
            self.scores.iter().map(|(m, &(s, at))| (m, s, at)).collect();
        all.sort_by(|a, b| {
            let by_score = if asc {
                a.1.total_cmp(&b.1)
            } else {
                b.1.total_cmp(&a.1)
            };
            by_score.then(a.2.cmp(&b.2))
        });
        all.into_iter().map(|(m, s, _)| (m.clone(), s)).collect()
    }
}

/// The seed of one board, written one request after another (each reaches
/// its score at its own moment).
async fn seed(d: &Deployment, board: &str) -> Oracle {
    let mut oracle = Oracle::default();
    for i in 0..MEMBERS {
        let n = (i * 157) % MEMBERS;
        let member = name(n);
        let s = write(d, board, &member, "set", (n % 10) as f64).await;
        oracle.wrote(&member, s);
    }
    for n in [0, 10, 21, 399] {
        let member = name(n);
        for delta in [5.0, -5.0] {
            let s = write(d, board, &member, "incr", delta).await;
            oracle.wrote(&member, s);
        }
    }
    for n in [1, 30, 250] {
        let member = name(n);
        let s = write(d, board, &member, "incr", 0.0).await;
        oracle.wrote(&member, s);
        let s = write(d, board, &member, "best", (n % 10) as f64).await;
        oracle.wrote(&member, s);
    }
    oracle
}

/// `[(member, score, rank)]` of a list of entries.
fn listed(entries: &Value) -> Vec<(String, f64, u64)> {
    entries
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {entries}"))
        .iter()
        .map(|e| {
            (
                e["member"].as_str().expect("member").to_string(),
                e["score"].as_f64().expect("score"),
                e["rank"].as_u64().expect("rank"),
            )
        })
        .collect()
}

/// The oracle's entries `from..to` with their ranks (positions).
fn ranked(want: &[(String, f64)], from: usize, to: usize) -> Vec<(String, f64, u64)> {
    want[from..to]
        .iter()
        .enumerate()
        .map(|(i, (m, s))| (m.clone(), *s, (from + i + 1) as u64))
        .collect()
}

async fn check(d: &Deployment, board: &str, asc: bool) {
    let oracle = seed(d, board).await;
    let want = oracle.order(asc);
    let total = want.len();

    // The TOP-100 of the refreshed view (shard, group and global merges).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = d.get(&format!("/v1/boards/{board}/top?limit=100")).await;
        assert_eq!(status, 200, "{body}");
        if listed(&body["entries"]) == ranked(&want, 0, 100) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{board}: the top never matched the oracle: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Every member's rank is its position.
    for (i, (m, s)) in want.iter().enumerate() {
        let (status, body) = d
            .get(&format!("/v1/boards/{board}/members/{}", enc(m)))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["score"].as_f64(), Some(*s), "{board} {m}");
        assert_eq!(body["rank"].as_u64(), Some(i as u64 + 1), "{board} {m}");
        assert_eq!(body["total"].as_u64(), Some(total as u64));
        let percentile = 100.0 * (total - i - 1) as f64 / total as f64;
        let got = body["percentile"].as_f64().expect("percentile");
        assert!((got - percentile).abs() < 1e-9, "{board} {m}: {got}");
    }

    // Windows: at the top, in a tie group, at the bottom.
    for at in [0, 1, 57, total / 2, total - 1] {
        let m = &want[at].0;
        let (status, body) = d
            .get(&format!(
                "/v1/boards/{board}/members/{}/around?radius=4",
                enc(m)
            ))
            .await;
        assert_eq!(status, 200, "{body}");
        let from = at.saturating_sub(4);
        let to = (at + 5).min(total);
        assert_eq!(
            listed(&body["entries"]),
            ranked(&want, from, to),
            "{board} around {m}"
        );
    }

    // A lookup of members from every shard and tie group, with unknowns.
    let picks: Vec<usize> = (0..total).step_by(9).collect();
    let mut members: Vec<Value> = picks.iter().rev().map(|&i| json!(want[i].0)).collect();
    members.push(json!("racer:nobody"));
    let (status, body) = d
        .post(
            &format!("/v1/boards/{board}/members:lookup"),
            json!({"members": members}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let expected: Vec<(String, f64, u64)> = picks
        .iter()
        .map(|&i| (want[i].0.clone(), want[i].1, i as u64 + 1))
        .collect();
    assert_eq!(listed(&body["entries"]), expected, "{board} lookup");
    assert_eq!(body["not_found"], json!(["racer:nobody"]));

    // A walk of deep pages: the whole order once, ranks 1..=total.
    let mut walked = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(c) => format!("/v1/boards/{board}/entries?limit=37&after={c}"),
            None => format!("/v1/boards/{board}/entries?limit=37"),
        };
        let (status, body) = d.get(&path).await;
        assert_eq!(status, 200, "{body}");
        walked.extend(listed(&body["entries"]));
        match body["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(walked, ranked(&want, 0, total), "{board} pages");
}

/// A board fed by like events: a target reaches its count when the like
/// that made it lands (the events script moves the board in the target's
/// slot), so equal counts rank by whose came first; an unlike takes a
/// target back down, and its next like reaches the count again, later.
async fn check_events(d: &Deployment) {
    let mut oracle = Oracle::default();
    let mut counts: HashMap<String, f64> = HashMap::new();
    let mut like = |target: String, actor: String, kind: &'static str| {
        let id = format!("{kind}-{actor}-{target}");
        let delta = if kind == "like" { 1.0 } else { -1.0 };
        let count = counts.entry(target.clone()).or_insert(0.0);
        *count += delta;
        oracle.wrote(&target, *count);
        (
            json!({"id": id, "type": kind, "actor": actor, "target": target}),
            target,
        )
    };
    let mut events = Vec::new();
    for round in 0..3u64 {
        for i in 0..30u64 {
            let n = (i * 7 + round * 11) % 30;
            if round > 0 && n % 3 == 0 {
                continue;
            }
            events.push(like(name(n), format!("fan:{round}"), "like"));
        }
    }
    events.push(like(name(1), "fan:0".into(), "unlike"));
    events.push(like(name(1), "fan:9".into(), "like"));
    for (event, target) in events {
        let (status, body) = d.post("/v1/events", event).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["results"][0]["applied"], true, "{target}: {body}");
    }
    let want = oracle.order(false);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = d.get("/v1/boards/liked/top?limit=100").await;
        assert_eq!(status, 200, "{body}");
        if listed(&body["entries"]) == ranked(&want, 0, want.len()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the liked board never matched the oracle: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (i, (m, _)) in want.iter().enumerate() {
        let (_, body) = d.get(&format!("/v1/boards/liked/members/{}", enc(m))).await;
        assert_eq!(
            body["rank"].as_u64(),
            Some(i as u64 + 1),
            "liked {m}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_achievers_rank_first_on_the_embedded_store() {
    let _serial = SERIAL.lock().await;
    let d = Deployment::embedded("ties", BOARDS).await;
    check(&d, "race", false).await;
    check(&d, "laps", true).await;
    check_events(&d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_achievers_rank_first_on_a_redis_cluster() {
    let _serial = SERIAL.lock().await;
    let d = Deployment::redis("ties", BOARDS).await;
    check(&d, "race", false).await;
    check(&d, "laps", true).await;
    check_events(&d).await;
}
