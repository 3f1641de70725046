//! The local API Gateway: turns each HTTP request into a real API Gateway HTTP
//! API (payload 2.0) event for the route template.yaml declares, plays the JWT
//! authorizer and CORS, and calls the same handler the Lambda binary runs.

use crate::bootstrap::Stack;
use crate::functions::{Functions, HttpFn};
use crate::jwt;
use crate::template::{HttpRoute, Template, TemplateError, resolve};
use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext,
    ApiGatewayV2httpRequestContextHttpDescription,
};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use lambda_http::request::LambdaRequest;
use serde_json::json;
use shared::ApiError;
use shared::config::Secret;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// API Gateway's own limit on a request payload.
pub const MAX_PAYLOAD: usize = 10 * 1024 * 1024;

#[derive(Debug, Clone, Default)]
struct Cors {
    origins: Vec<String>,
    methods: String,
    headers: String,
    max_age: String,
}

/// A route, its function, and the path parameters it captured.
type Picked<'a> = (&'a HttpRoute, &'a HttpFn, HashMap<String, String>);

pub struct Gateway {
    routes: Vec<(HttpRoute, HttpFn)>,
    secret: Secret,
    cors: Cors,
}

impl Gateway {
    pub fn new(
        template: &Template,
        stack: &Stack,
        functions: &Functions,
        secret: Secret,
    ) -> Result<Self, TemplateError> {
        let mut routes = Vec::new();
        for route in template.http_routes()? {
            let f = functions.http.get(&route.function).ok_or_else(|| {
                TemplateError::Invalid(format!(
                    "{} serves {} but is not an HTTP function",
                    route.function,
                    route.route_key()
                ))
            })?;
            routes.push((route, f.clone()));
        }
        let mut cors = Cors::default();
        if let Some((_, api)) = template
            .resources_of_type("AWS::Serverless::HttpApi")
            .first()
        {
            let c = &api["Properties"]["CorsConfiguration"];
            let list = |v| -> Result<Vec<String>, TemplateError> {
                Ok(match resolve(v, stack)? {
                    crate::template::Resolved::List(l) => l,
                    crate::template::Resolved::Str(s) => vec![s],
                })
            };
            if c.is_mapping() {
                cors = Cors {
                    origins: list(&c["AllowOrigins"])?,
                    methods: list(&c["AllowMethods"])?.join(","),
                    headers: list(&c["AllowHeaders"])?.join(","),
                    max_age: c["MaxAge"].as_i64().unwrap_or(0).to_string(),
                };
            }
        }
        Ok(Self {
            routes,
            secret,
            cors,
        })
    }

    /// The most specific matching route, as API Gateway picks it: more literal
    /// segments first, a greedy `{x+}` last, an exact method before `ANY`;
    /// `$default` when nothing matches.
    fn pick(&self, method: &str, path: &str) -> Option<Picked<'_>> {
        let mut best: Option<((usize, bool, bool), Picked<'_>)> = None;
        for (route, f) in &self.routes {
            let Some(template) = &route.path else {
                continue;
            };
            if route.method != method && route.method != "ANY" {
                continue;
            }
            let Some(params) = shared::routes::match_path(template, path) else {
                continue;
            };
            let literals = template
                .split('/')
                .filter(|s| !s.is_empty() && !s.starts_with('{'))
                .count();
            let score = (literals, !template.contains("+}"), route.method != "ANY");
            if best.as_ref().is_none_or(|(s, ..)| score > *s) {
                let params = params
                    .into_iter()
                    .map(|(k, v)| {
                        let decoded = percent_encoding::percent_decode_str(&v)
                            .decode_utf8_lossy()
                            .into_owned();
                        (k, decoded)
                    })
                    .collect();
                best = Some((score, (route, f, params)));
            }
        }
        best.map(|(_, picked)| picked).or_else(|| {
            self.routes
                .iter()
                .find(|(r, _)| r.path.is_none())
                .map(|(r, f)| (r, f, HashMap::new()))
        })
    }

    fn allowed_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        let o = origin.to_str().ok()?;
        (self.cors.origins.iter().any(|a| a == o || a == "*")).then(|| origin.clone())
    }
}

pub fn router(gateway: Arc<Gateway>) -> axum::Router {
    axum::Router::new().fallback(dispatch).with_state(gateway)
}

fn error(status_err: ApiError, request_id: &str) -> Response {
    to_axum(status_err.into_response(request_id))
}

fn to_axum(r: lambda_http::Response<lambda_http::Body>) -> Response {
    let (parts, body) = r.into_parts();
    let bytes = match body {
        lambda_http::Body::Empty => Bytes::new(),
        lambda_http::Body::Text(t) => Bytes::from(t),
        lambda_http::Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

async fn dispatch(State(gw): State<Arc<Gateway>>, req: axum::extract::Request) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let origin = gw.allowed_origin(req.headers());
    let mut response = serve(&gw, req, &request_id).await;
    let h = response.headers_mut();
    h.insert(
        "apigw-requestid",
        HeaderValue::from_str(&request_id).unwrap_or(HeaderValue::from_static("-")),
    );
    if let Some(o) = origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(header::VARY, HeaderValue::from_static("origin"));
    }
    response
}

async fn serve(gw: &Gateway, req: axum::extract::Request, request_id: &str) -> Response {
    let source_ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or("127.0.0.1".to_owned(), |c| c.0.ip().to_string());
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();

    if parts.method == Method::GET && path == "/health" {
        return (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response();
    }
    if parts.method == Method::OPTIONS
        && parts
            .headers
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        let mut r = StatusCode::NO_CONTENT.into_response();
        if gw.allowed_origin(&parts.headers).is_some() {
            let h = r.headers_mut();
            for (name, v) in [
                (header::ACCESS_CONTROL_ALLOW_METHODS, &gw.cors.methods),
                (header::ACCESS_CONTROL_ALLOW_HEADERS, &gw.cors.headers),
                (header::ACCESS_CONTROL_MAX_AGE, &gw.cors.max_age),
            ] {
                if let Ok(v) = HeaderValue::from_str(v) {
                    h.insert(name, v);
                }
            }
        }
        return r;
    }
    let bytes = match axum::body::to_bytes(body, MAX_PAYLOAD).await {
        Ok(b) => b,
        Err(_) => return error(ApiError::payload_too_large(MAX_PAYLOAD), request_id),
    };
    let Some((route, function, params)) = gw.pick(&method, &path) else {
        return error(shared::routes::unmatched(&method, &path).into(), request_id);
    };

    let mut authorizer = None;
    if route.authorized {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        match token.map(|t| jwt::verify(&gw.secret, t)) {
            Some(Ok(claims)) => {
                let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
                jwt.claims = claims.as_authorizer_claims();
                let mut a = ApiGatewayRequestAuthorizer::default();
                a.jwt = Some(jwt);
                authorizer = Some(a);
            }
            _ => return error(ApiError::unauthorized(), request_id),
        }
    }

    let event = build_event(
        &parts, &bytes, route, params, authorizer, &source_ip, request_id,
    );
    let lambda_req: lambda_http::Request = LambdaRequest::ApiGatewayV2(event).into();
    // A panicking handler fails its invocation, as on Lambda, not the gateway.
    match tokio::spawn(function(lambda_req)).await {
        Ok(Ok(r)) => to_axum(r),
        Ok(Err(e)) => {
            tracing::error!(request_id, error = %e, "function returned an error");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"message": "Internal Server Error"})),
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(request_id, error = %e, "function panicked");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"message": "Internal Server Error"})),
            )
                .into_response()
        }
    }
}

fn is_text(content_type: Option<&str>) -> bool {
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    ct.is_empty()
        || ct.starts_with("text/")
        || ct.contains("json")
        || ct.contains("xml")
        || ct.starts_with("application/x-www-form-urlencoded")
}

/// The API Gateway HTTP API (payload 2.0) event API Gateway would send for
/// this request and route, built as `aws_lambda_events`' own type and handed
/// to the handler through lambda_http's own conversion.
fn build_event(
    parts: &http::request::Parts,
    body: &[u8],
    route: &HttpRoute,
    params: HashMap<String, String>,
    authorizer: Option<ApiGatewayRequestAuthorizer>,
    source_ip: &str,
    request_id: &str,
) -> ApiGatewayV2httpRequest {
    let mut headers = HeaderMap::new();
    let mut cookies = Vec::new();
    for name in parts.headers.keys() {
        let values: Vec<&str> = parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if name == header::COOKIE {
            cookies.extend(
                values
                    .iter()
                    .flat_map(|v| v.split(';'))
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty()),
            );
        } else if let Ok(v) = HeaderValue::from_str(&values.join(",")) {
            // API Gateway joins repeated headers with commas
            headers.insert(name.clone(), v);
        }
    }
    let header = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
    };
    let raw_query = parts.uri.query().unwrap_or("");
    let now = chrono::Utc::now();
    let route_key = route.route_key();

    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.method = parts.method.clone();
    http.path = Some(parts.uri.path().to_owned());
    http.protocol = Some("HTTP/1.1".into());
    http.source_ip = Some(source_ip.to_owned());
    http.user_agent = Some(header(header::USER_AGENT).unwrap_or_default());

    let mut context = ApiGatewayV2httpRequestContext::default();
    context.route_key = Some(route_key.clone());
    context.account_id = Some("000000000000".into());
    context.stage = Some("$default".into());
    context.request_id = Some(request_id.to_owned());
    context.authorizer = authorizer;
    context.apiid = Some("local".into());
    context.domain_name = Some(header(header::HOST).unwrap_or_else(|| "localhost".into()));
    context.domain_prefix = Some("local".into());
    context.time = Some(now.format("%d/%b/%Y:%H:%M:%S %z").to_string());
    context.time_epoch = now.timestamp_millis();
    context.http = http;

    let mut event = ApiGatewayV2httpRequest::default();
    event.version = Some("2.0".into());
    event.route_key = Some(route_key);
    event.raw_path = Some(parts.uri.path().to_owned());
    event.raw_query_string = Some(raw_query.to_owned());
    event.headers = headers;
    event.cookies = (!cookies.is_empty()).then_some(cookies);
    // lambda_http reads the query from raw_query_string, as API Gateway sends both
    event.query_string_parameters = raw_query.parse().unwrap_or_default();
    event.path_parameters = params;
    event.request_context = context;
    if !body.is_empty() {
        let ct = header(header::CONTENT_TYPE);
        match std::str::from_utf8(body) {
            Ok(text) if is_text(ct.as_deref()) => event.body = Some(text.to_owned()),
            _ => {
                event.body = Some(STANDARD.encode(body));
                event.is_base64_encoded = true;
            }
        }
    }
    event
}
