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

/// `make -n` of a target with `vars`: the commands it would run.
fn make_dry_run(target: &str, vars: &[&str]) -> String {
    let out = Command::new("make")
        .args(["-n", "-s", "-C", env!("CARGO_MANIFEST_DIR"), target])
        .args(vars)
        .env_remove("MAKEFLAGS")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make -n {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_make_target_docs_deploy_md_names_exists() {
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/deploy.md"))
            .unwrap();
    let mut targets: Vec<&str> = docs
        .split("make ")
        .skip(1)
        .filter_map(|rest| {
            rest.split(|c: char| !(c.is_ascii_lowercase() || c == '-'))
                .next()
        })
        .filter(|t| !t.is_empty())
        .collect();
    targets.sort();
    targets.dedup();
    assert!(
        targets.contains(&"deploy") && targets.contains(&"bootstrap") && targets.contains(&"smoke")
    );
    for target in targets {
        make_dry_run(
            target,
            &[
                "PDS_HOSTNAME=pds.example.org",
                "URL=https://pds.example.org",
                "LAMBDA_BOOTSTRAP=/bin/true",
            ],
        );
    }
}

#[test]
fn make_deploy_compiles_the_app_first_and_passes_only_the_settings_given() {
    let bootstrap = make_dry_run("bootstrap", &[]);
    let (tsc, cdk) = (
        bootstrap.find("npx tsc").unwrap(),
        bootstrap.find("cdk bootstrap").unwrap(),
    );
    assert!(
        tsc < cdk,
        "the app is compiled before cdk runs it: {bootstrap}"
    );
    let deploy = make_dry_run(
        "deploy",
        &[
            "PDS_HOSTNAME=pds.example.org",
            "LAMBDA_BOOTSTRAP=/bin/true",
            "ALARM_EMAIL=ops@example.org",
        ],
    );
    let flat = deploy.replace("\\\n", " ");
    assert!(
        flat.find("npx tsc").unwrap() < flat.find("cdk deploy").unwrap(),
        "{flat}"
    );
    assert!(flat.contains("-c hostname=pds.example.org"), "{flat}");
    assert!(flat.contains("-c alarmEmail=ops@example.org"), "{flat}");
    // Unset variables pass nothing, so the stack's defaults (the main relay, invites) stand.
    for unset in [
        "crawlers",
        "inviteRequired",
        "certificateArn",
        "wafRateLimit",
        "handleDomains",
    ] {
        assert!(!flat.contains(&format!("-c {unset}=")), "{unset}: {flat}");
    }
    let relay = make_dry_run(
        "deploy",
        &[
            "PDS_HOSTNAME=h.example.org",
            "LAMBDA_BOOTSTRAP=/bin/true",
            "PDS_CRAWLERS=https://relay.test",
        ],
    );
    assert!(relay.contains("-c crawlers=https://relay.test"));
}
