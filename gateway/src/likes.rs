//! Like reads: a target's counts (and one actor's state), the feed-page
//! lookup, an actor's recent likes and an owner's total.
//!
//! Never an error page (seed 001): when the store cannot be reached these
//! answer 200 with `"degraded": true` and the last values this gateway saw
//! ([`LastSeen`]), or zeros.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use bytes::Bytes;
use http::{HeaderMap, Response};
use http_body_util::Full;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use standings_core::events::{LikeCounts, LikeState, LikedTarget};
use standings_core::{BoardName, MemberId, StoreError};

use crate::error::{ApiError, ErrorCode};
use crate::reply::json_of;
use crate::request::{json_object, present, read_body, require_json, Query};
use crate::state::{AppState, TenantEvents};

/// Most targets one lookup takes.
pub const MAX_LOOKUP: usize = 100;

/// Most entries each table of [`LastSeen`] keeps; past it the table is
/// emptied and refills from reads (a bound, not an LRU: degraded answers
/// are a fallback).
const LAST_SEEN_CAP: usize = 100_000;

/// A bounded map of what reads answered last.
struct Table<K, V>(Mutex<HashMap<K, V>>);

impl<K: Hash + Eq, V: Clone> Table<K, V> {
    fn new() -> Self {
        Self(Mutex::new(HashMap::new()))
    }

    fn put(&self, k: K, v: V) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= LAST_SEEN_CAP && !map.contains_key(&k) {
            map.clear();
        }
        map.insert(k, v);
    }

    fn get(&self, k: &K) -> Option<V> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(k)
            .cloned()
    }
}

/// The last like values this gateway answered, for degraded answers.
pub struct LastSeen {
    counts: Table<(BoardName, MemberId), (u64, u64)>,
    states: Table<(BoardName, MemberId, MemberId), LikeState>,
    lists: Table<(BoardName, MemberId), Vec<LikedTarget>>,
    owners: Table<(BoardName, MemberId), u64>,
}

impl Default for LastSeen {
    fn default() -> Self {
        Self {
            counts: Table::new(),
            states: Table::new(),
            lists: Table::new(),
            owners: Table::new(),
        }
    }
}

fn degraded_or<T>(r: Result<T, StoreError>) -> Result<Option<T>, ApiError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(StoreError::Unavailable(e)) => {
            metrics::counter!("standings_like_reads_degraded_total").increment(1);
            tracing::debug!(error = %e, "like read degraded");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Serialize)]
struct Counts<'a> {
    target: &'a str,
    likes: u64,
    dislikes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'static str>,
}

#[derive(Serialize)]
struct CountsReply<'a> {
    #[serde(flatten)]
    counts: Counts<'a>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    degraded: bool,
}

/// Counts of `targets` (and `actor`'s states), from the store or, when
/// it is unreachable, from [`LastSeen`] (`true`: degraded).
async fn counts_of(
    state: &AppState,
    tenant: &TenantEvents,
    targets: &[MemberId],
    actor: Option<&MemberId>,
) -> Result<(Vec<LikeCounts>, bool), ApiError> {
    let t = &tenant.space.tenant;
    let seen = &state.last_seen;
    match degraded_or(state.store.like_counts(&tenant.space, targets, actor).await)? {
        Some(counts) => {
            for (target, c) in targets.iter().zip(&counts) {
                seen.counts
                    .put((t.clone(), target.clone()), (c.likes, c.dislikes));
                if let Some(a) = actor {
                    seen.states
                        .put((t.clone(), target.clone(), a.clone()), c.state);
                }
            }
            Ok((counts, false))
        }
        None => Ok((
            targets
                .iter()
                .map(|target| {
                    let (likes, dislikes) = seen
                        .counts
                        .get(&(t.clone(), target.clone()))
                        .unwrap_or_default();
                    let state = actor
                        .and_then(|a| seen.states.get(&(t.clone(), target.clone(), a.clone())))
                        .unwrap_or_default();
                    LikeCounts {
                        likes,
                        dislikes,
                        state,
                    }
                })
                .collect(),
            true,
        )),
    }
}

fn member(text: &str, field: &'static str) -> Result<MemberId, ApiError> {
    MemberId::new(text).map_err(|e| {
        ApiError::bad_field(
            ErrorCode::InvalidMember,
            field,
            format!("{field}: {}", e.message),
        )
    })
}

/// `GET /v1/likes/{target}[?actor=A]`.
pub async fn target(
    state: &AppState,
    tenant: &TenantEvents,
    target: &str,
    query: &Query<'_>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let target = member(target, "target")?;
    let actor = query
        .text("actor")?
        .map(|a| member(&a, "actor"))
        .transpose()?;
    let (counts, degraded) =
        counts_of(state, tenant, std::slice::from_ref(&target), actor.as_ref()).await?;
    let c = counts.first().copied().unwrap_or_default();
    Ok(json_of(&CountsReply {
        counts: Counts {
            target: target.as_str(),
            likes: c.likes,
            dislikes: c.dislikes,
            state: actor.is_some().then(|| c.state.as_str()),
        },
        degraded,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LookupBody {
    #[serde(default, deserialize_with = "present")]
    actor: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    targets: Option<Value>,
}

#[derive(Serialize)]
struct LookupReply<'a> {
    entries: Vec<Counts<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    degraded: bool,
}

/// `POST /v1/likes:lookup` `{"actor", "targets": [...]}`: a feed page's
/// counts and states in one call (one round trip per store node).
pub async fn lookup<B>(
    state: &AppState,
    tenant: &TenantEvents,
    headers: &HeaderMap,
    body: B,
) -> Result<Response<Full<Bytes>>, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    require_json(headers)?;
    let body = read_body(headers, body, state.max_body_bytes).await?;
    let b: LookupBody = json_object(&body, "actor, targets")?;
    let actor = match b.actor {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(member(&s, "actor")?),
        Some(_) => {
            return Err(ApiError::bad_field(
                ErrorCode::InvalidMember,
                "actor",
                "actor must be a string",
            ))
        }
    };
    let list = match b.targets {
        None => {
            return Err(ApiError::bad_field(
                ErrorCode::MissingField,
                "targets",
                "targets is required",
            ))
        }
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(ApiError::bad_field(
                ErrorCode::InvalidMember,
                "targets",
                "targets must be an array of strings",
            ))
        }
    };
    if list.len() > MAX_LOOKUP {
        return Err(ApiError::bad_field(
            ErrorCode::InvalidParameter,
            "targets",
            format!("at most {MAX_LOOKUP} targets per lookup"),
        ));
    }
    let targets = list
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => MemberId::new(s).map_err(|e| {
                ApiError::bad_field(
                    ErrorCode::InvalidMember,
                    format!("targets[{i}]"),
                    format!("targets[{i}]: {}", e.message),
                )
            }),
            _ => Err(ApiError::bad_field(
                ErrorCode::InvalidMember,
                format!("targets[{i}]"),
                format!("targets[{i}] must be a string"),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (counts, degraded) = if targets.is_empty() {
        (Vec::new(), false)
    } else {
        counts_of(state, tenant, &targets, actor.as_ref()).await?
    };
    let entries = targets
        .iter()
        .zip(&counts)
        .map(|(t, c)| Counts {
            target: t.as_str(),
            likes: c.likes,
            dislikes: c.dislikes,
            state: Some(c.state.as_str()),
        })
        .collect();
    Ok(json_of(&LookupReply { entries, degraded }))
}

#[derive(Serialize)]
struct Liked<'a> {
    target: &'a str,
    /// When the like was applied, ms since the Unix epoch.
    at: u64,
}

#[derive(Serialize)]
struct ActorReply<'a> {
    actor: &'a str,
    entries: Vec<Liked<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    degraded: bool,
}

/// `GET /v1/actors/{actor}/likes?limit=20`: newest first.
pub async fn actor(
    state: &AppState,
    tenant: &TenantEvents,
    actor: &str,
    query: &Query<'_>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let actor = member(actor, "actor")?;
    let max = tenant.space.recent_per_actor;
    let limit = query.int("limit", 20.min(max), 1..=max)?;
    let key = (tenant.space.tenant.clone(), actor.clone());
    let (list, degraded) =
        match degraded_or(state.store.actor_likes(&tenant.space, &actor, limit).await)? {
            Some(list) => {
                state.last_seen.lists.put(key, list.clone());
                (list, false)
            }
            None => {
                let mut list = state.last_seen.lists.get(&key).unwrap_or_default();
                list.truncate(limit);
                (list, true)
            }
        };
    Ok(json_of(&ActorReply {
        actor: actor.as_str(),
        entries: list
            .iter()
            .map(|l| Liked {
                target: l.target.as_str(),
                at: l.at_ms,
            })
            .collect(),
        degraded,
    }))
}

#[derive(Serialize)]
struct OwnerReply<'a> {
    owner: &'a str,
    likes_received: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    degraded: bool,
}

/// `GET /v1/owners/{owner}/likes`.
pub async fn owner(
    state: &AppState,
    tenant: &TenantEvents,
    owner: &str,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let owner = member(owner, "owner")?;
    let key = (tenant.space.tenant.clone(), owner.clone());
    let (total, degraded) = match degraded_or(state.store.owner_likes(&tenant.space, &owner).await)?
    {
        Some(n) => {
            state.last_seen.owners.put(key, n);
            (n, false)
        }
        None => (state.last_seen.owners.get(&key).unwrap_or(0), true),
    };
    Ok(json_of(&OwnerReply {
        owner: owner.as_str(),
        likes_received: total,
        degraded,
    }))
}
