//! The list endpoints end to end against a brute-force oracle, shared by
//! the embedded-store test (`durable.rs`) and the Redis Cluster test
//! (`cluster.rs`), which run it against a gateway process on a fresh
//! `global` board (100 shards, desc, default op `incr`).
//!
//! `POST .../scores:batch` seeds the board and then sends batches of
//! good and bad writes (bad scores and members, an idempotency conflict,
//! repeats of a key, the whole batch sent again); each good write must be
//! applied exactly once, which the oracle and the lookups check.
//! `POST .../members:lookup` of random lists (known members over many
//! shards, unknown ones, repeats) must equal the oracle's ranks, scores
//! and percentiles; so must `GET .../members/{m}`. Bad input is 400
//! naming the field.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::{enc, oracle};

/// POSTs `body` (sent as is) to `path`: status and JSON body.
async fn post(client: &reqwest::Client, base: &str, path: &str, body: String) -> (u16, Value) {
    let r = client
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = r.status().as_u16();
    let bytes = r.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// 100 x members strictly worse / total, by brute force.
fn percentile(scores: &HashMap<String, f64>, s: f64) -> f64 {
    let worse = scores.values().filter(|&&o| o < s).count();
    100.0 * worse as f64 / scores.len() as f64
}

/// Runs the scenario against the gateway at `base`.
pub async fn run(client: &reqwest::Client, base: &str, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut scores: HashMap<String, f64> = HashMap::new();
    let batch = "/v1/boards/global/scores:batch";
    let lookup = "/v1/boards/global/members:lookup";

    // Seed 300 members in three batches, with few distinct scores (ties).
    for round in 0..3 {
        let writes: Vec<Value> = (0..100)
            .map(|i| {
                let m = format!("user:{}", round * 100 + i);
                let v = f64::from(rng.gen_range(0..50));
                *scores.entry(m.clone()).or_insert(0.0) += v;
                json!({"member": m, "score": v})
            })
            .collect();
        let (status, body) =
            post(client, base, batch, json!({ "writes": writes }).to_string()).await;
        assert_eq!(status, 200, "seed batch: {body}");
        for (w, r) in writes
            .iter()
            .zip(body["results"].as_array().expect("results"))
        {
            let m = w["member"].as_str().expect("member");
            assert_eq!(r["member"], m, "{r}");
            assert_eq!(r["applied"], true, "{r}");
            assert_eq!(r["score"].as_f64(), Some(scores[m]), "{r}");
        }
    }

    // Good and bad writes in one batch: each good one applies once.
    let mixed = json!({"writes": [
        {"member": "user:1", "score": 5, "idempotency_key": "mix-1"},
        {"member": "user:2", "score": "x", "idempotency_key": "mix-2"},
        {"member": "", "score": 1},
        {"member": "user:3", "score": 1e300},
        {"member": "user:1", "score": 5, "idempotency_key": "mix-1"},
        {"member": "user:1", "score": 6, "idempotency_key": "mix-1"},
        {"member": "user:4", "score": 70, "op": "set", "idempotency_key": "mix-4"},
        {"member": "user:5", "score": 3, "op": "sideways"},
        {"member": "new:1", "score": 12, "idempotency_key": "mix-n1"},
        {"member": "user:6", "score": 2, "idempotency_key": "mix-6"}
    ]});
    let (status, first) = post(client, base, batch, mixed.to_string()).await;
    assert_eq!(status, 200, "mixed batch: {first}");
    *scores.get_mut("user:1").expect("seeded") += 5.0;
    scores.insert("user:4".into(), 70.0);
    scores.insert("new:1".into(), 12.0);
    *scores.get_mut("user:6").expect("seeded") += 2.0;
    let results = first["results"].as_array().expect("results").clone();
    assert_eq!(results.len(), 10, "one result per write: {first}");
    let field = |r: &Value| r["error"]["field"].as_str().map(String::from);
    let code = |r: &Value| r["error"]["code"].as_str().map(String::from);
    assert_eq!(results[0]["applied"], true);
    assert_eq!(results[0]["score"].as_f64(), Some(scores["user:1"]));
    assert_eq!(field(&results[1]).as_deref(), Some("writes[1].score"));
    assert_eq!(field(&results[2]).as_deref(), Some("writes[2].member"));
    assert_eq!(field(&results[3]).as_deref(), Some("writes[3].score"));
    assert_eq!(results[4]["applied"], false, "a repeat: {}", results[4]);
    assert_eq!(
        results[4]["score"], results[0]["score"],
        "the first outcome"
    );
    assert_eq!(code(&results[5]).as_deref(), Some("idempotency_conflict"));
    assert_eq!(
        field(&results[5]).as_deref(),
        Some("writes[5].idempotency_key")
    );
    assert_eq!(results[6]["score"].as_f64(), Some(70.0));
    assert_eq!(code(&results[7]).as_deref(), Some("invalid_op"));
    assert_eq!(results[8]["applied"], true);
    assert_eq!(results[9]["applied"], true);
    // The same batch again: the keyed writes answer their first outcome.
    let (status, again) = post(client, base, batch, mixed.to_string()).await;
    assert_eq!(status, 200, "{again}");
    for i in [0, 4, 6, 8, 9] {
        let r = &again["results"][i];
        assert_eq!(r["applied"], false, "write {i} sent again: {r}");
        assert_eq!(r["score"], results[i]["score"], "write {i} sent again");
    }
    assert_eq!(
        code(&again["results"][5]).as_deref(),
        Some("idempotency_conflict")
    );

    // Lookups of random lists against the oracle.
    let expected = oracle(&scores);
    let known: Vec<&String> = scores.keys().collect();
    for round in 0..12 {
        let size = rng.gen_range(1..=100);
        let mut asked: Vec<String> = Vec::with_capacity(size);
        for _ in 0..size {
            match rng.gen_range(0..10) {
                0 => asked.push(format!("ghost:{}", rng.gen_range(0..5))),
                1 if !asked.is_empty() => asked.push(asked[rng.gen_range(0..asked.len())].clone()),
                _ => asked.push(known[rng.gen_range(0..known.len())].clone()),
            }
        }
        let (status, body) = post(
            client,
            base,
            lookup,
            json!({ "members": asked }).to_string(),
        )
        .await;
        assert_eq!(status, 200, "lookup {round}: {body}");
        let mut distinct: Vec<&String> = Vec::new();
        for m in &asked {
            if !distinct.contains(&m) {
                distinct.push(m);
            }
        }
        let want: Vec<(u64, String, f64, f64)> = expected
            .iter()
            .filter(|(_, m, _)| distinct.contains(&m))
            .map(|(r, m, s)| (*r, m.clone(), *s, percentile(&scores, *s)))
            .collect();
        let got: Vec<(u64, String, f64, f64)> = body["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| {
                assert_eq!(e["total"].as_u64(), Some(scores.len() as u64), "{e}");
                (
                    e["rank"].as_u64().expect("rank"),
                    e["member"].as_str().expect("member").to_string(),
                    e["score"].as_f64().expect("score"),
                    e["percentile"].as_f64().expect("percentile"),
                )
            })
            .collect();
        assert_eq!(got.len(), want.len(), "lookup {round}: {body}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((g.0, &g.1, g.2), (w.0, &w.1, w.2), "lookup {round}");
            assert!(
                (g.3 - w.3).abs() < 1e-9,
                "percentile of {}: {g:?} {w:?}",
                g.1
            );
        }
        let missing: Vec<&str> = distinct
            .iter()
            .filter(|m| !scores.contains_key(m.as_str()))
            .map(|m| m.as_str())
            .collect();
        let not_found: Vec<&str> = body["not_found"]
            .as_array()
            .expect("not_found")
            .iter()
            .map(|v| v.as_str().expect("a member"))
            .collect();
        assert_eq!(
            not_found, missing,
            "lookup {round}: unknown members apart, once each"
        );
    }

    // The single member answer carries the same percentile.
    for (rank, m, s) in expected.iter().step_by(37) {
        let r = client
            .get(format!("{base}/v1/boards/global/members/{}", enc(m)))
            .send()
            .await
            .expect("GET member");
        let body: Value = r.json().await.expect("member body");
        assert_eq!(body["rank"].as_u64(), Some(*rank), "{body}");
        let p = body["percentile"].as_f64().expect("percentile");
        assert!((p - percentile(&scores, *s)).abs() < 1e-9, "{m}: {body}");
    }

    // Bad input: 400 naming the field.
    let too_many: Vec<String> = (0..101).map(|i| format!("user:{i}")).collect();
    let writes_1001: Vec<Value> = (0..1001)
        .map(|i| json!({"member": format!("m{i}"), "score": 1}))
        .collect();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            lookup,
            json!({ "members": too_many }).to_string(),
            "members",
        ),
        (lookup, json!({"members": []}).to_string(), "members"),
        (lookup, json!({"members": "user:1"}).to_string(), "members"),
        (lookup, json!({}).to_string(), "members"),
        (
            lookup,
            json!({"members": ["user:1", 7]}).to_string(),
            "members[1]",
        ),
        (
            lookup,
            json!({"members": ["user:1", "a\u{200b}b"]}).to_string(),
            "members[1]",
        ),
        (
            lookup,
            json!({"members": ["user:1"], "period": "fortnightly"}).to_string(),
            "period",
        ),
        (
            lookup,
            json!({"members": ["user:1"], "limit": 3}).to_string(),
            "limit",
        ),
        (
            batch,
            json!({ "writes": writes_1001 }).to_string(),
            "writes",
        ),
        (batch, json!({"writes": []}).to_string(), "writes"),
        (
            batch,
            json!({"writes": {"member": "a"}}).to_string(),
            "writes",
        ),
        (
            batch,
            json!({"writes": [{"member": "a", "score": 1}, "b"]}).to_string(),
            "writes[1]",
        ),
        (
            batch,
            json!({"writes": [{"member": "a", "score": 1, "scroe": 2}]}).to_string(),
            "writes[0].scroe",
        ),
        (
            "/v1/boards/UPPER/members:lookup",
            json!({"members": ["a"]}).to_string(),
            "board",
        ),
        (
            "/v1/boards/no-such/scores:batch",
            json!({"writes": [{"member": "a", "score": 1}]}).to_string(),
            "board",
        ),
    ];
    for (path, body, field) in cases {
        let (status, answer) = post(client, base, path, body.clone()).await;
        assert!(
            (400..500).contains(&status),
            "{path} {body:.80}: {status} {answer}"
        );
        assert_eq!(
            answer["error"]["field"], field,
            "{path} {body:.80}: {answer}"
        );
    }
    let (status, answer) = post(client, base, "/v1/boards/UPPER/scores:batch", "{}".into()).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("invalid_board"))
    );
    let (status, answer) = post(
        client,
        base,
        "/v1/boards/no-such/members:lookup",
        "{}".into(),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("unknown_board"))
    );
}
