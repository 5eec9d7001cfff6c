//! Errors from decoding DAG-CBOR.

/// Why a byte string is not canonical atproto DAG-CBOR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    /// The input ended in the middle of a value.
    #[error("unexpected end of CBOR input at byte {0}")]
    Truncated(usize),
    /// Bytes remained after the top-level value.
    #[error("{0} trailing bytes after the CBOR value")]
    TrailingBytes(usize),
    /// A float, `undefined` or other simple value atproto does not allow.
    #[error("unsupported CBOR simple value or float (additional info {0}) at byte {1}")]
    UnsupportedSimple(u8, usize),
    /// An indefinite-length string, array or map.
    #[error("indefinite-length item at byte {0}")]
    IndefiniteLength(usize),
    /// An integer or length not written in its shortest form.
    #[error("non-canonical (not shortest) integer or length at byte {0}")]
    NonCanonicalInt(usize),
    /// A reserved additional-information value (28–30).
    #[error("reserved CBOR additional information {0} at byte {1}")]
    Reserved(u8, usize),
    /// An integer outside the signed 64-bit range.
    #[error("integer out of the signed 64-bit range at byte {0}")]
    IntegerOutOfRange(usize),
    /// A text string that is not valid UTF-8.
    #[error("text string is not valid UTF-8 at byte {0}")]
    InvalidUtf8(usize),
    /// A map key that is not a text string.
    #[error("map key is not a text string at byte {0}")]
    NonStringKey(usize),
    /// Map keys out of canonical order, or repeated.
    #[error("map keys not in canonical order or duplicated: {0:?}")]
    KeyOrder(String),
    /// A tag other than 42.
    #[error("CBOR tag {0} is not allowed (only 42, CID links)")]
    UnsupportedTag(u64),
    /// Tag 42 around something that is not a valid CID.
    #[error("tag 42 does not wrap a valid CID: {0}")]
    InvalidCid(String),
    /// Nesting deeper than the limit.
    #[error("nesting deeper than {0} levels")]
    TooDeep(usize),
    /// An array or map longer than the limit.
    #[error("container with {0} items exceeds the limit")]
    TooLong(u64),
    /// A map key longer than the limit.
    #[error("map key of {0} bytes exceeds the limit")]
    KeyTooLong(usize),
    /// A declared length larger than the remaining input.
    #[error("declared length {0} exceeds the input")]
    LengthExceedsInput(u64),
}
