//! did:plc operations (https://web.plc.directory/spec/v0.1/did-plc): build, sign, verify, derive
//! the DID, and turn the current operation into a DID document. Pure: no I/O.
//!
//! Operations are signed over their DAG-CBOR without `sig`, by a rotation key, with a low-S
//! compact signature encoded as unpadded base64url. `prev` is the CID (as a string) of the
//! operation before; the genesis operation has `prev: null` and its DID is `did:plc:` plus the
//! first 24 characters of the base32 SHA-256 of its signed DAG-CBOR. The legacy `create`
//! format is read (for verifying old logs) but never written.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::{DidDocument, IdentityError};
use crate::cbor::{self, Value};
use crate::cid::{Cid, cid_for_cbor, parse_cid};
use crate::crypto::{Keypair, PublicKey};
use crate::syntax::{Did, Handle, is_valid_uri};

/// Most rotation keys an operation may list (the directory's limit).
pub const MAX_ROTATION_KEYS: usize = 5;

/// A service entry of a PLC operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlcService {
    /// The service type, e.g. `AtprotoPersonalDataServer`.
    pub kind: String,
    /// The service URL.
    pub endpoint: String,
}

/// The state a `plc_operation` sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlcData {
    /// did:keys allowed to sign the next operation, highest priority first.
    pub rotation_keys: Vec<String>,
    /// Named did:keys; `atproto` is the repo signing key.
    pub verification_methods: BTreeMap<String, String>,
    /// Other names; `at://<handle>` first.
    pub also_known_as: Vec<String>,
    /// Named services; `atproto_pds` is the PDS.
    pub services: BTreeMap<String, PlcService>,
}

/// One signed (or about to be signed) operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlcOperation {
    /// The current format: sets the whole state.
    Operation {
        /// The state it sets.
        data: PlcData,
        /// The previous operation's CID (None for genesis).
        prev: Option<String>,
        /// The signature (None until signed).
        sig: Option<String>,
    },
    /// Deactivates the DID for good.
    Tombstone {
        /// The previous operation's CID.
        prev: String,
        /// The signature.
        sig: Option<String>,
    },
    /// The legacy genesis format (`type: create`), read-only.
    LegacyCreate {
        /// did:key of the signing key.
        signing_key: String,
        /// did:key of the recovery key.
        recovery_key: String,
        /// The handle.
        handle: String,
        /// The PDS URL.
        service: String,
        /// The signature.
        sig: Option<String>,
    },
}

impl PlcData {
    /// The state for an atproto account.
    pub fn new(
        rotation_keys: &[PublicKey],
        signing_key: &PublicKey,
        handle: &Handle,
        pds_endpoint: &str,
    ) -> PlcData {
        PlcData {
            rotation_keys: rotation_keys.iter().map(PublicKey::to_did_key).collect(),
            verification_methods: BTreeMap::from([("atproto".into(), signing_key.to_did_key())]),
            also_known_as: vec![format!("at://{handle}")],
            services: BTreeMap::from([(
                "atproto_pds".into(),
                PlcService {
                    kind: "AtprotoPersonalDataServer".into(),
                    endpoint: pds_endpoint.to_owned(),
                },
            )]),
        }
    }

    /// The DID document this state describes.
    pub fn to_did_doc(&self, did: &Did) -> DidDocument {
        let mut doc = DidDocument {
            context: vec![
                "https://www.w3.org/ns/did/v1".into(),
                "https://w3id.org/security/multikey/v1".into(),
                "https://w3id.org/security/suites/secp256k1-2019/v1".into(),
            ],
            id: did.to_string(),
            also_known_as: self.also_known_as.clone(),
            verification_method: Vec::new(),
            service: Vec::new(),
        };
        for (name, key) in &self.verification_methods {
            doc.verification_method.push(super::VerificationMethod {
                id: format!("{did}#{name}"),
                kind: "Multikey".into(),
                controller: did.to_string(),
                public_key_multibase: key.strip_prefix("did:key:").map(str::to_owned),
            });
        }
        for (name, service) in &self.services {
            doc.service.push(super::Service {
                id: format!("#{name}"),
                kind: service.kind.clone(),
                service_endpoint: service.endpoint.clone(),
            });
        }
        doc
    }

    /// The handle (first `at://` entry).
    pub fn handle(&self) -> Option<&str> {
        self.also_known_as
            .iter()
            .find_map(|a| a.strip_prefix("at://"))
    }

    fn to_value(&self) -> Vec<(&'static str, Value)> {
        vec![
            (
                "rotationKeys",
                Value::Array(
                    self.rotation_keys
                        .iter()
                        .map(|k| k.as_str().into())
                        .collect(),
                ),
            ),
            (
                "verificationMethods",
                Value::Map(
                    self.verification_methods
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().into()))
                        .collect(),
                ),
            ),
            (
                "alsoKnownAs",
                Value::Array(
                    self.also_known_as
                        .iter()
                        .map(|k| k.as_str().into())
                        .collect(),
                ),
            ),
            (
                "services",
                Value::Map(
                    self.services
                        .iter()
                        .map(|(k, s)| {
                            (
                                k.clone(),
                                cbor::map([
                                    ("type", s.kind.as_str().into()),
                                    ("endpoint", s.endpoint.as_str().into()),
                                ]),
                            )
                        })
                        .collect(),
                ),
            ),
        ]
    }
}

fn invalid(why: impl Into<String>) -> IdentityError {
    IdentityError::InvalidOperation(why.into())
}

impl PlcOperation {
    /// The signature, if signed.
    pub fn sig(&self) -> Option<&str> {
        match self {
            PlcOperation::Operation { sig, .. }
            | PlcOperation::Tombstone { sig, .. }
            | PlcOperation::LegacyCreate { sig, .. } => sig.as_deref(),
        }
    }

    /// The previous operation's CID string (None for a genesis operation).
    pub fn prev(&self) -> Option<&str> {
        match self {
            PlcOperation::Operation { prev, .. } => prev.as_deref(),
            PlcOperation::Tombstone { prev, .. } => Some(prev),
            PlcOperation::LegacyCreate { .. } => None,
        }
    }

    /// The state after this operation (legacy creates are normalised; tombstones have none).
    pub fn data(&self) -> Option<PlcData> {
        match self {
            PlcOperation::Operation { data, .. } => Some(data.clone()),
            PlcOperation::Tombstone { .. } => None,
            PlcOperation::LegacyCreate {
                signing_key,
                recovery_key,
                handle,
                service,
                ..
            } => Some(PlcData {
                rotation_keys: vec![recovery_key.clone(), signing_key.clone()],
                verification_methods: BTreeMap::from([("atproto".into(), signing_key.clone())]),
                also_known_as: vec![format!("at://{handle}")],
                services: BTreeMap::from([(
                    "atproto_pds".into(),
                    PlcService {
                        kind: "AtprotoPersonalDataServer".into(),
                        endpoint: service.clone(),
                    },
                )]),
            }),
        }
    }

    /// The operation as a data-model map, with or without `sig`.
    pub fn to_value(&self, with_sig: bool) -> Value {
        let mut fields: Vec<(&'static str, Value)> = match self {
            PlcOperation::Operation { data, prev, .. } => {
                let mut f = vec![("type", "plc_operation".into())];
                f.extend(data.to_value());
                f.push((
                    "prev",
                    prev.as_deref().map(Value::from).unwrap_or(Value::Null),
                ));
                f
            }
            PlcOperation::Tombstone { prev, .. } => {
                vec![
                    ("type", "plc_tombstone".into()),
                    ("prev", prev.as_str().into()),
                ]
            }
            PlcOperation::LegacyCreate {
                signing_key,
                recovery_key,
                handle,
                service,
                ..
            } => vec![
                ("type", "create".into()),
                ("signingKey", signing_key.as_str().into()),
                ("recoveryKey", recovery_key.as_str().into()),
                ("handle", handle.as_str().into()),
                ("service", service.as_str().into()),
                ("prev", Value::Null),
            ],
        };
        if let (true, Some(sig)) = (with_sig, self.sig()) {
            fields.push(("sig", sig.into()));
        }
        cbor::map(fields)
    }

    /// The operation as JSON (what the directory accepts and serves).
    pub fn to_json(&self) -> serde_json::Value {
        cbor::to_json(&self.to_value(true))
    }

    /// Signs the operation with a rotation key (replacing any signature).
    pub fn sign(mut self, key: &Keypair) -> PlcOperation {
        let sig = URL_SAFE_NO_PAD.encode(key.sign(&cbor::encode(&self.to_value(false))));
        match &mut self {
            PlcOperation::Operation { sig: s, .. }
            | PlcOperation::Tombstone { sig: s, .. }
            | PlcOperation::LegacyCreate { sig: s, .. } => *s = Some(sig),
        }
        self
    }

    /// Checks the signature against `keys` (did:key strings); returns the index of the key
    /// that signed.
    pub fn verify(&self, keys: &[String]) -> Result<usize, IdentityError> {
        let sig = self.sig().ok_or_else(|| invalid("unsigned operation"))?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig.trim_end_matches('='))
            .map_err(|_| invalid("sig is not base64url"))?;
        let message = cbor::encode(&self.to_value(false));
        for (i, key) in keys.iter().enumerate() {
            let Ok(public) = PublicKey::from_did_key(key) else {
                continue;
            };
            if public.verify(&message, &sig).is_ok() {
                return Ok(i);
            }
        }
        Err(invalid(
            "signature does not verify against any allowed rotation key",
        ))
    }

    /// The CID of the signed operation (what the next operation's `prev` names).
    pub fn cid(&self) -> Cid {
        cid_for_cbor(&cbor::encode(&self.to_value(true)))
    }

    /// The DID a signed genesis operation creates.
    pub fn did(&self) -> Did {
        let hash = Sha256::digest(cbor::encode(&self.to_value(true)));
        let b32 = multibase::encode(multibase::Base::Base32Lower, hash);
        // The multibase prefix 'b' is dropped; base32 of 32 bytes has more than 24 characters.
        let did = format!("did:plc:{}", &b32[1..25]);
        Did::parse(&did).expect("did:plc with base32 characters is a valid DID")
    }

    /// Parses and checks an operation from JSON: known type, exactly the expected fields, valid
    /// did:keys, URIs, CIDs and signature encoding.
    pub fn from_json(json: &serde_json::Value) -> Result<PlcOperation, IdentityError> {
        let obj = json
            .as_object()
            .ok_or_else(|| invalid("not a JSON object"))?;
        let str_field = |name: &str| -> Result<String, IdentityError> {
            obj.get(name)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .ok_or_else(|| invalid(format!("{name} must be a string")))
        };
        let sig = match obj.get("sig") {
            None => None,
            Some(serde_json::Value::String(s))
                if URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).is_ok() =>
            {
                Some(s.clone())
            }
            Some(_) => return Err(invalid("sig must be a base64url string")),
        };
        let check_fields = |allowed: &[&str]| -> Result<(), IdentityError> {
            match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
                Some(k) => Err(invalid(format!("unexpected field {k}"))),
                None => Ok(()),
            }
        };
        let op_type = str_field("type")?;
        match op_type.as_str() {
            "plc_operation" => {
                check_fields(&[
                    "type",
                    "rotationKeys",
                    "verificationMethods",
                    "alsoKnownAs",
                    "services",
                    "prev",
                    "sig",
                ])?;
                let prev = parse_prev(obj.get("prev"))?;
                let rotation_keys = string_array(obj.get("rotationKeys"), "rotationKeys")?;
                if rotation_keys.is_empty() || rotation_keys.len() > MAX_ROTATION_KEYS {
                    return Err(invalid(format!(
                        "rotationKeys must have 1 to {MAX_ROTATION_KEYS} keys"
                    )));
                }
                let mut seen = std::collections::HashSet::new();
                for key in &rotation_keys {
                    check_did_key(key, "rotationKeys")?;
                    if !seen.insert(key) {
                        return Err(invalid("duplicate rotation key"));
                    }
                }
                let vm = obj
                    .get("verificationMethods")
                    .and_then(|v| v.as_object())
                    .ok_or_else(|| invalid("verificationMethods must be an object"))?;
                let mut verification_methods = BTreeMap::new();
                for (name, key) in vm {
                    let key = key
                        .as_str()
                        .ok_or_else(|| invalid("verificationMethods values must be strings"))?;
                    check_did_key(key, "verificationMethods")?;
                    verification_methods.insert(name.clone(), key.to_owned());
                }
                let also_known_as = string_array(obj.get("alsoKnownAs"), "alsoKnownAs")?;
                if let Some(bad) = also_known_as.iter().find(|a| !is_valid_uri(a)) {
                    return Err(invalid(format!("alsoKnownAs entry is not a URI: {bad}")));
                }
                let svc = obj
                    .get("services")
                    .and_then(|v| v.as_object())
                    .ok_or_else(|| invalid("services must be an object"))?;
                let mut services = BTreeMap::new();
                for (name, s) in svc {
                    let kind = s
                        .get("type")
                        .and_then(|v| v.as_str())
                        .ok_or_else(|| invalid("service type must be a string"))?;
                    let endpoint = s
                        .get("endpoint")
                        .and_then(|v| v.as_str())
                        .ok_or_else(|| invalid("service endpoint must be a string"))?;
                    if !is_valid_uri(endpoint) || s.as_object().is_some_and(|o| o.len() != 2) {
                        return Err(invalid(format!("service {name} is malformed")));
                    }
                    services.insert(
                        name.clone(),
                        PlcService {
                            kind: kind.to_owned(),
                            endpoint: endpoint.to_owned(),
                        },
                    );
                }
                let data = PlcData {
                    rotation_keys,
                    verification_methods,
                    also_known_as,
                    services,
                };
                Ok(PlcOperation::Operation { data, prev, sig })
            }
            "plc_tombstone" => {
                check_fields(&["type", "prev", "sig"])?;
                let prev = parse_prev(obj.get("prev"))?
                    .ok_or_else(|| invalid("a tombstone needs prev"))?;
                Ok(PlcOperation::Tombstone { prev, sig })
            }
            "create" => {
                check_fields(&[
                    "type",
                    "signingKey",
                    "recoveryKey",
                    "handle",
                    "service",
                    "prev",
                    "sig",
                ])?;
                if parse_prev(obj.get("prev"))?.is_some() {
                    return Err(invalid("a legacy create has no prev"));
                }
                let (signing_key, recovery_key) =
                    (str_field("signingKey")?, str_field("recoveryKey")?);
                check_did_key(&signing_key, "signingKey")?;
                check_did_key(&recovery_key, "recoveryKey")?;
                Ok(PlcOperation::LegacyCreate {
                    signing_key,
                    recovery_key,
                    handle: str_field("handle")?,
                    service: str_field("service")?,
                    sig,
                })
            }
            other => Err(invalid(format!("unknown operation type {other}"))),
        }
    }
}

fn parse_prev(v: Option<&serde_json::Value>) -> Result<Option<String>, IdentityError> {
    match v {
        Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => {
            parse_cid(s).map_err(|_| invalid("prev is not a CID"))?;
            Ok(Some(s.clone()))
        }
        _ => Err(invalid("prev must be a CID string or null")),
    }
}

fn string_array(v: Option<&serde_json::Value>, name: &str) -> Result<Vec<String>, IdentityError> {
    v.and_then(|v| v.as_array())
        .ok_or_else(|| invalid(format!("{name} must be an array")))?
        .iter()
        .map(|s| {
            s.as_str()
                .map(str::to_owned)
                .ok_or_else(|| invalid(format!("{name} entries must be strings")))
        })
        .collect()
}

fn check_did_key(key: &str, field: &str) -> Result<(), IdentityError> {
    PublicKey::from_did_key(key)
        .map(|_| ())
        .map_err(|_| invalid(format!("{field} has an invalid did:key: {key}")))
}

/// A complete, verified operation log for one DID.
#[derive(Debug, Clone)]
pub struct PlcLog {
    /// The DID.
    pub did: Did,
    /// The operations, oldest first.
    pub ops: Vec<PlcOperation>,
}

impl PlcLog {
    /// Checks that `ops` form a valid chain for `did`: the genesis has no prev, derives the DID
    /// and is signed by one of its own rotation keys; every later operation names the previous
    /// one's CID and is signed by one of the previous state's rotation keys; nothing follows a
    /// tombstone.
    pub fn verify(did: &Did, ops: Vec<PlcOperation>) -> Result<PlcLog, IdentityError> {
        let (genesis, rest) = ops.split_first().ok_or_else(|| invalid("empty log"))?;
        if genesis.prev().is_some() {
            return Err(invalid("genesis operation has a prev"));
        }
        if &genesis.did() != did {
            return Err(invalid("genesis operation does not derive this DID"));
        }
        let mut state = genesis
            .data()
            .ok_or_else(|| invalid("genesis cannot be a tombstone"))?;
        genesis.verify(&state.rotation_keys)?;
        let mut prev_cid = genesis.cid();
        let mut tombstoned = false;
        for op in rest {
            if tombstoned {
                return Err(invalid("operation after a tombstone"));
            }
            if op.prev() != Some(prev_cid.to_string().as_str()) {
                return Err(invalid("prev does not name the previous operation"));
            }
            op.verify(&state.rotation_keys)?;
            match op.data() {
                Some(data) => state = data,
                None => tombstoned = true,
            }
            prev_cid = op.cid();
        }
        Ok(PlcLog {
            did: did.clone(),
            ops,
        })
    }

    /// The last operation.
    pub fn last(&self) -> &PlcOperation {
        // `verify` refuses an empty log.
        self.ops.last().expect("a verified log is never empty")
    }

    /// The current state, or None if tombstoned.
    pub fn state(&self) -> Option<PlcData> {
        self.last().data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Algorithm;

    #[test]
    fn legacy_create_logs_verify_and_normalise() {
        let recovery = Keypair::from_seed(Algorithm::K256, b"recovery");
        let signing = Keypair::from_seed(Algorithm::K256, b"signing");
        let genesis = PlcOperation::LegacyCreate {
            signing_key: signing.public_key().to_did_key(),
            recovery_key: recovery.public_key().to_did_key(),
            handle: "old.test".into(),
            service: "https://pds.test".into(),
            sig: None,
        }
        .sign(&recovery);
        let parsed = PlcOperation::from_json(&genesis.to_json()).unwrap();
        assert_eq!(parsed, genesis);
        let did = genesis.did();
        let state = genesis.data().unwrap();
        assert_eq!(state.rotation_keys[0], recovery.public_key().to_did_key());
        assert_eq!(state.handle(), Some("old.test"));
        // The legacy signing key is also a rotation key, so it may sign the next operation.
        let next = PlcOperation::Operation {
            data: state,
            prev: Some(genesis.cid().to_string()),
            sig: None,
        }
        .sign(&signing);
        let log = PlcLog::verify(&did, vec![genesis, next]).unwrap();
        assert_eq!(
            log.state()
                .unwrap()
                .to_did_doc(&did)
                .handle()
                .unwrap()
                .as_str(),
            "old.test"
        );
    }
}
