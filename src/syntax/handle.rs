//! Handles: DNS names used as account names (https://atproto.com/specs/handle).

use super::{SyntaxError, newtype::string_newtype};

/// The sentinel handle for "no valid handle".
pub const INVALID_HANDLE: &str = "handle.invalid";

/// A syntactically valid handle, normalised to lower case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Handle(String);

string_newtype!(Handle);

impl Handle {
    /// Validates `s` as a handle and lower-cases it.
    pub fn parse(s: &str) -> Result<Self, SyntaxError> {
        if is_valid(s) {
            Ok(Handle(s.to_ascii_lowercase()))
        } else {
            Err(SyntaxError::Handle(s.to_owned()))
        }
    }

    /// Whether this handle ends in `.<domain>` (or is the domain itself when `domain` has no
    /// leading dot); used to check service handle domains.
    pub fn is_under(&self, domain: &str) -> bool {
        let domain = domain.trim_start_matches('.').to_ascii_lowercase();
        self.0
            .strip_suffix(domain.as_str())
            .is_some_and(|prefix| prefix.ends_with('.'))
    }
}

fn is_valid(s: &str) -> bool {
    if s.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = s.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| is_label(l))
        && labels
            .last()
            .is_some_and(|tld| tld.starts_with(|c: char| c.is_ascii_alphabetic()))
}

/// A DNS label: 1–63 ASCII letters, digits and hyphens, no hyphen at either end.
pub(crate) fn is_label(l: &str) -> bool {
    (1..=63).contains(&l.len())
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}
