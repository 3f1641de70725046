//! Payments end to end: checkout -> order-finalization -> order-finalizer ->
//! the sandbox provider (a real HTTP peer) -> the order settled, stock
//! released exactly once on a decline, never a second charge.

use crate::common::{Answer, Harness};
use http::Method;
use order_finalizer::{Finalized, finalize};
use serde_json::json;
use shared::domain::order::OrderStatus;
use shared::payments::provider::{ChargeRequest, Provider};

async fn order(h: &Harness, user: &str, id: &str) -> Answer {
    h.call(
        Method::GET,
        &format!("/orders/{id}"),
        Some(&h.shopper(user)),
        None,
    )
    .await
}

async fn buy(h: &Harness, user: &str, key: &str, sku: &str, quantity: u32, token: &str) -> String {
    let a = h
        .checkout(
            user,
            key,
            &json!({"items": [{"sku": sku, "quantity": quantity}], "payment_token": token}),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    a.body["order_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_paid_checkout_is_confirmed_with_one_charge_however_often_it_is_delivered() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 1200, 10).await;
    let id = buy(&h, "alice", "k-1", "MUG-1", 2, "tok_ok").await;
    assert_eq!(
        order(&h, "alice", &id).await.body["payment"]["status"],
        "pending"
    );

    let polled = h.finalize_queued().await;
    assert_eq!((polled.received, polled.deleted), (1, 1));
    let o = order(&h, "alice", &id).await.body;
    assert_eq!(o["status"], "confirmed", "{o}");
    assert_eq!(o["payment"]["status"], "paid");
    assert_eq!(h.sandbox().charges_for(&id), 1);
    let charge = &h.sandbox().ledger()[0];
    assert_eq!(
        (charge.amount, charge.idempotency_key.as_str()),
        (2400, id.as_str())
    );

    // redelivered (SQS is at-least-once): nothing moves, nothing is charged
    let deps = h.finalizer(&[]);
    for _ in 0..3 {
        assert_eq!(
            finalize(&deps, &id).await.unwrap(),
            Finalized::Settled(OrderStatus::Confirmed)
        );
    }
    assert_eq!(h.sandbox().charges_for(&id), 1);
    assert_eq!(h.stock("MUG-1").await, 8);
}

#[tokio::test]
async fn a_declined_payment_fails_the_order_and_returns_its_stock_once() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 1200, 10).await;
    let id = buy(&h, "bob", "k-1", "MUG-1", 3, "tok_declined").await;
    assert_eq!(h.stock("MUG-1").await, 7);

    h.finalize_queued().await;
    let o = order(&h, "bob", &id).await.body;
    assert_eq!(o["status"], "payment_failed", "{o}");
    assert_eq!(o["payment"]["status"], "failed");
    let reason = o["payment"]["reason"].as_str().unwrap();
    assert!(reason.split_whitespace().count() < 30, "{reason}");
    assert!(reason.contains("declined"), "{reason}");
    assert_eq!(h.stock("MUG-1").await, 10);

    // delivered again: released once, not twice
    let deps = h.finalizer(&[]);
    finalize(&deps, &id).await.unwrap();
    finalize(&deps, &id).await.unwrap();
    assert_eq!(h.stock("MUG-1").await, 10);
    assert_eq!(h.sandbox().charges_for(&id), 0);
}

#[tokio::test]
async fn an_unknown_token_is_declined_with_a_reason() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 1200, 10).await;
    let id = buy(&h, "bob", "k-1", "MUG-1", 1, "tok_nobody_knows").await;
    h.finalize_queued().await;
    let o = order(&h, "bob", &id).await.body;
    assert_eq!(o["status"], "payment_failed");
    assert!(
        o["payment"]["reason"]
            .as_str()
            .unwrap()
            .contains("not recognised")
    );
    assert_eq!(h.stock("MUG-1").await, 10);
}

#[tokio::test]
async fn a_declined_flash_order_returns_its_units_to_the_sale_and_the_buyers_limit() {
    let h = Harness::new().await;
    h.product("TV-1", "tv", 50000, 100).await;
    h.flash_sale("s1", "TV-1", 4, 2, 2).await;
    let body = json!({"quantity": 2, "payment_token": "tok_declined"});
    let a = crate::common::post_checkout(
        h.router.clone(),
        "/flash-sales/s1/checkout",
        &h.shopper("carol"),
        "k-1",
        &body,
    )
    .await;
    assert_eq!(a.status, 202, "{}", a.body);
    // the buyer is at the limit until the payment fails
    assert_eq!(h.flash_buy("s1", "carol", "k-2", 1).await.status, 409);

    h.finalize_queued().await;
    let id = a.body["order_id"].as_str().unwrap();
    assert_eq!(
        order(&h, "carol", id).await.body["status"],
        "payment_failed"
    );
    // all four units are for sale again, and the buyer may buy two
    assert_eq!(h.flash_buy("s1", "carol", "k-3", 2).await.status, 202);
    assert_eq!(h.flash_buy("s1", "dave", "k-4", 2).await.status, 202);
    assert_eq!(
        h.flash_buy("s1", "erin", "k-5", 1).await.body["error"],
        "sold_out"
    );
}

#[tokio::test]
async fn a_finalizer_killed_between_the_charge_and_the_update_charges_once() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 1200, 10).await;
    let id = buy(&h, "alice", "k-1", "MUG-1", 1, "tok_ok").await;
    // the first finalizer records its attempt and charges, then dies
    let deps = h.finalizer(&[]);
    let begun = deps.payments().begin_charge(&id, h.now()).await.unwrap();
    let shared::store::payments::Begin::Charge(o) = begun else {
        panic!("{begun:?}")
    };
    let env = h.env_of("OrderFinalizerFunction");
    let config = shared::config::PaymentConfig::from_source(&env).unwrap();
    let provider = Provider::new(config.provider).unwrap();
    provider
        .charge(&ChargeRequest {
            order_id: &id,
            amount: &o.total,
            source: &o.payment_token,
        })
        .await
        .unwrap();
    assert_eq!(
        order(&h, "alice", &id).await.body["status"],
        "pending_payment"
    );
    assert_eq!(
        order(&h, "alice", &id).await.body["payment"]["status"],
        "processing"
    );

    // SQS redelivers its message: the same key, the provider's first answer
    h.finalize_queued().await;
    assert_eq!(order(&h, "alice", &id).await.body["status"], "confirmed");
    assert_eq!(h.sandbox().charges_for(&id), 1);
}

#[tokio::test]
async fn a_provider_that_does_not_answer_sends_the_message_back_and_decides_nothing() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 1200, 10).await;
    let id = buy(&h, "alice", "k-1", "MUG-1", 1, "tok_ok").await;
    h.sandbox().set_mode(flashcart_local::sandbox::Mode {
        down: true,
        failure_rate: 0.0,
    });
    let fast = [
        ("PAYMENT_CALL_TIMEOUT_MS", "300"),
        ("PAYMENT_DEADLINE_MS", "1000"),
    ];
    let err = finalize(&h.finalizer(&fast), &id).await.unwrap_err();
    assert!(matches!(err, order_finalizer::Retry::Provider(_)), "{err}");
    // outcome unknown is not a decline: still pending, stock still held
    assert_eq!(
        order(&h, "alice", &id).await.body["status"],
        "pending_payment"
    );
    assert_eq!(h.stock("MUG-1").await, 9);

    h.sandbox()
        .set_mode(flashcart_local::sandbox::Mode::default());
    assert_eq!(
        finalize(&h.finalizer(&fast), &id).await.unwrap(),
        Finalized::Settled(OrderStatus::Confirmed)
    );
    assert_eq!(h.sandbox().charges_for(&id), 1);
}

#[tokio::test]
async fn half_the_calls_failing_still_confirms_every_order_with_one_charge() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 100, 100).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(buy(&h, &format!("u{i}"), "k", "MUG-1", 1, "tok_flaky").await);
    }
    // every first call fails: each order's charge succeeds on its retry
    let polled = h.finalize_queued().await;
    assert_eq!((polled.received, polled.deleted), (20, 20));
    for id in &ids {
        assert_eq!(h.sandbox().charges_for(id), 1, "{id}");
    }
    let confirmed = futures_util::future::join_all(ids.iter().enumerate().map(|(i, id)| {
        let h = &h;
        async move { order(h, &format!("u{i}"), id).await.body["status"] == "confirmed" }
    }))
    .await;
    assert!(confirmed.iter().all(|c| *c), "{confirmed:?}");
}

#[tokio::test]
async fn an_order_whose_reservation_expired_is_never_charged() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 1200, 10).await;
    let id = buy(&h, "alice", "k-1", "MUG-1", 1, "tok_ok").await;
    h.clock.advance(chrono::Duration::minutes(16));
    assert_eq!(
        finalize(&h.finalizer(&[]), &id).await.unwrap(),
        Finalized::Closed
    );
    assert_eq!(h.sandbox().charges_for(&id), 0);
    assert_eq!(
        finalize(&h.finalizer(&[]), "ord-nope").await.unwrap(),
        Finalized::Missing
    );
}

/// `tok_slow` answers after 10 s, past the client's 3 s call timeout: the
/// tries in between time out ("outcome unknown") or find the key in flight
/// (409), and the first try after the provider decided gets its answer. One
/// charge, and the order confirmed, in one finalizer invocation.
#[tokio::test]
async fn a_provider_slower_than_the_call_timeout_still_charges_once() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 1200, 10).await;
    let id = buy(&h, "alice", "k-1", "MUG-1", 1, "tok_slow").await;
    assert_eq!(
        finalize(&h.finalizer(&[]), &id).await.unwrap(),
        Finalized::Settled(OrderStatus::Confirmed)
    );
    assert_eq!(h.sandbox().charges_for(&id), 1);
}
