//! Catalog and flash-sale administration, its guard, and its audit trail.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use crate::common::{Harness, error_code};
use chrono::{DateTime, Duration, Utc};
use http::{Method, Request};
use serde_json::{Value, json};

fn sale(now: DateTime<Utc>, id: &str, sku: &str, quantity: u32) -> Value {
    json!({
        "sale_id": id, "sku": sku, "price": {"amount": 900, "currency": "EUR"}, "quantity": quantity,
        "starts_at": (now - Duration::minutes(1)).to_rfc3339(), "ends_at": (now + Duration::hours(1)).to_rfc3339(),
        "per_user_limit": 2, "shards": 8
    })
}

async fn stock(h: &Harness, sku: &str) -> i64 {
    h.get(&format!("/products/{sku}")).await.body["stock"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn put_creates_then_replaces_a_product_keeping_its_creation_time() {
    let h = Harness::new().await;
    let body = |stock: i64| json!({"name": "Mug", "price": {"amount": 1299, "currency": "EUR"}, "category": "kitchen", "stock": stock});
    let first = h
        .call(
            Method::PUT,
            "/admin/products/MUG-1",
            Some(&h.admin()),
            Some(body(5)),
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.headers["location"], "/products/MUG-1");
    let second = h
        .call(
            Method::PUT,
            "/admin/products/MUG-1",
            Some(&h.admin()),
            Some(body(9)),
        )
        .await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body["created_at"], first.body["created_at"]);
    assert_eq!(stock(&h, "MUG-1").await, 9);
}

#[tokio::test]
async fn invalid_products_are_400_with_the_field_named_and_nothing_written() {
    let h = Harness::new().await;
    let good = json!({"name": "Mug", "price": {"amount": 1299, "currency": "EUR"}, "category": "kitchen", "stock": 5});
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let cases = [
        (
            with("price", json!({"amount": -1, "currency": "EUR"})),
            "price.amount",
        ),
        (
            with("price", json!({"amount": 12.5, "currency": "EUR"})),
            "price.amount",
        ),
        (
            with("price", json!({"amount": 100, "currency": "EURO"})),
            "price.currency",
        ),
        (with("stock", json!(-3)), "stock"),
        (with("stock", json!("many")), "stock"),
        (with("name", json!("")), "name"),
        (with("name", json!("x".repeat(500))), "name"),
        (with("category", json!("Has Space")), "category"),
        (with("surprise", json!(1)), "surprise"),
    ];
    for (body, field) in cases {
        let a = h
            .call(
                Method::PUT,
                "/admin/products/MUG-2",
                Some(&h.admin()),
                Some(body.clone()),
            )
            .await;
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        assert_eq!(error_code(&a), "invalid_request");
        assert_eq!(a.body["details"]["field"], field, "{body}");
    }
    let bad_sku = h
        .call(
            Method::PUT,
            "/admin/products/p1:MUG",
            Some(&h.admin()),
            Some(good),
        )
        .await;
    assert_eq!(bad_sku.status, 400);
    assert_eq!(bad_sku.body["details"]["field"], "sku");
    assert_eq!(
        h.get("/products/MUG-2").await.status,
        404,
        "nothing was written"
    );
}

#[tokio::test]
async fn a_flash_sale_moves_its_quantity_out_of_product_stock() {
    let h = Harness::new().await;
    h.product("TV-1", "tv", 50000, 100).await;
    let a = h
        .call(
            Method::POST,
            "/admin/flash-sales",
            Some(&h.admin()),
            Some(sale(h.now(), "s1", "TV-1", 60)),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.headers["location"], "/flash-sales/s1");
    assert_eq!(a.body["state"], "active");
    assert_eq!(stock(&h, "TV-1").await, 40);
    let s = h.get("/flash-sales/s1").await;
    assert_eq!(
        s.body["remaining"], 60,
        "the shards hold the whole quantity"
    );
    assert_eq!(s.body["shards"], 8);

    // a second sale that needs more than is left: 409, and nothing moves
    let b = h
        .call(
            Method::POST,
            "/admin/flash-sales",
            Some(&h.admin()),
            Some(sale(h.now(), "s2", "TV-1", 41)),
        )
        .await;
    assert_eq!(b.status, 409);
    assert_eq!(error_code(&b), "insufficient_stock");
    assert_eq!(b.body["details"]["sku"], "TV-1");
    assert_eq!(b.body["details"]["available"], 40);
    assert_eq!(stock(&h, "TV-1").await, 40);
    assert_eq!(h.get("/flash-sales/s2").await.status, 404);

    // the same sale id again: 409 and nothing moves
    let c = h
        .call(
            Method::POST,
            "/admin/flash-sales",
            Some(&h.admin()),
            Some(sale(h.now(), "s1", "TV-1", 10)),
        )
        .await;
    assert_eq!(c.status, 409);
    assert_eq!(error_code(&c), "already_exists");
    assert_eq!(stock(&h, "TV-1").await, 40);
}

#[tokio::test]
async fn concurrent_sales_never_take_more_than_the_stock() {
    let h = Harness::new().await;
    h.product("HOT-1", "tv", 1000, 100).await;
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..10 {
        let (router, token, now) = (h.router.clone(), h.admin(), h.now());
        racers.spawn(async move {
            crate::common::call(
                router,
                Method::POST,
                "/admin/flash-sales",
                Some(&token),
                Some(sale(now, &format!("race-{i}"), "HOT-1", 30)),
            )
            .await
            .status
            .as_u16()
        });
    }
    let statuses: Vec<u16> = racers.join_all().await;
    let created = statuses.iter().filter(|s| **s == 201).count();
    assert_eq!(created, 3, "100 units hold three sales of 30: {statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    assert_eq!(stock(&h, "HOT-1").await, 10);
}

#[tokio::test]
async fn sale_rules_are_enforced_before_anything_is_written() {
    let h = Harness::new().await;
    h.product("TV-2", "tv", 50000, 100).await;
    let now = h.now();
    let mut backwards = sale(h.now(), "b1", "TV-2", 8);
    backwards["ends_at"] = json!((now - Duration::hours(2)).to_rfc3339());
    let a = h
        .call(
            Method::POST,
            "/admin/flash-sales",
            Some(&h.admin()),
            Some(backwards),
        )
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["details"]["field"], "ends_at");

    let mut usd = sale(h.now(), "b2", "TV-2", 8);
    usd["price"] = json!({"amount": 900, "currency": "USD"});
    let b = h
        .call(
            Method::POST,
            "/admin/flash-sales",
            Some(&h.admin()),
            Some(usd),
        )
        .await;
    assert_eq!(b.status, 422);
    assert_eq!(error_code(&b), "rule_violation");
    assert_eq!(b.body["details"]["rule"], "currency_mismatch");

    let c = h
        .call(
            Method::POST,
            "/admin/flash-sales",
            Some(&h.admin()),
            Some(sale(h.now(), "b3", "NO-SUCH", 8)),
        )
        .await;
    assert_eq!(c.status, 404);
    assert_eq!(c.body["details"]["sku"], "NO-SUCH");

    let mut bad_date = sale(h.now(), "b4", "TV-2", 8);
    bad_date["starts_at"] = json!("tomorrow");
    let d = h
        .call(
            Method::POST,
            "/admin/flash-sales",
            Some(&h.admin()),
            Some(bad_date),
        )
        .await;
    assert_eq!(d.status, 400);
    assert_eq!(d.body["details"]["field"], "starts_at");
    assert_eq!(stock(&h, "TV-2").await, 100);
}

#[tokio::test]
async fn non_admins_are_refused_and_every_attempt_is_audited() {
    let h = Harness::new().await;
    let body = json!({"name": "x", "price": {"amount": 1, "currency": "EUR"}, "category": "c", "stock": 1});
    let denied = h
        .call(
            Method::PUT,
            "/admin/products/X-1",
            Some(&h.shopper("mallory")),
            Some(body.clone()),
        )
        .await;
    assert_eq!(denied.status, 403);
    assert_eq!(error_code(&denied), "forbidden");
    assert_eq!(h.get("/products/X-1").await.status, 404);

    let no_token = h
        .call(Method::PUT, "/admin/products/X-1", None, Some(body.clone()))
        .await;
    assert_eq!(no_token.status, 401);
    assert_eq!(error_code(&no_token), "unauthorized");

    h.call(
        Method::PUT,
        "/admin/products/X-2",
        Some(&h.admin()),
        Some(body),
    )
    .await;
    let audit = h
        .call(Method::GET, "/admin/audit?limit=10", Some(&h.admin()), None)
        .await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    let items = audit.body["items"].as_array().unwrap();
    // newest first: the allowed PUT, then mallory's refusal
    assert_eq!(items[0]["action"], "PUT /admin/products/{sku}");
    assert_eq!(items[0]["target"], "X-2");
    assert_eq!(items[0]["outcome"], "allowed");
    let refusal = items
        .iter()
        .find(|e| e["actor"] == "mallory")
        .expect("mallory's attempt is audited");
    assert_eq!(refusal["outcome"], "denied");
    assert_eq!(refusal["target"], "X-1");
    assert!(!refusal["source_ip"].as_str().unwrap().is_empty());
    assert!(!refusal["request_id"].as_str().unwrap().is_empty());

    let shopper_reads = h
        .call(Method::GET, "/admin/audit", Some(&h.shopper("eve")), None)
        .await;
    assert_eq!(shopper_reads.status, 403);
}

#[tokio::test]
async fn state_changes_from_a_foreign_origin_are_refused() {
    let h = Harness::new().await;
    let req = Request::builder()
        .method(Method::PUT)
        .uri("/admin/products/X-3")
        .header("authorization", format!("Bearer {}", h.admin()))
        .header("origin", "https://evil.example")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(
            json!({"name": "x", "price": {"amount": 1, "currency": "EUR"}, "category": "c", "stock": 1}).to_string(),
        ))
        .unwrap();
    let a = h.send(req).await;
    assert_eq!(a.status, 403);
    assert_eq!(error_code(&a), "forbidden_origin");
    assert_eq!(h.get("/products/X-3").await.status, 404);
}

/// Issue 8 item 3: a non-admin flooding denied requests with forged text in the
/// path neither floods nor forges the trail.
#[tokio::test]
async fn a_flood_of_forged_denials_is_one_summary_with_no_forged_lines() {
    let h = Harness::new().await;
    h.product("REAL-0", "kitchen", 100, 1).await;
    // the flood starts a second into a minute, so it falls in one 60 s window
    let into_minute = h.now().timestamp().rem_euclid(60);
    h.clock.advance(Duration::seconds(61 - into_minute));
    let body = json!({"name": "x", "price": {"amount": 1, "currency": "EUR"}, "category": "c", "stock": 1});
    for i in 0..25 {
        let a = h
            .call(
                Method::PUT,
                &format!(
                    "/admin/products/X{i}%0A2026-11-22%20admin%20allowed%20{}",
                    "A".repeat(300)
                ),
                Some(&h.shopper("mallory")),
                Some(body.clone()),
            )
            .await;
        assert_eq!(a.status, 403);
    }
    h.product("REAL-1", "kitchen", 100, 1).await;
    let page = h
        .call(Method::GET, "/admin/audit?limit=50", Some(&h.admin()), None)
        .await;
    let items = page.body["items"].as_array().unwrap();
    assert_eq!(
        items[0]["target"], "REAL-1",
        "the admin's own change is on top"
    );
    assert!(
        items.iter().any(|e| e["target"] == "REAL-0"),
        "and what came before the flood is still on the first page"
    );
    let mallory: Vec<&Value> = items.iter().filter(|e| e["actor"] == "mallory").collect();
    let full = mallory.iter().filter(|e| e["outcome"] == "denied").count();
    let summaries = mallory
        .iter()
        .filter(|e| e["outcome"] == "denied_summary")
        .count();
    assert_eq!((full, summaries), (5, 1), "{mallory:?}");
    for e in &mallory {
        let target = e["target"].as_str().unwrap();
        assert!(!target.chars().any(char::is_control), "{target:?}");
        assert!(target.chars().count() <= 101 || e["outcome"] == "denied_summary");
    }
}

#[tokio::test]
async fn a_partner_gets_keys_shown_once_stored_as_hashes_and_revoked_for_good() {
    use shared::domain::api_key::ApiKey;
    use shared::store::partners::PartnerStore;
    let h = Harness::new().await;
    let admin = h.admin();
    let store = PartnerStore::new(
        aws_sdk_dynamodb::Client::new(&h.stack.sdk),
        h.stack.stack.table("PartnersTable"),
    );
    let created = h
        .call(
            Method::POST,
            "/admin/partners",
            Some(&admin),
            Some(json!({"name": "Acme Outdoor GmbH", "feed_version": 2})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let partner_id = created.body["partner_id"].as_str().unwrap().to_owned();
    assert!(partner_id.starts_with("acme-outdoor-gmbh-"), "{partner_id}");
    assert_eq!(
        (
            created.body["feed_version"].clone(),
            created.body["validation"].clone()
        ),
        (json!(2), json!("lenient"))
    );
    let first = ApiKey::parse(created.body["api_key"].as_str().unwrap()).unwrap();
    assert_eq!(first.key_id, created.body["key_id"]);
    // only the hash is kept, and it is the secret's
    let stored = store.key(&first.key_id).await.unwrap().unwrap();
    assert_eq!(stored.partner_id, partner_id);
    assert!(first.matches(&stored.secret_hash));
    assert!(
        !created.body["api_key"]
            .as_str()
            .unwrap()
            .contains(&stored.secret_hash)
    );
    // a second key (rotation): both valid until one is revoked
    let keys = format!("/admin/partners/{partner_id}/keys");
    let added = h.call(Method::POST, &keys, Some(&admin), None).await;
    assert_eq!(added.status, 201, "{}", added.body);
    let second = ApiKey::parse(added.body["api_key"].as_str().unwrap()).unwrap();
    assert_ne!(second.key_id, first.key_id);
    assert!(
        second.matches(
            &store
                .key(&second.key_id)
                .await
                .unwrap()
                .unwrap()
                .secret_hash
        )
    );
    // revoked: once, then again to no effect; another partner's key is not found
    let revoke = format!("{keys}/{}", first.key_id);
    assert_eq!(
        h.call(Method::DELETE, &revoke, Some(&admin), None)
            .await
            .status,
        204
    );
    let revoked_at = store.key(&first.key_id).await.unwrap().unwrap().revoked_at;
    assert!(revoked_at.is_some());
    assert_eq!(
        h.call(Method::DELETE, &revoke, Some(&admin), None)
            .await
            .status,
        204
    );
    assert_eq!(
        store.key(&first.key_id).await.unwrap().unwrap().revoked_at,
        revoked_at
    );
    assert!(
        store
            .key(&second.key_id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    let other = h
        .call(
            Method::POST,
            "/admin/partners",
            Some(&admin),
            Some(json!({"name": "Other", "partner_id": "other-co"})),
        )
        .await;
    assert_eq!(other.body["partner_id"], "other-co");
    let crossed = format!("/admin/partners/other-co/keys/{}", second.key_id);
    let refused = h.call(Method::DELETE, &crossed, Some(&admin), None).await;
    assert_eq!(refused.status, 404);
    assert_eq!(error_code(&refused), "not_found");
    assert!(
        store
            .key(&second.key_id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    let unknown = h
        .call(
            Method::POST,
            "/admin/partners/nobody/keys",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(unknown.status, 404);
    // an id that could not be a key is the caller's 400, before DynamoDB sees it
    let long = format!("/admin/partners/{}/keys/k", "p".repeat(3000));
    let refused = h.call(Method::DELETE, &long, Some(&admin), None).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.body["details"]["field"], "partner_id");
    let again = h
        .call(
            Method::POST,
            "/admin/partners",
            Some(&admin),
            Some(json!({"name": "Copy", "partner_id": "other-co"})),
        )
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(error_code(&again), "already_exists");
    let bad = h
        .call(
            Method::POST,
            "/admin/partners",
            Some(&admin),
            Some(json!({"name": "X", "partner_id": "a:b"})),
        )
        .await;
    assert_eq!(bad.status, 400);
    let shopper = h
        .call(
            Method::POST,
            "/admin/partners",
            Some(&h.shopper("s1")),
            Some(json!({"name": "Sneaky"})),
        )
        .await;
    assert_eq!(shopper.status, 403);
    // the audit trail names the partner and key, never the key's secret
    let audit = h
        .call(Method::GET, "/admin/audit?limit=50", Some(&admin), None)
        .await;
    let trail = audit.body.to_string();
    assert!(trail.contains(&partner_id));
    assert!(!trail.contains(created.body["api_key"].as_str().unwrap()));
    assert!(!trail.contains(added.body["api_key"].as_str().unwrap()));
}
