//! DIDs: `did:<method>:<identifier>` (https://atproto.com/specs/did).

use super::{SyntaxError, newtype::string_newtype};

/// A syntactically valid DID. Whether its method is supported is decided in `identity`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Did(String);

string_newtype!(Did);

impl Did {
    /// Validates `s` as a DID (max 2048 chars; lower-case method; no trailing `:` or `%`).
    pub fn parse(s: &str) -> Result<Self, SyntaxError> {
        if is_valid(s) {
            Ok(Did(s.to_owned()))
        } else {
            Err(SyntaxError::Did(s.to_owned()))
        }
    }

    /// The method, e.g. `plc` or `web`.
    pub fn method(&self) -> &str {
        self.0[4..].split(':').next().unwrap_or_default()
    }

    /// The method-specific identifier after `did:<method>:`.
    pub fn identifier(&self) -> &str {
        let method_len = self.method().len();
        &self.0[4 + method_len + 1..]
    }
}

fn is_valid(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("did:") else {
        return false;
    };
    let Some((method, ident)) = rest.split_once(':') else {
        return false;
    };
    s.len() <= 2048
        && !method.is_empty()
        && method.bytes().all(|b| b.is_ascii_lowercase())
        && !ident.is_empty()
        && ident
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:%-".contains(&b))
        && !ident.ends_with([':', '%'])
}
