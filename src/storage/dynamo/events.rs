//! [`EventLog`] on DynamoDB: events by sequence number (a `by-did` index per repo), skipped
//! markers, and the sequence counter.

use std::collections::HashMap;

use async_trait::async_trait;

use super::client::backend;
use super::items::*;
use super::requests::{Fetch, is_condition_failure};
use super::store::DynamoStorage;
use super::tables;
use crate::storage::{Event, EventLog, Seq, StorageError};
use crate::syntax::Did;

#[async_trait]
impl EventLog for DynamoStorage {
    async fn read_events(
        &self,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<Event>, StorageError> {
        let Some(last) = self.last_seq().await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut next = after.unwrap_or(0) + 1;
        let table = self.table(tables::EVENTS);
        while out.len() < limit && next <= last {
            let end = last.min(next + 99);
            let items = self
                .batch_get(&table, (next..=end).map(event_key).collect(), Fetch::All)
                .await?;
            let by_seq: HashMap<Seq, &Item> = items
                .iter()
                .filter_map(|i| Some((get_n(i, "seq")?, i)))
                .collect();
            for seq in next..=end {
                let Some(item) = by_seq.get(&seq) else {
                    return Ok(out);
                };
                if let Some(event) = event_from_item(item)? {
                    out.push(event);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            next = end + 1;
        }
        Ok(out)
    }

    async fn read_repo_events(
        &self,
        did: &Did,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<Event>, StorageError> {
        let keys = self
            .query_all(
                || {
                    self.client
                        .query()
                        .table_name(self.table(tables::EVENTS))
                        .index_name(tables::EVENTS_BY_DID)
                        .key_condition_expression("did = :d AND seq > :after")
                        .expression_attribute_values(":d", s(did.as_str()))
                        .expression_attribute_values(":after", n(after.unwrap_or(0)))
                },
                limit,
            )
            .await?;
        let items = self
            .batch_get(
                &self.table(tables::EVENTS),
                keys.iter()
                    .filter_map(|i| get_n(i, "seq"))
                    .map(event_key)
                    .collect(),
                Fetch::All,
            )
            .await?;
        let mut events: Vec<Event> = items
            .iter()
            .filter_map(|i| event_from_item(i).transpose())
            .collect::<Result<_, _>>()?;
        events.sort_by_key(|e| e.seq);
        Ok(events)
    }

    async fn last_seq(&self) -> Result<Option<Seq>, StorageError> {
        let key = HashMap::from([("name".to_owned(), s("seq"))]);
        Ok(self
            .get_item(&self.table(tables::COUNTERS), key, Fetch::All)
            .await?
            .and_then(|i| get_n(&i, "value"))
            .filter(|&v| v > 0))
    }

    async fn mark_seq_skipped(&self, seq: Seq) -> Result<bool, StorageError> {
        let table = self.table(tables::EVENTS);
        let item = skipped_item(seq, self.expires_at());
        self.metrics.wrote([item_size(&item)], false);
        let result = self
            .client
            .put_item()
            .table_name(&table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(seq)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => {
                let existing = self.get_item(&table, event_key(seq), Fetch::All).await?;
                Ok(existing.is_some_and(|i| i.contains_key("skipped")))
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn scan_events(
        &self,
        token: Option<Seq>,
        limit: usize,
    ) -> Result<(Vec<Event>, Option<Seq>), StorageError> {
        let resp = self
            .client
            .scan()
            .table_name(self.table(tables::EVENTS))
            .limit(limit.clamp(1, 1000) as i32)
            .set_exclusive_start_key(token.map(event_key))
            .send()
            .await
            .map_err(backend)?;
        self.metrics.read(resp.items().iter().map(item_size));
        let events = resp
            .items()
            .iter()
            .filter_map(|i| event_from_item(i).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        let next = resp.last_evaluated_key().and_then(|k| get_n(k, "seq"));
        Ok((events, next))
    }

    async fn forget_events(&self, did: &Did, seqs: &[Seq]) -> Result<(), StorageError> {
        let table = self.table(tables::EVENTS);
        for &seq in seqs {
            // A skipped marker in its place: readers pass over it, and it leaves the by-did
            // index (it has no `did`).
            let item = skipped_item(seq, self.expires_at());
            self.metrics.wrote([item_size(&item)], false);
            let result = self
                .client
                .put_item()
                .table_name(&table)
                .set_item(Some(item))
                .condition_expression("did = :d")
                .expression_attribute_values(":d", s(did.as_str()))
                .send()
                .await;
            match result {
                Ok(_) => {}
                Err(e) if is_condition_failure(&e) => {}
                Err(e) => return Err(backend(e)),
            }
        }
        Ok(())
    }
}
