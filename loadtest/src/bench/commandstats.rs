//! Where a Redis side's CPU goes, by command: `INFO commandstats` of every
//! master, reset before a run and summed after it, so a bench can print
//! calls and µs per request for each command. Commands a script runs are
//! counted under their own names as well as inside the `evalsha` that ran
//! them, so the rows overlap: `evalsha`'s µs include its commands'.

use std::collections::BTreeMap;

use standings_test_support::cluster::value_text;
use standings_test_support::RedisCluster;

/// Calls and µs spent inside Redis, per command name (`zadd`, `evalsha`).
pub type Stats = BTreeMap<String, (u64, u64)>;

/// Zeroes the counters on every master (`CONFIG RESETSTAT`).
pub fn reset(cluster: &RedisCluster) {
    let mut cmd = redis::cmd("CONFIG");
    cmd.arg("RESETSTAT");
    cluster.on_every_master(&cmd);
}

/// The counters of every master, summed by command.
pub fn read(cluster: &RedisCluster) -> Stats {
    let mut cmd = redis::cmd("INFO");
    cmd.arg("commandstats");
    let mut stats = Stats::new();
    for info in cluster.on_every_master(&cmd) {
        for (name, calls, usec) in value_text(&info).lines().filter_map(parse_line) {
            let row = stats.entry(name).or_default();
            row.0 += calls;
            row.1 += usec;
        }
    }
    stats
}

/// One `cmdstat_NAME:calls=C,usec=U,...` line.
fn parse_line(line: &str) -> Option<(String, u64, u64)> {
    let (name, fields) = line.strip_prefix("cmdstat_")?.split_once(':')?;
    let field = |key: &str| {
        fields
            .split(',')
            .find_map(|f| f.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    };
    Some((name.to_string(), field("calls")?, field("usec")?))
}

/// The rows over `requests` (each a `per`, e.g. `like`), most µs first:
/// `| command | calls | µs |` per request, for the commands with at least
/// 0.05 µs each.
pub fn table(stats: &Stats, requests: u64, per: &str) -> String {
    let n = requests.max(1) as f64;
    let mut rows: Vec<_> = stats.iter().collect();
    rows.sort_by_key(|(_, (_, usec))| std::cmp::Reverse(*usec));
    let mut out =
        format!("| command | calls per {per} | µs per {per} inside Redis |\n| --- | --- | --- |\n");
    for (name, (calls, usec)) in rows {
        let us = *usec as f64 / n;
        if us >= 0.05 {
            out.push_str(&format!(
                "| `{name}` | {:.2} | {us:.2} |\n",
                *calls as f64 / n
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_commandstats_line() {
        let line =
            "cmdstat_zadd:calls=12,usec=345,usec_per_call=28.75,rejected_calls=0,failed_calls=1";
        assert_eq!(parse_line(line), Some(("zadd".into(), 12, 345)));
        assert_eq!(parse_line("# Commandstats"), None);
        assert_eq!(parse_line("cmdstat_get:calls=x,usec=1"), None);
    }

    #[test]
    fn table_orders_by_time_and_drops_the_negligible() {
        let stats = Stats::from([
            ("get".into(), (100, 10)),
            ("evalsha".into(), (100, 4000)),
            ("ping".into(), (1, 1)),
        ]);
        let t = table(&stats, 100, "like");
        assert!(t.starts_with("| command | calls per like | µs per like inside Redis |"));
        let evalsha = t.find("`evalsha` | 1.00 | 40.00").expect("evalsha row");
        let get = t.find("`get` | 1.00 | 0.10").expect("get row");
        assert!(evalsha < get);
        assert!(!t.contains("ping"));
    }
}
