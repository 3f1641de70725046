//! `bench-fetch`: one scheduled fetch of a partner's feed (issue 12, ADR
//! 0025), measured two ways in one run.
//!
//! (a) rate: a generated feed of BIG MiB, served over loopback http by a
//!     server that makes it as it sends it (the server holds no copy), is
//!     fetched by feed-fetcher in a process of its own (as on Lambda) into
//!     the emulator's bucket. Beside it, on the same emulator in the same
//!     run, the bare path: the same bytes downloaded by a plain streaming
//!     GET (discarded), then the same number of 5 MiB parts put as one
//!     multipart upload from memory. The ratio is bare time / fetch time.
//! (b) the fetcher process's peak RSS (`VmHWM`) at SMALL and at BIG MiB:
//!     the body streams through in parts, so the peak should not grow with
//!     the feed.
//!
//! Every fetch must end `fetched` with the object in the bucket at the
//! feed's exact size, or the benchmark fails.

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use clap::Parser;
use flashcart_local::LocalStack;
use shared::store::fetch_profiles::{FetchProfile, FetchProfileStore};
use std::collections::BTreeMap;
use std::time::Instant;

use flashcart_bench::{Error, child_process, cores, fresh_stack, need_emulator, say, status_kb};

/// The child's environment (the function's, resolved), as JSON.
const CHILD_ENV: &str = "FLASHCART_BENCH_FETCH_ENV";
const MIB: u64 = 1 << 20;
/// What the generator sends per chunk.
const CHUNK: usize = 64 * 1024;

#[derive(Parser, Clone)]
#[command(about = "Partner feed fetch: rate against the bare emulator, peak RSS at two sizes")]
struct Args {
    /// MiB of the small feed.
    #[arg(long, env = "SMALL", default_value_t = 16)]
    small: u64,
    /// MiB of the big feed.
    #[arg(long, env = "BIG", default_value_t = 256)]
    big: u64,
    /// Internal: run as the fetcher process.
    #[arg(long, hide = true)]
    child: bool,
}

/// `size` bytes of a CSV feed, made chunk by chunk as they are sent.
fn generated(size: u64) -> axum::body::Body {
    const HEADER: &[u8] = b"sku,name,price,currency,quantity,category\n";
    let state = (0u64, 0usize);
    let stream = futures_util::stream::unfold(state, move |(sent, row)| async move {
        if sent >= size {
            return None;
        }
        let mut chunk = Vec::with_capacity(CHUNK + 128);
        if sent == 0 {
            chunk.extend_from_slice(HEADER);
        }
        let mut row = row;
        while chunk.len() < CHUNK {
            chunk.extend_from_slice(
                format!("SKU-{row:08},Product {row},12.99,EUR,4,kitchen\n").as_bytes(),
            );
            row += 1;
        }
        chunk.truncate(
            usize::try_from(size - sent)
                .unwrap_or(CHUNK)
                .min(chunk.len()),
        );
        let next = sent + chunk.len() as u64;
        Some((Ok::<_, std::convert::Infallible>(chunk), (next, row)))
    });
    axum::body::Body::from_stream(stream)
}

/// The partner's server: `GET /feeds/{bytes}` sends that many bytes.
async fn serve() -> Result<String, Error> {
    let app = Router::new().route(
        "/feeds/{bytes}",
        get(|Path(bytes): Path<u64>| async move { generated(bytes) }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr.to_string())
}

/// The fetcher process: one scheduled run, as the schedule invokes it.
async fn child() -> Result<(), Error> {
    let env: BTreeMap<String, String> = serde_json::from_str(&std::env::var(CHILD_ENV)?)?;
    let sdk = flashcart_local::sdk_config(false).await?;
    let source = |k: &str| env.get(k).cloned();
    let deps = feed_fetcher::Deps::from_source(&source, &sdk)?;
    let summary = feed_fetcher::handle(&deps, serde_json::json!({"source": "aws.events"}))
        .await
        .map_err(|e| e.to_string())?;
    let hwm = status_kb("VmHWM:").ok_or("no VmHWM")?;
    say!(
        "{}",
        serde_json::json!({ "vmhwm_kb": hwm, "summary": summary })
    );
    Ok(())
}

struct Fetched {
    seconds: f64,
    rss_mb: f64,
}

/// One profile due now at `<server>/feeds/<bytes>`, fetched by a fetcher
/// process; the object's size checked.
async fn fetch(
    stack: &LocalStack,
    server: &str,
    mib: u64,
    partner: &str,
) -> Result<Fetched, Error> {
    let bytes = mib * MIB;
    let mut env = stack
        .template
        .function_env("FeedFetcherFunction", &stack.stack)?;
    env.insert("FETCH_ALLOW_HTTP".into(), "1".into());
    env.insert("FETCH_ALLOWED_ADDRESSES".into(), server.to_owned());
    env.insert("FETCH_MAX_BYTES".into(), (bytes + MIB).to_string());
    env.insert("FETCH_TIMEOUT_SECONDS".into(), "600".into());
    let now = chrono::Utc::now();
    let profiles = FetchProfileStore::new(
        aws_sdk_dynamodb::Client::new(&stack.sdk),
        stack.stack.table("PartnersTable"),
    );
    profiles
        .put(&FetchProfile {
            partner_id: partner.to_owned(),
            url: format!("http://{server}/feeds/{bytes}"),
            every_hours: Some(24),
            daily_at: None,
            format: "csv".into(),
            feed_version: 1,
            validation: shared::feeds::import::Validation::Lenient,
            auth_type: "none".into(),
            username: None,
            header_name: None,
            secret_changed_at: None,
            next_fetch_at: now,
            failures: 0,
            paused_reason: None,
            etag: None,
            last_modified: None,
            claimed_by: None,
            claimed_due: None,
            updated_at: now,
        })
        .await?;
    let (seconds, report) = child_process(CHILD_ENV, &env, "fetcher").await?;
    if report["summary"]["fetched"] != 1 {
        return Err(format!("the fetch did not store: {}", report["summary"]).into());
    }
    let fetch = profiles
        .fetches(partner, 1)
        .await?
        .into_iter()
        .next()
        .ok_or("no fetch record")?;
    let key = format!("incoming/{partner}/{}.csv", fetch.fetch_id);
    let head = aws_sdk_s3::Client::new(&stack.sdk)
        .head_object()
        .bucket(stack.stack.bucket("FeedsBucket"))
        .key(&key)
        .send()
        .await?;
    if head.content_length() != Some(i64::try_from(bytes)?) {
        return Err(format!("{key} holds {:?} bytes, not {bytes}", head.content_length()).into());
    }
    Ok(Fetched {
        seconds,
        rss_mb: report["vmhwm_kb"].as_f64().ok_or("no VmHWM")? / 1024.0,
    })
}

/// The bare path for `mib`: a plain streaming GET, then a multipart upload
/// of as many 5 MiB parts from memory; seconds of each.
async fn bare(stack: &LocalStack, server: &str, mib: u64) -> Result<(f64, f64), Error> {
    let bytes = mib * MIB;
    let started = Instant::now();
    // no proxy, as the fetcher's own client
    let client = reqwest::Client::builder().no_proxy().build()?;
    let mut response = client
        .get(format!("http://{server}/feeds/{bytes}"))
        .send()
        .await?;
    let mut got = 0u64;
    while let Some(chunk) = response.chunk().await? {
        got += chunk.len() as u64;
    }
    let download = started.elapsed().as_secs_f64();
    if got != bytes {
        return Err(format!("the bare GET got {got} bytes, not {bytes}").into());
    }
    let s3 = aws_sdk_s3::Client::new(&stack.sdk);
    let bucket = stack.stack.bucket("FeedsBucket");
    let key = format!("bare/{mib}.csv");
    let part = vec![b'x'; shared::objects::PART];
    let started = Instant::now();
    let upload = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(&key)
        .send()
        .await?;
    let id = upload.upload_id().ok_or("no upload id")?;
    let mut parts = Vec::new();
    let mut left = bytes;
    let mut number = 1;
    while left > 0 {
        let len = left.min(part.len() as u64) as usize;
        let done = s3
            .upload_part()
            .bucket(bucket)
            .key(&key)
            .upload_id(id)
            .part_number(number)
            .body(part[..len].to_vec().into())
            .send()
            .await?;
        parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(number)
                .set_e_tag(done.e_tag().map(str::to_owned))
                .build(),
        );
        left -= len as u64;
        number += 1;
    }
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(&key)
        .upload_id(id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await?;
    Ok((download, started.elapsed().as_secs_f64()))
}

async fn measure(stack: &LocalStack, args: &Args) -> Result<(), Error> {
    let server = serve().await?;
    say!(
        "\n(a) the fetch's rate against the bare path, {} MiB",
        args.big
    );
    let (download, upload) = bare(stack, &server, args.big).await?;
    let big = fetch(stack, &server, args.big, "bench-big").await?;
    let rate = |s: f64| args.big as f64 / s;
    say!(
        "  bare GET (discarded)       {download:>7.2} s  {:>7.1} MiB/s",
        rate(download)
    );
    say!(
        "  bare multipart upload      {upload:>7.2} s  {:>7.1} MiB/s",
        rate(upload)
    );
    say!(
        "  feed-fetcher, whole run    {:>7.2} s  {:>7.1} MiB/s (process start, claim, fetch, record, audit)",
        big.seconds,
        rate(big.seconds)
    );
    say!(
        "  ratio bare / fetch         {:>7.2}",
        (download + upload) / big.seconds
    );
    say!("\n(b) the fetcher process's peak RSS (VmHWM)");
    let small = fetch(stack, &server, args.small, "bench-small").await?;
    let growth = big.rss_mb / small.rss_mb - 1.0;
    say!("  {:>5} MiB feed  {:>6.1} MB", args.small, small.rss_mb);
    say!("  {:>5} MiB feed  {:>6.1} MB", args.big, big.rss_mb);
    say!(
        "  growth          {:>+6.1}% for {}x the bytes ({})",
        growth * 100.0,
        args.big / args.small.max(1),
        if growth.abs() <= 0.10 {
            "flat: met"
        } else {
            "NOT flat"
        }
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    if args.child {
        return child().await;
    }
    need_emulator("bench-fetch")?;
    say!(
        "bench-fetch: SMALL = {} MiB, BIG = {} MiB, {} cores",
        args.small,
        args.big,
        cores()
    );
    let stack = fresh_stack("bfetch").await?;
    let outcome = measure(&stack, &args).await;
    stack.destroy().await;
    outcome
}
