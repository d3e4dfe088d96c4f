//! `DurableStore`: the conformance suites (scores, periods, likes), and that
//! what it acknowledged is there after a reopen.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use standings_core::blend::{Blend, BlendPart};
use standings_core::board::{Board, ShardBy};
use standings_core::events::{
    Event, EventOutcome, Feed, LikeCounts, LikeSpace, LikeState, LikedTarget, Refusal, Weights,
};
use standings_core::keyspace::Scope;
use standings_core::store::{
    AuditRecord, DurableOptions, DurableStore, OpenError, ShardCounts, Store, StoreError, Sync,
    Write,
};
use standings_core::types::{BoardName, Entry, MemberId, Op, Order, Score};
use standings_core::{PeriodKind, WriteOutcome};
use standings_test_support::conformance;
use standings_test_support::likes::{self, event, fed_board, score, space};

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

fn board(name: &str, periods: &[&str], order: Order, shards: u32) -> Board {
    let kinds: Vec<PeriodKind> = periods.iter().map(|p| p.parse().unwrap()).collect();
    Board {
        order,
        shards,
        groups: 2,
        shard_by: ShardBy::Numeric,
        top_k: 10,
        periods: Arc::from(kinds),
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
        meta: None,
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

#[tokio::test]
async fn passes_the_pages_suite() {
    let dir = TempDir::new("pages");
    let store = open(dir.path());
    standings_test_support::pages::run(&store, "dur").await;
    store.close().await;
}

#[tokio::test]
async fn passes_the_first_achiever_suite() {
    let dir = TempDir::new("ties");
    let store = open(dir.path());
    standings_test_support::ties::run(&store, "dur").await;
    store.close().await;
}

/// Who reached a score first survives a restart: the ties are in the
/// journal and the tables, and the order after reopening is the order
/// before.
#[tokio::test]
async fn first_achiever_ties_survive_a_restart() {
    use standings_test_support::ties;
    let dir = TempDir::new("ties-restart");
    let store = open(dir.path());
    let b = ties::tied_board("dur", "fa-restart", standings_core::Order::Desc);
    let oracle = ties::seed(&store, &b).await;
    ties::check(&store, &b, &oracle).await;
    store.close().await;
    let again = open(dir.path());
    ties::check(&again, &b, &oracle).await;
    again.close().await;
}

#[tokio::test]
async fn passes_the_list_calls_suite() {
    let dir = TempDir::new("many");
    let store = open(dir.path());
    standings_test_support::many::run(&store, "dur").await;
    store.close().await;
}

#[tokio::test]
async fn passes_the_meta_suite() {
    let dir = TempDir::new("meta");
    let store = open(dir.path());
    standings_test_support::meta::run(&store, "dur").await;
    store.close().await;
}

/// Metas as the durable store acknowledged them are there after a reopen:
/// the latest of each member, kept by a later write without meta, gone
/// with a removed member; and again after a second reopen with no writes
/// in between (the load itself writes nothing wrong back).
#[tokio::test]
async fn metas_survive_reopen() {
    let dir = TempDir::new("meta-reopen");
    let b = standings_test_support::conformance::board("durm", "seed", Order::Desc);
    let store = open(dir.path());
    standings_test_support::meta::seed(&store, &b).await;
    standings_test_support::meta::check_seeded(&store, &b).await;
    store.close().await;
    for _ in 0..2 {
        let store = open(dir.path());
        standings_test_support::meta::check_seeded(&store, &b).await;
        store.close().await;
    }
}

#[tokio::test]
async fn passes_the_periods_suite() {
    let dir = TempDir::new("periods");
    let store = open(dir.path());
    standings_test_support::periods::run(&store, "dur").await;
    store.close().await;
}

/// The boards written to: two of one period, one of three.
fn written() -> Vec<Board> {
    vec![
        board("r-desc", &["all"], Order::Desc, 4),
        board("r-asc", &["all"], Order::Asc, 3),
        board("r-time", &["all", "daily", "weekly"], Order::Desc, 4),
    ]
}

/// Every period of the written boards, each as the board addressing it.
fn boards() -> Vec<Board> {
    let now = standings_core::store::now_ms_i64();
    written()
        .iter()
        .flat_map(|b| b.current_periods(now).into_iter().map(|p| b.at(p.id)))
        .collect()
}

/// A mix of ops, keyed and unkeyed, over every board; answers the keyed
/// writes with their first outcome.
async fn write_mix(
    store: &dyn Store,
    rounds: u64,
    keys: &str,
) -> Vec<(Board, Write, WriteOutcome)> {
    let mut keyed = Vec::new();
    for b in written() {
        for i in 0..rounds {
            let n = i % 40;
            let op = [Op::Incr, Op::Set, Op::Best][(i % 3) as usize];
            let value = ((i * 7919) % 101) as f64 - 30.0;
            let key = (i % 4 == 0).then(|| format!("{keys}-{i}"));
            let w = write(n, op, value, key);
            let outcome = store.apply(&b, &w).await.unwrap();
            assert!(outcome.applied);
            if w.idempotency_key.is_some() {
                keyed.push((b.clone(), w, outcome));
            }
        }
    }
    for b in boards() {
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
        assert_eq!(
            again.score, first.score,
            "a repeat answers the first outcome"
        );
        assert_eq!(again.scores, first.scores, "in every period");
        assert_eq!(again.scores.len(), b.periods.len());
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
        ..DurableOptions::default()
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
    let b = board("conc", &["all"], Order::Desc, 8);
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
        ..board("million", &["all"], Order::Desc, 100)
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

/// Every score of `b` (addressing one period) by member.
async fn all_entries(store: &dyn Store, b: &Board) -> Vec<Entry> {
    let mut all = Vec::new();
    for s in 0..b.shards {
        all.extend(store.top(b, s, 100_000).await.unwrap());
    }
    all.sort_by(|x, y| b.order.cmp_entries(x, y));
    all
}

#[tokio::test]
async fn periods_blend_weights_and_expiry_survive_a_reopen() {
    let dir = TempDir::new("periods-reopen");
    let kinds = |k: &[&str]| -> Arc<[PeriodKind]> {
        k.iter()
            .map(|p| p.parse().unwrap())
            .collect::<Vec<_>>()
            .into()
    };
    let part = |kind: &str, weight| BlendPart {
        kind: kind.parse().unwrap(),
        previous: false,
        weight,
    };
    let hot = Blend {
        name: Arc::from("hot"),
        parts: Arc::from([part("all", 0.5), part("daily", 2.0)]),
    };
    let b = Board {
        periods: kinds(&["all", "daily", "every:1s"]),
        closed_retention: Duration::from_secs(1),
        blends: Arc::from([hot.clone()]),
        ..board("p-reopen", &["all"], Order::Desc, 4)
    };
    let store = open(dir.path());
    let mut expired = None;
    for n in 0..20 {
        let out = store
            .apply(&b, &write(n, Op::Incr, n as f64 + 1.0, None))
            .await
            .unwrap();
        expired.get_or_insert(out.scores[2].0.clone());
    }
    let heavier = Blend {
        parts: Arc::from([part("all", 1.0), part("daily", 3.0)]),
        ..hot.clone()
    };
    store.set_blend(&b, &heavier).await.unwrap();
    let now = standings_core::store::now_ms_i64();
    let daily = b.at(b.current_periods(now)[1].id.clone());
    let before_daily = all_entries(&store, &daily).await;
    let before_hot = all_entries(&store, &b.at("hot")).await;
    assert_eq!(before_hot[0].score, 20.0 + 3.0 * 20.0, "the new weights");
    // The every:1s period closes and, a second later, expires.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    store.maintain(&b, &b.all_shards()).await.unwrap();
    store.close().await;

    let expired = expired.unwrap();
    {
        // The expired period's rows are gone from the file, not only skipped.
        let db = redb::Database::open(dir.path().join("standings.redb")).unwrap();
        let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
        let members: redb::TableDefinition<(&str, &str, u32, &str), (f64, u64)> =
            redb::TableDefinition::new("members");
        let table = txn.open_table(members).unwrap();
        let mut periods = std::collections::BTreeSet::new();
        for row in redb::ReadableTable::iter(&table).unwrap() {
            let (k, _) = row.unwrap();
            periods.insert(k.value().1.to_string());
        }
        assert!(
            !periods.contains(&*expired),
            "{expired} deleted: {periods:?}"
        );
        assert!(periods.contains("all") && periods.contains(&*daily.period));
        assert!(!periods.contains("hot"), "blends are rebuilt, not stored");
    }

    let store = open(dir.path());
    assert_eq!(all_entries(&store, &daily).await, before_daily);
    store.maintain(&b, &b.all_shards()).await.unwrap();
    assert_eq!(
        all_entries(&store, &b.at("hot")).await,
        before_hot,
        "the blend is rebuilt with the weights set at run time"
    );
    assert!(all_entries(&store, &b.at(expired.clone())).await.is_empty());
    store.close().await;
}

/// A file written before periods (idempotency and audit rows keyed by the
/// period `all`, audit numbered by the shard's version) opens with its
/// scores, repeats and audit intact, and new writes continue its numbering.
#[tokio::test]
async fn a_file_from_before_periods_is_migrated() {
    use redb::{Database, TableDefinition};
    let dir = TempDir::new("migrate");
    std::fs::create_dir_all(dir.path()).unwrap();
    let b = board("old", &["all"], Order::Desc, 4);
    let m = member(1);
    let shard = b.shard_of(&m).unwrap();
    let key = "old-key";
    let digest = standings_core::store::request_digest(Op::Incr, 5.0);
    {
        let db = Database::create(dir.path().join("standings.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut members = txn
                .open_table(TableDefinition::<(&str, &str, u32, &str), (f64, u64)>::new(
                    "members",
                ))
                .unwrap();
            members
                .insert(("old", "all", shard, m.as_str()), (5.0, 1))
                .unwrap();
            let mut versions = txn
                .open_table(TableDefinition::<(&str, &str, u32), u64>::new("versions"))
                .unwrap();
            versions.insert(("old", "all", shard), 1).unwrap();
            let mut idem = txn
                .open_table(TableDefinition::<
                    (u64, &str, &str, u32, &str, &str),
                    (u64, f64),
                >::new("idempotency"))
                .unwrap();
            let expires = standings_core::store::now_ms() + 600_000;
            idem.insert(
                (expires, "old", "all", shard, m.as_str(), key),
                (digest, 5.0),
            )
            .unwrap();
            let mut audit = txn
                .open_table(TableDefinition::<
                    (&str, &str, u32, u64),
                    (&str, &str, f64, f64, Option<&str>, &str, u64),
                >::new("audit"))
                .unwrap();
            audit
                .insert(
                    ("old", "all", shard, 1),
                    (m.as_str(), "incr", 5.0, 5.0, Some(key), "req-old", 1),
                )
                .unwrap();
            txn.open_table(TableDefinition::<&str, (u64, &[u8])>::new("snapshots"))
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let store = open(dir.path());
    assert_eq!(store.score(&b, shard, &m).await.unwrap(), Some(5.0));
    let repeat = Write {
        idempotency_key: Some(key.into()),
        ..write(1, Op::Incr, 5.0, None)
    };
    let again = store.apply(&b, &repeat).await.unwrap();
    assert!(!again.applied, "the old key still answers a repeat");
    assert_eq!(again.score, 5.0);
    store
        .apply(&b, &write(1, Op::Incr, 1.0, None))
        .await
        .unwrap();
    store.close().await;
    let store = open(dir.path());
    assert_eq!(store.score(&b, shard, &m).await.unwrap(), Some(6.0));
    let audit = store.audit_tail(&b, shard, 10).await.unwrap();
    let ids: Vec<&str> = audit.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, ["req-1-1", "req-old"], "newest first, old record kept");
    assert_eq!(store.versions(&b, &[shard]).await.unwrap(), vec![2]);
    store.close().await;
}

/// A file written before tenants (rows keyed by the bare board name, as
/// the store writes them for tenant `public`) reopens with every row where
/// it was, and a tenant's board of the same name is written beside it,
/// keyed `TENANT.BOARD`, and reopens under its tenant.
#[tokio::test]
async fn public_rows_stay_put_and_tenant_rows_reopen_under_their_tenant() {
    use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
    let members_table = TableDefinition::<(&str, &str, u32, &str), (f64, u64)>::new("members");
    let dir = TempDir::new("tenants");
    std::fs::create_dir_all(dir.path()).unwrap();
    let public = board("videos", &["all"], Order::Desc, 4);
    let acme = public.clone().in_tenant(BoardName::new("acme").unwrap());
    let m = member(1);
    let shard = public.shard_of(&m).unwrap();
    {
        // What a release before tenants wrote for board `videos`.
        let db = Database::create(dir.path().join("standings.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut members = txn.open_table(members_table).unwrap();
            members
                .insert(("videos", "all", shard, m.as_str()), (5.0, 1))
                .unwrap();
            let mut versions = txn
                .open_table(TableDefinition::<(&str, &str, u32), u64>::new("versions"))
                .unwrap();
            versions.insert(("videos", "all", shard), 1).unwrap();
            versions.insert(("videos", "", shard), 1).unwrap();
        }
        txn.commit().unwrap();
    }

    let store = open(dir.path());
    assert_eq!(store.score(&public, shard, &m).await.unwrap(), Some(5.0));
    assert_eq!(store.versions(&public, &[shard]).await.unwrap(), vec![1]);
    assert_eq!(
        store.score(&acme, shard, &m).await.unwrap(),
        None,
        "a tenant's board of the same name does not see public rows"
    );
    let key = Some("k".to_owned());
    let outcome = store
        .apply(&acme, &write(1, Op::Incr, 2.0, key.clone()))
        .await
        .unwrap();
    assert_eq!(outcome.score, 2.0, "from absent, not from public's 5");
    store
        .apply(&acme, &write(5, Op::Set, 7.0, None))
        .await
        .unwrap();
    store
        .put_snapshot(&acme, Scope::Shard(shard), Bytes::from_static(b"acme"))
        .await
        .unwrap();
    store
        .apply(&public, &write(1, Op::Incr, 1.0, key.clone()))
        .await
        .unwrap();
    let public_before = view(&store, &public, 8).await;
    let acme_before = view(&store, &acme, 8).await;
    store.close().await;

    {
        let db = Database::open(dir.path().join("standings.redb")).unwrap();
        let txn = db.begin_read().unwrap();
        let members = txn.open_table(members_table).unwrap();
        let mut rows: Vec<(String, u32, String, f64)> = members
            .iter()
            .unwrap()
            .map(|row| {
                let (k, v) = row.unwrap();
                let (b, _, s, m) = k.value();
                (b.to_owned(), s, m.to_owned(), v.value().0)
            })
            .collect();
        rows.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(
            rows,
            [
                ("acme.videos".to_owned(), 1, "m:1".to_owned(), 2.0),
                ("acme.videos".to_owned(), 1, "m:5".to_owned(), 7.0),
                ("videos".to_owned(), 1, "m:1".to_owned(), 6.0),
            ],
            "public rows keep the bare name, the tenant's carry it"
        );
    }

    let store = open(dir.path());
    assert_eq!(view(&store, &public, 8).await, public_before, "public");
    assert_eq!(view(&store, &acme, 8).await, acme_before, "acme");
    assert_eq!(acme_before.scores[1], Some(2.0));
    assert_eq!(public_before.scores[1], Some(6.0));
    assert_eq!(
        acme_before.snapshots[shard as usize].as_deref(),
        Some(&b"acme"[..])
    );
    assert_eq!(public_before.snapshots[shard as usize], None);
    let repeat = store
        .apply(&acme, &write(1, Op::Incr, 2.0, key))
        .await
        .unwrap();
    assert!(
        !repeat.applied,
        "acme's idempotency record reopens as acme's"
    );
    store.close().await;
}

/// Stored names are checked as storage names at load: one or two
/// board-name parts joined by one `.`.
#[tokio::test]
async fn a_row_with_an_invalid_storage_name_is_corrupt() {
    use redb::{Database, TableDefinition};
    for bad in ["a.b.c", "Videos", "acme."] {
        let dir = TempDir::new("bad-name");
        std::fs::create_dir_all(dir.path()).unwrap();
        {
            let db = Database::create(dir.path().join("standings.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(TableDefinition::<(&str, &str, u32), u64>::new("versions"))
                .unwrap()
                .insert((bad, "", 0), 1)
                .unwrap();
            txn.commit().unwrap();
        }
        match DurableStore::open(dir.path(), DurableOptions::default()) {
            Err(OpenError::Corrupt { reason, .. }) => {
                assert!(reason.contains("storage name"), "{bad}: {reason}")
            }
            Err(e) => panic!("{bad}: {e}"),
            Ok(_) => panic!("{bad}: opened"),
        }
    }
}

#[tokio::test]
async fn the_catalog_survives_a_reopen() {
    let dir = TempDir::new("catalog");
    let store = open(dir.path());
    assert!(store
        .catalog_add("kept", "{\"name\":\"kept\"}")
        .await
        .unwrap());
    assert!(store.catalog_add("gone", "{}").await.unwrap());
    assert!(store.catalog_remove("gone").await.unwrap());
    store.close().await;
    let store = open(dir.path());
    assert_eq!(
        store.catalog().await.unwrap(),
        vec![("kept".to_string(), "{\"name\":\"kept\"}".to_string())]
    );
    store.close().await;
}

#[tokio::test]
async fn passes_the_likes_suite() {
    let dir = TempDir::new("likes");
    let store = open(dir.path());
    likes::run(&store, "dur").await;
    store.close().await;
}

const ACTORS: usize = 5;
const TARGETS: usize = 7;
const OWNERS: usize = 3;

/// The owner of target `t`: `c:(t % 3)`, none for the last target.
fn owner_of(t: usize) -> Option<String> {
    (t + 1 < TARGETS).then(|| format!("c:{}", t % OWNERS))
}

/// Boards fed by target (three periods and a blend), actor and owner.
fn like_boards(space: &LikeSpace) -> Vec<Board> {
    let part = |kind: &str, weight| BlendPart {
        kind: kind.parse().unwrap(),
        previous: false,
        weight,
    };
    let by_target = Board {
        periods: ["all", "daily", "weekly"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect::<Vec<PeriodKind>>()
            .into(),
        blends: Arc::from([Blend {
            name: Arc::from("hot"),
            parts: Arc::from([part("all", 0.5), part("daily", 2.0)]),
        }]),
        ..fed_board(
            space,
            "clips",
            Feed::Target,
            &[("like", 2.0), ("dislike", -1.0), ("comment", 3.0)],
        )
    };
    let by_actor = fed_board(
        space,
        "fans",
        Feed::Actor,
        &[("like", 1.0), ("comment", 2.0)],
    );
    let by_owner = fed_board(
        space,
        "creators",
        Feed::Owner,
        &[("like", 10.0), ("dislike", -1.0)],
    );
    vec![by_target, by_actor, by_owner]
}

/// Everything a reader can ask of the likes of `space` and its boards.
#[derive(Debug, PartialEq)]
struct LikesView {
    /// Per target: counts without an actor, then with each actor.
    counts: Vec<Vec<LikeCounts>>,
    lists: Vec<Vec<LikedTarget>>,
    owners: Vec<u64>,
    /// Per board, per period and blend: every entry.
    entries: Vec<Vec<Entry>>,
    /// Per board, per period and blend: each fed member's score.
    scores: Vec<Vec<f64>>,
    weights: Vec<(String, Weights)>,
}

async fn likes_view(store: &dyn Store, space: &LikeSpace, boards: &[Board]) -> LikesView {
    let member = |m: String| MemberId::new(&m).unwrap();
    let targets: Vec<MemberId> = (0..TARGETS).map(|t| member(format!("v:{t}"))).collect();
    let mut counts = vec![store.like_counts(space, &targets, None).await.unwrap()];
    let mut lists = Vec::new();
    for a in 0..ACTORS {
        let actor = member(format!("u:{a}"));
        counts.push(
            store
                .like_counts(space, &targets, Some(&actor))
                .await
                .unwrap(),
        );
        lists.push(store.actor_likes(space, &actor, 100).await.unwrap());
    }
    let mut owners = Vec::new();
    for o in 0..OWNERS {
        let owner = member(format!("c:{o}"));
        owners.push(store.owner_likes(space, &owner).await.unwrap());
    }
    let mut entries = Vec::new();
    let mut scores = Vec::new();
    let now = standings_core::store::now_ms_i64();
    for b in boards {
        store.maintain(b, &b.all_shards()).await.unwrap();
        let fed: Vec<String> = match b.source.as_ref().unwrap().feed {
            Feed::Target => (0..TARGETS).map(|t| format!("v:{t}")).collect(),
            Feed::Actor => (0..ACTORS).map(|a| format!("u:{a}")).collect(),
            Feed::Owner => (0..OWNERS).map(|o| format!("c:{o}")).collect(),
        };
        let sets = b
            .current_periods(now)
            .into_iter()
            .map(|p| b.at(p.id))
            .chain(b.blends.iter().map(|blend| b.at(blend.name.clone())));
        for set in sets {
            entries.push(all_entries(store, &set).await);
            let mut of_set = Vec::new();
            for m in &fed {
                of_set.push(score(store, &set, m).await);
            }
            scores.push(of_set);
        }
    }
    LikesView {
        counts,
        lists,
        owners,
        entries,
        scores,
        weights: store.weights().await.unwrap(),
    }
}

/// A mix of like actions (switches, no-ops, unlikes of nothing) and
/// comments over every actor and target, in batches of 1 to 7.
async fn event_mix(
    store: &dyn Store,
    space: &LikeSpace,
    boards: &[Board],
    n: usize,
) -> Vec<(Event, EventOutcome)> {
    const KINDS: [&str; 7] = [
        "like",
        "dislike",
        "like",
        "unlike",
        "undislike",
        "comment",
        "like",
    ];
    let events: Vec<Event> = (0..n)
        .map(|i| {
            let t = (i * 5 + i / 7) % TARGETS;
            event(
                &format!("ev-{i}"),
                KINDS[(i * 3 + i / 11) % KINDS.len()],
                &format!("u:{}", (i * 7 + i / 5) % ACTORS),
                &format!("v:{t}"),
                owner_of(t).as_deref(),
            )
        })
        .collect();
    let mut first = Vec::new();
    let mut rest = &events[..];
    let mut size = 1;
    while !rest.is_empty() {
        let (batch, tail) = rest.split_at(size.min(rest.len()));
        let out = store.apply_events(space, boards, batch).await.unwrap();
        assert_eq!(out.len(), batch.len());
        first.extend(batch.iter().cloned().zip(out));
        rest = tail;
        size = size % 7 + 1;
    }
    first
}

#[tokio::test]
async fn likes_lists_totals_boards_weights_and_dedup_survive_a_reopen() {
    let dir = TempDir::new("likes-reopen");
    let space = space("dur-reopen");
    let boards = like_boards(&space);
    let store = open(dir.path());
    let first = event_mix(&store, &space, &boards, 400).await;
    // A repeat within the call's batch and one in a later call.
    let (e, o) = &first[10];
    let again = store
        .apply_events(&space, &boards, &[e.clone(), e.clone()])
        .await
        .unwrap();
    assert_eq!(again[0].state, o.state);
    assert!(!again[0].applied && !again[1].applied);
    let clips = Weights::from_json(r#"{"like": 4, "comment": 0.5}"#).unwrap();
    store.set_weights(&boards[0], &clips).await.unwrap();
    store
        .set_weights(&boards[1], &Weights::from_json(r#"{"like": 1}"#).unwrap())
        .await
        .unwrap();
    let fans = Weights::from_json(r#"{"like": 2, "comment": 1}"#).unwrap();
    store.set_weights(&boards[1], &fans).await.unwrap();
    let before = likes_view(&store, &space, &boards).await;
    // The mix covers what is worth persisting: switches and no-ops, lists
    // trimmed to recent_per_actor, owners' totals, every kind of board.
    assert!(first
        .iter()
        .any(|(_, o)| o.state == Some(LikeState::Disliked)));
    assert!(first
        .iter()
        .any(|(e, o)| !o.applied && o.state.is_some() && e.kind.as_str() == "like"));
    assert!(before
        .lists
        .iter()
        .any(|l| l.len() == space.recent_per_actor));
    assert!(before.owners.iter().all(|&n| n > 0), "{:?}", before.owners);
    assert!(before.counts[0].iter().any(|c| c.dislikes > 0));
    assert!(before.scores.iter().all(|s| s.iter().any(|&v| v != 0.0)));
    assert_eq!(before.weights.len(), 2);
    store.close().await;

    let store = open(dir.path());
    assert_eq!(likes_view(&store, &space, &boards).await, before);
    // Every event id is remembered, no-ops included: the same event is a
    // repeat answering the first state, another event under the id is a
    // conflict.
    for (e, o) in &first {
        let out = store
            .apply_events(&space, &boards, std::slice::from_ref(e))
            .await
            .unwrap();
        assert_eq!(
            out[0],
            EventOutcome {
                applied: false,
                state: o.state,
                refused: None,
            },
            "{} after reopen",
            e.id
        );
        let other = Event {
            actor: MemberId::new("u:other").unwrap(),
            ..e.clone()
        };
        let out = store.apply_events(&space, &boards, &[other]).await.unwrap();
        assert_eq!(out[0].refused, Some(Refusal::Conflict), "{}", e.id);
    }
    assert_eq!(likes_view(&store, &space, &boards).await, before);
    // And the store still takes events, on top of what it loaded.
    let c = store
        .like_counts(&space, &[MemberId::new("v:0").unwrap()], None)
        .await
        .unwrap()[0];
    let out = store
        .apply_events(
            &space,
            &boards,
            &[event(
                "new-1",
                "like",
                "u:new",
                "v:0",
                owner_of(0).as_deref(),
            )],
        )
        .await
        .unwrap();
    assert!(out[0].applied);
    let after = store
        .like_counts(&space, &[MemberId::new("v:0").unwrap()], None)
        .await
        .unwrap()[0];
    assert_eq!(after.likes, c.likes + 1);
    store.close().await;
}

/// Tasks acting on the same few (target, actor) pairs at once: whatever
/// order their commits took, the reopened store answers what memory did.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_events_reopen_to_what_memory_answered() {
    let dir = TempDir::new("likes-concurrent");
    let space = space("dur-conc");
    let boards = like_boards(&space);
    let store = Arc::new(open(dir.path()));
    let mut tasks = Vec::new();
    for task in 0..8usize {
        let (store, space, boards) = (store.clone(), space.clone(), boards.clone());
        tasks.push(tokio::spawn(async move {
            const KINDS: [&str; 5] = ["like", "dislike", "unlike", "like", "undislike"];
            for i in 0..200usize {
                let t = (task + i) % 2;
                let e = event(
                    &format!("c{task}-{i}"),
                    KINDS[(task * 3 + i) % KINDS.len()],
                    &format!("u:{}", (task / 2 + i) % 2),
                    &format!("v:{t}"),
                    owner_of(t).as_deref(),
                );
                store.apply_events(&space, &boards, &[e]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let before = likes_view(&*store, &space, &boards).await;
    let store = Arc::into_inner(store).expect("tasks are done");
    store.close().await;
    let store = open(dir.path());
    assert_eq!(likes_view(&store, &space, &boards).await, before);
    store.close().await;
}

/// A likes row this release cannot read fails the open as corrupt, naming
/// its table.
#[tokio::test]
async fn a_likes_row_that_is_not_valid_is_corrupt() {
    use redb::{Database, TableDefinition, WriteTransaction};
    type Put = fn(&WriteTransaction);
    let cases: [(&str, Put); 5] = [
        ("like_states", |txn| {
            txn.open_table(TableDefinition::<(&str, &str, &str), u8>::new(
                "like_states",
            ))
            .unwrap()
            .insert(("acme", "v:1", "u:1"), b'x')
            .unwrap();
        }),
        ("like_counts", |txn| {
            txn.open_table(TableDefinition::<(&str, &str), (u64, u64)>::new(
                "like_counts",
            ))
            .unwrap()
            .insert(("Acme", "v:1"), (1, 0))
            .unwrap();
        }),
        ("actor_likes", |txn| {
            txn.open_table(TableDefinition::<(&str, &str, &str), u64>::new(
                "actor_likes",
            ))
            .unwrap()
            .insert(("acme", "", "v:1"), 1)
            .unwrap();
        }),
        ("events", |txn| {
            txn.open_table(TableDefinition::<(u64, &str, &str), (u64, Option<u8>)>::new("events"))
                .unwrap()
                .insert((u64::MAX, "acme", "has space"), (1, None))
                .unwrap();
        }),
        ("weights", |txn| {
            txn.open_table(TableDefinition::<&str, &str>::new("weights"))
                .unwrap()
                .insert("acme.clips", "{\"like\": \"many\"}")
                .unwrap();
        }),
    ];
    for (table, put) in cases {
        let dir = TempDir::new("bad-likes");
        std::fs::create_dir_all(dir.path()).unwrap();
        let file = dir.path().join("standings.redb");
        {
            let db = Database::create(&file).unwrap();
            let txn = db.begin_write().unwrap();
            put(&txn);
            txn.commit().unwrap();
        }
        match DurableStore::open(dir.path(), DurableOptions::default()) {
            Err(OpenError::Corrupt { reason, .. }) => {
                assert!(reason.contains(table), "{table}: {reason}")
            }
            Err(e) => panic!("{table}: {e}"),
            Ok(_) => panic!("{table}: opened"),
        }
    }
}

/// Rows of `dir/journal.redb` (opened directly, the store closed).
fn journal_rows(dir: &Path) -> usize {
    let db = redb::Database::open(dir.join("journal.redb")).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let table: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("journal");
    let table = txn.open_table(table).unwrap();
    redb::ReadableTableMetadata::len(&table).unwrap() as usize
}

/// A store whose tasks die with their runtime (as in `kill -9`: nothing
/// is closed) before any checkpoint leaves its acknowledged writes only in
/// the journal; the next open applies them and answers every read, and
/// every repeat of a key, as before.
#[test]
fn writes_only_in_the_journal_are_applied_at_the_next_open() {
    let dir = TempDir::new("journal-replay");
    let options = DurableOptions {
        checkpoint_every: Duration::from_secs(3600),
        ..DurableOptions::default()
    };
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    };
    let rt = runtime();
    let (store, keyed, before) = rt.block_on(async {
        let store = DurableStore::open(dir.path(), options).unwrap();
        let keyed = write_mix(&store, 200, "j1").await;
        let mut before = Vec::new();
        for b in boards() {
            before.push(view(&store, &b, 40).await);
        }
        (store, keyed, before)
    });
    // The committer and checkpointer stop at their next await; blocking
    // commits in flight finish. Then the files are released.
    rt.shutdown_timeout(Duration::from_secs(10));
    drop(store);
    assert!(
        journal_rows(dir.path()) > 0,
        "the acknowledged writes are in the journal, not yet checkpointed"
    );

    let rt = runtime();
    rt.block_on(async {
        let store = DurableStore::open(dir.path(), options).unwrap();
        for (b, want) in boards().iter().zip(&before) {
            assert_eq!(&view(&store, b, 40).await, want, "board {}", b.name);
        }
        for (b, w, first) in &keyed {
            let again = store.apply(b, w).await.unwrap();
            assert!(!again.applied, "a repeat after the replay is not applied");
            assert_eq!(again.scores, first.scores);
        }
        store.close().await;
    });
    assert_eq!(
        journal_rows(dir.path()),
        0,
        "a clean close empties the journal"
    );
    let rt = runtime();
    rt.block_on(async {
        let store = open(dir.path());
        for (b, want) in boards().iter().zip(&before) {
            assert_eq!(&view(&store, b, 40).await, want, "after the checkpoint");
        }
        store.close().await;
    });
}

/// A journal is applied only to the database it was written for: one
/// copied in from another data directory is refused, naming the file, and
/// the database itself is untouched by the attempt.
#[tokio::test]
async fn a_journal_of_another_database_is_refused() {
    let (a, b) = (TempDir::new("journal-a"), TempDir::new("journal-b"));
    let mut before = Vec::new();
    for (dir, rounds) in [(&a, 10), (&b, 30)] {
        let store = open(dir.path());
        write_mix(&store, rounds, "jx").await;
        before.clear();
        for b in boards() {
            before.push(view(&store, &b, 40).await);
        }
        store.close().await;
    }
    let theirs = b.path().join("journal.redb");
    std::fs::copy(a.path().join("journal.redb"), &theirs).unwrap();
    let err = DurableStore::open(b.path(), DurableOptions::default())
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(matches!(err, OpenError::Corrupt { .. }), "{text}");
    assert!(
        text.contains(&theirs.display().to_string()) && text.contains("another database"),
        "{text}"
    );
    // Moved away, as the message says, the database opens as it was.
    std::fs::remove_file(&theirs).unwrap();
    let store = open(b.path());
    for (board, want) in boards().iter().zip(&before) {
        assert_eq!(&view(&store, board, 40).await, want, "nothing lost");
    }
    store.close().await;
}
