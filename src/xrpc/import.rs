//! `com.atproto.repo.importRepo`: the CAR body is spooled to a temporary file as it arrives
//! (never held in memory, refused past `PDS_MAX_REPO_IMPORT_SIZE`), then verified and imported
//! by [`crate::storage::import`]. Served by the bulk task in the deployed shape, since a real
//! account's CAR is larger than Lambda accepts.

use std::io::Seek;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::auth::Access;
use super::{AppState, XrpcError};
use crate::oauth::Permission;
use crate::storage::import::{ImportError, SpooledCar, import_repo as import};
use crate::storage::{RepoStatus, StorageError};

/// The media type of a CAR body.
const CAR: &str = "application/vnd.ipld.car";

pub(super) async fn import_repo(
    State(state): State<AppState>,
    access: Access,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(), XrpcError> {
    access.require_full_or(Permission::Account {
        attr: "repo",
        manage: true,
    })?;
    let config = state.config();
    if !config.accepting_imports {
        return Err(XrpcError::invalid("Service is not accepting repo imports"));
    }
    match headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        }) {
        Some(media) if media == CAR => {}
        Some(other) => {
            return Err(XrpcError::invalid(format!(
                "Wrong request encoding (Content-Type): {other}"
            )));
        }
        None => {
            return Err(XrpcError::invalid(
                "Request encoding (Content-Type) required but not provided",
            ));
        }
    }
    let limit = config.max_import_size;
    let declared: Option<u64> = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let too_large =
        || XrpcError::too_large(format!("The CAR is larger than the {limit}-byte limit"));
    if declared.is_some_and(|l| l > limit) {
        return Err(too_large());
    }
    // Refuse before reading a large body: the account must exist and may take an import, and
    // its DID must resolve to the key that will check the commit.
    let record = state
        .storage()
        .load_repo(&access.did)
        .await?
        .ok_or(crate::accounts::AccountError::NotFound(access.did.clone()))?;
    if !record.status.is_active() && record.status != RepoStatus::Deactivated {
        return Err(StorageError::InactiveRepo(record.did, record.status).into());
    }
    // Resolved afresh: the DID document may have changed since it was cached (a key rotated at
    // the old PDS), and one lookup is nothing beside an import.
    state.resolver().invalidate(Some(&access.did), None);
    let key = state.resolver().signing_key(&access.did).await?;

    let spool = tempfile::tempfile().map_err(XrpcError::internal)?;
    let mut file = tokio::fs::File::from_std(spool);
    let mut received: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| XrpcError::invalid(format!("Could not read the CAR: {e}")))?;
        received += chunk.len() as u64;
        if received > limit {
            return Err(too_large());
        }
        file.write_all(&chunk).await.map_err(XrpcError::internal)?;
    }
    if received == 0 {
        return Err(XrpcError::invalid(
            "A request body is expected but none was provided",
        ));
    }
    if declared.is_some_and(|l| l != received) {
        return Err(XrpcError::invalid(
            "Body length does not match Content-Length",
        ));
    }
    file.flush().await.map_err(XrpcError::internal)?;
    let mut spool = file.into_std().await;
    // The rest runs as its own task: a client that gives up waiting (an edge timeout) does not
    // cut an import short half-way; it can ask again, and a repeated import is a no-op.
    let did = access.did.clone();
    let task_state = state.clone();
    let (blocks, outcome) = tokio::spawn(async move {
        let verify_did = did.clone();
        let (car, verified) = tokio::task::spawn_blocking(move || {
            spool
                .rewind()
                .map_err(|e| ImportError::Spool(e.to_string()))?;
            let car = Arc::new(SpooledCar::index(spool)?);
            let verified = car.verify(&verify_did, &key)?;
            Ok::<_, ImportError>((car, verified))
        })
        .await
        .map_err(|e| ImportError::Spool(e.to_string()))??;
        let blocks = car.blocks();
        let outcome = import(
            task_state.storage(),
            task_state.blobs(),
            &task_state.blocks(),
            &did,
            car,
            verified,
        )
        .await?;
        Ok::<_, ImportError>((blocks, outcome))
    })
    .await
    .map_err(XrpcError::internal)??;
    tracing::info!(
        bytes = received,
        car_blocks = blocks,
        written = outcome.blocks,
        records = outcome.records,
        missing_blobs = outcome.missing_blobs,
        moved = outcome.moved,
        rev = %outcome.rev,
        "repo imported"
    );
    Ok(())
}
