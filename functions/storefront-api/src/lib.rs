//! storefront-api: the public, read-only face of the shop. Serves the catalog,
//! flash sales and a buyer's orders, and API Gateway's `$default` route, which
//! answers every request no route matched with 404 or 405 in the documented
//! error shape, and a CORS preflight with 204.

use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::ApiError;
use shared::clock::SharedClock;
use shared::config::{ConfigError, HttpConfig, Source};
use shared::domain::flash_sale::MAX_SALE_ID;
use shared::domain::product::check_category;
use shared::http::{RequestInfo, is_preflight, limit_param, path_param, preflight, query_param};
use shared::response::json;
use shared::store::catalog::CatalogStore;
use shared::store::flash_sales::FlashSaleStore;
use shared::store::orders::OrderStore;
use tracing::Instrument;

/// Longest SKU any product can have (`<partner_id>:<sku>`); longer is a 404
/// without a DynamoDB call.
const MAX_LOOKUP_SKU: usize = 200;
/// Order ids are `ord-` and 32 hex digits; longer is a 404 without a call.
const MAX_ORDER_ID: usize = 100;

pub struct Deps {
    catalog: CatalogStore,
    sales: FlashSaleStore,
    orders: OrderStore,
    clock: SharedClock,
    /// For preflight requests that reach `$default`.
    allowed_origins: Vec<String>,
}

impl Deps {
    pub fn new(config: &HttpConfig, sdk: &shared::aws::SdkConfig) -> Self {
        let dynamo = shared::aws::dynamodb(sdk);
        let catalog = CatalogStore::new(dynamo.clone(), &config.tables.catalog);
        Self {
            sales: FlashSaleStore::new(dynamo.clone(), &config.tables.flash_sales, catalog.clone()),
            orders: OrderStore::new(dynamo, &config.tables.orders),
            catalog,
            clock: shared::clock::system(),
            allowed_origins: config.allowed_origins.clone(),
        }
    }

    pub fn from_source(
        src: &dyn Source,
        sdk: &shared::aws::SdkConfig,
    ) -> Result<Self, ConfigError> {
        Ok(Self::new(&HttpConfig::from_source(src)?, sdk))
    }

    /// The same function on another clock (tests move time instead of sleeping).
    pub fn with_clock(self, clock: SharedClock) -> Self {
        Self { clock, ..self }
    }
}

/// The Lambda handler. Every expected failure is an `Ok` response in the error
/// shape; the `Result` exists for the runtime's signature only.
pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    let info = RequestInfo::of(&req);
    let span = info.span();
    async {
        Ok(route(deps, &req, &info)
            .await
            .unwrap_or_else(|e| e.into_response(&info.request_id)))
    }
    .instrument(span)
    .await
}

async fn route(deps: &Deps, req: &Request, info: &RequestInfo) -> Result<Response<Body>, ApiError> {
    match info.route_key.as_str() {
        "GET /products" => list_products(deps, req).await,
        "GET /products/{sku}" => get_product(deps, req).await,
        "GET /flash-sales/{sale_id}" => get_sale(deps, req).await,
        "GET /orders/{order_id}" => get_order(deps, req, info).await,
        _ if is_preflight(req) => Ok(preflight(req, &deps.allowed_origins)),
        _ => Err(shared::routes::unmatched(&info.method, &info.path).into()),
    }
}

async fn list_products(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let limit = limit_param(req, 20, 100)?;
    let category = query_param(req, "category").filter(|c| !c.is_empty());
    if let Some(c) = &category {
        check_category("category", c)?;
    }
    let cursor = query_param(req, "cursor").filter(|c| !c.is_empty());
    let page = deps
        .catalog
        .list(category.as_deref(), limit as i32, cursor.as_deref())
        .await?;
    Ok(json(
        StatusCode::OK,
        &json!({ "items": page.items, "next_cursor": page.next_cursor }),
    ))
}

async fn get_product(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let sku = path_param(req, "sku")?;
    let not_found = || ApiError::not_found("Product", "sku", &sku);
    if sku.len() > MAX_LOOKUP_SKU {
        return Err(not_found());
    }
    match deps.catalog.get(&sku).await? {
        Some(product) => Ok(json(StatusCode::OK, &product)),
        None => Err(not_found()),
    }
}

async fn get_sale(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let sale_id = path_param(req, "sale_id")?;
    tracing::Span::current().record("sale_id", sale_id.as_str());
    let not_found = || ApiError::not_found("Flash sale", "sale_id", &sale_id);
    if sale_id.len() > MAX_SALE_ID {
        return Err(not_found());
    }
    match deps.sales.get(&sale_id).await? {
        Some(view) => Ok(json(StatusCode::OK, &view.to_body(deps.clock.now()))),
        None => Err(not_found()),
    }
}

/// The owner or an admin sees the order; anyone else gets the same 404 as for
/// an order that does not exist, so order ids cannot be probed.
async fn get_order(
    deps: &Deps,
    req: &Request,
    info: &RequestInfo,
) -> Result<Response<Body>, ApiError> {
    let caller = info.caller()?;
    let order_id = path_param(req, "order_id")?;
    tracing::Span::current().record("order_id", order_id.as_str());
    let not_found = || ApiError::not_found("Order", "order_id", &order_id);
    if order_id.len() > MAX_ORDER_ID {
        return Err(not_found());
    }
    match deps.orders.get(&order_id).await? {
        Some(order) if order.user == caller.sub || caller.is_in("admin") => {
            Ok(json(StatusCode::OK, &order.public_body()))
        }
        _ => Err(not_found()),
    }
}
