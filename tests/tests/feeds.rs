//! feed-ingest against the emulator: real S3 drops, the notifications S3
//! sends for them, the function as its queue's event source mapping runs it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use crate::common::Harness;
use aws_lambda_events::event::sqs::SqsEvent;
use flashcart_local::functions::SqsFn;
use flashcart_local::pollers::{Polled, QueuePoller};
use serde_json::Value;
use shared::feeds::import::{Import, ImportStatus, Validation};
use shared::store::imports::ImportStore;
use shared::store::partners::{ApiKeyRecord, Partner, PartnerStore};
use std::sync::Arc;
use std::time::Duration;

pub const HEADER: &str = "sku,name,price,currency,quantity,category,description";

/// A feed test's stack with partners `p1` (v1, lenient) and `p2` (v2, strict).
pub async fn with_partners() -> Harness {
    let h = Harness::new().await;
    let store = PartnerStore::new(h.dynamo(), h.stack.stack.table("PartnersTable"));
    for (id, version, validation) in [
        ("p1", 1, Validation::Lenient),
        ("p2", 2, Validation::Strict),
    ] {
        store
            .create(
                &Partner {
                    partner_id: id.into(),
                    name: id.into(),
                    created_at: h.now(),
                    feed_version: version,
                    validation,
                },
                &ApiKeyRecord {
                    key_id: format!("k{id}"),
                    partner_id: id.into(),
                    secret_hash: "00".repeat(32),
                    created_at: h.now(),
                    revoked_at: None,
                },
            )
            .await
            .unwrap();
    }
    h
}

impl Harness {
    pub fn dynamo(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.stack.sdk)
    }

    /// Puts `body` at `key` in the feeds bucket, with object metadata: the
    /// new version's id (the bucket is versioned, as deployed).
    pub async fn drop_feed(
        &self,
        key: &str,
        body: impl Into<Vec<u8>>,
        metadata: &[(&str, &str)],
    ) -> Option<String> {
        let mut put = aws_sdk_s3::Client::new(&self.stack.sdk)
            .put_object()
            .bucket(self.stack.stack.bucket("FeedsBucket"))
            .key(key)
            .body(body.into().into());
        for (k, v) in metadata {
            put = put.metadata(*k, *v);
        }
        put.send().await.unwrap().version_id
    }

    /// A feed-ingest container as the template configures it, with `change`.
    pub fn ingest_fn(&self, change: &[(&str, &str)]) -> SqsFn {
        let source = self.env_changed("FeedIngestFunction", change);
        let deps = Arc::new(
            feed_ingest::Deps::from_source(&source, &self.stack.sdk)
                .unwrap()
                .with_clock(self.clock.clone()),
        );
        Arc::new(move |event: SqsEvent| {
            let deps = deps.clone();
            Box::pin(async move { feed_ingest::handle(&deps, event).await })
        })
    }

    /// Runs feed-ingest (configured with `change`) over the feed queue until
    /// it is empty, as the event source mapping would, one message a call.
    pub async fn ingest_queued(&self, change: &[(&str, &str)]) -> Polled {
        let poller = QueuePoller {
            sqs: aws_sdk_sqs::Client::new(&self.stack.sdk),
            queue: self.stack.stack.queue("FeedEventsQueue").unwrap().clone(),
            region: self.stack.stack.region.clone(),
            batch_size: 1,
            handler: self.ingest_fn(change),
        };
        let mut total = Polled::default();
        let mut empty = 0;
        // S3's notification may reach the queue a moment after the PUT
        while empty < 2 {
            let p = poller.poll_once(Duration::from_millis(300)).await.unwrap();
            if p.received == 0 {
                empty += 1;
                continue;
            }
            empty = 0;
            total.received += p.received;
            total.deleted += p.deleted;
            total.failed += p.failed;
        }
        total
    }

    /// Every import of `partner`, newest first.
    pub async fn imports(&self, partner: &str) -> Vec<Import> {
        let out = self
            .dynamo()
            .query()
            .table_name(self.stack.stack.table("PartnersTable"))
            .index_name("by_partner")
            .key_condition_expression("gsi1pk = :p")
            .expression_attribute_values(
                ":p",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("PARTNER#{partner}")),
            )
            .scan_index_forward(false)
            .send()
            .await
            .unwrap();
        out.items()
            .iter()
            .map(|i| serde_dynamo::from_item(i.clone()).unwrap())
            .collect()
    }

    /// The one import of `partner` for `feed_id`.
    pub async fn import(&self, partner: &str, feed_id: &str) -> Import {
        let found: Vec<Import> = self
            .imports(partner)
            .await
            .into_iter()
            .filter(|i| i.feed_id == feed_id)
            .collect();
        assert_eq!(found.len(), 1, "imports of {partner}/{feed_id}: {found:?}");
        found.into_iter().next().unwrap()
    }

    pub async fn report(&self, partner: &str, feed_id: &str) -> Value {
        let out = aws_sdk_s3::Client::new(&self.stack.sdk)
            .get_object()
            .bucket(self.stack.stack.bucket("FeedsBucket"))
            .key(format!("reports/{partner}/{feed_id}.errors.json"))
            .send()
            .await
            .unwrap();
        let bytes = out.body.collect().await.unwrap().into_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// Every product the catalog holds, by SKU (name, price, stock).
    pub async fn catalog(&self) -> std::collections::BTreeMap<String, (String, i64, i64)> {
        let out = self
            .dynamo()
            .scan()
            .table_name(self.stack.stack.table("CatalogTable"))
            .send()
            .await
            .unwrap();
        out.items()
            .iter()
            .map(|i| {
                let p: shared::domain::product::Product =
                    serde_dynamo::from_item(i.clone()).unwrap();
                (p.sku, (p.name, p.price.amount, p.stock))
            })
            .collect()
    }

    pub fn imports_store(&self) -> ImportStore {
        ImportStore::new(self.dynamo(), self.stack.stack.table("PartnersTable"))
    }
}

fn csv(rows: &[&str]) -> String {
    let mut s = String::from(HEADER);
    for r in rows {
        s.push('\n');
        s.push_str(r);
    }
    s.push('\n');
    s
}

#[tokio::test]
async fn a_dropped_csv_lands_in_the_catalog_with_its_report() {
    let h = with_partners().await;
    h.drop_feed(
        "incoming/p1/spring.csv",
        csv(&[
            "MUG-1,Blue mug,12.99,EUR,40,kitchen,\"Stoneware, 350 ml\"",
            "MUG-2,,1.00,EUR,1,kitchen,",
            "MUG-3,Red mug,9.5,EUR,7,kitchen,",
        ]),
        &[],
    )
    .await;
    let polled = h.ingest_queued(&[]).await;
    // the notification, and the s3:TestEvent S3 sent when it was configured
    assert_eq!((polled.received, polled.deleted, polled.failed), (2, 2, 0));
    let import = h.import("p1", "spring").await;
    assert_eq!(import.status, ImportStatus::CompletedWithErrors);
    assert_eq!(
        (
            import.counts.rows,
            import.counts.ingested,
            import.counts.rejected,
            import.counts.skipped_older
        ),
        (3, 2, 1, 0)
    );
    let catalog = h.catalog().await;
    assert_eq!(catalog["p1:MUG-1"], ("Blue mug".into(), 1299, 40));
    assert_eq!(catalog["p1:MUG-3"], ("Red mug".into(), 950, 7));
    assert!(!catalog.contains_key("p1:MUG-2"));
    let report = h.report("p1", "spring").await;
    assert_eq!(report["import_id"], import.import_id.as_str());
    assert_eq!(report["errors"].as_array().unwrap().len(), 1);
    assert_eq!(report["errors"][0]["row"], 2);
    assert_eq!(report["errors"][0]["field"], "name");
    assert_eq!(report["errors"][0]["code"], "required");
    assert_eq!(report["file_error"], Value::Null);
    // what the storefront serves: the partner's product, read like any other
    let got = h.get("/products/p1:MUG-1").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["price"]["amount"], 1299);
}

/// The notifications waiting on the feed queue, taken off it (bodies only).
async fn take_notifications(h: &Harness, want: usize) -> Vec<String> {
    let sqs = aws_sdk_sqs::Client::new(&h.stack.sdk);
    let url = h.stack.stack.queue("FeedEventsQueue").unwrap().url.clone();
    let mut bodies = Vec::new();
    for _ in 0..20 {
        let got = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in got.messages() {
            sqs.delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
            let body = m.body().unwrap().to_owned();
            if body.contains("ObjectCreated") {
                bodies.push(body);
            }
        }
        if bodies.len() >= want {
            break;
        }
    }
    assert_eq!(bodies.len(), want, "{bodies:?}");
    bodies
}

/// Invokes feed-ingest with these message bodies, one message each.
async fn deliver(h: &Harness, bodies: &[&str]) -> usize {
    let mut event = SqsEvent::default();
    for (i, body) in bodies.iter().enumerate() {
        let mut m = aws_lambda_events::event::sqs::SqsMessage::default();
        m.message_id = Some(format!("m{i}"));
        m.body = Some((*body).to_owned());
        event.records.push(m);
    }
    let answer = h.ingest_fn(&[])(event).await.unwrap();
    answer.batch_item_failures.len()
}

/// The notification with its object's time moved by `seconds` and a
/// sequencer, as S3 would have sent it (moto sends none).
fn with_time_and_sequencer(body: &str, seconds: i64, sequencer: &str) -> String {
    let mut v: Value = serde_json::from_str(body).unwrap();
    let at: chrono::DateTime<chrono::Utc> = v["Records"][0]["eventTime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    v["Records"][0]["eventTime"] = Value::String(
        (at + chrono::Duration::seconds(seconds))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    v["Records"][0]["s3"]["object"]["sequencer"] = Value::String(sequencer.into());
    v.to_string()
}

#[tokio::test]
async fn strict_mode_applies_nothing_when_a_row_is_invalid() {
    let h = with_partners().await;
    let feed = csv(&[
        "TENT,Tent,10.00,EUR,1,outdoor,",
        "BAD,Bad,-1,EUR,1,outdoor,",
    ]);
    // p2's profile says strict; p1's says lenient, and metadata overrides it
    h.drop_feed("incoming/p2/a.csv", feed.clone(), &[]).await;
    h.drop_feed(
        "incoming/p1/b.csv",
        feed.clone(),
        &[("validation", "strict")],
    )
    .await;
    h.drop_feed(
        "incoming/p2/c.csv",
        feed,
        &[("validation", "lenient"), ("feed-version", "1")],
    )
    .await;
    let polled = h.ingest_queued(&[]).await;
    assert_eq!(polled.failed, 0);
    for (partner, feed) in [("p2", "a"), ("p1", "b")] {
        let import = h.import(partner, feed).await;
        assert_eq!(import.status, ImportStatus::Rejected, "{partner}/{feed}");
        assert_eq!(import.reason_code.as_deref(), Some("strict_invalid_rows"));
        assert_eq!(
            (
                import.counts.rows,
                import.counts.rejected,
                import.counts.ingested
            ),
            (2, 1, 0)
        );
        assert_eq!(h.report(partner, feed).await["errors"][0]["row"], 2);
    }
    let lenient = h.import("p2", "c").await;
    assert_eq!(lenient.status, ImportStatus::CompletedWithErrors);
    assert_eq!(lenient.feed_version, Some(1));
    let catalog = h.catalog().await;
    assert_eq!(catalog.keys().collect::<Vec<_>>(), ["p2:TENT"]);
}

#[tokio::test]
async fn a_file_that_cannot_be_read_is_rejected_and_changes_nothing() {
    let h = with_partners().await;
    let good = csv(&["KEEP,Kept,1.00,EUR,5,kitchen,"]);
    h.drop_feed("incoming/p1/first.csv", good.clone(), &[])
        .await;
    h.ingest_queued(&[]).await;
    let before = h.catalog().await;
    let mut cut = crate::feed_fixtures::gzip(
        csv(&[
            "KEEP,Changed,9.00,EUR,1,kitchen,",
            "NEW,New,1.00,EUR,1,kitchen,",
        ])
        .as_bytes(),
    );
    cut.truncate(cut.len() - 8);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "incoming/p1/laughs.xml",
            crate::feed_fixtures::fixture("billion-laughs.xml"),
            "malformed",
        ),
        (
            "incoming/p1/xxe.xml",
            crate::feed_fixtures::fixture("external-entity.xml"),
            "malformed",
        ),
        (
            "incoming/p1/utf.csv",
            crate::feed_fixtures::fixture("bad-utf8.csv"),
            "bad_utf8",
        ),
        ("incoming/p1/empty.csv", Vec::new(), "empty"),
        ("incoming/p1/cut.csv.gz", cut, "bad_gzip"),
        (
            "incoming/p1/big.csv",
            csv(&["KEEP,Changed,9.00,EUR,1,kitchen,"; 40]).into_bytes(),
            "too_large",
        ),
        (
            "incoming/nobody/x.csv",
            good.clone().into_bytes(),
            "unknown_partner",
        ),
        (
            "incoming/p1/meta.csv",
            good.clone().into_bytes(),
            "bad_metadata",
        ),
    ];
    for (key, body, _) in &cases {
        let meta: &[(&str, &str)] = if key.ends_with("meta.csv") {
            &[("feed-version", "3")]
        } else {
            &[]
        };
        h.drop_feed(key, body.clone(), meta).await;
    }
    let polled = h.ingest_queued(&[("FEED_MAX_BYTES", "1000")]).await;
    assert_eq!(polled.failed, 0);
    for (key, _, code) in &cases {
        let parts: Vec<&str> = key.split('/').collect();
        let feed = parts[2].split('.').next().unwrap();
        let import = h.import(parts[1], feed).await;
        assert_eq!(import.status, ImportStatus::Rejected, "{key}");
        assert_eq!(
            import.reason_code.as_deref(),
            Some(*code),
            "{key}: {:?}",
            import.reason
        );
        assert!(import.reason.as_deref().is_some_and(|r| !r.is_empty()));
        assert_eq!(import.counts.ingested, 0);
    }
    // the report says why too, for a file read as far as it could be
    assert!(
        h.report("p1", "cut").await["file_error"]
            .as_str()
            .unwrap()
            .contains("gzip")
    );
    assert_eq!(h.catalog().await, before);
}

#[tokio::test]
async fn the_same_notification_twice_ingests_once() {
    let h = with_partners().await;
    h.drop_feed(
        "incoming/p1/twice.csv",
        csv(&["A,A,1.00,EUR,3,kitchen,"]),
        &[],
    )
    .await;
    let body = take_notifications(&h, 1).await.remove(0);
    assert_eq!(deliver(&h, &[&body, &body]).await, 0);
    // a sale after the import keeps its effect: a later redelivery writes nothing
    h.dynamo()
        .update_item()
        .table_name(h.stack.stack.table("CatalogTable"))
        .set_key(Some(shared::store::keys::catalog::product("p1:A")))
        .update_expression("ADD stock :m")
        .expression_attribute_values(
            ":m",
            aws_sdk_dynamodb::types::AttributeValue::N("-1".into()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deliver(&h, &[&body]).await, 0);
    assert_eq!(h.catalog().await["p1:A"].2, 2);
    let import = h.import("p1", "twice").await;
    assert_eq!(import.status, ImportStatus::Completed);
    assert_eq!(import.counts.ingested, 1);
    assert_eq!(import.run, 1, "no later delivery took it over");
    assert_eq!(
        h.imports_store()
            .get(&import.import_id)
            .await
            .unwrap()
            .unwrap(),
        import
    );
    let admin = h.admin();
    let audit = h
        .call(
            http::Method::GET,
            "/admin/audit?limit=50",
            Some(&admin),
            None,
        )
        .await;
    let imports = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "feed import")
        .count();
    assert_eq!(imports, 1, "one audit record per import");
}

#[tokio::test]
async fn an_older_feed_never_overwrites_a_newer_one() {
    let h = with_partners().await;
    h.drop_feed(
        "incoming/p1/old.csv",
        csv(&["A,Old A,1.00,EUR,1,kitchen,", "B,Old B,1.00,EUR,1,kitchen,"]),
        &[],
    )
    .await;
    h.drop_feed(
        "incoming/p1/new.csv",
        csv(&["A,New A,2.00,EUR,2,kitchen,"]),
        &[],
    )
    .await;
    let bodies = take_notifications(&h, 2).await;
    let (old, new) = if bodies[0].contains("old.csv") {
        (&bodies[0], &bodies[1])
    } else {
        (&bodies[1], &bodies[0])
    };
    let old = with_time_and_sequencer(old, 0, "0A");
    let new = with_time_and_sequencer(new, 60, "0B");
    // the newer arrives first
    assert_eq!(deliver(&h, &[&new]).await, 0);
    assert_eq!(deliver(&h, &[&old]).await, 0);
    let catalog = h.catalog().await;
    assert_eq!(catalog["p1:A"], ("New A".into(), 200, 2));
    assert_eq!(catalog["p1:B"], ("Old B".into(), 100, 1));
    let old_import = h.import("p1", "old").await;
    assert_eq!(old_import.status, ImportStatus::Completed);
    assert_eq!(
        (old_import.counts.ingested, old_import.counts.skipped_older),
        (1, 1)
    );
}

#[tokio::test]
async fn an_older_event_of_the_same_key_is_superseded() {
    let h = with_partners().await;
    h.drop_feed(
        "incoming/p1/same.csv",
        csv(&["A,First,1.00,EUR,1,kitchen,"]),
        &[],
    )
    .await;
    h.drop_feed(
        "incoming/p1/same.csv",
        csv(&["A,Second,2.00,EUR,2,kitchen,"]),
        &[],
    )
    .await;
    let bodies = take_notifications(&h, 2).await;
    let first = with_time_and_sequencer(&bodies[0], 0, "00A1");
    let second = with_time_and_sequencer(&bodies[1], 1, "00A2");
    assert_eq!(deliver(&h, &[&second, &first]).await, 0);
    assert_eq!(h.catalog().await["p1:A"], ("Second".into(), 200, 2));
    assert_eq!(
        h.imports("p1").await.len(),
        1,
        "the older event made no import"
    );
}

#[tokio::test]
async fn two_feeds_at_once_end_in_the_newer_ones_state() {
    let h = with_partners().await;
    let rows = |name: &str, price: &str| -> Vec<String> {
        (0..300)
            .map(|i| format!("S{i},{name} {i},{price},EUR,{i},kitchen,"))
            .collect()
    };
    let a = rows("Older", "1.00");
    let b = rows("Newer", "2.00");
    h.drop_feed(
        "incoming/p1/a.csv",
        csv(&a.iter().map(String::as_str).collect::<Vec<_>>()),
        &[],
    )
    .await;
    h.drop_feed(
        "incoming/p1/b.csv",
        csv(&b.iter().map(String::as_str).collect::<Vec<_>>()),
        &[],
    )
    .await;
    let bodies = take_notifications(&h, 2).await;
    let (older, newer) = if bodies[0].contains("a.csv") {
        (&bodies[0], &bodies[1])
    } else {
        (&bodies[1], &bodies[0])
    };
    let older = with_time_and_sequencer(older, 0, "01");
    let newer = with_time_and_sequencer(newer, 1, "02");
    let (first, second) = ([older.as_str()], [newer.as_str()]);
    let (x, y) = tokio::join!(deliver(&h, &first), deliver(&h, &second));
    assert_eq!((x, y), (0, 0));
    let catalog = h.catalog().await;
    assert_eq!(catalog.len(), 300);
    assert!(
        catalog
            .values()
            .all(|(name, price, _)| name.starts_with("Newer") && *price == 200),
        "{catalog:?}"
    );
    let older = h.import("p1", "a").await;
    assert_eq!(older.counts.ingested + older.counts.skipped_older, 300);
}

#[tokio::test]
async fn a_feed_cut_by_the_deadline_ends_as_one_that_was_not() {
    let h = with_partners().await;
    // 1,000 rows, some SKUs twice (the later row wins), some invalid
    let rows: Vec<String> = (0..1000)
        .map(|i| match i % 97 {
            0 => format!("BAD{i},,1.00,EUR,1,kitchen,"),
            _ => format!(
                "S{},Name {i},{}.{:02},EUR,{},kitchen,",
                i % 700,
                1 + i % 50,
                i % 100,
                i
            ),
        })
        .collect();
    let feed = csv(&rows.iter().map(String::as_str).collect::<Vec<_>>());
    h.drop_feed("incoming/p1/whole.csv", feed.clone(), &[])
        .await;
    h.drop_feed(
        "incoming/p2/cut.csv",
        feed,
        &[("validation", "lenient"), ("feed-version", "1")],
    )
    .await;
    let whole = h.ingest_queued(&[]).await;
    assert_eq!((whole.received, whole.failed), (3, 0));
    // p2's import again, from scratch, stopping after every transaction
    let mut catalog = h.catalog().await;
    let cut_import = h.import("p2", "cut").await;
    h.dynamo()
        .delete_item()
        .table_name(h.stack.stack.table("PartnersTable"))
        .set_key(Some(shared::store::keys::partners::import(
            &cut_import.import_id,
        )))
        .send()
        .await
        .unwrap();
    catalog.retain(|sku, _| sku.starts_with("p1:"));
    for sku in h.catalog().await.keys().filter(|s| s.starts_with("p2:")) {
        h.dynamo()
            .delete_item()
            .table_name(h.stack.stack.table("CatalogTable"))
            .set_key(Some(shared::store::keys::catalog::product(sku)))
            .send()
            .await
            .unwrap();
    }
    h.drop_feed(
        "incoming/p2/cut.csv",
        h_feed_again(&rows),
        &[("validation", "lenient"), ("feed-version", "1")],
    )
    .await;
    let cut = h
        .ingest_queued(&[
            ("FEED_TIME_BUDGET_MS", "1"),
            ("FEED_DEADLINE_RESERVE_MS", "0"),
            ("FEED_WRITE_CONCURRENCY", "2"),
        ])
        .await;
    assert_eq!(cut.failed, 0);
    assert!(
        cut.received >= 6,
        "the import was handed over several times: {cut:?}"
    );
    let imports = h.imports("p2").await;
    let import = imports.iter().find(|i| i.feed_id == "cut").unwrap();
    assert_eq!(import.status, ImportStatus::CompletedWithErrors);
    assert!(import.run >= 6, "runs: {}", import.run);
    let whole_import = h.import("p1", "whole").await;
    assert_eq!(import.counts, whole_import.counts);
    let after = h.catalog().await;
    let p1: Vec<_> = after
        .iter()
        .filter(|(k, _)| k.starts_with("p1:"))
        .map(|(k, v)| (k.trim_start_matches("p1:").to_owned(), v.clone()))
        .collect();
    let p2: Vec<_> = after
        .iter()
        .filter(|(k, _)| k.starts_with("p2:"))
        .map(|(k, v)| (k.trim_start_matches("p2:").to_owned(), v.clone()))
        .collect();
    // S0..S699, less the four whose only rows are invalid (388, 485, 582, 679)
    assert_eq!(p1.len(), 696);
    assert_eq!(p1, p2);
    // the later row of a SKU won, as in a top-to-bottom upsert
    assert_eq!(after["p2:S5"].0, "Name 705");
}

/// The same rows in a new object version (a new ETag would need new bytes:
/// a trailing blank line changes none of the rows).
fn h_feed_again(rows: &[String]) -> String {
    let mut s = csv(&rows.iter().map(String::as_str).collect::<Vec<_>>());
    s.push('\n');
    s
}

#[tokio::test]
async fn a_continuation_whose_run_died_is_taken_over_not_lost() {
    let h = with_partners().await;
    let rows: Vec<String> = (0..450)
        .map(|i| format!("S{i},N {i},1.00,EUR,{i},kitchen,"))
        .collect();
    h.drop_feed(
        "incoming/p1/long.csv",
        csv(&rows.iter().map(String::as_str).collect::<Vec<_>>()),
        &[],
    )
    .await;
    let bodies = take_notifications(&h, 1).await;
    // one run: it writes a transaction and hands the rest over
    deliver_cut_short(&h, &bodies[0]).await;
    let handed = h.import("p1", "long").await;
    assert_eq!((handed.status, handed.run), (ImportStatus::Processing, 1));
    assert!(handed.next_row > 1);
    let continuation = take_notifications_any(&h).await;
    assert!(continuation.contains("continue_import"), "{continuation}");
    // the next run takes it, then dies without a word (its lease runs out)
    let died = h
        .imports_store()
        .take(
            &handed.import_id,
            1,
            h.now() - chrono::Duration::seconds(1),
            h.now(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(died.run, 2);
    // SQS hands the continuation (of run 1) over again: the import goes on
    assert!(
        h.ingest_fn(&[])(one_message(&continuation))
            .await
            .unwrap()
            .batch_item_failures
            .is_empty()
    );
    let done = h.import("p1", "long").await;
    assert_eq!(done.status, ImportStatus::Completed);
    assert_eq!(done.counts.ingested, 450);
    assert_eq!(h.catalog().await.len(), 450);
}

/// One message for feed-ingest, as its event source mapping hands it over.
fn one_message(body: &str) -> SqsEvent {
    let mut e = SqsEvent::default();
    let mut m = aws_lambda_events::event::sqs::SqsMessage::default();
    m.message_id = Some("m".into());
    m.body = Some(body.to_owned());
    e.records.push(m);
    e
}

/// Runs one message through feed-ingest with a time budget so short that
/// an import hands over after its first transaction.
async fn deliver_cut_short(h: &Harness, body: &str) {
    let short = h.ingest_fn(&[
        ("FEED_TIME_BUDGET_MS", "1"),
        ("FEED_DEADLINE_RESERVE_MS", "0"),
    ]);
    let answer = short(one_message(body)).await.unwrap();
    assert!(answer.batch_item_failures.is_empty());
}

#[tokio::test]
async fn a_message_that_finds_its_import_held_is_kept_until_the_lease_ends() {
    let h = with_partners().await;
    let rows: Vec<String> = (0..300)
        .map(|i| format!("S{i},N {i},1.00,EUR,{i},kitchen,"))
        .collect();
    h.drop_feed(
        "incoming/p1/held.csv",
        csv(&rows.iter().map(String::as_str).collect::<Vec<_>>()),
        &[],
    )
    .await;
    let notification = take_notifications(&h, 1).await.remove(0);
    deliver_cut_short(&h, &notification).await;
    let continuation = take_notifications_any(&h).await;
    // a run takes it and fails without releasing its lease (DynamoDB was
    // down when it tried): the record says held for ten minutes more
    let handed = h.import("p1", "held").await;
    h.imports_store()
        .take(
            &handed.import_id,
            handed.run,
            h.now() + chrono::Duration::minutes(10),
            h.now(),
        )
        .await
        .unwrap()
        .unwrap();
    // the redelivered notification and continuation are kept, not deleted
    assert_eq!(deliver(&h, &[&notification, &continuation]).await, 2);
    let held = h.import("p1", "held").await;
    assert_eq!((held.status, held.run), (ImportStatus::Processing, 2));
    // once the lease has run out, the next delivery takes the import over
    h.clock.advance(chrono::Duration::minutes(11));
    assert_eq!(deliver(&h, &[&notification]).await, 0);
    let done = h.import("p1", "held").await;
    assert_eq!(done.status, ImportStatus::Completed);
    assert_eq!(done.counts.ingested, 300);
    assert_eq!(h.catalog().await.len(), 300);
    // and the continuation, seen again, finds nothing to do
    assert_eq!(deliver(&h, &[&continuation]).await, 0);
    assert_eq!(h.import("p1", "held").await, done);
}

#[tokio::test]
async fn an_older_event_whose_import_wrote_rows_is_finished_and_loses_to_the_newer() {
    let h = with_partners().await;
    let rows = |name: &str| -> Vec<String> {
        (0..300)
            .map(|i| format!("S{i},{name} {i},1.00,EUR,{i},kitchen,"))
            .collect()
    };
    let (first, second) = (rows("First"), rows("Second"));
    // S3 notifies a versioned bucket's version ids (moto does not: added)
    let mut bodies = Vec::new();
    for rows in [&first, &second] {
        let version = h
            .drop_feed(
                "incoming/p1/same.csv",
                csv(&rows.iter().map(String::as_str).collect::<Vec<_>>()),
                &[],
            )
            .await
            .expect("the feeds bucket is versioned");
        let mut body: Value = serde_json::from_str(&take_notifications(&h, 1).await[0]).unwrap();
        body["Records"][0]["s3"]["object"]["versionId"] = Value::String(version);
        bodies.push(body.to_string());
    }
    let older = with_time_and_sequencer(&bodies[0], 0, "00B1");
    let newer = with_time_and_sequencer(&bodies[1], 1, "00B2");
    // the older one is validated and writes its first rows, then hands over
    deliver_cut_short(&h, &older).await;
    let continuation = take_notifications_any(&h).await;
    assert!(continuation.contains("continue_import"), "{continuation}");
    assert_eq!(deliver(&h, &[&newer]).await, 0);
    // the older notification again (its run had been lost): it is not
    // ended as superseded with its rows half written, but finished
    assert_eq!(deliver(&h, &[&older, &continuation]).await, 0);
    let imports = h.imports("p1").await;
    assert_eq!(imports.len(), 2);
    for i in &imports {
        assert_eq!(i.status, ImportStatus::Completed, "{i:?}");
        assert_eq!(i.counts.ingested + i.counts.skipped_older, 300, "{i:?}");
    }
    let catalog = h.catalog().await;
    assert_eq!(catalog.len(), 300);
    assert!(
        catalog
            .values()
            .all(|(name, _, _)| name.starts_with("Second")),
        "{catalog:?}"
    );
}

/// The next message on the feed queue, whatever it is.
async fn take_notifications_any(h: &Harness) -> String {
    let sqs = aws_sdk_sqs::Client::new(&h.stack.sdk);
    let url = h.stack.stack.queue("FeedEventsQueue").unwrap().url.clone();
    let got = sqs
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    let m = &got.messages()[0];
    sqs.delete_message()
        .queue_url(&url)
        .receipt_handle(m.receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    m.body().unwrap().to_owned()
}

#[tokio::test]
async fn a_product_owned_by_another_partner_is_never_written() {
    let h = with_partners().await;
    // p2 owns an item under p1's name: only a corrupt catalog could hold it,
    // and the owner condition still refuses p1's write
    h.drop_feed(
        "incoming/p2/own.csv",
        csv(&["X,Theirs,5.00,EUR,5,kitchen,"]),
        &[("validation", "lenient"), ("feed-version", "1")],
    )
    .await;
    h.ingest_queued(&[]).await;
    let dynamo = h.dynamo();
    let table = h.stack.stack.table("CatalogTable").to_owned();
    let mut item = dynamo
        .get_item()
        .table_name(&table)
        .set_key(Some(shared::store::keys::catalog::product("p2:X")))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    item.extend(shared::store::keys::catalog::product("p1:X"));
    item.insert(
        "sku".into(),
        aws_sdk_dynamodb::types::AttributeValue::S("p1:X".into()),
    );
    dynamo
        .put_item()
        .table_name(&table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
    h.drop_feed(
        "incoming/p1/mine.csv",
        csv(&["X,Mine,1.00,EUR,1,kitchen,", "Y,Y,1.00,EUR,1,kitchen,"]),
        &[],
    )
    .await;
    assert_eq!(h.ingest_queued(&[]).await.failed, 0);
    let import = h.import("p1", "mine").await;
    assert_eq!((import.counts.ingested, import.counts.rejected), (1, 1));
    assert_eq!(import.status, ImportStatus::CompletedWithErrors);
    assert_eq!(h.catalog().await["p1:X"], ("Theirs".into(), 500, 5));
}

#[tokio::test]
async fn an_admin_lists_a_partners_imports_newest_first_page_by_page() {
    let h = with_partners().await;
    h.drop_feed(
        "incoming/p1/one.csv",
        csv(&["A,A,1.00,EUR,1,kitchen,"]),
        &[],
    )
    .await;
    h.drop_feed(
        "incoming/p1/two.csv",
        csv(&["B,B,1.00,EUR,1,kitchen,", "C,,1.00,EUR,1,kitchen,"]),
        &[],
    )
    .await;
    h.drop_feed(
        "incoming/p2/other.csv",
        csv(&["X,X,1.00,EUR,1,kitchen,"]),
        &[],
    )
    .await;
    let polled = h.ingest_queued(&[]).await;
    assert_eq!((polled.received, polled.failed), (4, 0));
    let admin = h.admin();
    let page = |query: String| {
        let (h, admin) = (&h, admin.clone());
        async move {
            h.call(
                http::Method::GET,
                &format!("/admin/feeds?{query}"),
                Some(&admin),
                None,
            )
            .await
        }
    };
    let all = page("partner_id=p1".into()).await;
    assert_eq!(all.status, 200, "{:?}", all.body);
    let items = all.body["items"].as_array().unwrap();
    let feeds: Vec<&str> = items
        .iter()
        .map(|i| i["feed_id"].as_str().unwrap())
        .collect();
    assert_eq!(feeds.len(), 2, "p2's import is not p1's: {feeds:?}");
    let two = items.iter().find(|i| i["feed_id"] == "two").unwrap();
    assert_eq!(two["status"], "completed_with_errors");
    assert_eq!(
        two["counts"],
        serde_json::json!({"rows": 2, "ingested": 1, "rejected": 1, "skipped_older": 0})
    );
    assert_eq!(two["report_key"], "reports/p1/two.errors.json");
    assert_eq!(two["object"]["key"], "incoming/p1/two.csv");
    assert!(two.get("run").is_none() && two.get("lease_until").is_none());
    assert!(items[0]["created_at"].as_str() >= items[1]["created_at"].as_str());
    // one at a time: the cursor leads to the other, then to nothing
    let first = page("partner_id=p1&limit=1".into()).await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = page(format!("partner_id=p1&limit=1&cursor={cursor}")).await;
    assert_eq!(second.status, 200);
    assert_ne!(first.body["items"][0], second.body["items"][0]);
    // a cursor of p1's listing does not read p2's (a 400, not a 500)
    let crossed = page(format!("partner_id=p2&cursor={cursor}")).await;
    assert_eq!(crossed.status, 400, "{:?}", crossed.body);
    let missing = page("limit=5".into()).await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.body["details"]["field"], "partner_id");
    let shopper = h
        .call(
            http::Method::GET,
            "/admin/feeds?partner_id=p1",
            Some(&h.shopper("s1")),
            None,
        )
        .await;
    assert_eq!(shopper.status, 403);
}
