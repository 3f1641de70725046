//! The local event source mapping and the bucket notification the template
//! declares: what later functions (order-finalizer, feed-ingest) stand on.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use crate::common::Harness;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use flashcart_local::functions::SqsFn;
use flashcart_local::pollers::{Polled, QueuePoller};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test]
async fn only_messages_the_function_did_not_fail_are_deleted() {
    let h = Harness::new().await;
    let queue = h
        .stack
        .stack
        .queue("OrderFinalizationQueue")
        .unwrap()
        .clone();
    let sqs = aws_sdk_sqs::Client::new(&h.stack.sdk);
    for body in ["ok-1", "poison", "ok-2"] {
        sqs.send_message()
            .queue_url(&queue.url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let handler: SqsFn = Arc::new(move |event: SqsEvent| {
        let seen = seen2.clone();
        Box::pin(async move {
            let mut failures = Vec::new();
            for r in event.records {
                assert_eq!(r.event_source.as_deref(), Some("aws:sqs"));
                let body = r.body.unwrap_or_default();
                if body == "poison" {
                    let mut f = BatchItemFailure::default();
                    f.item_identifier = r.message_id.unwrap_or_default();
                    failures.push(f);
                }
                seen.lock().unwrap().push(body);
            }
            let mut resp = SqsBatchResponse::default();
            resp.batch_item_failures = failures;
            Ok(resp)
        })
    });
    let poller = QueuePoller {
        sqs: sqs.clone(),
        queue: queue.clone(),
        region: h.stack.stack.region.clone(),
        batch_size: 10,
        handler,
    };
    let mut total = Polled::default();
    for _ in 0..5 {
        let p = poller.poll_once(Duration::from_secs(1)).await.unwrap();
        total.received += p.received;
        total.deleted += p.deleted;
        total.failed += p.failed;
        if total.received >= 3 {
            break;
        }
    }
    assert_eq!(
        total,
        Polled {
            received: 3,
            deleted: 2,
            failed: 1
        }
    );
    // the failed one is still on the queue (invisible until its timeout)
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&queue.url)
        .attribute_names(
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        )
        .send()
        .await
        .unwrap();
    let in_flight = attrs.attributes().unwrap()
        [&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible]
        .clone();
    assert_eq!(in_flight, "1");
}

#[tokio::test]
async fn a_feed_dropped_in_the_bucket_notifies_the_feed_queue() {
    let h = Harness::new().await;
    let s3 = aws_sdk_s3::Client::new(&h.stack.sdk);
    let bucket = h.stack.stack.bucket("FeedsBucket").to_owned();
    s3.put_object()
        .bucket(&bucket)
        .key("incoming/p1/feed 1.csv")
        .body(b"sku,name\n".to_vec().into())
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket(&bucket)
        .key("reports/p1/x.json")
        .body(b"{}".to_vec().into())
        .send()
        .await
        .unwrap();
    let queue = h.stack.stack.queue("FeedEventsQueue").unwrap();
    let sqs = aws_sdk_sqs::Client::new(&h.stack.sdk);
    let got = sqs
        .receive_message()
        .queue_url(&queue.url)
        .max_number_of_messages(10)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    let bodies: Vec<String> = got
        .messages()
        .iter()
        .filter_map(|m| m.body().map(str::to_owned))
        .collect();
    let records: Vec<&str> = bodies
        .iter()
        .filter(|b| b.contains("ObjectCreated"))
        .map(String::as_str)
        .collect();
    assert_eq!(records.len(), 1, "only incoming/ notifies: {bodies:?}");
    // moto leaves out `userIdentity`, which aws_lambda_events' S3Event requires:
    // read the notification as plain JSON (feed-ingest must be as tolerant).
    let event: serde_json::Value = serde_json::from_str(records[0]).unwrap();
    let key = event["Records"][0]["s3"]["object"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // S3 URL-encodes keys in notifications (spaces as '+'); feed-ingest decodes them.
    assert!(
        key == "incoming/p1/feed+1.csv" || key == "incoming%2Fp1%2Ffeed+1.csv",
        "{key}"
    );
}
