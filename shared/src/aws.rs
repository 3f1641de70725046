//! AWS clients, built once per container at cold start.
//!
//! Endpoints come from the SDK's own configuration: `AWS_ENDPOINT_URL` (or
//! `AWS_ENDPOINT_URL_DYNAMODB`, ...) points the same binary at the local
//! emulator, DynamoDB Local or AWS. There is no endpoint variable of our own.

pub use aws_config::SdkConfig;

pub async fn sdk_config() -> SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

pub fn dynamodb(sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(sdk)
}

pub fn sqs(sdk: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(sdk)
}

pub fn s3(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::new(sdk)
}

pub fn secrets_manager(sdk: &SdkConfig) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(sdk)
}
