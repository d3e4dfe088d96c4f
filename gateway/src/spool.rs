//! The event spool: where a gateway keeps the events it accepted while the
//! store could not be reached, so they are applied later, in order and once
//! (seed 001: "never an error page").
//!
//! It is a redb file, `events.spool_dir/spool-PORT.redb` (one per gateway:
//! two gateways on one host never share a port), holding rows
//! `seq -> event` committed to disk before the 202 is answered. The file is
//! created on the first spooled event, opened at start when a previous run
//! left one, and deleted at a clean shutdown when empty. A drain task
//! ([`drain`]) applies the oldest rows in order every
//! [`DRAIN_INTERVAL`] and deletes them once the store took them; a repeat
//! of an event the store did apply (its first attempt timed out) is
//! answered as a repeat by the store's event-id dedup, so nothing applies
//! twice.
//!
//! Events drained from the spool skip the per-pair like cooldown: it is
//! checked where the like state lives, which was unreachable when they
//! were accepted, and applying it at drain time would refuse a like and
//! its unlike sent a second apart. The per-actor rate limit is checked at
//! acceptance as always.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use standings_core::events::{Event, EventId, EventType};
use standings_core::store::now_ms;
use standings_core::{MemberId, StoreError};
use tokio_util::sync::CancellationToken;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// How often the drain task looks at the spool.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(250);

/// Most rows one drain step hands the store.
const DRAIN_BATCH: usize = 500;

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");

/// One spooled event.
#[derive(Serialize, Deserialize)]
struct Row {
    tenant: String,
    id: String,
    #[serde(rename = "type")]
    kind: String,
    actor: String,
    target: String,
    owner: Option<String>,
    /// When it was accepted, ms since the Unix epoch.
    at: u64,
}

impl Row {
    fn of(tenant: &str, e: &Event, at: u64) -> Self {
        Self {
            tenant: tenant.to_string(),
            id: e.id.as_str().to_string(),
            kind: e.kind.as_str().to_string(),
            actor: e.actor.as_str().to_string(),
            target: e.target.as_str().to_string(),
            owner: e.owner.as_ref().map(|o| o.as_str().to_string()),
            at,
        }
    }

    fn event(&self) -> Result<Event, String> {
        let m = |s: &str| MemberId::new(s).map_err(|e| e.to_string());
        Ok(Event {
            id: EventId::new(&self.id).map_err(|e| e.to_string())?,
            kind: EventType::parse(&self.kind).map_err(|e| e.to_string())?,
            actor: m(&self.actor)?,
            target: m(&self.target)?,
            owner: self.owner.as_deref().map(m).transpose()?,
        })
    }
}

/// Why the spool could not be used.
#[derive(Debug, thiserror::Error)]
#[error("event spool {path}: {message}")]
pub struct SpoolError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// The spool of one gateway.
pub struct Spool {
    path: PathBuf,
    capacity: u64,
    db: Mutex<Option<Database>>,
    len: AtomicU64,
    next: AtomicU64,
}

impl Spool {
    /// The spool at `dir/spool-PORT.redb`, opened now if a previous run
    /// left the file (its rows are drained first), else created on the
    /// first spooled event.
    pub fn open(dir: &Path, port: u16, capacity: u64) -> Result<Self, SpoolError> {
        let path = dir.join(format!("spool-{port}.redb"));
        let spool = Self {
            path,
            capacity,
            db: Mutex::new(None),
            len: AtomicU64::new(0),
            next: AtomicU64::new(1),
        };
        if spool.path.exists() {
            let mut db = spool.db.lock().unwrap_or_else(|p| p.into_inner());
            let opened = spool.create()?;
            let (len, last) = spool.count(&opened)?;
            spool.len.store(len, Ordering::SeqCst);
            spool.next.store(last + 1, Ordering::SeqCst);
            if len > 0 {
                tracing::warn!(path = %spool.path.display(), events = len, "event spool left by a previous run; draining it first");
            }
            *db = Some(opened);
        }
        Ok(spool)
    }

    fn err(&self, message: impl std::fmt::Display) -> SpoolError {
        SpoolError {
            path: self.path.clone(),
            message: message.to_string(),
        }
    }

    fn create(&self) -> Result<Database, SpoolError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.err(e))?;
        }
        let db = Database::create(&self.path).map_err(|e| self.err(e))?;
        let tx = db.begin_write().map_err(|e| self.err(e))?;
        tx.open_table(EVENTS).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(db)
    }

    fn count(&self, db: &Database) -> Result<(u64, u64), SpoolError> {
        let tx = db.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(EVENTS).map_err(|e| self.err(e))?;
        let len = table.len().map_err(|e| self.err(e))?;
        let last = table
            .last()
            .map_err(|e| self.err(e))?
            .map_or(0, |(k, _)| k.value());
        Ok((len, last))
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len.load(Ordering::SeqCst) == 0
    }

    /// Events waiting.
    pub fn len(&self) -> u64 {
        self.len.load(Ordering::SeqCst)
    }

    /// Appends `events` of `tenant`, committed to disk before it returns;
    /// 503 `spool_full` when they do not fit.
    pub fn push(&self, tenant: &str, events: &[Event]) -> Result<(), ApiError> {
        let mut db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let n = events.len() as u64;
        if self.len.load(Ordering::SeqCst) + n > self.capacity {
            metrics::counter!("standings_events_total", "result" => "spool_full").increment(n);
            let mut e = ApiError::unavailable(
                ErrorCode::SpoolFull,
                "the store is unreachable and the event spool is full (events.spool_capacity); retry after Retry-After",
            );
            e.retry_after = Some(5);
            return Err(e);
        }
        let write = |db: &Database| -> Result<(), SpoolError> {
            let tx = db.begin_write().map_err(|e| self.err(e))?;
            {
                let mut table = tx.open_table(EVENTS).map_err(|e| self.err(e))?;
                let at = now_ms();
                for e in events {
                    let seq = self.next.fetch_add(1, Ordering::SeqCst);
                    let row =
                        serde_json::to_vec(&Row::of(tenant, e, at)).map_err(|e| self.err(e))?;
                    table.insert(seq, row.as_slice()).map_err(|e| self.err(e))?;
                }
            }
            tx.commit().map_err(|e| self.err(e))
        };
        let result = match db.as_ref() {
            Some(open) => write(open),
            None => self.create().and_then(|open| {
                let r = write(&open);
                *db = Some(open);
                r
            }),
        };
        result.map_err(|e| {
            tracing::error!(error = %e, "cannot spool events");
            ApiError::unavailable(
                ErrorCode::StoreUnavailable,
                "the store is unreachable and the event spool cannot be written; nothing was applied",
            )
        })?;
        self.len.fetch_add(n, Ordering::SeqCst);
        metrics::gauge!("standings_event_spool_depth").set(self.len() as f64);
        Ok(())
    }

    /// The oldest rows, up to `max`: (seq, tenant, event or why it cannot
    /// be read, accepted at).
    #[allow(clippy::type_complexity)]
    fn oldest(
        &self,
        max: usize,
    ) -> Result<Vec<(u64, String, Result<Event, String>, u64)>, SpoolError> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let Some(db) = db.as_ref() else {
            return Ok(Vec::new());
        };
        let tx = db.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(EVENTS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| self.err(e))?.take(max) {
            let (k, v) = row.map_err(|e| self.err(e))?;
            match serde_json::from_slice::<Row>(v.value()) {
                Ok(r) => out.push((k.value(), r.tenant.clone(), r.event(), r.at)),
                Err(e) => out.push((k.value(), String::new(), Err(e.to_string()), 0)),
            }
        }
        Ok(out)
    }

    /// Deletes rows `..=upto`.
    fn remove_through(&self, upto: u64, count: u64) -> Result<(), SpoolError> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let Some(db) = db.as_ref() else {
            return Ok(());
        };
        let tx = db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = tx.open_table(EVENTS).map_err(|e| self.err(e))?;
            table
                .retain_in(..=upto, |_, _| false)
                .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        self.len.fetch_sub(count.min(self.len()), Ordering::SeqCst);
        Ok(())
    }

    /// Deletes the file when nothing waits (a clean shutdown).
    pub fn close(&self) {
        let mut db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        if self.is_empty() && db.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Applies the spool's rows in order until `shutdown`, a batch per tenant
/// run at a time; stops a pass at the first store failure and retries the
/// same rows next pass.
pub async fn drain(state: Arc<AppState>, shutdown: CancellationToken) {
    let Some(spool) = state.spool.as_ref() else {
        return;
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(DRAIN_INTERVAL) => {}
        }
        if spool.is_empty() {
            metrics::gauge!("standings_event_spool_depth").set(0.0);
            metrics::gauge!("standings_event_spool_age_seconds").set(0.0);
            continue;
        }
        if let Err(e) = drain_once(&state, spool).await {
            tracing::debug!(error = %e, "event spool not drained yet");
        }
        metrics::gauge!("standings_event_spool_depth").set(spool.len() as f64);
    }
    spool.close();
}

/// One pass: the oldest rows, grouped into runs of one tenant, each run
/// applied and then deleted.
async fn drain_once(state: &AppState, spool: &Spool) -> Result<(), String> {
    let rows = spool.oldest(DRAIN_BATCH).map_err(|e| e.to_string())?;
    if let Some((_, _, _, at)) = rows.first() {
        let age = now_ms().saturating_sub(*at) as f64 / 1000.0;
        metrics::gauge!("standings_event_spool_age_seconds").set(age);
    }
    let mut i = 0;
    while i < rows.len() {
        let tenant = rows[i].1.clone();
        let run_end = rows[i..]
            .iter()
            .position(|r| r.1 != tenant)
            .map_or(rows.len(), |p| i + p);
        let run = &rows[i..run_end];
        let registry = state.registry.load_full();
        let events: Vec<Event> = run
            .iter()
            .filter_map(|(seq, _, e, _)| match e {
                Ok(e) => Some(e.clone()),
                Err(why) => {
                    tracing::error!(seq, error = %why, "unreadable spooled event dropped");
                    None
                }
            })
            .collect();
        match registry.events_of(&tenant) {
            Some(t) if !events.is_empty() => {
                let space = standings_core::events::LikeSpace {
                    cooldown: Duration::ZERO,
                    ..t.space.clone()
                };
                match state.store.apply_events(&space, &t.boards, &events).await {
                    Ok(outcomes) => {
                        let applied = outcomes.iter().filter(|o| o.applied).count();
                        metrics::counter!("standings_events_total", "result" => "drained")
                            .increment(outcomes.len() as u64);
                        tracing::info!(
                            tenant,
                            events = outcomes.len(),
                            applied,
                            "spooled events applied"
                        );
                    }
                    Err(StoreError::Unavailable(e) | StoreError::OutcomeUnknown(e)) => {
                        return Err(e);
                    }
                    Err(e) => {
                        // Not a reachability problem: retrying cannot help.
                        tracing::error!(tenant, error = %e, "spooled events refused by the store; dropped");
                    }
                }
            }
            Some(_) => {}
            None => {
                tracing::error!(
                    tenant,
                    events = events.len(),
                    "spooled events of a tenant no longer configured; dropped"
                );
            }
        }
        let last = run.last().map(|r| r.0).unwrap_or(0);
        spool
            .remove_through(last, run.len() as u64)
            .map_err(|e| e.to_string())?;
        i = run_end;
    }
    Ok(())
}
