//! `bench-flash`: a flash sale under load, through the local gateway's HTTP port.
//!
//! Deploys its own copy of the template on the emulator (`AWS_ENDPOINT_URL*`),
//! serves the gateway on a loopback port, creates a sale of S units in K shards,
//! and fires R checkouts from C concurrent connections, each from a different
//! buyer. Then, against the same emulator: checkouts once sold out, DynamoDB
//! calls per checkout (the emulator counts them), one user hammering a sale
//! while others buy from it (scenario P1), and bare conditional UpdateItem
//! throughput for comparison. Payments run all along, as on AWS: the
//! finalizer's queue is polled by `FinalizerConcurrency` pollers against the
//! sandbox provider, and after the rush the benchmark measures each sold
//! unit's time from its 202 to `confirmed`, the queue's peak depth and the
//! charges per order in the provider's ledger; then again for a sale whose
//! provider fails half of all calls at random. Exits non-zero if anything
//! oversold or any order was charged twice.

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
    /// Units of the sale whose provider fails half of all calls at random.
    #[arg(long, default_value_t = 200)]
    flaky: u32,
    /// Concurrent finalizer invocations (template FinalizerConcurrency).
    #[arg(long, default_value_t = 10)]
    finalizers: usize,
}

#[derive(Debug, Clone)]
struct Sample {
    status: u16,
    code: String,
    latency: Duration,
    done_at: Duration,
    order_id: Option<String>,
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
    let (sandbox, sandbox_url) = flashcart_local::start_sandbox(0, None).await?;
    let stack = LocalStack::deploy(
        sdk,
        &prefix,
        shared::config::Secret::from(flashcart_local::jwt::DEFAULT_SECRET),
        &[("PaymentProviderUrl", sandbox_url)],
    )
    .await?;
    // the finalizer, scaled out as Lambda scales an SQS event source
    let finalizer = stack
        .poller("OrderFinalizerFunction")
        .ok_or("the template has no order-finalizer queue function")?;
    let mut finalizing = Vec::new();
    for _ in 0..args.finalizers.max(1) {
        finalizing.push(tokio::spawn(finalizer.clone().run()));
    }
    let payments = shared::store::payments::PaymentStore::new(
        aws_sdk_dynamodb::Client::new(&stack.sdk),
        &shared::config::Tables::from_source(&stack.template_env("OrderFinalizerFunction")?)?,
    );
    let depth = QueueDepth::watch(&stack, "OrderFinalizationQueue")?;
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
    let units = args.stock + 1000 + hammer_units + args.flaky;
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
        ("bench-flaky", args.flaky, args.shards, 1),
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
        "tok_ok",
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
        "tok_ok",
    )
    .await;
    let rush_secs = started.elapsed().as_secs_f64();
    let rush_end = chrono::Utc::now();
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
        "tok_ok",
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
            true,
            "tok_ok"
        ),
        fire(
            &http,
            &stack,
            &base,
            "bench-hammer",
            "others",
            args.bystanders,
            half,
            false,
            "tok_ok"
        ),
    );

    // 5. bare conditional UpdateItem, same emulator, same concurrency
    let (bare_ops, bare_secs) = bare_updates(&stack, args.bare, args.concurrency).await?;

    // 6. payments: every unit the rush sold, from its 202 to confirmed
    let rush_orders: Vec<String> = rush.iter().filter_map(|s| s.order_id.clone()).collect();
    let settled = settle(&payments, &rush_orders, Duration::from_secs(120)).await?;
    let rush_depth = depth.peak();

    // 7. a provider failing half of all calls at random (scenario A2)
    sandbox.set_mode(flashcart_local::sandbox::Mode {
        down: false,
        failure_rate: 0.5,
    });
    depth.reset();
    let flaky = fire(
        &http,
        &stack,
        &base,
        "bench-flaky",
        "flaky",
        args.flaky as usize,
        args.concurrency,
        false,
        "tok_ok",
    )
    .await;
    let flaky_end = chrono::Utc::now();
    let flaky_orders: Vec<String> = flaky.iter().filter_map(|s| s.order_id.clone()).collect();
    let flaky_settled = settle(&payments, &flaky_orders, Duration::from_secs(120)).await?;
    let flaky_depth = depth.peak();
    sandbox.set_mode(flashcart_local::sandbox::Mode::default());
    for task in &finalizing {
        task.abort();
    }

    // 8. the breaker open: checkouts refused (U2: 503 within 100 ms). The
    // shared state is set open as five failed charges would set it.
    open_breaker(&stack).await?;
    tokio::time::sleep(Duration::from_millis(1600)).await; // every container's cache
    let refused = fire(
        &http,
        &stack,
        &base,
        "bench-flaky",
        "refused",
        100,
        args.concurrency.min(16),
        false,
        "tok_ok",
    )
    .await;
    let refused_503: Vec<&Sample> = refused
        .iter()
        .filter(|s| s.code == "payment_unavailable")
        .collect();
    let ledger = sandbox.ledger();
    let charges_per_order = |ids: &[String]| {
        let mut per: BTreeMap<usize, usize> = BTreeMap::new();
        for id in ids {
            let n = ledger
                .iter()
                .filter(|c| &c.order_id == id && c.status != "declined")
                .count();
            *per.entry(n).or_default() += 1;
        }
        per
    };
    let rush_charges = charges_per_order(&rush_orders);
    let flaky_charges = charges_per_order(&flaky_orders);
    let charged_twice = rush_charges
        .keys()
        .chain(flaky_charges.keys())
        .any(|n| *n > 1);

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
        let p = |q: f64| quantile(&v, q);
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
         everyone else's latency    {}   <- P1: p95 under 1 s\n\
         payments (tok_ok)          {}\n\
         202 -> confirmed           {}\n\
         rush end -> all confirmed  {}   <- P2: within 30 s\n\
         queue peak depth           {rush_depth} messages\n\
         charges per order          {rush_charges:?}   (charges -> orders; ledger of the sandbox)\n\
         provider failing 50%       {}   ({} units, sandbox failure_rate 0.5 on every call)\n\
         202 -> confirmed           {}\n\
         rush end -> all confirmed  {}\n\
         queue peak depth           {flaky_depth} messages\n\
         charges per order          {flaky_charges:?}\n\
         breaker open: checkouts    {:?}\n\
         503 latency                {}   <- U2/A2: under 100 ms\n",
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
        settled.summary(),
        settled.latency(),
        settled.after(rush_end),
        flaky_settled.summary(),
        args.flaky,
        flaky_settled.latency(),
        flaky_settled.after(flaky_end),
        count(&refused),
        lat(&refused_503),
    );
    say(&report);
    stack.destroy().await;
    if oversold > 0 || !consistent {
        return Err("OVERSOLD or inconsistent stock".into());
    }
    if charged_twice {
        return Err("an order was CHARGED TWICE".into());
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
    payment_token: &str,
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
        let (http, tokens, next, url, tag, payment_token) = (
            http.clone(),
            tokens.clone(),
            next.clone(),
            url.clone(),
            tag.to_owned(),
            payment_token.to_owned(),
        );
        workers.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= tokens.len() {
                    return out;
                }
                let body = json!({"quantity": 1, "payment_token": payment_token});
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
                    order_id: value["order_id"].as_str().map(str::to_owned),
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

/// Where the orders of one rush ended, read from the orders table.
struct Settled {
    /// Each order's status, and its 202 -> last change in ms.
    orders: Vec<(String, f64, chrono::DateTime<chrono::Utc>)>,
    waited: Duration,
}

impl Settled {
    fn summary(&self) -> String {
        let mut by: BTreeMap<&str, usize> = BTreeMap::new();
        for (status, _, _) in &self.orders {
            *by.entry(status.as_str()).or_default() += 1;
        }
        let confirmed = by.get("confirmed").copied().unwrap_or(0);
        format!(
            "{confirmed} of {} confirmed ({:.1}%), {by:?}, after waiting {:.1} s",
            self.orders.len(),
            100.0 * confirmed as f64 / self.orders.len().max(1) as f64,
            self.waited.as_secs_f64()
        )
    }

    fn confirmed(&self) -> impl Iterator<Item = &(String, f64, chrono::DateTime<chrono::Utc>)> {
        self.orders.iter().filter(|(s, _, _)| s == "confirmed")
    }

    fn latency(&self) -> String {
        let mut v: Vec<f64> = self.confirmed().map(|(_, ms, _)| *ms).collect();
        v.sort_by(f64::total_cmp);
        let p = |q: f64| quantile(&v, q);
        format!(
            "n={:5}  p50 {:7.1} ms  p95 {:7.1} ms  max {:7.1} ms",
            v.len(),
            p(0.50),
            p(0.95),
            v.last().copied().unwrap_or(f64::NAN)
        )
    }

    /// From `end` (the rush's last answer) to the last confirmation.
    fn after(&self, end: chrono::DateTime<chrono::Utc>) -> String {
        match self.confirmed().map(|(_, _, at)| *at).max() {
            Some(last) => format!(
                "{:.2} s",
                (last - end).num_milliseconds().max(0) as f64 / 1000.0
            ),
            None => "none confirmed".into(),
        }
    }
}

/// Waits until every order left `pending_payment` (or `limit` passed).
async fn settle(
    payments: &shared::store::payments::PaymentStore,
    ids: &[String],
    limit: Duration,
) -> Result<Settled, Error> {
    use shared::domain::order::OrderStatus;
    let started = Instant::now();
    loop {
        let mut orders = Vec::with_capacity(ids.len());
        let mut pending = 0;
        for id in ids {
            let Some(o) = payments.get(id).await? else {
                continue;
            };
            pending += usize::from(o.status == OrderStatus::PendingPayment);
            let ms = (o.updated_at - o.created_at).num_milliseconds() as f64;
            orders.push((o.status.as_str().to_owned(), ms, o.updated_at));
        }
        if pending == 0 || started.elapsed() >= limit {
            return Ok(Settled {
                orders,
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The queue's depth, sampled every 200 ms; its peak since the last reset.
struct QueueDepth {
    peak: Arc<AtomicUsize>,
}

impl QueueDepth {
    fn watch(stack: &LocalStack, queue: &str) -> Result<Self, Error> {
        let url = stack.stack.queue(queue).ok_or("no such queue")?.url.clone();
        let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
        let peak = Arc::new(AtomicUsize::new(0));
        let seen = peak.clone();
        tokio::spawn(async move {
            loop {
                let depth = sqs
                    .get_queue_attributes()
                    .queue_url(&url)
                    .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                    .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                    .send()
                    .await
                    .ok()
                    .and_then(|a| a.attributes)
                    .map(|a| a.values().filter_map(|v| v.parse::<usize>().ok()).sum())
                    .unwrap_or(0);
                seen.fetch_max(depth, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Ok(Self { peak })
    }

    fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    fn reset(&self) {
        self.peak.store(0, Ordering::Relaxed);
    }
}

/// Sets the payment breaker open, as five charges failing in a row would.
async fn open_breaker(stack: &LocalStack) -> Result<(), Error> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let now_ms = chrono::Utc::now().timestamp_millis();
    aws_sdk_dynamodb::Client::new(&stack.sdk)
        .put_item()
        .table_name(stack.stack.table("RequestsTable"))
        .item("pk", AttributeValue::S("BREAKER#payments".into()))
        .item("sk", AttributeValue::S("BREAKER".into()))
        .item("state", AttributeValue::S("open".into()))
        .item("version", AttributeValue::N("1".into()))
        .item("since_ms", AttributeValue::N(now_ms.to_string()))
        .send()
        .await?;
    Ok(())
}

/// The `q` quantile of sorted samples (nearest rank), NaN when there are none.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}
