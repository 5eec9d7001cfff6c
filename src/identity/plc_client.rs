//! [`PlcClient`]: submitting operations to a PLC directory.

use std::sync::Arc;

use super::plc::{PlcData, PlcOperation};
use super::{IdentityError, Resolver};
use crate::crypto::{Keypair, PublicKey};
use crate::syntax::{Did, Handle};

/// Creates and updates did:plc identities through the directory the [`Resolver`] is configured
/// with.
#[derive(Debug, Clone)]
pub struct PlcClient {
    resolver: Arc<Resolver>,
}

impl PlcClient {
    /// A client using `resolver`'s directory URL and HTTP client.
    pub fn new(resolver: Arc<Resolver>) -> PlcClient {
        PlcClient { resolver }
    }

    /// A new DID's genesis operation, and the DID it derives, without sending it: listing
    /// `rotation_keys` (signed by `rotation_signer`, which must be one of them), `signing_key`
    /// as `#atproto`, `at://<handle>` and the PDS. [`PlcClient::submit`] registers it.
    pub fn genesis(
        handle: &Handle,
        signing_key: &PublicKey,
        rotation_keys: &[PublicKey],
        rotation_signer: &Keypair,
        pds_endpoint: &str,
    ) -> (Did, PlcOperation) {
        let data = PlcData::new(rotation_keys, signing_key, handle, pds_endpoint);
        let op = PlcOperation::Operation {
            data,
            prev: None,
            sig: None,
        }
        .sign(rotation_signer);
        (op.did(), op)
    }

    /// Creates a DID: its [`PlcClient::genesis`] operation, sent to the directory.
    pub async fn create(
        &self,
        handle: &Handle,
        signing_key: &PublicKey,
        rotation_keys: &[PublicKey],
        rotation_signer: &Keypair,
        pds_endpoint: &str,
    ) -> Result<(Did, PlcOperation), IdentityError> {
        let (did, op) = PlcClient::genesis(
            handle,
            signing_key,
            rotation_keys,
            rotation_signer,
            pds_endpoint,
        );
        self.submit(&did, &op).await?;
        Ok((did, op))
    }

    /// The directory's latest operation for `did`.
    pub async fn last_operation(&self, did: &Did) -> Result<PlcOperation, IdentityError> {
        let url = format!("{}/{did}/log/last", self.resolver.config().plc_url);
        let response = self
            .resolver
            .plc_http()
            .get(&url)
            .send()
            .await
            .map_err(|source| IdentityError::Http {
                url: url.clone(),
                source,
            })?;
        if response.status().as_u16() == 404 {
            return Err(IdentityError::DidNotFound(did.clone()));
        }
        if !response.status().is_success() {
            return Err(IdentityError::HttpStatus {
                url,
                status: response.status().as_u16(),
            });
        }
        let json: serde_json::Value = response
            .json()
            .await
            .map_err(|source| IdentityError::Http { url, source })?;
        PlcOperation::from_json(&json)
    }

    /// Applies `change` to the current state of `did` and submits it, signed by
    /// `rotation_signer` (one of the current rotation keys).
    pub async fn update(
        &self,
        did: &Did,
        rotation_signer: &Keypair,
        change: impl FnOnce(&mut PlcData),
    ) -> Result<PlcOperation, IdentityError> {
        let op = self.sign_update(did, rotation_signer, change).await?;
        self.submit(did, &op).await?;
        self.resolver.invalidate(Some(did), None);
        Ok(op)
    }

    /// The operation that applies `change` to the current state of `did`, signed by
    /// `rotation_signer`, without submitting it (`signPlcOperation`: the account's new PDS
    /// submits it).
    pub async fn sign_update(
        &self,
        did: &Did,
        rotation_signer: &Keypair,
        change: impl FnOnce(&mut PlcData),
    ) -> Result<PlcOperation, IdentityError> {
        let last = self.last_operation(did).await?;
        let mut data = last
            .data()
            .ok_or_else(|| IdentityError::DidDeactivated(did.clone()))?;
        change(&mut data);
        Ok(PlcOperation::Operation {
            data,
            prev: Some(last.cid().to_string()),
            sig: None,
        }
        .sign(rotation_signer))
    }

    /// Tombstones `did`.
    pub async fn tombstone(
        &self,
        did: &Did,
        rotation_signer: &Keypair,
    ) -> Result<PlcOperation, IdentityError> {
        let last = self.last_operation(did).await?;
        let op = PlcOperation::Tombstone {
            prev: last.cid().to_string(),
            sig: None,
        }
        .sign(rotation_signer);
        self.submit(did, &op).await?;
        self.resolver.invalidate(Some(did), None);
        Ok(op)
    }

    /// Posts a signed operation for `did`.
    pub async fn submit(&self, did: &Did, op: &PlcOperation) -> Result<(), IdentityError> {
        let url = format!("{}/{did}", self.resolver.config().plc_url);
        let response = self
            .resolver
            .plc_http()
            .post(&url)
            .json(&op.to_json())
            .send()
            .await
            .map_err(|source| IdentityError::Http {
                url: url.clone(),
                source,
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let message = body
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or("no message")
            .to_owned();
        Err(IdentityError::PlcRejected {
            status: status.as_u16(),
            message,
        })
    }
}
