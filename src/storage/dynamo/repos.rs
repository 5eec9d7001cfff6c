//! [`RepoStore`] on DynamoDB: repo items (record and sealed keys in one item, the keys read only
//! when asked for), handle claims, and the transactions that move a repo.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, TransactWriteItem};

use super::items::*;
use super::requests::{Fetch, MAX_SEQ_ATTEMPTS, active_statuses, build, handle_key};
use super::store::DynamoStorage;
use super::tables::{self, REPO_LIST_PK};
use crate::block::BlockMap;
use crate::cid::Cid;
use crate::repo::CommitData;
use crate::storage::{
    BlockStore, EventBody, NewRepo, RepoKeys, RepoRecord, RepoStatus, RepoStore, Seq, StorageError,
};
use crate::syntax::{Did, Handle};
use crate::tid::Tid;

/// Reads of a repo item that leave the sealed keys behind.
const RECORD_ONLY: Fetch<'static> = Fetch::Only(REPO_RECORD_PROJECTION, &[("#st", "status")]);

#[async_trait]
impl RepoStore for DynamoStorage {
    async fn create_repo(
        &self,
        repo: NewRepo,
        blocks: &BlockMap,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError> {
        let item = repo_item(&repo.record, &repo.keys, self.sealer()?);
        self.write_blocks(blocks).await?;
        let mut head =
            vec![self.conditional_put(tables::REPOS, item, "attribute_not_exists(did)", vec![])?];
        if let Some(h) = &repo.record.handle {
            let item = HashMap::from([
                ("handle".to_owned(), s(h.as_str())),
                ("did".to_owned(), s(repo.record.did.as_str())),
            ]);
            head.push(self.conditional_put(
                tables::HANDLES,
                item,
                "attribute_not_exists(handle)",
                vec![],
            )?);
        }
        let (did, handle) = (repo.record.did.clone(), repo.record.handle.clone());
        let seqs = self
            .transact_with_events(
                &repo.record.did,
                head,
                &events,
                &move |i| match (i, &handle) {
                    (0, _) | (_, None) => StorageError::RepoExists(did.clone()),
                    (_, Some(h)) => StorageError::HandleTaken(h.clone()),
                },
            )
            .await?;
        self.repos.remember(&repo.record, &repo.keys);
        Ok(seqs)
    }

    async fn load_repo(&self, did: &Did) -> Result<Option<RepoRecord>, StorageError> {
        self.get_item(&self.table(tables::REPOS), repo_key(did), RECORD_ONLY)
            .await?
            .map(|item| repo_from_item(&item))
            .transpose()
    }

    async fn load_keys(&self, did: &Did) -> Result<Option<RepoKeys>, StorageError> {
        let sealer = self.sealer()?;
        self.get_item(
            &self.table(tables::REPOS),
            repo_key(did),
            Fetch::Only("did, #k", &[("#k", "keys")]),
        )
        .await?
        .map(|item| keys_from_item(&item, sealer))
        .transpose()
    }

    async fn load_for_write(
        &self,
        did: &Did,
    ) -> Result<Option<(RepoRecord, RepoKeys)>, StorageError> {
        let sealer = self.sealer()?;
        let Some(item) = self
            .get_item(&self.table(tables::REPOS), repo_key(did), Fetch::All)
            .await?
        else {
            return Ok(None);
        };
        let (record, keys) = (repo_from_item(&item)?, keys_from_item(&item, sealer)?);
        self.repos.remember(&record, &keys);
        Ok(Some((record, keys)))
    }

    async fn load_for_write_cached(
        &self,
        did: &Did,
    ) -> Result<Option<(RepoRecord, RepoKeys)>, StorageError> {
        match self.repos.get(did) {
            Some(found) => Ok(Some(found)),
            None => self.load_for_write(did).await,
        }
    }

    async fn resolve_handle(&self, handle: &Handle) -> Result<Option<Did>, StorageError> {
        let Some(item) = self
            .get_item(
                &self.table(tables::HANDLES),
                handle_key(handle.as_str()),
                Fetch::All,
            )
            .await?
        else {
            return Ok(None);
        };
        let did = get_s(&item, "did").and_then(|d| Did::parse(d).ok());
        did.map(Some).ok_or_else(|| StorageError::Corrupt {
            what: format!("handle {handle}"),
            why: "did",
        })
    }

    async fn list_repos(
        &self,
        after: Option<&Did>,
        limit: usize,
    ) -> Result<Vec<RepoRecord>, StorageError> {
        let keys = self
            .query_all(
                || {
                    let query = self
                        .client
                        .query()
                        .table_name(self.table(tables::REPOS))
                        .index_name(tables::REPOS_BY_DID)
                        // Named attributes only: the firehose task (the block collector) may
                        // read repo items only by projection, never their sealed keys.
                        .projection_expression("did")
                        .expression_attribute_values(":p", s(REPO_LIST_PK));
                    match after {
                        Some(a) => query
                            .key_condition_expression("list_pk = :p AND did > :after")
                            .expression_attribute_values(":after", s(a.as_str())),
                        None => query.key_condition_expression("list_pk = :p"),
                    }
                },
                limit,
            )
            .await?;
        let dids: Vec<Did> = keys
            .iter()
            .filter_map(|i| get_s(i, "did").and_then(|d| Did::parse(d).ok()))
            .collect();
        let items = self
            .batch_get(
                &self.table(tables::REPOS),
                dids.iter().map(repo_key).collect(),
                RECORD_ONLY,
            )
            .await?;
        let mut records = items
            .iter()
            .map(repo_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by(|a, b| a.did.cmp(&b.did));
        Ok(records)
    }

    async fn apply_commit(&self, data: &CommitData) -> Result<Seq, StorageError> {
        // The block collector spares only blocks written within its window (`collect`): a head
        // that lands later than this could name blocks it has deleted. Retrying writes them again.
        let deadline = std::time::Instant::now() + self.config.block_landing_limit;
        let prev = data
            .prev
            .ok_or_else(|| StorageError::Conflict(data.did.clone()))?;
        let mut values = vec![
            (":head", cid_key(&data.cid)),
            (":rev", s(data.rev().to_string())),
            (":prev", cid_key(&prev)),
        ];
        values.extend(active_statuses());
        let update = self.repo_update(
            &data.did,
            "SET head = :head, rev = :rev",
            "head = :prev AND #st IN (:active, :desync, :throttled)",
            values,
            vec![("#st", "status")],
        )?;
        let events = [EventBody::Commit(data.into())];
        // The blocks go while the sequence number is allocated: two round trips, not three.
        let result = self
            .transact_with_events_after(
                &data.did,
                vec![update],
                &events,
                &|_| StorageError::Conflict(data.did.clone()),
                self.write_blocks(&data.new_blocks),
                Some(deadline),
            )
            .await;
        match result {
            Ok(seqs) => {
                self.repos.advance(&data.did, data.cid, data.rev());
                Ok(seqs[0])
            }
            Err(StorageError::Conflict(did)) => Err(self.explain_repo_failure(&did).await),
            Err(e) => {
                self.repos.forget(&data.did);
                Err(e)
            }
        }
    }

    async fn replace_head(
        &self,
        did: &Did,
        from: Cid,
        to: Cid,
        rev: Tid,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError> {
        let update = self.repo_update(
            did,
            "SET head = :head, rev = :rev",
            "head = :from",
            vec![
                (":head", cid_key(&to)),
                (":rev", s(rev.to_string())),
                (":from", cid_key(&from)),
            ],
            vec![],
        )?;
        let result = self
            .transact_with_events(did, vec![update], &events, &|_| {
                StorageError::Conflict(did.clone())
            })
            .await;
        self.repos.forget(did);
        match result {
            Err(StorageError::Conflict(did)) => match self.load_repo(&did).await? {
                None => Err(StorageError::RepoNotFound(did)),
                Some(_) => Err(StorageError::Conflict(did)),
            },
            other => other,
        }
    }

    async fn set_status(
        &self,
        did: &Did,
        from: RepoStatus,
        to: RepoStatus,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError> {
        let update = self.repo_update(
            did,
            "SET #st = :st",
            "attribute_exists(did) AND #st = :from",
            vec![(":st", s(to.as_str())), (":from", s(from.as_str()))],
            vec![("#st", "status")],
        )?;
        let result = self
            .transact_with_events(did, vec![update], &events, &|_| {
                StorageError::StatusChanged(did.clone())
            })
            .await;
        self.repos.forget(did);
        match result {
            // Missing and changed fail the same condition; tell them apart for the caller.
            Err(StorageError::StatusChanged(_)) if self.load_repo(did).await?.is_none() => {
                Err(StorageError::RepoNotFound(did.clone()))
            }
            other => other,
        }
    }

    async fn set_handle(
        &self,
        did: &Did,
        handle: Option<Handle>,
        events: Vec<EventBody>,
    ) -> Result<Vec<Seq>, StorageError> {
        for _ in 0..MAX_SEQ_ATTEMPTS {
            let record = self
                .load_repo(did)
                .await?
                .ok_or_else(|| StorageError::RepoNotFound(did.clone()))?;
            let old = record.handle.clone();
            let mut head = Vec::new();
            let (expr, cond, values) = match (&handle, &old) {
                (Some(h), Some(o)) => (
                    "SET handle = :h",
                    "handle = :old",
                    vec![(":h", s(h.as_str())), (":old", s(o.as_str()))],
                ),
                (Some(h), None) => (
                    "SET handle = :h",
                    "attribute_exists(did) AND attribute_not_exists(handle)",
                    vec![(":h", s(h.as_str()))],
                ),
                (None, Some(o)) => (
                    "REMOVE handle",
                    "handle = :old",
                    vec![(":old", s(o.as_str()))],
                ),
                (None, None) => (
                    "REMOVE handle",
                    "attribute_exists(did) AND attribute_not_exists(handle)",
                    vec![],
                ),
            };
            head.push(self.repo_update(did, expr, cond, values, vec![])?);
            if let Some(h) = handle.as_ref().filter(|h| Some(*h) != old.as_ref()) {
                let item = HashMap::from([
                    ("handle".to_owned(), s(h.as_str())),
                    ("did".to_owned(), s(did.as_str())),
                ]);
                head.push(self.conditional_put(
                    tables::HANDLES,
                    item,
                    "attribute_not_exists(handle) OR did = :did",
                    vec![(":did", s(did.as_str()))],
                )?);
            }
            if let Some(o) = old.as_ref().filter(|o| Some(*o) != handle.as_ref()) {
                let delete = build(
                    Delete::builder()
                        .table_name(self.table(tables::HANDLES))
                        .set_key(Some(handle_key(o.as_str())))
                        .condition_expression("did = :did")
                        .expression_attribute_values(":did", s(did.as_str()))
                        .build(),
                )?;
                head.push((TransactWriteItem::builder().delete(delete).build(), 64));
            }
            let taken = handle.clone();
            let result = self
                .transact_with_events(did, head, &events, &move |i| match (i, &taken) {
                    (1, Some(h)) => StorageError::HandleTaken(h.clone()),
                    _ => StorageError::Conflict(did.clone()),
                })
                .await;
            self.repos.forget(did);
            match result {
                Err(StorageError::Conflict(_)) => continue,
                other => return other,
            }
        }
        Err(StorageError::TooManyConflicts(
            did.clone(),
            MAX_SEQ_ATTEMPTS,
        ))
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
