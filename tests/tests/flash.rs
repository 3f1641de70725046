//! POST /flash-sales/{sale_id}/checkout through the local gateway.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use crate::common::{Harness, error_code, post_checkout};
use chrono::Duration;
use http::Method;
use serde_json::json;
use shared::checkout::{Attempt, CheckoutError};
use shared::domain::order::FlashCheckoutRequest;

fn buy(quantity: u32) -> serde_json::Value {
    json!({"quantity": quantity, "payment_token": "tok_ok"})
}

#[tokio::test]
async fn flash_checkout_never_sells_more_than_allocated() {
    let h = Harness::new().await;
    h.product("TV-1", "tv", 50000, 100).await;
    let allocated = 40;
    h.flash_sale("rush", "TV-1", allocated, 4, 1).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..300 {
        let (router, token) = (h.router.clone(), h.shopper(&format!("buyer-{i}")));
        tasks.spawn(async move {
            post_checkout(
                router,
                "/flash-sales/rush/checkout",
                &token,
                &format!("k-{i}"),
                &buy(1),
            )
            .await
        });
    }
    let answers = tasks.join_all().await;
    let sold = answers.iter().filter(|a| a.status == 202).count() as u64;
    for a in answers.iter().filter(|a| a.status != 202) {
        assert_eq!(a.status, 409, "{}", a.body);
        assert!(
            a.body["error"] == "sold_out" || a.body["error"] == "request_in_progress",
            "{}",
            a.body
        );
    }
    let sale = h.get("/flash-sales/rush").await;
    let remaining = sale.body["remaining"].as_u64().unwrap();
    assert_eq!(
        sold,
        u64::from(allocated),
        "every allocated unit sold, none twice"
    );
    assert_eq!(
        remaining + sold,
        u64::from(allocated),
        "stock + sold = allocated"
    );
    assert_eq!(sale.body["state"], "sold_out");
    assert_eq!(
        h.stock("TV-1").await,
        60,
        "product stock is separate from the sale's"
    );

    // an accepted order carries the sale price and its sale
    let winner = answers.iter().find(|a| a.status == 202).unwrap();
    assert_eq!(
        winner.body["total"],
        json!({"amount": 500, "currency": "EUR"})
    );
}

#[tokio::test]
async fn the_per_user_limit_holds_under_concurrent_duplicates() {
    let h = Harness::new().await;
    h.product("TV-1", "tv", 50000, 100).await;
    h.flash_sale("limit", "TV-1", 50, 8, 2).await;
    let token = h.shopper("greedy");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..5 {
        let (router, token) = (h.router.clone(), token.clone());
        tasks.spawn(async move {
            post_checkout(
                router,
                "/flash-sales/limit/checkout",
                &token,
                &format!("g-{i}"),
                &buy(1),
            )
            .await
        });
    }
    let answers = tasks.join_all().await;
    let accepted = answers.iter().filter(|a| a.status == 202).count();
    assert_eq!(
        accepted,
        2,
        "{:?}",
        answers.iter().map(|a| &a.body).collect::<Vec<_>>()
    );
    for a in answers.iter().filter(|a| a.status != 202) {
        assert_eq!(error_code(a), "purchase_limit_reached");
    }
    assert_eq!(h.get("/flash-sales/limit").await.body["remaining"], 48);
    // more than the limit in one request is refused before any write
    let over = h.flash_buy("limit", "newcomer", "o-1", 3).await;
    assert_eq!(over.status, 409);
    assert_eq!(error_code(&over), "purchase_limit_reached");
    assert_eq!(over.body["details"]["limit"], 2);
}

#[tokio::test]
async fn replays_get_their_order_even_after_the_sale_sold_out() {
    let h = Harness::new().await;
    h.product("TV-1", "tv", 50000, 100).await;
    h.flash_sale("tiny", "TV-1", 1, 1, 1).await;
    let won = h.flash_buy("tiny", "alice", "a-1", 1).await;
    assert_eq!(won.status, 202);
    let lost = h.flash_buy("tiny", "bob", "b-1", 1).await;
    assert_eq!(lost.status, 409);
    assert_eq!(error_code(&lost), "sold_out");
    // the container now remembers "sold out"; alice's retry still gets her order
    let retry = h.flash_buy("tiny", "alice", "a-1", 1).await;
    assert_eq!(retry.status, 202);
    assert_eq!(retry.body, won.body);
    let again = h.flash_buy("tiny", "carol", "c-1", 1).await;
    assert_eq!(error_code(&again), "sold_out");
}

#[tokio::test]
async fn sales_that_are_not_running_or_do_not_exist_are_refused() {
    let h = Harness::new().await;
    h.product("TV-1", "tv", 50000, 100).await;
    let now = h.now();
    let later = h
        .call(
            Method::POST,
            "/admin/flash-sales",
            Some(&h.admin()),
            Some(json!({
                "sale_id": "later", "sku": "TV-1", "price": {"amount": 500, "currency": "EUR"}, "quantity": 10,
                "starts_at": (now + Duration::hours(1)).to_rfc3339(), "ends_at": (now + Duration::hours(2)).to_rfc3339(),
                "per_user_limit": 1, "shards": 2
            })),
        )
        .await;
    assert_eq!(later.status, 201);
    let a = h.flash_buy("later", "alice", "l-1", 1).await;
    assert_eq!(a.status, 409);
    assert_eq!(error_code(&a), "sale_not_active");
    assert!(a.body["details"]["starts_at"].is_string());
    let b = h.flash_buy("nope", "alice", "n-1", 1).await;
    assert_eq!(b.status, 404);
    assert_eq!(b.body["details"]["sale_id"], "nope");
    for (body, field) in [
        (buy(0), "quantity"),
        (buy(11), "quantity"),
        (json!({"quantity": 1}), "payment_token"),
    ] {
        let c = post_checkout(
            h.router.clone(),
            "/flash-sales/later/checkout",
            &h.shopper("alice"),
            "x-1",
            &body,
        )
        .await;
        assert_eq!(c.status, 400, "{body}");
        assert_eq!(c.body["details"]["field"], field);
    }
    assert_eq!(h.get("/flash-sales/later").await.body["remaining"], 10);
}

#[tokio::test]
async fn units_left_in_smaller_pieces_are_not_sold_out() {
    let h = Harness::new().await;
    h.product("TV-1", "tv", 50000, 100).await;
    // 8 units as 4 shards of 2: three at once cannot come from one shard
    h.flash_sale("pieces", "TV-1", 8, 4, 5).await;
    let a = h.flash_buy("pieces", "alice", "p-1", 3).await;
    assert_eq!(a.status, 409);
    assert_eq!(error_code(&a), "insufficient_stock", "{}", a.body);
    // and the container did not decide the sale is sold out
    let b = h.flash_buy("pieces", "bob", "p-2", 2).await;
    assert_eq!(b.status, 202, "{}", b.body);
    assert_eq!(h.get("/flash-sales/pieces").await.body["remaining"], 6);
}

#[tokio::test]
async fn a_retry_after_the_sale_closed_still_gets_its_order() {
    let h = Harness::new().await;
    h.product("TV-1", "tv", 50000, 100).await;
    let now = h.now();
    let ends = now + Duration::seconds(2);
    let created = h
        .call(
            Method::POST,
            "/admin/flash-sales",
            Some(&h.admin()),
            Some(json!({
                "sale_id": "brief", "sku": "TV-1", "price": {"amount": 500, "currency": "EUR"}, "quantity": 5,
                "starts_at": (now - Duration::minutes(1)).to_rfc3339(), "ends_at": ends.to_rfc3339(),
                "per_user_limit": 1, "shards": 1
            })),
        )
        .await;
    assert_eq!(created.status, 201);
    let first = h.flash_buy("brief", "alice", "late-1", 1).await;
    assert_eq!(first.status, 202);
    // the functions' clock passes the end of the sale
    h.clock.advance(Duration::seconds(3));
    let retry = h.flash_buy("brief", "alice", "late-1", 1).await;
    assert_eq!(retry.status, 202, "{}", retry.body);
    assert_eq!(retry.body, first.body);
    let fresh = h.flash_buy("brief", "alice", "late-2", 1).await;
    assert_eq!(error_code(&fresh), "sale_not_active");
}

/// Scenario A1's losers: a buyer arriving after the last unit, at a container
/// that has not seen the sale sold out, pays one failed transaction and one
/// read of every shard, not one failed transaction per shard.
#[tokio::test]
async fn a_buyer_after_the_sell_out_pays_one_transaction_and_one_read_not_one_per_shard() {
    let h = Harness::new().await;
    h.product("TV-1", "tv", 50000, 100).await;
    h.flash_sale("gone", "TV-1", 8, 8, 1).await;
    for i in 0..8 {
        let a = h
            .flash_buy("gone", &format!("b{i}"), &format!("k{i}"), 1)
            .await;
        assert_eq!(a.status, 202, "{}", a.body);
    }
    let app = format!("late-buyer-{}", uuid::Uuid::new_v4().simple());
    let checkout = h.checkout_container("FlashCheckoutFunction", &app, &[]);
    let attempt = Attempt {
        user: "late".into(),
        key: "k-late".into(),
        fingerprint: "fp".into(),
        body: FlashCheckoutRequest {
            quantity: 1,
            payment_token: "tok_ok".into(),
        },
    };
    let refused = checkout.flash("gone", &attempt, h.now()).await.unwrap_err();
    assert!(matches!(refused, CheckoutError::SoldOut), "{refused:?}");
    let calls = h.dynamo_calls(&app).await;
    assert_eq!(calls.get("TransactWriteItems"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("BatchGetItem"), Some(&1), "{calls:?}");
    assert_eq!(
        calls.values().sum::<u64>(),
        4,
        "the sale's GetItem, the payment breaker's state (once per container \
         per 1.5 s), the transaction, the read: nothing else ({calls:?})"
    );
    // and the container now knows: the next loser costs nothing
    let again = Attempt {
        key: "k-late-2".into(),
        ..attempt
    };
    let refused = checkout.flash("gone", &again, h.now()).await.unwrap_err();
    assert!(matches!(refused, CheckoutError::SoldOut), "{refused:?}");
    assert_eq!(h.dynamo_calls(&app).await, calls);
}

/// Units left only in pieces smaller than the request: the read says so, and
/// the buyer hears "not that many", not "sold out".
#[tokio::test]
async fn a_read_of_every_shard_tells_pieces_from_sold_out() {
    let h = Harness::new().await;
    h.product("TV-1", "tv", 50000, 100).await;
    h.flash_sale("bits", "TV-1", 4, 4, 3).await;
    let app = format!("bits-buyer-{}", uuid::Uuid::new_v4().simple());
    let checkout = h.checkout_container("FlashCheckoutFunction", &app, &[]);
    let attempt = Attempt {
        user: "alice".into(),
        key: "k-1".into(),
        fingerprint: "fp".into(),
        body: FlashCheckoutRequest {
            quantity: 2,
            payment_token: "tok_ok".into(),
        },
    };
    let refused = checkout.flash("bits", &attempt, h.now()).await.unwrap_err();
    assert!(
        matches!(refused, CheckoutError::InsufficientStock { .. }),
        "{refused:?}"
    );
    let calls = h.dynamo_calls(&app).await;
    assert_eq!(calls.get("TransactWriteItems"), Some(&1), "{calls:?}");
    assert_eq!(h.get("/flash-sales/bits").await.body["remaining"], 4);
}

/// Scenario P1 on a sale that cannot serve the request: refusals the buyer
/// can repeat spend the throttle budget like acceptances, so hammering costs
/// DynamoDB only until the window is full.
#[tokio::test]
async fn hammering_a_sale_that_cannot_serve_the_request_is_throttled_too() {
    let h = Harness::new().await;
    h.product("TV-1", "tv", 50000, 100).await;
    // four shards of one unit: two at once never come from one shard
    h.flash_sale("crumbs", "TV-1", 4, 4, 3).await;
    let mut codes = Vec::new();
    for i in 0..7 {
        let a = h.flash_buy("crumbs", "mallory", &format!("m-{i}"), 2).await;
        codes.push(error_code(&a));
    }
    assert_eq!(&codes[..5], ["insufficient_stock"; 5], "{codes:?}");
    assert_eq!(&codes[5..], ["throttled"; 2], "{codes:?}");
}

/// Issue 8 item 2: probing for sale ids spends a budget, and an id found
/// missing is not looked up again for a while.
#[tokio::test]
async fn probing_for_sale_ids_is_throttled_and_a_missing_id_is_remembered() {
    let h = Harness::new().await;
    let mut codes = Vec::new();
    for i in 0..7 {
        let a = h
            .flash_buy(&format!("nope-{i}"), "mallory", &format!("p-{i}"), 1)
            .await;
        codes.push(error_code(&a));
    }
    assert_eq!(&codes[..5], ["not_found"; 5], "{codes:?}");
    assert_eq!(&codes[5..], ["throttled"; 2], "{codes:?}");

    let app = format!("missing-{}", uuid::Uuid::new_v4().simple());
    let checkout = h.checkout_container("FlashCheckoutFunction", &app, &[]);
    for (user, key) in [("alice", "a-1"), ("bob", "b-1")] {
        let attempt = Attempt {
            user: user.into(),
            key: key.into(),
            fingerprint: "fp".into(),
            body: FlashCheckoutRequest {
                quantity: 1,
                payment_token: "tok_ok".into(),
            },
        };
        let refused = checkout
            .flash("ghost", &attempt, h.now())
            .await
            .unwrap_err();
        assert!(
            matches!(refused, CheckoutError::SaleNotFound(_)),
            "{refused:?}"
        );
    }
    let calls = h.dynamo_calls(&app).await;
    assert_eq!(calls.get("GetItem"), Some(&1), "{calls:?}");
}
