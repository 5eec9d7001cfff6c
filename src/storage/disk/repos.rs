//! [`RepoStore`] on redb: records, sealed keys, handle claims and commits.

use async_trait::async_trait;
use redb::{ReadTransaction, ReadableTable};

use super::records::{decode_meta, open_keys, seal_keys};
use super::store::{
    DiskStorage, HANDLES, REPO_KEYS, REPOS, append, clear_repo_records, db_err, encode_bodies,
    encode_repo_record, load, put_blocks, put_repo_records, store,
};
use crate::block::BlockMap;
use crate::cid::Cid;
use crate::repo::{Commit, CommitData};
use crate::storage::{
    BlockCache, BlockStore, EventBody, ExportItem, ExportWalk, NewRepo, RepoKeys, RepoRecord,
    RepoStatus, RepoStore, Seq, StorageError,
};
use crate::syntax::{Did, Handle};
use crate::tid::Tid;

/// What a commit changes among the records kept beside its repo (`REPO_RECORDS`): a created or
/// updated record's entry is set (its block is among the commit's), a deleted one's removed.
fn records_beside(data: &CommitData) -> Vec<(String, Option<Vec<u8>>)> {
    data.ops
        .iter()
        .map(|op| {
            let value = op.cid.and_then(|cid| {
                let block = data
                    .new_blocks
                    .get(&cid)
                    .or(data.relevant_blocks.get(&cid))?;
                Some(encode_repo_record(&cid, block))
            });
            (op.path.clone(), value)
        })
        .collect()
}

/// Records per write when [`DiskStorage::fill_repo_records`] fills a repo's entries.
const FILL_BATCH: usize = 2_000;

/// The nodes [`DiskStorage::fill_repo_records`] keeps while it walks: its own cache, so that
/// filling never pushes the server's working set out of the shared one.
const FILL_CACHE_BYTES: usize = 1 << 20;

impl DiskStorage {
    /// Sets the records of commit `head`'s tree beside `did`'s repo (`REPO_RECORDS`), after
    /// an import moved the head there; a batch at a time, walked as an export walks it, each
    /// batch written only while the head is still `head` (a later commit keeps its own
    /// records' entries, and filling on would put older ones back).
    pub(super) async fn fill_repo_records(&self, did: &Did, head: Cid) -> Result<(), StorageError> {
        let commit = self
            .read_block(&head)
            .await?
            .ok_or(StorageError::MissingBlock(head))?;
        let mut walk = ExportWalk::new(Commit::decode(head, &commit)?.data);
        let cache = BlockCache::new(FILL_CACHE_BYTES);
        loop {
            let batch = walk.next_batch(self, &cache, FILL_BATCH).await?;
            if batch.is_empty() {
                return Ok(());
            }
            let records: Vec<(String, Cid)> = batch
                .into_iter()
                .filter_map(|item| match item {
                    ExportItem::Record(path, cid) => Some((path, cid)),
                    ExportItem::Node(..) => None,
                })
                .collect();
            let cids: Vec<Cid> = records.iter().map(|(_, cid)| *cid).collect();
            let blocks = self.read_blocks_in_order(&cids).await?;
            let entries: Vec<(String, Option<Vec<u8>>)> = records
                .into_iter()
                .enumerate()
                .map(|(i, (path, cid))| {
                    let value = blocks.get(i).map(|block| encode_repo_record(&cid, block));
                    (path, value)
                })
                .collect();
            let owned = did.clone();
            let still_head = self
                .writer
                .write(move |txn| {
                    if load(txn, &owned)?.map(|r| r.head) != Some(head) {
                        return Ok(false);
                    }
                    put_repo_records(txn, &owned, &entries)?;
                    Ok(true)
                })
                .await?;
            if !still_head {
                return Ok(());
            }
        }
    }
}

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
        let recent = self.recent.clone();
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
                put_blocks(txn, &recent, &blocks)?;
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
        let (blocks, recent) = (data.new_blocks.clone(), self.recent.clone());
        let records = records_beside(data);
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
                put_blocks(txn, &recent, &blocks)?;
                put_repo_records(txn, &did, &records)?;
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
                // The records beside the repo are the old tree's; the new tree's are filled in
                // after (`fill_repo_records`).
                clear_repo_records(txn, &owned)?;
                record.head = to;
                record.rev = rev;
                store(txn, &record)?;
                append(txn, &owned, events)
            })
            .await;
        self.records.forget(did);
        if result.is_ok() {
            // In the background: the import has answered by the time a large repo's records
            // are beside it, and until then an export reads them by CID.
            let (storage, did) = (self.clone(), did.clone());
            tokio::spawn(async move {
                if let Err(e) = storage.fill_repo_records(&did, to).await {
                    tracing::warn!(%did, error = %e, "could not set an imported repo's records side by side");
                }
            });
        }
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
                if to == RepoStatus::Deleted {
                    clear_repo_records(txn, &owned)?;
                }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::store::repo_records_for_tests::{repo_records_of, set_repo_record};
    use super::*;
    use crate::cbor::map;
    use crate::crypto::{Algorithm, Keypair};
    use crate::repo::{Repo, Write};
    use crate::storage::{
        BlockCache, DiskStorage as Disk, KeySealer, commit_writes, create_repo, fetch_tree,
        load_repo_state,
    };
    use crate::syntax::{Nsid, RecordKey};
    use crate::tid::TidClock;

    fn post(n: u32, text: &str) -> (Nsid, RecordKey, crate::cbor::Value) {
        (
            Nsid::parse("app.bsky.feed.post").expect("nsid"),
            RecordKey::parse(&format!("r{n}")).expect("rkey"),
            map([
                ("$type", "app.bsky.feed.post".into()),
                ("text", text.into()),
            ]),
        )
    }

    async fn leaves(s: &Disk, did: &Did) -> Vec<(String, Cid)> {
        let view = BlockCache::default().view();
        let (_, mut repo) = load_repo_state(s, &view, did).await.expect("load");
        fetch_tree(s, &view, &mut repo).await.expect("tree");
        repo.mst().leaves().expect("leaves")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_records_beside_a_repo_follow_its_tree_through_commits_an_import_and_deletion() {
        let dir = tempfile::tempdir().expect("temp dir");
        let s = Disk::open(dir.path(), Some(KeySealer::ephemeral())).expect("open");
        let did = Did::parse("did:plc:besidebesidebesidebeside").expect("did");
        let key = Keypair::from_seed(Algorithm::K256, b"beside");
        let keys = RepoKeys {
            signing: key.clone(),
            rotation: None,
        };
        let view = BlockCache::default().view();
        let clock = TidClock::new(3);
        create_repo(&s, &view, did.clone(), None, keys, &clock)
            .await
            .expect("create");
        let creates: Vec<Write> = (0..40)
            .map(|n| {
                let (c, k, v) = post(n, &format!("post {n}"));
                Write::create(c, k, v)
            })
            .collect();
        commit_writes(&s, &view, &did, &creates, &clock)
            .await
            .expect("creates");
        let (c1, k1, v1) = post(1, "post 2");
        let (c2, k2, _) = post(2, "");
        commit_writes(
            &s,
            &view,
            &did,
            &[Write::update(c1, k1, v1), Write::delete(c2, k2)],
            &clock,
        )
        .await
        .expect("edits");
        let tree = leaves(&s, &did).await;
        assert_eq!(tree.len(), 39);
        assert_eq!(repo_records_of(&s, &did), tree);

        // An entry that names another CID is passed over for the block table's copy.
        let (path, cid) = tree[5].clone();
        let (other_path, other_cid) = tree[6].clone();
        let other_block = s
            .read_block(&other_cid)
            .await
            .expect("read")
            .expect("block");
        set_repo_record(&s, &did, &path, &other_cid, &other_block);
        let read = s
            .read_repo_records(&did, &tree[4..8])
            .await
            .expect("records");
        assert_eq!(crate::cid::cid_for_cbor(read.get(1).expect("r")), cid);
        assert_eq!(crate::cid::cid_for_cbor(read.get(2).expect("r")), other_cid);
        assert_ne!(path, other_path);

        // An import replaces them with the imported tree's, filled in after it answers.
        let rev = clock.next(crate::tid::micros_of(chrono::Utc::now()) + 1_000_000);
        let imported = Repo::create_with_records(
            did.clone(),
            &key,
            rev,
            (0..30).map(|n| (format!("app.bsky.feed.like/i{n}"), post(n, "x").2)),
        )
        .expect("repo");
        let mut car = Vec::new();
        imported.export_car(&mut car).expect("car");
        let car = crate::car::read_car(&car).expect("read car");
        s.write_blocks(&car.blocks).await.expect("blocks");
        let head = s.load_repo(&did).await.expect("load").expect("repo").head;
        s.replace_head(&did, head, imported.head(), rev, vec![])
            .await
            .expect("replace");
        let tree = leaves(&s, &did).await;
        assert_eq!(tree.len(), 30);
        let mut waited = Duration::ZERO;
        while repo_records_of(&s, &did) != tree {
            assert!(waited < Duration::from_secs(10), "never filled");
            tokio::time::sleep(Duration::from_millis(20)).await;
            waited += Duration::from_millis(20);
        }

        // A deleted account's go with it.
        s.set_status(&did, RepoStatus::Active, RepoStatus::Deleted, vec![])
            .await
            .expect("delete");
        assert_eq!(repo_records_of(&s, &did), vec![]);
    }
}
