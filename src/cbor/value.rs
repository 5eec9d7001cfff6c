//! The [`Value`] type: the atproto data model as a Rust enum.

use std::collections::BTreeMap;

use crate::cid::Cid;

/// One value of the atproto data model.
///
/// Floats do not exist in atproto, so there is no float variant; integers are signed 64-bit.
/// Map keys are strings; the map is kept in Rust string order for lookups, and the encoder sorts
/// keys the DAG-CBOR way (length first) when it writes them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// CBOR `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Integer(i64),
    /// A UTF-8 string.
    String(String),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A CID link (CBOR tag 42).
    Link(Cid),
    /// An array.
    Array(Vec<Value>),
    /// A map with string keys.
    Map(BTreeMap<String, Value>),
}

/// Builds a [`Value::Map`] from `(key, value)` pairs; a convenience for encoders.
pub fn map<I, K>(pairs: I) -> Value
where
    I: IntoIterator<Item = (K, Value)>,
    K: Into<String>,
{
    Value::Map(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

impl Value {
    /// The map, if this is one.
    pub fn as_map(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is one.
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The link, if this is one.
    pub fn as_link(&self) -> Option<&Cid> {
        match self {
            Value::Link(c) => Some(c),
            _ => None,
        }
    }

    /// The bytes, if this is a byte string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The array, if this is one.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// Looks up `key` if this is a map.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_map().and_then(|m| m.get(key))
    }

    /// Calls `f` on every link inside this value, depth first.
    pub fn for_each_link(&self, f: &mut impl FnMut(&Cid)) {
        match self {
            Value::Link(c) => f(c),
            Value::Array(items) => items.iter().for_each(|v| v.for_each_link(f)),
            Value::Map(m) => m.values().for_each(|v| v.for_each_link(f)),
            _ => {}
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Integer(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<Cid> for Value {
    fn from(c: Cid) -> Self {
        Value::Link(c)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Self {
        o.map_or(Value::Null, Into::into)
    }
}
