//! `DurableStore`: the conformance suite, and that what it acknowledged is
//! there after a reopen.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use standings_core::board::{Board, ShardBy};
use standings_core::keyspace::Scope;
use standings_core::store::{
    AuditRecord, DurableOptions, DurableStore, OpenError, ShardCounts, Store, StoreError, Sync,
    Write,
};
use standings_core::types::{BoardName, Entry, MemberId, Op, Order, Score};
use standings_test_support::conformance;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "standings-durable-{name}-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open(dir: &Path) -> DurableStore {
    DurableStore::open(dir, DurableOptions::default()).expect("open")
}

fn board(name: &str, period: &str, order: Order, shards: u32) -> Board {
    Board {
        order,
        shards,
        groups: 2,
        shard_by: ShardBy::Numeric,
        top_k: 10,
        period: Arc::from(period),
        idempotency_ttl: Duration::from_secs(600),
        ..Board::new(BoardName::new(name).unwrap())
    }
}

fn member(n: u64) -> MemberId {
    MemberId::new(&format!("m:{n}")).unwrap()
}

fn write(n: u64, op: Op, value: f64, key: Option<String>) -> Write {
    Write {
        member: member(n),
        op,
        value: Score::new(value).unwrap(),
        idempotency_key: key,
        request_id: format!("req-{n}-{value}"),
    }
}

/// Everything a reader can ask of `members` on `board`.
#[derive(Debug, PartialEq)]
struct View {
    top: Vec<Vec<Entry>>,
    scores: Vec<Option<f64>>,
    counts: Vec<ShardCounts>,
    versions: Vec<u64>,
    audit: Vec<Vec<AuditRecord>>,
    snapshots: Vec<Option<Bytes>>,
}

async fn view(store: &dyn Store, b: &Board, members: u64) -> View {
    let shards: Vec<u32> = (0..b.shards).collect();
    let mut top = Vec::new();
    let mut audit = Vec::new();
    let mut snapshots = Vec::new();
    for &s in &shards {
        top.push(store.top(b, s, 100_000).await.unwrap());
        audit.push(store.audit_tail(b, s, 100_000).await.unwrap());
        snapshots.push(store.get_snapshot(b, Scope::Shard(s)).await.unwrap());
    }
    for g in 0..b.groups {
        snapshots.push(store.get_snapshot(b, Scope::Group(g)).await.unwrap());
    }
    let mut scores = Vec::new();
    for n in 0..members {
        let m = member(n);
        let s = b.shard_of(&m).unwrap();
        scores.push(store.score(b, s, &m).await.unwrap());
    }
    View {
        top,
        scores,
        counts: store.counts(b, &shards, 10.0).await.unwrap(),
        versions: store.versions(b, &shards).await.unwrap(),
        audit,
        snapshots,
    }
}

#[tokio::test]
async fn passes_the_conformance_suite() {
    let dir = TempDir::new("conformance");
    let store = open(dir.path());
    conformance::run(&store, "dur").await;
    store.close().await;
}

fn boards() -> Vec<Board> {
    vec![
        board("r-desc", "all", Order::Desc, 4),
        board("r-asc", "all", Order::Asc, 3),
        board("r-desc", "2026-w01", Order::Desc, 4),
    ]
}

/// A mix of ops, keyed and unkeyed, over every board; answers the keyed
/// writes with their first outcome.
async fn write_mix(store: &dyn Store, rounds: u64, keys: &str) -> Vec<(Board, Write, f64)> {
    let mut keyed = Vec::new();
    for b in boards() {
        for i in 0..rounds {
            let n = i % 40;
            let op = [Op::Incr, Op::Set, Op::Best][(i % 3) as usize];
            let value = ((i * 7919) % 101) as f64 - 30.0;
            let key = (i % 4 == 0).then(|| format!("{keys}-{i}"));
            let w = write(n, op, value, key);
            let outcome = store.apply(&b, &w).await.unwrap();
            assert!(outcome.applied);
            if w.idempotency_key.is_some() {
                keyed.push((b.clone(), w, outcome.score));
            }
        }
        store
            .put_snapshot(
                &b,
                Scope::Shard(1),
                Bytes::from(format!("shard-1 {}", b.name)),
            )
            .await
            .unwrap();
        store
            .put_snapshot(&b, Scope::Group(0), Bytes::from_static(b"first"))
            .await
            .unwrap();
        store
            .put_snapshot(
                &b,
                Scope::Group(0),
                Bytes::from(format!("group-0 {}", b.period)),
            )
            .await
            .unwrap();
    }
    keyed
}

#[tokio::test]
async fn a_reopened_store_answers_every_read_the_same() {
    let dir = TempDir::new("reopen");
    let store = open(dir.path());
    let keyed = write_mix(&store, 300, "k1").await;
    let mut before = Vec::new();
    for b in boards() {
        before.push(view(&store, &b, 40).await);
    }
    store.close().await;

    let store = open(dir.path());
    for (b, want) in boards().iter().zip(&before) {
        assert_eq!(
            &view(&store, b, 40).await,
            want,
            "board {} {}",
            b.name,
            b.period
        );
    }
    for (b, w, first) in &keyed {
        let again = store.apply(b, w).await.unwrap();
        assert!(!again.applied, "a repeat after reopen is not applied");
        assert_eq!(again.score, *first, "a repeat answers the first outcome");
        let other = Write {
            value: Score::new(w.value.get() + 1.0).unwrap(),
            ..w.clone()
        };
        assert_eq!(
            store.apply(b, &other).await,
            Err(StoreError::IdempotencyConflict)
        );
    }
    // Nothing above applied, and the store still takes writes.
    for (b, want) in boards().iter().zip(&before) {
        assert_eq!(&view(&store, b, 40).await, want);
    }
    let b = &boards()[0];
    let v = store.versions(b, &[1]).await.unwrap()[0];
    store
        .apply(b, &write(1, Op::Incr, 1.0, None))
        .await
        .unwrap();
    assert_eq!(store.versions(b, &[1]).await.unwrap()[0], v + 1);
    store.close().await;
}

#[tokio::test]
async fn interval_sync_keeps_everything_across_a_clean_close() {
    let dir = TempDir::new("interval");
    let options = DurableOptions {
        sync: Sync::Interval(Duration::from_millis(20)),
    };
    let store = DurableStore::open(dir.path(), options).unwrap();
    write_mix(&store, 100, "k2").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    write_mix(&store, 50, "k3").await;
    let mut before = Vec::new();
    for b in boards() {
        before.push(view(&store, &b, 40).await);
    }
    store.close().await;
    let store = DurableStore::open(dir.path(), options).unwrap();
    for (b, want) in boards().iter().zip(&before) {
        assert_eq!(&view(&store, b, 40).await, want);
    }
    store.close().await;
}

#[tokio::test]
async fn a_second_open_of_an_open_dir_is_locked() {
    let dir = TempDir::new("locked");
    let store = open(dir.path());
    let file = dir.path().join("standings.redb");
    match DurableStore::open(dir.path(), DurableOptions::default()) {
        Err(e @ OpenError::Locked { .. }) => {
            let OpenError::Locked { file: named } = &e else {
                unreachable!()
            };
            assert_eq!(named, &file);
            let msg = e.to_string();
            assert!(
                msg.contains(&file.display().to_string())
                    && msg.contains("is in use by another process"),
                "{msg}"
            );
        }
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("a second open succeeded"),
    }
    store.close().await;
    // Closed, it opens again.
    open(dir.path()).close().await;
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_corrupt_and_left_alone() {
    let dir = TempDir::new("corrupt");
    std::fs::create_dir_all(dir.path()).unwrap();
    let file = dir.path().join("standings.redb");
    let garbage: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&file, &garbage).unwrap();
    match DurableStore::open(dir.path(), DurableOptions::default()) {
        Err(OpenError::Corrupt {
            file: named,
            reason,
        }) => {
            assert_eq!(named, file);
            assert!(!reason.is_empty());
        }
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("garbage opened as a store"),
    }
    assert_eq!(
        std::fs::read(&file).unwrap(),
        garbage,
        "the file is untouched"
    );
}

#[tokio::test]
async fn an_uncreatable_dir_is_io() {
    let dir = TempDir::new("io");
    std::fs::create_dir_all(dir.path()).unwrap();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"x").unwrap();
    let under = blocker.join("data");
    match DurableStore::open(&under, DurableOptions::default()) {
        Err(OpenError::Io { file, .. }) => assert_eq!(file, under),
        Err(e) => panic!("expected Io, got {e}"),
        Ok(_) => panic!("opened under a file"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_reopen_to_what_memory_answered() {
    let dir = TempDir::new("concurrent");
    let store = Arc::new(open(dir.path()));
    let b = board("conc", "all", Order::Desc, 8);
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let store = store.clone();
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..500u64 {
                let n = (t * 131 + i * 17) % 97;
                let op = [Op::Incr, Op::Incr, Op::Set, Op::Best][((t + i) % 4) as usize];
                let value = ((t * 1000 + i) % 53) as f64 - 10.0;
                let w = write(n, op, value, Some(format!("t{t}-{i}")));
                store.apply(&b, &w).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let before = view(&*store, &b, 97).await;
    assert_eq!(before.versions.iter().sum::<u64>(), 4000);
    let store = Arc::into_inner(store).expect("tasks are done");
    store.close().await;
    let store = open(dir.path());
    assert_eq!(view(&store, &b, 97).await, before);
    store.close().await;
}

#[tokio::test]
async fn a_backup_taken_while_serving_is_a_valid_store() {
    let dir = TempDir::new("backup-src");
    let restored = TempDir::new("backup-dst");
    let store = open(dir.path());
    write_mix(&store, 200, "k4").await;
    let mut at_backup = Vec::new();
    for b in boards() {
        at_backup.push(view(&store, &b, 40).await);
    }
    std::fs::create_dir_all(restored.path()).unwrap();
    let copy = restored.path().join("standings.redb");
    store.backup(&copy).unwrap();
    // Keep writing after the backup.
    write_mix(&store, 50, "k5").await;
    store.close().await;

    let store = open(restored.path());
    for (b, want) in boards().iter().zip(&at_backup) {
        assert_eq!(
            &view(&store, b, 40).await,
            want,
            "the backup holds its writes"
        );
    }
    let b = &boards()[0];
    assert!(
        store
            .apply(b, &write(3, Op::Incr, 1.0, None))
            .await
            .unwrap()
            .applied
    );
    store.close().await;
}

/// Restart time and bytes on disk at 1,000,000 members (100 shards, one
/// `set` each, no keys): prints the figures for docs/benchmarks.md.
///
///     cargo test --release -p standings-core --test durable -- --ignored --nocapture restart
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --release --ignored --nocapture"]
async fn restart_time_and_bytes_per_member_at_a_million_members() {
    const MEMBERS: u64 = 1_000_000;
    let dir = TempDir::new("million");
    let b = Board {
        shards: 100,
        groups: 10,
        top_k: 1000,
        ..board("million", "all", Order::Desc, 100)
    };
    let store = Arc::new(open(dir.path()));
    let started = std::time::Instant::now();
    // 256 writers, so that commits carry many writes each.
    let mut tasks = Vec::new();
    for lane in 0..256u64 {
        let (store, b) = (store.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = lane;
            while n < MEMBERS {
                let w = write(n, Op::Set, (n * 7919 % 100_000) as f64, None);
                store.apply(&b, &w).await.expect("apply");
                n += 256;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let loaded_in = started.elapsed();
    let before = store.top(&b, 7, 20).await.unwrap();
    Arc::try_unwrap(store)
        .ok()
        .expect("one owner")
        .close()
        .await;
    let bytes = std::fs::metadata(dir.path().join("standings.redb"))
        .unwrap()
        .len();

    let started = std::time::Instant::now();
    let reopened = open(dir.path());
    let restart = started.elapsed();
    assert_eq!(
        reopened.top(&b, 7, 20).await.unwrap(),
        before,
        "same answers"
    );
    let total: u64 = reopened
        .counts(&b, &b.all_shards(), -1.0)
        .await
        .unwrap()
        .iter()
        .map(|c| c.total)
        .sum();
    assert_eq!(total, MEMBERS);
    println!(
        "durable store, {MEMBERS} members: written in {:.1} s ({:.0} writes/s, 256 writers), \
         restart (open + load) {:.2} s, {bytes} bytes on disk = {:.1} B/member (audit records included)",
        loaded_in.as_secs_f64(),
        MEMBERS as f64 / loaded_in.as_secs_f64(),
        restart.as_secs_f64(),
        bytes as f64 / MEMBERS as f64
    );
    reopened.close().await;
}
