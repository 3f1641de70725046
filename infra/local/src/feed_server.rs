//! The sandbox feed server (issue 12): a partner's own web server for the
//! local stack, a real HTTP peer on 127.0.0.1, as the sandbox payment
//! provider is. `GET /feeds/{name}` serves the feed put under `name` with an
//! `ETag` and a `Last-Modified`, answers 304 to a matching `If-None-Match`,
//! asks for the credentials set for the feed (401 without them), and can
//! fail (500), hang, or redirect, as a partner's server does on a bad day.
//! Every request is counted, so a test can tell one fetch from two.
//!
//! `PUT /feeds/{name}?mode=serve|stream|fail|hang|redirect&location=<url>`
//! changes a feed from the command line (the README's walk-through): a body
//! becomes the feed's content (with its Content-Type; an empty one keeps
//! the content there is), the mode how it is answered; the credentials it
//! asks for stay as they were. Local only, like everything in this crate.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a feed's requests are answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Serve,
    /// The body in 64 KiB chunks with no Content-Length (chunked), as a
    /// server that generates its feed sends it.
    Stream,
    /// 500, every time.
    Fail,
    /// Headers never come (for an hour).
    Hang,
    /// 302 to this URL.
    Redirect(String),
}

/// The credentials a feed asks for: the exact value of one header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub header: String,
    pub value: String,
}

#[derive(Debug, Clone)]
pub struct Feed {
    pub body: Vec<u8>,
    pub content_type: String,
    pub mode: Mode,
    pub auth: Option<Expect>,
    pub last_modified: String,
}

impl Feed {
    pub fn csv(body: impl Into<Vec<u8>>) -> Self {
        Self {
            body: body.into(),
            content_type: "text/csv".into(),
            mode: Mode::Serve,
            auth: None,
            last_modified: "Sun, 06 Dec 2026 00:00:00 GMT".into(),
        }
    }

    fn etag(&self) -> String {
        format!("\"{}\"", hex::encode(&Sha256::digest(&self.body)[..8]))
    }
}

#[derive(Default)]
pub struct FeedServer {
    feeds: Mutex<HashMap<String, Feed>>,
    hits: Mutex<HashMap<String, u32>>,
}

impl FeedServer {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Serves `feed` at `/feeds/{name}` from now on.
    pub fn put(&self, name: &str, feed: Feed) {
        if let Ok(mut f) = self.feeds.lock() {
            f.insert(name.to_owned(), feed);
        }
    }

    /// Requests `/feeds/{name}` has had.
    pub fn hits(&self, name: &str) -> u32 {
        self.hits
            .lock()
            .ok()
            .and_then(|h| h.get(name).copied())
            .unwrap_or(0)
    }
}

pub fn router(server: Arc<FeedServer>) -> Router {
    Router::new()
        .route("/feeds/{name}", get(serve_feed).put(change_feed))
        .with_state(server)
}

/// Serves on `listener` until the process ends.
pub async fn serve(server: Arc<FeedServer>, listener: tokio::net::TcpListener) {
    if let Err(e) = axum::serve(listener, router(server)).await {
        tracing::error!(error = %e, "the sandbox feed server stopped");
    }
}

/// Starts it on 127.0.0.1:`port` (0: any free port); its base URL.
pub async fn start(port: u16) -> Result<(Arc<FeedServer>, String), crate::Error> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("the sandbox feed server cannot listen on 127.0.0.1:{port} ({e}); set FEED_SERVER_PORT"))?;
    let url = format!("http://{}", listener.local_addr()?);
    let server = FeedServer::new();
    tokio::spawn(serve(server.clone(), listener));
    Ok((server, url))
}

#[derive(Debug, serde::Deserialize)]
struct Change {
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    location: Option<String>,
}

async fn change_feed(
    State(server): State<Arc<FeedServer>>,
    Path(name): Path<String>,
    Query(change): Query<Change>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mode = match (change.mode.as_deref().unwrap_or("serve"), change.location) {
        ("serve", _) => Mode::Serve,
        ("stream", _) => Mode::Stream,
        ("fail", _) => Mode::Fail,
        ("hang", _) => Mode::Hang,
        ("redirect", Some(to)) => Mode::Redirect(to),
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                "mode is serve, stream, fail, hang or redirect (with location=<url>)\n",
            )
                .into_response();
        }
    };
    let previous = server.feeds.lock().ok().and_then(|f| f.get(&name).cloned());
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("text/csv")
        .to_owned();
    let feed = match previous {
        // only the mode changes: the same content, the same version
        Some(p) if body.is_empty() => Feed { mode, ..p },
        previous => Feed {
            content_type,
            mode,
            auth: previous.and_then(|p| p.auth),
            // a new content is a new version: a conditional fetch gets it
            last_modified: chrono::Utc::now()
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string(),
            ..Feed::csv(body.to_vec())
        },
    };
    let etag = feed.etag();
    server.put(&name, feed);
    (StatusCode::OK, [(header::ETAG, etag)]).into_response()
}

async fn serve_feed(
    State(server): State<Arc<FeedServer>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Ok(mut h) = server.hits.lock() {
        *h.entry(name.clone()).or_default() += 1;
    }
    let Some(feed) = server.feeds.lock().ok().and_then(|f| f.get(&name).cloned()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(expect) = &feed.auth {
        let given = headers
            .get(expect.header.as_str())
            .and_then(|v| v.to_str().ok());
        if given != Some(expect.value.as_str()) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
    }
    match &feed.mode {
        Mode::Fail => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        Mode::Redirect(to) => {
            let mut r = StatusCode::FOUND.into_response();
            if let Ok(v) = HeaderValue::from_str(to) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            return r;
        }
        Mode::Serve | Mode::Stream => {}
    }
    let etag = feed.etag();
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let matches = match text(header::IF_NONE_MATCH) {
        Some(v) => v.split(',').any(|t| t.trim() == etag),
        // the validators are one date here: equal is unchanged
        None => text(header::IF_MODIFIED_SINCE) == Some(feed.last_modified.as_str()),
    };
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else if feed.mode == Mode::Stream {
        let chunks: Vec<Result<Vec<u8>, std::convert::Infallible>> = feed
            .body
            .chunks(64 * 1024)
            .map(|c| Ok(c.to_vec()))
            .collect();
        let body = axum::body::Body::from_stream(futures_util::stream::iter(chunks));
        (StatusCode::OK, body).into_response()
    } else {
        (StatusCode::OK, feed.body.clone()).into_response()
    };
    let h = response.headers_mut();
    for (name, value) in [
        (header::ETAG, etag.as_str()),
        (header::LAST_MODIFIED, feed.last_modified.as_str()),
        (header::CONTENT_TYPE, feed.content_type.as_str()),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    }
    response
}
