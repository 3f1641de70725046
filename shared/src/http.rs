//! Reading API Gateway HTTP API (payload v2) requests, and the answers every
//! checkout shares. Handlers never parse tokens: the JWT authorizer has
//! verified them and left the claims in the request context.

use crate::checkout::{Attempt, Outcome};
use crate::domain::idempotency;
use crate::error::ApiError;
use http::{StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use std::time::Instant;

/// The largest JSON body any endpoint accepts. Real requests are well under 4 KiB.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// The Cognito group whose members may call `/admin/*`. Tokens carry it only
/// for members with MFA enabled (functions/admin-mfa-gate, ADR 0016).
pub const ADMIN_GROUP: &str = "admin";

/// Who is calling, as the authorizer vouched for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub sub: String,
    pub groups: Vec<String>,
}

impl Caller {
    pub fn is_in(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// What every handler needs to know about a request besides its body.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    pub request_id: String,
    /// `"GET /products/{sku}"`, or `"$default"` when no route matched.
    pub route_key: String,
    pub method: String,
    pub path: String,
    pub source_ip: String,
    pub caller: Option<Caller>,
}

impl RequestInfo {
    pub fn of(req: &Request) -> Self {
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        match req.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => {
                let caller = ctx
                    .authorizer
                    .as_ref()
                    .and_then(|a| a.jwt.as_ref())
                    .and_then(|jwt| {
                        let sub = jwt.claims.get("sub")?.trim();
                        (!sub.is_empty()).then(|| Caller {
                            sub: sub.to_owned(),
                            groups: jwt
                                .claims
                                .get("cognito:groups")
                                .map(|g| parse_groups(g))
                                .unwrap_or_default(),
                        })
                    });
                Self {
                    request_id: ctx.request_id.clone().unwrap_or_else(new_request_id),
                    route_key: ctx.route_key.clone().unwrap_or_else(|| "$default".into()),
                    source_ip: ctx.http.source_ip.clone().unwrap_or_default(),
                    method,
                    path,
                    caller,
                }
            }
            _ => Self {
                request_id: new_request_id(),
                route_key: "$default".into(),
                source_ip: String::new(),
                method,
                path,
                caller: None,
            },
        }
    }

    /// The caller, or 401.
    pub fn caller(&self) -> Result<&Caller, ApiError> {
        self.caller.as_ref().ok_or_else(ApiError::unauthorized)
    }

    /// The span every log line of this request is written in, so one request's
    /// lines are found by its id; `order_id` and `sale_id` are recorded into it
    /// once known.
    pub fn span(&self) -> tracing::Span {
        tracing::info_span!(
            "request",
            request_id = %self.request_id,
            route = %self.route_key,
            order_id = tracing::field::Empty,
            sale_id = tracing::field::Empty,
        )
    }
}

fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// API Gateway's JWT authorizer flattens array claims into a string such as
/// `"[admin ops]"`; tokens minted elsewhere may carry `"admin,ops"` or a JSON
/// array. All three read the same.
pub fn parse_groups(raw: &str) -> Vec<String> {
    let raw = raw.trim();
    if let Ok(list) = serde_json::from_str::<Vec<String>>(raw) {
        return list;
    }
    raw.trim_start_matches('[')
        .trim_end_matches(']')
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A path parameter the route template guarantees, or 400 if absent or empty.
pub fn path_param(req: &Request, name: &str) -> Result<String, ApiError> {
    req.path_parameters_ref()
        .and_then(|p| p.first(name))
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ApiError::invalid_request(name, "is missing from the path"))
}

/// A path parameter if present (for logs and audit records, not validation).
pub fn path_param_opt(req: &Request, name: &str) -> Option<String> {
    req.path_parameters_ref()
        .and_then(|p| p.first(name))
        .map(str::to_owned)
}

/// A query string parameter, if present.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref()
        .and_then(|q| q.first(name))
        .map(str::to_owned)
}

/// `?limit=` as a whole number in `1..=max`, or `default` when absent.
pub fn limit_param(req: &Request, default: usize, max: usize) -> Result<usize, ApiError> {
    match query_param(req, "limit") {
        None => Ok(default),
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_request(
                    "limit",
                    format!("must be a whole number from 1 to {max}"),
                )
            }),
    }
}

/// The body as one JSON document: 413 above `limit`; 400 for empty bodies,
/// malformed JSON, or anything after the document.
pub fn json_value(req: &Request, limit: usize) -> Result<serde_json::Value, ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > limit {
        return Err(ApiError::payload_too_large(limit));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid_request(
            "body",
            "a JSON object is required",
        ));
    }
    // from_slice insists the document is all there is (trailing bytes are an error)
    let mut value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::invalid_request(
            "body",
            format!("malformed JSON at line {} column {}", e.line(), e.column()),
        )
    })?;
    whole_numbers_as_integers(&mut value);
    Ok(value)
}

/// The largest integer a double holds exactly (2^53).
const EXACT_IN_F64: f64 = 9_007_199_254_740_992.0;

/// JSON has one number type, and JSON Schema (our contract) counts `3.0` as
/// the integer 3; serde would refuse it for an integer field. Whole numbers
/// written with a zero fraction or an exponent are read as integers, before
/// typing and before the fingerprint, so `3.0` and `3` are the same request.
fn whole_numbers_as_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() <= EXACT_IN_F64)
            {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(whole_numbers_as_integers),
        _ => {}
    }
}

/// A parsed body as `T`: 400 naming the field that is missing or of the wrong
/// type. Never panics, whatever the value.
pub fn typed<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = match e.path().to_string() {
            p if p == "." || p.is_empty() => "body".to_owned(),
            p => p,
        };
        let message = e.into_inner().to_string();
        // serde reports a missing field at its parent: name the field itself
        if let Some(name) = message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
        {
            let field = if field == "body" {
                name.to_owned()
            } else {
                format!("{field}.{name}")
            };
            return ApiError::invalid_request(&field, "is required");
        }
        // serde's message names the expected type, never anything internal
        ApiError::invalid_request(&field, message)
    })
}

/// Parses a JSON body into `T` ([`json_value`], then [`typed`]).
pub fn json_body<T: DeserializeOwned>(req: &Request, limit: usize) -> Result<T, ApiError> {
    typed(&json_value(req, limit)?)
}

/// Refuses a state-changing request whose `Origin` is not allowed. Requests
/// without an Origin (server-to-server, curl) pass: CSRF needs a browser, and
/// browsers always send Origin on cross-site POST/PUT/DELETE.
pub fn check_origin(req: &Request, allowed: &[String]) -> Result<(), ApiError> {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("").trim_end_matches('/');
    if allowed.iter().any(|a| a == origin) {
        Ok(())
    } else {
        Err(ApiError::forbidden_origin(origin))
    }
}

/// Whether `req` is a CORS preflight: OPTIONS with
/// `Access-Control-Request-Method`. Any other OPTIONS is an unsupported method.
pub fn is_preflight(req: &Request) -> bool {
    req.method() == http::Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The answer to a CORS preflight that reached a function: 204, with the
/// API's CORS headers when the origin is allowed (without them the browser
/// refuses the request, as it should).
///
/// API Gateway answers preflight requests itself when the API has a CORS
/// configuration, before any route ("API Gateway automatically sends a
/// response to preflight OPTIONS requests, even if there isn't an OPTIONS
/// route configured", Configure CORS for HTTP APIs); this is the same answer
/// from `$default`, should one ever get through (the configuration removed,
/// or another front end), so a browser is never told 405.
pub fn preflight(req: &Request, allowed_origins: &[String]) -> Response<Body> {
    use crate::routes::cors;
    let mut response = crate::response::no_content();
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .filter(|o| allowed_origins.iter().any(|a| a == o.trim_end_matches('/')));
    if let Some(origin) = origin {
        let h = response.headers_mut();
        let mut set = |name: header::HeaderName, value: String| {
            if let Ok(v) = http::HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        };
        set(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.to_owned());
        set(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            cors::ALLOW_METHODS.join(","),
        );
        set(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            cors::ALLOW_HEADERS.join(","),
        );
        set(
            header::ACCESS_CONTROL_MAX_AGE,
            cors::MAX_AGE_SECS.to_string(),
        );
    }
    // the answer depends on Origin whether or not it was allowed
    response
        .headers_mut()
        .insert(header::VARY, http::HeaderValue::from_static("origin"));
    response
}

/// A checkout request read: caller (401), Origin (403), `Idempotency-Key`
/// (400), then the body as `T` (413, 400). One parse: the typed body and the
/// fingerprint come from the same value.
pub fn attempt<T: DeserializeOwned>(
    req: &Request,
    info: &RequestInfo,
    allowed_origins: &[String],
) -> Result<Attempt<T>, ApiError> {
    let caller = info.caller()?;
    check_origin(req, allowed_origins)?;
    let key = req
        .headers()
        .get("idempotency-key")
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let key = idempotency::check_key(key)?.to_owned();
    let value = json_value(req, MAX_JSON_BODY)?;
    let body: T = typed(&value)?;
    Ok(Attempt {
        user: caller.sub.clone(),
        fingerprint: idempotency::fingerprint(&info.route_key, &info.path, &value),
        key,
        body,
    })
}

/// A checkout's answer: 202 (or the replayed status) with `Location` of the
/// order, or the error; its outcome counted in EMF.
pub fn checkout_answer(
    function: &str,
    info: &RequestInfo,
    result: Result<Outcome, ApiError>,
    started: Instant,
) -> Response<Body> {
    let label = outcome_label(&result);
    let response = match result {
        Ok(Outcome::Accepted { body, queued, .. }) => {
            if !queued {
                tracing::warn!("accepted, not queued: the sweeper re-drives the order");
            }
            accepted(StatusCode::ACCEPTED, body)
        }
        Ok(Outcome::Replayed { status, body }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::ACCEPTED);
            accepted(status, body)
        }
        Err(e) => e.into_response(&info.request_id),
    };
    crate::metrics::checkout(function, label, started.elapsed());
    response
}

/// What a checkout's answer is counted as in EMF: `accepted` for a new order,
/// `replayed` for an earlier answer given again, else the error code.
fn outcome_label(result: &Result<Outcome, ApiError>) -> &'static str {
    match result {
        Ok(Outcome::Accepted { .. }) => "accepted",
        Ok(Outcome::Replayed { .. }) => "replayed",
        Err(e) => e.code(),
    }
}

/// A stored 202 body with `Location: /orders/{order_id}`; the order id goes
/// into the request's span too (a replay learns it only here).
fn accepted(status: StatusCode, body: String) -> Response<Body> {
    let order_id = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["order_id"].as_str().map(str::to_owned));
    let response = crate::response::json_text(status, body);
    match order_id {
        Some(id) => {
            tracing::Span::current().record("order_id", id.as_str());
            crate::response::with_location(response, &format!("/orders/{id}"))
        }
        None => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with(body: &str) -> Request {
        let mut r = Request::new(lambda_http::Body::from(body));
        *r.method_mut() = http::Method::POST;
        r
    }

    #[test]
    fn a_body_is_one_json_document_and_nothing_after_it() {
        assert!(json_value(&request_with(r#"{"a":1}"#), 100).is_ok());
        assert!(json_value(&request_with("{\"a\":1}\n  "), 100).is_ok());
        for bad in [r#"{"a":1}x"#, r#"{"a":1}{"a":2}"#, "{", "", "  "] {
            let e = json_value(&request_with(bad), 100).unwrap_err();
            assert_eq!(e.status(), 400, "{bad}");
        }
        assert_eq!(
            json_value(&request_with(&"1".repeat(101)), 100)
                .unwrap_err()
                .status(),
            413
        );
    }

    #[test]
    fn whole_numbers_read_as_integers_however_they_are_written() {
        let v = json_value(
            &request_with(r#"{"q": 3.0, "n": [2E3, -0.0], "m": {"a": 1.5, "big": 1e300}}"#),
            200,
        )
        .unwrap();
        assert_eq!(v["q"], serde_json::json!(3));
        assert!(v["q"].is_u64());
        assert_eq!(v["n"], serde_json::json!([2000, 0]));
        assert!(
            v["m"]["a"].is_f64(),
            "a fraction stays a fraction (and fails typing)"
        );
        assert!(v["m"]["big"].is_f64(), "beyond 2^53 stays a float");
        #[derive(serde::Deserialize)]
        struct Q {
            q: u32,
        }
        assert_eq!(typed::<Q>(&v).unwrap().q, 3);
    }

    #[test]
    fn typed_errors_name_the_field() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Line {
            sku: String,
            quantity: u32,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Cart {
            items: Vec<Line>,
        }
        let field = |v: serde_json::Value| {
            typed::<Cart>(&v).unwrap_err().body("r")["details"]["field"].clone()
        };
        assert_eq!(field(serde_json::json!({})), "items");
        assert_eq!(
            field(serde_json::json!({"items": [{"sku": "A"}]})),
            "items[0].quantity"
        );
        assert_eq!(
            field(serde_json::json!({"items": [{"sku": "A", "quantity": -1}]})),
            "items[0].quantity"
        );
        assert_eq!(
            field(serde_json::json!({"items": [{"sku": "A", "quantity": 1.5}]})),
            "items[0].quantity"
        );
    }

    #[test]
    fn a_replay_is_counted_as_a_replay_not_an_acceptance() {
        let body = r#"{"order_id":"ord-1"}"#.to_owned();
        let replayed = Ok(Outcome::Replayed {
            status: 202,
            body: body.clone(),
        });
        assert_eq!(outcome_label(&replayed), "replayed");
        let accepted = Ok(Outcome::Accepted {
            order_id: "ord-1".into(),
            body,
            queued: true,
        });
        assert_eq!(outcome_label(&accepted), "accepted");
        let refused = Err(ApiError::unauthorized());
        assert_eq!(outcome_label(&refused), "unauthorized");
    }

    #[test]
    fn accepted_answers_point_at_the_order() {
        let r = accepted(
            StatusCode::ACCEPTED,
            r#"{"order_id":"ord-1","status":"pending_payment"}"#.into(),
        );
        assert_eq!(r.status(), 202);
        assert_eq!(r.headers()["location"], "/orders/ord-1");
    }

    #[test]
    fn groups_read_the_same_in_every_encoding() {
        let want = vec!["admin".to_owned(), "ops".to_owned()];
        assert_eq!(parse_groups("[admin ops]"), want);
        assert_eq!(parse_groups("admin,ops"), want);
        assert_eq!(parse_groups(r#"["admin","ops"]"#), want);
        assert_eq!(parse_groups("[admin]"), vec!["admin".to_owned()]);
        assert!(parse_groups("").is_empty());
        assert!(parse_groups("[]").is_empty());
    }
}
