//! Test harness: a fresh local stack per test (own tables, queues, bucket)
//! on a clock the test moves, requests through the local gateway's router,
//! JSON in and out. Dropping the harness removes what it created, whether the
//! test passed or panicked.

use axum::body::Body;
use flashcart_local::LocalStack;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use shared::clock::{Clock, ManualClock};
use std::sync::Arc;
use tower::ServiceExt;

pub struct Harness {
    pub stack: LocalStack,
    pub router: axum::Router,
    /// Every function's clock: `clock.advance(..)` instead of sleeping.
    pub clock: Arc<ManualClock>,
}

/// Removes the stack's tables, queues and bucket when the test ends, passed or
/// failed. Drop cannot await, so it runs on a thread of its own with its own
/// runtime and its own SDK clients (the test's runtime may be mid-panic, and
/// its pooled connections belong to it).
impl Drop for Harness {
    fn drop(&mut self) {
        let stack = self.stack.stack.clone();
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(sdk) = flashcart_local::sdk_config(false).await {
                    flashcart_local::bootstrap::destroy(&stack, &sdk).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Value,
}

impl Harness {
    pub async fn new() -> Self {
        Self::with_parameters(&[]).await
    }

    /// A stack whose template parameters are set as given.
    pub async fn with_parameters(parameters: &[(&str, String)]) -> Self {
        // a millisecond per reading keeps events in order (the audit trail
        // sorts by time); windows move by seconds only when a test says so
        let clock = ManualClock::ticking(chrono::Utc::now(), chrono::Duration::milliseconds(1));
        let stack = LocalStack::for_test_with(clock.clone(), parameters).await;
        let router = stack.router();
        Self {
            stack,
            router,
            clock,
        }
    }

    /// Now, on the functions' clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    pub fn admin(&self) -> String {
        self.stack.token("root-admin", &["admin"])
    }

    pub fn shopper(&self, sub: &str) -> String {
        self.stack.token(sub, &[])
    }

    pub async fn send(&self, req: Request<Body>) -> Answer {
        send(self.router.clone(), req).await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        call(self.router.clone(), method, path, token, body).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None, None).await
    }

    /// Creates a product as admin and asserts it worked.
    pub async fn product(&self, sku: &str, category: &str, price: i64, stock: i64) -> Value {
        let a = self
            .call(
                Method::PUT,
                &format!("/admin/products/{sku}"),
                Some(&self.admin()),
                Some(serde_json::json!({
                    "name": format!("Product {sku}"),
                    "description": "test",
                    "price": {"amount": price, "currency": "EUR"},
                    "category": category,
                    "stock": stock,
                })),
            )
            .await;
        assert!(
            a.status.is_success(),
            "creating {sku}: {} {}",
            a.status,
            a.body
        );
        a.body
    }

    /// A function's configuration source, as the template resolves it here.
    pub fn env_of(&self, function: &str) -> impl Fn(&str) -> Option<String> + use<> {
        let env = self
            .stack
            .template
            .function_env(function, &self.stack.stack)
            .unwrap();
        move |k: &str| env.get(k).cloned()
    }

    /// storefront-api's dependencies, built as its main.rs builds them.
    pub fn storefront(&self) -> storefront_api::Deps {
        storefront_api::Deps::from_source(&self.env_of("StorefrontApiFunction"), &self.stack.sdk)
            .unwrap()
            .with_clock(self.clock.clone())
    }

    /// admin-api's dependencies, built as its main.rs builds them.
    pub fn admin_api(&self) -> admin_api::Deps {
        admin_api::Deps::from_source(&self.env_of("AdminApiFunction"), &self.stack.sdk)
            .unwrap()
            .with_clock(self.clock.clone())
    }

    /// `function`'s environment with `change` applied.
    pub fn env_changed(
        &self,
        function: &str,
        change: &[(&str, &str)],
    ) -> impl Fn(&str) -> Option<String> + use<> {
        let env = self.env_of(function);
        let change: Vec<(String, String)> = change
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k: &str| {
            change
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
                .or_else(|| env(k))
        }
    }

    /// A checkout container of its own (empty memory), as `function` is
    /// configured, with `change` applied to its environment, and its DynamoDB
    /// calls counted by the emulator under `app` (see [`Harness::dynamo_calls`]).
    pub fn checkout_container(
        &self,
        function: &str,
        app: &str,
        change: &[(&str, &str)],
    ) -> shared::checkout::Checkout {
        let source = self.env_changed(function, change);
        let config = shared::config::CheckoutConfig::from_source(&source).unwrap();
        let sdk = self
            .stack
            .sdk
            .to_builder()
            .app_name(aws_config::AppName::new(app.to_owned()).unwrap())
            .build();
        shared::checkout::Checkout::new(config, &sdk)
    }

    /// An order-finalizer container as the template configures it, with
    /// `change` applied to its environment.
    pub fn finalizer(&self, change: &[(&str, &str)]) -> order_finalizer::Deps {
        let source = self.env_changed("OrderFinalizerFunction", change);
        order_finalizer::Deps::from_source(&source, &self.stack.sdk)
            .unwrap()
            .with_clock(self.clock.clone())
    }

    /// The sandbox payment provider this stack's functions call.
    pub fn sandbox(&self) -> &flashcart_local::sandbox::Sandbox {
        self.stack.sandbox.as_deref().unwrap()
    }

    /// Runs the finalizer's queue once as Lambda's event source mapping
    /// would (the messages queued so far, in batches).
    pub async fn finalize_queued(&self) -> flashcart_local::pollers::Polled {
        let poller = self.stack.poller("OrderFinalizerFunction").unwrap();
        let mut total = flashcart_local::pollers::Polled::default();
        loop {
            let p = poller.poll_once(std::time::Duration::ZERO).await.unwrap();
            if p.received == 0 {
                return total;
            }
            total.received += p.received;
            total.deleted += p.deleted;
            total.failed += p.failed;
        }
    }

    /// DynamoDB calls by operation that clients named `app` made, as the
    /// emulator counted them.
    pub async fn dynamo_calls(&self, app: &str) -> std::collections::BTreeMap<String, u64> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
            .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
            .unwrap();
        let addr = endpoint.trim_start_matches("http://").trim_end_matches('/');
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET /_flashcart/stats HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        conn.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response).await.unwrap();
        let (_, body) = response.split_once("\r\n\r\n").unwrap();
        let stats: Value = serde_json::from_str(body).unwrap();
        serde_json::from_value(stats["by_app"][app].clone()).unwrap_or_default()
    }

    /// Creates an active flash sale as admin.
    pub async fn flash_sale(
        &self,
        sale_id: &str,
        sku: &str,
        quantity: u32,
        shards: u32,
        per_user_limit: u32,
    ) {
        let now = self.now();
        let a = self
            .call(
                Method::POST,
                "/admin/flash-sales",
                Some(&self.admin()),
                Some(serde_json::json!({
                    "sale_id": sale_id, "sku": sku, "price": {"amount": 500, "currency": "EUR"}, "quantity": quantity,
                    "starts_at": (now - chrono::Duration::minutes(1)).to_rfc3339(),
                    "ends_at": (now + chrono::Duration::hours(1)).to_rfc3339(),
                    "per_user_limit": per_user_limit, "shards": shards
                })),
            )
            .await;
        assert_eq!(a.status, 201, "creating sale {sale_id}: {}", a.body);
    }

    pub async fn checkout(&self, user: &str, key: &str, body: &Value) -> Answer {
        post_checkout(
            self.router.clone(),
            "/checkout",
            &self.shopper(user),
            key,
            body,
        )
        .await
    }

    /// `user` buys `quantity` from flash sale `sale` under idempotency `key`.
    pub async fn flash_buy(&self, sale: &str, user: &str, key: &str, quantity: u32) -> Answer {
        let body = serde_json::json!({"quantity": quantity, "payment_token": "tok_ok"});
        post_checkout(
            self.router.clone(),
            &format!("/flash-sales/{sale}/checkout"),
            &self.shopper(user),
            key,
            &body,
        )
        .await
    }

    pub async fn stock(&self, sku: &str) -> i64 {
        self.get(&format!("/products/{sku}")).await.body["stock"]
            .as_i64()
            .unwrap()
    }
}

/// POSTs a checkout body with a bearer token and an Idempotency-Key.
pub async fn post_checkout(
    router: axum::Router,
    path: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> Answer {
    let req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    send(router, req).await
}

/// Sends a request through a gateway router (cloneable and `'static`, so
/// concurrent tests can spawn it).
pub async fn send(router: axum::Router, req: Request<Body>) -> Answer {
    let resp = router.oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Answer {
        status,
        headers,
        body,
    }
}

pub async fn call(
    router: axum::Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    send(router, req.body(body).unwrap()).await
}

/// Asserts the documented error shape and returns the code.
pub fn error_code(a: &Answer) -> String {
    let b = &a.body;
    assert!(b["error"].is_string(), "no error code in {b}");
    assert!(b["message"].is_string(), "no message in {b}");
    assert!(b["details"].is_object(), "no details in {b}");
    assert!(b["request_id"].is_string(), "no request_id in {b}");
    let words = b["message"].as_str().unwrap().split_whitespace().count();
    assert!(words < 50, "message over 50 words: {b}");
    b["error"].as_str().unwrap().to_owned()
}
