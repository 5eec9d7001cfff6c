//! Helpers shared by the integration tests: where the interop vectors are, and how to read them.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

/// The atproto interop test vectors, read in place from `../shared/interop`.
pub fn interop_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/interop");
    assert!(
        dir.is_dir(),
        "interop vectors not found at {}",
        dir.display()
    );
    dir
}

/// The non-comment, non-blank lines of an interop syntax file. Leading and trailing whitespace
/// is significant in these files (it makes values invalid), so lines are not trimmed.
pub fn interop_lines(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(interop_dir().join("syntax").join(name)).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// An interop JSON file, parsed.
pub fn interop_json(path: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(interop_dir().join(path)).unwrap()).unwrap()
}
