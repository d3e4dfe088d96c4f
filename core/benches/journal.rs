//! The durable store's journal commit, redb against fjall: the measured
//! comparison behind the choice of `core/src/store/durable`.
//!
//! A group commit of the durable store appends one row (the group's
//! mutations, about 2 KB for the 13 writes that 32 connections give a
//! group) to `journal.redb` in one redb transaction with
//! `Durability::Immediate`, and every 64th commit also trims rows the
//! checkpoints have applied (`append_journal` in `durable/mod.rs`). This
//! does the same with redb 4, then with fjall 2 the way a journal on it
//! would work: insert the row into a partition, remove the trimmed ones,
//! and `Keyspace::persist(PersistMode::SyncData)` (an `fdatasync` of its
//! write-ahead journal). It prints, per engine and round, the wall time
//! and this process's CPU time per commit, and fjall's figures over
//! redb's, alternating the two for `BENCH_ROUNDS` rounds of
//! `BENCH_COMMITS` commits so both see the same disk and load.
//!
//! `cargo bench -p standings-core --bench journal`; the files go to a
//! fresh directory under the system's temp dir (`TMPDIR`), removed at the
//! end. Put it on the disk the data directory would use.

use std::path::Path;
use std::time::Instant;

use standings_test_support::process::{env_or, process_cpu_seconds};

const JOURNAL: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("journal");

/// The bytes of one group's row.
const ROW_BYTES: usize = 2000;
/// Every this many commits, the rows the checkpoints applied are trimmed.
const TRIM_EVERY: u64 = 64;

/// (wall µs, CPU µs) per commit.
type PerCommit = (f64, f64);

fn timed(commits: u64, mut commit: impl FnMut(u64)) -> PerCommit {
    let (cpu, wall) = (process_cpu_seconds(), Instant::now());
    for seq in 0..commits {
        commit(seq);
    }
    let per = |s: f64| s * 1e6 / commits as f64;
    (
        per(wall.elapsed().as_secs_f64()),
        per(process_cpu_seconds() - cpu),
    )
}

/// The rows a trim at `seq` removes: those the checkpoints have applied,
/// all but the newest half of the window.
fn trimmed(seq: u64) -> Option<std::ops::RangeInclusive<u64>> {
    (seq % TRIM_EVERY == TRIM_EVERY - 1).then(|| seq + 1 - TRIM_EVERY..=seq - TRIM_EVERY / 2)
}

fn redb_round(dir: &Path, commits: u64, row: &[u8]) -> PerCommit {
    let db = redb::Database::create(dir.join("journal.redb")).expect("create journal.redb");
    timed(commits, |seq| {
        let txn = db.begin_write().expect("begin");
        {
            let mut rows = txn.open_table(JOURNAL).expect("table");
            if let Some(range) = trimmed(seq) {
                rows.retain_in(range, |_, _| false).expect("trim");
            }
            rows.insert(seq, row).expect("insert");
        }
        txn.commit().expect("commit");
    })
}

fn fjall_round(dir: &Path, commits: u64, row: &[u8]) -> PerCommit {
    let keyspace = fjall::Config::new(dir.join("journal.fjall"))
        .open()
        .expect("open the fjall keyspace");
    let rows = keyspace
        .open_partition("journal", fjall::PartitionCreateOptions::default())
        .expect("partition");
    timed(commits, |seq| {
        if let Some(range) = trimmed(seq) {
            for s in range {
                rows.remove(s.to_be_bytes()).expect("trim");
            }
        }
        rows.insert(seq.to_be_bytes(), row).expect("insert");
        keyspace
            .persist(fjall::PersistMode::SyncData)
            .expect("persist");
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let commits: u64 = env_or("BENCH_COMMITS", 5000);
    let rounds: u64 = env_or("BENCH_ROUNDS", 3);
    let row = vec![0x5a; ROW_BYTES];
    let dir = std::env::temp_dir().join(format!("standings-journal-bench-{}", std::process::id()));
    println!(
        "journal bench: {commits} commits of one {ROW_BYTES}-byte row, each fsynced, trim every {TRIM_EVERY}, {rounds} rounds, in {}",
        dir.display()
    );
    for round in 0..rounds {
        let fresh = |name: &str| {
            let d = dir.join(format!("{name}-{round}"));
            std::fs::create_dir_all(&d).expect("bench dir");
            d
        };
        let (rw, rc) = redb_round(&fresh("redb"), commits, &row);
        let (fw, fc) = fjall_round(&fresh("fjall"), commits, &row);
        println!(
            "round {round}: redb {rw:>7.1} us wall {rc:>6.1} us cpu per commit | fjall {fw:>7.1} us wall {fc:>6.1} us cpu | fjall / redb: wall {:.2}x, cpu {:.2}x",
            fw / rw,
            fc / rc
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
