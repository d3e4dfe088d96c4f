//! The rank index's reads of `RedisStore` (`index_scan`, `index_tail`) on
//! a real cluster: a scan's counts equal the oracle; a scan plus the
//! records after it, applied in order, equal the oracle after writes of
//! every op, removals and a multi-period board; records trimmed unread
//! are reported as a gap, never skipped.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use standings_core::store::{now_ms_i64, IndexPos, IndexTail, RedisOptions, RedisStore};
use standings_core::{keyspace, Board, BoardName, MemberId, Op, PeriodKind, Score, Store, Write};
use standings_test_support::{redis, RedisCluster};

async fn connect(cluster: &RedisCluster) -> RedisStore {
    RedisStore::connect(&cluster.nodes(), RedisOptions::default())
        .await
        .expect("connect to the test cluster")
}

fn board(name: &str, shards: u32, periods: &[PeriodKind]) -> Board {
    Board {
        shards,
        groups: 1,
        periods: periods.to_vec().into(),
        ..Board::new(BoardName::new(name).expect("board name"))
    }
}

fn write(member: &str, op: Op, value: f64) -> Write {
    Write {
        member: MemberId::new(member).expect("member"),
        op,
        value: Score::new(value).expect("score"),
        idempotency_key: None,
        request_id: "index".into(),
        meta: None,
    }
}

/// Score bits -> members holding it: the oracle's counts.
type Counts = BTreeMap<u64, u64>;

fn counts_of(scores: &HashMap<String, f64>) -> Counts {
    let mut c = Counts::new();
    for s in scores.values() {
        *c.entry(s.to_bits()).or_default() += 1;
    }
    c
}

/// Sums shard scans into counts per period, in the order asked.
fn summed(scans: &[standings_core::store::IndexScan], periods: usize) -> Vec<Counts> {
    let mut out = vec![Counts::new(); periods];
    for scan in scans {
        for (p, runs) in scan.counts.iter().enumerate() {
            for &(score, n) in runs {
                *out[p].entry(score.to_bits()).or_default() += n;
            }
        }
    }
    out
}

/// Applies every record after `pos` to `counts` (by period id); panics on
/// a gap.
async fn follow(
    store: &RedisStore,
    board: &Board,
    pos: &mut [IndexPos],
    counts: &mut HashMap<String, Counts>,
) {
    let shards = board.all_shards();
    loop {
        let tails = store
            .index_tail(board, &shards, pos, 7)
            .await
            .expect("tail");
        let mut more = false;
        for (s, tail) in tails.into_iter().enumerate() {
            let IndexTail::Records { records, pos: next } = tail else {
                panic!("unexpected gap in shard {s}");
            };
            more |= records.len() == 7;
            for record in records {
                for m in record.moves {
                    let c = counts.entry(m.period.to_string()).or_default();
                    if let Some(old) = m.old {
                        let n = c.get_mut(&old.to_bits()).expect("old score counted");
                        *n -= 1;
                        if *n == 0 {
                            c.remove(&old.to_bits());
                        }
                    }
                    if let Some(new) = m.new {
                        *c.entry(new.to_bits()).or_default() += 1;
                    }
                }
            }
            pos[s] = next;
        }
        if !more {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_and_the_records_after_it_equal_the_oracle() {
    let cluster = RedisCluster::start(3, 0);
    let store = connect(&cluster).await;
    let b = board("ixoracle", 8, &[PeriodKind::All, PeriodKind::Daily]);
    let periods: Vec<Arc<str>> = b
        .current_periods(now_ms_i64())
        .into_iter()
        .map(|p| p.id)
        .collect();
    let mut rng = StdRng::seed_from_u64(15);
    let mut oracle: HashMap<String, f64> = HashMap::new();
    let step = |rng: &mut StdRng, oracle: &mut HashMap<String, f64>| {
        let m = format!("m:{}", rng.gen_range(0..60));
        let v = f64::from(rng.gen_range(0..12));
        let op = [Op::Incr, Op::Set, Op::Best][rng.gen_range(0..3)];
        let old = oracle.get(&m).copied();
        let new = match op {
            Op::Incr => old.unwrap_or(0.0) + v,
            Op::Set => v,
            Op::Best => old.map_or(v, |o| o.max(v)),
            Op::Remove => unreachable!("not drawn"),
        };
        oracle.insert(m.clone(), new);
        write(&m, op, v)
    };
    for _ in 0..150 {
        let w = step(&mut rng, &mut oracle);
        store.apply(&b, &w).await.expect("write");
    }
    let shards = b.all_shards();
    let scans = store
        .index_scan(&b, &shards, &periods, false)
        .await
        .expect("scan");
    let scanned = summed(&scans, periods.len());
    for c in &scanned {
        assert_eq!(*c, counts_of(&oracle), "scan of every period");
    }
    // With the members: the same counts, and every member's score.
    let full = store
        .index_scan(&b, &shards, &periods, true)
        .await
        .expect("scan with members");
    assert_eq!(summed(&full, periods.len()), scanned);
    for p in 0..periods.len() {
        let got: HashMap<String, f64> = full
            .iter()
            .flat_map(|s| s.members[p].iter())
            .map(|(m, s)| (m.as_str().to_string(), *s))
            .collect();
        assert_eq!(got, oracle, "members of period {p}");
    }
    let mut pos: Vec<IndexPos> = scans.iter().map(|s| s.pos.clone()).collect();
    let mut counts: HashMap<String, Counts> =
        periods.iter().map(|p| p.to_string()).zip(scanned).collect();

    // Every op, and removals, after the scan.
    for i in 0..200 {
        if i % 10 == 0 {
            let m = format!("m:{}", rng.gen_range(0..60));
            let had = oracle.remove(&m).is_some();
            let removed = store
                .remove(&b, &MemberId::new(&m).unwrap(), "index")
                .await
                .expect("remove");
            assert_eq!(removed, had, "remove {m}");
        } else {
            let w = step(&mut rng, &mut oracle);
            store.apply(&b, &w).await.expect("write");
        }
    }
    follow(&store, &b, &mut pos, &mut counts).await;
    for p in &periods {
        assert_eq!(counts[&**p], counts_of(&oracle), "followed period {p}");
    }
    // Nothing new: the positions stay and nothing is read.
    let again = pos.clone();
    follow(&store, &b, &mut pos, &mut counts).await;
    assert_eq!(pos, again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_trimmed_unread_are_a_gap() {
    let cluster = RedisCluster::start(3, 0);
    let store = connect(&cluster).await;
    let b = board("ixgap", 1, &[PeriodKind::All]);
    let periods: Vec<Arc<str>> = vec!["all".into()];
    store.apply(&b, &write("m:1", Op::Set, 1.0)).await.unwrap();
    let scans = store.index_scan(&b, &[0], &periods, false).await.unwrap();
    let mut pos = vec![scans[0].pos.clone()];
    assert_eq!(pos[0].added, 1);
    for i in 0..5 {
        store
            .apply(&b, &write(&format!("m:{i}"), Op::Incr, 1.0))
            .await
            .unwrap();
    }
    // Reading some is fine.
    let tails = store.index_tail(&b, &[0], &pos, 2).await.unwrap();
    let IndexTail::Records { records, pos: next } = &tails[0] else {
        panic!("no gap yet: {tails:?}");
    };
    assert_eq!(records.len(), 2);
    assert_eq!(next.added, 3);
    pos[0] = next.clone();
    // Trim the stream past what was read: the rest is gone.
    let stream = keyspace::shard_audit(&b, 0);
    let mut trim = redis::cmd("XTRIM");
    trim.arg(&stream).arg("MAXLEN").arg(1);
    cluster.query(&cluster.master_of_key(&stream), &trim);
    let tails = store.index_tail(&b, &[0], &pos, 100).await.unwrap();
    assert_eq!(tails[0], IndexTail::Gap);
    // Trimming only what was read already is no gap.
    let scans = store.index_scan(&b, &[0], &periods, false).await.unwrap();
    let pos = vec![scans[0].pos.clone()];
    store.apply(&b, &write("m:9", Op::Set, 4.0)).await.unwrap();
    let mut trim = redis::cmd("XTRIM");
    trim.arg(&stream).arg("MAXLEN").arg(1);
    cluster.query(&cluster.master_of_key(&stream), &trim);
    let tails = store.index_tail(&b, &[0], &pos, 100).await.unwrap();
    let IndexTail::Records { records, .. } = &tails[0] else {
        panic!("only read records were trimmed: {tails:?}");
    };
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].moves[0].new, Some(4.0));
    assert_eq!(records[0].member.as_str(), "m:9");
}

/// What a members index needs besides the moves: whose record, a
/// removal, the meta a write set; and a scan's metas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_name_the_member_removals_and_metas() {
    let cluster = RedisCluster::start(3, 0);
    let store = connect(&cluster).await;
    let b = board("ixmeta", 2, &[PeriodKind::All]);
    let periods: Vec<Arc<str>> = vec!["all".into()];
    let meta = standings_core::Meta::parse(r#"{"name":"Ann"}"#).unwrap();
    let with_meta = Write {
        meta: Some(meta.clone()),
        ..write("m:1", Op::Set, 3.0)
    };
    store.apply(&b, &with_meta).await.unwrap();
    let shards = b.all_shards();
    let scans = store.index_scan(&b, &shards, &periods, true).await.unwrap();
    let metas: Vec<_> = scans.iter().flat_map(|s| s.metas.clone()).collect();
    assert_eq!(metas, vec![(MemberId::new("m:1").unwrap(), meta.clone())]);
    let mut pos: Vec<IndexPos> = scans.iter().map(|s| s.pos.clone()).collect();
    store.apply(&b, &write("m:1", Op::Incr, 1.0)).await.unwrap();
    store.apply(&b, &with_meta).await.unwrap();
    store
        .remove(&b, &MemberId::new("m:1").unwrap(), "t")
        .await
        .unwrap();
    let shard = b.shard_of(&MemberId::new("m:1").unwrap()).unwrap() as usize;
    let tails = store.index_tail(&b, &shards, &pos, 100).await.unwrap();
    let IndexTail::Records { records, pos: next } = &tails[shard] else {
        panic!("no gap: {tails:?}");
    };
    pos[shard] = next.clone();
    let seen: Vec<(&str, bool, Option<f64>, bool)> = records
        .iter()
        .map(|r| {
            (
                r.member.as_str(),
                r.removed,
                r.moves.first().and_then(|m| m.new),
                r.meta.is_some(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("m:1", false, Some(4.0), false),
            ("m:1", false, Some(3.0), true),
            ("m:1", true, None, false),
        ]
    );
    assert_eq!(records[1].meta.as_ref(), Some(&meta));
}
