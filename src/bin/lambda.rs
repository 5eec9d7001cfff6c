//! The AWS Lambda entry point: the same XRPC router as `arroba serve`, behind API Gateway
//! (HTTP API or REST) or a Function URL, on DynamoDB and S3. Configured by `PDS_*` variables
//! (`PDS_STORAGE=dynamodb`, `PDS_BLOBSTORE_S3_BUCKET`, …); logs are JSON.

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
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let config = arroba::xrpc::ServerConfig::from_env(&env)?;
    let state = arroba::xrpc::AppState::from_config(config, None).await?;
    lambda_http::run(arroba::xrpc::router().with_state(state)).await
}
