//! The embedded default loses nothing: the gateway binary on the durable
//! embedded store, under concurrent keyed writes, killed with SIGKILL at a
//! random moment and started again on the same data directory, several
//! times. Afterwards every acknowledged write is present exactly once,
//! every unacknowledged write retried with its key applies once, and
//! `/top` and sampled ranks equal a brute-force oracle.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use standings_test_support::process::{free_loopback_port, Process, ScratchDir};
use support::{enc, entries, oracle};
use tokio::sync::Mutex;

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The embedded example with a private data dir, fast ticks and no static
/// files.
fn write_config(dir: &Path) -> PathBuf {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/embedded.toml");
    let text = std::fs::read_to_string(&example).expect("the embedded example");
    let data = format!("{:?}", dir.join("data").display().to_string());
    let text = text
        .replace(
            "data_dir = \"./standings-data\"",
            &format!("data_dir = {data}"),
        )
        .replace(
            "static_dir = \"target/standings-static\"",
            "static_dir = \"\"",
        );
    assert!(text.contains(&data), "the example names data_dir");
    let path = dir.join("standings.toml");
    std::fs::write(&path, text).expect("write the config");
    path
}

/// Starts the gateway binary and waits until `/readyz` answers 200.
async fn start(dir: &Path, config: &Path, client: &reqwest::Client) -> (Process, String) {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_standings-gateway"));
    for _ in 0..3 {
        let listen = format!("127.0.0.1:{}", free_loopback_port());
        let mut cmd = Command::new(&bin);
        cmd.arg("--config")
            .arg(config)
            .arg("--listen")
            .arg(&listen)
            .env("NO_COLOR", "1");
        let mut gateway = Process::spawn("gateway", cmd, dir);
        let base = format!("http://{listen}");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = gateway.exited() {
                if status.code() == Some(71) {
                    break; // the port was taken: try another
                }
                panic!("the gateway exited ({status}) before it was ready");
            }
            let ready = client.get(format!("{base}/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return (gateway, base);
            }
            assert!(
                Instant::now() < deadline,
                "the gateway was not ready in time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("no free port in 3 tries");
}

/// The JSON body of `request`'s answer.
async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// One keyed incr: member, delta, key.
#[derive(Clone)]
struct Planned {
    member: String,
    delta: i64,
    key: String,
}

/// Sends `plan` over 8 connections until the server stops answering;
/// returns the indexes acknowledged (200) and those that were not.
async fn send_until_killed(
    client: &reqwest::Client,
    base: &str,
    plan: &[Planned],
) -> (Vec<usize>, Vec<usize>) {
    let next = Arc::new(Mutex::new(0usize));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let lost = Arc::new(Mutex::new(Vec::new()));
    let plan = Arc::new(plan.to_vec());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (next, acked, lost, plan) = (next.clone(), acked.clone(), lost.clone(), plan.clone());
        let client = client.clone();
        let url = format!("{base}/v1/boards/global/scores");
        tasks.push(tokio::spawn(async move {
            loop {
                let i = {
                    let mut n = next.lock().await;
                    if *n == plan.len() {
                        return;
                    }
                    *n += 1;
                    *n - 1
                };
                let w = &plan[i];
                let r = client
                    .post(&url)
                    .header("Idempotency-Key", &w.key)
                    .json(&json!({"member": w.member, "score": w.delta, "op": "incr"}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => acked.lock().await.push(i),
                    _ => lost.lock().await.push(i),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().await.clone();
    let lost = lost.lock().await.clone();
    (acked, lost)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_at_random_moments() {
    let scratch = ScratchDir::new("durable-crash");
    let config = write_config(scratch.path());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut rng = StdRng::seed_from_u64(20261201);
    let members = 500;
    let mut expected: HashMap<String, f64> = HashMap::new();
    let mut total_writes = 0u64;
    for round in 0..3 {
        let plan: Vec<Planned> = (0..3_000)
            .map(|i| Planned {
                member: format!("user:{}", rng.gen_range(0..members)),
                delta: rng.gen_range(1..100),
                key: format!("r{round}-w{i}"),
            })
            .collect();
        let (mut gateway, base) = start(scratch.path(), &config, &client).await;
        let kill_after = Duration::from_millis(rng.gen_range(100..900));
        let sender = {
            let (client, base, plan) = (client.clone(), base.clone(), plan.clone());
            tokio::spawn(async move { send_until_killed(&client, &base, &plan).await })
        };
        tokio::time::sleep(kill_after).await;
        gateway.kill();
        let (acked, lost) = sender.await.unwrap();
        eprintln!(
            "round {round}: killed after {kill_after:?}: {} acknowledged, {} not",
            acked.len(),
            lost.len()
        );
        assert!(
            !acked.is_empty(),
            "some writes were acknowledged before the kill"
        );

        // Restart on the same directory; every unacknowledged write is
        // retried with its key (over 8 connections, so the retries share
        // commits) and applies at most once in all.
        let (gateway, base) = start(scratch.path(), &config, &client).await;
        let retries: Vec<Planned> = lost.iter().map(|&i| plan[i].clone()).collect();
        let (_, failed) = send_until_killed(&client, &base, &retries).await;
        assert!(failed.is_empty(), "{} retries failed", failed.len());
        // Acknowledged writes repeated with their keys are repeats: they
        // were kept, and are not applied again.
        for &i in acked.iter().step_by(97) {
            let w = &plan[i];
            let r = json_of(
                client
                    .post(format!("{base}/v1/boards/global/scores"))
                    .header("Idempotency-Key", &w.key)
                    .json(&json!({"member": w.member, "score": w.delta, "op": "incr"})),
            )
            .await;
            assert_eq!(
                r["applied"], false,
                "{} was acknowledged, so it is kept",
                w.key
            );
        }
        for w in &plan {
            *expected.entry(w.member.clone()).or_default() += w.delta as f64;
        }
        total_writes += plan.len() as u64;

        // Every write exactly once: versions count writes, /top equals the
        // oracle, and sampled ranks are exact.
        let want = oracle(&expected);
        let deadline = Instant::now() + READY_TIMEOUT;
        let top = loop {
            let top = json_of(client.get(format!("{base}/v1/boards/global/top?limit=1000"))).await;
            if top["version"].as_u64() == Some(total_writes) {
                break top;
            }
            assert!(
                Instant::now() < deadline,
                "version {} never reached {total_writes} writes",
                top["version"]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(entries(&top), want, "round {round}: /top equals the oracle");
        for (rank, member, score) in want.iter().step_by(37) {
            let r = json_of(client.get(format!("{base}/v1/boards/global/members/{}", enc(member))))
                .await;
            assert_eq!(
                (r["rank"].as_u64(), r["score"].as_f64()),
                (Some(*rank), Some(*score)),
                "{member}"
            );
        }
        drop(gateway);
    }
}

/// Member metadata through the binary on the durable store: written with
/// scores, read back in top, the static file, around and the member
/// answer; and after a kill -9 and a restart on the same directory, read
/// back the same (the metas were committed with their writes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metas_round_trip_through_the_binary_and_survive_kill_9() {
    let scratch = ScratchDir::new("durable-meta");
    let config = write_config(scratch.path());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let (mut gateway, base) = start(scratch.path(), &config, &client).await;
    support::write_meta_members(&client, &base).await;
    support::check_meta_members(&client, &base, None).await;
    gateway.kill();
    let (gateway, base) = start(scratch.path(), &config, &client).await;
    support::check_meta_members(&client, &base, None).await;
    drop(gateway);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_and_an_unwritable_directory_are_refused_with_their_reasons() {
    let scratch = ScratchDir::new("durable-refusals");
    let config = write_config(scratch.path());
    let client = reqwest::Client::new();
    let (_first, _) = start(scratch.path(), &config, &client).await;

    // A second gateway on the same data_dir: refused, naming the file.
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_standings-gateway"));
    let listen = format!("127.0.0.1:{}", free_loopback_port());
    let out = Command::new(&bin)
        .arg("--config")
        .arg(&config)
        .arg("--listen")
        .arg(&listen)
        .output()
        .expect("run a second gateway");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "EX_TEMPFAIL: {stderr}");
    assert!(
        stderr.contains("standings.redb") && stderr.contains("in use by another process"),
        "{stderr}"
    );

    // A data_dir that cannot be created (a file stands in the way): 73.
    let blocker = scratch.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let data = format!("{:?}", scratch.path().join("data").display().to_string());
    let inside = format!("{:?}", blocker.join("data").display().to_string());
    let bad = scratch.path().join("bad.toml");
    std::fs::write(&bad, text.replace(&data, &inside)).unwrap();
    let out = Command::new(&bin)
        .arg("--config")
        .arg(&bad)
        .arg("--listen")
        .arg(&listen)
        .output()
        .expect("run a gateway on an unwritable dir");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(73), "EX_CANTCREAT: {stderr}");
    assert!(
        stderr.contains("not-a-dir"),
        "the message names the path: {stderr}"
    );
}

/// Runs `standings-gateway backup --to FILE` with `config`.
fn backup(config: &Path, listen: &str, to: &Path) -> String {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_standings-gateway"));
    let out = Command::new(bin)
        .arg("--config")
        .arg(config)
        .arg("--listen")
        .arg(listen)
        .arg("backup")
        .arg("--to")
        .arg(to)
        .output()
        .expect("run backup");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "backup failed: {text}");
    text
}

/// Starts a gateway on a copy of `backup` as its data and answers the
/// member's score there.
async fn restored_score(backup_file: &Path, label: &str, member: &str) -> Option<f64> {
    let scratch = ScratchDir::new(label);
    let config = write_config(scratch.path());
    std::fs::create_dir_all(scratch.path().join("data")).unwrap();
    std::fs::copy(backup_file, scratch.path().join("data/standings.redb")).unwrap();
    let client = reqwest::Client::new();
    let (_gateway, base) = start(scratch.path(), &config, &client).await;
    let r = client
        .get(format!("{base}/v1/boards/global/members/{}", enc(member)))
        .send()
        .await
        .unwrap();
    if r.status() == 404 {
        return None;
    }
    r.json::<Value>().await.unwrap()["score"].as_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_are_consistent_copies_while_serving_and_offline() {
    let scratch = ScratchDir::new("durable-backup");
    let config = write_config(scratch.path());
    let client = reqwest::Client::new();
    let (mut gateway, base) = start(scratch.path(), &config, &client).await;
    let listen = base.trim_start_matches("http://").to_string();
    let write = |member: &'static str, score: i64| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let r = client
                .post(format!("{base}/v1/boards/global/scores"))
                .json(&json!({"member": member, "score": score, "op": "set"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    write("user:1", 10).await;
    let online = scratch.path().join("online.redb");
    let said = backup(&config, &listen, &online);
    assert!(said.contains("while serving"), "{said}");
    write("user:2", 20).await; // after the backup: not in it
    gateway.kill();
    let offline = scratch.path().join("offline.redb");
    let said = backup(&config, &listen, &offline);
    assert!(said.contains("no gateway was running"), "{said}");

    assert_eq!(
        restored_score(&online, "restore-online", "user:1").await,
        Some(10.0)
    );
    assert_eq!(
        restored_score(&online, "restore-online-2", "user:2").await,
        None
    );
    assert_eq!(
        restored_score(&offline, "restore-offline", "user:2").await,
        Some(20.0)
    );
}

/// Sends `events` (one per request) over 8 connections until the server
/// stops answering; returns the indexes acknowledged (200) and not.
async fn send_events_until_killed(
    client: &reqwest::Client,
    base: &str,
    events: &[Value],
) -> (Vec<usize>, Vec<usize>) {
    let next = Arc::new(Mutex::new(0usize));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let lost = Arc::new(Mutex::new(Vec::new()));
    let events = Arc::new(events.to_vec());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (next, acked, lost, events) =
            (next.clone(), acked.clone(), lost.clone(), events.clone());
        let client = client.clone();
        let url = format!("{base}/v1/events");
        tasks.push(tokio::spawn(async move {
            loop {
                let i = {
                    let mut n = next.lock().await;
                    if *n == events.len() {
                        return;
                    }
                    *n += 1;
                    *n - 1
                };
                match client.post(&url).json(&events[i]).send().await {
                    Ok(r) if r.status() == 200 => acked.lock().await.push(i),
                    _ => lost.lock().await.push(i),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().await.clone();
    let lost = lost.lock().await.clone();
    (acked, lost)
}

/// The same for events: likes (each of its own actor and target pair, so
/// the cooldown never applies) and comments on the example's `videos`
/// board (a like weighs 2, a comment 3), killed at random moments. After
/// each restart every unacknowledged event is sent again: the like
/// counts and the board equal the oracle, and acknowledged events sent
/// again are repeats (`applied: false`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_kill_9_and_apply_once() {
    let scratch = ScratchDir::new("durable-events-crash");
    let config = write_config(scratch.path());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut rng = StdRng::seed_from_u64(20261202);
    let targets = 200;
    let mut likes: HashMap<String, u64> = HashMap::new();
    let mut scores: HashMap<String, f64> = HashMap::new();
    for round in 0..3 {
        let events: Vec<Value> = (0..2_000)
            .map(|i| {
                let target = format!("v:{}", rng.gen_range(0..targets));
                let kind = if rng.gen_bool(0.6) { "like" } else { "comment" };
                json!({"id": format!("r{round}-e{i}"), "type": kind,
                       "actor": format!("u:{round}-{i}"), "target": target})
            })
            .collect();
        let (mut gateway, base) = start(scratch.path(), &config, &client).await;
        let kill_after = Duration::from_millis(rng.gen_range(100..900));
        let sender = {
            let (client, base, events) = (client.clone(), base.clone(), events.clone());
            tokio::spawn(async move { send_events_until_killed(&client, &base, &events).await })
        };
        tokio::time::sleep(kill_after).await;
        gateway.kill();
        let (acked, lost) = sender.await.unwrap();
        eprintln!(
            "round {round}: killed after {kill_after:?}: {} events acknowledged, {} not",
            acked.len(),
            lost.len()
        );
        assert!(
            !acked.is_empty(),
            "some events were acknowledged before the kill"
        );
        let (gateway, base) = start(scratch.path(), &config, &client).await;
        let retries: Vec<Value> = lost.iter().map(|&i| events[i].clone()).collect();
        let (_, failed) = send_events_until_killed(&client, &base, &retries).await;
        assert!(failed.is_empty(), "{} retries failed", failed.len());
        for &i in acked.iter().step_by(53) {
            let r = json_of(client.post(format!("{base}/v1/events")).json(&events[i])).await;
            assert_eq!(
                r["results"][0]["applied"], false,
                "{} was acknowledged, so it is kept and not applied again",
                events[i]
            );
        }
        for e in &events {
            let target = e["target"].as_str().unwrap().to_string();
            let like = e["type"] == "like";
            if like {
                *likes.entry(target.clone()).or_default() += 1;
            }
            *scores.entry(target).or_default() += if like { 2.0 } else { 3.0 };
        }
        for t in 0..targets {
            let target = format!("v:{t}");
            let r = json_of(client.get(format!("{base}/v1/likes/{}", enc(&target)))).await;
            assert_eq!(
                r["likes"].as_u64(),
                Some(likes.get(&target).copied().unwrap_or(0)),
                "likes of {target} after round {round}"
            );
            let r = client
                .get(format!("{base}/v1/boards/videos/members/{}", enc(&target)))
                .send()
                .await
                .unwrap();
            let want = scores.get(&target).copied();
            let got = if r.status() == 404 {
                None
            } else {
                r.json::<Value>().await.unwrap()["score"].as_f64()
            };
            assert_eq!(got, want, "videos score of {target} after round {round}");
        }
        drop(gateway);
    }
}

/// Lookups of random lists and batches of good and bad writes through the
/// gateway process on the embedded store equal the oracle (the scenario
/// is `support/lists.rs`, shared with the Redis Cluster test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_and_batches_equal_the_oracle() {
    let scratch = ScratchDir::new("durable-lists");
    let config = write_config(scratch.path());
    let client = reqwest::Client::new();
    let (_gateway, base) = start(scratch.path(), &config, &client).await;
    support::lists::run(&client, &base, 14).await;
}
