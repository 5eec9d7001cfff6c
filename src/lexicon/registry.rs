//! [`Lexicons`]: schema documents by NSID.

use std::collections::HashMap;
use std::sync::OnceLock;

use include_dir::{Dir, include_dir};
use serde_json::Value as Json;

use crate::syntax::Nsid;

static BUNDLED_DIR: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/src/lexicon/schemas");

/// Why a lexicon document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid lexicon {id}: {why}")]
pub struct LexiconDocError {
    /// The document's id (or what stood there).
    pub id: String,
    /// What is wrong.
    pub why: String,
}

/// A set of lexicon documents.
#[derive(Debug, Default, Clone)]
pub struct Lexicons {
    docs: HashMap<String, Json>,
}

/// Types that may only be a document's `main` definition.
const PRIMARY: &[&str] = &[
    "record",
    "query",
    "procedure",
    "subscription",
    "permission-set",
];

impl Lexicons {
    /// An empty set.
    pub fn new() -> Lexicons {
        Lexicons::default()
    }

    /// The vendored `com.atproto.*` and `app.bsky.*` schemas, parsed once per process.
    pub fn bundled() -> &'static Lexicons {
        static BUNDLED: OnceLock<Lexicons> = OnceLock::new();
        BUNDLED.get_or_init(|| {
            let mut lexicons = Lexicons::new();
            let mut stack = vec![&BUNDLED_DIR];
            while let Some(dir) = stack.pop() {
                stack.extend(dir.dirs());
                for file in dir
                    .files()
                    .filter(|f| f.path().extension().is_some_and(|e| e == "json"))
                {
                    // The vendored files are checked by a test; one that fails is a build bug.
                    if let Ok(doc) = serde_json::from_slice::<Json>(file.contents()) {
                        if doc.get("lexicon").is_some() {
                            let _ = lexicons.add(doc);
                        }
                    }
                }
            }
            lexicons
        })
    }

    /// Checks a document's shape and adds it.
    pub fn add(&mut self, doc: Json) -> Result<(), LexiconDocError> {
        let id = doc
            .get("id")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned();
        let err = |why: &str| LexiconDocError {
            id: id.clone(),
            why: why.to_owned(),
        };
        if doc.get("lexicon").and_then(Json::as_i64) != Some(1) {
            return Err(err("lexicon must be 1"));
        }
        if Nsid::parse(&id).is_err() {
            return Err(err("id is not a valid NSID"));
        }
        let defs = doc
            .get("defs")
            .and_then(Json::as_object)
            .ok_or_else(|| err("defs must be an object"))?;
        for (name, def) in defs {
            let kind = def
                .get("type")
                .and_then(Json::as_str)
                .ok_or_else(|| err("every def needs a type"))?;
            if PRIMARY.contains(&kind) && name != "main" {
                return Err(err(&format!("{kind} must be the main definition")));
            }
            if matches!(kind, "ref" | "union" | "unknown") {
                return Err(err(&format!(
                    "{name}: a top-level definition cannot be {kind}"
                )));
            }
            if kind == "record" {
                if def.get("key").and_then(Json::as_str).is_none() {
                    return Err(err("a record needs a key type"));
                }
                if def
                    .get("record")
                    .and_then(|r| r.get("type"))
                    .and_then(Json::as_str)
                    != Some("object")
                {
                    return Err(err("a record's schema must be an object"));
                }
            }
        }
        self.docs.insert(id, doc);
        Ok(())
    }

    /// The definition a reference names: `nsid`, `nsid#name`, or `#name` relative to `base`.
    pub(crate) fn resolve(&self, reference: &str, base: &str) -> Option<(&Json, String)> {
        let (nsid, name) = match reference.split_once('#') {
            Some(("", name)) => (base, name),
            Some((nsid, name)) => (nsid, name),
            None => (reference, "main"),
        };
        let def = self.docs.get(nsid)?.get("defs")?.get(name)?;
        Some((def, nsid.to_owned()))
    }

    /// Whether a document with this NSID is known.
    pub fn contains(&self, nsid: &str) -> bool {
        self.docs.contains_key(nsid)
    }

    /// The `main` definition of `nsid`.
    pub fn main_def(&self, nsid: &str) -> Option<&Json> {
        self.docs.get(nsid)?.get("defs")?.get("main")
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// Whether there are no documents.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }
}
