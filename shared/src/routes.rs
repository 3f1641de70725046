//! The routes of the HTTP API, as declared in template.yaml (a test keeps the two
//! equal). API Gateway sends anything that matches no route to `$default`,
//! which answers 404 or 405 from this table in the documented error shape.

use std::collections::HashMap;

/// Method and path template of every route the deployed API serves.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/products"),
    ("GET", "/products/{sku}"),
    ("GET", "/flash-sales/{sale_id}"),
    ("GET", "/orders/{order_id}"),
    ("POST", "/checkout"),
    ("POST", "/flash-sales/{sale_id}/checkout"),
    ("PUT", "/admin/products/{sku}"),
    ("POST", "/admin/flash-sales"),
    ("GET", "/admin/audit"),
    ("GET", "/admin/feeds"),
    ("POST", "/admin/partners"),
    ("POST", "/admin/partners/{partner_id}/keys"),
    ("DELETE", "/admin/partners/{partner_id}/keys/{key_id}"),
    ("PUT", "/admin/partners/{partner_id}/fetch-profile"),
    ("GET", "/admin/partners/{partner_id}/fetch-profile"),
    ("DELETE", "/admin/partners/{partner_id}/fetch-profile"),
    ("GET", "/admin/partners/{partner_id}/fetches"),
    ("POST", "/payments/callback"),
    ("GET", "/partner/contract"),
    ("GET", "/partner/contract/example"),
    ("GET", "/partner/help"),
    ("POST", "/partner/feeds/validate"),
    ("POST", "/partner/feeds"),
    ("GET", "/partner/feeds/{feed_id}"),
    ("PUT", "/partner/fetch-profile"),
    ("GET", "/partner/fetch-profile"),
    ("DELETE", "/partner/fetch-profile"),
];

/// The API's CORS configuration, as template.yaml declares it (a test keeps
/// the two equal): what a preflight is told.
pub mod cors {
    pub const ALLOW_METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE"];
    pub const ALLOW_HEADERS: &[&str] = &["authorization", "content-type", "idempotency-key"];
    pub const EXPOSE_HEADERS: &[&str] = &["location", "retry-after"];
    pub const MAX_AGE_SECS: u32 = 600;
}

/// Matches an API Gateway path template (`{name}` takes one segment, `{name+}`
/// the rest) against a path; returns the captured parameters.
pub fn match_path(template: &str, path: &str) -> Option<HashMap<String, String>> {
    let mut params = HashMap::new();
    let mut want = template.trim_matches('/').split('/');
    let mut got = path.trim_matches('/').split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return Some(params),
            (Some(w), Some(g)) => {
                if let Some(name) = w.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                    if let Some(greedy) = name.strip_suffix('+') {
                        let rest: Vec<&str> = std::iter::once(g).chain(got.by_ref()).collect();
                        params.insert(greedy.to_owned(), rest.join("/"));
                        return Some(params);
                    }
                    if g.is_empty() {
                        return None;
                    }
                    params.insert(name.to_owned(), g.to_owned());
                } else if w != g {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

/// A request no route took: the methods its path has, none if no route has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmatched {
    pub method: String,
    pub path: String,
    /// Empty: 404. Otherwise 405 with `Allow`.
    pub allowed: Vec<&'static str>,
}

/// What to answer a request no route took: 405 with `Allow` when the path
/// exists under other methods, 404 otherwise.
pub fn unmatched(method: &str, path: &str) -> Unmatched {
    let mut allowed: Vec<&'static str> = ROUTES
        .iter()
        .filter(|(_, template)| match_path(template, path).is_some())
        .map(|(m, _)| *m)
        .collect();
    allowed.dedup();
    // Allowed methods that include this one mean the event named a route this
    // function does not serve: nothing to suggest, so 404.
    if allowed.contains(&method) {
        allowed.clear();
    }
    Unmatched {
        method: method.to_owned(),
        path: path.to_owned(),
        allowed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_capture_segments() {
        let p = match_path("/products/{sku}", "/products/MUG-1").unwrap();
        assert_eq!(p["sku"], "MUG-1");
        assert!(match_path("/products/{sku}", "/products").is_none());
        assert!(match_path("/products/{sku}", "/products/").is_none());
        assert!(match_path("/products/{sku}", "/products/a/b").is_none());
        assert!(match_path("/products", "/products").unwrap().is_empty());
        let p = match_path("/files/{path+}", "/files/a/b/c").unwrap();
        assert_eq!(p["path"], "a/b/c");
    }

    #[test]
    fn unmatched_requests_are_404_or_405() {
        assert!(unmatched("GET", "/nowhere").allowed.is_empty());
        assert_eq!(unmatched("DELETE", "/products/MUG-1").allowed, vec!["GET"]);
        assert!(unmatched("GET", "/products/MUG-1").allowed.is_empty());
    }
}
