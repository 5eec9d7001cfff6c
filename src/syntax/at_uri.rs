//! AT-URIs (`at://authority/collection/rkey`) and at-identifiers (a handle or a DID).

use super::{Did, Handle, Nsid, RecordKey, SyntaxError, newtype::string_newtype};

/// A handle or a DID, as accepted by `repo` parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AtIdentifier {
    /// A DID.
    Did(Did),
    /// A handle.
    Handle(Handle),
}

impl AtIdentifier {
    /// Parses `s` as a DID if it starts with `did:`, else as a handle.
    pub fn parse(s: &str) -> Result<Self, SyntaxError> {
        if s.starts_with("did:") {
            Did::parse(s).map(AtIdentifier::Did)
        } else {
            Handle::parse(s).map(AtIdentifier::Handle)
        }
        .map_err(|_| SyntaxError::AtIdentifier(s.to_owned()))
    }
}

impl std::fmt::Display for AtIdentifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AtIdentifier::Did(d) => d.fmt(f),
            AtIdentifier::Handle(h) => h.fmt(f),
        }
    }
}

impl std::str::FromStr for AtIdentifier {
    type Err = SyntaxError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A valid AT-URI in the lexicon form: no query, fragment or trailing slash; max 8 KB.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AtUri(String);

string_newtype!(AtUri);

impl AtUri {
    /// Validates `s` as an AT-URI.
    pub fn parse(s: &str) -> Result<Self, SyntaxError> {
        let err = || SyntaxError::AtUri(s.to_owned());
        if s.len() > 8192 {
            return Err(err());
        }
        let rest = s.strip_prefix("at://").ok_or_else(err)?;
        let mut parts = rest.split('/');
        AtIdentifier::parse(parts.next().unwrap_or_default()).map_err(|_| err())?;
        if let Some(collection) = parts.next() {
            Nsid::parse(collection).map_err(|_| err())?;
        }
        if let Some(rkey) = parts.next() {
            RecordKey::parse(rkey).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(AtUri(s.to_owned()))
    }

    /// Builds the URI of a record.
    pub fn for_record(did: &Did, collection: &Nsid, rkey: &RecordKey) -> AtUri {
        AtUri(format!("at://{did}/{collection}/{rkey}"))
    }

    fn part(&self, i: usize) -> Option<&str> {
        self.0[5..].split('/').nth(i)
    }

    /// The authority (handle or DID).
    pub fn authority(&self) -> AtIdentifier {
        // Validated in `parse`.
        AtIdentifier::parse(self.part(0).unwrap_or_default()).expect("validated authority")
    }

    /// The collection, if the URI has one.
    pub fn collection(&self) -> Option<Nsid> {
        self.part(1).and_then(|c| Nsid::parse(c).ok())
    }

    /// The record key, if the URI has one.
    pub fn rkey(&self) -> Option<RecordKey> {
        self.part(2).and_then(|r| RecordKey::parse(r).ok())
    }
}
