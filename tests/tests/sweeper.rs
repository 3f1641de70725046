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
    // a minute on, nothing yet: it may be on its way
    h.clock.advance(chrono::Duration::minutes(1));
    assert_eq!(sweep(&sweeper(&h)).await.unwrap().redriven, 0);
    h.clock.advance(chrono::Duration::minutes(2));
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
