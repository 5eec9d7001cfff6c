//! Record keys: the last segment of a record's path (https://atproto.com/specs/record-key).

use super::{SyntaxError, newtype::string_newtype};

/// A syntactically valid record key: 1–512 of `A-Za-z0-9._:~-`, never `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordKey(String);

string_newtype!(RecordKey);

impl RecordKey {
    /// Validates `s` as a record key.
    pub fn parse(s: &str) -> Result<Self, SyntaxError> {
        if is_valid(s) {
            Ok(RecordKey(s.to_owned()))
        } else {
            Err(SyntaxError::RecordKey(s.to_owned()))
        }
    }
}

pub(crate) fn is_valid(s: &str) -> bool {
    (1..=512).contains(&s.len())
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:~-".contains(&b))
}
