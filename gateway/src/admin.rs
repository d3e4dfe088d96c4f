//! Operator endpoints. `POST /v1/admin/backup`: a consistent copy of the
//! embedded store, written while serving, for `standings-gateway backup`.
//!
//! Admin routes are open like every other route until the tenants work
//! gives them keys and scopes; the shipped Varnish configuration does not
//! cache them.

use serde::Serialize;

use crate::error::{ApiError, ErrorCode};
use crate::reply::{json_of, Reply};
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
