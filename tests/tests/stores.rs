//! The stores on their own, against the emulator: what they refuse without
//! any handler's help.

use crate::common::Harness;
use flashcart_local::sdk_config;
use shared::domain::flash_sale::FlashSale;
use shared::domain::money::Money;
use shared::domain::order::{Order, OrderLine};
use shared::domain::throttle::Throttle;
use shared::store::catalog::CatalogStore;
use shared::store::flash_sales::FlashSaleStore;
use shared::store::partners::{ApiKeyRecord, CreatePartnerError, Partner, PartnerStore};
use shared::store::requests::RequestKey;
use shared::store::reservations::{Reservation, ReservationStore, ReserveError, ShardMemory};

struct NoMemory;

impl ShardMemory for NoMemory {
    fn known_empty(&self, _: u32) -> bool {
        false
    }
    fn found_empty(&self, _: u32) {}
}

#[tokio::test]
async fn the_store_refuses_a_flash_quantity_above_the_limit_on_its_own() {
    let h = Harness::new().await;
    h.product("TV-1", "tv", 50000, 100).await;
    h.flash_sale("one-each", "TV-1", 10, 2, 1).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&h.stack.sdk);
    let catalog = CatalogStore::new(dynamo.clone(), h.stack.stack.table("CatalogTable"));
    let sales = FlashSaleStore::new(
        dynamo.clone(),
        h.stack.stack.table("FlashSalesTable"),
        catalog,
    );
    let sale: FlashSale = sales.get_sale("one-each").await.unwrap().unwrap();
    let tables = shared::config::Tables::from_source(&h.env_of("FlashCheckoutFunction")).unwrap();
    let store = ReservationStore::new(dynamo, &tables);
    let price = Money {
        amount: 500,
        currency: "EUR".into(),
    };
    let order = Order::new(
        "first-timer",
        vec![OrderLine {
            sku: "TV-1".into(),
            quantity: 2,
            unit_price: price.clone(),
        }],
        Money {
            amount: 1000,
            ..price
        },
        "tok_ok".into(),
        Some("one-each".into()),
        h.now(),
    );
    let reservation = Reservation {
        order: &order,
        request: RequestKey {
            user: "first-timer",
            key: "k-1",
            fingerprint: "fp",
        },
        answer: "{}",
        throttle: &Throttle {
            burst: 5,
            window_secs: 10,
        },
    };
    let refused = store
        .reserve_flash(&reservation, &sale, 2, &NoMemory)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ReserveError::LimitReached { limit: 1 }),
        "{refused:?}"
    );
    assert_eq!(h.get("/flash-sales/one-each").await.body["remaining"], 10);
    let order_read = h
        .call(
            http::Method::GET,
            &format!("/orders/{}", order.order_id),
            Some(&h.admin()),
            None,
        )
        .await;
    assert_eq!(order_read.status, 404, "no order was written");
}

#[tokio::test]
async fn a_partner_that_exists_is_told_from_a_taken_key_id() {
    let h = Harness::new().await;
    let store = PartnerStore::new(
        aws_sdk_dynamodb::Client::new(&h.stack.sdk),
        h.stack.stack.table("PartnersTable"),
    );
    let partner = |id: &str| Partner {
        partner_id: id.into(),
        name: id.into(),
        created_at: h.now(),
        feed_version: 1,
        validation: Default::default(),
    };
    let key = |key_id: &str, partner_id: &str| ApiKeyRecord {
        key_id: key_id.into(),
        partner_id: partner_id.into(),
        secret_hash: "00".repeat(32),
        created_at: h.now(),
        revoked_at: None,
    };
    store
        .create(&partner("p1"), &key("k1", "p1"))
        .await
        .unwrap();
    let again = store
        .create(&partner("p1"), &key("k2", "p1"))
        .await
        .unwrap_err();
    assert!(
        matches!(again, CreatePartnerError::AlreadyExists(ref id) if id == "p1"),
        "{again:?}"
    );
    let taken = store
        .create(&partner("p2"), &key("k1", "p2"))
        .await
        .unwrap_err();
    assert!(
        matches!(taken, CreatePartnerError::KeyIdTaken(ref id) if id == "k1"),
        "{taken:?}"
    );
}

#[tokio::test]
async fn a_dropped_harness_leaves_no_table_or_queue_behind() {
    let h = Harness::new().await;
    let tables: Vec<String> = h.stack.stack.tables.values().cloned().collect();
    let queues: Vec<String> = h
        .stack
        .stack
        .queues
        .values()
        .map(|q| q.name.clone())
        .collect();
    assert!(!tables.is_empty() && !queues.is_empty());
    drop(h);
    let sdk = sdk_config(false).await.unwrap();
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    for t in &tables {
        let described = dynamo.describe_table().table_name(t).send().await;
        let gone = described.as_ref().err().and_then(|e| e.as_service_error());
        assert!(
            gone.is_some_and(|e| e.is_resource_not_found_exception()),
            "table {t} is still there: {described:?}"
        );
    }
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    for q in &queues {
        let found = sqs.get_queue_url().queue_name(q).send().await;
        assert!(found.is_err(), "queue {q} is still there");
    }
}
