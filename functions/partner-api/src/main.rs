//! Lambda entry point: build config and clients once, then serve.

use lambda_http::{run, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::logging::init();
    let sdk = shared::aws::sdk_config().await;
    let deps = partner_api::Deps::from_source(&shared::config::Env, &sdk)?;
    run(service_fn(|req| partner_api::handle(&deps, req))).await
}
