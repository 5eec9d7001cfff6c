//! DID documents: the parts atproto uses (handle, signing key, PDS endpoint).

use serde::{Deserialize, Serialize};

use crate::crypto::{Algorithm, PublicKey};
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

    /// The atproto signing key: the first `#atproto` verification method controlled by this
    /// DID, of type `Multikey` or one of the legacy types the DID spec still accepts
    /// (`EcdsaSecp256k1VerificationKey2019`, `EcdsaSecp256r1VerificationKey2019`: the bare
    /// point in base58btc, compressed or not, as PLC directories of the @did-plc/server 0.0.1
    /// line still render it).
    pub fn signing_key(&self) -> Option<PublicKey> {
        self.verification_method
            .iter()
            .filter(|vm| is_fragment(&vm.id, &self.id, "atproto") && vm.controller == self.id)
            .find_map(|vm| {
                let multibase = vm.public_key_multibase.as_deref()?;
                let legacy = |alg| {
                    let point = bs58::decode(multibase.strip_prefix('z')?).into_vec().ok()?;
                    PublicKey::from_sec1(alg, &point).ok()
                };
                match vm.kind.as_str() {
                    "Multikey" => PublicKey::from_multikey(multibase).ok(),
                    "EcdsaSecp256k1VerificationKey2019" => legacy(Algorithm::K256),
                    "EcdsaSecp256r1VerificationKey2019" => legacy(Algorithm::P256),
                    _ => None,
                }
            })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;

    /// A document as the reference PDS's PLC directory renders it: the legacy key type, the
    /// uncompressed point.
    fn legacy_document(did: &str, kind: &str, point: &[u8]) -> DidDocument {
        serde_json::from_value(serde_json::json!({
            "@context": ["https://www.w3.org/ns/did/v1"],
            "id": did,
            "alsoKnownAs": ["at://mover.test"],
            "verificationMethod": [{
                "id": "#atproto", "type": kind, "controller": did,
                "publicKeyMultibase": format!("z{}", bs58::encode(point).into_string()),
            }],
            "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer",
                "serviceEndpoint": "http://localhost:2683"}],
        }))
        .unwrap()
    }

    #[test]
    fn legacy_verification_methods_give_the_signing_key() {
        let did = "did:plc:nodd3dvx4rqx6hit7ua4ky6v";
        for (alg, kind) in [
            (Algorithm::K256, "EcdsaSecp256k1VerificationKey2019"),
            (Algorithm::P256, "EcdsaSecp256r1VerificationKey2019"),
        ] {
            let key = Keypair::from_seed(alg, b"legacy").public_key();
            let uncompressed = match &key {
                PublicKey::K256(k) => k.to_encoded_point(false).as_bytes().to_vec(),
                PublicKey::P256(k) => k.to_encoded_point(false).as_bytes().to_vec(),
            };
            for point in [uncompressed, key.to_compressed()] {
                let doc = legacy_document(did, kind, &point);
                assert_eq!(doc.signing_key(), Some(key), "{kind}");
            }
        }
        // A key of the other curve's type does not parse as this one's.
        let k256 = Keypair::from_seed(Algorithm::K256, b"legacy").public_key();
        let doc = legacy_document(did, "SomethingElse2020", &k256.to_compressed());
        assert_eq!(doc.signing_key(), None);
    }
}
