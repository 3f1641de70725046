//! The local gateway: routing, the JWT authorizer, limits, CORS, and real
//! API Gateway v2 event fixtures handed straight to a handler.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use crate::common::{Harness, error_code};
use http::{Method, Request};
use serde_json::json;

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405_in_the_error_shape() {
    let h = Harness::new().await;
    let a = h.get("/nowhere").await;
    assert_eq!(a.status, 404);
    assert_eq!(error_code(&a), "not_found");
    let b = h.call(Method::DELETE, "/products/MUG-1", None, None).await;
    assert_eq!(b.status, 405);
    assert_eq!(error_code(&b), "method_not_allowed");
    assert_eq!(b.headers["allow"], "GET");
    assert!(b.headers.contains_key("apigw-requestid"));
}

#[tokio::test]
async fn the_authorizer_refuses_forged_expired_and_missing_tokens() {
    let h = Harness::new().await;
    let forged = flashcart_local::jwt::mint(
        &shared::config::Secret::from("not-the-local-secret-but-long-enough"),
        "mallory",
        &["admin".into()],
        60,
    )
    .unwrap();
    let now = chrono::Utc::now().timestamp() as u64;
    let expired = flashcart_local::jwt::encode(
        &shared::config::Secret::from(flashcart_local::jwt::DEFAULT_SECRET),
        &flashcart_local::jwt::Claims {
            sub: "alice".into(),
            groups: vec!["admin".into()],
            exp: now - 60,
            iat: now - 120,
        },
    )
    .unwrap();
    for token in [
        Some(forged.as_str()),
        Some(expired.as_str()),
        Some("garbage"),
        None,
    ] {
        let a = h.call(Method::GET, "/admin/audit", token, None).await;
        assert_eq!(a.status, 401, "{token:?}");
        assert_eq!(error_code(&a), "unauthorized");
    }
}

#[tokio::test]
async fn a_request_with_cookies_but_no_token_is_401() {
    let h = Harness::new().await;
    let req = Request::builder()
        .method(Method::POST)
        .uri("/admin/flash-sales")
        .header("cookie", "session=stolen; csrftoken=x")
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{}"))
        .unwrap();
    let a = h.send(req).await;
    assert_eq!(a.status, 401);
    assert_eq!(error_code(&a), "unauthorized");
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let h = Harness::new().await;
    let huge = json!({"name": "x".repeat(70 * 1024), "price": {"amount": 1, "currency": "EUR"}, "category": "c", "stock": 1});
    let a = h
        .call(
            Method::PUT,
            "/admin/products/BIG",
            Some(&h.admin()),
            Some(huge),
        )
        .await;
    assert_eq!(a.status, 413);
    assert_eq!(error_code(&a), "payload_too_large");
}

#[tokio::test]
async fn cors_preflight_answers_allowed_origins_only() {
    let h = Harness::new().await;
    let preflight = |origin: &'static str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/admin/products/X")
            .header("origin", origin)
            .header("access-control-request-method", "PUT")
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let ok = h.send(preflight("http://localhost:3000")).await;
    assert_eq!(ok.status, 204);
    assert_eq!(
        ok.headers["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let evil = h.send(preflight("https://evil.example")).await;
    assert!(!evil.headers.contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn health_answers() {
    let h = Harness::new().await;
    let a = h.get("/health").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["status"], "ok");
}

/// The fixtures are API Gateway HTTP API payload 2.0 events as AWS sends them;
/// the handler gets them exactly as the Lambda runtime would hand them over.
#[tokio::test]
async fn handlers_accept_real_api_gateway_v2_events() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 1299, 10).await;
    let deps = h.storefront();
    let fixture = include_str!("../fixtures/apigw-v2-get-product.json");
    let req = lambda_http::request::from_str(fixture).unwrap();
    let resp = storefront_api::handle(&deps, req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(resp.body().as_ref()).unwrap();
    assert_eq!(body["sku"], "MUG-1");

    let deps = h.admin_api();
    let fixture = include_str!("../fixtures/apigw-v2-admin-put-product.json");
    let resp = admin_api::handle(&deps, lambda_http::request::from_str(fixture).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{:?}", resp.body());
    let fixture = include_str!("../fixtures/apigw-v2-admin-put-product-base64.json");
    let resp = admin_api::handle(&deps, lambda_http::request::from_str(fixture).unwrap())
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "a base64-encoded body reads the same: {:?}",
        resp.body()
    );
}

/// Issue 8 item 6: a CORS preflight that reaches `$default` (API Gateway
/// answers preflights itself when CORS is configured; this is the answer should
/// one get through) is 204 with the configured headers, never 405.
#[tokio::test]
async fn a_preflight_reaching_the_default_route_is_answered_not_refused() {
    let h = Harness::new().await;
    let deps = h.storefront();
    let preflight = |origin: &str| {
        let mut e: serde_json::Value =
            serde_json::from_str(include_str!("../fixtures/apigw-v2-get-product.json")).unwrap();
        e["routeKey"] = "$default".into();
        e["requestContext"]["routeKey"] = "$default".into();
        e["requestContext"]["http"]["method"] = "OPTIONS".into();
        e["rawPath"] = "/checkout".into();
        e["requestContext"]["http"]["path"] = "/checkout".into();
        e["pathParameters"] = serde_json::Value::Null;
        e["headers"]["origin"] = origin.into();
        e["headers"]["access-control-request-method"] = "POST".into();
        e["headers"]["access-control-request-headers"] = "authorization,idempotency-key".into();
        lambda_http::request::from_str(&e.to_string()).unwrap()
    };
    let resp = storefront_api::handle(&deps, preflight("http://localhost:3000"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], "http://localhost:3000");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(
        h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("idempotency-key")
    );
    assert_eq!(h["access-control-max-age"], "600");

    let foreign = storefront_api::handle(&deps, preflight("https://evil.example"))
        .await
        .unwrap();
    assert_eq!(foreign.status(), 204);
    assert!(
        !foreign
            .headers()
            .contains_key("access-control-allow-origin")
    );
}

#[tokio::test]
async fn an_options_request_that_is_not_a_preflight_is_an_unsupported_method() {
    let h = Harness::new().await;
    let mut e: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/apigw-v2-get-product.json")).unwrap();
    e["routeKey"] = "$default".into();
    e["requestContext"]["routeKey"] = "$default".into();
    e["requestContext"]["http"]["method"] = "OPTIONS".into();
    let req = lambda_http::request::from_str(&e.to_string()).unwrap();
    let resp = storefront_api::handle(&h.storefront(), req).await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET");
}
