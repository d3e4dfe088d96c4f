//! `results.json` and the table printed after a run.
//!
//! Every entry has the same four fields, so a script can compare runs
//! without knowing each measurement: `value`, `baseline` (null where none
//! applies), `ratio` (null where none applies) and `command`, the command
//! line that produced the value (`baseline_command` for the other side).
//! A ratio above 1 always means "better than the baseline": req/s over
//! req/s for throughput, baseline over value for times.

use serde::Serialize;
use serde_json::Value;

/// The keys of `results.json`, in table order.
pub const KEYS: [&str; 16] = [
    "top20",
    "rank",
    "lookup",
    "around",
    "rank_cached",
    "rank_indexed",
    "lookup_indexed",
    "around_indexed",
    "rank_members",
    "lookup_members",
    "around_members",
    "rank_freshness",
    "write",
    "freshness",
    "merge",
    "memory",
];

/// One measurement with its baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// What was measured (numbers, units in the field names).
    pub value: Value,
    /// The same measurement of the baseline, or the fixed baseline figure.
    pub baseline: Value,
    /// value vs baseline; above 1 is better than the baseline.
    pub ratio: Option<f64>,
    /// The command line that produced `value`.
    pub command: String,
    /// The command line that produced `baseline`, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_command: Option<String>,
    /// The goal we steer by (never asserted).
    pub goal: String,
    /// The value for the table.
    #[serde(skip)]
    pub summary: String,
    /// The baseline for the table.
    #[serde(skip)]
    pub baseline_summary: String,
}

/// The whole file.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// `--quick`.
    pub quick: bool,
    /// Members seeded.
    pub members: u64,
    /// Shards of the board.
    pub shards: u32,
    /// Load settings shared by both sides of each comparison.
    pub settings: Settings,
    /// What the machine looked like.
    pub machine: Machine,
    /// `GET /top?limit=20` vs nginx.
    pub top20: Entry,
    /// `GET /members/{m}` vs `ZREVRANK`.
    pub rank: Entry,
    /// `POST .../members:lookup` of 20, live, ranks/s vs `ZREVRANK`.
    pub lookup: Entry,
    /// `GET .../around?radius=5`, live, vs `ZREVRANK`.
    pub around: Entry,
    /// `GET /members/{m}` on a gateway with `rank_staleness_ms` vs
    /// `ZREVRANK`.
    pub rank_cached: Entry,
    /// `GET /members/{m}` on a gateway with `rank_staleness_ms` and the
    /// stream-fed rank index vs `ZREVRANK`.
    pub rank_indexed: Entry,
    /// Lookups on the indexed gateway.
    pub lookup_indexed: Entry,
    /// Around on the indexed gateway.
    pub around_indexed: Entry,
    /// The same with the index keeping every member's score and meta
    /// (`rank_index = "members"`).
    pub rank_members: Entry,
    /// Lookups on the members gateway.
    pub lookup_members: Entry,
    /// Around on the members gateway.
    pub around_members: Entry,
    /// Write-to-rank delay on the indexed gateway vs its bound.
    pub rank_freshness: Entry,
    /// `POST /scores` vs `ZINCRBY`.
    pub write: Entry,
    /// Write-to-`/top` delay vs the design card's.
    pub freshness: Entry,
    /// The in-process merge vs the seed design's.
    pub merge: Entry,
    /// Redis bytes per member and gateway RSS.
    pub memory: Entry,
}

/// Load settings of the comparisons.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Client threads on both sides.
    pub threads: usize,
    /// Connections on both sides.
    pub connections: usize,
    /// Seconds per load run.
    pub duration_secs: u64,
    /// Agent and gateway tick.
    pub tick_ms: u64,
    /// Freshness probes and how many at once.
    pub probes: usize,
    /// Freshness probes in flight at once.
    pub probe_concurrency: usize,
}

/// Machine notes.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs.
    pub cpus: usize,
    /// `/proc/loadavg` when the run started.
    pub load_before: String,
    /// `/proc/loadavg` when it ended.
    pub load_after: String,
    /// `redis-server --version`, `nginx -v`, `wrk -v` first lines.
    pub tools: Vec<String>,
}

impl Results {
    /// The entries in [`KEYS`] order.
    pub fn entries(&self) -> [(&'static str, &Entry); 16] {
        let entries = [
            &self.top20,
            &self.rank,
            &self.lookup,
            &self.around,
            &self.rank_cached,
            &self.rank_indexed,
            &self.lookup_indexed,
            &self.around_indexed,
            &self.rank_members,
            &self.lookup_members,
            &self.around_members,
            &self.rank_freshness,
            &self.write,
            &self.freshness,
            &self.merge,
            &self.memory,
        ];
        std::array::from_fn(|i| (KEYS[i], entries[i]))
    }

    /// The results as a Markdown table, as `docs/benchmarks.md` quotes it.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| key | value | baseline (same run) | ratio | goal |\n| --- | --- | --- | --- | --- |\n",
        );
        for (key, e) in self.entries() {
            let ratio = e.ratio.map_or("—".to_string(), |r| format!("{r:.3}"));
            out.push_str(&format!(
                "| `{key}` | {} | {} | {ratio} | {} |\n",
                e.summary, e.baseline_summary, e.goal
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(ratio: Option<f64>) -> Entry {
        Entry {
            value: json!({"rps": 1.0}),
            baseline: Value::Null,
            ratio,
            command: "wrk ...".into(),
            baseline_command: None,
            goal: "g".into(),
            summary: "s".into(),
            baseline_summary: "—".into(),
        }
    }

    fn results() -> Results {
        Results {
            started_at: "2026-11-22T00:00:00Z".into(),
            quick: true,
            members: 100_000,
            shards: 100,
            settings: Settings {
                threads: 2,
                connections: 32,
                duration_secs: 4,
                tick_ms: 1000,
                probes: 30,
                probe_concurrency: 4,
            },
            machine: Machine {
                cpus: 2,
                load_before: "0.1 0.2 0.3".into(),
                load_after: "1.0 0.5 0.4".into(),
                tools: vec![],
            },
            top20: entry(Some(1.2)),
            rank: entry(Some(0.1)),
            lookup: entry(Some(0.1)),
            around: entry(Some(0.05)),
            rank_cached: entry(Some(0.3)),
            rank_indexed: entry(Some(0.6)),
            lookup_indexed: entry(Some(0.9)),
            around_indexed: entry(Some(0.1)),
            rank_members: entry(Some(0.8)),
            lookup_members: entry(Some(1.5)),
            around_members: entry(Some(0.1)),
            rank_freshness: entry(Some(1.1)),
            write: entry(Some(0.2)),
            freshness: entry(Some(300.0)),
            merge: entry(Some(2000.0)),
            memory: entry(None),
        }
    }

    #[test]
    fn every_key_has_value_baseline_ratio_and_command() {
        let json = serde_json::to_value(results()).unwrap();
        for key in KEYS {
            let e = json[key].as_object().unwrap_or_else(|| panic!("{key}"));
            for field in ["value", "baseline", "ratio", "command", "goal"] {
                assert!(e.contains_key(field), "{key}.{field}");
            }
            assert!(
                !e.contains_key("summary"),
                "table text stays out of the JSON"
            );
        }
        assert!(json["memory"]["ratio"].is_null());
        assert_eq!(json["settings"]["connections"], 32);
    }

    #[test]
    fn the_table_has_a_row_per_key() {
        let table = results().table();
        assert_eq!(table.lines().count(), 2 + KEYS.len());
        assert!(table.contains("| `top20` | s | — | 1.200 | g |"));
        assert!(table.contains("| `memory` | s | — | — | g |"));
    }
}
