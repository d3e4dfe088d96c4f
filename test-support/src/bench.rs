//! What the side-by-side store benches (`core/benches/periods.rs`,
//! `core/benches/ties.rs`) share: each store in turn, with how to read the
//! CPU it spends, and the median of a few rounds.

use std::future::Future;
use std::sync::Arc;

use standings_core::store::{DurableOptions, DurableStore, RedisOptions, RedisStore};
use standings_core::{MemoryStore, Store};

use crate::process::process_cpu_seconds;
use crate::RedisCluster;

/// One store a bench runs on.
pub struct BenchStore {
    /// `redis`, `durable` or `memory`.
    pub name: &'static str,
    pub store: Arc<dyn Store>,
    /// CPU seconds the store has spent so far: the masters'
    /// `used_cpu_sys + used_cpu_user` on Redis, this whole process's
    /// (the store's work plus the driver's) in process.
    pub cpu: Box<dyn Fn() -> f64>,
    /// The bytes it holds, where it can say (the masters' `used_memory`).
    pub memory: Option<Box<dyn Fn() -> u64>>,
}

/// Runs `each` on a real 3-master Redis Cluster started on loopback
/// ports, then on the durable embedded store in a fresh directory under
/// the system's temp dir (named after `bench`, removed after), then on
/// the memory store.
pub async fn on_every_store<F, Fut>(bench: &str, mut each: F)
where
    F: FnMut(BenchStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let cluster = Arc::new(RedisCluster::start(3, 0));
    let redis = RedisStore::connect(&cluster.nodes(), RedisOptions::default())
        .await
        .expect("connect to the cluster");
    let (c, m) = (cluster.clone(), cluster.clone());
    each(BenchStore {
        name: "redis",
        store: Arc::new(redis),
        cpu: Box::new(move || c.used_cpu_seconds()),
        memory: Some(Box::new(move || m.used_memory())),
    })
    .await;
    drop(cluster);

    let dir = std::env::temp_dir().join(format!("standings-{bench}-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let durable = DurableStore::open(&dir, DurableOptions::default()).expect("open");
    each(BenchStore {
        name: "durable",
        store: Arc::new(durable),
        cpu: Box::new(process_cpu_seconds),
        memory: None,
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);

    each(BenchStore {
        name: "memory",
        store: Arc::new(MemoryStore::new()),
        cpu: Box::new(process_cpu_seconds),
        memory: None,
    })
    .await;
}

/// The median of `v` (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
