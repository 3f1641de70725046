//! `bench-flash`: a flash sale under load, through the local gateway's HTTP port.
//!
//! Deploys its own copy of the template on the emulator (`AWS_ENDPOINT_URL*`),
//! serves the gateway on a loopback port, creates a sale of S units in K shards,
//! and fires R checkouts from C concurrent connections, each from a different
//! buyer. Then, against the same emulator: checkouts once sold out, DynamoDB
//! calls per checkout (the emulator counts them), one user hammering a sale
//! while others buy from it (scenario P1), and bare conditional UpdateItem
//! throughput for comparison. Exits non-zero if anything oversold.

use bytes::Bytes;
use clap::Parser;
use flashcart_local::LocalStack;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Http = Client<HttpConnector, Full<Bytes>>;

#[derive(Parser, Clone)]
#[command(about = "Flash-sale load through the local gateway")]
struct Args {
    /// Units in the sale.
    #[arg(long, env = "S", default_value_t = 500)]
    stock: u32,
    /// Stock shards of the sale.
    #[arg(long, env = "K", default_value_t = 8)]
    shards: u32,
    /// Checkout requests in the rush.
    #[arg(long, env = "R", default_value_t = 5000)]
    requests: usize,
    /// Concurrent connections (simulated users at a time).
    #[arg(long, env = "C", default_value_t = 64)]
    concurrency: usize,
    /// Checkouts sent once the sale is sold out.
    #[arg(long, default_value_t = 1000)]
    after: usize,
    /// Sequential checkouts used to count DynamoDB calls per accepted checkout.
    #[arg(long, default_value_t = 50)]
    solo: usize,
    /// Bare conditional UpdateItem calls for the baseline.
    #[arg(long, default_value_t = 3000)]
    bare: usize,
    /// Checkouts one user fires at another sale (scenario P1), at C/2 connections...
    #[arg(long, default_value_t = 2000)]
    hammer: usize,
    /// ...while this many other buyers check out at the other C/2.
    #[arg(long, default_value_t = 1000)]
    bystanders: usize,
}

#[derive(Debug, Clone)]
struct Sample {
    status: u16,
    code: String,
    latency: Duration,
    done_at: Duration,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    // DynamoDB's emulator counts the calls it serves
    let emulator = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .map_err(|_| "run through `make bench-flash` (needs AWS_ENDPOINT_URL)")?;
    let sdk = flashcart_local::sdk_config(false).await?;
    let prefix = format!("bench{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let stack = LocalStack::deploy(
        sdk,
        &prefix,
        shared::config::Secret::from(flashcart_local::jwt::DEFAULT_SECRET),
        &[],
    )
    .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let router = stack.router();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    let http: Http = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.concurrency)
        .build_http();
    let admin = stack.token("bench-admin", &["admin"]);
    let hammer_units = u32::try_from(args.bystanders)? + 10;
    let units = args.stock + 1000 + hammer_units;
    let product = json!({"name": "Bench headphones", "price": {"amount": 19900, "currency": "EUR"}, "category": "bench", "stock": units});
    expect(
        &http,
        Method::PUT,
        &format!("{base}/admin/products/BENCH-1"),
        &admin,
        None,
        &product,
        201,
    )
    .await?;
    let now = chrono::Utc::now();
    for (id, quantity, shards, limit) in [
        ("bench-solo", 1000, args.shards, 1),
        ("bench-rush", args.stock, args.shards, 1),
        ("bench-hammer", hammer_units, args.shards, 10),
    ] {
        let sale = json!({
            "sale_id": id, "sku": "BENCH-1", "price": {"amount": 9900, "currency": "EUR"}, "quantity": quantity,
            "starts_at": (now - chrono::Duration::minutes(1)).to_rfc3339(), "ends_at": (now + chrono::Duration::hours(1)).to_rfc3339(),
            "per_user_limit": limit, "shards": shards
        });
        expect(
            &http,
            Method::POST,
            &format!("{base}/admin/flash-sales"),
            &admin,
            None,
            &sale,
            201,
        )
        .await?;
    }

    // 1. DynamoDB calls per accepted checkout: one buyer at a time, nothing else running
    let before = dynamo_calls(&http, &emulator).await?;
    let solo = fire(
        &http,
        &stack,
        &base,
        "bench-solo",
        "solo",
        args.solo,
        1,
        false,
    )
    .await;
    let solo_calls = dynamo_calls(&http, &emulator).await? - before;
    let solo_ok = solo.iter().filter(|s| s.status == 202).count();

    // 2. the rush
    let before_ops = dynamo_ops(&http, &emulator).await?;
    let started = Instant::now();
    let rush = fire(
        &http,
        &stack,
        &base,
        "bench-rush",
        "rush",
        args.requests,
        args.concurrency,
        false,
    )
    .await;
    let rush_secs = started.elapsed().as_secs_f64();
    let mut rush_ops = dynamo_ops(&http, &emulator).await?;
    for (op, n) in &mut rush_ops {
        *n -= before_ops.get(op).copied().unwrap_or(0);
    }
    let rush_calls: u64 = rush_ops.values().sum();
    let remaining = get_json(&http, &format!("{base}/flash-sales/bench-rush")).await?["remaining"]
        .as_u64()
        .unwrap_or(u64::MAX);

    // 3. once sold out
    let before = dynamo_calls(&http, &emulator).await?;
    let after = fire(
        &http,
        &stack,
        &base,
        "bench-rush",
        "after",
        args.after,
        args.concurrency,
        false,
    )
    .await;
    let after_calls = dynamo_calls(&http, &emulator).await? - before;

    // 4. one user hammers a sale while others buy from it (scenario P1)
    let half = (args.concurrency / 2).max(1);
    let (hammer, bystanders) = tokio::join!(
        fire(
            &http,
            &stack,
            &base,
            "bench-hammer",
            "hammer",
            args.hammer,
            half,
            true
        ),
        fire(
            &http,
            &stack,
            &base,
            "bench-hammer",
            "others",
            args.bystanders,
            half,
            false
        ),
    );

    // 5. bare conditional UpdateItem, same emulator, same concurrency
    let (bare_ops, bare_secs) = bare_updates(&stack, args.bare, args.concurrency).await?;

    let sold = rush.iter().filter(|s| s.status == 202).count() as u64;
    let oversold = sold.saturating_sub(u64::from(args.stock));
    let consistent = remaining + sold == u64::from(args.stock);
    let accepted: Vec<&Sample> = rush.iter().filter(|s| s.status == 202).collect();
    let last_accept = accepted
        .iter()
        .map(|s| s.done_at)
        .max()
        .unwrap_or_default()
        .as_secs_f64();
    let accepted_per_sec = if last_accept > 0.0 {
        sold as f64 / last_accept
    } else {
        0.0
    };
    let bare_per_sec = bare_ops as f64 / bare_secs;
    let count = |samples: &[Sample]| {
        let mut codes: BTreeMap<String, usize> = BTreeMap::new();
        for s in samples {
            *codes.entry(format!("{} {}", s.status, s.code)).or_default() += 1;
        }
        codes
    };
    let codes = count(&rush);
    let lat = |samples: &[&Sample]| {
        let mut v: Vec<f64> = samples
            .iter()
            .map(|s| s.latency.as_secs_f64() * 1000.0)
            .collect();
        v.sort_by(f64::total_cmp);
        let p = |q: f64| {
            v.get(((v.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        format!(
            "n={:5}  p50 {:7.1} ms  p95 {:7.1} ms  p99 {:7.1} ms",
            v.len(),
            p(0.50),
            p(0.95),
            p(0.99)
        )
    };
    let sold_out_rush: Vec<&Sample> = rush.iter().filter(|s| s.code == "sold_out").collect();
    // Losers in flight at the sell-out: sold_out answers to requests sent
    // before the last unit went (scenario A1: answered in under 1 s). They are
    // the ones that reach DynamoDB; later ones are answered from memory.
    let in_flight: Vec<&Sample> = sold_out_rush
        .iter()
        .filter(|s| s.done_at.saturating_sub(s.latency).as_secs_f64() < last_accept)
        .copied()
        .collect();
    let losing_calls = rush_calls.saturating_sub(sold);
    let sold_out_after: Vec<&Sample> = after.iter().filter(|s| s.code == "sold_out").collect();

    let report = format!(
        "bench-flash: S={} K={} R={} C={}\n\
         sold                       {sold}\n\
         oversold                   {oversold}\n\
         remaining stock            {remaining}   (remaining + sold = {} of {} allocated: {})\n\
         answers                    {codes:?}\n\
         rush                       {:.2} s, {:.0} requests/s\n\
         accepted latency           {}\n\
         sold_out latency (rush)    {}\n\
         losers at the sell-out     {}   <- A1: in flight when the last unit went; under 1 s\n\
         sold_out latency (after)   {}   <- once sold out\n\
         accepted checkouts/s       {accepted_per_sec:.0}   (until the last unit sold)\n\
         bare UpdateItem/s          {bare_per_sec:.0}   ({bare_ops} conditional updates, C={})\n\
         accepted / bare            {:.0}%\n\
         DynamoDB calls             {:.2} per accepted checkout (solo: {solo_ok} of {}), {:.2} per request in the rush, {:.2} per sold_out answer once sold out\n\
         calls on the losing path   {losing_calls} in the rush beyond one per sale (a proxy: winners' failed tries and each container's sale read count too): {:.2} per loser at the sell-out, {:.2} per sold_out answer in the rush\n\
         rush calls by operation    {rush_ops:?}\n\
         one user hammering         {:?}   ({} checkouts from one buyer, C={half})\n\
         everyone else meanwhile    {:?}\n\
         everyone else's latency    {}   <- P1: p95 under 1 s\n",
        args.stock,
        args.shards,
        args.requests,
        args.concurrency,
        remaining + sold,
        args.stock,
        if consistent { "ok" } else { "MISMATCH" },
        rush_secs,
        rush.len() as f64 / rush_secs,
        lat(&accepted),
        lat(&sold_out_rush),
        lat(&in_flight),
        lat(&sold_out_after),
        args.concurrency,
        100.0 * accepted_per_sec / bare_per_sec,
        solo_calls as f64 / solo_ok.max(1) as f64,
        args.solo,
        rush_calls as f64 / rush.len().max(1) as f64,
        after_calls as f64 / after.len().max(1) as f64,
        losing_calls as f64 / in_flight.len().max(1) as f64,
        losing_calls as f64 / sold_out_rush.len().max(1) as f64,
        count(&hammer),
        args.hammer,
        count(&bystanders),
        lat(&bystanders.iter().collect::<Vec<_>>()),
    );
    say(&report);
    stack.destroy().await;
    if oversold > 0 || !consistent {
        return Err("OVERSOLD or inconsistent stock".into());
    }
    Ok(())
}

#[expect(clippy::print_stdout, reason = "a benchmark prints its figures")]
fn say(text: &str) {
    println!("{text}");
}

/// Fires `n` checkouts at a sale from `c` connections, each from its own
/// buyer, or all from one buyer (with a key each) if `one_buyer`.
#[expect(
    clippy::too_many_arguments,
    reason = "a benchmark's knobs, named at each call"
)]
async fn fire(
    http: &Http,
    stack: &LocalStack,
    base: &str,
    sale: &str,
    tag: &str,
    n: usize,
    c: usize,
    one_buyer: bool,
) -> Vec<Sample> {
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..n)
            .map(|i| {
                stack.token(
                    &format!("{tag}-buyer-{}", if one_buyer { 0 } else { i }),
                    &[],
                )
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let url = Arc::new(format!("{base}/flash-sales/{sale}/checkout"));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..c.max(1) {
        let (http, tokens, next, url, tag) = (
            http.clone(),
            tokens.clone(),
            next.clone(),
            url.clone(),
            tag.to_owned(),
        );
        workers.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= tokens.len() {
                    return out;
                }
                let body = json!({"quantity": 1, "payment_token": "tok_ok"});
                let t = Instant::now();
                let (status, value) = match send(
                    &http,
                    Method::POST,
                    &url,
                    &tokens[i],
                    Some(&format!("{tag}-{i}")),
                    &body,
                )
                .await
                {
                    Ok(r) => r,
                    Err(_) => (0, Value::Null),
                };
                out.push(Sample {
                    status,
                    code: value["error"]
                        .as_str()
                        .unwrap_or(if status == 202 { "accepted" } else { "" })
                        .to_owned(),
                    latency: t.elapsed(),
                    done_at: started.elapsed(),
                });
            }
        });
    }
    workers.join_all().await.into_iter().flatten().collect()
}

async fn send(
    http: &Http,
    method: Method,
    url: &str,
    token: &str,
    key: Option<&str>,
    body: &Value,
) -> Result<(u16, Value), Error> {
    let mut req = Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json");
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    let resp = http
        .request(req.body(Full::new(Bytes::from(body.to_string())))?)
        .await?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

async fn expect(
    http: &Http,
    method: Method,
    url: &str,
    token: &str,
    key: Option<&str>,
    body: &Value,
    want: u16,
) -> Result<(), Error> {
    let (status, value) = send(http, method, url, token, key, body).await?;
    if status == want {
        Ok(())
    } else {
        Err(format!("{url}: {status} {value}").into())
    }
}

async fn get_json(http: &Http, url: &str) -> Result<Value, Error> {
    let req = Request::builder().uri(url).body(Full::new(Bytes::new()))?;
    let resp = http.request(req).await?;
    if resp.status() != StatusCode::OK {
        return Err(format!("{url}: {}", resp.status()).into());
    }
    Ok(serde_json::from_slice(
        &resp.into_body().collect().await?.to_bytes(),
    )?)
}

/// Every DynamoDB request the emulator has served so far.
async fn dynamo_calls(http: &Http, emulator: &str) -> Result<u64, Error> {
    Ok(dynamo_ops(http, emulator).await?.values().sum())
}

/// DynamoDB calls the emulator served so far, by operation.
async fn dynamo_ops(http: &Http, emulator: &str) -> Result<BTreeMap<String, u64>, Error> {
    let stats = get_json(
        http,
        &format!("{}/_flashcart/stats", emulator.trim_end_matches('/')),
    )
    .await?;
    Ok(stats["dynamodb"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(op, n)| Some((op.clone(), n.as_u64()?)))
                .collect()
        })
        .unwrap_or_default())
}

/// `ops` conditional UpdateItem calls from `c` tasks on `c` items.
async fn bare_updates(stack: &LocalStack, ops: usize, c: usize) -> Result<(usize, f64), Error> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let client = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let table = stack.stack.table("RequestsTable").to_owned();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..c.max(1) {
        let (client, table, next) = (client.clone(), table.clone(), next.clone());
        tasks.spawn(async move {
            let mut done = 0usize;
            while next.fetch_add(1, Ordering::Relaxed) < ops {
                let ok = client
                    .update_item()
                    .table_name(&table)
                    .key("pk", AttributeValue::S(format!("BENCH#{w}")))
                    .key("sk", AttributeValue::S("BARE".into()))
                    .update_expression("ADD #n :one")
                    .condition_expression("attribute_not_exists(#n) OR #n < :max")
                    .expression_attribute_names("#n", "n")
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .expression_attribute_values(":max", AttributeValue::N("1000000000".into()))
                    .send()
                    .await
                    .is_ok();
                done += usize::from(ok);
            }
            done
        });
    }
    let done: usize = tasks.join_all().await.into_iter().sum();
    Ok((done, started.elapsed().as_secs_f64()))
}
