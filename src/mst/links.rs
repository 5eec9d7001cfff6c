//! [`NodeLinks`]: what a stored node points at (its subtrees, and its records with their
//! keys), read straight from the node's bytes without checking keys or building a
//! [`super::Mst`]. For walks that only follow the tree, such as a whole-repo export, where
//! decoding every node into a tree was most of the work.

use super::MstError;
use crate::cid::{self, Cid};

/// The links of one node. Subtree CIDs are listed once, in [`NodeLinks::children`]; the
/// entries only say where they go, which keeps a walk of a large tree small in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLinks {
    /// Whether there is a subtree before the first key.
    pub has_left: bool,
    /// The entries, in key order.
    pub entries: Vec<LinkEntry>,
    /// The subtrees, in order: the left one, then each entry's.
    pub children: Vec<Cid>,
}

/// One entry of a node: its key, its record, and whether a subtree follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEntry {
    /// The record's path (`collection/rkey`), uncompressed.
    pub key: String,
    /// The record's CID.
    pub record: Cid,
    /// Whether a subtree lies between this key and the next.
    pub has_right: bool,
}

impl NodeLinks {
    /// Reads node `cid`'s links from `bytes`, which must be a node in its canonical form
    /// (`{e: [{k, p, t, v}…], l}`, the only form a valid node has). Keys are uncompressed but
    /// not checked: this is for nodes already stored, which were checked when they were written.
    pub fn parse(cid: Cid, bytes: &[u8]) -> Result<NodeLinks, MstError> {
        let invalid = |why| MstError::InvalidNode(cid, why);
        let mut r = Reader { bytes, pos: 0 };
        if r.head(5).ok_or(invalid("not a map of two keys"))? != 2 || !r.text("e") {
            return Err(invalid("not a map of two keys"));
        }
        let count = r.head(4).ok_or(invalid("e is not an array"))?;
        let mut entries: Vec<LinkEntry> =
            Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(1024));
        let mut children = Vec::new();
        for _ in 0..count {
            let previous = entries.last().map_or("", |e| e.key.as_str());
            let shape = (|| {
                if r.head(5)? != 4 || !r.text("k") {
                    return None;
                }
                let suffix_len = usize::try_from(r.head(2)?).ok()?;
                let suffix = r.take(suffix_len)?;
                if !r.text("p") {
                    return None;
                }
                let prefix = previous
                    .as_bytes()
                    .get(..usize::try_from(r.head(0)?).ok()?)?;
                let mut key = Vec::with_capacity(prefix.len() + suffix.len());
                key.extend_from_slice(prefix);
                key.extend_from_slice(suffix);
                let key = String::from_utf8(key).ok()?;
                if !r.text("t") {
                    return None;
                }
                let right = r.link_or_null()?;
                if !r.text("v") {
                    return None;
                }
                let record = r.link()?;
                Some((
                    LinkEntry {
                        key,
                        record,
                        has_right: right.is_some(),
                    },
                    right,
                ))
            })();
            let (entry, right) = shape.ok_or(invalid("entry is not {k, p, t, v}"))?;
            entries.push(entry);
            children.extend(right);
        }
        if !r.text("l") {
            return Err(invalid("node has no l after e"));
        }
        let left = r
            .link_or_null()
            .ok_or(invalid("l is neither a CID nor null"))?;
        if r.pos != bytes.len() {
            return Err(invalid("bytes after the node"));
        }
        if let Some(left) = left {
            children.insert(0, left);
        }
        Ok(NodeLinks {
            has_left: left.is_some(),
            entries,
            children,
        })
    }
}

/// A cursor over canonical DAG-CBOR, reading only the few shapes a node has.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    /// The argument of a head of major type `major`.
    fn head(&mut self, major: u8) -> Option<u64> {
        let first = *self.take(1)?.first()?;
        if first >> 5 != major {
            return None;
        }
        match first & 0x1f {
            n @ 0..24 => Some(u64::from(n)),
            24 => self.take(1).map(|b| u64::from(b[0])),
            25 => self
                .take(2)
                .map(|b| u64::from(u16::from_be_bytes([b[0], b[1]]))),
            26 => self
                .take(4)
                .map(|b| u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))),
            27 => self
                .take(8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes),
            _ => None,
        }
    }

    /// Whether the next item is the text string `s` (consumed if so).
    fn text(&mut self, s: &str) -> bool {
        let start = self.pos;
        let found =
            self.head(3) == Some(s.len() as u64) && self.take(s.len()) == Some(s.as_bytes());
        if !found {
            self.pos = start;
        }
        found
    }

    /// A CID link: tag 42 around a byte string of a zero byte and the CID.
    fn link(&mut self) -> Option<Cid> {
        if self.take(2)? != [0xd8, 0x2a] {
            return None;
        }
        let len = usize::try_from(self.head(2)?).ok()?;
        match self.take(len)?.split_first() {
            Some((0, cid_bytes)) => cid::cid_from_bytes(cid_bytes).ok(),
            _ => None,
        }
    }

    fn link_or_null(&mut self) -> Option<Option<Cid>> {
        if self.bytes.get(self.pos) == Some(&0xf6) {
            self.pos += 1;
            return Some(None);
        }
        self.link().map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockMap;
    use crate::cid::cid_for_cbor;
    use crate::mst::{ExportBlock, Mst};
    use std::ops::ControlFlow;

    fn tree(n: usize) -> Mst {
        let mut mst = Mst::empty();
        for i in 0..n {
            let key = format!("app.bsky.feed.post/3k{i:011}");
            mst.insert(&key, cid_for_cbor(&(i as u32).to_be_bytes()))
                .expect("insert");
        }
        mst
    }

    #[test]
    fn links_read_from_bytes_match_the_decoded_tree_for_every_node() {
        let mst = tree(2_000);
        let mut nodes = BlockMap::new();
        let mut records_in_order = Vec::new();
        mst.walk_export(&mut |block| {
            match block {
                ExportBlock::Node { cid, bytes } => nodes.insert(cid, bytes),
                ExportBlock::Record { key, cid } => records_in_order.push((key, cid)),
            }
            ControlFlow::Continue(())
        })
        .expect("walk");
        // Rebuild the export's record order from the links alone.
        fn visit(cid: Cid, nodes: &BlockMap, out: &mut Vec<(String, Cid)>) {
            let bytes = nodes.get(&cid).expect("node");
            let links = NodeLinks::parse(cid, bytes).expect("parse");
            let mut children = links.children.into_iter();
            if links.has_left {
                visit(children.next().expect("left"), nodes, out);
            }
            for LinkEntry {
                key,
                record,
                has_right,
            } in links.entries
            {
                out.push((key, record));
                if has_right {
                    visit(children.next().expect("right"), nodes, out);
                }
            }
            assert!(children.next().is_none());
        }
        let mut from_links = Vec::new();
        visit(mst.root_cid(), &nodes, &mut from_links);
        assert_eq!(from_links, records_in_order);
        assert!(
            nodes.len() > 100,
            "a tree of several layers: {}",
            nodes.len()
        );
    }

    #[test]
    fn an_empty_root_has_no_links() {
        let root = Mst::empty().root_cid();
        let bytes = [0xa2, 0x61, b'e', 0x80, 0x61, b'l', 0xf6];
        assert_eq!(cid_for_cbor(&bytes), root);
        let links = NodeLinks::parse(root, &bytes).expect("parse");
        assert_eq!(
            links,
            NodeLinks {
                has_left: false,
                entries: vec![],
                children: vec![]
            }
        );
    }

    #[test]
    fn anything_but_a_node_is_refused_without_panicking() {
        let cid = cid_for_cbor(b"x");
        let good = [0xa2, 0x61, b'e', 0x80, 0x61, b'l', 0xf6];
        for bad in [
            &[][..],
            &good[..good.len() - 1],
            &[0xa2, 0x61, b'l', 0xf6, 0x61, b'e', 0x80][..],
            &[0xa1, 0x61, b'e', 0x80][..],
            &[0xa2, 0x61, b'e', 0x81, 0xa0, 0x61, b'l', 0xf6][..],
            &[
                0xa2, 0x61, b'e', 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ][..],
            &[
                0xa2, 0x61, b'e', 0x80, 0x61, b'l', 0xd8, 0x2a, 0x42, 0x00, 0x01,
            ][..],
            &[0xa2, 0x61, b'e', 0x80, 0x61, b'l', 0xf6, 0x00][..],
        ] {
            assert!(
                matches!(NodeLinks::parse(cid, bad), Err(MstError::InvalidNode(c, _)) if c == cid),
                "{bad:02x?}"
            );
        }
    }
}
