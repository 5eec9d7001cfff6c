//! Moving an account between PDSs, the flow atproto's migration guide describes: the identity
//! side. Arriving, this PDS recommends the DID document that would point the account here
//! ([`AccountService::recommended_credentials`]) and submits the operation the old PDS signed
//! ([`AccountService::submit_plc_operation`]), after checking it keeps this PDS's keys and
//! address. Leaving, it signs an operation for the new PDS with the account's rotation key, once
//! the person has confirmed by e-mail ([`AccountService::sign_plc_operation`]). A signing key
//! can be reserved before the account arrives ([`AccountService::reserve_signing_key`]), so the
//! DID document can name it first (did:web's manual path); the arriving account then signs
//! with it.

use serde_json::json;

use super::{AccountError, AccountService, TokenPurpose};
use crate::crypto::{Algorithm, Keypair};
use crate::identity::plc::{PlcData, PlcOperation, PlcService};
use crate::storage::codec::{decode_keys, encode_keys};
use crate::storage::{EventBody, KvCondition, RepoKeys, StorageError};
use crate::syntax::Did;

/// Key-value namespace of reserved signing keys (sealed), by DID or, reserved without one, by
/// the key's did:key.
const RESERVED_KEYS: &str = "reserved-signing-keys";

/// The parts of a DID document a `signPlcOperation` call may set.
#[derive(Debug, Clone, Default)]
pub struct CredentialChanges {
    /// did:keys allowed to sign the next operation.
    pub rotation_keys: Option<Vec<String>>,
    /// Other names, `at://<handle>` first.
    pub also_known_as: Option<Vec<String>>,
    /// Named did:keys (`atproto`: the repo signing key).
    pub verification_methods: Option<serde_json::Map<String, serde_json::Value>>,
    /// Named services (`atproto_pds`).
    pub services: Option<serde_json::Map<String, serde_json::Value>>,
}

impl AccountService<'_> {
    /// Reserves a signing key for an account to come (`reserveSigningKey`) and returns its
    /// did:key: for `did`, the one already reserved for it if any (reserving again changes
    /// nothing); without one, a fresh key known by its did:key.
    pub async fn reserve_signing_key(&self, did: Option<&Did>) -> Result<String, AccountError> {
        if let Some(did) = did {
            if let Some(key) = self.reserved_key(did).await? {
                return Ok(key.public_key().to_did_key());
            }
        }
        let key = Keypair::generate(Algorithm::K256);
        let did_key = key.public_key().to_did_key();
        let sealed = self.storage.seal_secret(&encode_keys(&key, None))?;
        let Some(did) = did else {
            // A fresh key's did:key names nothing else.
            self.storage
                .kv_put(RESERVED_KEYS, &did_key, &sealed, KvCondition::Always)
                .await?;
            return Ok(did_key);
        };
        if self
            .storage
            .kv_put(RESERVED_KEYS, did.as_str(), &sealed, KvCondition::IfAbsent)
            .await?
        {
            return Ok(did_key);
        }
        // A concurrent reservation for the same DID won: its key is the reserved one.
        let winner = self
            .reserved_key(did)
            .await?
            .ok_or_else(|| StorageError::Conflict(did.clone()))?;
        Ok(winner.public_key().to_did_key())
    }

    /// The signing key reserved for `did`, if any.
    pub(super) async fn reserved_key(&self, did: &Did) -> Result<Option<Keypair>, AccountError> {
        let Some(sealed) = self.storage.kv_get(RESERVED_KEYS, did.as_str()).await? else {
            return Ok(None);
        };
        let opened = self.storage.open_secret(&sealed)?;
        let (key, _) = decode_keys(&opened).map_err(|_| StorageError::Corrupt {
            what: format!("reserved signing key of {did}"),
            why: "not a key",
        })?;
        Ok(Some(key))
    }

    /// Drops `did`'s reservation once its account holds the key.
    pub(super) async fn release_reserved_key(&self, did: &Did) -> Result<(), AccountError> {
        self.storage
            .kv_delete(RESERVED_KEYS, did.as_str(), None)
            .await?;
        Ok(())
    }

    async fn keys(&self, did: &Did) -> Result<RepoKeys, AccountError> {
        self.storage
            .load_keys(did)
            .await?
            .ok_or_else(|| AccountError::NotFound(did.clone()))
    }

    /// The rotation keys this PDS holds for `did`: the account's own, then the operator's.
    fn our_rotation_keys(&self, keys: &RepoKeys) -> Vec<String> {
        keys.rotation
            .iter()
            .chain(self.config.plc_rotation_key.as_ref())
            .map(|k| k.public_key().to_did_key())
            .collect()
    }

    /// What `did`'s DID document should say for the account to live here
    /// (`getRecommendedDidCredentials`).
    pub async fn recommended_credentials(
        &self,
        did: &Did,
    ) -> Result<serde_json::Value, AccountError> {
        let keys = self.keys(did).await?;
        let record = self.repo(did).await?;
        let also_known_as: Vec<String> =
            record.handle.iter().map(|h| format!("at://{h}")).collect();
        Ok(json!({
            "rotationKeys": self.our_rotation_keys(&keys),
            "alsoKnownAs": also_known_as,
            "verificationMethods": {"atproto": keys.signing.public_key().to_did_key()},
            "services": {"atproto_pds": {
                "type": "AtprotoPersonalDataServer", "endpoint": self.config.public_url,
            }},
        }))
    }

    /// Signs, for `did` leaving this PDS, an operation on top of its DID's current state with
    /// `changes` applied, with the account's rotation key; `token` is the code
    /// `requestPlcOperationSignature` e-mailed. The new PDS submits it.
    pub async fn sign_plc_operation(
        &self,
        did: &Did,
        token: &str,
        changes: CredentialChanges,
    ) -> Result<PlcOperation, AccountError> {
        if did.method() != "plc" {
            return Err(AccountError::Refused(
                "Only did:plc identities are changed with a signed operation",
            ));
        }
        self.take_token_for(did, TokenPurpose::PlcOperation, token)
            .await?;
        let keys = self.keys(did).await?;
        let signer: &Keypair = keys
            .rotation
            .as_ref()
            .or(self.config.plc_rotation_key.as_ref())
            .ok_or(AccountError::Refused(
                "This PDS holds no rotation key for the account",
            ))?;
        let methods = changes
            .verification_methods
            .map(|m| string_map(m, "verificationMethods"))
            .transpose()?;
        let services = changes.services.map(services_of).transpose()?;
        let op = self
            .plc
            .sign_update(did, signer, |data| {
                if let Some(keys) = changes.rotation_keys {
                    data.rotation_keys = keys;
                }
                if let Some(names) = changes.also_known_as {
                    data.also_known_as = names;
                }
                if let Some(methods) = methods {
                    data.verification_methods = methods;
                }
                if let Some(services) = services {
                    data.services = services;
                }
            })
            .await
            .map_err(AccountError::DidCreation)?;
        Ok(op)
    }

    /// Submits `operation` (signed by the account's old PDS) for `did` arriving here, after
    /// checking that it keeps this PDS able to act for the account: one of our rotation keys,
    /// the account's signing key as `atproto`, this PDS as `atproto_pds`, and the account's
    /// handle. Then `#identity` tells relays.
    pub async fn submit_plc_operation(
        &self,
        did: &Did,
        operation: &serde_json::Value,
    ) -> Result<(), AccountError> {
        if did.method() != "plc" {
            return Err(AccountError::Refused(
                "Only did:plc identities are changed with a signed operation",
            ));
        }
        let op = PlcOperation::from_json(operation)
            .map_err(|e| AccountError::BadPlcOperation(format!("Invalid operation: {e}")))?;
        let data: PlcData = op.data().ok_or_else(|| {
            AccountError::BadPlcOperation("A tombstone cannot be submitted here".into())
        })?;
        let keys = self.keys(did).await?;
        let record = self.repo(did).await?;
        let bad = |why: &str| Err(AccountError::BadPlcOperation(why.to_owned()));
        if !self
            .our_rotation_keys(&keys)
            .iter()
            .any(|k| data.rotation_keys.contains(k))
        {
            return bad("Rotation keys do not include this server's rotation key");
        }
        if data.verification_methods.get("atproto") != Some(&keys.signing.public_key().to_did_key())
        {
            return bad("Incorrect signing key");
        }
        let pds = data.services.get("atproto_pds");
        if pds.is_none_or(|s| {
            s.kind != "AtprotoPersonalDataServer" || s.endpoint != self.config.public_url
        }) {
            return bad("Incorrect endpoint on atproto_pds service");
        }
        if let Some(handle) = &record.handle {
            if data.also_known_as.first() != Some(&format!("at://{handle}")) {
                return bad("Incorrect handle in alsoKnownAs");
            }
        }
        self.plc
            .submit(did, &op)
            .await
            .map_err(AccountError::DidCreation)?;
        self.resolver.invalidate(Some(did), None);
        self.storage
            .set_handle(
                did,
                record.handle.clone(),
                vec![EventBody::Identity {
                    handle: record.handle,
                }],
            )
            .await?;
        Ok(())
    }
}

/// A JSON object of strings (verification methods).
fn string_map(
    map: serde_json::Map<String, serde_json::Value>,
    what: &'static str,
) -> Result<std::collections::BTreeMap<String, String>, AccountError> {
    map.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            _ => Err(AccountError::BadPlcOperation(format!(
                "{what} values must be strings"
            ))),
        })
        .collect()
}

/// A JSON object of `{type, endpoint}` services.
fn services_of(
    map: serde_json::Map<String, serde_json::Value>,
) -> Result<std::collections::BTreeMap<String, PlcService>, AccountError> {
    map.into_iter()
        .map(|(k, v)| {
            let kind = v["type"].as_str();
            let endpoint = v["endpoint"].as_str();
            match (kind, endpoint) {
                (Some(kind), Some(endpoint)) => Ok((
                    k,
                    PlcService {
                        kind: kind.to_owned(),
                        endpoint: endpoint.to_owned(),
                    },
                )),
                _ => Err(AccountError::BadPlcOperation(
                    "services need a type and an endpoint".into(),
                )),
            }
        })
        .collect()
}
