//! The functions the local stack can run, by binary name, each built from its
//! resolved template environment exactly as its `main.rs` builds it on Lambda.
//! A template function this table does not know is a startup error.

use crate::bootstrap::Stack;
use crate::template::{Template, TemplateError};
use aws_config::SdkConfig;
use lambda_http::{Body, Request, Response};
use shared::clock::SharedClock;
use shared::config::ConfigError;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
pub type HttpFn =
    Arc<dyn Fn(Request) -> BoxFuture<Result<Response<Body>, lambda_http::Error>> + Send + Sync>;
/// An SQS-triggered function, as the pollers invoke it.
pub type SqsFn = Arc<
    dyn Fn(
            aws_lambda_events::event::sqs::SqsEvent,
        )
            -> BoxFuture<Result<aws_lambda_events::event::sqs::SqsBatchResponse, lambda_http::Error>>
        + Send
        + Sync,
>;
/// A scheduled function, as the local scheduler invokes it: EventBridge's
/// event in, the function's answer as JSON out.
pub type ScheduledFn = Arc<
    dyn Fn(serde_json::Value) -> BoxFuture<Result<serde_json::Value, lambda_http::Error>>
        + Send
        + Sync,
>;

/// Every function of the template, ready to invoke: HTTP functions by the
/// gateway, queue functions by `pollers`, scheduled ones by the scheduler.
#[derive(Clone, Default)]
pub struct Functions {
    pub http: HashMap<String, HttpFn>,
    pub sqs: HashMap<String, SqsFn>,
    pub scheduled: HashMap<String, ScheduledFn>,
}

#[derive(Debug, thiserror::Error)]
pub enum FunctionsError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("{function}: {message}")]
    Init { function: String, message: String },
}

/// A function's warm containers, as Lambda keeps them: each serves one
/// request at a time, a request takes an idle one or starts a new one, and a
/// container keeps its memory (sold out, throttled, sales) between the
/// requests it serves. So what a container remembers locally is what one
/// Lambda container would, not what every concurrent request shared.
pub struct Containers<D> {
    idle: std::sync::Mutex<Vec<Arc<D>>>,
    start: Box<dyn Fn() -> Result<D, ConfigError> + Send + Sync>,
}

impl<D> Containers<D> {
    /// Starts the first container now, so a configuration error fails the
    /// local stack at startup, as it fails a Lambda's init.
    pub fn new(
        start: impl Fn() -> Result<D, ConfigError> + Send + Sync + 'static,
    ) -> Result<Self, ConfigError> {
        let first = Arc::new(start()?);
        Ok(Self {
            idle: std::sync::Mutex::new(vec![first]),
            start: Box::new(start),
        })
    }

    /// An idle container (the most recently used), or a new one.
    pub fn take(&self) -> Result<Arc<D>, ConfigError> {
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        match idle {
            Some(c) => Ok(c),
            None => (self.start)().map(Arc::new),
        }
    }

    /// Back to idle once its request is answered.
    pub fn give_back(&self, container: Arc<D>) {
        if let Ok(mut v) = self.idle.lock() {
            v.push(container);
        }
    }
}

/// A function of crate `$krate` as `$kind` (`HttpFn`, `SqsFn`): its warm
/// containers, each built from the resolved environment as `main.rs` builds
/// it, serving one invocation at a time.
macro_rules! function {
    ($kind:ty, $krate:ident, $env:expr, $sdk:expr, $clock:expr, $id:expr) => {
        function!($kind, $krate, $env, $sdk, $clock, $id, |answer| answer)
    };
    ($kind:ty, $krate:ident, $env:expr, $sdk:expr, $clock:expr, $id:expr, $map:expr) => {{
        let (sdk, clock) = ($sdk.clone(), $clock.clone());
        let env = $env;
        let containers = Containers::new(move || {
            let source = |k: &str| env.get(k).cloned();
            $krate::Deps::from_source(&source, &sdk).map(|d| d.with_clock(clock.clone()))
        })
        .map_err(|e| FunctionsError::Init {
            function: $id.clone(),
            message: e.to_string(),
        })?;
        let containers = Arc::new(containers);
        let f: $kind = Arc::new(move |input| {
            let containers = containers.clone();
            Box::pin(async move {
                let deps = containers.take()?;
                let answer = $krate::handle(&deps, input).await;
                containers.give_back(deps);
                $map(answer)
            })
        });
        f
    }};
}

impl Functions {
    /// Builds every function the template declares, keyed by logical id.
    pub fn build(
        template: &Template,
        stack: &Stack,
        sdk: &SdkConfig,
        clock: &SharedClock,
    ) -> Result<Self, FunctionsError> {
        let mut out = Self::default();
        for (id, _) in template.resources_of_type("AWS::Serverless::Function") {
            let env: BTreeMap<String, String> = template.function_env(&id, stack)?;
            let binary = template.binary(&id).unwrap_or_default();
            match binary.as_str() {
                "storefront-api" => {
                    out.http.insert(
                        id.clone(),
                        function!(HttpFn, storefront_api, env, sdk, clock, id),
                    );
                }
                "admin-api" => {
                    out.http.insert(
                        id.clone(),
                        function!(HttpFn, admin_api, env, sdk, clock, id),
                    );
                }
                "checkout" => {
                    out.http
                        .insert(id.clone(), function!(HttpFn, checkout, env, sdk, clock, id));
                }
                "flash-checkout" => {
                    out.http.insert(
                        id.clone(),
                        function!(HttpFn, flash_checkout, env, sdk, clock, id),
                    );
                }
                // Cognito's pre-token-generation trigger. The local stack has no
                // Cognito sign-in to trigger it: it mints tokens itself
                // (jwt.rs). Its handler runs against the emulator's Cognito in
                // tests/tests/mfa_gate.rs.
                "payment-callback" => {
                    out.http.insert(
                        id.clone(),
                        function!(HttpFn, payment_callback, env, sdk, clock, id),
                    );
                }
                "reservation-sweeper" => {
                    out.scheduled.insert(
                        id.clone(),
                        function!(
                            ScheduledFn,
                            reservation_sweeper,
                            env,
                            sdk,
                            clock,
                            id,
                            |answer: Result<reservation_sweeper::Swept, lambda_http::Error>| {
                                answer.map(|swept| serde_json::to_value(swept).unwrap_or_default())
                            }
                        ),
                    );
                }
                "partner-api" => {
                    out.http.insert(
                        id.clone(),
                        function!(HttpFn, partner_api, env, sdk, clock, id),
                    );
                }
                "feed-fetcher" => {
                    out.scheduled.insert(
                        id.clone(),
                        function!(
                            ScheduledFn,
                            feed_fetcher,
                            env,
                            sdk,
                            clock,
                            id,
                            |answer: Result<shared::fetch::run::Summary, lambda_http::Error>| {
                                answer.map(|s| serde_json::to_value(s).unwrap_or_default())
                            }
                        ),
                    );
                }
                "admin-mfa-gate" => {}
                "feed-ingest" => {
                    out.sqs.insert(
                        id.clone(),
                        function!(SqsFn, feed_ingest, env, sdk, clock, id),
                    );
                }
                "order-finalizer" => {
                    out.sqs.insert(
                        id.clone(),
                        function!(SqsFn, order_finalizer, env, sdk, clock, id),
                    );
                }
                other => {
                    return Err(FunctionsError::Init {
                        function: id,
                        message: format!(
                            "binary '{other}' is not wired into infra/local/src/functions.rs"
                        ),
                    });
                }
            }
        }
        Ok(out)
    }
}
