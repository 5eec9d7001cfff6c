//! CAR v1 files (https://ipld.io/specs/transport/car/carv1/): the framing of repo exports,
//! firehose block slices and proofs.
//!
//! [`CarWriter`] streams: the header and each block go out as they are written, so memory does not
//! grow with the repo. [`read_car`] / [`CarReader`] take a byte slice and [`CarStream`] any reader
//! (one block in memory at a time); all check every block's CID against its bytes, and turn
//! malformed input into a [`CarError`], never a panic. Varints and
//! framing are written here (they are a few lines); blocks are opaque bytes to this module.

mod reader;
mod writer;

pub use reader::{Car, CarError, CarReader, CarStream, StreamedBlock, read_car};
pub use writer::{CarWriter, car_bytes, encode_block_frame, encode_header};

/// Appends an unsigned LEB128 varint.
pub(crate) fn write_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}
