//! The one error shape every HTTP answer uses:
//! `{"error", "message", "details", "request_id"}` with the statuses of DESIGN.md.
//! Use cases have their own error enums and convert into [`ApiError`]; this is
//! the only place that decides a status code or renders an error body.

use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde_json::{Map, Value, json};

type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Map<String, Value>,
    headers: Vec<(header::HeaderName, String)>,
    /// Logged with the request id when rendered, never sent.
    cause: Option<Cause>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Map::new(),
            headers: Vec::new(),
            cause: None,
        }
    }

    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// 400 naming the field and what is wrong with it.
    pub fn invalid_request(field: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("Field '{field}' is invalid: {reason}. Fix it and send the request again."),
        )
        .with_detail("field", field)
        .with_detail("reason", reason)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Sign in and send the request with 'Authorization: Bearer <token>'.",
        )
    }

    pub fn forbidden(role: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("This operation needs the '{role}' role, which your account does not have."),
        )
        .with_detail("required_role", role)
    }

    pub fn forbidden_origin(origin: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden_origin",
            "Requests that change state are accepted only from the shop's own origins.",
        )
        .with_detail("origin", origin)
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{} was not found. Check the id and try again.", what.into()),
        )
    }

    pub fn route_not_found(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "There is no such endpoint. See docs/openapi.yaml for the routes.",
        )
        .with_detail("method", method)
        .with_detail("path", path)
    }

    pub fn method_not_allowed(method: &str, allowed: &[&str]) -> Self {
        let allow = allowed.join(", ");
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("Method {method} is not allowed here; use one of: {allow}."),
        )
        .with_detail("allowed", allowed.to_vec())
        .with_header(header::ALLOW, allow)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("The request body is larger than {limit} bytes. Send a smaller body."),
        )
        .with_detail("limit_bytes", limit)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn rule_violation(rule: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "rule_violation", message)
            .with_detail("rule", rule)
    }

    /// 500: the cause is logged with the request id, the client sees neither.
    pub fn internal(cause: impl Into<Cause>) -> Self {
        Self {
            cause: Some(cause.into()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Something went wrong on our side. Try again; if it persists, contact support with the request id.",
            )
        }
    }

    pub fn body(&self, request_id: &str) -> Value {
        json!({
            "error": self.code,
            "message": self.message,
            "details": self.details,
            "request_id": request_id,
        })
    }

    pub fn into_response(self, request_id: &str) -> Response<Body> {
        if let Some(cause) = &self.cause {
            tracing::error!(request_id, error = %cause, "request failed");
        }
        let mut response = crate::http::json(self.status, &self.body(request_id));
        for (name, value) in &self.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                response.headers_mut().insert(name.clone(), v);
            }
        }
        response
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::internal(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(r: &Response<Body>) -> Value {
        serde_json::from_slice(r.body().as_ref()).unwrap()
    }

    #[test]
    fn every_error_has_the_documented_shape() {
        let r = ApiError::invalid_request("price.amount", "must be greater than 0")
            .into_response("req-1");
        assert_eq!(r.status(), 400);
        assert_eq!(r.headers()["content-type"], "application/json");
        let b = body_of(&r);
        assert_eq!(b["error"], "invalid_request");
        assert_eq!(b["details"]["field"], "price.amount");
        assert_eq!(b["request_id"], "req-1");
        assert!(b["message"].as_str().unwrap().split_whitespace().count() < 50);
    }

    #[test]
    fn internal_errors_never_leak_their_cause() {
        let r =
            ApiError::internal("ResourceNotFoundException: table flashcart-x").into_response("r");
        assert_eq!(r.status(), 500);
        let text = String::from_utf8(r.body().to_vec()).unwrap();
        assert!(!text.contains("ResourceNotFound"));
        assert!(!text.contains("flashcart-x"));
    }

    #[test]
    fn method_not_allowed_names_the_allowed_methods() {
        let r = ApiError::method_not_allowed("DELETE", &["GET"]).into_response("r");
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()["allow"], "GET");
    }
}
