//! Validating CAR reader over a byte slice.

use crate::block::BlockMap;
use crate::cbor::{self, CborError, Value};
use crate::cid::{self, Cid};

/// Why bytes are not a valid CAR v1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CarError {
    /// The input ended inside a varint, header or block.
    #[error("CAR truncated at byte {0}")]
    Truncated(usize),
    /// A varint longer than 9 bytes or with a value that cannot be a length.
    #[error("invalid varint at byte {0}")]
    Varint(usize),
    /// The header is not valid DAG-CBOR.
    #[error("CAR header is not valid DAG-CBOR: {0}")]
    HeaderCbor(CborError),
    /// The header lacks `version: 1` or a `roots` array of links.
    #[error("CAR header invalid: {0}")]
    Header(&'static str),
    /// A block's CID could not be parsed.
    #[error("invalid CID in block at byte {0}: {1}")]
    BlockCid(usize, String),
    /// A block whose bytes do not hash to its CID.
    #[error("block {0} does not match its CID")]
    CidMismatch(Cid),
    /// A zero-length block frame.
    #[error("empty block frame at byte {0}")]
    EmptyFrame(usize),
}

/// A parsed CAR: its roots and its blocks.
#[derive(Debug, Clone)]
pub struct Car {
    /// Header roots.
    pub roots: Vec<Cid>,
    /// Every block, CID-checked.
    pub blocks: BlockMap,
    /// The block CIDs in file order (duplicates kept).
    pub order: Vec<Cid>,
}

/// Reads a whole CAR, validating every block.
pub fn read_car(bytes: &[u8]) -> Result<Car, CarError> {
    let mut reader = CarReader::new(bytes)?;
    let roots = reader.roots().to_vec();
    let mut blocks = BlockMap::new();
    let mut order = Vec::new();
    for block in &mut reader {
        let (cid, data) = block?;
        order.push(cid);
        blocks.insert(cid, data.to_vec());
    }
    Ok(Car {
        roots,
        blocks,
        order,
    })
}

/// Iterates over the blocks of a CAR in a byte slice, yielding `(cid, bytes)`.
#[derive(Debug)]
pub struct CarReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    roots: Vec<Cid>,
    failed: bool,
}

fn read_varint(bytes: &[u8], pos: &mut usize) -> Result<u64, CarError> {
    let start = *pos;
    let mut n: u64 = 0;
    for i in 0..9 {
        let b = *bytes.get(*pos).ok_or(CarError::Truncated(start))?;
        *pos += 1;
        n |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(n);
        }
    }
    Err(CarError::Varint(start))
}

impl<'a> CarReader<'a> {
    /// Reads and checks the header.
    pub fn new(bytes: &'a [u8]) -> Result<Self, CarError> {
        let mut pos = 0;
        let len = read_varint(bytes, &mut pos)?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|&e| e <= bytes.len())
            .ok_or(CarError::Truncated(pos))?;
        let header = cbor::decode(&bytes[pos..end]).map_err(CarError::HeaderCbor)?;
        if header.get("version") != Some(&Value::Integer(1)) {
            return Err(CarError::Header("version must be 1"));
        }
        let roots = header
            .get("roots")
            .and_then(Value::as_array)
            .ok_or(CarError::Header("roots must be an array"))?
            .iter()
            .map(|r| {
                r.as_link()
                    .copied()
                    .ok_or(CarError::Header("roots must be links"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CarReader {
            bytes,
            pos: end,
            roots,
            failed: false,
        })
    }

    /// The header roots.
    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    fn next_block(&mut self) -> Result<(Cid, &'a [u8]), CarError> {
        let frame_start = self.pos;
        let len = read_varint(self.bytes, &mut self.pos)?;
        if len == 0 {
            return Err(CarError::EmptyFrame(frame_start));
        }
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| self.pos.checked_add(l))
            .filter(|&e| e <= self.bytes.len())
            .ok_or(CarError::Truncated(frame_start))?;
        let frame = &self.bytes[self.pos..end];
        self.pos = end;
        let mut cursor = std::io::Cursor::new(frame);
        let cid = Cid::read_bytes(&mut cursor)
            .map_err(|e| CarError::BlockCid(frame_start, e.to_string()))?;
        let data = &frame[cursor.position() as usize..];
        if !cid::matches(&cid, data) {
            return Err(CarError::CidMismatch(cid));
        }
        Ok((cid, data))
    }
}

impl<'a> Iterator for CarReader<'a> {
    type Item = Result<(Cid, &'a [u8]), CarError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.bytes.len() {
            return None;
        }
        let result = self.next_block();
        self.failed = result.is_err();
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::super::car_bytes;
    use super::*;

    #[test]
    fn round_trip_and_tamper_detection() {
        let data = cbor::encode(&cbor::map([("a", Value::Integer(1))]));
        let cid = cid::cid_for_cbor(&data);
        let bytes = car_bytes(&[cid], [(&cid, data.as_slice())]);
        let car = read_car(&bytes).unwrap();
        assert_eq!(car.roots, vec![cid]);
        assert_eq!(car.blocks.get(&cid), Some(data.as_slice()));

        let mut tampered = bytes.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(read_car(&tampered).unwrap_err(), CarError::CidMismatch(cid));
        assert!(matches!(
            read_car(&bytes[..bytes.len() - 3]),
            Err(CarError::Truncated(_))
        ));
    }
}
