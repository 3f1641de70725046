//! The payment circuit breaker (ADR 0020): failures counted per container,
//! only state changes written, one elected probe, checkouts refused from
//! memory while it is open, calls let through when its state is unreadable.

use crate::common::{Harness, error_code};
use order_finalizer::{Finalized, Retry, finalize};
use serde_json::json;
use shared::domain::order::OrderStatus;
use shared::payments::breaker::{Breaker, PAYMENTS, Permit, Settings};

const FAST: [(&str, &str); 2] = [
    ("PAYMENT_CALL_TIMEOUT_MS", "200"),
    ("PAYMENT_DEADLINE_MS", "500"),
];

fn breaker(h: &Harness, app: &str) -> Breaker {
    let sdk = h
        .stack
        .sdk
        .to_builder()
        .app_name(aws_config::AppName::new(app.to_owned()).unwrap())
        .build();
    Breaker::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        h.stack.stack.table("RequestsTable"),
        PAYMENTS,
        Settings::default(),
        h.clock.clone(),
    )
}

async fn order(h: &Harness, user: &str, key: &str) -> String {
    let a = h
        .checkout(
            user,
            key,
            &json!({"items": [{"sku": "MUG-1", "quantity": 1}], "payment_token": "tok_ok"}),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    a.body["order_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_outage_opens_the_breaker_checkouts_get_503_and_one_probe_closes_it() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 1200, 100).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(order(&h, &format!("u{i}"), "k").await);
    }
    h.sandbox().set_mode(flashcart_local::sandbox::Mode {
        down: true,
        failure_rate: 0.0,
    });
    let deps = h.finalizer(&FAST);
    // five charges fail after their retries: the fifth opens the breaker
    for id in &ids[..5] {
        assert!(matches!(finalize(&deps, id).await, Err(Retry::Provider(_))));
    }
    // now the finalizer does not call the provider at all
    assert!(matches!(
        finalize(&deps, &ids[5]).await,
        Err(Retry::CircuitOpen { .. })
    ));
    assert!(matches!(
        finalize(&h.finalizer(&FAST), &ids[5]).await,
        Err(Retry::CircuitOpen { .. })
    ));

    // a checkout container learns it within its cache's 1.5 s, then refuses
    // from memory: 503 with Retry-After 1-5, nothing reserved
    h.clock.advance(chrono::Duration::seconds(2));
    let stock = h.stock("MUG-1").await;
    let a = h
        .checkout(
            "v",
            "k",
            &json!({"items": [{"sku": "MUG-1", "quantity": 1}], "payment_token": "tok_ok"}),
        )
        .await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(error_code(&a), "payment_unavailable");
    let retry: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=5).contains(&retry), "{retry}");
    assert_eq!(h.stock("MUG-1").await, stock);
    h.flash_sale("s1", "MUG-1", 10, 2, 2).await;
    let f = h.flash_buy("s1", "w", "k", 1).await;
    assert_eq!(
        (f.status.as_u16(), error_code(&f).as_str()),
        (503, "payment_unavailable")
    );

    // a retry of a checkout accepted before the outage gets its 202 again
    let replay = h
        .checkout(
            "u0",
            "k",
            &json!({"items": [{"sku": "MUG-1", "quantity": 1}], "payment_token": "tok_ok"}),
        )
        .await;
    assert_eq!(replay.status, 202, "{}", replay.body);
    assert_eq!(replay.body["order_id"], ids[0].as_str());

    // the refusals reserve nothing: the state's read every 1.5 s, and each
    // request's idempotency record, nothing else
    let container = h
        .checkout_container("CheckoutFunction", "open-breaker", &[])
        .with_clock(h.clock.clone());
    for i in 0..50 {
        let attempt = shared::checkout::Attempt {
            user: format!("x{i}"),
            key: "k".into(),
            fingerprint: "f".into(),
            body: serde_json::from_value(
                json!({"items": [{"sku": "MUG-1", "quantity": 1}], "payment_token": "tok_ok"}),
            )
            .unwrap(),
        };
        let r = container.cart(&attempt, h.now()).await;
        assert!(
            matches!(
                r,
                Err(shared::checkout::CheckoutError::PaymentUnavailable { .. })
            ),
            "{r:?}"
        );
    }
    let calls = h.dynamo_calls("open-breaker").await;
    assert_eq!(calls.get("GetItem"), Some(&51), "{calls:?}");
    assert_eq!(calls.values().sum::<u64>(), 51, "{calls:?}");

    // the provider is back; after the open period one probe is let through,
    // and its success closes the breaker for everyone
    h.sandbox()
        .set_mode(flashcart_local::sandbox::Mode::default());
    h.clock.advance(chrono::Duration::seconds(6));
    assert_eq!(
        finalize(&deps, &ids[0]).await.unwrap(),
        Finalized::Settled(OrderStatus::Confirmed)
    );
    h.clock.advance(chrono::Duration::seconds(2));
    for id in &ids[1..] {
        assert_eq!(
            finalize(&h.finalizer(&FAST), id).await.unwrap(),
            Finalized::Settled(OrderStatus::Confirmed)
        );
    }
    assert_eq!(order(&h, "late", "k").await.len(), 36);
    for id in &ids {
        assert_eq!(h.sandbox().charges_for(id), 1);
    }
}

#[tokio::test]
async fn exactly_one_container_is_elected_to_probe() {
    let h = Harness::new().await;
    let one = breaker(&h, "b1");
    for _ in 0..5 {
        assert_eq!(one.permit().await, Permit::Call);
        one.record(Permit::Call, false).await;
    }
    h.clock.advance(chrono::Duration::seconds(6));
    // eight fresh containers ask at once
    let containers: Vec<Breaker> = (0..8).map(|i| breaker(&h, &format!("c{i}"))).collect();
    let permits = futures_util::future::join_all(containers.iter().map(Breaker::permit)).await;
    let probes = permits
        .iter()
        .filter(|p| matches!(p, Permit::Probe { .. }))
        .count();
    assert_eq!(probes, 1, "{permits:?}");
    assert!(permits.iter().all(|p| !matches!(p, Permit::Call)));
    // the probe fails: open again, and nobody probes until the period passes
    let probe = *permits
        .iter()
        .find(|p| matches!(p, Permit::Probe { .. }))
        .unwrap();
    containers[0].record(probe, false).await;
    h.clock.advance(chrono::Duration::seconds(2));
    assert!(matches!(
        breaker(&h, "d").permit().await,
        Permit::Refuse { .. }
    ));
}

#[tokio::test]
async fn a_healthy_provider_costs_no_write_and_failures_below_the_threshold_none() {
    let h = Harness::new().await;
    let b = breaker(&h, "healthy");
    for i in 0..200 {
        let permit = b.permit().await;
        assert_eq!(permit, Permit::Call);
        // four failures in a row, then a success, over and over: never five
        b.record(permit, i % 5 == 4).await;
    }
    let calls = h.dynamo_calls("healthy").await;
    assert_eq!(calls.get("UpdateItem"), None, "{calls:?}");
    // reads: once per 1.5 s of the (ticking) clock, not per call
    assert!(calls.get("GetItem").copied().unwrap_or(0) <= 2, "{calls:?}");
}

#[tokio::test]
async fn an_unreadable_breaker_lets_calls_through() {
    let h = Harness::new().await;
    let b = Breaker::new(
        aws_sdk_dynamodb::Client::new(&h.stack.sdk),
        "no-such-table",
        PAYMENTS,
        Settings::default(),
        h.clock.clone(),
    );
    assert_eq!(b.accepting().await, Ok(()));
    assert_eq!(b.permit().await, Permit::Call);
}
