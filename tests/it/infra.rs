//! The deployment definitions agree with the code: `infra/tables.json`, which both the CDK stack
//! and the Terraform module read, is exactly what `arroba dynamodb tables --json` prints, so a
//! table added or re-keyed in Rust cannot ship without its infrastructure.

use std::path::Path;
use std::process::Command;

#[test]
fn infra_tables_json_matches_the_rust_table_definitions() {
    let out = Command::new(env!("CARGO_BIN_EXE_arroba"))
        .args(["dynamodb", "tables", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_code: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("infra/tables.json");
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        from_code, committed,
        "infra/tables.json is stale: regenerate it with `cargo run -- dynamodb tables --json > infra/tables.json`"
    );
    let suffixes: Vec<&str> = committed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["suffix"].as_str().unwrap())
        .collect();
    for required in ["repos", "blocks", "events", "counters"] {
        assert!(
            suffixes.contains(&required),
            "{required} missing from {suffixes:?}"
        );
    }
}

#[test]
fn terraform_and_cdk_both_read_the_generated_tables_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("infra");
    let tf = std::fs::read_to_string(root.join("terraform/modules/arroba/dynamodb.tf")).unwrap();
    assert!(
        tf.contains("tables.json"),
        "the Terraform module derives its tables from tables.json"
    );
    let cdk = std::fs::read_to_string(root.join("cdk/lib/arroba-stack.ts")).unwrap();
    assert!(
        cdk.contains("tables.json"),
        "the CDK stack derives its tables from tables.json"
    );
}
