//! Operator endpoints. `POST /v1/admin/backup`: a consistent copy of the
//! embedded store, written while serving, for `standings-gateway backup`.
//! `PUT /v1/admin/boards/{board}/blends/{name}`: a blend's weights, changed
//! at run time.
//!
//! Admin routes are open like every other route until the tenants work
//! gives them keys and scopes; the shipped Varnish configuration does not
//! cache them.

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use serde::Serialize;
use standings_config::KeyScope;
use standings_core::{Blend, BlendPart, Board};

use crate::error::{short, ApiError, ErrorCode};
use crate::reply::{json_of, Reply};
use crate::request::{json_object, read_body, require_json};
use crate::state::AppState;

#[derive(Serialize)]
struct BackupReply {
    file: String,
    bytes: u64,
}

/// Writes the backup and answers where it is.
pub async fn backup(state: &AppState) -> Reply {
    let Some(backups) = &state.backups else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "backups are of the embedded store; this gateway uses another store",
        ));
    };
    let _one = backups.running.lock().await;
    let (store, path) = (backups.store.clone(), backups.path.clone());
    let written = tokio::task::spawn_blocking(move || {
        store.backup(&path)?;
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Ok::<_, standings_core::store::OpenError>((path, bytes))
    })
    .await;
    match written {
        Ok(Ok((path, bytes))) => {
            tracing::info!(file = %path.display(), bytes, "backup written");
            Ok(json_of(&BackupReply {
                file: path.display().to_string(),
                bytes,
            }))
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "backup failed");
            Err(ApiError::unavailable(
                ErrorCode::StoreError,
                format!("the backup could not be written: {e}"),
            ))
        }
        Err(e) => Err(ApiError::unavailable(
            ErrorCode::StoreError,
            format!("the backup task failed: {e}"),
        )),
    }
}

/// `{"parts": [...]}`, validated by hand so each error names its part.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BlendBody {
    parts: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct BlendPartReply {
    period: String,
    weight: f64,
}

#[derive(Serialize)]
struct BlendReply<'a> {
    board: &'a str,
    blend: &'a str,
    parts: Vec<BlendPartReply>,
}

/// Reads blend parts: `[{"period": "daily", "weight": 0.7}, ...]`.
fn parse_parts(value: serde_json::Value, board: &Board) -> Result<Vec<BlendPart>, ApiError> {
    let bad = |field: String, message: String| {
        ApiError::bad_field(ErrorCode::InvalidBlend, field, message)
    };
    let serde_json::Value::Array(items) = value else {
        return Err(bad(
            "parts".into(),
            "parts must be an array of {period, weight}".into(),
        ));
    };
    let mut parts = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = |f: &str| format!("parts[{i}].{f}");
        let serde_json::Value::Object(map) = item else {
            return Err(bad(
                format!("parts[{i}]"),
                "each part must be an object {period, weight}".into(),
            ));
        };
        if let Some(other) = map.keys().find(|k| *k != "period" && *k != "weight") {
            return Err(ApiError::bad_field(
                ErrorCode::UnknownField,
                field(&short(other)),
                format!("unknown field {:?}; expected period, weight", short(other)),
            ));
        }
        let period = map
            .get("period")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| {
                bad(
                    field("period"),
                    "period must be a string such as \"daily\" or \"weekly/previous\"".into(),
                )
            })?;
        let (kind, previous) =
            BlendPart::parse_period(period).map_err(|e| bad(field("period"), e))?;
        let weight = map
            .get("weight")
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| bad(field("weight"), "weight must be a number".into()))?;
        parts.push(BlendPart {
            kind,
            previous,
            weight,
        });
    }
    standings_core::blend::check_parts(&parts, &board.periods)
        .map_err(|e| bad(e.path("parts"), e.message))?;
    Ok(parts)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WeightsBody {
    #[serde(default)]
    weights: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct WeightsReply<'a> {
    board: &'a str,
    weights: &'a std::collections::BTreeMap<String, f64>,
}

/// `PUT /v1/admin/boards/{board}/weights` `{"weights": {"like": 2, ...}}`:
/// replaces the event weights of an event-fed board for every gateway
/// (kept in the store; each gateway reads them every refresh). They apply
/// to events from then on; scores already earned stay.
pub async fn set_weights<B>(state: &AppState, board: &str, headers: &HeaderMap, body: B) -> Reply
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let b = state.board(board)?;
    if b.board.source.is_none() {
        return Err(ApiError::bad_field(
            ErrorCode::InvalidParameter,
            "board",
            format!(
                "board {} is not fed by events (it has no source), so it has no weights",
                b.board.name
            ),
        ));
    }
    require_json(headers)?;
    let body = read_body(headers, body, state.max_body_bytes).await?;
    let fields: WeightsBody = json_object(&body, "weights")?;
    let value = fields.weights.ok_or_else(|| {
        ApiError::bad_field(ErrorCode::MissingField, "weights", "weights is required")
    })?;
    let serde_json::Value::Object(map) = value else {
        return Err(ApiError::bad_field(
            ErrorCode::InvalidParameter,
            "weights",
            "weights must be an object of event type -> number",
        ));
    };
    let mut pairs = std::collections::BTreeMap::new();
    for (k, v) in map {
        let Some(w) = v.as_f64() else {
            return Err(ApiError::bad_field(
                ErrorCode::InvalidParameter,
                "weights",
                format!("weights.{}: must be a number", short(&k)),
            ));
        };
        pairs.insert(k, w);
    }
    let weights = standings_core::events::Weights::new(pairs)
        .map_err(|e| ApiError::bad_field(ErrorCode::InvalidParameter, "weights", e))?;
    state.store.set_weights(&b.board, &weights).await?;
    state.sync_catalog().await?;
    tracing::info!(board = %b.board.name, weights = %weights.to_json(), "event weights changed");
    Ok(json_of(&WeightsReply {
        board: b.board.name.as_str(),
        weights: &weights.0,
    }))
}

/// `PUT /v1/admin/boards/{board}/blends/{name}` `{"parts": [...]}`: new
/// parts and weights for a blend of the board, stored with every shard
/// (each rebuilt in the same step), so every gateway and every later
/// write uses them.
pub async fn set_blend<B>(
    state: &AppState,
    board: &str,
    name: &str,
    headers: &HeaderMap,
    body: B,
) -> Reply
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let b = state.board(board)?;
    let Some(blend) = b.board.blend(name) else {
        return Err(ApiError::bad_field(
            ErrorCode::NotFound,
            "blend",
            format!("board {} has no blend {:?}", b.board.name, short(name)),
        ));
    };
    require_json(headers)?;
    let body = read_body(headers, body, state.max_body_bytes).await?;
    let fields: BlendBody = json_object(&body, "parts")?;
    let value = fields.parts.ok_or_else(|| {
        ApiError::bad_field(ErrorCode::MissingField, "parts", "parts is required")
    })?;
    let parts = parse_parts(value, &b.board)?;
    let blend = Blend {
        name: blend.name.clone(),
        parts: Arc::from(parts),
    };
    state.store.set_blend(&b.board, &blend).await?;
    tracing::info!(board = %b.board.name, blend = %blend.name, parts = %standings_core::blend::encode_parts(&blend.parts), "blend parts changed");
    Ok(json_of(&BlendReply {
        board: b.board.name.as_str(),
        blend: &blend.name,
        parts: blend
            .parts
            .iter()
            .map(|p| BlendPartReply {
                period: p.period_text(),
                weight: p.weight,
            })
            .collect(),
    }))
}

#[derive(Serialize)]
struct ReloadReply {
    boards: usize,
}

/// `POST /v1/admin/reload`: re-reads the config file (as SIGHUP does) and
/// swaps in its boards, tenants and keys; a config that does not load or
/// validate is refused with 422 and the old one stays.
pub fn reload(state: &AppState) -> Reply {
    if state.reloader.is_none() {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "this gateway was started without a config file to re-read",
        ));
    }
    match state.reload() {
        Ok(boards) => Ok(json_of(&ReloadReply { boards })),
        Err(e) => Err(ApiError::new(
            ErrorCode::InvalidConfig,
            format!("the config was not reloaded: {e}"),
        )),
    }
}

#[derive(Serialize)]
struct PurgeReply<'a> {
    board: &'a str,
    /// Static directories queued for purging (`""` is the board's own).
    dirs: Vec<String>,
    /// Whether a CDN is configured to purge at all.
    cdn: bool,
}

/// `POST /v1/admin/boards/{board}/purge`: queues a purge of every static
/// JSON file of the board at every CDN endpoint now, whatever changed.
pub fn purge(state: &AppState, board: &str) -> Reply {
    let b = state.board(board)?;
    let dirs: Vec<String> = (0..b.slots.len())
        .flat_map(|slot| crate::refresh::StaticWriter::dirs(&b, slot))
        .collect();
    let cdn = state.purger.get().is_some();
    if let Some(purger) = state.purger.get() {
        purger.board_changed(b.board.name.as_str(), dirs.clone());
    }
    tracing::info!(board = %b.board.name, cdn, "static JSON purge requested");
    Ok(json_of(&PurgeReply {
        board: b.board.name.as_str(),
        dirs,
        cdn,
    }))
}

#[derive(Serialize)]
struct BoardChange<'a> {
    board: &'a str,
    tenant: &'a str,
    /// `created` or `deleted`.
    status: &'static str,
}

/// The field of `value` whose text serde refused as `unknown variant
/// `X`` (its message names the value, not the field: `"ties":
/// "fastest"`, `"order": "sideways"`): a top-level field holding exactly
/// that text, when there is one.
fn variant_field(value: &serde_json::Value, error: &str) -> Option<String> {
    let rest = error.strip_prefix("unknown variant `")?;
    let bad = &rest[..rest.find('`')?];
    let mut holding = value
        .as_object()?
        .iter()
        .filter(|(_, v)| v.as_str() == Some(bad));
    match (holding.next(), holding.next()) {
        (Some((k, _)), None) => Some(k.clone()),
        // Two fields hold it: which one serde refused is not known.
        _ => None,
    }
}

/// `POST /v1/admin/boards`: a board created at run time, with the same
/// fields and validation as a `[[boards]]` entry of the config, kept in the
/// store's catalog so that every gateway and agent serves it within one
/// refresh interval. Once tenants are configured it needs an admin key of
/// the board's tenant (absent `tenant`: the key's own).
pub async fn create_board<B>(
    state: &AppState,
    caller: Option<&crate::auth::Caller>,
    headers: &HeaderMap,
    body: B,
) -> Reply
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let registry = state.registry.load_full();
    if registry.keys.tenants_configured {
        match caller {
            None => {
                return Err(crate::auth::unauthorized(
                    "creating a board needs an admin key: send Authorization: Bearer KEY",
                ))
            }
            Some(c)
                if c.scopes.contains(&KeyScope::Admin)
                    || c.scopes.contains(&KeyScope::Operator) => {}
            Some(c) => {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    format!("key {} lacks the admin scope", c.key_id),
                ))
            }
        }
    }
    require_json(headers)?;
    let raw = read_body(headers, body, state.max_body_bytes).await?;
    let value: serde_json::Value = json_object(&raw, "the fields of a [[boards]] entry")?;
    let mut board = standings_config::BoardConfig::from_json(&value.to_string()).map_err(|e| {
        let field = variant_field(&value, &e)
            .or_else(|| e.split('`').nth(1).map(short))
            .unwrap_or_else(|| "board".into());
        ApiError::bad_field(
            ErrorCode::InvalidBoard,
            field,
            format!("the board is not valid: {e}"),
        )
    })?;
    let operator = caller.is_some_and(|c| c.scopes.contains(&KeyScope::Operator));
    if let Some(c) = caller.filter(|_| !operator) {
        match &board.tenant {
            None => board.tenant = Some(c.tenant.to_string()),
            Some(t) if **t != *c.tenant => {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    format!(
                        "a key of tenant {} cannot create boards of another tenant",
                        c.tenant
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    let exists = || {
        ApiError::bad_field(
            ErrorCode::BoardExists,
            "name",
            format!("a board named {:?} exists", board.name),
        )
    };
    if registry.boards.contains_key(&board.name) {
        return Err(exists());
    }
    registry
        .config
        .check_runtime_board(&board)
        .map_err(|(field, message)| ApiError::bad_field(ErrorCode::InvalidBoard, field, message))?;
    let core = board.to_board();
    if has_data(state, &core).await? {
        return Err(ApiError::bad_field(
            ErrorCode::BoardExists,
            "name",
            format!(
                "a board named {:?} was deleted and its data is kept; choose another name",
                board.name
            ),
        ));
    }
    // Stored with its tenant named, whether the body named it or the key
    // did: the catalog entry alone must say who owns the board.
    let mut value = value;
    if let (serde_json::Value::Object(map), Some(t)) = (&mut value, &board.tenant) {
        map.insert("tenant".into(), serde_json::Value::String(t.clone()));
    }
    let definition = value.to_string();
    if !state.store.catalog_add(&board.name, &definition).await? {
        return Err(exists());
    }
    state.sync_catalog().await?;
    tracing::info!(board = %board.name, tenant = board.tenant(), key = caller.map(|c| &*c.key_id), "board created at run time");
    let mut response = json_of(&BoardChange {
        board: &board.name,
        tenant: board.tenant(),
        status: "created",
    });
    *response.status_mut() = http::StatusCode::CREATED;
    Ok(response)
}

/// Whether any current period of `board` holds a member (a board of that
/// name was deleted and its data kept).
async fn has_data(state: &AppState, board: &Board) -> Result<bool, ApiError> {
    let shards = board.all_shards();
    for period in board.current_periods(standings_core::store::now_ms_i64()) {
        let counts = state
            .store
            .counts(&board.at(period.id), &shards, 0.0)
            .await?;
        if counts.iter().any(|c| c.total > 0) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `DELETE /v1/admin/boards/{board}`: removes a board created at run time
/// from the catalog; every gateway and agent stops serving it within one
/// refresh interval. Its data is kept (and its name is not taken again
/// while it is). Boards of the config file are removed by editing it.
pub async fn delete_board(state: &AppState, board: &str) -> Reply {
    let b = state.board(board)?;
    if !b.runtime {
        return Err(ApiError::bad_field(
            ErrorCode::BoardInConfig,
            "board",
            format!("board {board} is defined in the config file; remove it there and reload"),
        ));
    }
    state.store.catalog_remove(board).await?;
    state.sync_catalog().await?;
    tracing::info!(board, "board deleted at run time");
    Ok(json_of(&BoardChange {
        board: b.board.name.as_str(),
        tenant: &b.tenant,
        status: "deleted",
    }))
}

#[derive(Serialize)]
struct Removed<'a> {
    board: &'a str,
    member: &'a str,
    removed: bool,
}

/// `DELETE /v1/boards/{board}/members/{member}`: removes the member from
/// every period (closed ones included) and blend of the board, audited
/// with who asked (the key's tenant and id) and when; 404 when it has no
/// score anywhere.
pub async fn remove_member(
    state: &AppState,
    board: &str,
    member: &str,
    caller: Option<&crate::auth::Caller>,
) -> Reply {
    let b = state.board(board)?;
    let member = standings_core::MemberId::new(member)?;
    b.board.shard_of(&member)?;
    let n = state
        .request_counter
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let who = caller.map_or_else(
        || "anonymous".to_string(),
        |c| format!("{}/{}", c.tenant, c.key_id),
    );
    let request_id = format!("remove by {who} (req-{n})");
    if !state.store.remove(&b.board, &member, &request_id).await? {
        return Err(ApiError::unknown_member());
    }
    tracing::info!(board = %b.board.name, member = %member, by = %who, "member removed from every period");
    Ok(json_of(&Removed {
        board: b.board.name.as_str(),
        member: member.as_str(),
        removed: true,
    }))
}
