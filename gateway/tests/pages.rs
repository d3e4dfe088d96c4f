//! Deep pages (`GET /v1/boards/{board}/entries`) through real processes, on
//! both stores: the gateway binary on the durable embedded store, and the
//! gateway with a `standings-agent --role all` on a real Redis Cluster.
//!
//! - a walk of a 10,000-member board with many ties (20 members a score on
//!   average), from the first page to the last, equals the brute-force
//!   oracle's full order with its competition ranks: nothing skipped,
//!   nothing repeated, `next` null only on the last page; with two page
//!   sizes, and on an ascending board;
//! - a walk of a closed `every:5s` period, page after small page, while
//!   writes land in the current period and in `all` at full speed, equals
//!   the frozen oracle built from what the store answered to each write;
//!   a walk of the live `all` board meanwhile never shows an entry twice
//!   (the writes only raise scores, so a seen member can only move up,
//!   behind the cursor);
//! - bad input: a cursor with one character changed, truncated, garbage,
//!   of another board, of another period, and `limit` 0, too big or not a
//!   number: each a 400 JSON body naming the field.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::deploy::{get, post_score, Deployment};
use support::enc;
use tokio::sync::Mutex;

const POLL: Duration = Duration::from_millis(25);

/// One deployment at a time: the Redis one runs a cluster and two processes.
static SERIAL: Mutex<()> = Mutex::const_new(());

const MEMBERS: u64 = 10_000;

const BOARDS: &str = r#"
[[boards]]
name = "deep"
shards = 8
groups = 2
top_k = 100

[[boards]]
name = "laps"
order = "asc"
shards = 4
groups = 2
top_k = 100

[[boards]]
name = "rounds"
periods = ["all", "every:5s"]
closed_retention = "1h"
shards = 4
groups = 2
top_k = 100
"#;

/// `set`s every (member, score) of `writes` on `board`, 32 at a time;
/// answers each write's reported scores, in `writes` order.
async fn set_all(
    d: &Deployment,
    board: &str,
    writes: Vec<(String, f64)>,
) -> Vec<HashMap<String, f64>> {
    let writes = Arc::new(writes);
    let lanes = 32;
    let mut tasks = Vec::new();
    for lane in 0..lanes {
        let (client, base, writes) = (d.client.clone(), d.base.clone(), writes.clone());
        let board = board.to_string();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in (lane..writes.len()).step_by(lanes) {
                let (member, score) = &writes[i];
                out.push((
                    i,
                    post_score(&client, &base, &board, member, "set", *score).await,
                ));
            }
            out
        }));
    }
    let mut answers = vec![HashMap::new(); writes.len()];
    for task in tasks {
        for (i, scores) in task.await.unwrap() {
            answers[i] = scores;
        }
    }
    answers
}

/// The board's total order (score by `desc`, ties by member bytes the same
/// way) with competition ranks: the oracle.
fn oracle(scores: &HashMap<String, f64>, desc: bool) -> Vec<(u64, String, f64)> {
    let mut sorted: Vec<(&String, f64)> = scores.iter().map(|(m, s)| (m, *s)).collect();
    sorted.sort_by(|a, b| {
        let natural =
            a.1.total_cmp(&b.1)
                .then_with(|| a.0.as_bytes().cmp(b.0.as_bytes()));
        if desc {
            natural.reverse()
        } else {
            natural
        }
    });
    let mut out: Vec<(u64, String, f64)> = Vec::with_capacity(sorted.len());
    for (i, (m, s)) in sorted.iter().enumerate() {
        let rank = match out.last() {
            Some(prev) if prev.2 == *s => prev.0,
            _ => i as u64 + 1,
        };
        out.push((rank, (*m).clone(), *s));
    }
    out
}

/// `(rank, member, score)` of an entries page.
fn entries(body: &Value) -> Vec<(u64, String, f64)> {
    support::entries(body)
}

/// Walks `board` (`query` adds e.g. `&period=...`) with `limit`; answers
/// every entry in walk order. Asserts that only the last page may be short
/// and that it alone has `next: null`.
async fn walk(
    client: &reqwest::Client,
    base: &str,
    board: &str,
    limit: usize,
    query: &str,
) -> Vec<(u64, String, f64)> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    for pages in 0.. {
        assert!(pages < 100_000, "the walk of {board} ends");
        let cursor = after
            .as_ref()
            .map(|c| format!("&after={c}"))
            .unwrap_or_default();
        let path = format!("/v1/boards/{board}/entries?limit={limit}{query}{cursor}");
        let (status, body) = get(client, base, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        let page = entries(&body);
        assert!(page.len() <= limit, "{path}: {} entries", page.len());
        all.extend(page.iter().cloned());
        match &body["next"] {
            Value::Null => return all,
            Value::String(next) => {
                assert_eq!(page.len(), limit, "{path}: a short page with a next");
                after = Some(next.clone());
            }
            other => panic!("{path}: next is {other}"),
        }
    }
    unreachable!()
}

/// The 10,000-member board and an ascending one, walked whole.
async fn whole_boards_equal_the_oracle(d: &mut Deployment) {
    let mut scores: HashMap<String, f64> = HashMap::new();
    let mut writes = Vec::new();
    for i in 0..MEMBERS {
        // 500 distinct scores, about 20 members each, some negative.
        let score = (i * 7919 % 500) as f64 - 50.0;
        let member = format!("user:{i}");
        scores.insert(member.clone(), score);
        writes.push((member, score));
    }
    let started = Instant::now();
    set_all(d, "deep", writes).await;
    println!(
        "seeded {MEMBERS} members through the gateway in {:?}",
        started.elapsed()
    );
    d.assert_running();
    let want = oracle(&scores, true);
    for limit in [1000, 337] {
        let started = Instant::now();
        let got = walk(&d.client, &d.base, "deep", limit, "").await;
        println!(
            "walked {} entries at limit {limit} in {:?} ({} pages)",
            got.len(),
            started.elapsed(),
            got.len().div_ceil(limit)
        );
        assert_eq!(got.len(), want.len(), "entries walked at limit {limit}");
        let distinct: HashSet<&String> = got.iter().map(|e| &e.1).collect();
        assert_eq!(
            distinct.len(),
            got.len(),
            "no member twice at limit {limit}"
        );
        assert_eq!(got, want, "the walk at limit {limit} is the oracle's order");
    }
    // The first page is the TOP-100 the snapshots serve, once merged.
    let (_, first) = d.get("/v1/boards/deep/entries?limit=100").await;
    assert_eq!(entries(&first), want[..100].to_vec(), "first page");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, top) = d.get("/v1/boards/deep/top?limit=100").await;
        if entries(&top) == entries(&first) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "top never matched the first page: {top}"
        );
        tokio::time::sleep(POLL).await;
    }

    let mut laps: HashMap<String, f64> = HashMap::new();
    let mut writes = Vec::new();
    for i in 0..300u64 {
        let score = (i * 31 % 17) as f64 + 0.5;
        laps.insert(format!("rider-{i}"), score);
        writes.push((format!("rider-{i}"), score));
    }
    set_all(d, "laps", writes).await;
    let got = walk(&d.client, &d.base, "laps", 7, "").await;
    assert_eq!(got, oracle(&laps, false), "an ascending board's walk");
}

/// Sleeps until 150 ms after the next multiple of `every_ms`.
async fn after_boundary(every_ms: u64) {
    let now = standings_core::store::now_ms();
    let next = (now / every_ms + 1) * every_ms + 150;
    tokio::time::sleep(Duration::from_millis(next - now)).await;
}

/// A closed period walked while writes land in the current one.
async fn frozen_period_while_writing(d: &mut Deployment) {
    after_boundary(5000).await;
    let mut writes = Vec::new();
    for i in 0..400u64 {
        writes.push((format!("p:{i}"), (i * 13 % 40) as f64));
    }
    let answers = set_all(d, "rounds", writes.clone()).await;
    // The frozen oracle: what the store said each write did in the
    // every:5s period it landed in (the first one, unless a write crossed
    // the boundary, which then lands in the next one and is not in it).
    let period_of = |scores: &HashMap<String, f64>| {
        scores
            .keys()
            .find(|id| id.starts_with("every:5s/"))
            .cloned()
            .expect("an every:5s period")
    };
    let p1 = period_of(&answers[0]);
    let mut frozen: HashMap<String, f64> = HashMap::new();
    for ((member, _), scores) in writes.iter().zip(&answers) {
        if period_of(scores) == p1 {
            frozen.insert(member.clone(), scores[&p1]);
        }
    }
    assert!(frozen.len() > 300, "most writes in the first window");
    let want = oracle(&frozen, true);
    // Wait for the period to close, then write hard while walking it.
    let tz = standings_core::Timezone::utc();
    let closed = standings_core::Period::parse_id(&p1, &tz).unwrap();
    let wait = (closed.ends_ms.unwrap() - standings_core::store::now_ms_i64()).max(0) as u64 + 100;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for lane in 0..4u64 {
        let (client, base, stop) = (d.client.clone(), d.base.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Members of the closed period move up, new ones arrive.
                let member = if n.is_multiple_of(2) {
                    format!("p:{}", (n * 7 + lane) % 400)
                } else {
                    format!("new:{lane}:{n}")
                };
                post_score(&client, &base, "rounds", &member, "incr", 3.0).await;
                n += 1;
            }
            n
        }));
    }
    let query = format!("&period={}", enc(&p1));
    let mut walks = 0;
    let (mut live_walks, mut live_entries) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(4);
    while walks < 3 || Instant::now() < deadline {
        let got = walk(&d.client, &d.base, "rounds", 9, &query).await;
        assert_eq!(got, want, "walk {walks} of the closed period {p1}");
        walks += 1;
        // The live all-time board: members move up only, so none twice.
        let live = walk(&d.client, &d.base, "rounds", 50, "").await;
        let distinct: HashSet<&String> = live.iter().map(|e| &e.1).collect();
        assert_eq!(
            distinct.len(),
            live.len(),
            "a live walk shows no member twice"
        );
        live_walks += 1;
        live_entries += live.len();
    }
    stop.store(true, Ordering::Relaxed);
    let mut written = 0;
    for w in writers {
        written += w.await.unwrap();
    }
    assert!(written > 0, "writes went on during the walks");
    println!(
        "{walks} walks of the closed period and {live_walks} live walks ({live_entries} entries) during {written} writes"
    );
    d.assert_running();
    bad_input(d, &p1).await;
}

async fn bad_input(d: &Deployment, p1: &str) {
    let (_, first) = d.get("/v1/boards/deep/entries?limit=5").await;
    let cursor = first["next"].as_str().expect("a next cursor").to_string();
    let mut flipped: Vec<char> = cursor.chars().collect();
    let at = flipped.len() / 2;
    flipped[at] = if flipped[at] == 'A' { 'B' } else { 'A' };
    let flipped: String = flipped.into_iter().collect();
    let (_, closed) = d
        .get(&format!(
            "/v1/boards/rounds/entries?limit=5&period={}",
            enc(p1)
        ))
        .await;
    let closed_cursor = closed["next"].as_str().expect("a next cursor").to_string();
    let truncated = &cursor[..cursor.len() - 3];
    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!("/v1/boards/deep/entries?after={flipped}"),
            "invalid_cursor",
            "after",
        ),
        (
            format!("/v1/boards/deep/entries?after={truncated}"),
            "invalid_cursor",
            "after",
        ),
        (
            "/v1/boards/deep/entries?after=garbage!".into(),
            "invalid_cursor",
            "after",
        ),
        (
            "/v1/boards/deep/entries?after=".into(),
            "invalid_cursor",
            "after",
        ),
        (
            "/v1/boards/deep/entries?after=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                .into(),
            "invalid_cursor",
            "after",
        ),
        (
            format!("/v1/boards/laps/entries?after={cursor}"),
            "invalid_cursor",
            "after",
        ),
        (
            format!("/v1/boards/rounds/entries?after={closed_cursor}"),
            "invalid_cursor",
            "after",
        ),
        (
            format!("/v1/boards/rounds/entries?period=every:5s&after={closed_cursor}"),
            "invalid_cursor",
            "after",
        ),
        (
            "/v1/boards/deep/entries?limit=0".into(),
            "invalid_parameter",
            "limit",
        ),
        (
            "/v1/boards/deep/entries?limit=1001".into(),
            "invalid_parameter",
            "limit",
        ),
        (
            "/v1/boards/deep/entries?limit=ten".into(),
            "invalid_parameter",
            "limit",
        ),
        (
            "/v1/boards/deep/entries?limit=-1".into(),
            "invalid_parameter",
            "limit",
        ),
        (
            "/v1/boards/deep/entries?offset=5".into(),
            "unknown_parameter",
            "offset",
        ),
        (
            "/v1/boards/deep/entries?period=monthly".into(),
            "invalid_period",
            "period",
        ),
    ];
    for (path, code, field) in cases {
        let (status, body) = d.get(&path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
        assert_eq!(body["error"]["field"], field, "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{path}: {body}"
        );
    }
    // The untouched cursors still work where they belong.
    let (status, body) = d
        .get(&format!("/v1/boards/deep/entries?limit=5&after={cursor}"))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = d.get("/v1/boards/nope/entries").await;
    assert_eq!(status, 404, "an unknown board");
}

async fn scenario(mut d: Deployment) {
    whole_boards_equal_the_oracle(&mut d).await;
    frozen_period_while_writing(&mut d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_pages_on_the_embedded_store() {
    let _one = SERIAL.lock().await;
    scenario(Deployment::embedded("pages", BOARDS).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_pages_on_a_redis_cluster() {
    let _one = SERIAL.lock().await;
    scenario(Deployment::redis("pages", BOARDS).await).await;
}
