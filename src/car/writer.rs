//! Streaming CAR writer.

use std::io::Write;

use super::write_varint;
use crate::cbor::{Value, encode, map};
use crate::cid::Cid;

/// The CAR header frame (varint length + `{roots, version: 1}`).
pub fn encode_header(roots: &[Cid]) -> Vec<u8> {
    let header = encode(&map([
        (
            "roots",
            Value::Array(roots.iter().map(|c| Value::Link(*c)).collect()),
        ),
        ("version", Value::Integer(1)),
    ]));
    let mut out = Vec::with_capacity(header.len() + 2);
    write_varint(&mut out, header.len() as u64);
    out.extend(header);
    out
}

/// One block frame (varint length + CID bytes + data), appended to `out`.
pub fn encode_block_frame(out: &mut Vec<u8>, cid: &Cid, data: &[u8]) {
    let cid_len = cid.encoded_len();
    write_varint(out, (cid_len + data.len()) as u64);
    // Writing into a Vec cannot fail.
    let _ = cid.write_bytes(&mut *out);
    out.extend_from_slice(data);
}

/// A whole CAR in memory, for small files (firehose slices, proofs).
pub fn car_bytes<'a>(
    roots: &[Cid],
    blocks: impl IntoIterator<Item = (&'a Cid, &'a [u8])>,
) -> Vec<u8> {
    let mut out = encode_header(roots);
    for (cid, data) in blocks {
        encode_block_frame(&mut out, cid, data);
    }
    out
}

/// Writes a CAR to any `Write` as blocks arrive; it buffers at most one block.
#[derive(Debug)]
pub struct CarWriter<W: Write> {
    out: W,
    frame: Vec<u8>,
    bytes_written: u64,
}

impl<W: Write> CarWriter<W> {
    /// Starts a CAR with `roots`, writing the header immediately.
    pub fn new(mut out: W, roots: &[Cid]) -> std::io::Result<Self> {
        let header = encode_header(roots);
        out.write_all(&header)?;
        Ok(CarWriter {
            out,
            frame: Vec::new(),
            bytes_written: header.len() as u64,
        })
    }

    /// Writes one block.
    pub fn write_block(&mut self, cid: &Cid, data: &[u8]) -> std::io::Result<()> {
        self.frame.clear();
        encode_block_frame(&mut self.frame, cid, data);
        self.out.write_all(&self.frame)?;
        self.bytes_written += self.frame.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}
