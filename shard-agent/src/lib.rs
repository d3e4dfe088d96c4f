//! The precompute agent.
//!
//! - **Shard role**: every tick, for each owned shard whose version moved
//!   since the agent last published it, read the shard's TOP-K and store it
//!   as a shard snapshot.
//! - **Group role**: every tick, for each owned group, read its shards'
//!   snapshots and, when the sum of their versions moved, merge them into a
//!   group snapshot.
//!
//! Both run over every period a reader may ask for without naming an old
//! id: the current and the last closed period of each kind, and each blend
//! ([`views`]). A closed period's versions stop moving at its boundary, so
//! the snapshot published after its last write is its final one, and it is
//! published once. Before publishing, the shard role brings its shards up
//! to date with the clock ([`Store::maintain`]: blends rebuilt after a
//! roll-over, closed periods past retention dropped).
//!
//! Both are plain loops that stop when the shutdown token is cancelled. The
//! gateway runs the same loops in-process in embedded mode; the
//! `standings-agent` binary runs them as their own process.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use standings_core::merge::merge_sorted;
use standings_core::snapshot;
use standings_core::store::{now_ms, now_ms_i64};
use standings_core::{Board, Scope, Snapshot, Store, StoreError};
use standings_runtime::Phase;
use tokio_util::sync::CancellationToken;

/// Which loops an agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Publish shard snapshots.
    Shard,
    /// Merge group snapshots.
    Group,
    /// Both, shard phase first in each tick.
    All,
}

/// What one agent owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Which loops.
    pub role: Role,
    /// Shards owned by the shard role (clipped to each board's shard count);
    /// `None` for all.
    pub shards: Option<Range<u32>>,
    /// Groups owned by the group role; `None` for all.
    pub groups: Option<Range<u32>>,
}

impl Assignment {
    /// Every shard and group: the embedded default.
    pub fn everything() -> Self {
        Self {
            role: Role::All,
            shards: None,
            groups: None,
        }
    }
}

/// Errors an agent reports.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The store failed; the tick is retried next interval.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored snapshot could not be loaded; the group is skipped this tick.
    #[error(transparent)]
    Snapshot(#[from] snapshot::LoadError),
}

/// Parses `A-B` (inclusive, as the command line takes it) into `A..B+1`.
pub fn parse_range(s: &str) -> Result<Range<u32>, String> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u32 = a
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: expected A-B"))?;
    let b: u32 = b
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: expected A-B"))?;
    if a > b {
        return Err(format!("{s:?}: start is after end"));
    }
    Ok(a..b + 1)
}

/// The periods of `board` the agents keep published at `now_ms`: the
/// current and the previous period of each kind, then each blend, each as
/// the board addressing it.
pub fn views(board: &Board, now_ms: i64) -> Vec<Board> {
    let mut out: Vec<Board> = Vec::new();
    for period in board.current_periods(now_ms) {
        if let Some(previous) = period.previous(&board.timezone) {
            out.push(board.at(previous.id));
        }
        out.push(board.at(period.id));
    }
    for blend in board.blends.iter() {
        out.push(board.at(blend.name.clone()));
    }
    out
}

/// What was last published: (board storage name, so boards of one name in
/// two tenants are apart; period; shard or group) -> version.
type Published = HashMap<(String, Arc<str>, u32), u64>;

/// The agent's memory of what it last published, so unchanged shards and
/// groups cost one version read per tick and nothing else.
#[derive(Default)]
pub struct Agent {
    published_shards: Published,
    published_groups: Published,
}

impl Agent {
    /// A fresh agent: publishes everything once on its first tick.
    pub fn new() -> Self {
        Self::default()
    }

    /// One shard-role pass over every period of `board` ([`views`]);
    /// returns how many snapshots it wrote.
    pub async fn shard_tick(
        &mut self,
        store: &dyn Store,
        board: &Board,
        owned: Option<&Range<u32>>,
    ) -> Result<usize, AgentError> {
        let shards: Vec<u32> = clip(owned, board.shards).collect();
        if shards.is_empty() {
            return Ok(0);
        }
        let rebuilt = store.maintain(board, &shards).await?;
        metrics::counter!("standings_agent_blend_rebuilds_total").increment(rebuilt);
        let views = views(board, now_ms_i64());
        forget_others(&mut self.published_shards, board, &views);
        let mut written = 0;
        for view in &views {
            written += self.shard_tick_period(store, view, &shards).await?;
        }
        metrics::counter!("standings_agent_shard_snapshots_total").increment(written as u64);
        Ok(written)
    }

    /// One shard-role pass over the period `board` addresses.
    async fn shard_tick_period(
        &mut self,
        store: &dyn Store,
        board: &Board,
        shards: &[u32],
    ) -> Result<usize, AgentError> {
        let versions = store.versions(board, shards).await?;
        let mut written = 0;
        for (&shard, &version) in shards.iter().zip(&versions) {
            let key = (board.storage_name().to_owned(), board.period.clone(), shard);
            if self.published_shards.get(&key) == Some(&version) {
                continue;
            }
            let entries = store.top(board, shard, board.top_k).await?;
            let snapshot = Snapshot {
                board: board.name.clone(),
                period: board.period.clone(),
                scope: Scope::Shard(shard),
                order: board.order,
                version,
                computed_at_ms: now_ms(),
                entries,
            };
            store
                .put_snapshot(board, Scope::Shard(shard), snapshot.encode())
                .await?;
            self.published_shards.insert(key, version);
            written += 1;
        }
        Ok(written)
    }

    /// One group-role pass over every period of `board` ([`views`]);
    /// returns how many snapshots it wrote.
    pub async fn group_tick(
        &mut self,
        store: &dyn Store,
        board: &Board,
        owned: Option<&Range<u32>>,
    ) -> Result<usize, AgentError> {
        let views = views(board, now_ms_i64());
        forget_others(&mut self.published_groups, board, &views);
        let mut written = 0;
        for view in &views {
            written += self.group_tick_period(store, view, owned).await?;
        }
        metrics::counter!("standings_agent_group_snapshots_total").increment(written as u64);
        Ok(written)
    }

    /// One group-role pass over the period `board` addresses.
    async fn group_tick_period(
        &mut self,
        store: &dyn Store,
        board: &Board,
        owned: Option<&Range<u32>>,
    ) -> Result<usize, AgentError> {
        let mut written = 0;
        for group in clip(owned, board.groups) {
            let shards = board.shards_of_group(group);
            let mut lists = Vec::with_capacity(shards.len());
            let mut version = 0u64;
            for shard in shards {
                if let Some(snapshot) = snapshot::load(store, board, Scope::Shard(shard)).await? {
                    version += snapshot.version;
                    lists.push(snapshot.entries);
                }
            }
            let key = (board.storage_name().to_owned(), board.period.clone(), group);
            if self.published_groups.get(&key) == Some(&version) {
                continue;
            }
            let started = Instant::now();
            let refs: Vec<&[_]> = lists.iter().map(Vec::as_slice).collect();
            let entries = merge_sorted(&refs, board.top_k, board.order);
            metrics::histogram!("standings_agent_group_merge_seconds")
                .record(started.elapsed().as_secs_f64());
            let snapshot = Snapshot {
                board: board.name.clone(),
                period: board.period.clone(),
                scope: Scope::Group(group),
                order: board.order,
                version,
                computed_at_ms: now_ms(),
                entries,
            };
            store
                .put_snapshot(board, Scope::Group(group), snapshot.encode())
                .await?;
            self.published_groups.insert(key, version);
            written += 1;
        }
        Ok(written)
    }

    /// One full tick of `assignment` over every board. Errors are logged and
    /// counted, not returned: the next tick tries again.
    pub async fn tick(&mut self, store: &dyn Store, boards: &[Board], assignment: &Assignment) {
        for board in boards {
            if matches!(assignment.role, Role::Shard | Role::All) {
                if let Err(e) = self
                    .shard_tick(store, board, assignment.shards.as_ref())
                    .await
                {
                    report(board, "shard", &e);
                }
            }
            if matches!(assignment.role, Role::Group | Role::All) {
                if let Err(e) = self
                    .group_tick(store, board, assignment.groups.as_ref())
                    .await
                {
                    report(board, "group", &e);
                }
            }
        }
    }
}

/// Drops what was published of `board`'s periods that are no longer among
/// `views`, so the agent's memory stays bounded as periods roll over.
fn forget_others(published: &mut Published, board: &Board, views: &[Board]) {
    published.retain(|(name, period, _), _| {
        name.as_str() != board.storage_name() || views.iter().any(|v| v.period == *period)
    });
}

fn report(board: &Board, role: &'static str, e: &AgentError) {
    metrics::counter!("standings_agent_errors_total", "role" => role).increment(1);
    tracing::warn!(board = %board.name, role, error = %e, "agent tick failed; retrying next tick");
}

fn clip(owned: Option<&Range<u32>>, count: u32) -> Range<u32> {
    match owned {
        Some(r) => r.start.min(count)..r.end.min(count),
        None => 0..count,
    }
}

/// Runs `assignment` at its phase of every `interval` until `shutdown` is
/// cancelled. The first tick runs at once, so a new agent publishes without
/// waiting an interval.
pub async fn run(
    store: Arc<dyn Store>,
    boards: Vec<Board>,
    assignment: Assignment,
    interval: Duration,
    shutdown: CancellationToken,
) {
    run_with_catalog(store, boards, None, None, assignment, interval, shutdown).await
}

/// The boards of `config` and those of the store's catalog (created at run
/// time) that are valid against it; the config's boards alone when the
/// catalog cannot be read.
pub async fn boards_with_catalog(
    store: &dyn Store,
    config: &standings_config::Config,
) -> Vec<Board> {
    let mut boards = config.boards();
    match store.catalog().await {
        Ok(catalog) => boards.extend(config.runtime_boards(&catalog).iter().map(|b| b.to_board())),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the board catalog; config boards only this tick")
        }
    }
    boards
}

/// How long the event-stream consumer waits when a pass found nothing.
pub const FOLLOW_IDLE: Duration = Duration::from_millis(100);

/// Most entries per shard one consumer pass takes.
const FOLLOW_BATCH: usize = 500;

/// The consumer name of this process in the stream consumer groups.
fn consumer_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "agent".into());
    format!("{host}-{}", std::process::id())
}

/// One pass of the event-stream consumer over every tenant's likes shards
/// that `assignment` owns: applies actors' lists, owners' totals and the
/// actor- and owner-fed boards (see [`Store::follow_events`]). Answers how
/// many events it applied.
pub async fn follow_once(
    store: &dyn Store,
    config: &standings_config::Config,
    boards: &[Board],
    assignment: &Assignment,
    consumer: &str,
) -> u64 {
    let mut applied = 0;
    let tenants = std::iter::once(standings_config::PUBLIC_TENANT)
        .chain(config.tenants.iter().map(|t| t.id.as_str()));
    for tenant in tenants {
        let Ok(id) = standings_core::BoardName::new(tenant) else {
            continue;
        };
        let space = config.like_space(&id);
        let shards: Vec<u32> = clip(assignment.shards.as_ref(), space.shards).collect();
        let fed: Vec<Board> = boards
            .iter()
            .filter(|b| b.tenant.as_str() == tenant && b.source.is_some())
            .cloned()
            .collect();
        match store
            .follow_events(&space, &fed, &shards, consumer, FOLLOW_BATCH)
            .await
        {
            Ok(n) => applied += n,
            Err(e) => {
                metrics::counter!("standings_agent_errors_total", "role" => "events").increment(1);
                tracing::warn!(tenant, error = %e, "following the event stream failed; retrying");
            }
        }
    }
    applied
}

/// Follows the event streams until `shutdown`: a pass, then another at
/// once while there was work, else after [`FOLLOW_IDLE`]. `current` is
/// what the agent's main loop last read (config and boards).
pub async fn follow_loop(
    store: Arc<dyn Store>,
    current: Arc<arc_swap::ArcSwap<(standings_config::Config, Vec<Board>)>>,
    assignment: Assignment,
    shutdown: CancellationToken,
) {
    let consumer = consumer_name();
    loop {
        let now = current.load_full();
        let applied = follow_once(store.as_ref(), &now.0, &now.1, &assignment, &consumer).await;
        if applied == 0 {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(FOLLOW_IDLE) => {}
            }
        } else if shutdown.is_cancelled() {
            break;
        }
    }
}

/// Re-reads the agent's config file (on SIGHUP).
pub type Reloader = Box<dyn Fn() -> Result<standings_config::Config, String> + Send + Sync>;

/// [`run`], re-reading the store's catalog each tick when `config` is
/// given, so boards created at run time are published within one interval;
/// and, with `reload`, re-reading the config file on SIGHUP (a file that
/// does not load is logged and the old config stays).
pub async fn run_with_catalog(
    store: Arc<dyn Store>,
    mut boards: Vec<Board>,
    mut config: Option<standings_config::Config>,
    reload: Option<Reloader>,
    assignment: Assignment,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut agent = Agent::new();
    let phase = match assignment.role {
        Role::Group => Phase::Group,
        Role::Shard | Role::All => Phase::Shard,
    };
    let mut hup = reload
        .as_ref()
        .and_then(|_| tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok());
    tracing::info!(?assignment, ?interval, ?phase, "agent started");
    // The event-stream consumer runs beside the snapshot loop, at its own
    // pace: its lag is what the actors' lists trail the likes by.
    let current = config
        .as_ref()
        .map(|c| Arc::new(arc_swap::ArcSwap::from_pointee((c.clone(), boards.clone()))));
    let follower = match (&current, assignment.role) {
        (Some(current), Role::Shard | Role::All) => Some(tokio::spawn(follow_loop(
            store.clone(),
            current.clone(),
            assignment.clone(),
            shutdown.clone(),
        ))),
        _ => None,
    };
    loop {
        if let Some(config) = &config {
            boards = boards_with_catalog(store.as_ref(), config).await;
            if let Some(current) = &current {
                current.store(Arc::new((config.clone(), boards.clone())));
            }
        }
        agent.tick(store.as_ref(), &boards, &assignment).await;
        let hangup = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = phase.sleep(interval) => {}
            _ = hangup => {
                match reload.as_ref().map(|r| r()) {
                    Some(Ok(fresh)) => {
                        tracing::info!(boards = fresh.boards.len(), "config reloaded");
                        boards = fresh.boards();
                        config = Some(fresh);
                    }
                    Some(Err(e)) => tracing::error!(error = %e, "reload on SIGHUP refused; the old config stays"),
                    None => {}
                }
            }
        }
    }
    if let Some(f) = follower {
        let _ = f.await;
    }
    tracing::info!("agent stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use standings_core::{BoardName, MemberId, MemoryStore, Op, Score, Write};

    fn board() -> Board {
        Board {
            shards: 8,
            groups: 2,
            top_k: 3,
            ..Board::new(BoardName::new("t").unwrap())
        }
    }

    async fn write(store: &dyn Store, b: &Board, m: &str, s: f64) {
        let w = Write {
            member: MemberId::new(m).unwrap(),
            op: Op::Set,
            value: Score::new(s).unwrap(),
            idempotency_key: None,
            request_id: "t".into(),
            meta: None,
        };
        store.apply(b, &w).await.unwrap();
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("0-49"), Ok(0..50));
        assert_eq!(parse_range("7"), Ok(7..8));
        assert!(parse_range("9-3").is_err());
        assert!(parse_range("a-b").is_err());
    }

    #[tokio::test]
    async fn publishes_only_moved_shards_and_merges_groups() {
        let store = MemoryStore::new();
        let b = board();
        let mut agent = Agent::new();
        assert_eq!(
            agent.shard_tick(&store, &b, None).await.unwrap(),
            8,
            "first tick publishes all"
        );
        assert_eq!(
            agent.shard_tick(&store, &b, None).await.unwrap(),
            0,
            "nothing moved"
        );
        for i in 0..40 {
            write(&store, &b, &format!("u{i}"), f64::from(i)).await;
        }
        let moved = agent.shard_tick(&store, &b, None).await.unwrap();
        assert!(moved > 0 && moved <= 8);
        assert_eq!(agent.group_tick(&store, &b, None).await.unwrap(), 2);
        assert_eq!(
            agent.group_tick(&store, &b, None).await.unwrap(),
            0,
            "versions unchanged"
        );
        let mut best = Vec::new();
        for g in 0..2 {
            let snap = snapshot::load(&store, &b, Scope::Group(g))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(snap.entries.len(), 3, "group keeps top_k");
            best.extend(snap.entries);
        }
        best.sort_by(|x, y| b.order.cmp_entries(x, y));
        let names: Vec<&str> = best[..3].iter().map(|e| e.member.as_str()).collect();
        assert_eq!(names, ["u39", "u38", "u37"]);
    }

    /// Boards of one name in two tenants are two boards to the agent: what
    /// it published of one does not stand for the other.
    #[tokio::test]
    async fn boards_of_one_name_in_two_tenants_are_published_apart() {
        let store = MemoryStore::new();
        let ta = board().in_tenant(BoardName::new("ta").unwrap());
        let tb = board().in_tenant(BoardName::new("tb").unwrap());
        write(&store, &ta, "u1", 1.0).await;
        write(&store, &tb, "u1", 2.0).await;
        let mut agent = Agent::new();
        assert_eq!(agent.shard_tick(&store, &ta, None).await.unwrap(), 8);
        assert_eq!(
            agent.shard_tick(&store, &tb, None).await.unwrap(),
            8,
            "same versions, another tenant: published too"
        );
        assert_eq!(agent.group_tick(&store, &ta, None).await.unwrap(), 2);
        assert_eq!(agent.group_tick(&store, &tb, None).await.unwrap(), 2);
        for (b, score) in [(&ta, 1.0), (&tb, 2.0)] {
            let shard = b.shard_of(&MemberId::new("u1").unwrap()).unwrap();
            let snap = snapshot::load(&store, b, Scope::Group(b.group_of(shard)))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(snap.entries[0].score, score, "{}", b.storage_name());
        }
    }

    #[tokio::test]
    async fn owned_ranges_are_respected() {
        let store = MemoryStore::new();
        let b = board();
        let mut agent = Agent::new();
        assert_eq!(
            agent.shard_tick(&store, &b, Some(&(2..4))).await.unwrap(),
            2
        );
        assert_eq!(
            agent.shard_tick(&store, &b, Some(&(6..100))).await.unwrap(),
            2,
            "clipped"
        );
        assert!(store
            .get_snapshot(&b, Scope::Shard(0))
            .await
            .unwrap()
            .is_none());
        assert!(store
            .get_snapshot(&b, Scope::Shard(3))
            .await
            .unwrap()
            .is_some());
    }

    #[tokio::test]
    async fn run_stops_on_shutdown() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let token = CancellationToken::new();
        let task = tokio::spawn(run(
            store.clone(),
            vec![board()],
            Assignment::everything(),
            Duration::from_millis(10),
            token.clone(),
        ));
        write(store.as_ref(), &board(), "x", 1.0).await;
        token.cancel();
        task.await.unwrap();
    }
}
