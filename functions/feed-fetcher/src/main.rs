//! Lambda entry point: build config and clients once, then serve.

use lambda_runtime::{LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::logging::init();
    let sdk = shared::aws::sdk_config().await;
    let deps = feed_fetcher::Deps::from_source(&shared::config::Env, &sdk)?;
    run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        feed_fetcher::handle(&deps, event.payload)
    }))
    .await
}
