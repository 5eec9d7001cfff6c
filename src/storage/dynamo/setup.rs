//! Creating the tables from their definitions (`arroba dynamodb create-tables`, tests).

use std::collections::BTreeMap;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType as DKeyType,
    Projection, ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};

use super::client::backend;
use super::requests::build;
use super::store::DynamoStorage;
use super::tables::{self, KeyType};
use crate::storage::StorageError;

impl DynamoStorage {
    /// Creates every table (on-demand, `KEYS_ONLY` indexes, TTL on events) if missing, and
    /// waits until they are active. Safe to run again.
    pub async fn create_tables(&self) -> Result<(), StorageError> {
        for def in tables::definitions() {
            let name = self.table(def.suffix);
            let attr_type = |k: KeyType| match k {
                KeyType::S => ScalarAttributeType::S,
                KeyType::N => ScalarAttributeType::N,
                KeyType::B => ScalarAttributeType::B,
            };
            let mut attrs: BTreeMap<&str, KeyType> = BTreeMap::new();
            let mut keys = vec![(def.partition, DKeyType::Hash)];
            if let Some(sort) = def.sort {
                keys.push((sort, DKeyType::Range));
            }
            let mut request = self
                .client
                .create_table()
                .table_name(&name)
                .billing_mode(BillingMode::PayPerRequest);
            for (k, kind) in &keys {
                attrs.insert(k.name, k.kind);
                request = request.key_schema(build(
                    KeySchemaElement::builder()
                        .attribute_name(k.name)
                        .key_type(kind.clone())
                        .build(),
                )?);
            }
            for index in &def.indexes {
                let mut gsi = GlobalSecondaryIndex::builder()
                    .index_name(index.name)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::KeysOnly)
                            .build(),
                    )
                    .key_schema(build(
                        KeySchemaElement::builder()
                            .attribute_name(index.partition.name)
                            .key_type(DKeyType::Hash)
                            .build(),
                    )?);
                attrs.insert(index.partition.name, index.partition.kind);
                if let Some(sort) = index.sort {
                    gsi = gsi.key_schema(build(
                        KeySchemaElement::builder()
                            .attribute_name(sort.name)
                            .key_type(DKeyType::Range)
                            .build(),
                    )?);
                    attrs.insert(sort.name, sort.kind);
                }
                request = request.global_secondary_indexes(build(gsi.build())?);
            }
            for (name, kind) in attrs {
                request = request.attribute_definitions(build(
                    AttributeDefinition::builder()
                        .attribute_name(name)
                        .attribute_type(attr_type(kind))
                        .build(),
                )?);
            }
            match request.send().await {
                Ok(_) => {}
                Err(e)
                    if e.as_service_error().and_then(|s| s.code())
                        == Some("ResourceInUseException") => {}
                Err(e) => return Err(backend(e)),
            }
            for _ in 0..600 {
                let out = self
                    .client
                    .describe_table()
                    .table_name(&name)
                    .send()
                    .await
                    .map_err(backend)?;
                if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            if let Some(ttl) = def.ttl {
                let spec = build(
                    TimeToLiveSpecification::builder()
                        .attribute_name(ttl)
                        .enabled(true)
                        .build(),
                )?;
                match self
                    .client
                    .update_time_to_live()
                    .table_name(&name)
                    .time_to_live_specification(spec)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    // Enabling TTL twice is refused; it is already what we want.
                    Err(e)
                        if e.as_service_error().and_then(|s| s.code())
                            == Some("ValidationException") => {}
                    Err(e) => return Err(backend(e)),
                }
            }
        }
        Ok(())
    }
}
