//! The published global TOP-K of each period of each board, and its
//! pre-serialised bodies.
//!
//! The refresher builds a [`View`] off the request path and swaps it in
//! through an `ArcSwap`; a `top` or static read loads the `Arc` and clones a
//! `Bytes` body: no JSON is built and no entry is copied per request.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::HeaderValue;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use standings_core::types::ranks;
use standings_core::{Board, Entry};

use crate::period::{PeriodInfo, Slot};

/// The limits whose `top` bodies (offset 0) and static files are
/// pre-serialised.
pub const PRERENDERED: [usize; 3] = [20, 100, 1000];

/// One pre-serialised body.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The `limit` it answers.
    pub limit: usize,
    /// The JSON bytes.
    pub body: Bytes,
    /// Strong ETag over the bytes.
    pub etag: HeaderValue,
}

/// A board period's global TOP-K as last merged.
#[derive(Debug)]
pub struct View {
    /// The period it is of, as its bodies show it.
    pub period: PeriodInfo,
    /// Sum of group versions it was merged from; 0 before the first merge.
    pub version: u64,
    /// When the merge ran, ms since the epoch (0 before the first merge).
    pub generated_at_ms: u64,
    /// RFC 3339 form of `generated_at_ms`.
    pub generated_at: String,
    /// True when the last refresh could not reach the store.
    pub stale: bool,
    /// False until the first successful refresh: `/readyz` waits for it.
    pub loaded: bool,
    /// Best first.
    pub entries: Arc<Vec<Entry>>,
    /// Competition rank of each entry.
    pub ranks: Vec<u64>,
    /// Bodies for [`PRERENDERED`] limits.
    pub bodies: Vec<Rendered>,
}

/// A board and the swappable view of each of its [`Slot`]s.
pub struct BoardState {
    /// The board's definition.
    pub board: Board,
    /// The tenant that owns it (`public`: no key needed).
    pub tenant: Arc<str>,
    /// Whether its reads need no key.
    pub public_reads: bool,
    /// Whether it was created at run time (in the store's catalog) rather
    /// than in the config file.
    pub runtime: bool,
    /// The periods it keeps views of, the first period first.
    pub slots: Vec<Slot>,
    /// One view per slot; each replaced whole by the refresher.
    pub views: Vec<ArcSwap<View>>,
    /// When a refresh last reached the store (ms since the epoch): what
    /// `age_ms` on stale bodies and the snapshot-age gauge measure from.
    pub refreshed_at_ms: AtomicU64,
    /// The `surrogate-key`/`xkey` header value of its static files, built
    /// once so a static read allocates nothing.
    pub surrogate_key: HeaderValue,
}

impl BoardState {
    /// A board of tenant `public` with empty, not yet loaded views.
    pub fn new(board: Board) -> Self {
        Self::owned(board, Arc::from(standings_config::PUBLIC_TENANT), false)
    }

    /// A board of `tenant` with empty, not yet loaded views.
    pub fn owned(board: Board, tenant: Arc<str>, public_reads: bool) -> Self {
        let now = standings_core::store::now_ms_i64();
        let slots = Slot::all(&board);
        let views = slots
            .iter()
            .map(|slot| {
                let period = slot.resolve(&board, now);
                ArcSwap::from_pointee(View::build(&board, period, 0, 0, Vec::new(), false, false))
            })
            .collect();
        let surrogate_key = HeaderValue::from_str(&surrogate_key(board.name.as_str()))
            .expect("board names are valid header values");
        Self {
            surrogate_key,
            board,
            tenant,
            public_reads,
            runtime: false,
            slots,
            views,
            refreshed_at_ms: AtomicU64::new(standings_core::store::now_ms()),
        }
    }

    /// The view of the board's first period: what reads without
    /// `period=` are of.
    pub fn view(&self) -> &ArcSwap<View> {
        &self.views[0]
    }

    /// Whether every view has been loaded once.
    pub fn loaded(&self) -> bool {
        self.views.iter().all(|v| v.load().loaded)
    }

    /// Whether any view is stale.
    pub fn stale(&self) -> bool {
        self.views.iter().any(|v| v.load().stale)
    }
}

impl View {
    /// Ranks and renders a freshly merged list of `period`.
    pub fn build(
        board: &Board,
        period: PeriodInfo,
        version: u64,
        generated_at_ms: u64,
        entries: Vec<Entry>,
        stale: bool,
        loaded: bool,
    ) -> Self {
        let ranks = ranks(board.ties, &entries);
        let generated_at = format_ms(generated_at_ms);
        let mut view = View {
            period,
            version,
            generated_at_ms,
            generated_at,
            stale,
            loaded,
            entries: Arc::new(entries),
            ranks,
            bodies: Vec::new(),
        };
        view.bodies = PRERENDERED
            .iter()
            .filter(|&&limit| limit <= board.top_k)
            .map(|&limit| {
                let body = view.render(board, 0, limit, None);
                Rendered {
                    limit,
                    etag: etag(&body),
                    body,
                }
            })
            .collect();
        view
    }

    /// A merged list of `period` without pre-rendered bodies, for a read
    /// of a period that has no published view.
    pub fn unrendered(
        board: &Board,
        period: PeriodInfo,
        version: u64,
        generated_at_ms: u64,
        entries: Vec<Entry>,
    ) -> Self {
        View {
            period,
            version,
            generated_at_ms,
            generated_at: format_ms(generated_at_ms),
            stale: false,
            loaded: true,
            ranks: ranks(board.ties, &entries),
            entries: Arc::new(entries),
            bodies: Vec::new(),
        }
    }

    /// The same entries marked stale after a failed refresh; `age_ms` is
    /// how long ago a refresh last reached the store.
    pub fn as_stale(&self, board: &Board, age_ms: u64) -> Self {
        let age = age_ms;
        let mut view = View {
            period: self.period.clone(),
            version: self.version,
            generated_at_ms: self.generated_at_ms,
            generated_at: self.generated_at.clone(),
            stale: true,
            loaded: self.loaded,
            entries: self.entries.clone(),
            ranks: self.ranks.clone(),
            bodies: Vec::new(),
        };
        view.bodies = self
            .bodies
            .iter()
            .map(|r| {
                let body = view.render(board, 0, r.limit, Some(age));
                Rendered {
                    limit: r.limit,
                    etag: etag(&body),
                    body,
                }
            })
            .collect();
        view
    }

    /// The pre-rendered body for `limit` at offset 0, if there is one.
    pub fn prerendered(&self, limit: usize) -> Option<&Rendered> {
        self.bodies.iter().find(|r| r.limit == limit)
    }

    /// Serialises entries `offset..offset+limit` as a `top` body.
    pub fn render(&self, board: &Board, offset: usize, limit: usize, age_ms: Option<u64>) -> Bytes {
        let start = offset.min(self.entries.len());
        let end = offset.saturating_add(limit).min(self.entries.len());
        let entries = self.entries[start..end]
            .iter()
            .zip(&self.ranks[start..end])
            .map(|(e, &rank)| RankedEntry::new(rank, e))
            .collect();
        let body = TopBody {
            board: board.name.as_str(),
            period: &self.period,
            version: self.version,
            generated_at: &self.generated_at,
            stale: self.stale,
            age_ms,
            entries,
        };
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
    }
}

/// The JSON shape of `top` and the static files.
#[derive(Serialize)]
struct TopBody<'a> {
    board: &'a str,
    period: &'a PeriodInfo,
    version: u64,
    generated_at: &'a str,
    stale: bool,
    /// Only on stale bodies: how old the entries are.
    #[serde(skip_serializing_if = "Option::is_none")]
    age_ms: Option<u64>,
    entries: Vec<RankedEntry<'a>>,
}

/// One listed entry: `{"rank", "member", "score"}`, and `"meta"` when the
/// member has metadata (its JSON text embedded as it is).
#[derive(Serialize)]
pub struct RankedEntry<'a> {
    rank: u64,
    member: &'a str,
    #[serde(serialize_with = "score")]
    score: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<&'a RawValue>,
}

impl<'a> RankedEntry<'a> {
    /// Pairs an entry with its rank.
    pub fn new(rank: u64, entry: &'a Entry) -> Self {
        Self {
            rank,
            member: entry.member.as_str(),
            score: entry.score,
            meta: entry.meta.as_ref().map(|m| m.raw()),
        }
    }
}

/// Whole scores print as integers (`50`, not `50.0`), as clients expect;
/// scores are within +-2^53, so the conversion is exact.
pub fn score<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
    if value.fract() == 0.0 {
        s.serialize_i64(*value as i64)
    } else {
        s.serialize_f64(*value)
    }
}

/// The surrogate key the gateway puts on a board's static files (the
/// `surrogate-key` and `xkey` response headers).
pub fn surrogate_key(board: &str) -> String {
    format!("standings-board-{board}")
}

/// A strong ETag: FNV-1a 64 of the bytes, quoted.
fn etag(body: &[u8]) -> HeaderValue {
    let hash = standings_core::board::fnv1a64(body);
    HeaderValue::from_str(&format!("\"{hash:016x}\"")).expect("hex is a valid header value")
}

/// `2026-11-22T10:00:00.000Z`.
pub fn format_ms(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}
