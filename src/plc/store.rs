//! [`PlcStore`]: operation logs in a redb file, validated on append.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::identity::IdentityError;
use crate::identity::plc::{PlcLog, PlcOperation};
use crate::syntax::{Did, format_datetime};

/// DID → JSON array of [`AuditEntry`].
const LOGS: TableDefinition<&str, &[u8]> = TableDefinition::new("plc_logs");

/// One entry of a DID's audit log, as `/:did/log/audit` serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The DID.
    pub did: String,
    /// The operation JSON.
    pub operation: serde_json::Value,
    /// The operation's CID.
    pub cid: String,
    /// Whether a recovery nullified it (never, here).
    pub nullified: bool,
    /// When the directory accepted it.
    #[serde(rename = "createdAt")]
    pub created_at: String,
}

/// Why an operation was refused or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum PlcStoreError {
    /// The operation is invalid for this DID's log (a client error).
    #[error(transparent)]
    Invalid(#[from] IdentityError),
    /// The database failed.
    #[error("PLC store: {0}")]
    Database(String),
    /// A stored log that no longer parses.
    #[error("stored log of {0} is corrupt")]
    Corrupt(String),
}

fn db_err(e: impl std::fmt::Display) -> PlcStoreError {
    PlcStoreError::Database(e.to_string())
}

/// The directory's persistent state. Cloning shares the database.
#[derive(Clone)]
pub struct PlcStore {
    db: Arc<Database>,
    path: String,
}

impl std::fmt::Debug for PlcStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlcStore")
            .field("path", &self.path)
            .finish()
    }
}

impl PlcStore {
    /// Opens (or creates) `plc.redb` in `dir`.
    pub fn open(dir: &Path) -> Result<PlcStore, PlcStoreError> {
        std::fs::create_dir_all(dir).map_err(db_err)?;
        let path = dir.join("plc.redb");
        let db = Database::create(&path).map_err(db_err)?;
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(LOGS).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(PlcStore {
            db: Arc::new(db),
            path: path.display().to_string(),
        })
    }

    /// The audit log of `did`, oldest first, or None if unknown.
    pub fn audit_log(&self, did: &Did) -> Result<Option<Vec<AuditEntry>>, PlcStoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(LOGS).map_err(db_err)?;
        let Some(bytes) = table.get(did.as_str()).map_err(db_err)? else {
            return Ok(None);
        };
        serde_json::from_slice(bytes.value())
            .map(Some)
            .map_err(|_| PlcStoreError::Corrupt(did.to_string()))
    }

    /// The parsed operations of `did`, oldest first.
    pub fn operations(&self, did: &Did) -> Result<Option<Vec<PlcOperation>>, PlcStoreError> {
        let Some(entries) = self.audit_log(did)? else {
            return Ok(None);
        };
        entries
            .iter()
            .map(|e| {
                PlcOperation::from_json(&e.operation)
                    .map_err(|_| PlcStoreError::Corrupt(did.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Validates `op` against the current log of `did` and appends it, atomically.
    pub fn append(
        &self,
        did: &Did,
        op: PlcOperation,
        now: DateTime<Utc>,
    ) -> Result<AuditEntry, PlcStoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let entry = {
            let mut table = txn.open_table(LOGS).map_err(db_err)?;
            let mut entries: Vec<AuditEntry> = match table.get(did.as_str()).map_err(db_err)? {
                Some(bytes) => serde_json::from_slice(bytes.value())
                    .map_err(|_| PlcStoreError::Corrupt(did.to_string()))?,
                None => Vec::new(),
            };
            let mut ops = entries
                .iter()
                .map(|e| {
                    PlcOperation::from_json(&e.operation)
                        .map_err(|_| PlcStoreError::Corrupt(did.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            ops.push(op.clone());
            // The whole chain is re-verified: it is short, and this keeps one rule set for
            // genesis and updates.
            PlcLog::verify(did, ops)?;
            let entry = AuditEntry {
                did: did.to_string(),
                operation: op.to_json(),
                cid: op.cid().to_string(),
                nullified: false,
                created_at: format_datetime(now),
            };
            entries.push(entry.clone());
            let bytes = serde_json::to_vec(&entries).map_err(db_err)?;
            table
                .insert(did.as_str(), bytes.as_slice())
                .map_err(db_err)?;
            entry
        };
        txn.commit().map_err(db_err)?;
        Ok(entry)
    }
}
