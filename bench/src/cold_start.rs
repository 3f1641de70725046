//! `bench-cold-start`: how long a fresh function process takes to answer its
//! first request, and how much memory it takes doing so, against the peer a
//! team would otherwise write: a Python 3 handler with boto3.
//!
//! Each run starts a fresh process under a minimal Lambda Runtime API served
//! here (the real `/2018-06-01/runtime/invocation/next` and `.../response`
//! protocol, as Lambda's own runtime API speaks it), hands it one API Gateway
//! v2 event from `tests/fixtures`, and measures from spawn to the response
//! posted, then reads the process's peak RSS (`VmHWM`) before stopping it.
//! The functions are the release binaries `cargo build --release` makes for
//! this machine; the peer is `bench/cold_start/python_peer.py` on the venv's
//! Python, doing the same first request (one GetItem for `GET /products/{sku}`).
//! Runs alternate between the two so the machine's load falls on both alike.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use clap::Parser;
use flashcart_local::LocalStack;
use shared::domain::money::Money;
use shared::domain::product::ProductInput;
use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, mpsc};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser)]
#[command(about = "Cold start of each function against a Python + boto3 peer")]
struct Args {
    /// Fresh processes per function.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Where the release binaries are.
    #[arg(long, default_value = "target/release")]
    bin_dir: String,
    /// The Python with boto3 (the venv's).
    #[arg(long, env = "FLASHCART_PYTHON", default_value = ".venv/bin/python")]
    python: String,
}

/// What the runtime API hands out and what it heard back.
#[derive(Default)]
struct RuntimeApi {
    /// The next event to hand out; `None` once handed (later `next` calls wait).
    event: Mutex<Option<(String, String)>>,
    responses: Mutex<Option<mpsc::UnboundedSender<(String, Instant, u16)>>>,
}

/// A function under test: what it runs, its environment, its first event.
struct Subject {
    name: String,
    command: Vec<String>,
    env: BTreeMap<String, String>,
    event: String,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    first_response: Duration,
    peak_rss_kib: u64,
    /// Of the resident set after the answer: anonymous memory (heap, stacks),
    /// the rest being the program's own file pages.
    anon_kib: u64,
    status: u16,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    let sdk = flashcart_local::sdk_config(false).await?;
    let prefix = format!("cold{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let stack = LocalStack::deploy(
        sdk,
        &prefix,
        shared::config::Secret::from(flashcart_local::jwt::DEFAULT_SECRET),
        &[],
    )
    .await?;
    let result = bench(&args, &stack).await;
    stack.destroy().await;
    result
}

async fn bench(args: &Args, stack: &LocalStack) -> Result<(), Error> {
    // the product the fixtures name
    let catalog = shared::store::catalog::CatalogStore::new(
        aws_sdk_dynamodb::Client::new(&stack.sdk),
        stack.stack.table("CatalogTable"),
    );
    let now = chrono::Utc::now();
    let input = ProductInput {
        name: "Fixture mug".into(),
        description: String::new(),
        price: Money {
            amount: 1299,
            currency: "EUR".into(),
        },
        category: "kitchen".into(),
        stock: 1_000_000,
    };
    catalog
        .put(&input.into_product("MUG-1".into(), now, now))
        .await
        .map_err(|e| format!("seeding MUG-1: {e}"))?;
    // and a running sale of it for flash-checkout
    let sales = shared::store::flash_sales::FlashSaleStore::new(
        aws_sdk_dynamodb::Client::new(&stack.sdk),
        stack.stack.table("FlashSalesTable"),
        catalog.clone(),
    );
    let sale = shared::domain::flash_sale::NewFlashSale {
        sale_id: None,
        sku: "MUG-1".into(),
        price: Money {
            amount: 999,
            currency: "EUR".into(),
        },
        quantity: 10_000,
        starts_at: now - chrono::Duration::minutes(1),
        ends_at: now + chrono::Duration::hours(1),
        per_user_limit: 1,
        shards: Some(8),
    };
    sales
        .create(&sale.into_sale(SALE.into(), now))
        .await
        .map_err(|e| format!("seeding sale {SALE}: {e}"))?;

    let api = Arc::new(RuntimeApi::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let runtime_api = listener.local_addr()?.to_string();
    let router = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(failed))
        .route("/2018-06-01/runtime/init/error", post(init_failed))
        .with_state(api.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let fixture = |name: &str| std::fs::read_to_string(format!("tests/fixtures/{name}"));
    let get_product = fixture("apigw-v2-get-product.json")?;
    let checkout = fixture("apigw-v2-checkout.json")?;
    let mut subjects = Vec::new();
    for (id, binary, event) in [
        (
            "StorefrontApiFunction",
            "storefront-api",
            get_product.clone(),
        ),
        ("CheckoutFunction", "checkout", checkout.clone()),
        (
            "FlashCheckoutFunction",
            "flash-checkout",
            flash_event(&checkout)?,
        ),
        (
            "AdminApiFunction",
            "admin-api",
            fixture("apigw-v2-admin-put-product.json")?,
        ),
    ] {
        let path = format!("{}/{binary}", args.bin_dir);
        if !std::path::Path::new(&path).exists() {
            return Err(format!("{path} is missing: run `make bench-cold-start`").into());
        }
        subjects.push(Subject {
            name: binary.into(),
            command: vec![path],
            env: lambda_env(stack, id, &runtime_api, binary)?,
            event,
        });
    }
    subjects.push(Subject {
        name: "python3 + boto3".into(),
        command: vec![
            args.python.clone(),
            "bench/cold_start/python_peer.py".into(),
        ],
        env: lambda_env(stack, "StorefrontApiFunction", &runtime_api, "python-peer")?,
        event: get_product,
    });

    let mut runs: BTreeMap<String, Vec<Run>> = BTreeMap::new();
    for round in 0..args.runs {
        for subject in &subjects {
            let run = run_once(&api, subject, round).await?;
            if !(200..300).contains(&run.status) {
                return Err(format!("{}: first answer was {}", subject.name, run.status).into());
            }
            runs.entry(subject.name.clone()).or_default().push(run);
        }
    }
    report(&runs, args.runs);
    Ok(())
}

/// The environment Lambda gives a function: the template's variables for it,
/// the runtime API, and the SDK's endpoint variables pointing at the emulator.
fn lambda_env(
    stack: &LocalStack,
    id: &str,
    runtime_api: &str,
    name: &str,
) -> Result<BTreeMap<String, String>, Error> {
    let mut env = stack.template.function_env(id, &stack.stack)?;
    for (k, v) in [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api),
        ("AWS_LAMBDA_FUNCTION_NAME", name),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
        ("RUST_LOG", "warn"),
    ] {
        env.insert(k.into(), v.into());
    }
    for k in [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_EC2_METADATA_DISABLED",
        "PATH",
    ] {
        if let Ok(v) = std::env::var(k) {
            env.insert(k.into(), v);
        }
    }
    Ok(env)
}

/// One fresh process: spawn, serve it the event, wait for its answer, read
/// its peak RSS, stop it.
async fn run_once(api: &RuntimeApi, subject: &Subject, round: usize) -> Result<Run, Error> {
    let request_id = format!("bench-{round}-{}", uuid::Uuid::new_v4().simple());
    let (tx, mut rx) = mpsc::unbounded_channel();
    *api.responses.lock().await = Some(tx);
    *api.event.lock().await = Some((request_id.clone(), first_time(&subject.event)?));
    let started = Instant::now();
    let mut child = tokio::process::Command::new(&subject.command[0])
        .args(&subject.command[1..])
        .env_clear()
        .envs(&subject.env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let answered = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await;
    let status_file = child
        .id()
        .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .unwrap_or_default();
    child.kill().await.ok();
    let (id, at, status) = answered
        .map_err(|_| format!("{}: no answer within 30 s", subject.name))?
        .ok_or_else(|| format!("{}: the runtime API stopped", subject.name))?;
    if id != request_id {
        return Err(format!("{}: answered {id}, expected {request_id}", subject.name).into());
    }
    Ok(Run {
        first_response: at - started,
        peak_rss_kib: kib(&status_file, "VmHWM:"),
        anon_kib: kib(&status_file, "RssAnon:"),
        status,
    })
}

/// The sale flash-checkout's first event buys from.
const SALE: &str = "bench-cold";

/// The checkout fixture, turned into a flash-sale checkout of [`SALE`].
fn flash_event(checkout: &str) -> Result<String, Error> {
    let mut e: serde_json::Value = serde_json::from_str(checkout)?;
    let route = "POST /flash-sales/{sale_id}/checkout";
    let path = format!("/flash-sales/{SALE}/checkout");
    e["routeKey"] = route.into();
    e["rawPath"] = path.clone().into();
    e["requestContext"]["routeKey"] = route.into();
    e["requestContext"]["http"]["path"] = path.into();
    e["pathParameters"] = serde_json::json!({ "sale_id": SALE });
    e["body"] = r#"{"quantity": 1, "payment_token": "tok_ok"}"#.into();
    Ok(e.to_string())
}

/// `event` as a first request: a buyer and an Idempotency-Key of its own, so
/// no run replays an earlier one (the admin event keeps its admin).
fn first_time(event: &str) -> Result<String, Error> {
    let mut e: serde_json::Value = serde_json::from_str(event)?;
    let fresh = uuid::Uuid::new_v4().to_string();
    if e["headers"].get("idempotency-key").is_some() {
        e["headers"]["idempotency-key"] = fresh.clone().into();
    }
    if let Some(claims) = e["requestContext"]["authorizer"]["jwt"]["claims"].as_object_mut()
        && !claims
            .get("cognito:groups")
            .and_then(|g| g.as_str())
            .is_some_and(|g| g.contains("admin"))
    {
        claims.insert("sub".into(), format!("bench-{fresh}").into());
    }
    Ok(e.to_string())
}

/// A `/proc/<pid>/status` figure in KiB (`VmHWM:` is the peak resident set).
fn kib(status_file: &str, field: &str) -> u64 {
    status_file
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn next(State(api): State<Arc<RuntimeApi>>) -> (StatusCode, HeaderMap, String) {
    let handed = api.event.lock().await.take();
    let Some((id, event)) = handed else {
        // one event per process: a runtime asking again waits until stopped
        std::future::pending::<()>().await;
        return (StatusCode::NO_CONTENT, HeaderMap::new(), String::new());
    };
    let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("lambda-runtime-aws-request-id", id.clone()),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:000000000000:function:bench".into(),
        ),
        ("lambda-runtime-trace-id", format!("Root=1-{id}")),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    (StatusCode::OK, headers, event)
}

async fn response(
    State(api): State<Arc<RuntimeApi>>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    let at = Instant::now();
    let status = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["statusCode"].as_u64())
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or(0);
    if let Some(tx) = api.responses.lock().await.as_ref() {
        let _ = tx.send((id, at, status));
    }
    StatusCode::ACCEPTED
}

async fn failed(
    State(api): State<Arc<RuntimeApi>>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    eprintln_error(&format!("invocation {id} failed: {body}"));
    if let Some(tx) = api.responses.lock().await.as_ref() {
        let _ = tx.send((id, Instant::now(), 500));
    }
    StatusCode::ACCEPTED
}

async fn init_failed(body: String) -> StatusCode {
    eprintln_error(&format!("init failed: {body}"));
    StatusCode::ACCEPTED
}

#[expect(clippy::print_stderr, reason = "a benchmark reports what went wrong")]
fn eprintln_error(text: &str) {
    eprintln!("{text}");
}

fn report(runs: &BTreeMap<String, Vec<Run>>, n: usize) {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let worst = |v: &[f64]| v.iter().copied().fold(f64::NAN, f64::max);
    let figures = |name: &str| {
        let r = runs.get(name)?;
        let ms: Vec<f64> = r
            .iter()
            .map(|r| r.first_response.as_secs_f64() * 1000.0)
            .collect();
        let mib: Vec<f64> = r.iter().map(|r| r.peak_rss_kib as f64 / 1024.0).collect();
        let anon: Vec<f64> = r.iter().map(|r| r.anon_kib as f64 / 1024.0).collect();
        Some((
            median(ms.clone()),
            worst(&ms),
            median(mib.clone()),
            worst(&mib),
            median(anon),
        ))
    };
    let mut text = format!(
        "bench-cold-start: {n} fresh processes each, spawn -> first response posted to the runtime API\n\
         {:<18} {:>10} {:>10} {:>14} {:>14} {:>15}\n",
        "function", "median ms", "worst ms", "peak RSS MiB", "worst RSS MiB", "of it anon MiB"
    );
    for name in runs.keys() {
        if let Some((ms, ms_worst, mib, mib_worst, anon)) = figures(name) {
            text.push_str(&format!(
                "{name:<18} {ms:>10.1} {ms_worst:>10.1} {mib:>14.1} {mib_worst:>14.1} {anon:>15.1}\n"
            ));
        }
    }
    if let (Some(rust), Some(py)) = (figures("storefront-api"), figures("python3 + boto3")) {
        text.push_str(&format!(
            "storefront-api / python peer, same request (GET /products/{{sku}}, one GetItem): time {:.3} (1/{:.1}), memory {:.3} (1/{:.1})   <- goal: at most 1/10 of each\n",
            rust.0 / py.0,
            py.0 / rust.0,
            rust.2 / py.2,
            py.2 / rust.2,
        ));
    }
    say(&text);
}

#[expect(clippy::print_stdout, reason = "a benchmark prints its figures")]
fn say(text: &str) {
    println!("{text}");
}
