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
use standings_core::store::{now_ms, now_ms_i64};
use standings_core::{Board, Entry, Scope, Store};

use crate::period::{PeriodInfo, Slot};
use crate::view::{BoardState, View};

/// What one refresh of one board did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    /// Versions unchanged; nothing swapped.
    Unchanged,
    /// A new merge was swapped in for at least one period.
    Changed,
    /// The store failed; the old views stay, marked stale.
    Stale,
}

/// Refreshes every period view of one board; answers what happened and
/// which slots (indexes into [`BoardState::slots`]) changed.
pub async fn refresh_board(store: &dyn Store, state: &BoardState) -> Refreshed {
    refresh_board_slots(store, state).await.0
}

/// [`refresh_board`], also answering the slots whose view changed.
pub async fn refresh_board_slots(store: &dyn Store, state: &BoardState) -> (Refreshed, Vec<usize>) {
    let now = now_ms();
    let now_i = now_ms_i64();
    let mut changed = Vec::new();
    let mut failed = None;
    for (i, slot) in state.slots.iter().enumerate() {
        match merge_groups(store, state, i, slot.resolve(&state.board, now_i)).await {
            Ok(Refreshed::Changed) => changed.push(i),
            Ok(_) => {}
            Err(e) => failed = Some(e),
        }
    }
    if failed.is_none() {
        state.refreshed_at_ms.store(now, Ordering::Relaxed);
    }
    // How far behind the store the served view may be: up to one interval
    // while refreshes succeed, growing while they fail.
    let age_ms = now.saturating_sub(state.refreshed_at_ms.load(Ordering::Relaxed));
    metrics::gauge!("standings_snapshot_age_seconds", "board" => state.board.name.to_string())
        .set(age_ms as f64 / 1000.0);
    match failed {
        None if changed.is_empty() => (Refreshed::Unchanged, changed),
        None => (Refreshed::Changed, changed),
        Some(e) => {
            metrics::counter!("standings_refresh_errors_total").increment(1);
            tracing::warn!(board = %state.board.name, error = %e, "refresh failed; serving the last good views as stale");
            for view in &state.views {
                let current = view.load();
                view.store(Arc::new(current.as_stale(&state.board, age_ms)));
            }
            (Refreshed::Stale, changed)
        }
    }
}

/// Merges the group snapshots of `period` into view `slot` of `state`
/// when their versions moved (or the slot moved on to another period).
async fn merge_groups(
    store: &dyn Store,
    state: &BoardState,
    slot: usize,
    period: PeriodInfo,
) -> Result<Refreshed, LoadError> {
    let board = state.board.at(period.id.clone());
    let (version, entries) = merge_period(store, &board).await?;
    let current = state.views[slot].load();
    let same_period = current.period.id == period.id;
    if current.loaded && !current.stale && same_period && current.version == version {
        if current.period.closed != period.closed {
            let view = View::build(
                &board,
                period,
                version,
                current.generated_at_ms,
                entries,
                false,
                true,
            );
            state.views[slot].store(Arc::new(view));
            return Ok(Refreshed::Changed);
        }
        return Ok(Refreshed::Unchanged);
    }
    let unchanged = current.loaded && same_period && current.version == version;
    let generated_at = if unchanged {
        current.generated_at_ms
    } else {
        now_ms()
    };
    let view = View::build(&board, period, version, generated_at, entries, false, true);
    state.views[slot].store(Arc::new(view));
    // Either the versions moved or the view comes back from stale; both
    // change the served bytes, so both count as a change (CDN copies of a
    // stale body get purged too).
    Ok(Refreshed::Changed)
}

/// The global TOP-K of the period `board` addresses: its group snapshots
/// merged, with the sum of their versions.
pub async fn merge_period(
    store: &dyn Store,
    board: &Board,
) -> Result<(u64, Vec<Entry>), LoadError> {
    let mut lists = Vec::with_capacity(board.groups as usize);
    let mut version = 0u64;
    for group in 0..board.groups {
        if let Some(snapshot) = snapshot::load(store, board, Scope::Group(group)).await? {
            version += snapshot.version;
            lists.push(snapshot.entries);
        }
    }
    let started = Instant::now();
    let refs: Vec<&[_]> = lists.iter().map(Vec::as_slice).collect();
    let entries = merge_sorted(&refs, board.top_k, board.order);
    metrics::histogram!("standings_global_merge_seconds").record(started.elapsed().as_secs_f64());
    Ok((version, entries))
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

    /// The directories (relative to the board's, `""` for the board's
    /// own) whose files show view `slot`: the first period's files sit at
    /// the board's top level and under its kind, other current periods
    /// under their kind, blends under their name.
    pub fn dirs(state: &BoardState, slot: usize) -> Vec<String> {
        let mut dirs = Vec::new();
        if slot == 0 {
            dirs.push(String::new());
        }
        if let Some(dir) = state.slots.get(slot).and_then(Slot::static_dir) {
            dirs.push(dir);
        }
        dirs
    }

    /// Writes `top20.json`, `top100.json` and `top1000.json` of every view
    /// of `state` whose bytes changed. Stale views are not written: the
    /// files always hold the last good merge. Returns how many files were
    /// written.
    pub fn write(&mut self, state: &BoardState) -> std::io::Result<usize> {
        let mut count = 0;
        for slot in 0..state.slots.len() {
            count += self.write_slot(state, slot)?;
        }
        Ok(count)
    }

    /// [`StaticWriter::write`] for one view.
    pub fn write_slot(&mut self, state: &BoardState, slot: usize) -> std::io::Result<usize> {
        let view = state.views[slot].load();
        if view.stale || !view.loaded {
            return Ok(0);
        }
        let mut count = 0;
        for sub in Self::dirs(state, slot) {
            let mut dir = self.dir.join(state.board.name.as_str());
            if !sub.is_empty() {
                dir = dir.join(&sub);
            }
            std::fs::create_dir_all(&dir)?;
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
    use standings_core::{BoardName, MemberId, Score};

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
        let period = s.slots[0].resolve(&board, 0);
        s.view().store(Arc::new(View::build(
            &board, period, 1, 5, entries, false, true,
        )));
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
                meta: None,
            };
            store.apply(&board, &w).await.unwrap();
        }
        let mut agent = Agent::new();
        agent.shard_tick(&store, &board, None).await.unwrap();
        agent.group_tick(&store, &board, None).await.unwrap();
        assert_eq!(refresh_board(&store, &state).await, Refreshed::Changed);
        assert_eq!(refresh_board(&store, &state).await, Refreshed::Unchanged);
        let fresh = state.view().load_full();
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
        let stale = state.view().load_full();
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
        let back = state.view().load_full();
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
        assert_eq!(
            writer.write(&s).unwrap(),
            6,
            "three files at the board's top and three under its first period's kind"
        );
        assert_eq!(
            writer.write(&s).unwrap(),
            0,
            "unchanged bytes are not rewritten"
        );
        let want = s.view().load().prerendered(20).unwrap().body.to_vec();
        assert_eq!(std::fs::read(dir.join("files/top20.json")).unwrap(), want);
        assert_eq!(
            std::fs::read(dir.join("files/all/top20.json")).unwrap(),
            want
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
            4,
            "top20 is the same; top100 and top1000 grew, in both places"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
