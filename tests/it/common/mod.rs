//! Helpers shared by the integration tests: where the interop vectors are, and how to read them.

pub mod faulty;
pub mod lambda_api;
pub mod process;
pub mod service;
pub mod smtp;

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

/// The emulator (or other DynamoDB endpoint) the tests use: `AWS_ENDPOINT_URL`, which
/// `make test` sets after starting `localstack/emulator.sh`.
pub fn dynamo_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!(
            "AWS_ENDPOINT_URL is not set: run `make test` (it starts the DynamoDB emulator), or \
             start one with `localstack/emulator.sh start` and export AWS_ENDPOINT_URL"
        )
    })
}

/// An SDK configuration for the test endpoint with fixed test credentials.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(dynamo_endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await
}

/// A `DynamoStorage` on fresh tables with a unique prefix.
pub async fn dynamo_storage() -> std::sync::Arc<arroba::storage::DynamoStorage> {
    use arroba::storage::dynamo::DynamoConfig;
    let prefix = format!("t{}-", hex::encode(rand::random::<[u8; 6]>()));
    let config = DynamoConfig::new(prefix, Some(arroba::storage::KeySealer::ephemeral()));
    let storage = arroba::storage::DynamoStorage::with_sdk_config(&sdk_config().await, config);
    storage
        .create_tables()
        .await
        .expect("creating tables on the emulator");
    std::sync::Arc::new(storage)
}

/// Takes `n` sequence numbers in the tables named by `prefix` that never become events, as
/// writers that died between taking a number and committing leave them (a raw counter update).
pub async fn strand_seq_numbers(prefix: &str, n: u64) {
    use aws_sdk_dynamodb::types::AttributeValue;
    aws_sdk_dynamodb::Client::new(&sdk_config().await)
        .update_item()
        .table_name(format!("{prefix}counters"))
        .key("name", AttributeValue::S("seq".into()))
        .update_expression("ADD #v :n")
        .expression_attribute_names("#v", "value")
        .expression_attribute_values(":n", AttributeValue::N(n.to_string()))
        .send()
        .await
        .unwrap();
}

/// Creates `did`'s repo on `storage` with a fixed k256 key, for tests that only need one to
/// write to.
pub async fn create_test_repo(
    storage: &dyn arroba::storage::Storage,
    view: &arroba::storage::BlockView,
    did: arroba::syntax::Did,
    clock: &arroba::tid::TidClock,
) {
    use arroba::crypto::{Algorithm, Keypair};
    let keys = arroba::storage::RepoKeys {
        signing: Keypair::from_seed(Algorithm::K256, b"test repo"),
        rotation: None,
    };
    arroba::storage::create_repo(storage, view, did, None, keys, clock)
        .await
        .unwrap();
}

/// Rate-limit windows are aligned to multiples of their length (see `RateLimiter::spend`), so a test whose
/// counts straddle a window's end would see them start again. Waits, when fewer than
/// `WINDOW_ROOM_SECS` are left of the current `window_secs` window, for the next one to begin.
pub async fn start_well_inside_the_window(window_secs: i64) {
    let now = chrono::Utc::now().timestamp();
    let left = window_secs - now.rem_euclid(window_secs);
    if left < WINDOW_ROOM_SECS {
        tokio::time::sleep(std::time::Duration::from_secs(left.unsigned_abs() + 1)).await;
    }
}

/// Time a test's counted calls may take, with room for a loaded CI machine.
const WINDOW_ROOM_SECS: i64 = 45;

pub mod pds;
