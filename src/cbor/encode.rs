//! Canonical DAG-CBOR encoding of [`Value`].

use super::Value;

/// Encodes `value` as canonical DAG-CBOR.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    encode_into(value, &mut out);
    out
}

/// Appends the canonical DAG-CBOR encoding of `value` to `out`.
pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(0xf6),
        Value::Bool(false) => out.push(0xf4),
        Value::Bool(true) => out.push(0xf5),
        Value::Integer(i) if *i >= 0 => write_head(out, 0, *i as u64),
        // -1 - i cannot overflow for negative i: the result is in 0..=i64::MAX.
        Value::Integer(i) => write_head(out, 1, (-1 - *i) as u64),
        Value::Bytes(b) => {
            write_head(out, 2, b.len() as u64);
            out.extend_from_slice(b);
        }
        Value::String(s) => write_str(out, s),
        Value::Link(cid) => write_link(out, cid),
        Value::Array(items) => {
            write_head(out, 4, items.len() as u64);
            for item in items {
                encode_into(item, out);
            }
        }
        Value::Map(map) => {
            write_head(out, 5, map.len() as u64);
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| canonical_key_order(a.0, b.0));
            for (key, item) in entries {
                write_str(out, key);
                encode_into(item, out);
            }
        }
    }
}

/// DAG-CBOR map key order: shorter keys first, then bytewise.
pub(crate) fn canonical_key_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// Writes a CID link: tag 42 around the 0x00 multibase prefix and the binary CID.
pub(crate) fn write_link(out: &mut Vec<u8>, cid: &crate::cid::Cid) {
    out.extend_from_slice(&[0xd8, 42]);
    write_head(out, 2, cid.encoded_len() as u64 + 1);
    out.push(0);
    // Writing into a Vec cannot fail.
    let _ = cid.write_bytes(&mut *out);
}

pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    write_head(out, 3, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Writes a major type and argument in the shortest form, as DAG-CBOR requires.
pub(crate) fn write_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    if arg < 24 {
        out.push(m | arg as u8);
    } else if arg <= u8::MAX as u64 {
        out.extend_from_slice(&[m | 24, arg as u8]);
    } else if arg <= u16::MAX as u64 {
        out.push(m | 25);
        out.extend_from_slice(&(arg as u16).to_be_bytes());
    } else if arg <= u32::MAX as u64 {
        out.push(m | 26);
        out.extend_from_slice(&(arg as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&arg.to_be_bytes());
    }
}
