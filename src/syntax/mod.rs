//! atproto identifier syntax: typed newtypes that cannot hold an invalid value.
//!
//! [`Did`], [`Handle`], [`Nsid`], [`RecordKey`], [`AtUri`] and [`AtIdentifier`] validate on
//! construction (`parse` / `FromStr` / serde), so code above this layer never re-checks them.
//! Formats that are only checked, never carried (datetime, language tag, CID, URI), have
//! `is_valid_*` predicates. TIDs live in [`crate::tid`]; MST keys in [`crate::mst`].
//! Rules follow the spec pages summarised in the spec digest §2 and the interop vectors.

mod at_uri;
mod datetime;
mod did;
mod error;
mod handle;
mod language;
mod newtype;
mod nsid;
mod record_key;

pub use at_uri::{AtIdentifier, AtUri};
pub use datetime::{format_datetime, is_valid_datetime};
pub use did::Did;
pub use error::SyntaxError;
pub use handle::{Handle, INVALID_HANDLE};
pub use language::is_valid_language;
pub use nsid::Nsid;
pub use record_key::RecordKey;

/// Whether `s` has the syntax of a CID string (the lexicon `cid` format): 8–256 characters of
/// `A-Za-z0-9+=`, and not a CIDv0 (`Qm…`). This is a syntax check only; [`crate::cid::parse_cid`]
/// decodes.
pub fn is_valid_cid(s: &str) -> bool {
    (8..=256).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'=')
        && !s.starts_with("Qm")
}

/// Whether `s` is a URI as the lexicon `uri` format means it: a scheme, a colon, and at least
/// one more non-whitespace character; at most 8 KB.
pub fn is_valid_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    s.len() <= 8192
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !rest.chars().any(char::is_whitespace)
}
