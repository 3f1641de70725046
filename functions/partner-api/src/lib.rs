//! partner-api: `/partner/*` (ADR 0024). The contract, its examples and the
//! quickstart are public; everything else takes a partner key in `X-Api-Key`.
//!
//! A keyed request is checked in this order, each step shared across
//! containers through DynamoDB and remembered here while it lasts:
//! 1. its source address is not blocked (from memory, else the address's
//!    failure counter, read together with the key);
//! 2. the key: looked up by its id (one GetItem, never cached, so a revoked
//!    key is refused on its next request in every container), its secret's
//!    hash compared in constant time. A failure counts against the address;
//!    the one past the limit blocks the address until its window ends;
//! 3. the key's requests this minute.
//!
//! Every keyed request, refused or not, leaves an audit record with the key
//! id and the source address.

use chrono::{DateTime, Utc};
use http::{HeaderMap, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use shared::ApiError;
use shared::aws::SdkConfig;
use shared::clock::SharedClock;
use shared::config::{ConfigError, PartnerConfig, Source};
use shared::domain::api_key::{ApiKey, KeyRefusal};
use shared::domain::text::printable;
use shared::domain::throttle::{LimitScope, RateLimited, Throttle};
use shared::domain::ts;
use shared::feeds::adapters::{self, ADAPTERS, ControlFlow};
use shared::feeds::contract;
use shared::feeds::import::{FeedView, Upload, Validation, first_errors};
use shared::feeds::scan::{FeedKey, INCOMING, MAX_FEED_ID, Scanned, scan};
use shared::feeds::{FeedVersion, RowError};
use shared::fetch::profiles::{ProfileInput, ProfileService};
use shared::http::{MAX_JSON_BODY, RequestInfo, json_body, path_param, query_param};
use shared::memory::Memory;
use shared::objects::Objects;
use shared::response::{json, with_location};
use shared::store::audit::{AuditEvent, AuditStore};
use shared::store::imports::ImportStore;
use shared::store::partners::{Partner, PartnerStore};
use shared::store::requests::{Counted, RequestStore};
use tracing::Instrument;

/// The header a partner's key travels in.
pub const API_KEY_HEADER: &str = "x-api-key";
/// Errors a dry run lists at most (the rest are counted).
pub const MAX_LISTED_ERRORS: usize = 1000;
/// Errors `GET /partner/feeds/{feed_id}` shows from the report.
pub const SHOWN_ERRORS: usize = 100;
/// How much of a report is read for them: 100 errors take under 100 KiB.
const REPORT_HEAD_BYTES: u64 = 256 * 1024;
/// Longest actor or target recorded (an attacker writes them).
const MAX_AUDITED: usize = 100;

/// Counter names in the requests table, shaped as no SKU can be.
const FAILED: &str = "\u{0}partner-failed";
const REQUESTS: &str = "\u{0}partner-requests";

pub struct Deps {
    config: PartnerConfig,
    partners: PartnerStore,
    imports: ImportStore,
    requests: RequestStore,
    audit: AuditStore,
    objects: Objects,
    fetch_profiles: ProfileService,
    /// Addresses blocked for failed key attempts, until their window ends.
    blocked: Memory<()>,
    /// Keys that used their requests of the minute, until it ends.
    limited: Memory<()>,
    clock: SharedClock,
}

impl Deps {
    pub fn new(config: PartnerConfig, sdk: &SdkConfig) -> Self {
        let dynamo = shared::aws::dynamodb(sdk);
        Self {
            partners: PartnerStore::new(dynamo.clone(), &config.tables.partners),
            imports: ImportStore::new(dynamo.clone(), &config.tables.partners),
            requests: RequestStore::new(dynamo.clone(), &config.tables.requests),
            fetch_profiles: ProfileService::new(
                dynamo.clone(),
                &config.tables.partners,
                shared::aws::secrets_manager(sdk),
                &config.fetch,
            ),
            audit: AuditStore::new(dynamo, &config.tables.audit),
            objects: Objects::new(shared::aws::s3(sdk)),
            blocked: Memory::new(10_000),
            limited: Memory::new(10_000),
            config,
            clock: shared::clock::system(),
        }
    }

    pub fn from_source(src: &dyn Source, sdk: &SdkConfig) -> Result<Self, ConfigError> {
        Ok(Self::new(PartnerConfig::from_source(src)?, sdk))
    }

    /// The same function on another clock (tests move time instead of sleeping).
    pub fn with_clock(self, clock: SharedClock) -> Self {
        Self { clock, ..self }
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    let info = RequestInfo::of(&req);
    let span = info.span();
    let answer = async {
        let result = match info.route_key.as_str() {
            "GET /partner/contract" => Ok(json(StatusCode::OK, &contract::contract())),
            "GET /partner/contract/example" => example(&req),
            "GET /partner/help" => Ok(help(deps, &req)),
            _ => keyed(deps, &req, &info).await,
        };
        result.unwrap_or_else(|e| e.into_response(&info.request_id))
    }
    .instrument(span)
    .await;
    Ok(answer)
}

/// Who a valid key belongs to.
#[derive(Debug, Clone)]
struct Caller {
    partner_id: String,
    key_id: String,
}

/// What the audit record of a keyed request says.
#[derive(Default)]
struct Trail {
    actor: Option<String>,
    target: String,
    /// Overrides the outcome derived from the answer.
    outcome: Option<String>,
}

/// A request that needs a key: checked, served, audited.
async fn keyed(deps: &Deps, req: &Request, info: &RequestInfo) -> Result<Response<Body>, ApiError> {
    let now = deps.clock.now();
    let mut trail = Trail::default();
    let result = match authenticate(deps, req.headers(), &info.source_ip, now, &mut trail).await {
        Ok(caller) => route(deps, req, info, &caller, now, &mut trail).await,
        Err(e) => Err(e),
    };
    let outcome = trail.outcome.take().unwrap_or_else(|| match &result {
        Ok(_) => "allowed".to_owned(),
        Err(e) => e.code().to_owned(),
    });
    let event = AuditEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        at: now,
        actor: printable(trail.actor.as_deref().unwrap_or("anonymous"), MAX_AUDITED),
        action: info.route_key.clone(),
        target: printable(&trail.target, MAX_AUDITED),
        source_ip: info.source_ip.clone(),
        outcome,
        request_id: info.request_id.clone(),
    };
    // the answer stands whatever happens here; a record not written goes
    // whole to the error log, so the trail can be rebuilt from it
    if let Err(e) = deps.audit.record(&event).await {
        tracing::error!(error = %e, audit = ?event, "audit record not written");
    }
    result
}

/// The three checks of the module's doc, in order.
async fn authenticate(
    deps: &Deps,
    headers: &HeaderMap,
    address: &str,
    now: DateTime<Utc>,
    trail: &mut Trail,
) -> Result<Caller, ApiError> {
    let failures = &deps.config.failures;
    let address_key = address_counter(address);
    if let Some((_, left)) = deps.blocked.recall_for(&address_key, now) {
        trail.outcome = Some("rate_limited (address blocked)".into());
        return Err(limited(left, LimitScope::Address));
    }
    let presented = headers
        .get(API_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("");
    let key = ApiKey::parse(presented);
    if let Some(k) = &key {
        trail.actor = Some(format!("key:{}", k.key_id));
    }
    let counted = deps.requests.peek(&address_key, FAILED, failures, now);
    let (record, failed_so_far) = match &key {
        Some(k) => {
            let (record, count) = tokio::join!(deps.partners.key(&k.key_id), counted);
            (record?, count?)
        }
        None => (None, counted.await?),
    };
    if failed_so_far >= failures.burst {
        return Err(block(deps, &address_key, failures, now, trail));
    }
    let refusal = match (&key, &record) {
        (None, _) if presented.is_empty() => Some(KeyRefusal::Missing),
        (None, _) => Some(KeyRefusal::Malformed),
        (Some(_), None) => Some(KeyRefusal::Unknown),
        (Some(k), Some(r)) if !k.matches(&r.secret_hash) => Some(KeyRefusal::Mismatch),
        (Some(_), Some(r)) if r.revoked_at.is_some() => Some(KeyRefusal::Revoked),
        _ => None,
    };
    let (Some(record), None) = (record, refusal) else {
        let why = refusal.unwrap_or(KeyRefusal::Unknown);
        tracing::warn!(
            source_ip = address,
            reason = why.as_str(),
            "partner key refused"
        );
        return match deps
            .requests
            .count(&address_key, FAILED, failures, now)
            .await?
        {
            Counted::Allowed => {
                trail.outcome = Some(format!("invalid_api_key ({})", why.as_str()));
                Err(why.into())
            }
            Counted::Full => Err(block(deps, &address_key, failures, now, trail)),
        };
    };
    trail.actor = Some(format!(
        "partner:{}/key:{}",
        record.partner_id, record.key_id
    ));
    let key_counter = format!("key:{}", record.key_id);
    let per_key = &deps.config.per_key;
    let scope = LimitScope::Key {
        per_minute: per_key.burst,
    };
    if let Some((_, left)) = deps.limited.recall_for(&key_counter, now) {
        return Err(limited(left, scope));
    }
    match deps
        .requests
        .count(&key_counter, REQUESTS, per_key, now)
        .await?
    {
        Counted::Allowed => Ok(Caller {
            partner_id: record.partner_id,
            key_id: record.key_id,
        }),
        Counted::Full => {
            deps.limited
                .remember(key_counter, (), per_key.window_end(now));
            Err(limited(per_key.window_end(now) - now, scope))
        }
    }
}

/// The failure counter of a source address: an IPv4 address, or the /64 an
/// IPv6 address is in (one host commonly holds a whole /64, so counting its
/// addresses one by one would count nothing).
fn address_counter(address: &str) -> String {
    use std::net::IpAddr;
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("addr:{v4}"),
            None => {
                let s = v6.segments();
                format!("addr:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Ok(IpAddr::V4(v4)) => format!("addr:{v4}"),
        // API Gateway always sends one; anything else is counted as written
        Err(_) => format!("addr:{}", printable(address, 64)),
    }
}

/// Blocks `address` until its failure window ends.
fn block(
    deps: &Deps,
    address_key: &str,
    failures: &Throttle,
    now: DateTime<Utc>,
    trail: &mut Trail,
) -> ApiError {
    let until = failures.window_end(now);
    deps.blocked.remember(address_key.to_owned(), (), until);
    tracing::warn!(address = address_key, until = %ts::format(&until), "address blocked for failed key attempts");
    trail.outcome = Some("rate_limited (address blocked)".into());
    limited(until - now, LimitScope::Address)
}

fn limited(left: chrono::Duration, scope: LimitScope) -> ApiError {
    // whole seconds, rounded up: a client that waits them is let in
    let ms = left.num_milliseconds().max(0) as u64;
    RateLimited {
        retry_after: ms.div_ceil(1000).max(1),
        scope,
    }
    .into()
}

async fn route(
    deps: &Deps,
    req: &Request,
    info: &RequestInfo,
    caller: &Caller,
    now: DateTime<Utc>,
    trail: &mut Trail,
) -> Result<Response<Body>, ApiError> {
    match info.route_key.as_str() {
        "POST /partner/feeds/validate" => validate(deps, req, caller, trail).await,
        "POST /partner/feeds" => create_upload(deps, req, caller, now, trail).await,
        "GET /partner/feeds/{feed_id}" => {
            let feed_id = feed_id_param(req)?;
            trail.target.clone_from(&feed_id);
            feed(deps, caller, &feed_id).await
        }
        "PUT /partner/fetch-profile" => {
            trail.target = "fetch-profile".into();
            let input: ProfileInput = json_body(req, MAX_JSON_BODY)?;
            let p = partner(deps, caller).await?;
            let (view, _) = deps.fetch_profiles.save(&p, input, now).await?;
            // the audit trail says what changed, never the secret
            trail.outcome = Some(format!(
                "saved ({} auth, secret {})",
                view.auth.kind,
                if view.secret_changed_at == Some(now) {
                    "changed"
                } else if view.secret_set {
                    "kept"
                } else {
                    "none"
                }
            ));
            Ok(json(StatusCode::OK, &view))
        }
        "GET /partner/fetch-profile" => {
            trail.target = "fetch-profile".into();
            match deps.fetch_profiles.view(&caller.partner_id).await? {
                Some(view) => Ok(json(StatusCode::OK, &view)),
                None => Err(ApiError::not_found(
                    "Fetch profile",
                    "partner_id",
                    &caller.partner_id,
                )),
            }
        }
        "DELETE /partner/fetch-profile" => {
            trail.target = "fetch-profile".into();
            deps.fetch_profiles.delete(&caller.partner_id).await?;
            Ok(shared::response::no_content())
        }
        _ => Err(shared::routes::unmatched(&info.method, &info.path).into()),
    }
}

async fn partner(deps: &Deps, caller: &Caller) -> Result<Partner, ApiError> {
    // a key outlives no partner, but a partner removed by hand would be a 500
    deps.partners.get(&caller.partner_id).await?.ok_or_else(|| {
        ApiError::internal(format!(
            "partner {} of key {} is gone",
            caller.partner_id, caller.key_id
        ))
    })
}

fn version_number(v: FeedVersion) -> u8 {
    match v {
        FeedVersion::V1 => 1,
        FeedVersion::V2 => 2,
    }
}

/// The format a Content-Type names.
fn format_of(content_type: &str) -> Option<&'static str> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "text/csv" => Some("csv"),
        "application/json" => Some("json"),
        "application/xml" | "text/xml" => Some("xml"),
        _ => None,
    }
}

fn content_type_of(format: &str) -> &'static str {
    match format {
        "csv" => "text/csv",
        "json" => "application/json",
        _ => "application/xml",
    }
}

/// A dry run: the body read by the adapter and validated by the rules the
/// ingest uses, for the caller's partner id; nothing is written.
async fn validate(
    deps: &Deps,
    req: &Request,
    caller: &Caller,
    trail: &mut Trail,
) -> Result<Response<Body>, ApiError> {
    let headers = req.headers();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = format_of(content_type).ok_or_else(|| {
        ApiError::invalid_request(
            "Content-Type",
            "must be text/csv, application/json or application/xml",
        )
    })?;
    let version = match headers
        .get("x-feed-version")
        .map(|v| v.to_str().unwrap_or(""))
    {
        Some(v) => FeedVersion::parse(v)
            .ok_or_else(|| ApiError::invalid_request("X-Feed-Version", "must be 1 or 2"))?,
        None => {
            let p = partner(deps, caller).await?;
            FeedVersion::parse(&p.feed_version.to_string()).unwrap_or(FeedVersion::V1)
        }
    };
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
    {
        None => false,
        Some(e) if e == "gzip" => true,
        Some(e) if e == "identity" => false,
        Some(_) => {
            return Err(ApiError::invalid_request(
                "Content-Encoding",
                "must be gzip or absent",
            ));
        }
    };
    let body: &[u8] = req.body().as_ref();
    if body.len() > deps.config.max_validate_bytes {
        return Err(ApiError::payload_too_large(deps.config.max_validate_bytes));
    }
    let adapter = adapters::find(ADAPTERS, format, version).ok_or_else(|| {
        ApiError::invalid_request("Content-Type", "no reader for this format and version")
    })?;
    let mut rows = 0u64;
    let mut invalid_rows = 0u64;
    let mut errors: Vec<RowError> = Vec::new();
    let mut errors_total = 0u64;
    let read = scan(
        adapter,
        &mut adapters::decoded(body, gzip, deps.config.max_validate_decoded_bytes),
        &caller.partner_id,
        version,
        &mut |s| {
            rows += 1;
            if let Scanned::Invalid { errors: e, .. } = s {
                invalid_rows += 1;
                errors_total += e.len() as u64;
                let room = MAX_LISTED_ERRORS.saturating_sub(errors.len());
                errors.extend(e.into_iter().take(room));
            }
            ControlFlow::Continue(())
        },
    );
    let file_error = read
        .err()
        .map(|e| json!({"code": e.code(), "message": e.to_string()}));
    let valid = file_error.is_none() && errors_total == 0;
    trail.target = format!("dry run: {format} v{}", version_number(version));
    trail.outcome = Some(match &file_error {
        Some(e) => format!("rejected ({})", e["code"].as_str().unwrap_or("")),
        None if valid => "valid".into(),
        None => format!("rejected ({invalid_rows} invalid rows)"),
    });
    Ok(json(
        StatusCode::OK,
        &json!({
            "valid": valid,
            "format": format,
            "feed_version": version_number(version),
            "rows": rows,
            "invalid_rows": invalid_rows,
            "errors": errors,
            "errors_total": errors_total,
            "errors_truncated": errors_total > errors.len() as u64,
            "file_error": file_error,
        }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUpload {
    format: String,
    #[serde(default)]
    feed_version: Option<u8>,
    #[serde(default)]
    validation: Option<Validation>,
}

/// An upload: the import-to-be's record and a URL that puts one object at
/// `incoming/<the caller's partner id>/<a new feed id>.<format>`.
async fn create_upload(
    deps: &Deps,
    req: &Request,
    caller: &Caller,
    now: DateTime<Utc>,
    trail: &mut Trail,
) -> Result<Response<Body>, ApiError> {
    let input: NewUpload = json_body(req, MAX_JSON_BODY)?;
    let format = contract::FORMATS
        .into_iter()
        .find(|f| *f == input.format)
        .ok_or_else(|| ApiError::invalid_request("format", "must be csv, json or xml"))?;
    if input
        .feed_version
        .is_some_and(|v| !contract::VERSIONS.contains(&v))
    {
        return Err(ApiError::invalid_request("feed_version", "must be 1 or 2"));
    }
    let (feed_version, validation) = match (input.feed_version, input.validation) {
        (Some(v), Some(m)) => (v, m),
        (v, m) => {
            let p = partner(deps, caller).await?;
            (v.unwrap_or(p.feed_version), m.unwrap_or(p.validation))
        }
    };
    let feed_id = format!("f-{}", uuid::Uuid::new_v4().simple());
    trail.target.clone_from(&feed_id);
    let object_key = format!("{INCOMING}{}/{feed_id}.{format}", caller.partner_id);
    // what the ingest will read it as, checked before anything is signed
    FeedKey::parse(&object_key, ADAPTERS).map_err(ApiError::internal)?;
    let expires_in = std::time::Duration::from_secs(deps.config.upload_expires_secs);
    let validation_text = match validation {
        Validation::Strict => "strict",
        Validation::Lenient => "lenient",
    };
    let content_type = content_type_of(format);
    let signed = deps
        .objects
        .presigned_put(
            &deps.config.feeds_bucket,
            &object_key,
            content_type,
            &[
                ("feed-version", feed_version.to_string()),
                ("validation", validation_text.to_owned()),
            ],
            expires_in,
        )
        .await
        .map_err(ApiError::internal)?;
    let expires_at = now + chrono::Duration::seconds(deps.config.upload_expires_secs as i64);
    let upload = Upload {
        partner_id: caller.partner_id.clone(),
        feed_id: feed_id.clone(),
        object_key: object_key.clone(),
        format: format.to_owned(),
        feed_version,
        validation,
        key_id: caller.key_id.clone(),
        created_at: now,
        expires_at,
    };
    if !deps.imports.put_upload(&upload).await? {
        return Err(ApiError::internal(format!("feed id {feed_id} was taken")));
    }
    trail.outcome = Some("upload_url_issued".into());
    let location = format!("/partner/feeds/{feed_id}");
    Ok(with_location(
        json(
            StatusCode::CREATED,
            &json!({
                "feed_id": feed_id,
                "status": "awaiting_upload",
                "upload_url": signed.url,
                "upload_method": "PUT",
                "upload_headers": signed.headers,
                "expires_in": deps.config.upload_expires_secs,
                "expires_at": ts::format(&expires_at),
                "object_key": object_key,
                "feed_version": feed_version,
                "validation": validation,
                "status_url": location,
            }),
        ),
        &location,
    ))
}

fn feed_id_param(req: &Request) -> Result<String, ApiError> {
    let id = path_param(req, "feed_id")?;
    let ok = id.len() <= MAX_FEED_ID
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if ok {
        Ok(id)
    } else {
        Err(ApiError::invalid_request(
            "feed_id",
            format!("must be 1 to {MAX_FEED_ID} letters, digits, '_' or '-'"),
        ))
    }
}

/// The caller's feed: its newest import, or the upload it waits for. Another
/// partner's feed is looked up under the caller's id, so it is simply not
/// found: the same 404 as a feed that never was.
async fn feed(deps: &Deps, caller: &Caller, feed_id: &str) -> Result<Response<Body>, ApiError> {
    if let Some(import) = deps
        .imports
        .latest_of_feed(&caller.partner_id, feed_id)
        .await?
    {
        let errors = match (&import.report_key, import.counts.rejected) {
            (Some(key), n) if n > 0 => deps
                .objects
                .head_of(&import.source.bucket, key, REPORT_HEAD_BYTES)
                .await
                .map_err(ApiError::internal)?
                .map(|head| first_errors(&head, &import.import_id, SHOWN_ERRORS))
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        return Ok(json(StatusCode::OK, &FeedView::of(import, errors)));
    }
    match deps.imports.upload(&caller.partner_id, feed_id).await? {
        Some(upload) => Ok(json(StatusCode::OK, &FeedView::awaiting(&upload))),
        None => Err(ApiError::not_found("Feed", "feed_id", feed_id)),
    }
}

/// `?version=&format=`: an example feed that passes validation.
fn example(req: &Request) -> Result<Response<Body>, ApiError> {
    let version = match query_param(req, "version") {
        None => FeedVersion::V1,
        Some(v) => FeedVersion::parse(&v)
            .ok_or_else(|| ApiError::invalid_request("version", "must be 1 or 2"))?,
    };
    let format = query_param(req, "format").unwrap_or_else(|| "csv".into());
    let (content_type, body) = contract::example(version, &format)
        .ok_or_else(|| ApiError::invalid_request("format", "must be csv, json or xml"))?;
    let mut response = Response::new(Body::Text(body));
    if let Ok(v) = http::HeaderValue::from_str(&format!("{content_type}; charset=utf-8")) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(response)
}

/// The API's base URL as the caller reached it.
fn base_url(req: &Request) -> String {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        });
    let Some(host) = host else {
        return "http://127.0.0.1:3000".into();
    };
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
    {
        Some("http") => "http",
        Some(_) => "https",
        None if host.starts_with("127.0.0.1") || host.starts_with("localhost") => "http",
        None => "https",
    };
    format!("{scheme}://{host}")
}

/// The quickstart: shell lines that work as they are, once the two exports
/// at the top hold the API's address and the partner's key.
pub fn quickstart(base: &str) -> Vec<(&'static str, String)> {
    let key = "X-Api-Key: $FLASHCART_KEY";
    vec![
        (
            "Say where the API is and which key to use (shown once when your partner account or key was created).",
            format!("export FLASHCART_API={base}\nexport FLASHCART_KEY=fc_yourkeyid_yoursecret"),
        ),
        (
            "Read the contract: a JSON Schema per feed version.",
            "curl -s \"$FLASHCART_API/partner/contract\"".into(),
        ),
        (
            "Fetch an example feed that passes validation (version 1 or 2; csv, json or xml).",
            "curl -s \"$FLASHCART_API/partner/contract/example?version=1&format=csv\" -o feed.csv".into(),
        ),
        (
            "Validate your file without importing it (a dry run: nothing is written).",
            format!("curl -s -X POST \"$FLASHCART_API/partner/feeds/validate\" -H \"{key}\" -H \"Content-Type: text/csv\" -H \"X-Feed-Version: 1\" --data-binary @feed.csv"),
        ),
        (
            "Ask for an upload URL (it works for up to 15 minutes).",
            format!("curl -s -X POST \"$FLASHCART_API/partner/feeds\" -H \"{key}\" -H \"Content-Type: application/json\" -d '{{\"format\":\"csv\",\"feed_version\":1,\"validation\":\"lenient\"}}' > upload.json"),
        ),
        (
            "Upload the file with exactly the headers upload.json lists under upload_headers (they are signed into the URL).",
            "jq -r '.upload_headers | to_entries[] | \"\\(.key): \\(.value)\"' upload.json > upload-headers.txt\ncurl -s -X PUT \"$(jq -r .upload_url upload.json)\" -H @upload-headers.txt --data-binary @feed.csv".into(),
        ),
        (
            "Watch the import: awaiting_upload, processing, then completed, completed_with_errors or rejected, with counts and the first errors.",
            format!("curl -s \"$FLASHCART_API/partner/feeds/$(jq -r .feed_id upload.json)\" -H \"{key}\""),
        ),
    ]
}

fn help(deps: &Deps, req: &Request) -> Response<Body> {
    let base = base_url(req);
    let steps = quickstart(&base);
    let script: String = steps
        .iter()
        .map(|(what, command)| format!("# {what}\n{command}\n"))
        .collect::<Vec<_>>()
        .join("\n");
    json(
        StatusCode::OK,
        &json!({
            "contract_version": contract::CONTRACT_VERSION,
            "api": base,
            "needs": ["curl", "jq"],
            "steps": steps
                .iter()
                .map(|(what, command)| json!({"what": what, "command": command}))
                .collect::<Vec<_>>(),
            "script": script,
            "limits": {
                "requests_per_minute_per_key": deps.config.per_key.burst,
                "failed_key_attempts_per_address": deps.config.failures.burst,
                "failed_attempts_window_seconds": deps.config.failures.window_secs,
                "upload_url_seconds": deps.config.upload_expires_secs,
                "validate_body_bytes": deps.config.max_validate_bytes,
            },
        }),
    )
}
