//! The built Lambda `bootstrap` against a stand-in Lambda Runtime API: it reads its secrets from
//! Secrets Manager (the emulator) by the ARNs the stack passes, serves an invocation with them,
//! and refuses to start when a secret ARN is wrong or a secret's value is unusable.

use std::process::Stdio;
use std::time::Duration;

use crate::common::lambda_api::{bootstrap_command, runtime_api};
use base64::Engine;
use serde_json::{Value, json};

fn admin_event(password: &str) -> Value {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("admin:{password}"));
    json!({"version": "2.0", "routeKey": "$default", "rawPath": "/xrpc/com.atproto.admin.getAccountInfos",
        "rawQueryString": "dids=did:plc:ewvi7nxzyoun6zhxrhs64oiz", "headers": {"authorization": format!("Basic {auth}")},
        "requestContext": {"accountId": "1", "apiId": "a", "domainName": "a.test", "domainPrefix": "a",
            "http": {"method": "GET", "path": "/xrpc/com.atproto.admin.getAccountInfos", "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1", "userAgent": "test"},
            "requestId": "r", "routeKey": "$default", "stage": "$default", "time": "26/Nov/2026:00:00:00 +0000", "timeEpoch": 0},
        "isBase64Encoded": false})
}

async fn secret(client: &aws_sdk_secretsmanager::Client, value: &str) -> String {
    let name = format!("arroba-test-{}", hex::encode(rand::random::<[u8; 6]>()));
    let out = client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
    out.arn().unwrap().to_owned()
}

fn bootstrap(api: &str, dir: &std::path::Path, secrets: &[(&str, &str)]) -> tokio::process::Child {
    let mut cmd = bootstrap_command();
    cmd.env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "arroba")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_ENDPOINT_URL", crate::common::dynamo_endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("PDS_DEV_MODE", "true")
        .env("PDS_DID_PLC_URL", "http://127.0.0.1:9")
        .env("PDS_DATA_DIRECTORY", dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in secrets {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Starts a bootstrap with `secrets` (in a fresh data directory) and returns the status code of
/// its answer to `event`.
async fn served_status(event: Value, secrets: &[(&str, &str)]) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let (api, mut reports) = runtime_api(event).await;
    let _child = bootstrap(&api, dir.path(), secrets);
    let (kind, body) = tokio::time::timeout(Duration::from_secs(20), reports.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kind, "response", "{body}");
    body["statusCode"].as_u64().unwrap()
}

/// Starts a bootstrap with `secrets` and checks that it exits with an error, serving nothing.
async fn refuses_to_start(secrets: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let (api, mut reports) = runtime_api(admin_event("admin")).await;
    let mut child = bootstrap(&api, dir.path(), secrets);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success());
    assert!(
        !matches!(reports.try_recv(), Ok((kind, _)) if kind == "response"),
        "no invocation was served"
    );
}

#[tokio::test]
async fn the_bootstrap_reads_its_secrets_by_arn_and_serves_with_them() {
    let client = aws_sdk_secretsmanager::Client::new(&crate::common::sdk_config().await);
    let password = "from-secrets-manager-7f3a";
    let admin_arn = secret(&client, password).await;
    let jwt_arn = secret(&client, "jwt-secret-from-secrets-manager-0123456789").await;
    let secrets = [
        ("PDS_ADMIN_PASSWORD_ARN", admin_arn.as_str()),
        ("PDS_JWT_SECRET_ARN", jwt_arn.as_str()),
    ];
    assert_eq!(
        served_status(admin_event(password), &secrets).await,
        200,
        "admin auth with the password from the secret"
    );
    // The dev default password is not accepted: the secret replaced it.
    assert_eq!(
        served_status(admin_event("admin"), &secrets[..1]).await,
        401
    );
}

#[tokio::test]
async fn a_missing_secret_stops_the_bootstrap_before_it_serves() {
    refuses_to_start(&[(
        "PDS_ADMIN_PASSWORD_ARN",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf",
    )])
    .await;
}

#[tokio::test]
async fn the_plc_rotation_key_is_read_by_arn_and_a_malformed_one_stops_the_bootstrap() {
    use arroba::crypto::{Algorithm, Keypair};

    let client = aws_sdk_secretsmanager::Client::new(&crate::common::sdk_config().await);
    let operator = Keypair::from_seed(Algorithm::K256, b"operator rotation key");
    let valid_arn = secret(&client, &hex::encode(operator.to_bytes())).await;
    let malformed_arn = secret(&client, "not-a-k256-key").await;
    let name = "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX_ARN";
    assert_eq!(
        served_status(admin_event("admin"), &[(name, &valid_arn)]).await,
        200
    );
    // The same start with a value that is not a key: the configuration check refuses it.
    refuses_to_start(&[(name, &malformed_arn)]).await;
}
