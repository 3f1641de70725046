//! No input makes a handler panic or answer outside the error shape:
//! malformed JSON, wrong types, odd encodings, hostile path parameters.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use crate::common::{Harness, error_code};
use http::{Method, Request};

#[tokio::test]
async fn malformed_bodies_are_400_never_500() {
    let h = Harness::new().await;
    h.product("TV-1", "tv", 50000, 100).await;
    let admin = h.admin();
    let bodies: &[&[u8]] = &[
        b"",
        b"   ",
        b"{",
        b"[]",
        b"null",
        b"42",
        b"\"string\"",
        b"{\"name\": 5}",
        b"{\"name\":\"a\",\"price\":{\"amount\":\"1\",\"currency\":\"EUR\"},\"category\":\"c\",\"stock\":1}",
        b"{\"name\":\"a\",\"price\":{\"amount\":99999999999999999999999,\"currency\":\"EUR\"},\"category\":\"c\",\"stock\":1}",
        b"{\"name\":\"a\",\"price\":null,\"category\":\"c\",\"stock\":1}",
        b"\xff\xfe\x00garbage",
        b"{\"name\":\"\\ud800\"}",
        b"{\"sku\":\"TV-1\",\"quantity\":-1}",
        b"{\"sku\":\"TV-1\",\"price\":{\"amount\":1,\"currency\":\"EUR\"},\"quantity\":4294967296,\"starts_at\":\"2026-01-01T00:00:00Z\",\"ends_at\":\"2027-01-01T00:00:00Z\",\"per_user_limit\":1}",
    ];
    for (path, method) in [
        ("/admin/products/M-1", Method::PUT),
        ("/admin/flash-sales", Method::POST),
    ] {
        for body in bodies {
            let req = Request::builder()
                .method(method.clone())
                .uri(path)
                .header("authorization", format!("Bearer {admin}"))
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body.to_vec()))
                .unwrap();
            let a = h.send(req).await;
            assert_eq!(
                a.status,
                400,
                "{method} {path} {:?}: {}",
                String::from_utf8_lossy(body),
                a.body
            );
            assert_eq!(error_code(&a), "invalid_request");
        }
    }
}

#[tokio::test]
async fn hostile_path_and_query_values_are_answered_not_crashed() {
    let h = Harness::new().await;
    let long = "A".repeat(5000);
    for path in [
        "/products/%00".to_owned(),
        "/products/%F0%9F%92%A3".to_owned(),
        format!("/products/{long}"),
        "/products/..%2F..%2Fetc%2Fpasswd".to_owned(),
        "/flash-sales/%27%20OR%201%3D1".to_owned(),
        format!("/flash-sales/{long}"),
        "/products?limit=-1".to_owned(),
        "/products?limit=99999999999999999999".to_owned(),
        format!("/products?cursor={long}"),
        "/products?category=%00".to_owned(),
    ] {
        let a = h.get(&path).await;
        assert!(
            a.status == 404 || a.status == 400,
            "{path}: {} {}",
            a.status,
            a.body
        );
        error_code(&a);
    }
}

/// Events no API Gateway would send still get a shaped answer, never a panic:
/// no request context, a route key no route has, a missing path parameter,
/// claims without a subject, no groups.
#[tokio::test]
async fn malformed_events_get_shaped_answers() {
    let h = Harness::new().await;
    let admin = h.admin_api();
    let store = h.storefront();

    let base: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/apigw-v2-admin-put-product.json")).unwrap();
    let mut variants = Vec::new();
    let mut v = base.clone();
    v["requestContext"]["authorizer"]["jwt"]["claims"]
        .as_object_mut()
        .unwrap()
        .remove("sub");
    variants.push(("no sub claim", v, 401));
    let mut v = base.clone();
    v["requestContext"]["authorizer"] = serde_json::Value::Null;
    variants.push(("no authorizer", v, 401));
    let mut v = base.clone();
    v.as_object_mut().unwrap().remove("pathParameters");
    variants.push(("no path parameters", v, 400));
    let mut v = base.clone();
    v["routeKey"] = "PATCH /admin/whatever".into();
    v["requestContext"]["routeKey"] = "PATCH /admin/whatever".into();
    variants.push(("unknown route key", v, 404));
    let mut v = base.clone();
    v["requestContext"]["authorizer"]["jwt"]["claims"]["cognito:groups"] = "[]".into();
    variants.push(("empty groups", v, 403));
    for (what, event, want) in variants {
        let req = lambda_http::request::from_str(&event.to_string()).unwrap();
        let resp = admin_api::handle(&admin, req).await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "{what}");
        let body: serde_json::Value = serde_json::from_slice(resp.body().as_ref()).unwrap();
        assert!(
            body["error"].is_string() && body["request_id"].is_string(),
            "{what}: {body}"
        );
    }

    // Not tested: a body flagged base64 that is not. lambda_http's own event
    // conversion panics on it (aws_lambda_events Body::from_maybe_encoded uses
    // expect) before any handler runs; API Gateway and the local gateway always
    // encode correctly, so no client can send one.

    // a request with no API Gateway context at all
    let resp = storefront_api::handle(&store, lambda_http::Request::default())
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let resp = admin_api::handle(&admin, lambda_http::Request::default())
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}
