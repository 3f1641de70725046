//! `flashcart-local`: the local stack's command line.
//!
//! - `run`: start the emulator, create every resource from template.yaml, seed
//!   demo data, serve the API, poll queues, fire schedules. Ctrl-C stops it all.
//! - `token`: print a JWT the local authorizer accepts.

use clap::{Parser, Subcommand};
use flashcart_local::{LocalStack, jwt, seed};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

#[derive(Parser)]
#[command(name = "flashcart-local", about = "Flashcart's local stack")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the whole stack locally.
    Run {
        /// Port of the HTTP API.
        #[arg(long, env = "API_PORT", default_value_t = 3000)]
        port: u16,
        /// Port of the emulator (moto) this command starts for SQS and S3.
        #[arg(long, env = "EMULATOR_PORT", default_value_t = 4566)]
        emulator_port: u16,
        /// Port of the emulator this command starts for DynamoDB (ADR 0008);
        /// 0 starts none (DynamoDB is elsewhere, e.g. DynamoDB Local).
        #[arg(long, env = "EMULATOR_DYNAMODB_PORT", default_value_t = 4567)]
        emulator_dynamodb_port: u16,
        /// Do not start the emulator: use the endpoints in AWS_ENDPOINT_URL* as they are.
        /// The variable takes 1/0 as well as true/false (the README says `=1`).
        #[arg(
            long,
            env = "FLASHCART_EXTERNAL_ENDPOINTS",
            action = clap::ArgAction::SetTrue,
            value_parser = clap::builder::BoolishValueParser::new()
        )]
        external: bool,
        /// The Python that has moto installed.
        #[arg(long, env = "FLASHCART_PYTHON", default_value = ".venv/bin/python")]
        python: String,
        /// Prefix of every table, queue and bucket name.
        #[arg(long, env = "FLASHCART_PREFIX", default_value = "flashcart")]
        prefix: String,
        /// Skip the demo data.
        #[arg(long)]
        no_seed: bool,
        /// Port of the sandbox payment provider.
        #[arg(long, env = "SANDBOX_PORT", default_value_t = flashcart_local::sandbox::DEFAULT_PORT)]
        sandbox_port: u16,
        /// Port of the sandbox feed server (a partner's web server).
        #[arg(long, env = "FEED_SERVER_PORT", default_value_t = 3002)]
        feed_server_port: u16,
        /// Fire every scheduled function this often instead of the
        /// template's rate (the fetcher's 5 minutes is long to wait for).
        #[arg(long, env = "FLASHCART_SCHEDULE_SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
        schedule_seconds: Option<u64>,
    },
    /// Print a token for the local authorizer.
    Token {
        #[arg(long, default_value = "alice")]
        user: String,
        /// Comma-separated groups, e.g. `admin`.
        #[arg(long, default_value = "")]
        groups: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
}

#[tokio::main]
async fn main() -> Result<(), flashcart_local::Error> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Token { user, groups, ttl } => {
            let groups: Vec<String> = groups
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_owned)
                .collect();
            let token = jwt::mint(&jwt::secret_from_env(), &user, &groups, ttl)?;
            say(&token);
            Ok(())
        }
        Cmd::Run {
            port,
            emulator_port,
            emulator_dynamodb_port,
            external,
            python,
            prefix,
            no_seed,
            sandbox_port,
            feed_server_port,
            schedule_seconds,
        } => {
            shared::logging::init();
            let mut emulators = Vec::new();
            if !external {
                // one moto for DynamoDB, one for SQS and S3 (ADR 0008)
                for port in [emulator_dynamodb_port, emulator_port]
                    .into_iter()
                    .filter(|p| *p != 0)
                {
                    emulators.push(start_emulator(&python, port).await?);
                }
            }
            let ports = Ports {
                api: port,
                sandbox: sandbox_port,
                feed_server: feed_server_port,
            };
            let every = schedule_seconds.map(Duration::from_secs);
            let result = run(ports, every, &prefix, no_seed).await;
            for child in &mut emulators {
                let _ = child.kill().await;
            }
            result
        }
    }
}

#[expect(clippy::print_stdout, reason = "a command line prints its answer")]
fn say(text: &str) {
    println!("{text}");
}

async fn start_emulator(python: &str, port: u16) -> Result<Child, flashcart_local::Error> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/emulator.py");
    let mut child = Command::new(python)
        .args([script, "--port", &port.to_string()])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start the emulator with {python} ({e}); run `make run`, which installs it"
            )
        })?;
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(child);
        }
        if let Some(status) = child.try_wait()? {
            return Err(format!("the emulator exited with {status} (is port {port} free?)").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("the emulator did not listen on port {port} within 30 s").into())
}

struct Ports {
    api: u16,
    sandbox: u16,
    feed_server: u16,
}

async fn run(
    ports: Ports,
    schedule_every: Option<Duration>,
    prefix: &str,
    no_seed: bool,
) -> Result<(), flashcart_local::Error> {
    let port = ports.api;
    let sdk = flashcart_local::sdk_config(false).await?;
    // the sandbox posts its webhooks to our own gateway
    let callback = format!("http://127.0.0.1:{port}/payments/callback");
    let (sandbox, sandbox_url) =
        flashcart_local::start_sandbox(ports.sandbox, Some(callback)).await?;
    // a partner's own web server; the fetcher may reach it (http, its
    // loopback address and port) here and nowhere else (ADR 0025)
    let (feed_server, feed_server_url) =
        flashcart_local::feed_server::start(ports.feed_server).await?;
    let feed_server_addr = feed_server_url.trim_start_matches("http://").to_owned();
    let mut parameters = vec![
        ("PaymentProviderUrl".to_owned(), sandbox_url.clone()),
        ("FetchAllowHttp".to_owned(), "1".to_owned()),
        ("FetchAllowedAddresses".to_owned(), feed_server_addr),
    ];
    parameters.extend(parameter_overrides()?);
    let parameters: Vec<(&str, String)> = parameters
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let mut stack = LocalStack::deploy(sdk, prefix, jwt::secret_from_env(), &parameters).await?;
    stack.sandbox = Some(sandbox);
    // the event source mappings: each queue long-polled into its function
    let pollers: Vec<_> = stack
        .pollers()?
        .into_iter()
        .map(|p| tokio::spawn(p.run()))
        .chain(stack.schedules(schedule_every)?)
        .collect();
    let seeded = if no_seed {
        None
    } else {
        let fetch = shared::config::FetchSettings::from_source(
            &stack.template_env("FeedFetcherFunction")?,
        )?;
        let sandbox = seed::FeedSandbox {
            server: &feed_server,
            base_url: &feed_server_url,
            fetch,
        };
        Some(seed::seed(&stack.stack, &stack.sdk, Some(&sandbox)).await?)
    };

    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} ({e}); set API_PORT to another port"))?;
    banner(
        port,
        &sandbox_url,
        &feed_server_url,
        &stack,
        seeded.as_ref(),
    );
    axum::serve(
        listener,
        stack
            .router()
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    for p in pollers {
        p.abort();
    }
    say("stopped");
    Ok(())
}

/// `FLASHCART_PARAMETERS=Name=value,Name=value`: template parameters this
/// run sets (`make contract` lifts the partner limits with it, so its
/// thousands of requests exercise the routes rather than the 429).
fn parameter_overrides() -> Result<Vec<(String, String)>, flashcart_local::Error> {
    let Ok(raw) = std::env::var("FLASHCART_PARAMETERS") else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| format!("FLASHCART_PARAMETERS: '{pair}' is not Name=value").into())
        })
        .collect()
}

fn banner(
    port: u16,
    sandbox_url: &str,
    feed_server_url: &str,
    stack: &LocalStack,
    seeded: Option<&seed::Seeded>,
) {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    let dynamodb = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_else(|_| endpoint.clone());
    let tables: Vec<&str> = stack.stack.tables.values().map(String::as_str).collect();
    let queues: Vec<&str> = stack
        .stack
        .queues
        .values()
        .map(|q| q.name.as_str())
        .collect();
    let buckets: Vec<&str> = stack.stack.buckets.values().map(String::as_str).collect();
    let mut text = format!(
        "\nFlashcart local stack is up\n  API        http://127.0.0.1:{port}  (GET /health)\n  payments   {sandbox_url}  (sandbox provider; GET /charges is its ledger)\n  feeds      {feed_server_url}  (sandbox feed server: a partner's web server)\n  DynamoDB   {dynamodb}\n  SQS, S3    {endpoint}\n  tables     {}\n  queues     {}\n  buckets    {}\n",
        tables.join(", "),
        queues.join(", "),
        buckets.join(", "),
    );
    if let Some(s) = seeded {
        text.push_str(&format!(
            "  seeded     {} products, flash sale '{}'\n",
            s.products, s.sale_id
        ));
        for (id, key) in &s.partners {
            text.push_str(&format!("  partner    '{id}' (API key {key})\n"));
        }
        if s.fetched {
            text.push_str(&format!(
                "  fetch      '{}' every hour from {feed_server_url}/feeds/{}.csv (the fetcher runs every 5 min, or FLASHCART_SCHEDULE_SECONDS)\n",
                seed::FETCHED_PARTNER,
                seed::FETCHED_PARTNER,
            ));
        }
    }
    text.push_str(&format!(
        "\nTry:\n  curl -s 'http://127.0.0.1:{port}/products?limit=3'\n  curl -s http://127.0.0.1:{port}/flash-sales/{}\n  TOKEN=$(make -s token USER=alice GROUPS=admin)\n  curl -s -H \"Authorization: Bearer $TOKEN\" 'http://127.0.0.1:{port}/admin/audit?limit=5'\n  curl -s http://127.0.0.1:{port}/partner/help   (a partner's quickstart; key {})\n\nCtrl-C stops everything.\n",
        seed::DEMO_SALE,
        seed::DEMO_PARTNER_KEY,
    ));
    say(&text);
}
