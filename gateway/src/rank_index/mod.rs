//! The stream-fed rank index: how many members hold each score, per board
//! and current period, kept in the gateway from the shards' audit streams.
//!
//! A competition rank is `1 + members strictly better`, a function of the
//! score alone. Every write, event and removal appends one audit record
//! to its shard's stream, in the same atomic step, naming the member's
//! score before and after in each period it moved (`ix`, see the store's
//! `index` module). So the counts of a shard are its scan (counts per
//! score, read in one step with the stream position) plus the records
//! after that position, applied in order, and summed over shards they
//! answer "how many strictly better than s" in memory, exact as of the
//! stream ids consumed. [`RankIndex::follow`] polls every shard's stream
//! (one script call per shard, one pipeline per node) and publishes, for
//! each board, an immutable [`View`] behind an `ArcSwap`, stamped with the
//! instant the poll began: every record committed before that instant was
//! read, so the view is exact as of it. A rank is then the member's live
//! score (one `ZSCORE`) plus a binary search in the view, answered only
//! when the view is at most `gateway.rank_staleness_ms` old; otherwise
//! (and for blends, closed periods, a view not built yet) the caller
//! falls back to the score cache or the live fan-out. Event-fed boards
//! are followed like the others: their moves leave the same records.
//!
//! Memory is per distinct score, not per member: a `BTreeMap` entry while
//! following and 16 bytes in the published view. Long-tailed integer
//! scores have few distinct values (11,560 over 1,000,000 seeded
//! members), docs/benchmarks.md has the measured bytes.
//!
//! A period that was not current at the scan is complete in the index
//! when it starts after the scan's store clock (no write can have gone to
//! it before the scanned position); otherwise the board is scanned again.
//! A trimmed stream (the index fell further behind than the stream's
//! `MAXLEN`) or a record without moves is a gap: the board is scanned
//! again. Counting below zero means the index disagrees with the store:
//! also a new scan.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use dashmap::DashMap;
use standings_core::board::StorageName;
use standings_core::period::{Period, Timezone};
use standings_core::rank::Standing;
use standings_core::store::{now_ms_i64, IndexMove, IndexPos, IndexRecord, IndexTail};
use standings_core::{Board, MemberId, Meta, Order, Store, StoreError, Ties};
use tokio_util::sync::CancellationToken;

mod period_members;

use period_members::PeriodMembers;

/// Most records one tail call reads per shard; a shard with more is read
/// again before the view is published.
const TAIL_BATCH: usize = 2_000;

/// Shards scanned per store call: a scan reply holds whole shards.
const SCAN_CHUNK: usize = 10;

/// How long past its end a period's counts are kept (reads of a closed
/// period go to the cache or the fan-out).
const KEEP_CLOSED: Duration = Duration::from_secs(60);

/// A score as a key ordered like the numbers (`total_cmp`; scores are
/// finite and never `-0.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key(u64);

impl Key {
    fn of(score: f64) -> Self {
        let bits = (score + 0.0).to_bits();
        Key(if bits >> 63 == 1 {
            !bits
        } else {
            bits | (1 << 63)
        })
    }

    fn score(self) -> f64 {
        let bits = if self.0 >> 63 == 1 {
            self.0 & !(1 << 63)
        } else {
            !self.0
        };
        f64::from_bits(bits)
    }
}

/// One period's counts as published: distinct scores best first, and for
/// each how many members score strictly better.
#[derive(Debug, Default)]
pub struct Counts {
    scores: Vec<f64>,
    better: Vec<u64>,
    total: u64,
    order: Order,
}

impl Counts {
    fn build(counts: &BTreeMap<Key, u64>, order: Order) -> Self {
        let mut scores = Vec::with_capacity(counts.len());
        let mut better = Vec::with_capacity(counts.len());
        let mut sum = 0;
        let mut push = |(k, n): (&Key, &u64)| {
            scores.push(k.score());
            better.push(sum);
            sum += n;
        };
        match order {
            Order::Desc => counts.iter().rev().for_each(&mut push),
            Order::Asc => counts.iter().for_each(&mut push),
        }
        Counts {
            scores,
            better,
            total: sum,
            order,
        }
    }

    fn is_better(&self, a: f64, b: f64) -> bool {
        match self.order {
            Order::Desc => a > b,
            Order::Asc => a < b,
        }
    }

    /// The standing of `score`: rank, members strictly worse, total.
    pub fn standing(&self, score: f64) -> Standing {
        let i = self.scores.partition_point(|&s| self.is_better(s, score));
        let better = self.better.get(i).copied().unwrap_or(self.total);
        let at_or_better = match self.scores.get(i) {
            Some(&s) if s == score => self.better.get(i + 1).copied().unwrap_or(self.total),
            _ => better,
        };
        Standing {
            score,
            rank: better + 1,
            worse: self.total - at_or_better,
            total: self.total,
        }
    }

    /// Distinct scores held.
    pub fn distinct_scores(&self) -> usize {
        self.scores.len()
    }

    /// Members counted.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The scores that hold the `n` members nearest `score` on each side:
    /// the tie group of `score` itself, then whole score groups outward
    /// until each side has at least `n` members (`None`: the side runs to
    /// the board's end with fewer). An around window of radius `n` lies
    /// within it, as of this view.
    pub fn band(&self, score: f64, n: usize) -> Band {
        let n = n as u64;
        let s = self.standing(score);
        let better = s.rank - 1;
        let at_or_better = self.total - s.worse;
        if n == 0 {
            // Radius 0: the anchor's own tie group, nothing either side.
            return Band {
                best: Some(score),
                worst: Some(score),
                members: at_or_better - better,
            };
        }
        // Where each score group ends (members at or better than it).
        let end = |k: usize| self.better.get(k + 1).copied().unwrap_or(self.total);
        // The worst group whose members down to `score` reach n.
        let best = (better >= n).then(|| {
            let j = self.better.partition_point(|&b| b <= better - n) - 1;
            (self.scores[j], self.better[j])
        });
        // The best group whose members from below `score` reach n.
        let worst = (s.worse >= n).then(|| {
            let m = self.better.partition_point(|&b| b < at_or_better + n);
            let k = m.min(self.scores.len()) - 1;
            (self.scores[k], end(k))
        });
        Band {
            best: best.map(|(s, _)| s),
            worst: worst.map(|(s, _)| s),
            members: worst.map_or(self.total, |(_, e)| e) - best.map_or(0, |(_, b)| b),
        }
    }
}

/// The scores an around window spans ([`Counts::band`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    /// The best score in it; `None`: up to the board's best.
    pub best: Option<f64>,
    /// The worst score in it; `None`: down to the board's worst.
    pub worst: Option<f64>,
    /// Members it held as of the view.
    pub members: u64,
}

/// A board's counts as of `as_of`, immutable once published.
#[derive(Debug)]
pub struct View {
    /// When the poll that built it began: exact as of then.
    pub as_of: Instant,
    /// The earliest store clock of the scans it grew from.
    scan_ms: i64,
    /// The periods scanned.
    scanned: HashSet<Arc<str>>,
    /// Counts per period id.
    periods: HashMap<Arc<str>, Arc<Counts>>,
    /// Every member's scores and meta, when the index keeps members.
    members: Option<Arc<MemberTable>>,
}

/// Every member's score per period and meta, as the follower applies the
/// records (`members` mode). A poll's changes reach the table when its
/// view is built, just before that view is published: a reader of the
/// view before may see them for that moment (a score newer than the
/// counts, never older), not for a whole poll.
#[derive(Debug, Default)]
pub struct MemberTable {
    scores: RwLock<HashMap<Arc<str>, Arc<PeriodScores>>>,
    metas: DashMap<MemberId, Meta>,
}

impl MemberTable {
    fn period(&self, id: &Arc<str>) -> Arc<PeriodScores> {
        if let Some(map) = self
            .scores
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
        {
            return map.clone();
        }
        self.scores
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.clone())
            .or_default()
            .clone()
    }

    fn score(&self, period: &str, member: &MemberId) -> Option<f64> {
        let scores = self.scores.read().unwrap_or_else(|p| p.into_inner());
        scores.get(period)?.score(member)
    }

    /// `member`'s answer at `score`: its standing in `counts`, its meta.
    fn hit(&self, counts: &Counts, member: &MemberId, score: f64) -> MemberHit {
        MemberHit {
            score,
            standing: counts.standing(score),
            meta: self.metas.get(member).map(|meta| meta.clone()),
        }
    }

    fn window(
        &self,
        period: &str,
        member: &MemberId,
        radius: usize,
        order: Order,
    ) -> Option<Vec<(MemberId, f64)>> {
        let scores = self.scores.read().unwrap_or_else(|p| p.into_inner());
        scores.get(period)?.window(member, radius, order)
    }

    fn drop_period(&self, id: &str) {
        self.scores
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Members held, over every period.
    fn len(&self) -> usize {
        self.scores
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|m| m.len())
            .sum()
    }
}

/// One period's members: their scores, and their order for windows.
type PeriodScores = PeriodMembers;

/// A member's answer from a members index.
#[derive(Debug, Clone)]
pub struct MemberHit {
    /// Its score (as of at most the bound ago).
    pub score: f64,
    /// Its standing as of the view.
    pub standing: Standing,
    /// Its meta.
    pub meta: Option<Meta>,
}

impl View {
    /// The counts of `period`, if the index holds all of it: scanned, or
    /// begun after the scan (`starts_ms`), so every write to it came
    /// through the stream.
    fn counts(&self, period: &Period) -> Option<Arc<Counts>> {
        let complete =
            self.scanned.contains(&period.id) || period.starts_ms.is_some_and(|s| s > self.scan_ms);
        if !complete {
            return None;
        }
        Some(
            self.periods
                .get(&period.id)
                .cloned()
                .unwrap_or_else(|| Arc::new(Counts::default())),
        )
    }
}

/// One board the index follows.
struct Followed {
    /// The board as first asked about (its period does not matter).
    board: Board,
    view: ArcSwapOption<View>,
}

/// Whether two definitions of a board lay out and order scores alike.
fn same_shape(a: &Board, b: &Board) -> bool {
    a.shards == b.shards && a.order == b.order && a.periods == b.periods
}

/// The boards followed and their views; see the module docs.
pub struct RankIndex {
    boards: RwLock<HashMap<StorageName, Arc<Followed>>>,
    bound: Duration,
    /// Whether every member's score and meta are kept too.
    members: bool,
}

impl RankIndex {
    /// An index whose views answer while at most `bound` old; with
    /// `members`, one that keeps every member's score and meta too.
    pub fn new(bound: Duration, members: bool) -> Self {
        Self {
            boards: RwLock::new(HashMap::new()),
            bound,
            members,
        }
    }

    /// How often [`RankIndex::follow`] polls: a tenth of the bound, within
    /// 10 to 100 ms.
    pub fn poll_every(&self) -> Duration {
        (self.bound / 10).clamp(Duration::from_millis(10), Duration::from_millis(100))
    }

    /// The standing of `score` on `board` (in `board.period`) from the
    /// index, exact as of at most the bound ago; `None` when the index
    /// cannot answer it (the caller falls back). The first ask about a
    /// board starts following it.
    pub fn standing(&self, board: &Board, score: f64) -> Option<Standing> {
        let (view, period) = self.fresh_view(board)?;
        Some(view.counts(&period)?.standing(score))
    }

    /// The counts of `board.period` from a view within the bound; `None`
    /// when the index cannot answer (as [`RankIndex::standing`]).
    pub fn counts(&self, board: &Board) -> Option<Arc<Counts>> {
        let (view, period) = self.fresh_view(board)?;
        view.counts(&period)
    }

    /// Each member's score, standing and meta from a members index, all
    /// as of at most the bound ago and from one view; `None` when the
    /// index keeps no members, cannot answer for the period, or does not
    /// hold every one of them (the caller then reads them live: a member
    /// written within the last poll is found there).
    pub fn members(&self, board: &Board, members: &[MemberId]) -> Option<Vec<MemberHit>> {
        if !self.members {
            return None;
        }
        let (view, period) = self.fresh_view(board)?;
        let counts = view.counts(&period)?;
        let table = view.members.as_ref()?;
        members
            .iter()
            .map(|m| Some(table.hit(&counts, m, table.score(&period.id, m)?)))
            .collect()
    }

    /// `member` with up to `radius` members on each side, best first, from
    /// a members index: each with its score, standing and meta, all as of
    /// at most the bound ago; `None` when the index keeps no members,
    /// cannot answer for the period, or does not hold `member` (the caller
    /// then reads the window another way). Also the period's size.
    pub fn window(
        &self,
        board: &Board,
        member: &MemberId,
        radius: usize,
    ) -> Option<(Vec<(MemberId, MemberHit)>, u64)> {
        if !self.members {
            return None;
        }
        let (view, period) = self.fresh_view(board)?;
        let counts = view.counts(&period)?;
        let table = view.members.as_ref()?;
        let window = table.window(&period.id, member, radius, board.order)?;
        let hits = window
            .into_iter()
            .map(|(m, score)| {
                let hit = table.hit(&counts, &m, score);
                (m, hit)
            })
            .collect();
        Some((hits, counts.total()))
    }

    /// The board's view if it is within the bound, and `board.period` as a
    /// current period of the board.
    fn fresh_view(&self, board: &Board) -> Option<(Arc<View>, Period)> {
        // Event-fed boards are followed too: the events script (target
        // fed) and the stream consumer's writes (actor and owner fed)
        // leave the same audit records as a write. Blends are rebuilt by
        // `ZUNIONSTORE`, which leaves none.
        if board.blend(&board.period).is_some() {
            return None;
        }
        // Counts by score do not place equal scores of a first_achiever
        // board; those are ranked live.
        if board.ties == Ties::FirstAchiever {
            return None;
        }
        let view = self.followed(board).view.load_full()?;
        if view.as_of.elapsed() > self.bound {
            return None;
        }
        // The board's cached schedule: no calendar work or list per rank.
        let period = board
            .schedule(now_ms_i64())
            .kinds
            .iter()
            .map(|w| &w.current)
            .find(|p| p.id == board.period)?
            .clone();
        Some((view, period))
    }

    /// The board's entry, registering it (or replacing one of another
    /// shape) on first sight; the follower scans it on its next poll.
    fn followed(&self, board: &Board) -> Arc<Followed> {
        if let Some(f) = self
            .boards
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(board.storage())
            .filter(|f| same_shape(&f.board, board))
        {
            return f.clone();
        }
        let mut boards = self.boards.write().unwrap_or_else(|p| p.into_inner());
        match boards.get(board.storage()) {
            // Another request registered it meanwhile.
            Some(f) if same_shape(&f.board, board) => f.clone(),
            _ => {
                let f = Arc::new(Followed {
                    board: board.clone(),
                    view: ArcSwapOption::empty(),
                });
                boards.insert(board.storage().clone(), f.clone());
                f
            }
        }
    }

    fn snapshot(&self) -> Vec<Arc<Followed>> {
        self.boards
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Follows every board asked about until `shutdown`: one poll of every
    /// shard's stream per [`RankIndex::poll_every`], a scan where a board
    /// is new, changed shape or lost records.
    pub async fn follow(self: Arc<Self>, store: Arc<dyn Store>, shutdown: CancellationToken) {
        let mut states: HashMap<StorageName, (Arc<Followed>, Follower)> = HashMap::new();
        let mut tick = tokio::time::interval(self.poll_every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let boards = self.snapshot();
            states.retain(|name, (f, _)| {
                boards
                    .iter()
                    .any(|b| Arc::ptr_eq(b, f) && b.board.storage() == name)
            });
            for f in boards {
                let name = f.board.storage().clone();
                let (_, follower) = states
                    .entry(name.clone())
                    .or_insert_with(|| (f.clone(), Follower::new(f.board.clone(), self.members)));
                if let Some(view) = f.view.load_full() {
                    metrics::gauge!("standings_rank_index_age_seconds", "board" => name.to_string())
                        .set(view.as_of.elapsed().as_secs_f64());
                }
                match follower.step(store.as_ref()).await {
                    Ok(view) => {
                        metrics::gauge!("standings_rank_index_scores", "board" => name.to_string())
                            .set(
                                view.periods
                                    .values()
                                    .map(|c| c.distinct_scores())
                                    .sum::<usize>() as f64,
                            );
                        if let Some(table) = &view.members {
                            metrics::gauge!("standings_rank_index_members", "board" => name.to_string())
                                .set(table.len() as f64);
                        }
                        f.view.store(Some(Arc::new(view)));
                    }
                    Err(e) => {
                        tracing::warn!(board = %name, error = %e, "rank index poll failed; ranks fall back to the fan-out until it catches up");
                    }
                }
            }
        }
    }
}

/// What the follower keeps of one board between polls.
struct Follower {
    board: Board,
    /// Per shard; empty until scanned.
    pos: Vec<IndexPos>,
    scan_ms: i64,
    scanned: HashSet<Arc<str>>,
    counts: HashMap<Arc<str>, BTreeMap<Key, u64>>,
    /// Periods moved since the last view (their `Counts` are rebuilt).
    dirty: HashSet<Arc<str>>,
    /// The last view's counts, reused for periods that did not move.
    published: HashMap<Arc<str>, Arc<Counts>>,
    /// Periods seen in records that the index does not hold all of.
    ignored: HashSet<Arc<str>>,
    /// Every member's scores and meta (`members` mode).
    table: Option<Arc<MemberTable>>,
    /// What this poll's records change in `table`, applied when its view
    /// is built, so that the table readers share moves with the counts
    /// they rank by (not a poll ahead of them).
    pending: Vec<TableChange>,
    members: bool,
}

/// One change a record makes to a [`MemberTable`].
enum TableChange {
    /// A member's score in a period: set, or gone (`None`).
    Score(Arc<str>, MemberId, Option<f64>),
    /// A member's meta: set, or gone with the member (`None`).
    Meta(MemberId, Option<Meta>),
}

/// Why a poll could not publish.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the index disagrees with the store (a count below zero); scanning again")]
    Disagrees,
}

impl Follower {
    fn new(board: Board, members: bool) -> Self {
        Self {
            board,
            table: None,
            pending: Vec::new(),
            members,
            pos: Vec::new(),
            scan_ms: i64::MIN,
            scanned: HashSet::new(),
            counts: HashMap::new(),
            dirty: HashSet::new(),
            published: HashMap::new(),
            ignored: HashSet::new(),
        }
    }

    /// One poll: a scan when there is no position, else every record
    /// since, then the view as of the poll's start.
    async fn step(&mut self, store: &dyn Store) -> Result<View, StepError> {
        let as_of = Instant::now();
        if self.pos.is_empty() {
            self.scan(store).await?;
        } else if let Err(e) = self.tail(store).await {
            // Start again from a scan on the next poll.
            self.pos.clear();
            self.pending.clear();
            return Err(e);
        }
        self.prune();
        Ok(self.view(as_of))
    }

    async fn scan(&mut self, store: &dyn Store) -> Result<(), StepError> {
        let now = now_ms_i64();
        let periods: Vec<Arc<str>> = self
            .board
            .current_periods(now)
            .into_iter()
            .map(|p| p.id)
            .collect();
        let mut counts: HashMap<Arc<str>, BTreeMap<Key, u64>> = HashMap::new();
        let table = self.members.then(|| Arc::new(MemberTable::default()));
        let mut scan_ms = i64::MAX;
        let mut pos = Vec::with_capacity(self.board.shards as usize);
        for shards in self.board.all_shards().chunks(SCAN_CHUNK) {
            let scans = store
                .index_scan(&self.board, shards, &periods, self.members)
                .await?;
            for scan in scans {
                scan_ms = scan_ms.min(scan.at_ms);
                for (period, runs) in periods.iter().zip(scan.counts) {
                    let map = counts.entry(period.clone()).or_default();
                    for (score, n) in runs {
                        *map.entry(Key::of(score)).or_default() += n;
                    }
                }
                if let Some(table) = &table {
                    for (period, list) in periods.iter().zip(scan.members) {
                        let map = table.period(period);
                        for (member, score) in list {
                            map.set(member, score);
                        }
                    }
                    for (member, meta) in scan.metas {
                        table.metas.insert(member, meta);
                    }
                }
                pos.push(scan.pos);
            }
        }
        metrics::counter!("standings_rank_index_scans_total", "board" => self.board.storage().to_string())
            .increment(1);
        self.pos = pos;
        self.scan_ms = scan_ms;
        self.scanned = periods.iter().cloned().collect();
        for p in &periods {
            counts.entry(p.clone()).or_default();
        }
        self.dirty = counts.keys().cloned().collect();
        self.counts = counts;
        self.published.clear();
        self.ignored.clear();
        self.table = table;
        Ok(())
    }

    /// Reads and applies every shard's records until none is left over.
    async fn tail(&mut self, store: &dyn Store) -> Result<(), StepError> {
        let mut shards = self.board.all_shards();
        while !shards.is_empty() {
            let from: Vec<IndexPos> = shards
                .iter()
                .map(|&s| self.pos[s as usize].clone())
                .collect();
            let tails = store
                .index_tail(&self.board, &shards, &from, TAIL_BATCH)
                .await?;
            let mut again = Vec::new();
            for (shard, tail) in shards.iter().copied().zip(tails) {
                match tail {
                    IndexTail::Gap => {
                        metrics::counter!("standings_rank_index_gaps_total", "board" => self.board.storage().to_string())
                            .increment(1);
                        return Err(StepError::Store(StoreError::Unavailable(format!(
                            "shard {shard}: audit records trimmed or unreadable; scanning again"
                        ))));
                    }
                    IndexTail::Records { records, pos } => {
                        let full = records.len() >= TAIL_BATCH;
                        for record in &records {
                            self.record(record)?;
                        }
                        self.pos[shard as usize] = pos;
                        if full {
                            again.push(shard);
                        }
                    }
                }
            }
            shards = again;
        }
        Ok(())
    }

    /// Applies one record: its moves, and in `members` mode the member's
    /// scores and meta.
    fn record(&mut self, record: &IndexRecord) -> Result<(), StepError> {
        let keeps = self.table.is_some();
        for m in &record.moves {
            if self.apply(m)? && keeps {
                self.pending.push(TableChange::Score(
                    m.period.clone(),
                    record.member.clone(),
                    m.new,
                ));
            }
        }
        if keeps {
            if record.removed {
                self.pending
                    .push(TableChange::Meta(record.member.clone(), None));
            } else if let Some(meta) = &record.meta {
                self.pending
                    .push(TableChange::Meta(record.member.clone(), Some(meta.clone())));
            }
        }
        Ok(())
    }

    /// Applies one move to the counts; answers whether the index holds
    /// its period.
    fn apply(&mut self, m: &IndexMove) -> Result<bool, StepError> {
        if !self.counts.contains_key(&m.period) {
            if self.ignored.contains(&m.period) {
                return Ok(false);
            }
            // A period pruned after its end still shows in records (a
            // removal names the previous periods too): ignored, not a
            // disagreement that would cost a scan.
            if self.ended_before(&m.period, self.prune_cutoff()) {
                return Ok(false);
            }
            if !self.complete_by_start(&m.period) {
                self.ignored.insert(m.period.clone());
                return Ok(false);
            }
            self.counts.insert(m.period.clone(), BTreeMap::new());
        }
        let map = self.counts.get_mut(&m.period).expect("inserted above");
        if let Some(old) = m.old {
            let key = Key::of(old);
            match map.get_mut(&key) {
                Some(n) if *n > 1 => *n -= 1,
                Some(_) => {
                    map.remove(&key);
                }
                None => return Err(StepError::Disagrees),
            }
        }
        if let Some(new) = m.new {
            *map.entry(Key::of(new)).or_default() += 1;
        }
        self.dirty.insert(m.period.clone());
        Ok(true)
    }

    /// Whether a period first seen in a record began after the scan, so
    /// that the stream holds every write to it.
    fn complete_by_start(&self, id: &str) -> bool {
        Period::parse_id(id, &self.board.timezone)
            .ok()
            .and_then(|p| p.starts_ms)
            .is_some_and(|s| s > self.scan_ms)
    }

    /// Drops the counts of periods ended more than [`KEEP_CLOSED`] ago.
    fn prune(&mut self) {
        let cutoff = self.prune_cutoff();
        let gone: Vec<Arc<str>> = self
            .counts
            .keys()
            .filter(|id| self.ended_before(id, cutoff))
            .cloned()
            .collect();
        for id in gone {
            self.counts.remove(&id);
            self.published.remove(&id);
            self.dirty.remove(&id);
            if let Some(table) = &self.table {
                table.drop_period(&id);
            }
        }
        // Periods ignored and long ended need no entry any more: `apply`
        // ignores them by their end.
        let tz = self.board.timezone.clone();
        self.ignored.retain(|id| !ended_before(id, &tz, cutoff));
    }

    /// Periods that ended before this are dropped ([`KEEP_CLOSED`]).
    fn prune_cutoff(&self) -> i64 {
        now_ms_i64() - KEEP_CLOSED.as_millis() as i64
    }

    /// Whether the period `id` of this board ended before `cutoff`.
    fn ended_before(&self, id: &str, cutoff: i64) -> bool {
        ended_before(id, &self.board.timezone, cutoff)
    }

    fn view(&mut self, as_of: Instant) -> View {
        if let Some(table) = &self.table {
            for change in self.pending.drain(..) {
                match change {
                    // A period pruned since its move has no table left.
                    TableChange::Score(period, member, score) => {
                        if !self.counts.contains_key(&period) {
                            continue;
                        }
                        let map = table.period(&period);
                        match score {
                            Some(score) => map.set(member, score),
                            None => map.remove(&member),
                        }
                    }
                    TableChange::Meta(member, Some(meta)) => {
                        table.metas.insert(member, meta);
                    }
                    TableChange::Meta(member, None) => {
                        table.metas.remove(&member);
                    }
                }
            }
        }
        for id in self.dirty.drain() {
            if let Some(map) = self.counts.get(&id) {
                self.published
                    .insert(id, Arc::new(Counts::build(map, self.board.order)));
            }
        }
        View {
            as_of,
            scan_ms: self.scan_ms,
            scanned: self.scanned.clone(),
            periods: self.published.clone(),
            members: self.table.clone(),
        }
    }
}

/// Whether the period `id` (in timezone `tz`) ended before `cutoff`.
fn ended_before(id: &str, tz: &Timezone, cutoff: i64) -> bool {
    Period::parse_id(id, tz)
        .ok()
        .and_then(|p| p.ends_ms)
        .is_some_and(|e| e < cutoff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(f64, u64)], order: Order) -> Counts {
        let mut map = BTreeMap::new();
        for &(s, n) in pairs {
            map.insert(Key::of(s), n);
        }
        Counts::build(&map, order)
    }

    #[test]
    fn keys_order_like_the_numbers() {
        let xs = [-1e15, -2.5, -1.0, 0.0, 1e-300, 1.0, 3.5, 9e15];
        for w in xs.windows(2) {
            assert!(Key::of(w[0]) < Key::of(w[1]), "{} < {}", w[0], w[1]);
        }
        for x in xs {
            assert_eq!(Key::of(x).score(), x);
        }
    }

    /// Rank, worse and total against counting by hand.
    #[test]
    fn standings_count_strictly_better_and_worse() {
        let pairs = [(10.0, 2), (7.0, 3), (5.0, 1), (-1.0, 4)];
        let all: Vec<f64> = pairs
            .iter()
            .flat_map(|&(s, n)| std::iter::repeat_n(s, n as usize))
            .collect();
        for order in [Order::Desc, Order::Asc] {
            let c = counts(&pairs, order);
            for probe in [11.0, 10.0, 8.0, 7.0, 5.0, 0.0, -1.0, -2.0] {
                let better = |a: f64| match order {
                    Order::Desc => a > probe,
                    Order::Asc => a < probe,
                };
                let worse = |a: f64| match order {
                    Order::Desc => a < probe,
                    Order::Asc => a > probe,
                };
                let s = c.standing(probe);
                assert_eq!(
                    (s.rank, s.worse, s.total),
                    (
                        1 + all.iter().filter(|&&a| better(a)).count() as u64,
                        all.iter().filter(|&&a| worse(a)).count() as u64,
                        10
                    ),
                    "{order:?} probe {probe}"
                );
            }
        }
        let empty = Counts::default();
        let s = empty.standing(3.0);
        assert_eq!((s.rank, s.worse, s.total), (1, 0, 0));
    }

    /// A band against brute force: the tightest run of whole score groups
    /// around the probe that holds `n` members on each side, or runs to
    /// the end; and how many members it holds.
    #[test]
    fn bands_hold_n_on_each_side_in_whole_score_groups() {
        let pairs = [(10.0, 2), (7.0, 3), (5.0, 1), (-1.0, 4)];
        for order in [Order::Desc, Order::Asc] {
            let c = counts(&pairs, order);
            let better = |a: f64, b: f64| match order {
                Order::Desc => a > b,
                Order::Asc => a < b,
            };
            for probe in [11.0, 10.0, 8.0, 7.0, 5.0, 0.0, -1.0, -2.0] {
                for n in 0..12usize {
                    let band = c.band(probe, n);
                    // Brute force: groups better than the probe, nearest first.
                    let mut above: Vec<(f64, u64)> = pairs
                        .iter()
                        .copied()
                        .filter(|&(s, _)| better(s, probe))
                        .collect();
                    above.sort_by(|a, b| {
                        if better(a.0, b.0) {
                            std::cmp::Ordering::Greater
                        } else {
                            std::cmp::Ordering::Less
                        }
                    });
                    let mut below: Vec<(f64, u64)> = pairs
                        .iter()
                        .copied()
                        .filter(|&(s, _)| better(probe, s))
                        .collect();
                    below.sort_by(|a, b| {
                        if better(a.0, b.0) {
                            std::cmp::Ordering::Less
                        } else {
                            std::cmp::Ordering::Greater
                        }
                    });
                    let reach = |groups: &[(f64, u64)]| -> (Option<f64>, u64) {
                        let mut held = 0;
                        for &(s, k) in groups {
                            if held >= n as u64 {
                                break;
                            }
                            held += k;
                            if held >= n as u64 {
                                return (Some(s), held);
                            }
                        }
                        if held >= n as u64 && n > 0 {
                            unreachable!()
                        }
                        match n {
                            0 => (Some(probe), 0),
                            _ => (None, groups.iter().map(|g| g.1).sum()),
                        }
                    };
                    let (best, up) = reach(&above);
                    let (worst, down) = reach(&below);
                    let ties: u64 = pairs.iter().filter(|p| p.0 == probe).map(|p| p.1).sum();
                    let case = format!("{order:?} probe {probe} n {n}: {band:?}");
                    assert_eq!(band.members, up + ties + down, "{case}");
                    if n > 0 {
                        assert_eq!((band.best, band.worst), (best, worst), "{case}");
                    }
                }
            }
        }
    }

    fn follower() -> Follower {
        let mut f = Follower::new(
            Board::new(standings_core::BoardName::new("ix").unwrap()),
            false,
        );
        f.scanned.insert("all".into());
        f.counts.insert("all".into(), BTreeMap::new());
        f
    }

    fn mv(period: &str, old: Option<f64>, new: Option<f64>) -> IndexMove {
        IndexMove {
            period: period.into(),
            old,
            new,
        }
    }

    #[test]
    fn moves_shift_counts_and_a_count_below_zero_is_refused() {
        let mut f = follower();
        f.apply(&mv("all", None, Some(5.0))).unwrap();
        f.apply(&mv("all", None, Some(5.0))).unwrap();
        f.apply(&mv("all", Some(5.0), Some(9.0))).unwrap();
        let view = f.view(Instant::now());
        let c = &view.periods["all"];
        assert_eq!(c.standing(5.0).rank, 2);
        assert_eq!(c.standing(9.0).rank, 1);
        assert_eq!(c.total, 2);
        f.apply(&mv("all", Some(9.0), None)).unwrap();
        assert_eq!(f.view(Instant::now()).periods["all"].total, 1);
        assert!(matches!(
            f.apply(&mv("all", Some(9.0), None)),
            Err(StepError::Disagrees)
        ));
    }

    #[test]
    fn periods_begun_before_the_scan_and_not_scanned_are_not_held() {
        let mut f = follower();
        f.scan_ms = 1_700_000_000_000;
        // A day long before the scan: writes to it may predate the scan.
        f.apply(&mv("daily/2020-01-01", None, Some(1.0))).unwrap();
        assert!(!f.counts.contains_key("daily/2020-01-01"));
        // One that starts after it: the stream holds all of it.
        f.apply(&mv("daily/2030-01-01", None, Some(1.0))).unwrap();
        assert_eq!(f.counts["daily/2030-01-01"].len(), 1);
    }

    #[test]
    fn a_removal_naming_a_pruned_period_is_ignored_not_a_disagreement() {
        let mut f = follower();
        f.scan_ms = 1_700_000_000_000;
        // Held (it began after the scan), then long ended and pruned.
        let held: Arc<str> = "daily/2024-01-01".into();
        f.counts
            .insert(held.clone(), BTreeMap::from([(Key::of(3.0), 1)]));
        f.ignored.insert("daily/2023-01-01".into());
        f.prune();
        assert!(!f.counts.contains_key(&held));
        assert!(f.ignored.is_empty(), "long-ended ignored periods go too");
        // A removal lists the previous periods: no scan for it.
        assert!(!f.apply(&mv(&held, Some(3.0), None)).unwrap());
        assert!(!f.counts.contains_key(&held));
        // A period held now still disagrees when the index is wrong.
        assert!(matches!(
            f.apply(&mv("all", Some(1.0), None)),
            Err(StepError::Disagrees)
        ));
    }

    #[test]
    fn a_members_table_changes_with_the_view_that_counts_it() {
        let mut f = Follower::new(
            Board::new(standings_core::BoardName::new("ix").unwrap()),
            true,
        );
        f.scanned.insert("all".into());
        f.counts.insert("all".into(), BTreeMap::new());
        f.table = Some(Arc::new(MemberTable::default()));
        let table = f.table.clone().unwrap();
        let m = MemberId::new("user:1").unwrap();
        f.record(&IndexRecord {
            member: m.clone(),
            removed: false,
            moves: vec![mv("all", None, Some(4.0))],
            meta: None,
        })
        .unwrap();
        // Applied to the counts, not yet seen by the table's readers.
        assert_eq!(table.score("all", &m), None);
        let view = f.view(Instant::now());
        assert_eq!(table.score("all", &m), Some(4.0));
        assert_eq!(view.periods["all"].total, 1);
        f.record(&IndexRecord {
            member: m.clone(),
            removed: true,
            moves: vec![mv("all", Some(4.0), None)],
            meta: None,
        })
        .unwrap();
        assert_eq!(table.score("all", &m), Some(4.0));
        f.view(Instant::now());
        assert_eq!(table.score("all", &m), None);
    }
}
