//! The public catalog and flash sales through the local gateway.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use crate::common::{Harness, error_code};
use chrono::Duration;
use http::Method;
use serde_json::json;
use std::collections::BTreeSet;

#[tokio::test]
async fn products_page_through_the_whole_catalog_with_opaque_cursors() {
    let h = Harness::new().await;
    for i in 0..7 {
        h.product(
            &format!("SKU-{i}"),
            if i % 2 == 0 { "even" } else { "odd" },
            100 + i,
            5,
        )
        .await;
    }
    let mut seen = BTreeSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/products?limit=3&cursor={c}"),
            None => "/products?limit=3".to_owned(),
        };
        let a = h.get(&path).await;
        assert_eq!(a.status, 200, "{}", a.body);
        for item in a.body["items"].as_array().unwrap() {
            assert!(
                seen.insert(item["sku"].as_str().unwrap().to_owned()),
                "a product came twice"
            );
        }
        pages += 1;
        match a.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(seen.len(), 7);

    let odd = h.get("/products?category=odd&limit=100").await;
    let skus: Vec<&str> = odd.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus, vec!["SKU-1", "SKU-3", "SKU-5"]);
    // a cursor of one category's listing does not page another's: 400, not 500
    let first = h.get("/products?category=odd&limit=1").await;
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let crossed = h
        .get(&format!("/products?category=even&cursor={cursor}"))
        .await;
    assert_eq!(crossed.status, 400, "{}", crossed.body);
    assert_eq!(crossed.body["details"]["field"], "cursor");
}

#[tokio::test]
async fn a_product_is_served_with_integer_money_and_unknown_ones_are_404() {
    let h = Harness::new().await;
    h.product("MUG-1", "kitchen", 1299, 10).await;
    let a = h.get("/products/MUG-1").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["price"], json!({"amount": 1299, "currency": "EUR"}));
    assert_eq!(a.body["stock"], 10);
    assert!(a.body["created_at"].as_str().unwrap().ends_with('Z'));

    let missing = h.get("/products/NOPE").await;
    assert_eq!(missing.status, 404);
    assert_eq!(error_code(&missing), "not_found");
    assert_eq!(missing.body["details"]["sku"], "NOPE");
}

#[tokio::test]
async fn bad_listing_parameters_are_400_with_the_field_named() {
    let h = Harness::new().await;
    for (path, field) in [
        ("/products?limit=0", "limit"),
        ("/products?limit=101", "limit"),
        ("/products?limit=abc", "limit"),
        ("/products?category=no%20spaces", "category"),
        ("/products?cursor=garbage", "cursor"),
        ("/products?cursor=eyJwayI6IngifQ", "cursor"),
    ] {
        let a = h.get(path).await;
        assert_eq!(a.status, 400, "{path}: {}", a.body);
        assert_eq!(error_code(&a), "invalid_request");
        assert_eq!(a.body["details"]["field"], field, "{path}");
    }
}

#[tokio::test]
async fn a_flash_sale_state_follows_its_window() {
    let h = Harness::new().await;
    h.product("TV-1", "tv", 50000, 100).await;
    let now = h.now();
    for (id, start, end, want) in [
        (
            "upcoming",
            now + Duration::hours(1),
            now + Duration::hours(2),
            "upcoming",
        ),
        (
            "active",
            now - Duration::minutes(1),
            now + Duration::hours(2),
            "active",
        ),
    ] {
        let a = h
            .call(
                Method::POST,
                "/admin/flash-sales",
                Some(&h.admin()),
                Some(json!({
                    "sale_id": id, "sku": "TV-1", "price": {"amount": 40000, "currency": "EUR"},
                    "quantity": 10, "starts_at": start.to_rfc3339(), "ends_at": end.to_rfc3339(),
                    "per_user_limit": 1, "shards": 4
                })),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        let got = h.get(&format!("/flash-sales/{id}")).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body["state"], want);
        assert_eq!(got.body["remaining"], 10);
        assert_eq!(got.body["per_user_limit"], 1);
    }
    let missing = h.get("/flash-sales/none-such").await;
    assert_eq!(missing.status, 404);
    assert_eq!(error_code(&missing), "not_found");
}
