//! The README's claims that code can check: its configuration table names exactly the
//! variables the code reads.

use std::collections::BTreeSet;
use std::path::Path;

/// `PDS_*`/`ARROBA_*` names written as string literals in the crate's non-test code.
fn variables_read() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Unit tests sit at the end of a file and may spell names wrong on purpose.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for piece in code.split('"').skip(1).step_by(2) {
                let is_name = (piece.starts_with("PDS_") || piece.starts_with("ARROBA_"))
                    && !piece.ends_with('_')
                    && piece
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                if is_name {
                    out.insert(piece.to_owned());
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out
}

/// The variables in the first column of the README's configuration table.
fn variables_documented() -> BTreeSet<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("## Configuration")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Configuration section");
    // A row may name several variables in its first cell (`A`, `B`).
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(" |").next())
        .flat_map(|cell| cell.split(", "))
        .map(|v| v.trim_matches('`'))
        .filter(|v| v.starts_with("PDS_") || v.starts_with("ARROBA_"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_configuration_table_names_every_variable_the_code_reads_and_no_other() {
    let read = variables_read();
    let documented = variables_documented();
    assert!(read.contains("PDS_MAX_REPO_IMPORT_SIZE"), "{read:?}");
    let undocumented: Vec<_> = read.difference(&documented).collect();
    let unread: Vec<_> = documented.difference(&read).collect();
    assert!(
        undocumented.is_empty(),
        "read but not in the README's table: {undocumented:?}"
    );
    assert!(
        unread.is_empty(),
        "in the README's table but never read: {unread:?}"
    );
}
