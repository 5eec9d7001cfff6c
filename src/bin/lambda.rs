//! The AWS Lambda entry point: the same PDS as `arroba serve` (built by [`arroba::app`], without
//! the firehose, which the ECS task runs), behind API Gateway (HTTP API or REST) or a Function
//! URL, on DynamoDB and S3. Configured by `PDS_*` variables (`PDS_STORAGE=dynamodb`,
//! `PDS_BLOBSTORE_S3_BUCKET`, …); a secret may instead be given as `<NAME>_ARN` (e.g.
//! `PDS_JWT_SECRET_ARN`) and is then read from Secrets Manager at start-up, so it never sits in
//! the function's configuration. Logs are JSON.

use arroba::app::{Pds, PdsConfig};
use arroba::config::Env;
use arroba::storage::AwsContext;
use arroba::xrpc::limits::ClientAddr;
use lambda_http::request::RequestContext;

/// Secrets the stack passes by ARN.
const SECRETS: &[&str] = &[
    "PDS_JWT_SECRET",
    "PDS_ADMIN_PASSWORD",
    "ARROBA_KEY_ENCRYPTION_KEYS",
    "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX",
];

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .without_time()
        .init();
    let mut env = Env::from_process();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    // The secrets are fetched concurrently: each is a round trip on the cold-start path.
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let fetches = SECRETS.iter().filter_map(|name| {
        let arn = env.get(&format!("{name}_ARN"))?.to_owned();
        let secrets = secrets.clone();
        Some(async move {
            let value = secrets.get_secret_value().secret_id(&arn).send().await?;
            let text = value
                .secret_string()
                .ok_or_else(|| format!("{arn} has no string value"))?;
            Ok::<_, lambda_http::Error>(((*name).to_owned(), text.to_owned()))
        })
    });
    for (name, value) in futures::future::try_join_all(fetches).await? {
        env.set(name, value);
    }
    let config = PdsConfig::from_env(&env)?;
    let pds = Pds::builder(config)
        .aws(AwsContext::from(sdk))
        .without_firehose()
        .start()
        .await?;
    let router = pds
        .router()
        .layer(axum::middleware::map_request(with_client_addr));
    lambda_http::run(router).await
}

/// Puts the caller's address from API Gateway's request context where the rate limits look for
/// it (a `PDS_CLIENT_IP_HEADER` set by the proxy in front takes precedence).
async fn with_client_addr(mut request: axum::extract::Request) -> axum::extract::Request {
    let source_ip = match request.extensions().get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(context)) => context.http.source_ip.clone(),
        Some(RequestContext::ApiGatewayV1(context)) => context.identity.source_ip.clone(),
        _ => None,
    };
    if let Some(ip) = source_ip.and_then(|ip| ip.parse().ok()) {
        request.extensions_mut().insert(ClientAddr(ip));
    }
    request
}
