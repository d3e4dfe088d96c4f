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
