//! Lexicons (https://atproto.com/specs/lexicon): loading schema documents and validating data
//! against them.
//!
//! [`Lexicons`] holds documents by NSID; [`Lexicons::bundled`] has the `com.atproto.*` and
//! `app.bsky.*` schemas vendored in `src/lexicon/schemas` (the server never reads anything
//! outside the binary). [`Lexicons::validate_record`] checks a record the way the spec's
//! "validate" flag asks; [`Lexicons::validate_object`] checks XRPC inputs and outputs against a
//! method's schema. Validation is permissive about formats (any syntactically valid DID passes
//! `did`), counts string lengths in UTF-8 bytes and graphemes as the spec says, and ignores
//! unknown fields. The XRPC layer decides when to validate.

mod registry;
mod validate;

pub use registry::{LexiconDocError, Lexicons};
pub use validate::{LexiconError, Validation};
