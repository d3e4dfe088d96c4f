//! Where a Redis side's CPU goes, by command: `INFO commandstats` of every
//! master, reset before a run and summed after it, so a bench can print
//! calls and µs per request for each command. Commands a script runs are
//! counted under their own names as well as inside the `evalsha` that ran
//! them, so the rows overlap: `evalsha`'s µs include its commands'.

use std::collections::BTreeMap;

use anyhow::Context;

/// Calls and µs spent inside Redis, per command name (`zadd`, `evalsha`).
pub type Stats = BTreeMap<String, (u64, u64)>;

/// Zeroes the counters on every node (`CONFIG RESETSTAT`).
pub async fn reset(nodes: &[String]) -> anyhow::Result<()> {
    for node in nodes {
        let mut conn = connect(node).await?;
        redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async::<()>(&mut conn)
            .await
            .with_context(|| format!("CONFIG RESETSTAT on {node}"))?;
    }
    Ok(())
}

/// The counters of every node, summed by command.
pub async fn read(nodes: &[String]) -> anyhow::Result<Stats> {
    let mut stats = Stats::new();
    for node in nodes {
        let mut conn = connect(node).await?;
        let text: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .with_context(|| format!("INFO commandstats on {node}"))?;
        for (name, calls, usec) in text.lines().filter_map(parse_line) {
            let row = stats.entry(name).or_default();
            row.0 += calls;
            row.1 += usec;
        }
    }
    Ok(stats)
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

/// The rows over `requests`, most µs first: `| command | calls | µs |`
/// per request, for the commands with at least 0.05 µs each.
pub fn table(stats: &Stats, requests: u64) -> String {
    let n = requests.max(1) as f64;
    let mut rows: Vec<_> = stats.iter().collect();
    rows.sort_by_key(|(_, (_, usec))| std::cmp::Reverse(*usec));
    let mut out = String::from(
        "| command | calls per like | µs per like inside Redis |\n| --- | --- | --- |\n",
    );
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

async fn connect(node: &str) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://{node}/"))?;
    client
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("connecting to {node}"))
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
        let t = table(&stats, 100);
        let evalsha = t.find("`evalsha` | 1.00 | 40.00").expect("evalsha row");
        let get = t.find("`get` | 1.00 | 0.10").expect("get row");
        assert!(evalsha < get);
        assert!(!t.contains("ping"));
    }
}
