//! [`EventLog`] on redb: events by sequence number, with a per-DID index. Numbers are assigned
//! in the transaction that stores the event, so the log has no gaps.

use async_trait::async_trait;
use redb::ReadableTable;

use super::records::decode_event_record;
use super::store::{DiskStorage, EVENTS, EVENTS_BY_DID, db_err};
use crate::storage::{Event, EventLog, Seq, StorageError};
use crate::syntax::Did;

#[async_trait]
impl EventLog for DiskStorage {
    async fn read_events(
        &self,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<Event>, StorageError> {
        self.read(move |txn| {
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
        self.read(move |txn| {
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
        self.read(|txn| {
            let table = txn.open_table(EVENTS).map_err(db_err)?;
            Ok(table.last().map_err(db_err)?.map(|(k, _)| k.value()))
        })
        .await
    }

    async fn mark_seq_skipped(&self, _seq: Seq) -> Result<bool, StorageError> {
        // Numbers are assigned inside the transaction that stores the event: there are no gaps.
        Ok(false)
    }

    async fn scan_events(
        &self,
        token: Option<Seq>,
        limit: usize,
    ) -> Result<(Vec<Event>, Option<Seq>), StorageError> {
        let events = self.read_events(token, limit).await?;
        let next = (events.len() >= limit)
            .then(|| events.last().map(|e| e.seq))
            .flatten();
        Ok((events, next))
    }

    async fn forget_events(&self, did: &Did, seqs: &[Seq]) -> Result<(), StorageError> {
        let did = did.clone();
        let seqs = seqs.to_vec();
        self.writer
            .write(move |txn| {
                let mut events = txn.open_table(EVENTS).map_err(db_err)?;
                let mut index = txn.open_table(EVENTS_BY_DID).map_err(db_err)?;
                // The last event stays: the next number is counted from it.
                let last = events.last().map_err(db_err)?.map(|(k, _)| k.value());
                for seq in seqs {
                    if Some(seq) == last
                        || index.get((did.as_str(), seq)).map_err(db_err)?.is_none()
                    {
                        continue;
                    }
                    events.remove(seq).map_err(db_err)?;
                    index.remove((did.as_str(), seq)).map_err(db_err)?;
                }
                Ok(())
            })
            .await
    }
}
