//! Validating CAR readers: [`CarReader`] over a byte slice, [`CarStream`] over any
//! [`std::io::Read`] one block at a time.

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
    /// A frame longer than the reader accepts (a block is at most a few MB in a repo).
    #[error("block frame at byte {0} is larger than {1} bytes")]
    FrameTooLarge(usize, usize),
    /// The underlying reader failed.
    #[error("could not read the CAR: {0}")]
    Read(String),
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

/// The roots of a CAR header (`{version: 1, roots: [links]}`).
fn parse_header(bytes: &[u8]) -> Result<Vec<Cid>, CarError> {
    let header = cbor::decode(bytes).map_err(CarError::HeaderCbor)?;
    if header.get("version") != Some(&Value::Integer(1)) {
        return Err(CarError::Header("version must be 1"));
    }
    header
        .get("roots")
        .and_then(Value::as_array)
        .ok_or(CarError::Header("roots must be an array"))?
        .iter()
        .map(|r| {
            r.as_link()
                .copied()
                .ok_or(CarError::Header("roots must be links"))
        })
        .collect()
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
        let roots = parse_header(&bytes[pos..end])?;
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

/// One block read by [`CarStream`]: its CID, its bytes, and where the bytes start in the stream.
#[derive(Debug, Clone)]
pub struct StreamedBlock {
    /// The block's CID (checked against the bytes).
    pub cid: Cid,
    /// Byte offset of the block's data (after its CID) from the start of the stream.
    pub offset: u64,
    /// The block's bytes.
    pub data: Vec<u8>,
}

/// Reads a CAR v1 from a byte stream one block at a time, checking each block's CID, so a CAR
/// of any size is read in the memory of its largest block. Each block comes with its offset, so
/// a caller that kept the bytes (a spooled file) can read blocks back later without holding them.
#[derive(Debug)]
pub struct CarStream<R> {
    reader: R,
    pos: u64,
    roots: Vec<Cid>,
    max_frame: usize,
    failed: bool,
}

impl<R: std::io::Read> CarStream<R> {
    /// Reads and checks the header; frames (and the header) longer than `max_frame` bytes are
    /// refused.
    pub fn new(mut reader: R, max_frame: usize) -> Result<Self, CarError> {
        let mut pos = 0;
        let len = stream_varint(&mut reader, &mut pos)?.ok_or(CarError::Truncated(0))?;
        let header = read_frame(&mut reader, &mut pos, len, max_frame, 0)?;
        let roots = parse_header(&header)?;
        Ok(CarStream {
            reader,
            pos,
            roots,
            max_frame,
            failed: false,
        })
    }

    /// The header roots.
    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    fn next_block(&mut self) -> Result<Option<StreamedBlock>, CarError> {
        let frame_start = self.pos as usize;
        let Some(len) = stream_varint(&mut self.reader, &mut self.pos)? else {
            return Ok(None);
        };
        if len == 0 {
            return Err(CarError::EmptyFrame(frame_start));
        }
        let frame_data_start = self.pos;
        let frame = read_frame(
            &mut self.reader,
            &mut self.pos,
            len,
            self.max_frame,
            frame_start,
        )?;
        let mut cursor = std::io::Cursor::new(frame.as_slice());
        let cid = Cid::read_bytes(&mut cursor)
            .map_err(|e| CarError::BlockCid(frame_start, e.to_string()))?;
        let cid_len = cursor.position() as usize;
        let data = frame[cid_len..].to_vec();
        if !cid::matches(&cid, &data) {
            return Err(CarError::CidMismatch(cid));
        }
        Ok(Some(StreamedBlock {
            cid,
            offset: frame_data_start + cid_len as u64,
            data,
        }))
    }
}

impl<R: std::io::Read> Iterator for CarStream<R> {
    type Item = Result<StreamedBlock, CarError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let result = self.next_block().transpose();
        self.failed = matches!(result, Some(Err(_)));
        result
    }
}

/// A varint from a stream; None at a clean end of input (no byte read).
fn stream_varint(reader: &mut impl std::io::Read, pos: &mut u64) -> Result<Option<u64>, CarError> {
    let start = *pos as usize;
    let mut n: u64 = 0;
    for i in 0..9 {
        let mut byte = [0u8];
        let read = loop {
            match reader.read(&mut byte) {
                Ok(r) => break r,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CarError::Read(e.to_string())),
            }
        };
        if read == 0 {
            return if i == 0 {
                Ok(None)
            } else {
                Err(CarError::Truncated(start))
            };
        }
        *pos += 1;
        n |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            return Ok(Some(n));
        }
    }
    Err(CarError::Varint(start))
}

fn read_frame(
    reader: &mut impl std::io::Read,
    pos: &mut u64,
    len: u64,
    max_frame: usize,
    frame_start: usize,
) -> Result<Vec<u8>, CarError> {
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= max_frame)
        .ok_or(CarError::FrameTooLarge(frame_start, max_frame))?;
    let mut frame = vec![0u8; len];
    reader.read_exact(&mut frame).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => CarError::Truncated(frame_start),
        _ => CarError::Read(e.to_string()),
    })?;
    *pos += len as u64;
    Ok(frame)
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

    #[test]
    fn the_stream_reader_agrees_with_the_slice_reader_and_reports_offsets() {
        let blocks: Vec<Vec<u8>> = (0..5)
            .map(|i| cbor::encode(&cbor::map([("i", Value::Integer(i))])))
            .collect();
        let cids: Vec<Cid> = blocks.iter().map(|b| cid::cid_for_cbor(b)).collect();
        let bytes = car_bytes(
            &cids[..1],
            cids.iter().zip(blocks.iter().map(Vec::as_slice)),
        );
        let stream = CarStream::new(bytes.as_slice(), 1024).unwrap();
        assert_eq!(stream.roots(), &cids[..1]);
        let read: Vec<StreamedBlock> = stream.collect::<Result<_, _>>().unwrap();
        assert_eq!(read.len(), 5);
        for (block, (cid, data)) in read.iter().zip(cids.iter().zip(&blocks)) {
            assert_eq!(&block.cid, cid);
            assert_eq!(&block.data, data);
            let at = block.offset as usize;
            assert_eq!(&bytes[at..at + data.len()], data.as_slice());
        }

        let mut tampered = bytes.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let errors: Vec<_> = CarStream::new(tampered.as_slice(), 1024)
            .unwrap()
            .filter_map(Result::err)
            .collect();
        assert_eq!(errors, vec![CarError::CidMismatch(cids[4])]);
        let cut = CarStream::new(&bytes[..bytes.len() - 3], 1024).unwrap();
        assert!(matches!(cut.last(), Some(Err(CarError::Truncated(_)))));
        let small = CarStream::new(bytes.as_slice(), 8).unwrap_err();
        assert!(matches!(small, CarError::FrameTooLarge(0, 8)), "{small:?}");
        assert!(matches!(
            CarStream::new(&b""[..], 1024),
            Err(CarError::Truncated(0))
        ));
    }
}
