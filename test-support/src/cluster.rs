//! A real Redis Cluster for tests: N masters with R replicas each, on free
//! loopback ports, killed when the handle drops.
//!
//! The spawning is `redis-test`'s (`redis_test::cluster::RedisCluster`):
//! each node runs `redis-server --cluster-enabled yes --save ""` with its own
//! temporary directory as working dir (so `--dir`, `nodes.conf` and the log
//! live there and vanish with it; append-only stays at its default, off),
//! and the nodes are joined with
//! `redis-cli --cluster create ... --cluster-replicas R --cluster-yes`.
//! Ports come from binding port 0 and releasing it, so a start can race
//! another process for a port; `redis-test` retries a node that fails to
//! bind. Its nodes use `--cluster-node-timeout 5000`, so a failover after
//! [`RedisCluster::kill_master`] takes about 6 to 8 s unless the test lowers
//! it with [`RedisCluster::set_node_timeout`].
//!
//! On top of that this module adds what `redis-test` does not: a clear
//! failure when the binaries are missing, a wait until `CLUSTER INFO` says
//! `cluster_state:ok` on every live node, the current masters, the master
//! of a key, pausing a node's writes, a wait until replicas have caught up,
//! and helpers to send one command to every node.

use std::process::Command;
use std::time::Duration;

use redis::{Connection, Value};
use redis_test::cluster::{RedisCluster as Spawned, RedisClusterConfiguration};

/// How long one harness command may take before the harness gives up on a
/// node (a paused or killed node must not hang the test).
const NODE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long [`RedisCluster::start`] waits for every node to agree the
/// cluster is up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Panics with the command to run when `redis-server` or `redis-cli` is not
/// on the PATH. Tests that need a cluster call it first (through
/// [`RedisCluster::start`]), so a missing install fails loudly instead of
/// being skipped.
pub fn require_redis_binaries() {
    for bin in ["redis-server", "redis-cli"] {
        let found = Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "`{bin}` was not found on the PATH, and the Redis Cluster tests need a real \
             cluster: run the tests with the README's test command, `scripts/test.sh`, \
             which installs Debian's redis-server and redis-tools when they are missing \
             (or `apt-get install -y redis-server redis-tools` yourself)."
        );
    }
}

/// A running Redis Cluster. Every process it started is killed on drop.
pub struct RedisCluster {
    /// The processes, temp dirs and `redis-cli --cluster create`, from
    /// `redis-test`; its `Drop` kills every node.
    spawned: Spawned,
    /// Nodes this handle killed, as `host:port`; skipped by every query so
    /// helpers never wait on a dead node.
    killed: Vec<String>,
    /// The masters as they were when [`RedisCluster::stop_masters`] first
    /// ran.
    stopped_masters: Vec<String>,
}

impl RedisCluster {
    /// Starts `masters` masters (at least 3, as `redis-cli --cluster create`
    /// requires) with `replicas_per_master` replicas each, and returns once
    /// every node reports `cluster_state:ok` and knows every other node.
    ///
    /// Panics when `redis-server` is missing or the cluster does not form.
    pub fn start(masters: usize, replicas_per_master: usize) -> Self {
        require_redis_binaries();
        assert!(
            masters >= 3,
            "a Redis Cluster needs at least 3 masters, {masters} asked"
        );
        let nodes = masters * (1 + replicas_per_master);
        let spawned = Spawned::new(RedisClusterConfiguration {
            num_nodes: u16::try_from(nodes).expect("node count fits u16"),
            num_replicas: u16::try_from(replicas_per_master).expect("replicas fit u16"),
            ..Default::default()
        });
        let cluster = Self {
            spawned,
            killed: Vec::new(),
            stopped_masters: Vec::new(),
        };
        cluster.wait_until_ok(START_TIMEOUT);
        let known = cluster.known_nodes();
        assert_eq!(known, nodes, "every node joined the cluster");
        cluster
    }

    /// Every live node as `host:port`: seed addresses for a client (any one
    /// of them lets a client discover the rest).
    pub fn nodes(&self) -> Vec<String> {
        self.spawned
            .iter_servers()
            .filter_map(|s| s.host_and_port())
            .map(|(host, port)| format!("{host}:{port}"))
            .filter(|addr| !self.killed.contains(addr))
            .collect()
    }

    /// The live masters that serve slots, as `host:port`, sorted by port so
    /// an index means the same node until the topology changes.
    pub fn masters(&self) -> Vec<String> {
        let mut masters: Vec<(u16, String)> = self
            .cluster_nodes()
            .lines()
            .filter_map(parse_master_line)
            .filter(|addr| !self.killed.contains(addr))
            .filter_map(|addr| Some((addr.rsplit_once(':')?.1.parse().ok()?, addr)))
            .collect();
        masters.sort();
        masters.into_iter().map(|(_, addr)| addr).collect()
    }

    /// A plain (non-cluster) connection to one node, with read and write
    /// timeouts, for commands a test aims at that node.
    pub fn connection(&self, addr: &str) -> Connection {
        let client = redis::Client::open(format!("redis://{addr}/"))
            .unwrap_or_else(|e| panic!("bad node address {addr}: {e}"));
        let con = client
            .get_connection_with_timeout(NODE_TIMEOUT)
            .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
        con.set_read_timeout(Some(NODE_TIMEOUT))
            .expect("set read timeout");
        con.set_write_timeout(Some(NODE_TIMEOUT))
            .expect("set write timeout");
        con
    }

    /// Runs `cmd` on every live master and returns the replies in the order
    /// of [`masters`](Self::masters), e.g. `SCRIPT FLUSH` or `INFO memory`.
    pub fn on_every_master(&self, cmd: &redis::Cmd) -> Vec<Value> {
        self.masters()
            .iter()
            .map(|addr| self.query(addr, cmd))
            .collect()
    }

    /// Runs `cmd` on every live node, masters and replicas.
    pub fn on_every_node(&self, cmd: &redis::Cmd) -> Vec<Value> {
        self.nodes()
            .iter()
            .map(|addr| self.query(addr, cmd))
            .collect()
    }

    /// Runs `cmd` on the node at `addr`; panics, naming the node, on error.
    pub fn query(&self, addr: &str, cmd: &redis::Cmd) -> Value {
        cmd.query(&mut self.connection(addr))
            .unwrap_or_else(|e| panic!("{cmd:?} on {addr}: {e}"))
    }

    /// Kills (SIGKILL) the `i`-th of [`masters`](Self::masters) and returns
    /// its address. Does not wait: with replicas, call
    /// [`wait_until_ok`](Self::wait_until_ok) for the failover; without,
    /// the cluster stays down for that master's slots.
    pub fn kill_master(&mut self, i: usize) -> String {
        let masters = self.masters();
        let addr = masters
            .get(i)
            .unwrap_or_else(|| panic!("no master {i}: masters are {masters:?}"))
            .clone();
        let server = self
            .spawned
            .servers
            .iter_mut()
            .find(|s| s.host_and_port().map(|(h, p)| format!("{h}:{p}")) == Some(addr.clone()))
            .unwrap_or_else(|| panic!("master {addr} is not one of this cluster's processes"));
        server.stop();
        self.killed.push(addr.clone());
        addr
    }

    /// Asks a live replica of the killed master `killed` to take its slots
    /// over at once (`CLUSTER FAILOVER TAKEOVER`: no election). For a test
    /// whose subject is the client's side of a failover, when the election
    /// itself is slow on a loaded machine. Answers the replica's address,
    /// or `None` if `killed` has no live replica.
    pub fn take_over_from(&self, killed: &str) -> Option<String> {
        let nodes = self.cluster_nodes();
        let fields: Vec<Vec<&str>> = nodes
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        let address = |f: &[&str]| f.get(1).and_then(|a| a.split('@').next()).map(String::from);
        let id = fields
            .iter()
            .find(|f| address(f).as_deref() == Some(killed))?
            .first()?
            .to_string();
        let replica = fields
            .iter()
            .filter(|f| f.get(3) == Some(&id.as_str()))
            .filter_map(|f| address(f))
            .find(|a| !self.killed.contains(a))?;
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("FAILOVER").arg("TAKEOVER");
        self.query(&replica, &cmd);
        Some(replica)
    }

    /// Every live node's `CLUSTER NODES`, one block per node: what a
    /// failing topology test prints.
    pub fn describe(&self) -> String {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("NODES");
        self.nodes()
            .iter()
            .map(
                |addr| match cmd.query::<Value>(&mut self.connection(addr)) {
                    Ok(v) => format!("{addr} sees:\n{}", value_text(&v)),
                    Err(e) => format!("{addr}: {e}\n"),
                },
            )
            .collect()
    }

    /// Sets `cluster-node-timeout` on every live node: how long a node may
    /// be unreachable before it is failed over. Lower it (e.g. to 1000) in
    /// failover tests; too low on a loaded machine fails nodes over that
    /// were only slow.
    pub fn set_node_timeout(&self, ms: u64) {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("SET").arg("cluster-node-timeout").arg(ms);
        self.on_every_node(&cmd);
    }

    /// Waits until every live node's `CLUSTER INFO` says `cluster_state:ok`;
    /// panics after `timeout`.
    pub fn wait_until_ok(&self, timeout: Duration) {
        crate::eventually(timeout, "cluster_state:ok on every node", || {
            self.nodes().iter().all(|addr| self.state_ok(addr))
        });
    }

    /// The live master that serves `key`'s slot (its `{hash tag}` honoured),
    /// as `host:port`: the node to pause or kill to hit one shard.
    pub fn master_of_key(&self, key: &str) -> String {
        let nodes = self.nodes();
        let first = nodes.first().expect("at least one live node");
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("KEYSLOT").arg(key);
        let slot = match self.query(first, &cmd) {
            Value::Int(slot) => u16::try_from(slot).expect("a slot fits u16"),
            other => panic!("CLUSTER KEYSLOT {key} answered {other:?}"),
        };
        self.cluster_nodes()
            .lines()
            .filter_map(|line| Some((parse_master_line(line)?, line)))
            .filter(|(addr, _)| !self.killed.contains(addr))
            .find(|(_, line)| serves_slot(line, slot))
            .map(|(addr, _)| addr)
            .unwrap_or_else(|| panic!("no live master serves slot {slot} of {key}"))
    }

    /// `CLIENT PAUSE ms WRITE` on `addr`: for `for_` (or until
    /// [`unpause`](Self::unpause)) the node queues every write command and
    /// script call (`EVAL`/`EVALSHA`) and runs them when the pause ends,
    /// while reads go on. A client whose write times out meanwhile sees a
    /// failure for a write that will still be applied: the case
    /// idempotency keys exist for.
    pub fn pause_writes(&self, addr: &str, for_: Duration) {
        let mut cmd = redis::cmd("CLIENT");
        cmd.arg("PAUSE")
            .arg(u64::try_from(for_.as_millis()).unwrap_or(u64::MAX))
            .arg("WRITE");
        self.query(addr, &cmd);
    }

    /// Stops (SIGSTOP) every live master's process: the whole cluster is
    /// down for clients (connections open, nothing answers, as a hung or
    /// partitioned node), and its data is kept for
    /// [`resume_masters`](Self::resume_masters). Answers the stopped pids.
    /// Without replicas nothing fails over meanwhile.
    pub fn stop_masters(&mut self) -> Vec<u32> {
        self.signal_masters("-STOP")
    }

    /// Continues (SIGCONT) the masters [`stop_masters`](Self::stop_masters)
    /// stopped; the cluster answers again.
    pub fn resume_masters(&mut self) -> Vec<u32> {
        self.signal_masters("-CONT")
    }

    fn signal_masters(&mut self, signal: &str) -> Vec<u32> {
        let masters = self.masters_cached();
        let mut pids = Vec::new();
        for server in self.spawned.servers.iter_mut() {
            let addr = server.host_and_port().map(|(h, p)| format!("{h}:{p}"));
            if addr.is_some_and(|a| masters.contains(&a)) {
                let pid = server.process.id();
                let ok = std::process::Command::new("kill")
                    .args([signal, &pid.to_string()])
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "kill {signal} {pid}");
                pids.push(pid);
            }
        }
        pids
    }

    /// The masters, remembered at the first call: a stopped master cannot
    /// be asked who the masters are.
    fn masters_cached(&mut self) -> Vec<String> {
        if self.stopped_masters.is_empty() {
            self.stopped_masters = self.masters();
        }
        self.stopped_masters.clone()
    }

    /// `CLIENT UNPAUSE` on `addr`: ends a pause early; the queued commands
    /// run now.
    pub fn unpause(&self, addr: &str) {
        let mut cmd = redis::cmd("CLIENT");
        cmd.arg("UNPAUSE");
        self.query(addr, &cmd);
    }

    /// Waits until every replica of every live master has acknowledged its
    /// master's whole replication stream (`INFO replication` offsets), so a
    /// master killed next loses no acknowledged write; panics after
    /// `timeout`. Replication is asynchronous: without this, a write
    /// acknowledged just before the kill may be gone after the failover.
    pub fn wait_replicated(&self, timeout: Duration) {
        let mut cmd = redis::cmd("INFO");
        cmd.arg("replication");
        crate::eventually(timeout, "replicas caught up with their masters", || {
            let nodes = self.cluster_nodes();
            self.masters().iter().all(|master| {
                let expected = live_replicas_of(&nodes, master, &self.killed);
                let info = value_text(&self.query(master, &cmd));
                let (own, acked) = replication_offsets(&info);
                acked.len() >= expected && acked.iter().all(|&r| r >= own)
            })
        });
    }

    /// The sum over live masters of `INFO memory`'s `used_memory`, in
    /// bytes: what the data set costs, for memory-per-member figures.
    pub fn used_memory(&self) -> u64 {
        let mut cmd = redis::cmd("INFO");
        cmd.arg("memory");
        self.on_every_master(&cmd)
            .iter()
            .map(|v| info_field(&value_text(v), "used_memory").unwrap_or(0))
            .sum()
    }

    /// The sum over live masters of `INFO cpu`'s `used_cpu_sys` and
    /// `used_cpu_user`, in seconds: the CPU the cluster has spent, for
    /// CPU-per-operation figures (read before and after a run).
    pub fn used_cpu_seconds(&self) -> f64 {
        let mut cmd = redis::cmd("INFO");
        cmd.arg("cpu");
        self.on_every_master(&cmd)
            .iter()
            .map(|v| {
                let info = value_text(v);
                ["used_cpu_sys", "used_cpu_user"]
                    .iter()
                    .filter_map(|f| info_float(&info, f))
                    .sum::<f64>()
            })
            .sum()
    }

    fn state_ok(&self, addr: &str) -> bool {
        let Ok(mut con) = redis::Client::open(format!("redis://{addr}/"))
            .and_then(|c| c.get_connection_with_timeout(NODE_TIMEOUT))
        else {
            return false;
        };
        let _ = con.set_read_timeout(Some(NODE_TIMEOUT));
        let info: redis::RedisResult<Value> = redis::cmd("CLUSTER").arg("INFO").query(&mut con);
        info.is_ok_and(|v| value_text(&v).contains("cluster_state:ok"))
    }

    fn cluster_nodes(&self) -> String {
        let nodes = self.nodes();
        let first = nodes.first().expect("at least one live node");
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("NODES");
        value_text(&self.query(first, &cmd))
    }

    fn known_nodes(&self) -> usize {
        self.cluster_nodes()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count()
    }
}

/// The `host:port` of a `CLUSTER NODES` line if it is a healthy master that
/// serves slots.
fn parse_master_line(line: &str) -> Option<String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let flags = fields.get(2)?;
    let serving = fields.len() > 8;
    let healthy = flags.split(',').all(|f| f != "fail" && f != "fail?");
    if !(flags.split(',').any(|f| f == "master") && healthy && serving) {
        return None;
    }
    // ip:port@cport[,hostname]
    let addr = fields.get(1)?.split('@').next()?;
    Some(addr.to_string())
}

/// Whether a `CLUSTER NODES` line lists `slot` among its served ranges
/// (`0-5460`, `5461`; migrating/importing entries `[..]` do not count).
fn serves_slot(line: &str, slot: u16) -> bool {
    line.split_whitespace().skip(8).any(|range| {
        let (first, last) = range.split_once('-').unwrap_or((range, range));
        match (first.parse::<u16>(), last.parse::<u16>()) {
            (Ok(first), Ok(last)) => (first..=last).contains(&slot),
            _ => false,
        }
    })
}

/// How many live replicas `CLUSTER NODES` lists for the master at `addr`.
fn live_replicas_of(nodes: &str, addr: &str, killed: &[String]) -> usize {
    let lines: Vec<Vec<&str>> = nodes
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let address = |f: &[&str]| f.get(1).and_then(|a| a.split('@').next()).map(String::from);
    let Some(id) = lines
        .iter()
        .find(|f| address(f).as_deref() == Some(addr))
        .and_then(|f| f.first())
    else {
        return 0;
    };
    lines
        .iter()
        .filter(|f| f.get(3) == Some(id))
        .filter(|f| {
            f.get(2)
                .is_some_and(|flags| flags.split(',').all(|x| x != "fail" && x != "fail?"))
        })
        .filter(|f| address(f).is_some_and(|a| !killed.contains(&a)))
        .count()
}

/// A master's own replication offset and each connected replica's
/// acknowledged one, from `INFO replication`
/// (`master_repl_offset:N`, `slaveI:ip=..,port=..,state=online,offset=N,lag=..`).
fn replication_offsets(info: &str) -> (u64, Vec<u64>) {
    let own = info_field(info, "master_repl_offset").unwrap_or(0);
    let replicas = info
        .lines()
        .filter(|l| l.starts_with("slave"))
        .filter_map(|l| {
            l.split_once(':')?
                .1
                .split(',')
                .find_map(|kv| kv.strip_prefix("offset="))?
                .trim()
                .parse()
                .ok()
        })
        .collect();
    (own, replicas)
}

/// A status or bulk reply as text (an `INFO` reply of
/// [`RedisCluster::on_every_master`], say); anything else as its debug form.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::VerbatimString { text, .. } => text.clone(),
        other => format!("{other:?}"),
    }
}

/// The decimal value of `field` in an `INFO` reply.
fn info_float(info: &str, field: &str) -> Option<f64> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

/// The integer value of `field` in an `INFO` reply.
fn info_field(info: &str, field: &str) -> Option<u64> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cluster_nodes_lines() {
        let master = "07c3 127.0.0.1:30004@40004 master - 0 1 1 connected 0-5460";
        let me = "e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 5461-10922";
        let replica = "67ed 127.0.0.1:30002@40002 slave e7d1 0 1 2 connected";
        let failed = "292f 127.0.0.1:30003@40003 master,fail - 0 1 3 connected 10923-16383";
        let empty = "6ec2 127.0.0.1:30005@40005 master - 0 1 4 connected";
        assert_eq!(
            parse_master_line(master).as_deref(),
            Some("127.0.0.1:30004")
        );
        assert_eq!(parse_master_line(me).as_deref(), Some("127.0.0.1:30001"));
        for not_serving in [replica, failed, empty] {
            assert_eq!(parse_master_line(not_serving), None, "{not_serving}");
        }
    }

    #[test]
    fn reads_served_slots_and_replication_offsets() {
        let line = "07c3 127.0.0.1:30004@40004 master - 0 1 1 connected 0-5460 5462 [5463->-e7d1]";
        assert!(serves_slot(line, 0) && serves_slot(line, 5460) && serves_slot(line, 5462));
        assert!(!serves_slot(line, 5461) && !serves_slot(line, 5463));
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n\
                    slave0:ip=127.0.0.1,port=30005,state=online,offset=1234,lag=0\r\n\
                    master_repl_offset:1300\r\n";
        assert_eq!(replication_offsets(info), (1300, vec![1234]));
        let nodes = "aaaa 127.0.0.1:1@2 myself,master - 0 0 1 connected 0-16383\n\
                     bbbb 127.0.0.1:3@4 slave aaaa 0 1 1 connected\n\
                     cccc 127.0.0.1:5@6 slave,fail aaaa 0 1 1 connected\n\
                     dddd 127.0.0.1:7@8 slave aaaa 0 1 1 connected\n";
        assert_eq!(live_replicas_of(nodes, "127.0.0.1:1", &[]), 2);
        assert_eq!(
            live_replicas_of(nodes, "127.0.0.1:1", &["127.0.0.1:7".into()]),
            1
        );
        assert_eq!(live_replicas_of(nodes, "127.0.0.1:3", &[]), 0);
    }

    #[test]
    fn reads_info_fields() {
        let info = "# Memory\r\nused_memory:1234\r\nused_memory_human:1.21K\r\n";
        assert_eq!(info_field(info, "used_memory"), Some(1234));
        assert_eq!(info_field(info, "used_memory_peak"), None);
    }

    #[test]
    fn a_cluster_starts_and_serves() {
        let cluster = RedisCluster::start(3, 0);
        assert_eq!(cluster.nodes().len(), 3);
        assert_eq!(cluster.masters().len(), 3);
        let mut con = cluster.connection(&cluster.masters()[0]);
        let pong: String = redis::cmd("PING").query(&mut con).expect("ping");
        assert_eq!(pong, "PONG");
        assert!(cluster.used_memory() > 0);
    }
}
