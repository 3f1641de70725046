//! `bench-ingest`: partner feeds, measured three ways in one run (issue 10).
//!
//! (a) parse + validate alone, on one core: the scan feed-ingest runs, over a
//!     deterministic feed of N rows held in memory, for CSV, JSON and XML;
//! (b) end to end: the feed dropped in the local bucket, S3's notification,
//!     feed-ingest in a process of its own (as on Lambda) until the import
//!     is completed; beside it, on the same emulator in the same run, the
//!     emulator's own best unconditional write rate at the same concurrency
//!     (single PutItem, and 25-item BatchWriteItem), and the ratio;
//! (c) the ingest process's peak RSS (`VmHWM`) at N and at BIG rows.
//!
//! Every import must end `completed` with every row ingested, or the
//! benchmark fails.

use clap::Parser;
use flashcart_local::LocalStack;
use flashcart_local::pollers::QueuePoller;
use shared::feeds::FeedVersion;
use shared::feeds::adapters::{self, ADAPTERS, ControlFlow};
use shared::feeds::import::{ImportStatus, Validation};
use shared::feeds::scan::{Scanned, scan};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flashcart_bench::{Error, child_process, cores, fresh_stack, need_emulator, say, status_kb};

const PARTNER: &str = "bench-partner";
/// The child's environment (the function's, resolved), as JSON.
const CHILD_ENV: &str = "FLASHCART_BENCH_INGEST_ENV";

#[derive(Parser, Clone)]
#[command(
    about = "Partner feed ingest: parse rate, end-to-end rate against the bare emulator, peak RSS"
)]
struct Args {
    /// Rows of the feed.
    #[arg(long, env = "N", default_value_t = 100_000)]
    rows: usize,
    /// Rows of the second feed, for the peak RSS comparison (0: skip it).
    #[arg(long, env = "BIG", default_value_t = 1_000_000)]
    big: usize,
    /// Transactions in flight (the template's FeedWriteConcurrency); the
    /// baselines run at the same concurrency.
    #[arg(long, env = "C", default_value_t = 4)]
    concurrency: usize,
    /// Items written by each baseline.
    #[arg(long, default_value_t = 20_000)]
    bare: usize,
    /// Internal: run as the ingest process.
    #[arg(long, hide = true)]
    child: bool,
}

/// Row `i` of the deterministic feed.
fn fields(i: usize) -> [String; 7] {
    [
        format!("SKU-{i:07}"),
        format!("Product {i}, deterministic"),
        format!("{}.{:02}", 1 + i % 500, i % 100),
        "EUR".to_owned(),
        (i % 1000).to_string(),
        format!("cat-{}", i % 20),
        format!("Product number {i} of the benchmark feed: sturdy, plain and \"quoted\"."),
    ]
}

const NAMES: [&str; 7] = [
    "sku",
    "name",
    "price",
    "currency",
    "quantity",
    "category",
    "description",
];

fn feed(format: &str, n: usize) -> Vec<u8> {
    feed_from(format, 0, n)
}

/// Rows `first..first + n` of the deterministic feed.
fn feed_from(format: &str, first: usize, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 160);
    match format {
        "csv" => {
            out.extend_from_slice(NAMES.join(",").as_bytes());
            out.push(b'\n');
            for i in first..first + n {
                let row: Vec<String> = fields(i)
                    .iter()
                    .map(|f| {
                        if f.contains([',', '"']) {
                            format!("\"{}\"", f.replace('"', "\"\""))
                        } else {
                            f.clone()
                        }
                    })
                    .collect();
                out.extend_from_slice(row.join(",").as_bytes());
                out.push(b'\n');
            }
        }
        "json" => {
            out.push(b'[');
            for i in first..first + n {
                if i > first {
                    out.extend_from_slice(b",\n");
                }
                let object: serde_json::Map<String, serde_json::Value> = NAMES
                    .iter()
                    .zip(fields(i))
                    .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String(v)))
                    .collect();
                out.extend_from_slice(serde_json::Value::Object(object).to_string().as_bytes());
            }
            out.extend_from_slice(b"]\n");
        }
        _ => {
            out.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<products>\n");
            for i in first..first + n {
                out.extend_from_slice(b"<product>");
                for (k, v) in NAMES.iter().zip(fields(i)) {
                    let v = v
                        .replace('&', "&amp;")
                        .replace('<', "&lt;")
                        .replace('"', "&quot;");
                    out.extend_from_slice(format!("<{k}>{v}</{k}>").as_bytes());
                }
                out.extend_from_slice(b"</product>\n");
            }
            out.extend_from_slice(b"</products>\n");
        }
    }
    out
}

/// (a): rows per second of read + validate, best of three, one thread.
fn parse_rate(format: &str, n: usize) -> Result<(f64, usize), Error> {
    let data = feed(format, n);
    let adapter = adapters::find(ADAPTERS, format, FeedVersion::V1).ok_or("no adapter")?;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let mut valid = 0usize;
        let started = Instant::now();
        scan(
            adapter,
            &mut &data[..],
            PARTNER,
            FeedVersion::V1,
            &mut |s| {
                valid += usize::from(matches!(s, Scanned::Valid { .. }));
                ControlFlow::Continue(())
            },
        )?;
        best = best.min(started.elapsed().as_secs_f64());
        if valid != n {
            return Err(format!("{format}: {valid} of {n} rows valid").into());
        }
    }
    Ok((n as f64 / best, data.len()))
}

/// The ingest process: feed-ingest on the feed queue until it is empty.
async fn child() -> Result<(), Error> {
    let env: BTreeMap<String, String> = serde_json::from_str(&std::env::var(CHILD_ENV)?)?;
    let sdk = flashcart_local::sdk_config(false).await?;
    let source = |k: &str| env.get(k).cloned();
    let deps = Arc::new(feed_ingest::Deps::from_source(&source, &sdk)?);
    let queue_url = env.get("FEED_EVENTS_QUEUE_URL").ok_or("no queue")?.clone();
    let handler: flashcart_local::functions::SqsFn = Arc::new(move |event| {
        let deps = deps.clone();
        Box::pin(async move { feed_ingest::handle(&deps, event).await })
    });
    let poller = QueuePoller {
        sqs: aws_sdk_sqs::Client::new(&sdk),
        queue: flashcart_local::bootstrap::Queue {
            name: queue_url.rsplit('/').next().unwrap_or_default().to_owned(),
            arn: String::new(),
            url: queue_url,
        },
        region: sdk.region().map(ToString::to_string).unwrap_or_default(),
        batch_size: 1,
        handler,
    };
    // the resident set every 15 s: flat, or growing with the rows read?
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sampler = tokio::spawn({
        let samples = samples.clone();
        async move {
            let mut every = tokio::time::interval(Duration::from_secs(15));
            loop {
                every.tick().await;
                if let Some(kb) = status_kb("VmRSS:") {
                    samples.lock().map(|mut s| s.push(kb / 1024.0)).ok();
                }
            }
        }
    });
    let mut worked = false;
    loop {
        let p = poller.poll_once(Duration::from_secs(2)).await?;
        if p.failed > 0 {
            return Err("feed-ingest failed a message".into());
        }
        if p.received == 0 && worked {
            break;
        }
        worked |= p.received > 0;
    }
    sampler.abort();
    let hwm = status_kb("VmHWM:").ok_or("no VmHWM")?;
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    say!(
        "{}",
        serde_json::json!({ "vmhwm_kb": hwm, "rss_mb_every_15s": samples })
    );
    Ok(())
}

struct Run {
    seconds: f64,
    /// The resident set every 15 s of the run, MB.
    rss_over_time: Vec<f64>,
    rss_mb: f64,
    /// claim -> validated (first pass), validated -> completed (writes)
    phases: (f64, f64),
}

/// (b) and (c): drops a feed of `n` rows and runs the ingest process on it.
/// `name` tells the feed apart: the same rows under another name are a
/// re-import (every product exists: the read path of ADR 0022). Its rows
/// are `first..first + n`.
async fn end_to_end(
    stack: &LocalStack,
    (first, n): (usize, usize),
    concurrency: usize,
    name: &str,
) -> Result<Run, Error> {
    let mut env = stack
        .template
        .function_env("FeedIngestFunction", &stack.stack)?;
    env.insert("FEED_WRITE_CONCURRENCY".into(), concurrency.to_string());
    let body = feed_from("csv", first, n);
    let key = format!("incoming/{PARTNER}/{name}.csv");
    aws_sdk_s3::Client::new(&stack.sdk)
        .put_object()
        .bucket(stack.stack.bucket("FeedsBucket"))
        .key(&key)
        .body(body.into())
        .send()
        .await?;
    let (seconds, report) = child_process(CHILD_ENV, &env, "ingest").await?;
    let rss_kb = report["vmhwm_kb"].as_f64().ok_or("no VmHWM")?;
    let imports = shared::store::imports::ImportStore::new(
        aws_sdk_dynamodb::Client::new(&stack.sdk),
        stack.stack.table("PartnersTable"),
    );
    let dynamo = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let found = dynamo
        .query()
        .table_name(stack.stack.table("PartnersTable"))
        .index_name("by_partner")
        .key_condition_expression("gsi1pk = :p")
        .expression_attribute_values(
            ":p",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("PARTNER#{PARTNER}")),
        )
        .send()
        .await?;
    let mut done = None;
    for item in found.items() {
        let import: shared::feeds::import::Import = serde_dynamo::from_item(item.clone())?;
        if import.source.key == key {
            done = imports.get(&import.import_id).await?;
        }
    }
    let import = done.ok_or("no import record")?;
    if import.status != ImportStatus::Completed || import.counts.ingested != n as u64 {
        return Err(format!("import ended {:?} with {:?}", import.status, import.counts).into());
    }
    let validated = import.validated_at.ok_or("no validated_at")?;
    let secs = |d: chrono::TimeDelta| d.num_milliseconds() as f64 / 1000.0;
    let rss_over_time = report["rss_mb_every_15s"]
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
        .unwrap_or_default();
    Ok(Run {
        seconds,
        rss_over_time,
        rss_mb: rss_kb / 1024.0,
        phases: (
            secs(validated - import.created_at),
            secs(import.updated_at - validated),
        ),
    })
}

/// Unconditional writes of product-sized items from `c` tasks: single
/// PutItem, or BatchWriteItem of `batch` (unprocessed items sent again).
async fn bare_writes(
    stack: &LocalStack,
    items: usize,
    c: usize,
    batch: usize,
) -> Result<f64, Error> {
    use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
    let client = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let table = stack.stack.table("CatalogTable").to_owned();
    let next = Arc::new(AtomicUsize::new(0));
    let tag = uuid::Uuid::new_v4().simple().to_string();
    // the very item feed-ingest stores for row i (a product, its owner and
    // feed stamp, its index keys), so the comparison is per item written
    let now = chrono::Utc::now();
    let item = move |i: usize| -> BTreeMap<String, AttributeValue> {
        let f = fields(i);
        let sku = format!("bare{batch}{tag}:{}", f[0]);
        let product = shared::domain::product::Product {
            sku: sku.clone(),
            name: f[1].clone(),
            description: f[6].clone(),
            price: shared::domain::money::Money {
                amount: 100 + i as i64,
                currency: "EUR".into(),
            },
            category: f[5].clone(),
            stock: (i % 1000) as i64,
            owner: Some(PARTNER.into()),
            created_at: now,
            updated_at: now,
        };
        let stored: std::collections::HashMap<String, AttributeValue> =
            serde_dynamo::to_item(&product).unwrap_or_default();
        let mut item: BTreeMap<String, AttributeValue> = stored.into_iter().collect();
        for (k, v) in [
            ("pk", format!("PRODUCT#{sku}")),
            ("sk", "PRODUCT".into()),
            ("gsi1pk", format!("CATEGORY#{}", f[5])),
            ("gsi1sk", sku.clone()),
            (
                "feed_stamp",
                format!("2026-11-22T00:00:00.000Z#{:032}#{tag}#{i:012}", 0),
            ),
        ] {
            item.insert(k.to_owned(), AttributeValue::S(v));
        }
        item
    };
    let item = Arc::new(item);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..c.max(1) {
        let (client, table, next, item) =
            (client.clone(), table.clone(), next.clone(), item.clone());
        tasks.spawn(async move {
            loop {
                let from = next.fetch_add(batch, Ordering::Relaxed);
                if from >= items {
                    return Ok::<(), Error>(());
                }
                let to = (from + batch).min(items);
                if batch == 100 {
                    // the primitive feed-ingest writes with: conditional Puts, 100 a transaction
                    use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
                    let mut tx = Vec::with_capacity(to - from);
                    for i in from..to {
                        let put = Put::builder()
                            .table_name(&table)
                            .set_item(Some(item(i).into_iter().collect()))
                            .condition_expression("attribute_not_exists(#s) OR #s < :s")
                            .expression_attribute_names("#s", "feed_stamp")
                            .expression_attribute_values(
                                ":s",
                                AttributeValue::S(format!("{i:012}")),
                            )
                            .build()?;
                        tx.push(TransactWriteItem::builder().put(put).build());
                    }
                    client
                        .transact_write_items()
                        .set_transact_items(Some(tx))
                        .send()
                        .await?;
                    continue;
                }
                if batch == 1 {
                    client
                        .put_item()
                        .table_name(&table)
                        .set_item(Some(item(from).into_iter().collect()))
                        .send()
                        .await?;
                    continue;
                }
                let mut requests = Vec::with_capacity(to - from);
                for i in from..to {
                    let put = PutRequest::builder()
                        .set_item(Some(item(i).into_iter().collect()))
                        .build()?;
                    requests.push(WriteRequest::builder().put_request(put).build());
                }
                while !requests.is_empty() {
                    let out = client
                        .batch_write_item()
                        .request_items(&table, requests)
                        .send()
                        .await?;
                    requests = out
                        .unprocessed_items
                        .and_then(|mut u| u.remove(&table))
                        .unwrap_or_default();
                }
            }
        });
    }
    for r in tasks.join_all().await {
        r?;
    }
    Ok(items as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    if args.child {
        return child().await;
    }
    need_emulator("bench-ingest")?;
    let cores = cores();
    say!(
        "bench-ingest: N = {} rows, BIG = {}, C = {} transactions in flight, {cores} cores",
        args.rows,
        args.big,
        args.concurrency
    );

    say!("\n(a) read + validate, one thread, best of 3");
    for (format, target) in [
        ("csv", 1_000_000.0),
        ("json", 500_000.0),
        ("xml", 300_000.0),
    ] {
        let (rate, bytes) = parse_rate(format, args.rows)?;
        say!(
            "  {format:<4} {:>10.0} rows/s  ({:.1} MB, target {target:.0}: {})",
            rate,
            bytes as f64 / 1e6,
            if rate >= target { "met" } else { "NOT met" }
        );
    }

    let stack = fresh_stack("bingest").await?;
    let outcome = measure(&stack, &args).await;
    stack.destroy().await;
    outcome
}

async fn measure(stack: &LocalStack, args: &Args) -> Result<(), Error> {
    let now = chrono::Utc::now();
    shared::store::partners::PartnerStore::new(
        aws_sdk_dynamodb::Client::new(&stack.sdk),
        stack.stack.table("PartnersTable"),
    )
    .create(
        &shared::store::partners::Partner {
            partner_id: PARTNER.into(),
            name: "Bench".into(),
            created_at: now,
            feed_version: 1,
            validation: Validation::Lenient,
        },
        &shared::store::partners::ApiKeyRecord {
            key_id: "benchkey".into(),
            partner_id: PARTNER.into(),
            secret_hash: "00".repeat(32),
            created_at: now,
            revoked_at: None,
        },
    )
    .await?;

    say!(
        "\n(b) end to end against the local emulator, and its bare write rate at C = {}",
        args.concurrency
    );
    let put = bare_writes(stack, args.bare, args.concurrency, 1).await?;
    let batch = bare_writes(stack, args.bare, args.concurrency, 25).await?;
    let transactions = bare_writes(stack, args.bare, args.concurrency, 100).await?;
    let run = end_to_end(stack, (0, args.rows), args.concurrency, "first").await?;
    let again = end_to_end(stack, (0, args.rows), args.concurrency, "again").await?;
    let rate = args.rows as f64 / run.seconds;
    let best = put.max(batch);
    say!("  bare PutItem             {put:>9.0} items/s");
    say!("  bare BatchWriteItem (25) {batch:>9.0} items/s");
    say!(
        "  bare conditional TransactWriteItems (100 Puts) {transactions:>9.0} items/s: feed-ingest's own primitive (ADR 0022)"
    );
    say!(
        "  feed of {} rows: drop -> completed in {:.1} s = {rate:.0} rows/s; ratio to the best bare rate {:.2} (target 0.7: {})",
        args.rows,
        run.seconds,
        rate / best,
        if rate / best >= 0.7 { "met" } else { "NOT met" }
    );
    say!(
        "  ratio to the bare conditional transactions it is made of: {:.2}",
        rate / transactions
    );
    say!(
        "  phases: claim -> validated and reported {:.1} s; writes {:.1} s ({:.0} rows/s)",
        run.phases.0,
        run.phases.1,
        args.rows as f64 / run.phases.1
    );
    let again_rate = args.rows as f64 / again.seconds;
    say!(
        "  the same rows again (every product exists: read, then write): {:.1} s = {again_rate:.0} rows/s; ratio to the best bare rate {:.2}, to the first import {:.2}",
        again.seconds,
        again_rate / best,
        again_rate / rate
    );

    say!("\n(c) the ingest process's peak RSS");
    say!(
        "  N = {:>9}: {:.1} MB (its re-import: {:.1} MB)",
        args.rows,
        run.rss_mb,
        again.rss_mb
    );
    if args.big > 0 {
        // products none of the runs before made: a first import, as the
        // one it is compared with (a re-import holds more per chunk)
        let big = end_to_end(stack, (10_000_000, args.big), args.concurrency, "big").await?;
        let growth = big.rss_mb / run.rss_mb - 1.0;
        say!(
            "  N = {:>9}: {:.1} MB ({:.1} s end to end, {:.0} rows/s); growth {:+.1}% (target under 64 MB and within 10%: {})",
            args.big,
            big.rss_mb,
            big.seconds,
            args.big as f64 / big.seconds,
            growth * 100.0,
            if big.rss_mb < 64.0 && run.rss_mb < 64.0 && growth.abs() <= 0.10 {
                "met"
            } else {
                "NOT met"
            }
        );
        let series: Vec<String> = big
            .rss_over_time
            .iter()
            .map(|mb| format!("{mb:.1}"))
            .collect();
        say!("  resident set every 15 s of it, MB: {}", series.join(" "));
    }
    Ok(())
}
