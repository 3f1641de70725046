//! Writing HTTP answers: JSON with a status, and `Location` where a resource
//! was made. Depends on nothing else in the crate, so errors and handlers can
//! both use it.

use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;

/// A JSON response with the given status.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    json_text(status, body)
}

/// A JSON body already serialised (a stored answer replayed as it was).
pub fn json_text(status: StatusCode, body: impl Into<Vec<u8>>) -> Response<Body> {
    let mut response = Response::new(Body::Binary(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// 204 with no body (a delete, repeated or not).
pub fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// `response` with `Location: location`.
pub fn with_location(mut response: Response<Body>, location: &str) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}
