//! HTTP load with wrk (Debian's `wrk`): the same tool, threads,
//! connections and duration on both sides of a comparison.
//!
//! The Lua scripts live in `loadtest/wrk/` and are compiled in: the run
//! writes each scenario followed by `report.lua` (the `done()` hook that
//! prints one `WRK_JSON {...}` line) into its work directory and points wrk
//! at that file, so the results carry exact p50/p99 instead of wrk's
//! rounded human-readable table.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

use super::stats::Load;

/// wrk's `done()` hook, appended to every scenario.
const REPORT: &str = include_str!("../../wrk/report.lua");

/// The scenarios, by file name.
const SCENARIOS: [(&str, &str); 6] = [
    ("static.lua", include_str!("../../wrk/static.lua")),
    ("rank.lua", include_str!("../../wrk/rank.lua")),
    ("lookup.lua", include_str!("../../wrk/lookup.lua")),
    ("around.lua", include_str!("../../wrk/around.lua")),
    ("write.lua", include_str!("../../wrk/write.lua")),
    ("like.lua", include_str!("../../wrk/like.lua")),
];

/// Writes every scenario with the report hook appended into `dir`; returns
/// nothing, the paths are [`script_path`].
pub fn write_scripts(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, body) in SCENARIOS {
        let path = dir.join(name);
        std::fs::write(&path, format!("{body}\n{REPORT}"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Where [`write_scripts`] put scenario `name`.
pub fn script_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// One bounded wrk run.
#[derive(Debug, Clone)]
pub struct Wrk {
    /// wrk threads (`-t`).
    pub threads: usize,
    /// Open connections (`-c`).
    pub connections: usize,
    /// How long (`-d`).
    pub duration: Duration,
    /// The Lua script (`-s`).
    pub script: PathBuf,
    /// The URL; only loopback targets.
    pub url: String,
    /// Arguments passed to the script's `init(args)` (after `--`).
    pub script_args: Vec<String>,
}

impl Wrk {
    /// The command line, as run and as recorded in `results.json`.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec![
            "wrk".to_string(),
            format!("-t{}", self.threads),
            format!("-c{}", self.connections),
            format!("-d{}s", self.duration.as_secs().max(1)),
            "--timeout".into(),
            "2s".into(),
            "-s".into(),
            self.script.display().to_string(),
            self.url.clone(),
        ];
        if !self.script_args.is_empty() {
            argv.push("--".into());
            argv.extend(self.script_args.iter().cloned());
        }
        argv
    }

    /// Runs wrk (killed if it outlives its duration by 30 s, or when the run
    /// is dropped) and parses its report.
    pub async fn run(&self) -> anyhow::Result<Load> {
        Ok(self.run_with_output().await?.0)
    }

    /// [`run`](Self::run), also answering wrk's output, for the lines a
    /// scenario prints itself ([`parse_likes`]).
    pub async fn run_with_output(&self) -> anyhow::Result<(Load, String)> {
        let target = self.url.trim_start_matches("http://");
        if !(target.starts_with("127.") || target.starts_with("localhost")) {
            bail!("wrk only loads loopback targets, not {}", self.url);
        }
        let argv = self.argv();
        let output = super::run_bounded(&argv, self.duration + Duration::from_secs(30)).await?;
        let load = parse_report(&output).with_context(|| format!("wrk output:\n{output}"))?;
        Ok((load, output))
    }
}

/// How `like.lua` tallied the answers (its `WRK_LIKES` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct LikesTally {
    /// Answers read.
    pub answered: u64,
    /// Of which status 200.
    pub ok: u64,
    /// Of which `"applied":true`.
    pub applied: u64,
}

impl LikesTally {
    /// Answers that were not 200 (a 202 `queued`, a 503, a 429...).
    pub fn not_ok(&self) -> u64 {
        self.answered.saturating_sub(self.ok)
    }
}

/// Finds the `WRK_LIKES` line that `like.lua` prints after the report.
pub fn parse_likes(output: &str) -> anyhow::Result<LikesTally> {
    let line = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("WRK_LIKES "))
        .context("no WRK_LIKES line: was like.lua the script?")?;
    serde_json::from_str(line).context("parsing the WRK_LIKES line")
}

/// What `report.lua` prints.
#[derive(Debug, Deserialize)]
struct Report {
    requests: f64,
    duration_us: f64,
    errors: Errors,
    latency_us: Latency,
}

#[derive(Debug, Deserialize)]
struct Errors {
    connect: f64,
    read: f64,
    write: f64,
    status: f64,
    timeout: f64,
}

#[derive(Debug, Deserialize)]
struct Latency {
    p50: f64,
    p99: f64,
}

/// Finds the `WRK_JSON` line in wrk's output and turns it into a [`Load`].
/// A run where more than 1% of requests failed is an error: its rate would
/// measure error answers, not the service.
pub fn parse_report(output: &str) -> anyhow::Result<Load> {
    let line = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("WRK_JSON "))
        .context("no WRK_JSON line: was report.lua appended to the script?")?;
    let r: Report = serde_json::from_str(line).context("parsing the WRK_JSON line")?;
    let errors =
        r.errors.connect + r.errors.read + r.errors.write + r.errors.status + r.errors.timeout;
    if r.requests <= 0.0 || r.duration_us <= 0.0 {
        bail!("wrk completed no request");
    }
    if errors > r.requests * 0.01 {
        bail!(
            "{errors} of {} requests failed (connect {}, read {}, write {}, status {}, timeout {})",
            r.requests,
            r.errors.connect,
            r.errors.read,
            r.errors.write,
            r.errors.status,
            r.errors.timeout
        );
    }
    Ok(Load {
        rps: r.requests / (r.duration_us / 1e6),
        p50_ms: r.latency_us.p50 / 1000.0,
        p99_ms: r.latency_us.p99 / 1000.0,
        requests: r.requests as u64,
        errors: errors as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "Running 4s test @ http://127.0.0.1:8080/v1/boards/global/top?limit=20
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   301.12us  120.55us   5.10ms   90.00%
    Req/Sec    52.10k     3.01k   60.00k    70.00%
  416800 requests in 4.00s, 300.00MB read
Requests/sec: 104200.00
Transfer/sec:     75.00MB
WRK_JSON {\"requests\":416800,\"duration_us\":4000000,\"bytes\":314572800,\"errors\":{\"connect\":0,\"read\":0,\"write\":0,\"status\":3,\"timeout\":0},\"latency_us\":{\"p50\":280,\"p90\":420,\"p99\":910,\"p999\":2100,\"max\":5100,\"mean\":301.1}}
";

    #[test]
    fn parses_the_report_line() {
        let load = parse_report(OUTPUT).unwrap();
        assert_eq!(load.requests, 416_800);
        assert_eq!(load.errors, 3);
        assert!((load.rps - 104_200.0).abs() < 1e-6);
        assert!((load.p50_ms - 0.28).abs() < 1e-9);
        assert!((load.p99_ms - 0.91).abs() < 1e-9);
    }

    #[test]
    fn refuses_runs_without_a_report_or_with_errors() {
        assert!(parse_report("Running 4s test\n").is_err());
        let failing = OUTPUT.replace("\"status\":3", "\"status\":400000");
        let err = parse_report(&failing).unwrap_err().to_string();
        assert!(err.contains("requests failed"), "{err}");
    }

    #[test]
    fn command_lines_are_bounded_and_pass_script_args() {
        let wrk = Wrk {
            threads: 2,
            connections: 32,
            duration: Duration::from_secs(4),
            script: PathBuf::from("/tmp/rank.lua"),
            url: "http://127.0.0.1:9/".into(),
            script_args: vec!["1000".into(), "global".into()],
        };
        assert_eq!(
            wrk.argv().join(" "),
            "wrk -t2 -c32 -d4s --timeout 2s -s /tmp/rank.lua http://127.0.0.1:9/ -- 1000 global"
        );
    }

    #[test]
    fn parses_the_likes_tally() {
        let out =
            format!("{OUTPUT}WRK_LIKES {{\"answered\":416800,\"ok\":416797,\"applied\":416001}}\n");
        let tally = parse_likes(&out).unwrap();
        assert_eq!(
            tally,
            LikesTally {
                answered: 416_800,
                ok: 416_797,
                applied: 416_001
            }
        );
        assert_eq!(tally.not_ok(), 3);
        assert!(parse_likes(OUTPUT).is_err(), "no tally line");
    }

    #[test]
    fn scripts_end_with_the_report_hook() {
        let dir = std::env::temp_dir().join(format!("standings-wrk-{}", std::process::id()));
        write_scripts(&dir).unwrap();
        for (name, _) in SCENARIOS {
            let text = std::fs::read_to_string(script_path(&dir, name)).unwrap();
            assert!(text.contains("function done("), "{name}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
