//! The atproto data model and its binary form, DAG-CBOR (DRISL).
//!
//! This module owns [`Value`] (the IPLD-like value every record, commit, MST node and event is made
//! of), its strict canonical CBOR encoder and decoder, and its JSON form (`$link`, `$bytes`, blob
//! objects). It does no I/O: decoders take byte slices and encoders return bytes.
//!
//! The decoder is deliberately stricter than a general DAG-CBOR reader: it rejects floats,
//! indefinite lengths, non-shortest integers, unsorted or duplicate map keys, tags other than 42,
//! and anything past the limits in [`Limits`] (spec digest §13), so that bytes which decode also
//! re-encode to themselves. CIDs themselves live in [`crate::cid`]; CAR framing in [`crate::car`].

mod decode;
pub(crate) mod encode;
mod error;
mod json;
mod value;

pub use decode::{
    Limits, MAX_CONTAINER_LEN, MAX_DEPTH, MAX_KEY_LEN, decode, decode_first, decode_with_limits,
};
pub use encode::{encode, encode_into};
pub use error::CborError;
pub use json::{JsonError, from_json, from_json_str, from_json_within, to_json, to_json_string};
pub use value::{Value, map};
