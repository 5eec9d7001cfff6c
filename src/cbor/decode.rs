//! Strict DAG-CBOR decoding into [`Value`].

use std::collections::BTreeMap;

use super::{CborError, Value, encode::canonical_key_order};
use crate::cid::Cid;

/// The deepest nesting of arrays and maps the data model allows, in CBOR and in JSON alike: a
/// record is refused on write if reading it back would fail.
pub const MAX_DEPTH: usize = 32;

/// The longest map key the data model allows, in bytes (CBOR and JSON alike).
pub const MAX_KEY_LEN: usize = 8192;

/// The most items one array or map may hold (CBOR and JSON alike).
pub const MAX_CONTAINER_LEN: u64 = 131_072;

/// Decoding limits; the defaults are the data-validation guide's suggestions (spec digest §13).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest nesting of arrays and maps.
    pub max_depth: usize,
    /// Most items in one array or map.
    pub max_container_len: u64,
    /// Longest map key, in bytes.
    pub max_key_len: usize,
    /// Longest CID, in bytes.
    pub max_cid_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: MAX_DEPTH,
            max_container_len: MAX_CONTAINER_LEN,
            max_key_len: MAX_KEY_LEN,
            max_cid_len: 100,
        }
    }
}

/// Decodes exactly one canonical DAG-CBOR value; trailing bytes are an error.
pub fn decode(bytes: &[u8]) -> Result<Value, CborError> {
    decode_with_limits(bytes, Limits::default())
}

/// Like [`decode`], with explicit limits.
pub fn decode_with_limits(bytes: &[u8], limits: Limits) -> Result<Value, CborError> {
    let (value, rest) = decode_first_with(bytes, limits)?;
    if !rest.is_empty() {
        return Err(CborError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

/// Decodes the first value and returns it with the bytes after it (firehose frames are two values
/// back to back).
pub fn decode_first(bytes: &[u8]) -> Result<(Value, &[u8]), CborError> {
    decode_first_with(bytes, Limits::default())
}

fn decode_first_with(bytes: &[u8], limits: Limits) -> Result<(Value, &[u8]), CborError> {
    let mut d = Decoder {
        bytes,
        pos: 0,
        limits,
    };
    let value = d.value(0)?;
    Ok((value, &bytes[d.pos..]))
}

struct Decoder<'a> {
    bytes: &'a [u8],
    pos: usize,
    limits: Limits,
}

impl<'a> Decoder<'a> {
    fn byte(&mut self) -> Result<u8, CborError> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or(CborError::Truncated(self.pos))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], CborError> {
        let remaining = (self.bytes.len() - self.pos) as u64;
        if n > remaining {
            return Err(CborError::LengthExceedsInput(n));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    /// Reads a head; returns (major type, additional info, argument).
    fn head(&mut self) -> Result<(u8, u8, u64), CborError> {
        let at = self.pos;
        let initial = self.byte()?;
        let major = initial >> 5;
        let info = initial & 0x1f;
        let arg = match info {
            0..=23 => info as u64,
            24 => {
                let v = self.byte()? as u64;
                if v < 24 && major != 7 {
                    return Err(CborError::NonCanonicalInt(at));
                }
                v
            }
            25 => self.fixed::<2>(at, 0xff)?,
            26 => self.fixed::<4>(at, 0xffff)?,
            27 => self.fixed::<8>(at, 0xffff_ffff)?,
            28..=30 => return Err(CborError::Reserved(info, at)),
            _ => {
                return Err(if major == 7 {
                    CborError::UnsupportedSimple(info, at)
                } else {
                    CborError::IndefiniteLength(at)
                });
            }
        };
        Ok((major, info, arg))
    }

    fn fixed<const N: usize>(&mut self, at: usize, smaller_max: u64) -> Result<u64, CborError> {
        let raw = self.take(N as u64)?;
        let mut buf = [0u8; 8];
        buf[8 - N..].copy_from_slice(raw);
        let v = u64::from_be_bytes(buf);
        // Major type 7 with these widths are floats, rejected by the caller; for everything
        // else the value must not fit a shorter form.
        if v <= smaller_max && self.bytes[at] >> 5 != 7 {
            return Err(CborError::NonCanonicalInt(at));
        }
        Ok(v)
    }

    fn value(&mut self, depth: usize) -> Result<Value, CborError> {
        let at = self.pos;
        let (major, info, arg) = self.head()?;
        match major {
            0 => i64::try_from(arg)
                .map(Value::Integer)
                .map_err(|_| CborError::IntegerOutOfRange(at)),
            1 => i64::try_from(arg)
                .map(|n| Value::Integer(-1 - n))
                .map_err(|_| CborError::IntegerOutOfRange(at)),
            2 => Ok(Value::Bytes(self.take(arg)?.to_vec())),
            3 => self.text(arg, at).map(Value::String),
            4 => {
                self.check_container(arg, depth)?;
                let mut items = Vec::with_capacity(arg.min(1024) as usize);
                for _ in 0..arg {
                    items.push(self.value(depth + 1)?);
                }
                Ok(Value::Array(items))
            }
            5 => {
                self.check_container(arg, depth)?;
                let mut map = BTreeMap::new();
                let mut previous: Option<String> = None;
                for _ in 0..arg {
                    let key_at = self.pos;
                    let (kmajor, _, klen) = self.head()?;
                    if kmajor != 3 {
                        return Err(CborError::NonStringKey(key_at));
                    }
                    if klen > self.limits.max_key_len as u64 {
                        return Err(CborError::KeyTooLong(klen as usize));
                    }
                    let key = self.text(klen, key_at)?;
                    if let Some(prev) = &previous {
                        if canonical_key_order(prev, &key) != std::cmp::Ordering::Less {
                            return Err(CborError::KeyOrder(key));
                        }
                    }
                    let item = self.value(depth + 1)?;
                    map.insert(key.clone(), item);
                    previous = Some(key);
                }
                Ok(Value::Map(map))
            }
            6 => {
                if arg != 42 {
                    return Err(CborError::UnsupportedTag(arg));
                }
                let inner_at = self.pos;
                let (imajor, _, len) = self.head()?;
                if imajor != 2 {
                    return Err(CborError::InvalidCid(format!(
                        "tag 42 content at byte {inner_at} is not bytes"
                    )));
                }
                if len as usize > self.limits.max_cid_len + 1 {
                    return Err(CborError::InvalidCid(format!("{len} bytes is too long")));
                }
                let raw = self.take(len)?;
                match raw.split_first() {
                    Some((0, cid_bytes)) => Cid::try_from(cid_bytes)
                        .map(Value::Link)
                        .map_err(|e| CborError::InvalidCid(e.to_string())),
                    _ => Err(CborError::InvalidCid(
                        "missing the 0x00 multibase prefix".into(),
                    )),
                }
            }
            _ => match info {
                20 => Ok(Value::Bool(false)),
                21 => Ok(Value::Bool(true)),
                22 => Ok(Value::Null),
                _ => Err(CborError::UnsupportedSimple(info, at)),
            },
        }
    }

    fn check_container(&self, len: u64, depth: usize) -> Result<(), CborError> {
        if depth >= self.limits.max_depth {
            return Err(CborError::TooDeep(self.limits.max_depth));
        }
        if len > self.limits.max_container_len {
            return Err(CborError::TooLong(len));
        }
        // Every item takes at least one byte, so a longer declared length is a lie.
        if len > (self.bytes.len() - self.pos) as u64 {
            return Err(CborError::LengthExceedsInput(len));
        }
        Ok(())
    }

    fn text(&mut self, len: u64, at: usize) -> Result<String, CborError> {
        let raw = self.take(len)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| CborError::InvalidUtf8(at))
    }
}
