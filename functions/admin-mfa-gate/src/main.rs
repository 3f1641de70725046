//! Lambda entry point: build the Cognito client once, then serve the trigger.

use lambda_runtime::{LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::logging::init();
    let sdk = shared::aws::sdk_config().await;
    let deps = admin_mfa_gate::Deps::new(&sdk);
    run(service_fn(|event: LambdaEvent<serde_json::Value>| async {
        admin_mfa_gate::handle(&deps, event.payload).await
    }))
    .await
}
