//! `standings-gateway backup --to FILE`: a consistent copy of the embedded
//! store. When no gateway holds the data directory the command opens it and
//! copies it itself; when one does (the directory is locked), it asks that
//! gateway (`POST /v1/admin/backup`) to write `DATA_DIR/backup.redb` while
//! serving, then copies that file to FILE.

use std::path::Path;

use standings_config::{Config, StoreKind};
use standings_core::store::OpenError;
use standings_runtime::{exit, open_embedded, OpenStoreError};

/// Writes the backup; `Err` carries the message and the exit code.
pub async fn run(config: &Config, to: &Path) -> Result<String, (String, u8)> {
    if config.store.kind != StoreKind::Embedded {
        return Err((
            "backup: store.kind is not \"embedded\"; back up Redis with its own tools (BGSAVE, AOF)".into(),
            exit::EX_USAGE,
        ));
    }
    match open_embedded(config) {
        Ok(store) => {
            let written = store.backup(to);
            store.close().await;
            written.map_err(|e| (e.to_string(), exit::EX_CANTCREAT))?;
            Ok(format!("wrote {} (no gateway was running)", to.display()))
        }
        Err(OpenStoreError::Embedded(OpenError::Locked { .. })) => {
            let from = ask_the_gateway(&config.gateway.listen).await?;
            copy_atomically(Path::new(&from), to).map_err(|e| (e, exit::EX_CANTCREAT))?;
            Ok(format!(
                "wrote {} (a copy taken by the gateway at {} while serving)",
                to.display(),
                config.gateway.listen
            ))
        }
        Err(e) => {
            let code = e.exit_code();
            Err((e.to_string(), code))
        }
    }
}

/// `POST /v1/admin/backup` to the gateway serving the directory; answers
/// the file it wrote.
async fn ask_the_gateway(listen: &str) -> Result<String, (String, u8)> {
    let url = format!("http://{listen}/v1/admin/backup");
    let unavailable = |e: String| (e, exit::EX_UNAVAILABLE);
    let mut request = reqwest::Client::new().post(&url);
    // Once tenants are configured the route needs an operator key.
    if let Ok(key) = std::env::var("STANDINGS_API_KEY") {
        request = request.bearer_auth(key.trim());
    }
    let response = request.send().await.map_err(|e| {
        unavailable(format!(
            "the data_dir is in use, and {url} did not answer: {e}"
        ))
    })?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .map_err(|e| unavailable(format!("{url} answered {status} without JSON: {e}")))?;
    match body["file"].as_str() {
        Some(file) if status.is_success() => Ok(file.to_string()),
        _ => Err(unavailable(format!("{url} answered {status}: {body}"))),
    }
}

/// Copies `from` to a temporary name beside `to`, syncs it and renames it
/// over `to`.
fn copy_atomically(from: &Path, to: &Path) -> Result<(), String> {
    let tmp = to.with_extension(format!("tmp-{}", std::process::id()));
    let done = std::fs::copy(from, &tmp)
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, to));
    done.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("copying {} to {}: {e}", from.display(), to.display())
    })
}
