//! POST /checkout and GET /orders/{id} through the local gateway.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use crate::common::{Harness, error_code};
use http::{Method, Request};
use serde_json::{Value, json};
use shared::checkout::{Attempt, Outcome};
use shared::domain::order::{CartLine, CheckoutRequest, OrderStatus};

fn cart(lines: &[(&str, u32)]) -> Value {
    json!({
        "items": lines.iter().map(|(sku, q)| json!({"sku": sku, "quantity": q})).collect::<Vec<_>>(),
        "payment_token": "tok_ok"
    })
}

#[tokio::test]
async fn a_checkout_reserves_stock_writes_the_order_and_queues_it() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 1299, 10).await;
    h.product("PAN-1", "kitchen", 5400, 3).await;
    let a = h
        .checkout("alice", "k-1", &cart(&[("MUG-1", 2), ("PAN-1", 1)]))
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    let order_id = a.body["order_id"].as_str().unwrap().to_owned();
    assert_eq!(
        a.headers["location"],
        format!("/orders/{order_id}").as_str()
    );
    assert_eq!(a.body["status"], "pending_payment");
    assert_eq!(
        a.body["total"],
        json!({"amount": 2 * 1299 + 5400, "currency": "EUR"})
    );
    assert!(a.body["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(h.stock("MUG-1").await, 8);
    assert_eq!(h.stock("PAN-1").await, 2);

    // the owner and an admin see it; another shopper gets the same 404 as a missing order
    let mine = h
        .call(
            Method::GET,
            &format!("/orders/{order_id}"),
            Some(&h.shopper("alice")),
            None,
        )
        .await;
    assert_eq!(mine.status, 200);
    assert_eq!(mine.body["items"][0]["unit_price"]["amount"], 1299);
    assert!(mine.body.get("payment_token").is_none());
    let admin = h
        .call(
            Method::GET,
            &format!("/orders/{order_id}"),
            Some(&h.admin()),
            None,
        )
        .await;
    assert_eq!(admin.status, 200);
    let other = h
        .call(
            Method::GET,
            &format!("/orders/{order_id}"),
            Some(&h.shopper("bob")),
            None,
        )
        .await;
    assert_eq!(other.status, 404);
    assert_eq!(error_code(&other), "not_found");
    let anonymous = h
        .call(Method::GET, &format!("/orders/{order_id}"), None, None)
        .await;
    assert_eq!(anonymous.status, 401);

    // the order id is on the finalization queue
    let sqs = aws_sdk_sqs::Client::new(&h.stack.sdk);
    let q = h.stack.stack.queue("OrderFinalizationQueue").unwrap();
    let got = sqs
        .receive_message()
        .queue_url(&q.url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(got.messages()[0].body().unwrap()).unwrap();
    assert_eq!(body["order_id"], order_id.as_str());
}

#[tokio::test]
async fn a_line_short_of_stock_refuses_the_whole_cart_and_reserves_nothing() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 1299, 10).await;
    h.product("PAN-1", "kitchen", 5400, 1).await;
    let a = h
        .checkout("alice", "k-1", &cart(&[("MUG-1", 2), ("PAN-1", 2)]))
        .await;
    assert_eq!(a.status, 409);
    assert_eq!(error_code(&a), "insufficient_stock");
    assert_eq!(a.body["details"]["sku"], "PAN-1");
    assert_eq!(h.stock("MUG-1").await, 10);
    assert_eq!(h.stock("PAN-1").await, 1);
    // the key was given back: the same key works once the cart is fixed
    let b = h
        .checkout("alice", "k-1", &cart(&[("MUG-1", 2), ("PAN-1", 1)]))
        .await;
    assert_eq!(b.status, 202, "{}", b.body);
}

#[tokio::test]
async fn bad_carts_are_refused_with_the_field_or_rule_named_and_nothing_reserved() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 1299, 10).await;
    h.product("USD-1", "kitchen", 1299, 10).await;
    // make USD-1 priced in dollars
    let usd = json!({"name": "Dollar mug", "price": {"amount": 999, "currency": "USD"}, "category": "kitchen", "stock": 10});
    assert_eq!(
        h.call(
            Method::PUT,
            "/admin/products/USD-1",
            Some(&h.admin()),
            Some(usd)
        )
        .await
        .status,
        200
    );
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (cart(&[]), 400, "invalid_request", "items"),
        (
            cart(&[("MUG-1", 0)]),
            400,
            "invalid_request",
            "items[0].quantity",
        ),
        (
            cart(&[("MUG-1", 11)]),
            400,
            "invalid_request",
            "items[0].quantity",
        ),
        (
            json!({"items": [{"sku": "MUG-1", "quantity": -1}], "payment_token": "tok_ok"}),
            400,
            "invalid_request",
            "items[0].quantity",
        ),
        (
            json!({"items": [{"sku": "MUG-1", "quantity": 99999999999u64}], "payment_token": "tok_ok"}),
            400,
            "invalid_request",
            "items[0].quantity",
        ),
        (
            json!({"items": [{"sku": "MUG-1", "quantity": 1.5}], "payment_token": "tok_ok"}),
            400,
            "invalid_request",
            "items[0].quantity",
        ),
        (
            cart(&[("MUG-1", 1), ("MUG-1", 2)]),
            400,
            "invalid_request",
            "items[1].sku",
        ),
        (
            json!({"items": [{"sku": "MUG-1", "quantity": 1}]}),
            400,
            "invalid_request",
            "payment_token",
        ),
        (
            cart(&[("MUG-1", 1), ("NOPE", 1)]),
            422,
            "rule_violation",
            "unknown_sku",
        ),
        (
            cart(&[("MUG-1", 1), ("USD-1", 1)]),
            422,
            "rule_violation",
            "single_currency",
        ),
    ];
    for (i, (body, status, code, named)) in cases.into_iter().enumerate() {
        let a = h.checkout("alice", &format!("bad-{i}"), &body).await;
        assert_eq!(a.status, status, "{body}: {}", a.body);
        assert_eq!(error_code(&a), code, "{body}");
        let d = &a.body["details"];
        assert!(d["field"] == named || d["rule"] == named, "{body}: {d}");
    }
    assert_eq!(h.stock("MUG-1").await, 10);
    assert_eq!(h.stock("USD-1").await, 10);

    // the Idempotency-Key: required, bounded
    let no_key = Request::builder()
        .method(Method::POST)
        .uri("/checkout")
        .header("authorization", format!("Bearer {}", h.shopper("alice")))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(cart(&[("MUG-1", 1)]).to_string()))
        .unwrap();
    let a = h.send(no_key).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["details"]["field"], "Idempotency-Key");
    let long = h
        .checkout("alice", &"k".repeat(256), &cart(&[("MUG-1", 1)]))
        .await;
    assert_eq!(long.status, 400);
    assert_eq!(long.body["details"]["field"], "Idempotency-Key");
    assert_eq!(h.stock("MUG-1").await, 10);
}

#[tokio::test]
async fn idempotency_replays_and_refuses_reuse() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 1299, 10).await;
    let first = h
        .checkout("alice", "same-key", &cart(&[("MUG-1", 1)]))
        .await;
    assert_eq!(first.status, 202);
    // the same body, even reformatted: the first response again, nothing more reserved
    let again = h
        .checkout(
            "alice",
            "same-key",
            &serde_json::from_str(
                r#"{"payment_token":"tok_ok","items":[{"quantity":1,"sku":"MUG-1"}]}"#,
            )
            .unwrap(),
        )
        .await;
    assert_eq!(again.status, 202);
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers["location"], first.headers["location"]);
    assert_eq!(h.stock("MUG-1").await, 9);
    // another body with the same key
    let reused = h
        .checkout("alice", "same-key", &cart(&[("MUG-1", 2)]))
        .await;
    assert_eq!(reused.status, 422);
    assert_eq!(error_code(&reused), "idempotency_key_reused");
    // keys are per user: bob's "same-key" is his own
    let bob = h.checkout("bob", "same-key", &cart(&[("MUG-1", 1)])).await;
    assert_eq!(bob.status, 202);
    assert_ne!(bob.body["order_id"], first.body["order_id"]);
    assert_eq!(h.stock("MUG-1").await, 8);
}

/// Issue 8 item 2: refusals spend the caller's budget, so a user repeating a
/// cart of unknown SKUs is throttled, and then answered without any read.
#[tokio::test]
async fn unknown_skus_spend_the_budget_and_then_cost_nothing() {
    let h = Harness::new().await;
    let app = format!("prober-{}", uuid::Uuid::new_v4().simple());
    let checkout = h.checkout_container("CheckoutFunction", &app, &[]);
    let mut codes = Vec::new();
    let mut calls = Vec::new();
    for i in 0..7 {
        let attempt = Attempt {
            user: "mallory".into(),
            key: format!("k-{i}"),
            fingerprint: format!("fp-{i}"),
            body: CheckoutRequest {
                // twenty made-up SKUs: one refusal, one count, not twenty
                items: (0..20)
                    .map(|n| CartLine {
                        sku: format!("NO-SUCH-SKU-{n}"),
                        quantity: 1,
                    })
                    .collect(),
                payment_token: "tok_ok".into(),
            },
        };
        let refused = checkout.cart(&attempt, h.now()).await.unwrap_err();
        if i == 0 {
            let calls = h.dynamo_calls(&app).await;
            assert_eq!(calls.get("UpdateItem"), Some(&1), "{calls:?}");
        }
        codes.push(shared::ApiError::from(refused).code());
        calls.push(h.dynamo_calls(&app).await.values().sum::<u64>());
    }
    assert_eq!(&codes[..5], ["rule_violation"; 5], "{codes:?}");
    assert_eq!(&codes[5..], ["throttled"; 2], "{codes:?}");
    assert_eq!(calls[6], calls[5], "the 7th attempt costs no DynamoDB call");
}

/// Issue 8 item 4: a subject and a key that join to the same text as another
/// user's must not replay that user's order.
#[tokio::test]
async fn a_key_that_imitates_another_users_key_gets_its_own_order() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 1299, 10).await;
    let body = cart(&[("MUG-1", 1)]);
    let victim = h.checkout("victim#pay", "k-77", &body).await;
    assert_eq!(victim.status, 202, "{}", victim.body);
    let other = h.checkout("victim", "pay#k-77", &body).await;
    assert_eq!(other.status, 202, "{}", other.body);
    assert_ne!(other.body["order_id"], victim.body["order_id"]);
    assert_eq!(h.stock("MUG-1").await, 8, "two orders, two units");
}

#[tokio::test]
async fn a_body_with_anything_after_the_json_is_refused_not_replayed() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 1299, 10).await;
    h.product("PAN-1", "kitchen", 5400, 10).await;
    let token = h.shopper("alice");
    let send = |body: String| {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/checkout")
            .header("authorization", format!("Bearer {token}"))
            .header("idempotency-key", "trailing")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .unwrap();
        crate::common::send(h.router.clone(), req)
    };
    let first = send(format!("{}x", cart(&[("MUG-1", 1)]))).await;
    assert_eq!(first.status, 400);
    assert_eq!(first.body["details"]["field"], "body");
    let ok = send(cart(&[("MUG-1", 1)]).to_string()).await;
    assert_eq!(ok.status, 202);
    // a different cart with the same key and trailing bytes: refused, never the first answer
    let other = send(format!("{}x", cart(&[("PAN-1", 9)]))).await;
    assert_eq!(other.status, 400);
    assert_eq!(h.stock("PAN-1").await, 10);
}

#[tokio::test]
async fn concurrent_duplicates_of_one_request_create_one_order() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 1299, 100).await;
    let token = h.shopper("alice");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let (router, token) = (h.router.clone(), token.clone());
        tasks.spawn(async move {
            crate::common::post_checkout(router, "/checkout", &token, "dup", &cart(&[("MUG-1", 1)]))
                .await
        });
    }
    let answers = tasks.join_all().await;
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .filter(|a| a.status == 202)
        .map(|a| a.body["order_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        answers
            .iter()
            .all(|a| a.status == 202 || a.body["error"] == "request_in_progress"),
        "{:?}",
        answers.iter().map(|a| &a.body).collect::<Vec<_>>()
    );
    assert_eq!(ids.len(), 1, "one order, however many duplicates");
    assert_eq!(h.stock("MUG-1").await, 99);
}

#[tokio::test]
async fn hundreds_of_concurrent_buyers_never_oversell() {
    let h = Harness::new().await;
    let start = 50;
    h.product("HOT-1", "tv", 10000, start).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let (router, token) = (h.router.clone(), h.shopper(&format!("buyer-{i}")));
        tasks.spawn(async move {
            crate::common::post_checkout(
                router,
                "/checkout",
                &token,
                &format!("k-{i}"),
                &cart(&[("HOT-1", 1)]),
            )
            .await
        });
    }
    let answers = tasks.join_all().await;
    let sold = answers.iter().filter(|a| a.status == 202).count() as i64;
    for a in answers.iter().filter(|a| a.status != 202) {
        assert_eq!(a.status, 409, "{}", a.body);
        assert!(
            a.body["error"] == "insufficient_stock" || a.body["error"] == "request_in_progress",
            "{}",
            a.body
        );
    }
    let left = h.stock("HOT-1").await;
    assert_eq!(sold, start, "every unit sold, none twice");
    assert_eq!(left + sold, start, "stock + sold = starting quantity");
    assert_eq!(left, 0);
}

#[tokio::test]
async fn one_user_hammering_a_sku_is_throttled_with_retry_after() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 1299, 100).await;
    // 12 requests in well under 10 s touch at most two 10 s windows of 5 each
    let mut statuses = Vec::new();
    for i in 0..12 {
        let a = h
            .checkout("hammer", &format!("h-{i}"), &cart(&[("MUG-1", 1)]))
            .await;
        if a.status == 429 {
            assert_eq!(error_code(&a), "throttled");
            let r: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=10).contains(&r), "Retry-After {r}");
            assert_eq!(a.body["details"]["retry_after"], r);
        } else {
            assert_eq!(a.status, 202, "{}", a.body);
        }
        statuses.push(a.status.as_u16());
    }
    let accepted = statuses.iter().filter(|s| **s == 202).count();
    assert!((5..=10).contains(&accepted), "{statuses:?}");
    assert!(
        statuses.iter().filter(|s| **s == 429).count() >= 2,
        "{statuses:?}"
    );
    // everyone else is unaffected
    assert_eq!(
        h.checkout("bystander", "b-1", &cart(&[("MUG-1", 1)]))
            .await
            .status,
        202
    );
}

#[tokio::test]
async fn state_changes_need_the_token_and_an_allowed_origin() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 1299, 10).await;
    let cookie_only = Request::builder()
        .method(Method::POST)
        .uri("/checkout")
        .header("cookie", "session=abc")
        .header("idempotency-key", "c-1")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(cart(&[("MUG-1", 1)]).to_string()))
        .unwrap();
    let a = h.send(cookie_only).await;
    assert_eq!(a.status, 401);
    let foreign = Request::builder()
        .method(Method::POST)
        .uri("/checkout")
        .header("authorization", format!("Bearer {}", h.shopper("alice")))
        .header("origin", "https://evil.example")
        .header("idempotency-key", "c-2")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(cart(&[("MUG-1", 1)]).to_string()))
        .unwrap();
    let b = h.send(foreign).await;
    assert_eq!(b.status, 403);
    assert_eq!(error_code(&b), "forbidden_origin");
    let allowed = Request::builder()
        .method(Method::POST)
        .uri("/checkout")
        .header("authorization", format!("Bearer {}", h.shopper("alice")))
        .header("origin", "http://localhost:3000")
        .header("idempotency-key", "c-3")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(cart(&[("MUG-1", 1)]).to_string()))
        .unwrap();
    assert_eq!(h.send(allowed).await.status, 202);
    assert_eq!(h.stock("MUG-1").await, 9);
}

#[tokio::test]
async fn an_order_written_but_not_queued_is_kept_pending_payment() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 1299, 10).await;
    // the same function, its queue URL pointing nowhere
    let checkout = h.checkout_container(
        "CheckoutFunction",
        "unqueued",
        &[("ORDER_QUEUE_URL", "http://127.0.0.1:9/000000000000/gone")],
    );
    let attempt = Attempt {
        user: "alice".into(),
        key: "k-1".into(),
        fingerprint: "fp-1".into(),
        body: CheckoutRequest {
            items: vec![CartLine {
                sku: "MUG-1".into(),
                quantity: 1,
            }],
            payment_token: "tok_ok".into(),
        },
    };
    let outcome = checkout.cart(&attempt, h.now()).await.unwrap();
    let Outcome::Accepted {
        order_id, queued, ..
    } = outcome
    else {
        panic!("not accepted: {outcome:?}");
    };
    assert!(!queued, "the send failed and the outcome says so");
    let orders = shared::store::orders::OrderStore::new(
        aws_sdk_dynamodb::Client::new(&h.stack.sdk),
        h.stack.stack.table("OrdersTable"),
    );
    let order = orders
        .get(&order_id)
        .await
        .unwrap()
        .expect("the order is stored");
    assert_eq!(order.status, OrderStatus::PendingPayment);
    assert!(
        order.expires_at > h.now(),
        "its reservation expiry bounds it"
    );
    assert_eq!(h.stock("MUG-1").await, 9, "and its stock stays reserved");
}

/// Issue 8 item 5: the order index is sharded, and the sweeper's read
/// ("orders in a status whose reservation has run out") still finds them all.
#[tokio::test]
async fn orders_due_for_the_sweeper_are_found_across_the_index_shards() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 1299, 100).await;
    let mut placed = Vec::new();
    for i in 0..6 {
        let a = h
            .checkout(&format!("buyer-{i}"), "k", &cart(&[("MUG-1", 1)]))
            .await;
        assert_eq!(a.status, 202, "{}", a.body);
        placed.push(a.body["order_id"].as_str().unwrap().to_owned());
    }
    let orders = shared::store::orders::OrderStore::new(
        aws_sdk_dynamodb::Client::new(&h.stack.sdk),
        h.stack.stack.table("OrdersTable"),
    );
    let later = h.now() + chrono::Duration::minutes(16);
    let mut due = orders
        .due(OrderStatus::PendingPayment, later, 100)
        .await
        .unwrap();
    due.sort();
    placed.sort();
    assert_eq!(due, placed, "every order, whichever shard it is in");
    let not_yet = orders
        .due(OrderStatus::PendingPayment, h.now(), 100)
        .await
        .unwrap();
    assert!(not_yet.is_empty(), "{not_yet:?}");
    assert!(
        orders
            .due(OrderStatus::Paid, later, 100)
            .await
            .unwrap()
            .is_empty()
    );
}
