//! MST keys (`collection/rkey`) and their heights.

use sha2::{Digest, Sha256};

use super::MstError;

/// Longest MST key accepted, in bytes (the TypeScript and Go implementations' limit).
pub const MAX_KEY_LEN: usize = 1024;

/// Checks that `key` is `collection/rkey`: exactly one `/`, both parts non-empty, only
/// `A-Za-z0-9_~-:.`, the rkey not `.` or `..`, at most [`MAX_KEY_LEN`] bytes. This follows the
/// spec, which is wider than arroba's (`~` allowed) and stricter (`.` and `..` refused).
pub fn validate_key(key: &str) -> Result<(), MstError> {
    let err = || MstError::InvalidKey(key.to_owned());
    if key.len() > MAX_KEY_LEN {
        return Err(err());
    }
    let (collection, rkey) = key.split_once('/').ok_or_else(err)?;
    let valid_part = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_~-:.".contains(&b))
    };
    if !valid_part(collection) || !valid_part(rkey) || rkey == "." || rkey == ".." {
        return Err(err());
    }
    Ok(())
}

/// The layer of `key`: leading zero bits of SHA-256(key), counted in pairs (fanout 4).
pub fn height_for_key(key: &[u8]) -> u32 {
    let hash = Sha256::digest(key);
    let mut zeros = 0;
    for &byte in hash.iter() {
        if byte == 0 {
            zeros += 8;
            continue;
        }
        zeros += byte.leading_zeros();
        break;
    }
    zeros / 2
}

/// Length of the common prefix of two byte strings.
pub fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_spec_not_arroba() {
        assert!(validate_key("com.example.record/3jqfcqzm3fo2j").is_ok());
        assert!(validate_key("com.example.record/a~b").is_ok());
        for bad in [
            "",
            "asdf",
            "nested/collection/asdf",
            "coll/",
            "/rkey",
            "coll/.",
            "coll/..",
            "coll/$",
            "coll/a b",
            "coll/é",
        ] {
            assert!(validate_key(bad).is_err(), "{bad}");
        }
        assert!(validate_key(&format!("c/{}", "a".repeat(1022))).is_ok());
        assert!(validate_key(&format!("c/{}", "a".repeat(1023))).is_err());
    }
}
