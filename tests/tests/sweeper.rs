//! reservation-sweeper (ADR 0018): unpaid reservations expire with their
//! stock back exactly once, however many sweepers run; orders the normal
//! path left behind are sent to the finalizer again.

use crate::common::Harness;
use http::Method;
use order_finalizer::finalize;
use reservation_sweeper::{Deps, sweep};
use serde_json::json;
use shared::checkout::{Attempt, Outcome};
use shared::domain::order::{CartLine, CheckoutRequest};

fn sweeper(h: &Harness) -> Deps {
    Deps::from_source(&h.env_of("ReservationSweeperFunction"), &h.stack.sdk)
        .unwrap()
        .with_clock(h.clock.clone())
}

async fn status(h: &Harness, user: &str, id: &str) -> String {
    let a = h
        .call(
            Method::GET,
            &format!("/orders/{id}"),
            Some(&h.shopper(user)),
            None,
        )
        .await;
    a.body["status"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn expired_reservations_return_their_stock_once_with_two_sweepers_at_once() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 1200, 50).await;
    h.product("TV-1", "tv", 50000, 100).await;
    h.flash_sale("s1", "TV-1", 6, 3, 2).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let a = h
            .checkout(
                &format!("u{i}"),
                "k",
                &json!({"items": [{"sku": "MUG-1", "quantity": 2}], "payment_token": "tok_ok"}),
            )
            .await;
        ids.push((
            format!("u{i}"),
            a.body["order_id"].as_str().unwrap().to_owned(),
        ));
    }
    for i in 0..3 {
        let a = h.flash_buy("s1", &format!("f{i}"), "k", 2).await;
        assert_eq!(a.status, 202, "{}", a.body);
        ids.push((
            format!("f{i}"),
            a.body["order_id"].as_str().unwrap().to_owned(),
        ));
    }
    assert_eq!(h.stock("MUG-1").await, 30);
    assert_eq!(
        h.flash_buy("s1", "late", "k", 1).await.body["error"],
        "sold_out"
    );

    // not yet: reservations hold for 15 minutes
    assert_eq!(sweep(&sweeper(&h)).await.unwrap().expired, 0);
    h.clock.advance(chrono::Duration::minutes(16));
    let (one, two) = (sweeper(&h), sweeper(&h));
    let (a, b) = tokio::join!(sweep(&one), sweep(&two));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.expired + b.expired, 13, "{a:?} {b:?}");
    assert_eq!(h.stock("MUG-1").await, 50);
    for (user, id) in &ids {
        assert_eq!(status(&h, user, id).await, "expired");
    }
    // the sale's six units are back, and each buyer may buy again
    assert_eq!(h.get("/flash-sales/s1").await.body["remaining"], 6);
    let again = h.flash_buy("s1", "f0", "k2", 2).await;
    assert_eq!(again.status, 202);
    // an expired order is never charged, whatever its queue message says;
    // the new one is
    assert_eq!(h.finalize_queued().await.received, 14);
    for (_, id) in &ids {
        assert_eq!(h.sandbox().charges_for(id), 0);
    }
    assert_eq!(
        h.sandbox()
            .charges_for(again.body["order_id"].as_str().unwrap()),
        1
    );
    // and a third run finds nothing to do
    assert_eq!(sweep(&sweeper(&h)).await.unwrap().expired, 0);
}

#[tokio::test]
async fn an_order_written_without_its_queue_message_is_finalized() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 1200, 10).await;
    let lost = h.checkout_container(
        "CheckoutFunction",
        "lost-message",
        &[("ORDER_QUEUE_URL", "http://127.0.0.1:9/000000000000/gone")],
    );
    let attempt = Attempt {
        user: "alice".into(),
        key: "k".into(),
        fingerprint: "f".into(),
        body: CheckoutRequest {
            items: vec![CartLine {
                sku: "MUG-1".into(),
                quantity: 1,
            }],
            payment_token: "tok_ok".into(),
        },
    };
    let Outcome::Accepted {
        order_id,
        queued: false,
        ..
    } = lost.cart(&attempt, h.now()).await.unwrap()
    else {
        panic!("the send should have failed");
    };
    assert_eq!(h.finalize_queued().await.received, 0);
    // three minutes on, nothing yet: it may be waiting out a visibility timeout
    h.clock.advance(chrono::Duration::minutes(3));
    assert_eq!(sweep(&sweeper(&h)).await.unwrap().redriven, 0);
    h.clock.advance(chrono::Duration::minutes(1));
    assert_eq!(sweep(&sweeper(&h)).await.unwrap().redriven, 1);
    assert_eq!(h.finalize_queued().await.deleted, 1);
    assert_eq!(status(&h, "alice", &order_id).await, "confirmed");
    assert_eq!(h.sandbox().charges_for(&order_id), 1);
}

#[tokio::test]
async fn an_attempted_charge_is_never_expired_under_it_but_settled_by_the_finalizer() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 1200, 10).await;
    let a = h
        .checkout(
            "alice",
            "k",
            &json!({"items": [{"sku": "MUG-1", "quantity": 1}], "payment_token": "tok_ok"}),
        )
        .await;
    let id = a.body["order_id"].as_str().unwrap().to_owned();
    // a finalizer recorded its attempt, then died before its call
    let deps = h.finalizer(&[]);
    deps.payments().begin_charge(&id, h.now()).await.unwrap();
    h.clock.advance(chrono::Duration::minutes(16));
    let swept = sweep(&sweeper(&h)).await.unwrap();
    assert_eq!((swept.expired, swept.redriven), (0, 1), "{swept:?}");
    assert_eq!(h.stock("MUG-1").await, 9);
    // the outcome is unknown, so the same key may go out: one charge, confirmed
    finalize(&deps, &id).await.unwrap();
    assert_eq!(status(&h, "alice", &id).await, "confirmed");
    assert_eq!(h.sandbox().charges_for(&id), 1);
}

async fn pending_order(h: &Harness) -> String {
    h.product("MUG-1", "kitchen", 1200, 10).await;
    let a = h
        .checkout(
            "alice",
            "k",
            &json!({"items": [{"sku": "MUG-1", "quantity": 1}], "payment_token": "tok_ok"}),
        )
        .await;
    a.body["order_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn attempts_that_never_reached_the_provider_expire_once_no_charge_can_follow() {
    let h = Harness::new().await;
    let id = pending_order(&h).await;
    // the provider is down for the finalizer's whole try: an attempt, no charge
    h.sandbox().set_mode(flashcart_local::sandbox::Mode {
        down: true,
        failure_rate: 0.0,
    });
    let fast = [
        ("PAYMENT_CALL_TIMEOUT_MS", "200"),
        ("PAYMENT_DEADLINE_MS", "500"),
    ];
    assert!(finalize(&h.finalizer(&fast), &id).await.is_err());
    h.sandbox()
        .set_mode(flashcart_local::sandbox::Mode::default());
    // inside the grace after expiry the same key may still go out: no expiry
    h.clock.advance(chrono::Duration::minutes(20));
    assert_eq!(sweep(&sweeper(&h)).await.unwrap().expired, 0);
    assert_eq!(h.stock("MUG-1").await, 9);
    // past it, the provider is asked: no charge. Its search may lag, so
    // once is not enough...
    h.clock.advance(chrono::Duration::minutes(8));
    let swept = sweep(&sweeper(&h)).await.unwrap();
    assert_eq!((swept.reconciled, swept.expired), (0, 0), "{swept:?}");
    assert_eq!(h.stock("MUG-1").await, 9);
    // ...the same answer 5 minutes later is: the stock comes back
    h.clock.advance(chrono::Duration::minutes(5));
    let swept = sweep(&sweeper(&h)).await.unwrap();
    assert_eq!(swept.reconciled, 1, "{swept:?}");
    assert_eq!(status(&h, "alice", &id).await, "expired");
    assert_eq!(h.stock("MUG-1").await, 10);
    // and a redrive days later charges nothing
    h.clock.advance(chrono::Duration::days(3));
    finalize(&h.finalizer(&[]), &id).await.unwrap();
    assert_eq!(h.sandbox().charges_for(&id), 0);
}

#[tokio::test]
async fn a_charge_whose_result_was_lost_is_settled_from_the_providers_record() {
    let h = Harness::new().await;
    let id = pending_order(&h).await;
    // a finalizer records its attempt and charges, then dies; no webhook comes
    let deps = h.finalizer(&[]);
    let shared::store::payments::Begin::Charge(o) =
        deps.payments().begin_charge(&id, h.now()).await.unwrap()
    else {
        panic!("chargeable");
    };
    let config =
        shared::config::PaymentConfig::from_source(&h.env_of("OrderFinalizerFunction")).unwrap();
    shared::payments::provider::Provider::new(config.provider)
        .unwrap()
        .charge(&shared::payments::provider::ChargeRequest {
            order_id: &id,
            amount: &o.total,
            source: &o.payment_token,
        })
        .await
        .unwrap();
    // its message is lost too (say, redriven from the DLQ days later)
    h.clock.advance(chrono::Duration::minutes(28));
    let swept = sweep(&sweeper(&h)).await.unwrap();
    assert_eq!(swept.reconciled, 1, "{swept:?}");
    assert_eq!(status(&h, "alice", &id).await, "confirmed");
    assert_eq!(h.stock("MUG-1").await, 9);
    assert_eq!(h.sandbox().charges_for(&id), 1);
    h.clock.advance(chrono::Duration::days(3));
    finalize(&deps, &id).await.unwrap();
    assert_eq!(h.sandbox().charges_for(&id), 1);
}

#[tokio::test]
async fn while_the_provider_is_failing_nothing_is_re_driven_and_expiries_go_on() {
    let h = Harness::new().await;
    let stuck = pending_order(&h).await;
    // the breaker opens, as five charges failed after their retries would open it
    h.sandbox().set_mode(flashcart_local::sandbox::Mode {
        down: true,
        failure_rate: 0.0,
    });
    let fast = [
        ("PAYMENT_CALL_TIMEOUT_MS", "100"),
        ("PAYMENT_DEADLINE_MS", "200"),
    ];
    let finalizer = h.finalizer(&fast);
    for i in 0..5 {
        let a = h
            .checkout(
                &format!("b{i}"),
                "k",
                &json!({"items": [{"sku": "MUG-1", "quantity": 1}], "payment_token": "tok_ok"}),
            )
            .await;
        let _ = finalize(&finalizer, a.body["order_id"].as_str().unwrap()).await;
    }
    // the first order is stuck (never attempted) but the provider is down: no
    // message that the finalizer would only refuse
    h.clock.advance(chrono::Duration::minutes(5));
    let swept = sweep(&sweeper(&h)).await.unwrap();
    assert_eq!(swept.redriven, 0, "{swept:?}");
    // its reservation still expires on time, stock back
    h.clock.advance(chrono::Duration::minutes(11));
    let swept = sweep(&sweeper(&h)).await.unwrap();
    assert!(swept.expired >= 1, "{swept:?}");
    assert_eq!(status(&h, "alice", &stuck).await, "expired");
}
