//! payment-callback through the local gateway: signed provider events move
//! orders once, forged ones move nothing, and every delivery order of one
//! charge's events ends in the same state.

use crate::common::{Answer, Harness, error_code};
use axum::body::Body;
use http::{Method, Request};
use serde_json::{Value, json};
use shared::payments::signature::sign;

const SECRET: &[u8] = b"whsec_flashcart_local_only";

/// A provider event for `order` (its total, unless `amount` says otherwise).
fn event(id: &str, kind: &str, order: &Value, payment_id: &str) -> Value {
    let mut data = json!({
        "order_id": order["order_id"],
        "payment_id": payment_id,
        "amount": order["total"]["amount"],
        "currency": order["total"]["currency"],
    });
    if kind == "payment.failed" {
        data["code"] = json!("card_declined");
        data["reason"] = json!("Your card was declined.");
    }
    json!({"id": id, "type": kind, "created": 1_790_000_000, "data": data})
}

async fn post_raw(h: &Harness, body: &[u8], signature: Option<String>) -> Answer {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/payments/callback")
        .header("content-type", "application/json");
    if let Some(s) = signature {
        req = req.header("payment-signature", s);
    }
    h.send(req.body(Body::from(body.to_vec())).unwrap()).await
}

/// Posts `event` signed as the provider signs, now.
async fn deliver(h: &Harness, event: &Value) -> Answer {
    let body = event.to_string();
    let sig = sign(SECRET, h.now().timestamp(), body.as_bytes());
    post_raw(h, body.as_bytes(), Some(sig)).await
}

/// A pending order of 2 x MUG-1 (stock 10 before) for alice.
async fn pending_order(h: &Harness) -> Value {
    h.product("MUG-1", "kitchen", 1200, 10).await;
    let a = h
        .checkout(
            "alice",
            "k-1",
            &json!({"items": [{"sku": "MUG-1", "quantity": 2}], "payment_token": "tok_ok"}),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    a.body
}

async fn status(h: &Harness, order: &Value) -> String {
    let path = format!("/orders/{}", order["order_id"].as_str().unwrap());
    let a = h
        .call(Method::GET, &path, Some(&h.shopper("alice")), None)
        .await;
    a.body["status"].as_str().unwrap().to_owned()
}

async fn audit_outcomes(h: &Harness) -> Vec<String> {
    let a = h
        .call(Method::GET, "/admin/audit?limit=50", Some(&h.admin()), None)
        .await;
    a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] == "POST /payments/callback")
        .map(|i| i["outcome"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_signed_success_confirms_the_order_once_however_often_it_comes() {
    let h = Harness::new().await;
    let order = pending_order(&h).await;
    let e = event("evt_1", "payment.succeeded", &order, "ch_1");
    for _ in 0..10 {
        let a = deliver(&h, &e).await;
        assert_eq!(
            (a.status.as_u16(), &a.body),
            (200, &json!({"received": true}))
        );
    }
    assert_eq!(status(&h, &order).await, "confirmed");
    assert_eq!(h.stock("MUG-1").await, 8);
    // the same fact under another event id (the finalizer saw it too) moves nothing
    assert_eq!(
        deliver(&h, &event("evt_2", "payment.succeeded", &order, "ch_1"))
            .await
            .status,
        200
    );
    assert_eq!(status(&h, &order).await, "confirmed");
    assert!(audit_outcomes(&h).await.is_empty());
}

#[tokio::test]
async fn forged_stale_future_tampered_and_missing_signatures_change_nothing() {
    let h = Harness::new().await;
    let order = pending_order(&h).await;
    let body = event("evt_1", "payment.failed", &order, "ch_1").to_string();
    let now = h.now().timestamp();
    let mut tampered = body.clone().into_bytes();
    tampered[10] ^= 1;
    let cases: Vec<(&str, Vec<u8>, Option<String>)> = vec![
        (
            "wrong secret",
            body.clone().into_bytes(),
            Some(sign(b"whsec_attacker_guess_123", now, body.as_bytes())),
        ),
        (
            "stale",
            body.clone().into_bytes(),
            Some(sign(SECRET, now - 301, body.as_bytes())),
        ),
        (
            "future",
            body.clone().into_bytes(),
            Some(sign(SECRET, now + 301, body.as_bytes())),
        ),
        (
            "tampered body",
            tampered,
            Some(sign(SECRET, now, body.as_bytes())),
        ),
        ("missing", body.clone().into_bytes(), None),
        (
            "garbled",
            body.clone().into_bytes(),
            Some("t=abc,v1=zz".into()),
        ),
        (
            "v0 only",
            body.clone().into_bytes(),
            Some(sign(SECRET, now, body.as_bytes()).replace("v1=", "v0=")),
        ),
    ];
    for (name, bytes, sig) in cases {
        let a = post_raw(&h, &bytes, sig).await;
        assert_eq!(a.status, 401, "{name}: {}", a.body);
        assert_eq!(error_code(&a), "invalid_signature", "{name}");
    }
    assert_eq!(status(&h, &order).await, "pending_payment");
    assert_eq!(h.stock("MUG-1").await, 8);
}

#[tokio::test]
async fn bad_bodies_are_refused_in_the_documented_shape() {
    let h = Harness::new().await;
    let order = pending_order(&h).await;
    let signed = |body: &str| sign(SECRET, h.now().timestamp(), body.as_bytes());
    // signed but not JSON, or not an event
    for body in [
        "not json",
        "{}",
        r#"{"id":"evt_1","type":"payment.succeeded"}"#,
    ] {
        let a = post_raw(&h, body.as_bytes(), Some(signed(body))).await;
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        assert_eq!(error_code(&a), "invalid_request");
    }
    // over 64 KiB: refused before any MAC is computed
    let big = vec![b' '; 64 * 1024 + 1];
    let a = post_raw(&h, &big, None).await;
    assert_eq!(
        (a.status.as_u16(), error_code(&a).as_str()),
        (413, "payload_too_large")
    );
    assert_eq!(status(&h, &order).await, "pending_payment");
}

#[tokio::test]
async fn a_failure_releases_the_stock_once_and_a_late_success_is_a_contradiction() {
    let h = Harness::new().await;
    let order = pending_order(&h).await;
    for _ in 0..3 {
        assert_eq!(
            deliver(&h, &event("evt_f", "payment.failed", &order, "ch_1"))
                .await
                .status,
            200
        );
    }
    assert_eq!(status(&h, &order).await, "payment_failed");
    assert_eq!(h.stock("MUG-1").await, 10);
    assert_eq!(
        deliver(&h, &event("evt_s", "payment.succeeded", &order, "ch_1"))
            .await
            .status,
        200
    );
    assert_eq!(status(&h, &order).await, "payment_failed");
    assert_eq!(h.stock("MUG-1").await, 10);
    assert_eq!(audit_outcomes(&h).await, vec!["contradiction"]);
}

#[tokio::test]
async fn every_delivery_order_of_a_success_and_its_refund_ends_refunded() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 1200, 100).await;
    let sequences: [&[&str]; 5] = [
        &["s", "r"],
        &["r", "s"],
        &["r", "r", "s", "s"],
        &["s", "r", "s", "r"],
        &["r", "s", "r"],
    ];
    for (n, seq) in sequences.iter().enumerate() {
        let a = h
            .checkout(
                "alice",
                &format!("k-{n}"),
                &json!({"items": [{"sku": "MUG-1", "quantity": 1}], "payment_token": "tok_ok"}),
            )
            .await;
        let order = a.body;
        for (i, step) in seq.iter().enumerate() {
            let kind = if *step == "s" {
                "payment.succeeded"
            } else {
                "charge.refunded"
            };
            let e = event(&format!("evt_{n}_{i}"), kind, &order, "ch_1");
            assert_eq!(deliver(&h, &e).await.status, 200);
        }
        assert_eq!(status(&h, &order).await, "refunded", "{seq:?}");
    }
    // a refund releases nothing: five sold, five gone
    assert_eq!(h.stock("MUG-1").await, 95);
}

#[tokio::test]
async fn events_that_are_not_this_orders_are_audited_and_move_nothing() {
    let h = Harness::new().await;
    let order = pending_order(&h).await;
    let mut other_amount = event("evt_1", "payment.succeeded", &order, "ch_1");
    other_amount["data"]["amount"] = json!(1);
    let mut unknown_order = event("evt_2", "payment.succeeded", &order, "ch_1");
    unknown_order["data"]["order_id"] = json!("ord-nobody");
    let unknown_type = event("evt_3", "payment.disputed", &order, "ch_1");
    for e in [&other_amount, &unknown_order, &unknown_type] {
        assert_eq!(deliver(&h, e).await.status, 200, "{e}");
    }
    assert_eq!(status(&h, &order).await, "pending_payment");
    let mut outcomes = audit_outcomes(&h).await;
    outcomes.sort();
    assert_eq!(
        outcomes,
        vec!["amount_mismatch", "ignored_event_type", "unknown_order"]
    );
}

/// API Gateway base64-encodes bodies it takes for binary; the signature is
/// over the decoded bytes.
#[tokio::test]
async fn a_base64_encoded_body_is_verified_over_its_decoded_bytes() {
    use base64::Engine;
    let h = Harness::new().await;
    let order = pending_order(&h).await;
    let body = event("evt_1", "payment.succeeded", &order, "ch_1").to_string();
    let sig = sign(SECRET, h.now().timestamp(), body.as_bytes());
    let fixture = json!({
        "version": "2.0",
        "routeKey": "POST /payments/callback",
        "rawPath": "/payments/callback",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "payment-signature": sig},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "localhost",
            "domainPrefix": "localhost", "requestId": "req-1", "routeKey": "POST /payments/callback",
            "stage": "$default", "time": "22/Nov/2026:05:00:00 +0000", "timeEpoch": 0,
            "http": {"method": "POST", "path": "/payments/callback", "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.9", "userAgent": "provider"}
        },
        "body": base64::engine::general_purpose::STANDARD.encode(&body),
        "isBase64Encoded": true
    });
    let req = lambda_http::request::from_str(&fixture.to_string()).unwrap();
    let deps =
        payment_callback::Deps::from_source(&h.env_of("PaymentCallbackFunction"), &h.stack.sdk)
            .unwrap()
            .with_clock(h.clock.clone());
    let resp = payment_callback::handle(&deps, req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(status(&h, &order).await, "confirmed");
}
