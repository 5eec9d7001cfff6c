//! DID documents: the parts atproto uses (handle, signing key, PDS endpoint).

use serde::{Deserialize, Serialize};

use crate::crypto::PublicKey;
use crate::syntax::{Did, Handle};

/// A DID document, as much of it as atproto reads. Unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DidDocument {
    /// JSON-LD contexts.
    #[serde(rename = "@context", default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<String>,
    /// The DID.
    pub id: String,
    /// Other names, `at://<handle>` among them.
    #[serde(rename = "alsoKnownAs", default)]
    pub also_known_as: Vec<String>,
    /// Keys.
    #[serde(rename = "verificationMethod", default)]
    pub verification_method: Vec<VerificationMethod>,
    /// Services, the PDS among them.
    #[serde(default)]
    pub service: Vec<Service>,
}

/// A key in a DID document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationMethod {
    /// `did:…#atproto` or `#atproto`.
    pub id: String,
    /// `Multikey` (or a legacy type).
    #[serde(rename = "type")]
    pub kind: String,
    /// The DID that controls the key.
    pub controller: String,
    /// The key in Multikey form.
    #[serde(rename = "publicKeyMultibase", default)]
    pub public_key_multibase: Option<String>,
}

/// A service in a DID document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// `#atproto_pds` or `did:…#atproto_pds`.
    pub id: String,
    /// `AtprotoPersonalDataServer` for a PDS.
    #[serde(rename = "type")]
    pub kind: String,
    /// The service URL.
    #[serde(rename = "serviceEndpoint")]
    pub service_endpoint: String,
}

/// Whether `id` names fragment `frag` of `did`, in either accepted form.
fn is_fragment(id: &str, did: &str, frag: &str) -> bool {
    id.strip_prefix(did).unwrap_or(id) == format!("#{frag}")
}

impl DidDocument {
    /// The DID document for a DID, in the Multikey form arroba and the PLC directory produce.
    pub fn new(
        did: &Did,
        handle: Option<&Handle>,
        signing_key: &PublicKey,
        pds_endpoint: &str,
    ) -> DidDocument {
        DidDocument {
            context: vec![
                "https://www.w3.org/ns/did/v1".into(),
                "https://w3id.org/security/multikey/v1".into(),
                "https://w3id.org/security/suites/secp256k1-2019/v1".into(),
            ],
            id: did.to_string(),
            also_known_as: handle
                .map(|h| vec![format!("at://{h}")])
                .unwrap_or_default(),
            verification_method: vec![VerificationMethod {
                id: format!("{did}#atproto"),
                kind: "Multikey".into(),
                controller: did.to_string(),
                public_key_multibase: Some(signing_key.to_multikey()),
            }],
            service: vec![Service {
                id: "#atproto_pds".into(),
                kind: "AtprotoPersonalDataServer".into(),
                service_endpoint: pds_endpoint.to_owned(),
            }],
        }
    }

    /// The handle: the first syntactically valid `at://` entry of `alsoKnownAs`.
    pub fn handle(&self) -> Option<Handle> {
        self.also_known_as
            .iter()
            .find_map(|aka| Handle::parse(aka.strip_prefix("at://")?).ok())
    }

    /// Whether `alsoKnownAs` lists `at://<handle>` (case-insensitively).
    pub fn claims_handle(&self, handle: &Handle) -> bool {
        self.also_known_as.iter().any(|aka| {
            aka.strip_prefix("at://")
                .is_some_and(|h| h.eq_ignore_ascii_case(handle.as_str()))
        })
    }

    /// The atproto signing key: the first `#atproto` verification method of type `Multikey`
    /// controlled by this DID.
    pub fn signing_key(&self) -> Option<PublicKey> {
        self.verification_method
            .iter()
            .filter(|vm| is_fragment(&vm.id, &self.id, "atproto"))
            .filter(|vm| vm.kind == "Multikey" && vm.controller == self.id)
            .find_map(|vm| PublicKey::from_multikey(vm.public_key_multibase.as_deref()?).ok())
    }

    /// The endpoint of the service with id `#<id>` (or `<did>#<id>`), whatever its type.
    pub fn service_endpoint(&self, id: &str) -> Option<&str> {
        self.service
            .iter()
            .find(|s| is_fragment(&s.id, &self.id, id))
            .map(|s| s.service_endpoint.as_str())
    }

    /// The PDS endpoint: the first `#atproto_pds` service of type `AtprotoPersonalDataServer`.
    pub fn pds_endpoint(&self) -> Option<&str> {
        self.service
            .iter()
            .find(|s| {
                is_fragment(&s.id, &self.id, "atproto_pds") && s.kind == "AtprotoPersonalDataServer"
            })
            .map(|s| s.service_endpoint.as_str())
    }
}
