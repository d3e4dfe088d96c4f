//! The refresher: reads each board's group snapshots, merges them into the
//! global TOP-K when their versions moved, swaps the new [`View`] in, and
//! writes the static JSON files whose bytes changed.
//!
//! A refresh that cannot reach the store keeps the last good view and marks
//! it stale (reads degrade, never fail open).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use standings_core::merge::merge_sorted;
use standings_core::snapshot::{self, LoadError};
use standings_core::store::now_ms;
use standings_core::{Scope, Store};

use crate::view::{BoardState, View};

/// What one refresh of one board did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    /// Versions unchanged; nothing swapped.
    Unchanged,
    /// A new merge was swapped in.
    Changed,
    /// The store failed; the old view stays, marked stale.
    Stale,
}

/// Refreshes one board.
pub async fn refresh_board(store: &dyn Store, state: &BoardState) -> Refreshed {
    let outcome = merge_groups(store, state).await;
    let now = now_ms();
    if outcome.is_ok() {
        state.refreshed_at_ms.store(now, Ordering::Relaxed);
    }
    // How far behind the store the served view may be: up to one interval
    // while refreshes succeed, growing while they fail.
    let age_ms = now.saturating_sub(state.refreshed_at_ms.load(Ordering::Relaxed));
    metrics::gauge!("standings_snapshot_age_seconds", "board" => state.board.name.to_string())
        .set(age_ms as f64 / 1000.0);
    match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            metrics::counter!("standings_refresh_errors_total").increment(1);
            tracing::warn!(board = %state.board.name, error = %e, "refresh failed; serving the last good view as stale");
            let current = state.view.load();
            state
                .view
                .store(Arc::new(current.as_stale(&state.board, age_ms)));
            Refreshed::Stale
        }
    }
}

async fn merge_groups(store: &dyn Store, state: &BoardState) -> Result<Refreshed, LoadError> {
    let board = &state.board;
    let mut lists = Vec::with_capacity(board.groups as usize);
    let mut version = 0u64;
    for group in 0..board.groups {
        if let Some(snapshot) = snapshot::load(store, board, Scope::Group(group)).await? {
            version += snapshot.version;
            lists.push(snapshot.entries);
        }
    }
    let current = state.view.load();
    if current.loaded && !current.stale && current.version == version {
        return Ok(Refreshed::Unchanged);
    }
    let started = Instant::now();
    let refs: Vec<&[_]> = lists.iter().map(Vec::as_slice).collect();
    let entries = merge_sorted(&refs, board.top_k, board.order);
    metrics::histogram!("standings_global_merge_seconds").record(started.elapsed().as_secs_f64());
    let unchanged = current.loaded && current.version == version;
    let generated_at = if unchanged {
        current.generated_at_ms
    } else {
        now_ms()
    };
    let view = View::build(board, version, generated_at, entries, false, true);
    state.view.store(Arc::new(view));
    // Either the versions moved or the view comes back from stale; both
    // change the served bytes, so both count as a change (CDN copies of a
    // stale body get purged too).
    Ok(Refreshed::Changed)
}

/// Writes the static JSON files of boards whose bytes changed, atomically
/// (write to a temporary file, then rename), remembering what it wrote so
/// unchanged bytes are never rewritten.
pub struct StaticWriter {
    dir: PathBuf,
    /// Path -> FNV-1a of the bytes last written there.
    written: HashMap<PathBuf, u64>,
}

impl StaticWriter {
    /// Writes under `dir`, creating it when needed.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            written: HashMap::new(),
        }
    }

    /// Writes `top20.json`, `top100.json` and `top1000.json` of `state` if
    /// their bytes changed. Stale views are not written: the files always
    /// hold the last good merge. Returns how many files were written.
    pub fn write(&mut self, state: &BoardState) -> std::io::Result<usize> {
        let view = state.view.load();
        if view.stale || !view.loaded {
            return Ok(0);
        }
        let dir = self.dir.join(state.board.name.as_str());
        std::fs::create_dir_all(&dir)?;
        let mut count = 0;
        for rendered in &view.bodies {
            let path = dir.join(format!("top{}.json", rendered.limit));
            let hash = standings_core::board::fnv1a64(&rendered.body);
            if self.written.get(&path) == Some(&hash) || same_bytes(&path, &rendered.body) {
                self.written.insert(path, hash);
                continue;
            }
            write_atomically(&path, &rendered.body)?;
            self.written.insert(path, hash);
            count += 1;
        }
        metrics::counter!("standings_static_files_written_total").increment(count as u64);
        Ok(count)
    }
}

fn same_bytes(path: &Path, bytes: &[u8]) -> bool {
    std::fs::read(path).is_ok_and(|old| old == bytes)
}

/// Writes to `.NAME.tmp` beside `path` and renames it over `path`, so a
/// reader (or a CDN origin) never sees a half-written file.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use standings_core::{Board, BoardName, Entry, MemberId, Score};

    fn state(entries: usize) -> BoardState {
        let board = Board::new(BoardName::new("files").unwrap());
        let s = BoardState::new(board.clone());
        let entries = (0..entries)
            .map(|i| {
                Entry::new(
                    MemberId::new(&format!("m{i}")).unwrap(),
                    Score::new(1000.0 - i as f64).unwrap(),
                )
            })
            .collect();
        s.view
            .store(Arc::new(View::build(&board, 1, 5, entries, false, true)));
        s
    }

    #[tokio::test]
    async fn unreadable_store_serves_the_last_view_as_stale() {
        use standings_core::{MemoryStore, Op, Write};
        use standings_shard_agent::Agent;
        let board = Board {
            shards: 4,
            groups: 2,
            ..Board::new(BoardName::new("stale").unwrap())
        };
        let store = MemoryStore::new();
        let state = BoardState::new(board.clone());
        for i in 0..10 {
            let w = Write {
                member: MemberId::new(&format!("m{i}")).unwrap(),
                op: Op::Set,
                value: Score::new(f64::from(i)).unwrap(),
                idempotency_key: None,
                request_id: "t".into(),
            };
            store.apply(&board, &w).await.unwrap();
        }
        let mut agent = Agent::new();
        agent.shard_tick(&store, &board, None).await.unwrap();
        agent.group_tick(&store, &board, None).await.unwrap();
        assert_eq!(refresh_board(&store, &state).await, Refreshed::Changed);
        assert_eq!(refresh_board(&store, &state).await, Refreshed::Unchanged);
        let fresh = state.view.load_full();
        assert_eq!(
            (fresh.version, fresh.entries.len(), fresh.stale),
            (10, 10, false)
        );

        // A group snapshot the gateway cannot read: keep serving, marked stale.
        store
            .put_snapshot(
                &board,
                Scope::Group(0),
                bytes::Bytes::from_static(b"garbage"),
            )
            .await
            .unwrap();
        assert_eq!(refresh_board(&store, &state).await, Refreshed::Stale);
        let stale = state.view.load_full();
        assert!(stale.stale);
        assert_eq!(stale.entries, fresh.entries, "the last good entries");
        let body: serde_json::Value =
            serde_json::from_slice(&stale.prerendered(20).unwrap().body).unwrap();
        assert_eq!(body["stale"], true);
        assert!(
            body["age_ms"].is_u64(),
            "stale bodies carry their age: {body}"
        );

        // Once readable again the view is fresh and counts as a change.
        Agent::new().group_tick(&store, &board, None).await.unwrap();
        assert_eq!(refresh_board(&store, &state).await, Refreshed::Changed);
        let back = state.view.load_full();
        assert!(!back.stale);
        assert_eq!(
            back.prerendered(20).unwrap().body,
            fresh.prerendered(20).unwrap().body
        );
    }

    #[test]
    fn static_files_are_written_once_per_change() {
        let dir = std::env::temp_dir().join(format!("standings-static-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut writer = StaticWriter::new(&dir);
        let s = state(30);
        assert_eq!(writer.write(&s).unwrap(), 3);
        assert_eq!(
            writer.write(&s).unwrap(),
            0,
            "unchanged bytes are not rewritten"
        );
        let on_disk = std::fs::read(dir.join("files/top20.json")).unwrap();
        assert_eq!(
            on_disk,
            s.view.load().prerendered(20).unwrap().body.to_vec()
        );
        let mut fresh = StaticWriter::new(&dir);
        assert_eq!(
            fresh.write(&s).unwrap(),
            0,
            "a restart compares with the files on disk"
        );
        let changed = state(31);
        assert_eq!(
            fresh.write(&changed).unwrap(),
            2,
            "top20 is the same; top100 and top1000 grew"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
