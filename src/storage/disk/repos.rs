//! [`RepoStore`] on redb: records, sealed keys, handle claims and commits.

use async_trait::async_trait;
use redb::{ReadTransaction, ReadableTable};

use super::records::{decode_meta, open_keys, seal_keys};
use super::store::{
    DiskStorage, HANDLES, REPO_KEYS, REPOS, append, db_err, encode_bodies, load, put_blocks, store,
};
use crate::block::BlockMap;
use crate::cid::Cid;
use crate::repo::CommitData;
use crate::storage::{
    EventBody, NewRepo, RepoKeys, RepoRecord, RepoStatus, RepoStore, Seq, StorageError,
};
use crate::syntax::{Did, Handle};
use crate::tid::Tid;

fn read_record(txn: &ReadTransaction, did: &Did) -> Result<Option<RepoRecord>, StorageError> {
    let table = txn.open_table(REPOS).map_err(db_err)?;
    let found = table.get(did.as_str()).map_err(db_err)?;
    found.map(|v| decode_meta(v.value())).transpose()
}

#[async_trait]
impl RepoStore for DiskStorage {
    async fn create_repo(
        &self,
        repo: NewRepo,
        blocks: &BlockMap,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError> {
        let sealed = seal_keys(&repo.keys, self.sealer()?);
        let (blocks, record, keys) = (blocks.clone(), repo.record.clone(), repo.keys.clone());
        let events = encode_bodies(&events);
        let seqs = self
            .writer
            .write(move |txn| {
                let repo = record;
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
                store(txn, &repo)?;
                let mut keys = txn.open_table(REPO_KEYS).map_err(db_err)?;
                keys.insert(repo.did.as_str(), sealed.as_slice())
                    .map_err(db_err)?;
                drop(keys);
                append(txn, &repo.did, events)
            })
            .await?;
        self.records.remember(&repo.record, &keys);
        Ok(seqs)
    }

    async fn load_repo(&self, did: &Did) -> Result<Option<RepoRecord>, StorageError> {
        let did = did.clone();
        self.read(move |txn| read_record(txn, &did)).await
    }

    async fn load_keys(&self, did: &Did) -> Result<Option<RepoKeys>, StorageError> {
        let sealer = self.sealer()?.clone();
        let did = did.clone();
        self.read(move |txn| {
            let table = txn.open_table(REPO_KEYS).map_err(db_err)?;
            let found = table.get(did.as_str()).map_err(db_err)?;
            found
                .map(|sealed| open_keys(&did, sealed.value(), &sealer))
                .transpose()
        })
        .await
    }

    async fn load_for_write(
        &self,
        did: &Did,
    ) -> Result<Option<(RepoRecord, RepoKeys)>, StorageError> {
        let sealer = self.sealer()?.clone();
        let owned = did.clone();
        let found = self
            .read(move |txn| {
                let Some(record) = read_record(txn, &owned)? else {
                    return Ok(None);
                };
                let table = txn.open_table(REPO_KEYS).map_err(db_err)?;
                let sealed = table.get(owned.as_str()).map_err(db_err)?.ok_or_else(|| {
                    StorageError::Corrupt {
                        what: format!("repo {owned}"),
                        why: "keys missing",
                    }
                })?;
                Ok(Some((record, open_keys(&owned, sealed.value(), &sealer)?)))
            })
            .await?;
        if let Some((record, keys)) = &found {
            self.records.remember(record, keys);
        }
        Ok(found)
    }

    async fn load_for_write_cached(
        &self,
        did: &Did,
    ) -> Result<Option<(RepoRecord, RepoKeys)>, StorageError> {
        match self.records.get(did) {
            Some(found) => Ok(Some(found)),
            None => self.load_for_write(did).await,
        }
    }

    async fn resolve_handle(&self, handle: &Handle) -> Result<Option<Did>, StorageError> {
        let handle = handle.clone();
        self.read(move |txn| {
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
        self.read(move |txn| {
            let table = txn.open_table(REPOS).map_err(db_err)?;
            let range = match &after {
                Some(a) => table.range::<&str>((
                    std::ops::Bound::Excluded(a.as_str()),
                    std::ops::Bound::Unbounded,
                )),
                None => table.range::<&str>(..),
            }
            .map_err(db_err)?;
            range
                .take(limit)
                .map(|entry| decode_meta(entry.map_err(db_err)?.1.value()))
                .collect()
        })
        .await
    }

    async fn apply_commit(&self, data: &CommitData) -> Result<Seq, StorageError> {
        let events = encode_bodies(&[EventBody::Commit(data.into())]);
        let (did, prev, head, rev) = (data.did.clone(), data.prev, data.cid, data.rev());
        let blocks = data.new_blocks.clone();
        let result = self
            .writer
            .write(move |txn| {
                let mut record =
                    load(txn, &did)?.ok_or_else(|| StorageError::RepoNotFound(did.clone()))?;
                if !record.status.is_active() {
                    return Err(StorageError::InactiveRepo(did, record.status));
                }
                if Some(record.head) != prev {
                    return Err(StorageError::Conflict(did));
                }
                put_blocks(txn, &blocks)?;
                record.head = head;
                record.rev = rev;
                store(txn, &record)?;
                Ok(append(txn, &did, events)?[0])
            })
            .await;
        match &result {
            Ok(_) => self.records.advance(&data.did, data.cid, data.rev()),
            Err(_) => self.records.forget(&data.did),
        }
        result
    }

    async fn replace_head(
        &self,
        did: &Did,
        from: Cid,
        to: Cid,
        rev: Tid,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError> {
        let owned = did.clone();
        let events = encode_bodies(&events);
        let result = self
            .writer
            .write(move |txn| {
                let mut record =
                    load(txn, &owned)?.ok_or_else(|| StorageError::RepoNotFound(owned.clone()))?;
                if record.head != from {
                    return Err(StorageError::Conflict(owned.clone()));
                }
                record.head = to;
                record.rev = rev;
                store(txn, &record)?;
                append(txn, &owned, events)
            })
            .await;
        self.records.forget(did);
        result
    }

    async fn set_status(
        &self,
        did: &Did,
        from: RepoStatus,
        to: RepoStatus,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError> {
        let owned = did.clone();
        let events = encode_bodies(&events);
        let result = self
            .writer
            .write(move |txn| {
                let mut record =
                    load(txn, &owned)?.ok_or_else(|| StorageError::RepoNotFound(owned.clone()))?;
                if record.status != from {
                    return Err(StorageError::StatusChanged(owned.clone()));
                }
                record.status = to;
                store(txn, &record)?;
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
        let events = encode_bodies(&events);
        let result = self
            .writer
            .write(move |txn| {
                let did = owned;
                let mut record =
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
                if let Some(old) = &record.handle {
                    handles.remove(old.as_str()).map_err(db_err)?;
                }
                if let Some(h) = &handle {
                    handles.insert(h.as_str(), did.as_str()).map_err(db_err)?;
                }
                drop(handles);
                record.handle = handle;
                store(txn, &record)?;
                append(txn, &did, events)
            })
            .await;
        self.records.forget(did);
        result
    }

    fn seal_secret(&self, secret: &[u8]) -> Result<Vec<u8>, StorageError> {
        Ok(self.sealer()?.seal(secret))
    }

    fn open_secret(&self, sealed: &[u8]) -> Result<Vec<u8>, StorageError> {
        self.sealer()?
            .open(sealed)
            .map_err(|_| StorageError::Corrupt {
                what: "sealed secret".into(),
                why: "does not decrypt with the configured key",
            })
    }
}
