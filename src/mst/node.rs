//! MST nodes in memory and their DAG-CBOR form (`{e: [{k, p, t, v}], l}`).

use std::sync::{Arc, OnceLock};

use super::MstError;
use super::key::{common_prefix_len, height_for_key, validate_key};
use crate::cbor::{self, Value};
use crate::cid::{Cid, cid_for_cbor};

/// A link to a child node: loaded, or only known by CID until someone needs it.
#[derive(Debug, Clone)]
pub(crate) enum Link {
    Loaded(Arc<Node>),
    Stub(Cid),
}

impl Link {
    pub(crate) fn cid(&self) -> Cid {
        match self {
            Link::Loaded(node) => node.cid(),
            Link::Stub(cid) => *cid,
        }
    }
}

/// One key in a node, with the subtree between it and the next key.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) value: Cid,
    pub(crate) right: Option<Link>,
}

/// A node: its layer, the subtree left of every key, and its entries in key order.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) layer: u32,
    pub(crate) left: Option<Link>,
    pub(crate) entries: Vec<Entry>,
    /// The node's CID, computed on first use. Any mutation must reset it.
    cid: OnceLock<Cid>,
}

impl Node {
    pub(crate) fn new(layer: u32, left: Option<Link>, entries: Vec<Entry>) -> Node {
        Node {
            layer,
            left,
            entries,
            cid: OnceLock::new(),
        }
    }

    pub(crate) fn empty(layer: u32) -> Node {
        Node::new(layer, None, Vec::new())
    }

    /// A node with no keys and no subtree: it must not exist except as an empty tree's root.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.left.is_none()
    }

    /// Marks the node changed so its CID is recomputed.
    pub(crate) fn touch(&mut self) {
        self.cid = OnceLock::new();
    }

    /// The child slot before entry `i` (`left` for 0, else the previous entry's `right`).
    pub(crate) fn slot(&self, i: usize) -> &Option<Link> {
        if i == 0 {
            &self.left
        } else {
            &self.entries[i - 1].right
        }
    }

    pub(crate) fn slot_mut(&mut self, i: usize) -> &mut Option<Link> {
        if i == 0 {
            &mut self.left
        } else {
            &mut self.entries[i - 1].right
        }
    }

    /// Index of `key`, or where it would go.
    pub(crate) fn search(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|e| e.key.as_str().cmp(key))
    }

    pub(crate) fn cid(&self) -> Cid {
        *self.cid.get_or_init(|| cid_for_cbor(&self.encode()))
    }

    /// The canonical DAG-CBOR bytes: prefix-compressed keys as byte strings, explicit nulls.
    pub(crate) fn encode(&self) -> Vec<u8> {
        use cbor::encode::{write_head, write_link, write_str};
        let mut out = Vec::with_capacity(16 + self.entries.len() * 80);
        write_head(&mut out, 5, 2);
        write_str(&mut out, "e");
        write_head(&mut out, 4, self.entries.len() as u64);
        let mut previous: &[u8] = &[];
        for entry in &self.entries {
            let key = entry.key.as_bytes();
            let prefix = common_prefix_len(previous, key);
            write_head(&mut out, 5, 4);
            write_str(&mut out, "k");
            write_head(&mut out, 2, (key.len() - prefix) as u64);
            out.extend_from_slice(&key[prefix..]);
            write_str(&mut out, "p");
            write_head(&mut out, 0, prefix as u64);
            write_str(&mut out, "t");
            match &entry.right {
                Some(link) => write_link(&mut out, &link.cid()),
                None => out.push(0xf6),
            }
            write_str(&mut out, "v");
            write_link(&mut out, &entry.value);
            previous = key;
        }
        write_str(&mut out, "l");
        match &self.left {
            Some(link) => write_link(&mut out, &link.cid()),
            None => out.push(0xf6),
        }
        out
    }

    /// Decodes node `cid` from `bytes`. `expected_layer` is the parent's layer minus one, or
    /// `None` for a root. Checks key syntax, strict key order and that every key's height equals
    /// the node's layer. Child links stay stubs.
    pub(crate) fn decode(
        cid: Cid,
        bytes: &[u8],
        expected_layer: Option<u32>,
    ) -> Result<(Node, bool), MstError> {
        let invalid = |why| MstError::InvalidNode(cid, why);
        let value = cbor::decode(bytes).map_err(|e| MstError::NodeCbor(cid, e))?;
        let map = value.as_map().ok_or(invalid("not a map"))?;
        if map.len() != 2 {
            return Err(invalid("node must have exactly the keys e and l"));
        }
        let left = link_or_null(map.get("l"), cid)?;
        let raw_entries = map
            .get("e")
            .and_then(Value::as_array)
            .ok_or(invalid("e is not an array"))?;
        let mut entries: Vec<Entry> = Vec::with_capacity(raw_entries.len());
        let mut previous = String::new();
        let mut layer = expected_layer;
        for raw in raw_entries {
            let m = raw.as_map().ok_or(invalid("entry is not a map"))?;
            if m.len() != 4 {
                return Err(invalid("entry must have exactly the keys k, p, t and v"));
            }
            let prefix = m
                .get("p")
                .and_then(Value::as_integer)
                .ok_or(invalid("p is not an integer"))?;
            let suffix = m
                .get("k")
                .and_then(Value::as_bytes)
                .ok_or(invalid("k is not bytes"))?;
            let value = *m
                .get("v")
                .and_then(Value::as_link)
                .ok_or(invalid("v is not a link"))?;
            let right = link_or_null(m.get("t"), cid)?;
            let prefix = usize::try_from(prefix)
                .ok()
                .filter(|&p| p <= previous.len())
                .ok_or(invalid("p longer than the previous key"))?;
            if entries.is_empty() && prefix != 0 {
                return Err(invalid("first entry has a non-zero prefix"));
            }
            let mut key = previous.as_bytes()[..prefix].to_vec();
            key.extend_from_slice(suffix);
            let key = String::from_utf8(key).map_err(|_| invalid("key is not UTF-8"))?;
            validate_key(&key).map_err(|_| invalid("key is not a valid repo path"))?;
            if !entries.is_empty()
                && common_prefix_len(previous.as_bytes(), key.as_bytes()) != prefix
            {
                return Err(invalid("prefix compression is not maximal"));
            }
            if !entries.is_empty() && key <= previous {
                return Err(invalid("keys out of order"));
            }
            let height = height_for_key(key.as_bytes());
            match layer {
                Some(l) if l != height => {
                    return Err(invalid("key height does not match the node's layer"));
                }
                _ => layer = Some(height),
            }
            previous.clone_from(&key);
            entries.push(Entry { key, value, right });
        }
        if left.is_some() && layer == Some(0) {
            return Err(invalid("layer 0 node has a subtree"));
        }
        if entries.iter().any(|e| e.right.is_some()) && layer == Some(0) {
            return Err(invalid("layer 0 node has a subtree"));
        }
        // A root with no entries cannot know its layer from its keys; the caller infers it.
        let known = layer.is_some();
        let node = Node {
            layer: layer.unwrap_or(0),
            left,
            entries,
            cid: OnceLock::new(),
        };
        let _ = node.cid.set(cid);
        Ok((node, known))
    }
}

fn link_or_null(v: Option<&Value>, node: Cid) -> Result<Option<Link>, MstError> {
    match v {
        Some(Value::Null) => Ok(None),
        Some(Value::Link(c)) => Ok(Some(Link::Stub(*c))),
        _ => Err(MstError::InvalidNode(
            node,
            "subtree link is neither a CID nor null",
        )),
    }
}
