//! Namespaced identifiers: reversed domain authority plus a name (https://atproto.com/specs/nsid).

use super::{SyntaxError, handle::is_label, newtype::string_newtype};

/// A syntactically valid NSID such as `app.bsky.feed.post`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nsid(String);

string_newtype!(Nsid);

impl Nsid {
    /// Validates `s` as an NSID (max 317 chars, at least three segments).
    pub fn parse(s: &str) -> Result<Self, SyntaxError> {
        if is_valid(s) {
            Ok(Nsid(s.to_owned()))
        } else {
            Err(SyntaxError::Nsid(s.to_owned()))
        }
    }

    /// The last segment, e.g. `post`.
    pub fn name(&self) -> &str {
        self.0.rsplit('.').next().unwrap_or_default()
    }

    /// The reversed-domain authority, e.g. `app.bsky.feed`.
    pub fn authority(&self) -> &str {
        self.0.rsplit_once('.').map_or("", |(a, _)| a)
    }
}

fn is_valid(s: &str) -> bool {
    let Some((authority, name)) = s.rsplit_once('.') else {
        return false;
    };
    let segments: Vec<&str> = authority.split('.').collect();
    s.len() <= 317
        && segments.len() >= 2
        && segments.iter().all(|l| is_label(l))
        && segments[0].starts_with(|c: char| c.is_ascii_alphabetic())
        && (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
}
