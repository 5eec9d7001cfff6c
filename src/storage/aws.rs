//! [`AwsContext`]: the loaded AWS SDK configuration, wrapped so that code above the storage
//! layer can pass it along without naming an SDK type (only the AWS backends and the Lambda
//! entry point use the SDK directly).

/// The AWS SDK configuration (region, credentials, endpoint) the DynamoDB and S3 backends are
/// built with.
#[derive(Debug, Clone)]
pub struct AwsContext(pub(crate) aws_config::SdkConfig);

impl AwsContext {
    /// Loads the standard configuration from the environment (`AWS_REGION`,
    /// `AWS_ENDPOINT_URL`, credentials); on AWS this asks the instance or task metadata.
    pub async fn from_env() -> AwsContext {
        AwsContext(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .load()
                .await,
        )
    }

    /// The SDK configuration (for the AWS backends and the Lambda entry point).
    pub fn sdk_config(&self) -> &aws_config::SdkConfig {
        &self.0
    }
}

impl From<aws_config::SdkConfig> for AwsContext {
    fn from(sdk: aws_config::SdkConfig) -> AwsContext {
        AwsContext(sdk)
    }
}
