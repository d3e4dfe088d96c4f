//! `POST /v1/events`: behaviour events in, exactly once per event id.
//!
//! The body is one event or `{"events": [...]}` (at most
//! [`MAX_BATCH`]). Every event is checked before any is applied, so a
//! malformed batch applies nothing and the 400 names the event and field
//! (`events[3].actor`). The store applies them in order
//! ([`standings_core::Store::apply_events`]); when it cannot be reached
//! the events go to the durable spool ([`crate::spool`]) and the answer is
//! 202 `queued: true`. While the spool holds anything, new events queue
//! behind it, so they are applied in the order they were accepted.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use standings_core::events::{Event, EventId, EventOutcome, EventType, Refusal, MAX_BATCH};
use standings_core::{MemberId, StoreError};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorCode};
use crate::reply::{json, json_of};
use crate::request::{json_object, present, read_body, require_json};
use crate::state::{AppState, TenantEvents};

/// One event as sent; every field optional here so a missing one is named.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    #[serde(default, deserialize_with = "present")]
    id: Option<Value>,
    #[serde(default, rename = "type", deserialize_with = "present")]
    kind: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    actor: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    target: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    owner: Option<Value>,
}

/// The request: one event's fields, or `events`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    #[serde(default, deserialize_with = "present")]
    id: Option<Value>,
    #[serde(default, rename = "type", deserialize_with = "present")]
    kind: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    actor: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    target: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    owner: Option<Value>,
    #[serde(default)]
    events: Option<Vec<EventBody>>,
}

/// The tenant events of `caller` are of: its key's tenant, or `public`
/// for a call without a key.
pub fn tenant_of(caller: Option<&Caller>) -> &str {
    caller.map_or(standings_config::PUBLIC_TENANT, |c| &c.tenant)
}

/// Parses the body into events, each checked: id, type (a like action or
/// a type some board of the tenant weighs), actor, target, owner.
pub fn parse(body: &[u8], tenant: &TenantEvents) -> Result<(Vec<Event>, bool), ApiError> {
    let b: Body = json_object(body, "id, type, actor, target, owner, or events")?;
    if let Some(list) = b.events {
        let single = [&b.id, &b.kind, &b.actor, &b.target, &b.owner];
        if single.iter().any(|f| f.is_some()) {
            return Err(ApiError::bad_field(
                ErrorCode::InvalidEvent,
                "events",
                "send one event's fields or an events array, not both",
            ));
        }
        if list.is_empty() || list.len() > MAX_BATCH {
            return Err(ApiError::bad_field(
                ErrorCode::InvalidEvent,
                "events",
                format!("events must hold 1 to {MAX_BATCH} events"),
            ));
        }
        let events = list
            .into_iter()
            .enumerate()
            .map(|(i, e)| event(e, tenant, &format!("events[{i}].")))
            .collect::<Result<_, _>>()?;
        return Ok((events, true));
    }
    let one = EventBody {
        id: b.id,
        kind: b.kind,
        actor: b.actor,
        target: b.target,
        owner: b.owner,
    };
    Ok((vec![event(one, tenant, "")?], false))
}

fn event(e: EventBody, tenant: &TenantEvents, at: &str) -> Result<Event, ApiError> {
    let field = |name: &str| format!("{at}{name}");
    let text = |v: Option<Value>, name: &str, required: bool| -> Result<Option<String>, ApiError> {
        match v {
            None if !required => Ok(None),
            None => Err(ApiError::bad_field(
                ErrorCode::MissingField,
                field(name),
                format!("{} is required", field(name)),
            )),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(Value::Null) if !required => Ok(None),
            Some(_) => Err(ApiError::bad_field(
                ErrorCode::InvalidEvent,
                field(name),
                format!("{} must be a string", field(name)),
            )),
        }
    };
    let named = |f: String, e: standings_core::InvalidInput| {
        ApiError::bad_field(
            ErrorCode::InvalidEvent,
            f.clone(),
            format!("{f}: {}", e.message),
        )
    };
    let id = text(e.id, "id", true)?.unwrap_or_default();
    let id = EventId::new(&id).map_err(|err| named(field("id"), err))?;
    let kind = text(e.kind, "type", true)?.unwrap_or_default();
    let kind = EventType::parse(&kind).map_err(|err| named(field("type"), err))?;
    if let EventType::Counted(t) = &kind {
        if !tenant.counted.contains(&**t) {
            return Err(ApiError::bad_field(
                ErrorCode::InvalidEvent,
                field("type"),
                format!(
                    "{}: no board of this tenant weighs event type {:?}; types are like, unlike, dislike, undislike or one named in a board's weights",
                    field("type"),
                    crate::error::short(t)
                ),
            ));
        }
    }
    let member =
        |v: Option<Value>, name: &str, required: bool| -> Result<Option<MemberId>, ApiError> {
            text(v, name, required)?
                .map(|s| MemberId::new(&s).map_err(|err| named(field(name), err)))
                .transpose()
        };
    Ok(Event {
        id,
        kind,
        actor: member(e.actor, "actor", true)?.expect("required"),
        target: member(e.target, "target", true)?.expect("required"),
        owner: member(e.owner, "owner", false)?,
    })
}

#[derive(Serialize)]
struct ResultEntry<'a> {
    id: &'a str,
    applied: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<EntryError>,
}

#[derive(Serialize)]
struct EntryError {
    code: &'static str,
    message: &'static str,
}

#[derive(Serialize)]
struct Reply<'a> {
    results: Vec<ResultEntry<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    queued: bool,
}

fn refusal_message(r: Refusal) -> &'static str {
    match r {
        Refusal::Conflict => "this event id was used before for another event",
        Refusal::Cooldown => "one like action per actor and target per likes.cooldown; retry later",
        Refusal::OutOfRange => "a board score would leave +-2^53; nothing was applied",
    }
}

/// The error a single event's refusal answers.
fn refusal_error(r: Refusal, tenant: &TenantEvents) -> ApiError {
    match r {
        Refusal::Conflict => {
            ApiError::new(ErrorCode::IdempotencyConflict, refusal_message(r)).with_field("id")
        }
        Refusal::Cooldown => {
            let mut e = ApiError::rate_limited(tenant.space.cooldown);
            e.message = refusal_message(r).into();
            e
        }
        Refusal::OutOfRange => {
            ApiError::new(ErrorCode::InvalidScore, refusal_message(r)).with_field("type")
        }
    }
}

/// Validates and applies events.
pub async fn post_events<B>(
    state: &AppState,
    caller: Option<&Caller>,
    headers: &HeaderMap,
    body: B,
) -> Result<Response<Full<Bytes>>, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    require_json(headers)?;
    let registry = state.registry.load_full();
    let tenant_id = tenant_of(caller);
    let tenant = registry
        .events_of(tenant_id)
        .cloned()
        .ok_or_else(ApiError::not_found)?;
    let body = read_body(headers, body, state.max_body_bytes).await?;
    let (events, batch) = parse(&body, &tenant)?;
    if let Some(limiter) = &state.actor_limiter {
        let now = std::time::Instant::now();
        for e in &events {
            let key = (Arc::<str>::from(tenant_id), e.actor.clone());
            if let crate::limit::Decision::Limited { retry_after, .. } = limiter.check(&key, now) {
                metrics::counter!("standings_rate_limited_total", "what" => "events").increment(1);
                let mut err = ApiError::rate_limited(retry_after);
                err.message = format!(
                    "actor {:?} is over events.rate_per_actor; nothing of this request was applied",
                    crate::error::short(e.actor.as_str())
                )
                .into();
                return Err(err.with_field(if batch { "events" } else { "actor" }));
            }
        }
    }
    let outcomes = match apply_or_spool(state, &tenant, tenant_id, &events).await? {
        Some(outcomes) => outcomes,
        None => {
            metrics::counter!("standings_events_total", "result" => "queued")
                .increment(events.len() as u64);
            let results = events
                .iter()
                .map(|e| ResultEntry {
                    id: e.id.as_str(),
                    applied: false,
                    state: None,
                    error: None,
                })
                .collect();
            let bytes = serde_json::to_vec(&Reply {
                results,
                queued: true,
            })
            .unwrap_or_default();
            return Ok(json(StatusCode::ACCEPTED, Bytes::from(bytes)));
        }
    };
    count(&outcomes);
    if !batch {
        if let Some(r) = outcomes.first().and_then(|o| o.refused) {
            return Err(refusal_error(r, &tenant));
        }
    }
    let results = events
        .iter()
        .zip(&outcomes)
        .map(|(e, o)| ResultEntry {
            id: e.id.as_str(),
            applied: o.applied,
            state: o.state.map(|s| s.as_str()),
            error: o.refused.map(|r| EntryError {
                code: r.as_str(),
                message: refusal_message(r),
            }),
        })
        .collect();
    Ok(json_of(&Reply {
        results,
        queued: false,
    }))
}

fn count(outcomes: &[EventOutcome]) {
    for o in outcomes {
        let result = match (o.applied, o.refused) {
            (true, _) => "applied",
            (false, Some(_)) => "refused",
            (false, None) => "unchanged",
        };
        metrics::counter!("standings_events_total", "result" => result).increment(1);
    }
}

/// Applies `events`, or queues them in the spool when the store cannot
/// take them (`None`: queued). With the spool not empty, events queue
/// behind it so order holds.
async fn apply_or_spool(
    state: &AppState,
    tenant: &TenantEvents,
    tenant_id: &str,
    events: &[Event],
) -> Result<Option<Vec<EventOutcome>>, ApiError> {
    let Some(spool) = &state.spool else {
        return Ok(Some(
            state
                .store
                .apply_events(&tenant.space, &tenant.boards, events)
                .await?,
        ));
    };
    if spool.is_empty() {
        match state
            .store
            .apply_events(&tenant.space, &tenant.boards, events)
            .await
        {
            Ok(outcomes) => return Ok(Some(outcomes)),
            Err(StoreError::Unavailable(e) | StoreError::OutcomeUnknown(e)) => {
                tracing::warn!(error = %e, "store unreachable; events go to the spool");
            }
            Err(e) => return Err(e.into()),
        }
    }
    spool.push(tenant_id, events)?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use standings_core::events::LikeSpace;
    use standings_core::BoardName;

    fn tenant() -> TenantEvents {
        TenantEvents {
            space: LikeSpace::new(BoardName::new("public").unwrap()),
            boards: Vec::new(),
            counted: ["comment".to_string()].into(),
        }
    }

    fn field(body: &str) -> Option<String> {
        parse(body.as_bytes(), &tenant())
            .unwrap_err()
            .field
            .map(|f| f.into_owned())
    }

    #[test]
    fn one_event_or_a_batch() {
        let (one, batch) = parse(
            br#"{"id":"e1","type":"like","actor":"u:1","target":"v:9","owner":"u:5"}"#,
            &tenant(),
        )
        .unwrap();
        assert!(!batch);
        assert_eq!(one[0].owner.as_ref().unwrap().as_str(), "u:5");
        let (many, batch) = parse(
            br#"{"events":[{"id":"a","type":"comment","actor":"u","target":"v"},{"id":"b","type":"unlike","actor":"u","target":"v","owner":null}]}"#,
            &tenant(),
        )
        .unwrap();
        assert!(batch);
        assert_eq!(many.len(), 2);
        assert_eq!(many[1].owner, None);
    }

    #[test]
    fn every_error_names_its_field() {
        assert_eq!(
            field(r#"{"type":"like","actor":"u","target":"v"}"#).as_deref(),
            Some("id")
        );
        assert_eq!(
            field(r#"{"id":"has space","type":"like","actor":"u","target":"v"}"#).as_deref(),
            Some("id")
        );
        assert_eq!(
            field(r#"{"id":"e","type":"share","actor":"u","target":"v"}"#).as_deref(),
            Some("type"),
            "a type no board weighs"
        );
        assert_eq!(
            field(r#"{"id":"e","type":"like","actor":"","target":"v"}"#).as_deref(),
            Some("actor")
        );
        assert_eq!(
            field(r#"{"id":"e","type":"like","actor":"u","target":7}"#).as_deref(),
            Some("target")
        );
        assert_eq!(
            field(r#"{"events":[{"id":"a","type":"like","actor":"u","target":"v"},{"id":"b","type":"like","actor":"u"}]}"#).as_deref(),
            Some("events[1].target")
        );
        assert_eq!(field(r#"{"events":[]}"#).as_deref(), Some("events"));
        assert_eq!(
            field(r#"{"id":"e","events":[{"id":"a","type":"like","actor":"u","target":"v"}]}"#)
                .as_deref(),
            Some("events")
        );
        assert_eq!(
            field(r#"{"id":"e","type":"like","actor":"u","target":"v","colour":1}"#).as_deref(),
            Some("colour")
        );
        assert_eq!(
            field(r#"{"id":"e","id":"f","type":"like","actor":"u","target":"v"}"#).as_deref(),
            Some("id"),
            "a repeated field"
        );
    }
}
