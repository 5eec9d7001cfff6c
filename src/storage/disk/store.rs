//! [`DiskStorage`]: tables, reads and the write jobs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use redb::{Database, ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

use super::records::*;
use super::writer::Writer;
use crate::block::BlockMap;
use crate::cid::Cid;
use crate::repo::CommitData;
use crate::storage::repo_cache::RepoRecordCache;
use crate::storage::{
    Event, EventBody, KeySealer, KvCondition, NewRepo, RemoteBlob, RepoRecord, RepoStatus, Seq,
    Storage, StorageError,
};
use crate::syntax::{Did, Handle};

/// DID → the changing part of the repo record ([`RepoMeta`]).
const REPOS: TableDefinition<&str, &[u8]> = TableDefinition::new("repos");
/// DID → the account's sealed keys (written once).
const REPO_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("repo_keys");
const HANDLES: TableDefinition<&str, &str> = TableDefinition::new("handles");
const BLOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blocks");
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const EVENTS_BY_DID: TableDefinition<(&str, u64), ()> = TableDefinition::new("events_by_did");
const REMOTE_BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("remote_blobs");
const REMOTE_BY_CID: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("remote_blobs_by_cid");
const KV: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("kv");

fn db_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(e.to_string().into())
}

/// Storage in one redb file.
#[derive(Clone)]
pub struct DiskStorage {
    db: Arc<Database>,
    writer: Writer,
    sealer: KeySealer,
    path: PathBuf,
    /// Decoded repo records for writers (`load_repo_cached`).
    records: Arc<RepoRecordCache>,
}

impl std::fmt::Debug for DiskStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStorage")
            .field("path", &self.path)
            .finish()
    }
}

impl DiskStorage {
    /// Opens (or creates) `pds.redb` in `dir`; account keys are sealed with `sealer`.
    pub fn open(dir: &Path, sealer: KeySealer) -> Result<DiskStorage, StorageError> {
        std::fs::create_dir_all(dir).map_err(db_err)?;
        let path = dir.join("pds.redb");
        let db = Arc::new(Database::create(&path).map_err(db_err)?);
        let txn = db.begin_write().map_err(db_err)?;
        {
            txn.open_table(REPOS).map_err(db_err)?;
            txn.open_table(REPO_KEYS).map_err(db_err)?;
            txn.open_table(HANDLES).map_err(db_err)?;
            txn.open_table(BLOCKS).map_err(db_err)?;
            txn.open_table(EVENTS).map_err(db_err)?;
            txn.open_table(EVENTS_BY_DID).map_err(db_err)?;
            txn.open_table(REMOTE_BLOBS).map_err(db_err)?;
            txn.open_table(REMOTE_BY_CID).map_err(db_err)?;
            txn.open_table(KV).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(DiskStorage {
            writer: Writer::start(db.clone()),
            db,
            sealer,
            path,
            records: Default::default(),
        })
    }

    /// Runs a read on a blocking thread with a snapshot.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadTransaction, &KeySealer) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let (db, sealer) = (self.db.clone(), self.sealer.clone());
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(db_err)?;
            f(&txn, &sealer)
        })
        .await
        .map_err(db_err)?
    }
}

/// Appends events after the last one; numbers are consecutive (nothing here can fail after).
fn append(
    txn: &WriteTransaction,
    did: &Did,
    bodies: Vec<EventBody>,
) -> Result<Vec<Seq>, StorageError> {
    let mut events = txn.open_table(EVENTS).map_err(db_err)?;
    let mut by_did = txn.open_table(EVENTS_BY_DID).map_err(db_err)?;
    let first = events
        .last()
        .map_err(db_err)?
        .map_or(1, |(k, _)| k.value() + 1);
    let time = Utc::now();
    let mut seqs = Vec::new();
    for (seq, body) in (first..).zip(bodies) {
        events
            .insert(seq, encode_event_record(did, time, &body).as_slice())
            .map_err(db_err)?;
        by_did.insert((did.as_str(), seq), ()).map_err(db_err)?;
        seqs.push(seq);
    }
    Ok(seqs)
}

fn put_blocks(txn: &WriteTransaction, blocks: &BlockMap) -> Result<(), StorageError> {
    let mut table = txn.open_table(BLOCKS).map_err(db_err)?;
    for (cid, bytes) in blocks.iter() {
        let key = cid.to_bytes();
        if table.get(key.as_slice()).map_err(db_err)?.is_none() {
            table.insert(key.as_slice(), bytes).map_err(db_err)?;
        }
    }
    Ok(())
}

fn load(txn: &WriteTransaction, did: &Did) -> Result<Option<RepoMeta>, StorageError> {
    let table = txn.open_table(REPOS).map_err(db_err)?;
    let found = table.get(did.as_str()).map_err(db_err)?;
    found.map(|v| decode_meta(v.value())).transpose()
}

fn store(txn: &WriteTransaction, meta: &RepoMeta) -> Result<(), StorageError> {
    let mut table = txn.open_table(REPOS).map_err(db_err)?;
    table
        .insert(meta.did.as_str(), encode_meta(meta).as_slice())
        .map_err(db_err)?;
    Ok(())
}

/// Reads the full record (both parts) in a read transaction.
fn read_repo(
    txn: &ReadTransaction,
    did: &Did,
    sealer: &KeySealer,
) -> Result<Option<RepoRecord>, StorageError> {
    let metas = txn.open_table(REPOS).map_err(db_err)?;
    let Some(meta) = metas.get(did.as_str()).map_err(db_err)? else {
        return Ok(None);
    };
    let meta = decode_meta(meta.value())?;
    let keys = txn.open_table(REPO_KEYS).map_err(db_err)?;
    let sealed = keys
        .get(did.as_str())
        .map_err(db_err)?
        .ok_or_else(|| StorageError::Corrupt {
            what: format!("repo {did}"),
            why: "keys missing",
        })?;
    join_repo(meta, sealed.value(), sealer).map(Some)
}

#[async_trait]
impl Storage for DiskStorage {
    async fn create_repo(
        &self,
        repo: NewRepo,
        blocks: &BlockMap,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError> {
        let (blocks, sealed, record) =
            (blocks.clone(), seal_keys(&repo, &self.sealer), repo.clone());
        let seqs = self
            .writer
            .write(move |txn| {
                if load(txn, &repo.did)?.is_some() {
                    return Err(StorageError::RepoExists(repo.did));
                }
                let mut handles = txn.open_table(HANDLES).map_err(db_err)?;
                if let Some(h) = &repo.handle {
                    if handles.get(h.as_str()).map_err(db_err)?.is_some() {
                        return Err(StorageError::HandleTaken(h.clone()));
                    }
                    handles
                        .insert(h.as_str(), repo.did.as_str())
                        .map_err(db_err)?;
                }
                drop(handles);
                put_blocks(txn, &blocks)?;
                store(txn, &RepoMeta::of(&repo))?;
                let mut keys = txn.open_table(REPO_KEYS).map_err(db_err)?;
                keys.insert(repo.did.as_str(), sealed.as_slice())
                    .map_err(db_err)?;
                drop(keys);
                append(txn, &repo.did, events)
            })
            .await?;
        self.records.remember(&record);
        Ok(seqs)
    }

    async fn load_repo(&self, did: &Did) -> Result<Option<RepoRecord>, StorageError> {
        let did = did.clone();
        let record = self
            .read(move |txn, sealer| read_repo(txn, &did, sealer))
            .await?;
        if let Some(r) = &record {
            self.records.remember(r);
        }
        Ok(record)
    }

    async fn load_repo_cached(&self, did: &Did) -> Result<Option<RepoRecord>, StorageError> {
        match self.records.get(did) {
            Some(r) => Ok(Some(r)),
            None => self.load_repo(did).await,
        }
    }

    async fn resolve_handle(&self, handle: &Handle) -> Result<Option<Did>, StorageError> {
        let handle = handle.clone();
        self.read(move |txn, _| {
            let table = txn.open_table(HANDLES).map_err(db_err)?;
            let found = table.get(handle.as_str()).map_err(db_err)?;
            found
                .map(|v| {
                    Did::parse(v.value()).map_err(|_| StorageError::Corrupt {
                        what: format!("handle {handle}"),
                        why: "did",
                    })
                })
                .transpose()
        })
        .await
    }

    async fn list_repos(
        &self,
        after: Option<&Did>,
        limit: usize,
    ) -> Result<Vec<RepoRecord>, StorageError> {
        let after = after.cloned();
        self.read(move |txn, sealer| {
            let table = txn.open_table(REPOS).map_err(db_err)?;
            let range = match &after {
                Some(a) => table.range::<&str>((
                    std::ops::Bound::Excluded(a.as_str()),
                    std::ops::Bound::Unbounded,
                )),
                None => table.range::<&str>(..),
            }
            .map_err(db_err)?;
            let dids: Vec<Did> = range
                .take(limit)
                .map(|entry| decode_meta(entry.map_err(db_err)?.1.value()).map(|m| m.did))
                .collect::<Result<_, _>>()?;
            let mut out = Vec::with_capacity(dids.len());
            for did in dids {
                out.extend(read_repo(txn, &did, sealer)?);
            }
            Ok(out)
        })
        .await
    }

    async fn apply_commit(&self, data: &CommitData) -> Result<Seq, StorageError> {
        let shared = data.clone();
        let result = self
            .writer
            .write(move |txn| {
                let data = shared;
                let mut meta = load(txn, &data.did)?
                    .ok_or_else(|| StorageError::RepoNotFound(data.did.clone()))?;
                if !meta.status.is_active() {
                    return Err(StorageError::InactiveRepo(data.did.clone(), meta.status));
                }
                if Some(meta.head) != data.prev {
                    return Err(StorageError::Conflict(data.did.clone()));
                }
                put_blocks(txn, &data.new_blocks)?;
                meta.head = data.cid;
                meta.rev = data.rev();
                store(txn, &meta)?;
                Ok(append(txn, &data.did, vec![EventBody::Commit((&data).into())])?[0])
            })
            .await;
        match &result {
            Ok(_) => self.records.advance(&data.did, data.cid, data.rev()),
            Err(_) => self.records.forget(&data.did),
        }
        result
    }

    async fn set_status(
        &self,
        did: &Did,
        status: RepoStatus,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError> {
        let owned = did.clone();
        let result = self
            .writer
            .write(move |txn| {
                let mut meta =
                    load(txn, &owned)?.ok_or_else(|| StorageError::RepoNotFound(owned.clone()))?;
                meta.status = status;
                store(txn, &meta)?;
                append(txn, &owned, events)
            })
            .await;
        self.records.forget(did);
        result
    }

    async fn set_handle(
        &self,
        did: &Did,
        handle: Option<Handle>,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError> {
        let owned = did.clone();
        let result = self
            .writer
            .write(move |txn| {
                let did = owned;
                let mut meta =
                    load(txn, &did)?.ok_or_else(|| StorageError::RepoNotFound(did.clone()))?;
                let mut handles = txn.open_table(HANDLES).map_err(db_err)?;
                if let Some(h) = &handle {
                    let owner = handles
                        .get(h.as_str())
                        .map_err(db_err)?
                        .map(|v| v.value().to_owned());
                    if owner.is_some_and(|o| o != did.as_str()) {
                        return Err(StorageError::HandleTaken(h.clone()));
                    }
                }
                if let Some(old) = &meta.handle {
                    handles.remove(old.as_str()).map_err(db_err)?;
                }
                if let Some(h) = &handle {
                    handles.insert(h.as_str(), did.as_str()).map_err(db_err)?;
                }
                drop(handles);
                meta.handle = handle;
                store(txn, &meta)?;
                append(txn, &did, events)
            })
            .await;
        self.records.forget(did);
        result
    }

    async fn read_blocks(&self, cids: &[Cid]) -> Result<BlockMap, StorageError> {
        let cids = cids.to_vec();
        self.read(move |txn, _| {
            let table = txn.open_table(BLOCKS).map_err(db_err)?;
            let mut out = BlockMap::new();
            for cid in cids {
                if let Some(v) = table.get(cid.to_bytes().as_slice()).map_err(db_err)? {
                    out.insert(cid, v.value().to_vec());
                }
            }
            Ok(out)
        })
        .await
    }

    async fn write_blocks(&self, blocks: &BlockMap) -> Result<(), StorageError> {
        let blocks = blocks.clone();
        self.writer.write(move |txn| put_blocks(txn, &blocks)).await
    }

    async fn read_events(
        &self,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<Event>, StorageError> {
        self.read(move |txn, _| {
            let table = txn.open_table(EVENTS).map_err(db_err)?;
            let range = table.range(after.map_or(0, |a| a + 1)..).map_err(db_err)?;
            range
                .take(limit)
                .map(|e| {
                    let (k, v) = e.map_err(db_err)?;
                    decode_event_record(k.value(), v.value())
                })
                .collect()
        })
        .await
    }

    async fn read_repo_events(
        &self,
        did: &Did,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<Event>, StorageError> {
        let did = did.clone();
        self.read(move |txn, _| {
            let index = txn.open_table(EVENTS_BY_DID).map_err(db_err)?;
            let events = txn.open_table(EVENTS).map_err(db_err)?;
            let start = (did.as_str(), after.map_or(0, |a| a + 1));
            let end = (did.as_str(), u64::MAX);
            let mut out = Vec::new();
            for entry in index.range(start..=end).map_err(db_err)?.take(limit) {
                let seq = entry.map_err(db_err)?.0.value().1;
                if let Some(v) = events.get(seq).map_err(db_err)? {
                    out.push(decode_event_record(seq, v.value())?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn last_seq(&self) -> Result<Option<Seq>, StorageError> {
        self.read(|txn, _| {
            let table = txn.open_table(EVENTS).map_err(db_err)?;
            Ok(table.last().map_err(db_err)?.map(|(k, _)| k.value()))
        })
        .await
    }

    async fn mark_seq_skipped(&self, _seq: Seq) -> Result<bool, StorageError> {
        // Numbers are assigned inside the transaction that stores the event: there are no gaps.
        Ok(false)
    }

    async fn upsert_remote_blob(&self, blob: RemoteBlob) -> Result<RemoteBlob, StorageError> {
        self.writer
            .write(move |txn| {
                let mut table = txn.open_table(REMOTE_BLOBS).map_err(db_err)?;
                let mut by_cid = txn.open_table(REMOTE_BY_CID).map_err(db_err)?;
                let old = table
                    .get(blob.url.as_str())
                    .map_err(db_err)?
                    .map(|v| decode_remote_blob(v.value()))
                    .transpose()?;
                let mut stored = blob;
                if let Some(old) = old {
                    stored.repos.extend(old.repos);
                    if let Some(c) = old.cid {
                        by_cid
                            .remove((c.to_string().as_str(), stored.url.as_str()))
                            .map_err(db_err)?;
                    }
                }
                if let Some(c) = stored.cid {
                    by_cid
                        .insert((c.to_string().as_str(), stored.url.as_str()), ())
                        .map_err(db_err)?;
                }
                table
                    .insert(stored.url.as_str(), encode_remote_blob(&stored).as_slice())
                    .map_err(db_err)?;
                Ok(stored)
            })
            .await
    }

    async fn get_remote_blob(&self, url: &str) -> Result<Option<RemoteBlob>, StorageError> {
        let url = url.to_owned();
        self.read(move |txn, _| {
            let table = txn.open_table(REMOTE_BLOBS).map_err(db_err)?;
            let found = table.get(url.as_str()).map_err(db_err)?;
            found.map(|v| decode_remote_blob(v.value())).transpose()
        })
        .await
    }

    async fn remote_blobs_by_cid(&self, cid: &Cid) -> Result<Vec<RemoteBlob>, StorageError> {
        let cid = cid.to_string();
        self.read(move |txn, _| {
            let index = txn.open_table(REMOTE_BY_CID).map_err(db_err)?;
            let table = txn.open_table(REMOTE_BLOBS).map_err(db_err)?;
            let mut out = Vec::new();
            for entry in index.range((cid.as_str(), "")..).map_err(db_err)? {
                let key = entry.map_err(db_err)?.0;
                let (c, url) = key.value();
                if c != cid {
                    break;
                }
                if let Some(v) = table.get(url).map_err(db_err)? {
                    out.push(decode_remote_blob(v.value())?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn kv_get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let (ns, key) = (ns.to_owned(), key.to_owned());
        self.read(move |txn, _| {
            let table = txn.open_table(KV).map_err(db_err)?;
            Ok(table
                .get((ns.as_str(), key.as_str()))
                .map_err(db_err)?
                .map(|v| v.value().to_vec()))
        })
        .await
    }

    async fn kv_put(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        condition: KvCondition<'_>,
    ) -> Result<bool, StorageError> {
        let (ns, key, value) = (ns.to_owned(), key.to_owned(), value.to_vec());
        let expected: Option<Option<Vec<u8>>> = match condition {
            KvCondition::Always => None,
            KvCondition::IfAbsent => Some(None),
            KvCondition::IfEquals(old) => Some(Some(old.to_vec())),
        };
        self.writer
            .write(move |txn| {
                let mut table = txn.open_table(KV).map_err(db_err)?;
                if let Some(expected) = expected {
                    let current = table
                        .get((ns.as_str(), key.as_str()))
                        .map_err(db_err)?
                        .map(|v| v.value().to_vec());
                    if current != expected {
                        return Ok(false);
                    }
                }
                table
                    .insert((ns.as_str(), key.as_str()), value.as_slice())
                    .map_err(db_err)?;
                Ok(true)
            })
            .await
    }

    async fn kv_delete(
        &self,
        ns: &str,
        key: &str,
        expect: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let (ns, key, expect) = (ns.to_owned(), key.to_owned(), expect.map(<[u8]>::to_vec));
        self.writer
            .write(move |txn| {
                let mut table = txn.open_table(KV).map_err(db_err)?;
                let current = table
                    .get((ns.as_str(), key.as_str()))
                    .map_err(db_err)?
                    .map(|v| v.value().to_vec());
                match (&current, &expect) {
                    (None, _) => return Ok(None),
                    (Some(c), Some(e)) if c != e => return Ok(None),
                    _ => {}
                }
                table.remove((ns.as_str(), key.as_str())).map_err(db_err)?;
                Ok(current)
            })
            .await
    }

    async fn kv_list(
        &self,
        ns: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let (ns, after) = (ns.to_owned(), after.map(str::to_owned));
        self.read(move |txn, _| {
            let table = txn.open_table(KV).map_err(db_err)?;
            let mut out = Vec::new();
            for entry in table
                .range((ns.as_str(), after.as_deref().unwrap_or(""))..)
                .map_err(db_err)?
            {
                let (k, v) = entry.map_err(db_err)?;
                let (n, key) = k.value();
                if n != ns {
                    break;
                }
                if after.as_deref().is_some_and(|a| key <= a) {
                    continue;
                }
                out.push((key.to_owned(), v.value().to_vec()));
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }
}
