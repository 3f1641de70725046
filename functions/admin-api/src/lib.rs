//! admin-api: catalog and flash-sale administration, partners (their keys
//! and feed imports), and the audit trail.
//! Only callers in the `admin` group pass; every request, allowed or refused,
//! leaves an audit record (who, what, when, from where, outcome).

use chrono::{DateTime, Utc};
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::ApiError;
use shared::aws::SdkConfig;
use shared::clock::SharedClock;
use shared::config::{ConfigError, FetchSettings, HttpConfig, Source};
use shared::domain::api_key::ApiKey;
use shared::domain::flash_sale::NewFlashSale;
use shared::domain::partner::NewPartner;
use shared::domain::product::{Product, ProductInput, check_sku};
use shared::domain::text::printable;
use shared::domain::throttle::Throttle;
use shared::domain::ts;
use shared::feeds::import::ImportView;
use shared::fetch::profiles::{ProfileInput, ProfileService};
use shared::http::{
    MAX_JSON_BODY, RequestInfo, check_origin, json_body, limit_param, path_param, query_param,
};
use shared::memory::Memory;
use shared::response::{json, with_location};
use shared::store::audit::{AuditEvent, AuditStore};
use shared::store::catalog::CatalogStore;
use shared::store::flash_sales::{FlashSaleStore, SaleView};
use shared::store::imports::ImportStore;
use shared::store::partners::{ApiKeyRecord, Partner, PartnerStore};
use shared::store::requests::{Counted, RequestStore};
use tracing::Instrument;

pub use shared::http::ADMIN_GROUP;

pub struct Deps {
    config: HttpConfig,
    catalog: CatalogStore,
    sales: FlashSaleStore,
    audit: AuditStore,
    imports: ImportStore,
    partners: PartnerStore,
    requests: RequestStore,
    fetch_profiles: ProfileService,
    /// Actors whose denied requests this container summarised, until the
    /// window ends: their next refusals cost no DynamoDB call.
    summarised: Memory<()>,
    clock: SharedClock,
}

impl Deps {
    pub fn new(config: HttpConfig, fetch: FetchSettings, sdk: &SdkConfig) -> Self {
        let dynamo = shared::aws::dynamodb(sdk);
        let catalog = CatalogStore::new(dynamo.clone(), &config.tables.catalog);
        Self {
            sales: FlashSaleStore::new(dynamo.clone(), &config.tables.flash_sales, catalog.clone()),
            audit: AuditStore::new(dynamo.clone(), &config.tables.audit),
            imports: ImportStore::new(dynamo.clone(), &config.tables.partners),
            partners: PartnerStore::new(dynamo.clone(), &config.tables.partners),
            fetch_profiles: ProfileService::new(
                dynamo.clone(),
                &config.tables.partners,
                shared::aws::secrets_manager(sdk),
                &fetch,
            ),
            requests: RequestStore::new(dynamo, &config.tables.requests),
            summarised: Memory::new(10_000),
            catalog,
            config,
            clock: shared::clock::system(),
        }
    }

    pub fn from_source(src: &dyn Source, sdk: &SdkConfig) -> Result<Self, ConfigError> {
        Ok(Self::new(
            HttpConfig::from_source(src)?,
            FetchSettings::from_source(src)?,
            sdk,
        ))
    }

    /// The same function on another clock (tests move time instead of sleeping).
    pub fn with_clock(self, clock: SharedClock) -> Self {
        Self { clock, ..self }
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    let info = RequestInfo::of(&req);
    let span = info.span();
    handle_audited(deps, req, info).instrument(span).await
}

/// Serves the request, then writes its audit record, whatever the outcome.
async fn handle_audited(
    deps: &Deps,
    req: Request,
    info: RequestInfo,
) -> Result<Response<Body>, lambda_http::Error> {
    let now = deps.clock.now();
    let mut target = String::new();
    let result = route(deps, &req, &info, now, &mut target).await;
    let outcome = match &result {
        Ok(_) => "allowed",
        Err(e) if matches!(e.status().as_u16(), 401 | 403) => "denied",
        Err(e) => e.code(),
    };
    let event = AuditEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        at: now,
        actor: printable(
            info.caller.as_ref().map_or("anonymous", |c| c.sub.as_str()),
            MAX_TARGET,
        ),
        action: info.route_key.clone(),
        target: printable(&target, MAX_TARGET),
        source_ip: info.source_ip.clone(),
        outcome: outcome.to_owned(),
        request_id: info.request_id.clone(),
    };
    record(deps, event, now).await;
    Ok(result.unwrap_or_else(|e| e.into_response(&info.request_id)))
}

/// Denied requests one actor may leave in the trail per window, each in full;
/// past that, one summary record stands for the rest of the window, so a
/// flood of refusals cannot push other actors' records off the admin's page.
const DENIED_RECORDS: Throttle = Throttle {
    burst: 5,
    window_secs: 60,
};
/// The counter of denied records in the requests table (a SKU-shaped name
/// no SKU can have).
const DENIED: &str = "\u{0}audit-denied";
/// Longest target recorded; longer ones are cut (an attacker writes them).
const MAX_TARGET: usize = 100;

/// Writes the audit record of a request. The answer stands whatever happens
/// here (a refusal stays a refusal); a record not written goes whole to the
/// error log, so the trail can be rebuilt from CloudWatch Logs.
async fn record(deps: &Deps, event: AuditEvent, now: DateTime<Utc>) {
    let event = if event.outcome == "denied" {
        match denied_record(deps, event, now).await {
            Some(e) => e,
            None => return,
        }
    } else {
        event
    };
    if let Err(e) = deps.audit.record(&event).await {
        tracing::error!(error = %e, audit = ?event, "audit record not written");
    }
}

/// What a denied request leaves: itself while its actor is within
/// [`DENIED_RECORDS`], then once per window a summary, then nothing but a
/// warn line in the log.
async fn denied_record(deps: &Deps, event: AuditEvent, now: DateTime<Utc>) -> Option<AuditEvent> {
    let window_end = DENIED_RECORDS.window_end(now);
    let summarised = deps.summarised.recall(&event.actor, now).is_some();
    let counted = if summarised {
        Ok(Counted::Full)
    } else {
        deps.requests
            .count(&event.actor, DENIED, &DENIED_RECORDS, now)
            .await
    };
    match counted {
        Ok(Counted::Allowed) => Some(event),
        Ok(Counted::Full) if summarised => {
            tracing::warn!(audit = ?event, "denied request past the actor's audit budget");
            None
        }
        Ok(Counted::Full) => {
            deps.summarised
                .remember(event.actor.clone(), (), window_end);
            let start = window_end - chrono::Duration::seconds(DENIED_RECORDS.window_secs);
            tracing::warn!(audit = ?event, "denied request past the actor's audit budget");
            // one per actor and window, whichever container writes it first
            Some(AuditEvent {
                event_id: format!(
                    "denied-summary-{}-{}",
                    start.timestamp(),
                    hex_of(&event.actor)
                ),
                at: start,
                target: format!(
                    "more than {} denied requests from this actor between {} and {}; the rest are in the function's log",
                    DENIED_RECORDS.burst,
                    ts::format(&start),
                    ts::format(&window_end),
                ),
                outcome: "denied_summary".into(),
                ..event
            })
        }
        Err(e) => {
            tracing::warn!(error = %e, "denied-request counter not written; recording in full");
            Some(event)
        }
    }
}

/// A short stable tag of an actor for a record id (ids sort in keys).
fn hex_of(actor: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(actor.as_bytes())[..8])
}

async fn route(
    deps: &Deps,
    req: &Request,
    info: &RequestInfo,
    now: DateTime<Utc>,
    target: &mut String,
) -> Result<Response<Body>, ApiError> {
    // Known before the guard, so a refused attempt is audited with its target.
    if let Some(sku) = shared::http::path_param_opt(req, "sku") {
        target.clone_from(&sku);
    }
    let caller = info.caller()?;
    if !caller.is_in(ADMIN_GROUP) {
        return Err(ApiError::forbidden(ADMIN_GROUP));
    }
    if req.method() != http::Method::GET {
        check_origin(req, &deps.config.allowed_origins)?;
    }
    match info.route_key.as_str() {
        "PUT /admin/products/{sku}" => {
            let sku = path_param(req, "sku")?;
            put_product(deps, req, sku, now).await
        }
        "POST /admin/flash-sales" => create_sale(deps, req, now, target).await,
        "GET /admin/audit" => list_audit(deps, req, now).await,
        "GET /admin/feeds" => list_feeds(deps, req, target).await,
        "POST /admin/partners" => create_partner(deps, req, now, target).await,
        "POST /admin/partners/{partner_id}/keys" => {
            let partner_id = id_param(req, "partner_id")?;
            add_key(deps, partner_id, now, target).await
        }
        "DELETE /admin/partners/{partner_id}/keys/{key_id}" => {
            let (partner_id, key_id) = (id_param(req, "partner_id")?, id_param(req, "key_id")?);
            target.clone_from(&format!("{partner_id}/{key_id}"));
            deps.partners.revoke_key(&partner_id, &key_id, now).await?;
            Ok(shared::response::no_content())
        }
        "PUT /admin/partners/{partner_id}/fetch-profile" => {
            let partner_id = id_param(req, "partner_id")?;
            target.clone_from(&partner_id);
            let input: ProfileInput = json_body(req, MAX_JSON_BODY)?;
            let partner = deps
                .partners
                .get(&partner_id)
                .await?
                .ok_or_else(|| ApiError::not_found("Partner", "partner_id", &partner_id))?;
            // 200 whether new or replaced, as the partner's own PUT answers
            let (view, _) = deps.fetch_profiles.save(&partner, input, now).await?;
            Ok(json(StatusCode::OK, &view))
        }
        "GET /admin/partners/{partner_id}/fetch-profile" => {
            let partner_id = id_param(req, "partner_id")?;
            target.clone_from(&partner_id);
            match deps.fetch_profiles.view(&partner_id).await? {
                Some(view) => Ok(json(StatusCode::OK, &view)),
                None => Err(ApiError::not_found(
                    "Fetch profile",
                    "partner_id",
                    &partner_id,
                )),
            }
        }
        "DELETE /admin/partners/{partner_id}/fetch-profile" => {
            let partner_id = id_param(req, "partner_id")?;
            target.clone_from(&partner_id);
            deps.fetch_profiles.delete(&partner_id).await?;
            Ok(shared::response::no_content())
        }
        "GET /admin/partners/{partner_id}/fetches" => {
            let partner_id = id_param(req, "partner_id")?;
            target.clone_from(&partner_id);
            let limit = limit_param(req, 20, 100)?;
            let items = deps
                .fetch_profiles
                .profiles
                .fetches(&partner_id, limit as i32)
                .await?;
            Ok(json(StatusCode::OK, &json!({ "items": items })))
        }
        _ => Err(shared::routes::unmatched(&info.method, &info.path).into()),
    }
}

async fn put_product(
    deps: &Deps,
    req: &Request,
    sku: String,
    now: DateTime<Utc>,
) -> Result<Response<Body>, ApiError> {
    check_sku(&sku)?;
    let input: ProductInput = json_body(req, MAX_JSON_BODY)?;
    input.validate()?;
    let product = input.into_product(sku, now, now);
    let previous = deps.catalog.put(&product).await?;
    Ok(match previous {
        Some(old) => json(
            StatusCode::OK,
            &Product {
                created_at: old.created_at,
                ..product
            },
        ),
        None => with_location(
            json(StatusCode::CREATED, &product),
            &format!("/products/{}", product.sku),
        ),
    })
}

async fn create_sale(
    deps: &Deps,
    req: &Request,
    now: DateTime<Utc>,
    target: &mut String,
) -> Result<Response<Body>, ApiError> {
    let input: NewFlashSale = json_body(req, MAX_JSON_BODY)?;
    input.validate(now)?;
    let sale_id = input
        .sale_id
        .clone()
        .unwrap_or_else(|| format!("fs-{}", uuid::Uuid::new_v4().simple()));
    target.clone_from(&sale_id);
    tracing::Span::current().record("sale_id", sale_id.as_str());
    let sale = input.into_sale(sale_id, now);
    deps.sales.create(&sale).await?;
    let remaining = u64::from(sale.quantity);
    let location = format!("/flash-sales/{}", sale.sale_id);
    let body = SaleView { sale, remaining }.to_body(now);
    Ok(with_location(json(StatusCode::CREATED, &body), &location))
}

/// A partner and its first key, shown once: only the key's hash is kept.
async fn create_partner(
    deps: &Deps,
    req: &Request,
    now: DateTime<Utc>,
    target: &mut String,
) -> Result<Response<Body>, ApiError> {
    let input: NewPartner = json_body(req, MAX_JSON_BODY)?;
    input.validate()?;
    let key = new_key()?;
    let partner = Partner {
        partner_id: input.partner_id(&key.key_id[..6]),
        name: input.name.trim().to_owned(),
        created_at: now,
        feed_version: input.feed_version.unwrap_or(1),
        validation: input.validation.unwrap_or_default(),
    };
    target.clone_from(&partner.partner_id);
    deps.partners
        .create(&partner, &key_record(&key, &partner.partner_id, now))
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({
            "partner_id": partner.partner_id,
            "name": partner.name,
            "feed_version": partner.feed_version,
            "validation": partner.validation,
            "created_at": ts::format(&now),
            "key_id": key.key_id,
            "api_key": key.reveal(),
        }),
    ))
}

/// Another key for a partner (rotation: the old one stays valid until revoked).
async fn add_key(
    deps: &Deps,
    partner_id: String,
    now: DateTime<Utc>,
    target: &mut String,
) -> Result<Response<Body>, ApiError> {
    target.clone_from(&partner_id);
    let key = new_key()?;
    deps.partners
        .add_key(&key_record(&key, &partner_id, now))
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({
            "partner_id": partner_id,
            "key_id": key.key_id,
            "api_key": key.reveal(),
            "created_at": ts::format(&now),
        }),
    ))
}

/// A path's id, checked before it reaches a key or the audit trail (a
/// DynamoDB key of 2 KB is the caller's 400, not a 500).
fn id_param(req: &Request, name: &str) -> Result<String, ApiError> {
    let id = path_param(req, name)?;
    shared::domain::text::check_id(name, &id, 64)?;
    Ok(id)
}

fn new_key() -> Result<ApiKey, ApiError> {
    ApiKey::generate().map_err(|e| ApiError::internal(format!("no randomness for a key: {e}")))
}

fn key_record(key: &ApiKey, partner_id: &str, now: DateTime<Utc>) -> ApiKeyRecord {
    ApiKeyRecord {
        key_id: key.key_id.clone(),
        partner_id: partner_id.to_owned(),
        secret_hash: key.secret_hash(),
        created_at: now,
        revoked_at: None,
    }
}

/// A partner's feed imports, newest first: what became of each drop.
async fn list_feeds(
    deps: &Deps,
    req: &Request,
    target: &mut String,
) -> Result<Response<Body>, ApiError> {
    let partner_id = query_param(req, "partner_id").unwrap_or_default();
    shared::domain::text::check_id("partner_id", &partner_id, 64)?;
    target.clone_from(&partner_id);
    let limit = limit_param(req, 50, 200)?;
    let cursor = query_param(req, "cursor").filter(|c| !c.is_empty());
    let page = deps
        .imports
        .list_by_partner(&partner_id, limit as i32, cursor.as_deref())
        .await?;
    let items: Vec<ImportView> = page.items.into_iter().map(ImportView::from).collect();
    Ok(json(
        StatusCode::OK,
        &json!({ "items": items, "next_cursor": page.next_cursor }),
    ))
}

async fn list_audit(
    deps: &Deps,
    req: &Request,
    now: DateTime<Utc>,
) -> Result<Response<Body>, ApiError> {
    let limit = limit_param(req, 50, 200)?;
    let cursor = query_param(req, "cursor").filter(|c| !c.is_empty());
    let (items, next_cursor) = deps.audit.list(limit, cursor.as_deref(), now).await?;
    Ok(json(
        StatusCode::OK,
        &json!({ "items": items, "next_cursor": next_cursor }),
    ))
}
