//! One fetch of a partner's feed URL into the feeds bucket (issue 12, ADR
//! 0025): the host resolved once and every address checked ([`ssrf`]), the
//! connection pinned to those addresses, redirects followed by hand (at most
//! [`Limits::max_redirects`], each checked the same way, credentials sent to
//! the profile's own origin only), `If-None-Match` / `If-Modified-Since`
//! from the last fetch, the body streamed into the bucket part by part (memory
//! flat in the feed's size) and cut at a size limit, all within one deadline.

use super::ssrf::{self, Allowance, Refused};
use crate::config::{ExposeSecret, Secret};
use crate::domain::fetch_profile::{check_header_name, check_secret};
use crate::objects::{ObjectError, Writer};
use http::{HeaderValue, StatusCode, header};
use reqwest::Url;
use std::time::Duration;
use tokio::time::{Instant, timeout_at};

/// How a fetch authenticates to the partner's server.
#[derive(Debug, Clone)]
pub enum Auth {
    Basic {
        username: String,
        password: Secret,
    },
    Bearer(Secret),
    /// One custom header, such as `X-Feed-Token`.
    Header {
        name: String,
        value: Secret,
    },
}

/// What one fetch asks for.
#[derive(Debug, Clone)]
pub struct Request {
    pub url: Url,
    pub auth: Option<Auth>,
    /// From the last fetch that stored a file.
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_bytes: u64,
    /// The whole fetch: every redirect, the headers and the body.
    pub timeout: Duration,
    pub max_redirects: usize,
    pub allow: Allowance,
}

/// What a fetch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// 304: nothing stored.
    Unchanged,
    Stored {
        bytes: u64,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("refused: {0}")]
    Refused(#[from] Refused),
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    #[error("a redirect without a usable Location")]
    BadRedirect,
    #[error("the server answered {0}")]
    Status(u16),
    #[error("the feed is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    #[error("the request failed: {0}")]
    Transport(String),
    #[error(transparent)]
    Store(#[from] ObjectError),
}

impl FetchError {
    /// Stable, for machines: the fetch record's `reason_code`.
    pub fn code(&self) -> &'static str {
        match self {
            FetchError::Refused(r) => r.code(),
            FetchError::TooManyRedirects(_) => "too_many_redirects",
            FetchError::BadRedirect => "bad_redirect",
            FetchError::Status(_) => "http_status",
            FetchError::TooLarge { .. } => "too_large",
            FetchError::TimedOut(_) => "timed_out",
            FetchError::Transport(_) => "transport",
            FetchError::Store(_) => "store",
        }
    }

    /// Whether trying again later may succeed (a refusal or a file too large
    /// will not change by waiting).
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Status(s) => *s >= 500 || *s == 429 || *s == 408,
            FetchError::TimedOut(_) | FetchError::Transport(_) | FetchError::Store(_) => true,
            FetchError::Refused(Refused::Lookup(_)) => true,
            _ => false,
        }
    }
}

/// reqwest's errors name the URL, whose query may hold what a partner
/// thinks of as a secret: never the URL in a message.
fn transport(e: reqwest::Error) -> FetchError {
    FetchError::Transport(e.without_url().to_string())
}

/// Fetches `req` and writes a 200's body through `into` (finished only if
/// the whole body arrived within the limits; abandoned otherwise).
pub async fn fetch(
    req: &Request,
    limits: &Limits,
    mut into: Writer,
) -> Result<Fetched, FetchError> {
    let deadline = Instant::now() + limits.timeout;
    let timed_out = || FetchError::TimedOut(limits.timeout);
    let opened = timeout_at(deadline, open(req, limits, deadline)).await;
    let mut response = match opened {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            into.abandon().await;
            return Err(e);
        }
        Err(_) => {
            into.abandon().await;
            return Err(timed_out());
        }
    };
    let status = response.status();
    if status == StatusCode::NOT_MODIFIED {
        into.abandon().await;
        return Ok(Fetched::Unchanged);
    }
    if status != StatusCode::OK {
        into.abandon().await;
        return Err(FetchError::Status(status.as_u16()));
    }
    let text = |name: header::HeaderName| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (etag, last_modified) = (text(header::ETAG), text(header::LAST_MODIFIED));
    if response
        .content_length()
        .is_some_and(|n| n > limits.max_bytes)
    {
        into.abandon().await;
        return Err(FetchError::TooLarge {
            limit: limits.max_bytes,
        });
    }
    loop {
        let chunk = match timeout_at(deadline, response.chunk()).await {
            Err(_) => {
                into.abandon().await;
                return Err(timed_out());
            }
            Ok(Err(e)) => {
                into.abandon().await;
                return Err(transport(e));
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => chunk,
        };
        if into.written() + chunk.len() as u64 > limits.max_bytes {
            into.abandon().await;
            return Err(FetchError::TooLarge {
                limit: limits.max_bytes,
            });
        }
        match timeout_at(deadline, into.write(&chunk)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                into.abandon().await;
                return Err(e.into());
            }
            Err(_) => {
                into.abandon().await;
                return Err(timed_out());
            }
        }
    }
    let bytes = into.written();
    // finish aborts the upload itself if it fails
    timeout_at(deadline, into.finish())
        .await
        .map_err(|_| timed_out())??;
    Ok(Fetched::Stored {
        bytes,
        etag,
        last_modified,
    })
}

/// Sends the request, following redirects by hand: each hop's host resolved
/// and checked, the connection pinned to what was checked.
async fn open(
    req: &Request,
    limits: &Limits,
    deadline: Instant,
) -> Result<reqwest::Response, FetchError> {
    let mut url = req.url.clone();
    for _ in 0..=limits.max_redirects {
        let addrs = ssrf::resolve(&url, &limits.allow).await?;
        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // a proxy from the environment would resolve the name itself
            .no_proxy()
            .connect_timeout(
                deadline
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_secs(10)),
            );
        if let Some(url::Host::Domain(name)) = url.host() {
            client = client.dns_resolver(Pinned {
                name: name.to_ascii_lowercase(),
                addrs: addrs.clone(),
            });
        }
        let client = client.build().map_err(transport)?;
        let mut request = client.get(url.clone());
        // the partner's credentials go to its own origin only; the
        // validators, no secret, to every hop (a feed served from a CDN
        // after a redirect can answer 304 too)
        if url.origin() == req.url.origin() {
            request = authorize(request, req.auth.as_ref())?;
        }
        if let Some(etag) = &req.etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        if let Some(since) = &req.last_modified {
            request = request.header(header::IF_MODIFIED_SINCE, since);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        if !status.is_redirection() || status == StatusCode::NOT_MODIFIED {
            return Ok(response);
        }
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(FetchError::BadRedirect)?;
        url = url.join(location).map_err(|_| FetchError::BadRedirect)?;
    }
    Err(FetchError::TooManyRedirects(limits.max_redirects))
}

/// The only resolver a hop's client has: the checked addresses for the
/// one name checked, an error for any other name (never a fallback to the
/// system's resolver, which could answer differently the second time).
struct Pinned {
    name: String,
    addrs: Vec<std::net::SocketAddr>,
}

impl reqwest::dns::Resolve for Pinned {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let found = (name.as_str().eq_ignore_ascii_case(&self.name)).then(|| self.addrs.clone());
        Box::pin(async move {
            match found {
                Some(addrs) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                None => Err("a name other than the checked one".into()),
            }
        })
    }
}

fn authorize(
    request: reqwest::RequestBuilder,
    auth: Option<&Auth>,
) -> Result<reqwest::RequestBuilder, FetchError> {
    let invalid = |e: crate::domain::Invalid| FetchError::Transport(e.reason);
    let sensitive = |value: String| {
        let mut v = HeaderValue::from_str(&value).map_err(|_| {
            FetchError::Transport("the credential is not a valid header value".into())
        })?;
        v.set_sensitive(true);
        Ok::<_, FetchError>(v)
    };
    Ok(match auth {
        None => request,
        Some(Auth::Basic { username, password }) => {
            check_secret(password.expose_secret()).map_err(invalid)?;
            request.basic_auth(username, Some(password.expose_secret()))
        }
        Some(Auth::Bearer(token)) => {
            check_secret(token.expose_secret()).map_err(invalid)?;
            request.header(
                header::AUTHORIZATION,
                sensitive(format!("Bearer {}", token.expose_secret()))?,
            )
        }
        Some(Auth::Header { name, value }) => {
            check_header_name(name).map_err(invalid)?;
            check_secret(value.expose_secret()).map_err(invalid)?;
            let name = header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| FetchError::Transport("the header name is not valid".into()))?;
            request.header(name, sensitive(value.expose_secret().to_owned())?)
        }
    })
}
