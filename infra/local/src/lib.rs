//! The local stack, all of it in one process beside the emulator:
//!
//! - [`template`]: reads template.yaml (resources, routes, event sources, env).
//! - [`bootstrap`]: creates every resource it declares on the emulator.
//! - [`functions`]: builds each function from its resolved environment.
//! - [`gateway`]: the local API Gateway with its JWT authorizer.
//! - [`pollers`]: SQS event source mappings and schedules.
//! - [`sandbox`]: the sandbox payment provider.
//! - [`seed`]: demo data.
//!
//! [`LocalStack`] ties them together for `make run` and for the tests.

pub mod bootstrap;
pub mod feed_server;
pub mod functions;
pub mod gateway;
pub mod jwt;
pub mod pollers;
pub mod sandbox;
pub mod seed;
pub mod template;

use aws_config::SdkConfig;
use bootstrap::Stack;
use functions::Functions;
use gateway::Gateway;
use shared::clock::SharedClock;
use shared::config::Secret;
use std::sync::Arc;
use template::Template;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A deployed local copy of the template.
pub struct LocalStack {
    pub template: Template,
    pub stack: Stack,
    pub sdk: SdkConfig,
    pub functions: Functions,
    pub gateway: Arc<Gateway>,
    pub secret: Secret,
    /// The sandbox payment provider the stack's functions call, when this
    /// process serves it (`make run`, tests).
    pub sandbox: Option<Arc<sandbox::Sandbox>>,
}

/// A sandbox provider listening on `port` (0: any free port), and its URL.
pub async fn start_sandbox(
    port: u16,
    webhook_url: Option<String>,
) -> Result<(Arc<sandbox::Sandbox>, String), Error> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| {
            format!(
                "the sandbox provider cannot listen on 127.0.0.1:{port} ({e}); set SANDBOX_PORT"
            )
        })?;
    let url = format!("http://{}", listener.local_addr()?);
    let sandbox = sandbox::Sandbox::new(
        Secret::from(sandbox::DEFAULT_API_KEY),
        Secret::from(sandbox::DEFAULT_WEBHOOK_SECRET),
        webhook_url,
    );
    tokio::spawn(sandbox::serve(sandbox.clone(), listener));
    Ok((sandbox, url))
}

/// The SDK configuration from the environment, with one guard: without
/// `AWS_ENDPOINT_URL` the local stack would create tables in a real account,
/// so it refuses unless told that is intended.
pub async fn sdk_config(allow_real_aws: bool) -> Result<SdkConfig, Error> {
    let local = std::env::var("AWS_ENDPOINT_URL").is_ok()
        || std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok();
    if !local && !allow_real_aws {
        return Err(
            "AWS_ENDPOINT_URL is not set: refusing to create resources in a real AWS account. \
                    Use `make run` / `make test`, or set AWS_ENDPOINT_URL to your emulator."
                .into(),
        );
    }
    Ok(shared::aws::sdk_config().await)
}

impl LocalStack {
    /// Creates every resource of the template under `prefix` and wires every
    /// function and route to it.
    /// `parameters` override the template's local values (the sandbox's URL
    /// when it listens elsewhere).
    pub async fn deploy(
        sdk: SdkConfig,
        prefix: &str,
        secret: Secret,
        parameters: &[(&str, String)],
    ) -> Result<Self, Error> {
        Self::deploy_with_clock(sdk, prefix, secret, shared::clock::system(), parameters).await
    }

    /// The same, with every function on `clock` (tests move time with it).
    pub async fn deploy_with_clock(
        sdk: SdkConfig,
        prefix: &str,
        secret: Secret,
        clock: SharedClock,
        parameters: &[(&str, String)],
    ) -> Result<Self, Error> {
        let template = Template::load(&template::default_path())?;
        let mut stack = bootstrap::create(&template, &sdk, prefix).await?;
        for (name, value) in parameters {
            if !stack.parameters.contains_key(*name) {
                return Err(format!("template.yaml has no parameter {name}").into());
            }
            stack
                .parameters
                .insert((*name).to_owned(), template::Resolved::Str(value.clone()));
        }
        let wired = Functions::build(&template, &stack, &sdk, &clock)
            .map_err(Error::from)
            .and_then(|functions| {
                let gateway = Gateway::new(&template, &stack, &functions, secret.clone())?;
                Ok((functions, Arc::new(gateway)))
            });
        let (functions, gateway) = match wired {
            Ok(w) => w,
            Err(e) => {
                // what was created is removed: a failed start leaves nothing behind
                bootstrap::destroy(&stack, &sdk).await;
                return Err(e);
            }
        };
        Ok(Self {
            template,
            stack,
            sdk,
            functions,
            gateway,
            secret,
            sandbox: None,
        })
    }

    /// The queue pollers of the template's SQS event sources (the local event
    /// source mappings): `make run` runs them, tests poll them once at a time.
    pub fn pollers(&self) -> Result<Vec<pollers::QueuePoller>, Error> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let mut out = Vec::new();
        for source in self.template.queue_sources()? {
            let queue = self
                .stack
                .queue(&source.queue)
                .ok_or_else(|| format!("{}: no queue {}", source.function, source.queue))?
                .clone();
            let handler = self
                .functions
                .sqs
                .get(&source.function)
                .ok_or_else(|| format!("{} is not a queue function", source.function))?
                .clone();
            out.push(pollers::QueuePoller {
                sqs: sqs.clone(),
                queue,
                region: self.stack.region.clone(),
                batch_size: source.batch_size,
                handler,
            });
        }
        Ok(out)
    }

    /// The template's schedules, each firing its function every period (or
    /// every `every`, when given) until the task is dropped (`make run`;
    /// tests invoke the functions directly).
    pub fn schedules(
        &self,
        every: Option<std::time::Duration>,
    ) -> Result<Vec<tokio::task::JoinHandle<()>>, Error> {
        let mut out = Vec::new();
        for schedule in self.template.schedules()? {
            let f = self
                .functions
                .scheduled
                .get(&schedule.function)
                .ok_or_else(|| format!("{} is not a scheduled function", schedule.function))?
                .clone();
            let name = schedule.function.clone();
            out.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every.unwrap_or(schedule.every));
                tick.tick().await; // the first tick is now: wait a period first, as EventBridge does
                loop {
                    tick.tick().await;
                    let event = serde_json::json!({
                        "version": "0", "detail-type": "Scheduled Event", "source": "aws.events",
                        "time": chrono::Utc::now().to_rfc3339(), "detail": {}
                    });
                    match f(event).await {
                        Ok(answer) => tracing::info!(function = %name, %answer, "scheduled run"),
                        Err(e) => {
                            tracing::warn!(function = %name, error = %e, "scheduled run failed")
                        }
                    }
                }
            }));
        }
        Ok(out)
    }

    /// A function's resolved environment, as a configuration source.
    pub fn template_env(
        &self,
        function: &str,
    ) -> Result<impl Fn(&str) -> Option<String> + use<>, Error> {
        let env = self.template.function_env(function, &self.stack)?;
        Ok(move |k: &str| env.get(k).cloned())
    }

    /// The poller that feeds `function`.
    pub fn poller(&self, function: &str) -> Option<pollers::QueuePoller> {
        let handler = self.functions.sqs.get(function)?;
        self.pollers()
            .ok()?
            .into_iter()
            .find(|p| Arc::ptr_eq(&p.handler, handler))
    }

    /// A fresh stack with a random prefix, for one test, on `clock`. Fails
    /// loudly (never skips) when no emulator endpoint is configured: run tests
    /// via `make test`.
    pub async fn for_test(clock: SharedClock) -> Self {
        Self::for_test_with(clock, &[]).await
    }

    /// The same, with template parameters set as `make run` sets some (the
    /// sandbox feed server's allowance).
    pub async fn for_test_with(clock: SharedClock, parameters_given: &[(&str, String)]) -> Self {
        let sdk = match sdk_config(false).await {
            Ok(s) => s,
            Err(e) => {
                panic!("integration tests need the local emulator ({e}); run them with `make test`")
            }
        };
        let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let (sandbox, url) = match start_sandbox(0, None).await {
            Ok(s) => s,
            Err(e) => panic!("starting the sandbox provider failed: {e}"),
        };
        let mut parameters = vec![("PaymentProviderUrl", url)];
        parameters.extend(parameters_given.iter().cloned());
        match Self::deploy_with_clock(
            sdk,
            &prefix,
            Secret::from(jwt::DEFAULT_SECRET),
            clock,
            &parameters,
        )
        .await
        {
            Ok(mut s) => {
                s.sandbox = Some(sandbox);
                s
            }
            Err(e) => panic!("deploying the test stack failed: {e}"),
        }
    }

    pub fn router(&self) -> axum::Router {
        gateway::router(self.gateway.clone())
    }

    /// A token the local authorizer accepts.
    pub fn token(&self, sub: &str, groups: &[&str]) -> String {
        let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        jwt::mint(&self.secret, sub, &groups, 3600).unwrap_or_default()
    }

    /// Removes every resource this stack created.
    pub async fn destroy(self) {
        bootstrap::destroy(&self.stack, &self.sdk).await;
    }
}
