//! partner-api through the local gateway: keys, limits, the audit trail,
//! the contract, dry runs against the real ingest, uploads end to end.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use crate::common::{Answer, Harness, error_code};
use axum::body::Body;
use axum::extract::ConnectInfo;
use chrono::Duration;
use http::{Method, Request};
use serde_json::{Value, json};
use std::net::SocketAddr;

/// A partner made through the admin API, and its first key.
struct NewPartner {
    id: String,
    key: String,
}

impl Harness {
    async fn new_partner(&self, name: &str, feed_version: u8) -> NewPartner {
        let created = self
            .call(
                Method::POST,
                "/admin/partners",
                Some(&self.admin()),
                Some(json!({"name": name, "feed_version": feed_version})),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
        NewPartner {
            id: created.body["partner_id"].as_str().unwrap().to_owned(),
            key: created.body["api_key"].as_str().unwrap().to_owned(),
        }
    }

    /// A partner request from `from` (the source address API Gateway saw).
    async fn partner_call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        from: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let mut req = req.body(body.into()).unwrap();
        let addr = SocketAddr::new(from.parse().unwrap(), 40000);
        req.extensions_mut().insert(ConnectInfo(addr));
        self.send(req).await
    }

    /// `POST /partner/feeds/validate` of `body` as `format`, version `version`.
    async fn dry_run(
        &self,
        key: &str,
        format: &str,
        version: &str,
        body: impl Into<Body>,
    ) -> Answer {
        self.partner_call(
            Method::POST,
            "/partner/feeds/validate",
            Some(key),
            "198.51.100.7",
            &[
                ("content-type", content_type(format)),
                ("x-feed-version", version),
            ],
            body,
        )
        .await
    }

    async fn new_upload(&self, key: &str, body: Value) -> Answer {
        self.partner_call(
            Method::POST,
            "/partner/feeds",
            Some(key),
            "198.51.100.7",
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await
    }

    /// Every audit record, newest first, through the admin API.
    async fn audit_trail(&self) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/admin/audit?limit=200&cursor={c}"),
                None => "/admin/audit?limit=200".into(),
            };
            let page = self
                .call(Method::GET, &path, Some(&self.admin()), None)
                .await;
            assert_eq!(page.status, 200, "{}", page.body);
            items.extend(page.body["items"].as_array().unwrap().iter().cloned());
            match page.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return items,
            }
        }
    }

    /// Moves the clock to the start of the next window of `secs`, so a test
    /// counting in one window does not straddle two.
    fn to_next_window(&self, secs: i64) {
        let now = self.now().timestamp();
        self.clock
            .advance(Duration::seconds(secs - now.rem_euclid(secs)));
    }
}

fn guess(rng: &mut fastrand::Rng) -> String {
    let hex = |rng: &mut fastrand::Rng, n: usize| -> String {
        (0..n)
            .map(|_| b"0123456789abcdef"[rng.usize(..16)] as char)
            .collect()
    };
    format!("fc_{}_{}", hex(rng, 16), hex(rng, 64))
}

#[tokio::test]
async fn a_key_enumeration_is_blocked_audited_and_other_addresses_are_unaffected() {
    let h = Harness::new().await;
    let good = h.new_partner("Acme", 1).await;
    h.to_next_window(900);
    let attacker = "203.0.113.9";
    let mut rng = fastrand::Rng::with_seed(11);
    let guesses: Vec<String> = (0..1000).map(|_| guess(&mut rng)).collect();
    // eight at a time, as a scripted attack would
    let mut statuses = Vec::new();
    for chunk in guesses.chunks(8) {
        let calls = chunk.iter().map(|g| {
            h.partner_call(
                Method::GET,
                "/partner/feeds/f-1",
                Some(g),
                attacker,
                &[],
                Body::empty(),
            )
        });
        for a in futures_util::future::join_all(calls).await {
            if a.status == 429 {
                assert_eq!(error_code(&a), "rate_limited");
                assert_eq!(a.body["details"]["limit"], "address");
                let retry: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=900).contains(&retry), "{retry}");
            } else {
                assert_eq!(a.status, 401, "{}", a.body);
                assert_eq!(error_code(&a), "invalid_api_key");
            }
            statuses.push(a.status.as_u16());
        }
    }
    let refused = statuses.iter().filter(|s| **s == 401).count();
    let blocked = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(
        (refused, blocked),
        (20, 980),
        "the limit is 20 failures per window"
    );
    // once blocked, the good key is refused from that address too...
    let same = h.new_upload_from(&good.key, attacker).await;
    assert_eq!(same.status, 429, "{}", same.body);
    // ...and works from another
    let other = h.new_upload(&good.key, json!({"format": "csv"})).await;
    assert_eq!(other.status, 201, "{}", other.body);
    // every attempt is in the trail with its key id and address
    let trail = h.audit_trail().await;
    let from_attacker: Vec<&Value> = trail
        .iter()
        .filter(|e| e["source_ip"] == attacker)
        .collect();
    assert_eq!(from_attacker.len(), 1001);
    let outcomes = |prefix: &str| {
        from_attacker
            .iter()
            .filter(|e| e["outcome"].as_str().unwrap().starts_with(prefix))
            .count()
    };
    assert_eq!(outcomes("invalid_api_key (unknown_key_id)"), 20);
    assert_eq!(outcomes("rate_limited (address blocked)"), 981);
    for g in &guesses[..8] {
        let key_id = &g[3..19];
        assert!(
            from_attacker
                .iter()
                .any(|e| e["actor"] == format!("key:{key_id}")),
            "{key_id} not audited"
        );
    }
    // a new window lifts the block
    h.clock.advance(Duration::seconds(900));
    let again = h.new_upload_from(&good.key, attacker).await;
    assert_eq!(again.status, 201, "{}", again.body);
}

impl Harness {
    async fn new_upload_from(&self, key: &str, from: &str) -> Answer {
        self.partner_call(
            Method::POST,
            "/partner/feeds",
            Some(key),
            from,
            &[("content-type", "application/json")],
            json!({"format": "csv"}).to_string(),
        )
        .await
    }
}

#[tokio::test]
async fn a_revoked_key_is_refused_on_its_next_request_and_a_rotated_one_works() {
    let h = Harness::new().await;
    let p = h.new_partner("Acme", 1).await;
    let added = h
        .call(
            Method::POST,
            &format!("/admin/partners/{}/keys", p.id),
            Some(&h.admin()),
            None,
        )
        .await;
    let second = added.body["api_key"].as_str().unwrap().to_owned();
    assert_eq!(
        h.new_upload(&p.key, json!({"format": "csv"})).await.status,
        201
    );
    let first_id = &p.key[3..19];
    let revoked = h
        .call(
            Method::DELETE,
            &format!("/admin/partners/{}/keys/{first_id}", p.id),
            Some(&h.admin()),
            None,
        )
        .await;
    assert_eq!(revoked.status, 204);
    let refused = h.new_upload(&p.key, json!({"format": "csv"})).await;
    assert_eq!(refused.status, 401);
    assert_eq!(error_code(&refused), "invalid_api_key");
    assert_eq!(
        h.new_upload(&second, json!({"format": "csv"})).await.status,
        201
    );
    let trail = h.audit_trail().await;
    assert!(
        trail
            .iter()
            .any(|e| e["outcome"] == "invalid_api_key (revoked)"
                && e["actor"] == format!("key:{first_id}"))
    );
    // a wrong secret with a real key id is refused the same way
    let wrong = format!("{}{}", &second[..20], "0".repeat(64));
    let a = h.new_upload(&wrong, json!({"format": "csv"})).await;
    assert_eq!(
        (a.status.as_u16(), error_code(&a)),
        (401, "invalid_api_key".into())
    );
    for bad in ["", "Bearer x", "fc_only"] {
        let a = h
            .partner_call(
                Method::GET,
                "/partner/feeds/f-1",
                Some(bad),
                "198.51.100.8",
                &[],
                Body::empty(),
            )
            .await;
        assert_eq!(a.status, 401, "{bad:?}");
    }
}

#[tokio::test]
async fn the_61st_request_of_a_minute_is_429_with_retry_after() {
    let h = Harness::new().await;
    let p = h.new_partner("Acme", 1).await;
    h.to_next_window(60);
    for i in 0..60 {
        let a = h
            .partner_call(
                Method::GET,
                "/partner/feeds/f-none",
                Some(&p.key),
                "198.51.100.7",
                &[],
                Body::empty(),
            )
            .await;
        assert_eq!(a.status, 404, "request {i}: {}", a.body);
    }
    let a = h
        .partner_call(
            Method::GET,
            "/partner/feeds/f-none",
            Some(&p.key),
            "198.51.100.7",
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(a.status, 429, "{}", a.body);
    assert_eq!(error_code(&a), "rate_limited");
    assert_eq!(a.body["details"]["limit"], "key");
    let retry: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(a.body["details"]["retry_after"], retry);
    // the next minute, it is let in again
    h.clock.advance(Duration::seconds(60));
    let a = h
        .partner_call(
            Method::GET,
            "/partner/feeds/f-none",
            Some(&p.key),
            "198.51.100.7",
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(a.status, 404);
}

#[tokio::test]
async fn another_partners_feed_is_404_exactly_like_one_that_never_was() {
    let h = Harness::new().await;
    let a = h.new_partner("Acme", 1).await;
    let b = h.new_partner("Bolt", 1).await;
    let upload = h.new_upload(&a.key, json!({"format": "json"})).await;
    let feed_id = upload.body["feed_id"].as_str().unwrap();
    let own = h
        .partner_call(
            Method::GET,
            &format!("/partner/feeds/{feed_id}"),
            Some(&a.key),
            "198.51.100.7",
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(own.status, 200);
    assert_eq!(own.body["status"], "awaiting_upload");
    let theirs = h
        .partner_call(
            Method::GET,
            &format!("/partner/feeds/{feed_id}"),
            Some(&b.key),
            "198.51.100.7",
            &[],
            Body::empty(),
        )
        .await;
    let never = h
        .partner_call(
            Method::GET,
            "/partner/feeds/f-00000000000000000000000000000000",
            Some(&b.key),
            "198.51.100.7",
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!((theirs.status.as_u16(), never.status.as_u16()), (404, 404));
    let shape = |a: &Answer, id: &str| {
        let mut body = a.body.clone();
        body["request_id"] = json!(null);
        body.to_string().replace(id, "<id>")
    };
    assert_eq!(
        shape(&theirs, feed_id),
        shape(&never, "f-00000000000000000000000000000000")
    );
    let bad = h
        .partner_call(
            Method::GET,
            "/partner/feeds/..%2F..%2Fx",
            Some(&b.key),
            "198.51.100.7",
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
}

fn content_type(format: &str) -> &'static str {
    match format {
        "csv" => "text/csv",
        "json" => "application/json",
        _ => "application/xml",
    }
}

#[tokio::test]
async fn every_example_passes_the_dry_run_and_the_published_schema() {
    let h = Harness::new().await;
    let p = h.new_partner("Acme", 1).await;
    let contract = h.get("/partner/contract").await;
    assert_eq!(contract.status, 200);
    assert_eq!(contract.body["versions"], json!([1, 2]));
    for version in ["1", "2"] {
        let schema = &contract.body["schemas"][version];
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(schema)
            .unwrap();
        for format in ["csv", "json", "xml"] {
            let example = h
                .get(&format!(
                    "/partner/contract/example?version={version}&format={format}"
                ))
                .await;
            assert_eq!(example.status, 200);
            let body = match &example.body {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if format == "json" {
                let doc: Value = serde_json::from_str(&body).unwrap();
                let errors: Vec<String> =
                    validator.iter_errors(&doc).map(|e| e.to_string()).collect();
                assert!(errors.is_empty(), "v{version}: {errors:?}");
            }
            let dry = h.dry_run(&p.key, format, version, body.clone()).await;
            assert_eq!(dry.status, 200, "{}", dry.body);
            assert_eq!(dry.body["valid"], true, "v{version} {format}: {}", dry.body);
            assert_eq!(dry.body["rows"], 2);
        }
    }
    for bad in ["?version=3&format=csv", "?version=1&format=yaml"] {
        let a = h.get(&format!("/partner/contract/example{bad}")).await;
        assert_eq!(
            (a.status.as_u16(), error_code(&a)),
            (400, "invalid_request".into())
        );
    }
}

/// A field's rule, broken, in an otherwise valid JSON product: what the
/// validator says, and what the schema says.
#[tokio::test]
async fn the_schema_refuses_what_the_validator_refuses_field_by_field() {
    use shared::feeds::FeedVersion;
    use shared::feeds::adapters::ADAPTERS;
    use shared::feeds::contract;
    use shared::feeds::scan::scan_all;
    let valid = json!({"sku": "MUG-1", "name": "Blue mug", "price": "12.99", "currency": "EUR",
        "quantity": 40, "category": "kitchen", "description": "Stoneware", "brand": "Acme",
        "gtin": "4006381333931", "dimensions": {"length": "12", "width": 9, "height": "10.5", "unit": "cm"},
        "colour": "blue"});
    let long = |n: usize| "x".repeat(n);
    let broken: Vec<(&str, Value)> = vec![
        ("sku", json!("-MUG")),
        ("sku", json!("MUG 1")),
        ("sku", json!(long(51))),
        ("name", json!("")),
        ("name", json!("   ")),
        ("name", json!(long(151))),
        ("name", json!("=HYPERLINK(\"x\")")),
        ("name", json!("bell\u{7}")),
        ("description", json!(long(5001))),
        ("description", json!("@SUM(A1)")),
        ("description", json!("a\u{0}b")),
        ("price", json!("12,99")),
        ("price", json!("-1")),
        ("price", json!("0")),
        ("price", json!("0.00")),
        ("price", json!("12345678901")),
        ("currency", json!("eur")),
        ("quantity", json!(-1)),
        ("quantity", json!("1000000001")),
        ("quantity", json!("1.5")),
        ("category", json!("kitchen/cups")),
        ("brand", json!(long(71))),
        ("gtin", json!("12345")),
        (
            "dimensions",
            json!({"length": "0", "width": "1", "height": "1", "unit": "cm"}),
        ),
        (
            "dimensions",
            json!({"length": "1", "width": "1", "height": "1", "unit": "ft"}),
        ),
        (
            "dimensions",
            json!({"length": "1", "width": "1", "unit": "cm"}),
        ),
        ("colour", json!(long(1001))),
        ("colour", json!("+1 blue")),
    ];
    let schema = contract::schema(FeedVersion::V2);
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&schema)
        .unwrap();
    let verdicts = |product: &Value| {
        let doc = json!({"products": [product]});
        let by_schema = validator.is_valid(&doc);
        let whole = scan_all(
            ADAPTERS,
            "json",
            FeedVersion::V2,
            "acme",
            false,
            1 << 20,
            doc.to_string().as_bytes(),
        )
        .unwrap();
        (by_schema, whole.errors.is_empty())
    };
    assert_eq!(verdicts(&valid), (true, true));
    for (field, value) in broken {
        let mut product = valid.clone();
        product[field] = value.clone();
        assert_eq!(verdicts(&product), (false, false), "{field} = {value}");
    }
    // a required field left out
    for field in ["sku", "name", "price", "currency", "quantity", "category"] {
        let mut product = valid.clone();
        product.as_object_mut().unwrap().remove(field);
        assert_eq!(verdicts(&product), (false, false), "{field} missing");
    }
    // the three rules only the dry run checks: the schema says so
    let rules = contract::contract()["rules_beyond_the_schema"].to_string();
    let mut check_digit = valid.clone();
    check_digit["gtin"] = json!("4006381333932");
    assert_eq!(verdicts(&check_digit), (true, false));
    assert!(rules.contains("check digit"));
}

/// The hostile and valid fixtures, through the dry run and through the real
/// ingest: the same errors, the same file error.
#[tokio::test]
async fn the_dry_run_and_the_ingest_give_the_same_errors_for_the_same_file() {
    let h = Harness::new().await;
    let p = h.new_partner("Acme", 1).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/feeds");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(names.len() >= 10, "{names:?}");
    for name in &names {
        let (stem, format) = name.rsplit_once('.').unwrap();
        let version = if stem.contains("v2") { "2" } else { "1" };
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let dry = h.dry_run(&p.key, format, version, bytes.clone()).await;
        assert_eq!(dry.status, 200, "{name}: {}", dry.body);
        let feed_id = stem.replace('.', "-");
        h.drop_feed(
            &format!("incoming/{}/{feed_id}.{format}", p.id),
            bytes,
            &[("feed-version", version)],
        )
        .await;
        h.ingest_queued(&[]).await;
        let report = h.report(&p.id, &feed_id).await;
        assert_eq!(dry.body["errors"], report["errors"], "{name}");
        assert_eq!(
            dry.body["file_error"]["message"].as_str(),
            report["file_error"].as_str(),
            "{name}"
        );
        assert_eq!(
            dry.body["valid"],
            report["errors"].as_array().unwrap().is_empty() && report["file_error"].is_null(),
            "{name}"
        );
        if report["file_error"].is_null() {
            assert_eq!(dry.body["rows"], report["rows"], "{name}");
        }
    }
}

#[tokio::test]
async fn an_upload_url_takes_a_feed_that_is_ingested_and_reported() {
    let h = Harness::new().await;
    let p = h.new_partner("Acme", 1).await;
    let upload = h
        .new_upload(
            &p.key,
            json!({"format": "csv", "feed_version": 1, "validation": "lenient"}),
        )
        .await;
    assert_eq!(upload.status, 201, "{}", upload.body);
    let b = &upload.body;
    let feed_id = b["feed_id"].as_str().unwrap();
    assert_eq!(b["upload_method"], "PUT");
    assert_eq!(b["expires_in"], 900);
    assert_eq!(b["object_key"], format!("incoming/{}/{feed_id}.csv", p.id));
    let url = b["upload_url"].as_str().unwrap();
    assert!(
        url.contains(&format!("incoming/{}/{feed_id}.csv", p.id)),
        "{url}"
    );
    assert!(url.contains("X-Amz-Expires=900"), "{url}");
    let signed = url
        .split("X-Amz-SignedHeaders=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    assert!(signed.contains("content-type"), "{signed}");
    let headers = b["upload_headers"].as_object().unwrap();
    assert_eq!(headers["content-type"], "text/csv");
    assert_eq!(headers["x-amz-meta-feed-version"], "1");
    assert_eq!(
        upload.headers["location"],
        format!("/partner/feeds/{feed_id}")
    );

    let csv = "sku,name,price,currency,quantity,category,description\nMUG-1,Blue mug,12.99,EUR,40,kitchen,\nMUG-2,,1.00,EUR,1,kitchen,\nMUG-3,Red mug,9.5,EUR,7,kitchen,\n";
    let mut put = tokio::process::Command::new("curl");
    put.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "PUT",
        url,
    ]);
    for (name, value) in headers {
        put.args(["-H", &format!("{name}: {}", value.as_str().unwrap())]);
    }
    put.args(["--data-binary", csv]);
    let out = put.output().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{out:?}");
    h.ingest_queued(&[]).await;
    let status = h
        .partner_call(
            Method::GET,
            &format!("/partner/feeds/{feed_id}"),
            Some(&p.key),
            "198.51.100.7",
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(status.status, 200, "{}", status.body);
    let s = &status.body;
    assert_eq!(s["status"], "completed_with_errors", "{s}");
    assert_eq!(
        (
            s["counts"]["rows"].clone(),
            s["counts"]["ingested"].clone(),
            s["counts"]["rejected"].clone()
        ),
        (json!(3), json!(2), json!(1))
    );
    assert_eq!(s["errors"].as_array().unwrap().len(), 1);
    assert_eq!(
        (
            s["errors"][0]["row"].clone(),
            s["errors"][0]["field"].clone()
        ),
        (json!(2), json!("name"))
    );
    assert_eq!(
        s["report_key"],
        format!("reports/{}/{feed_id}.errors.json", p.id)
    );
    assert_eq!(
        h.get(&format!("/products/{}:MUG-1", p.id)).await.status,
        200
    );
    // ingested, it is still no other partner's business
    let other = h.new_partner("Bolt", 1).await;
    let theirs = h
        .partner_call(
            Method::GET,
            &format!("/partner/feeds/{feed_id}"),
            Some(&other.key),
            "198.51.100.7",
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(theirs.status, 404);
    // the request for the URL is in the trail with the key and the address
    let trail = h.audit_trail().await;
    // the import's own record names the key that asked for the upload
    assert!(
        trail.iter().any(|e| e["action"] == "feed import"
            && e["outcome"] == "completed_with_errors"
            && e["actor"] == format!("partner:{}/key:{}", p.id, &p.key[3..19])),
        "{trail:?}"
    );
    assert!(trail.iter().any(|e| e["outcome"] == "upload_url_issued"
        && e["target"] == feed_id
        && e["source_ip"] == "198.51.100.7"
        && e["actor"].as_str().unwrap().contains(&p.key[3..19])));
}

/// `GET /partner/help`'s lines, run as written by a shell against the
/// gateway served on a port, with the partner's key in the export line.
#[tokio::test]
async fn the_quickstart_runs_as_written() {
    let h = Harness::new().await;
    let p = h.new_partner("Acme", 1).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = h
        .router
        .clone()
        .into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let help = h
        .partner_call(
            Method::GET,
            "/partner/help",
            None,
            "127.0.0.1",
            &[("host", &format!("127.0.0.1:{port}"))],
            Body::empty(),
        )
        .await;
    assert_eq!(help.status, 200);
    assert_eq!(help.body["api"], format!("http://127.0.0.1:{port}"));
    let steps = help.body["steps"].as_array().unwrap();
    let dir = std::env::temp_dir().join(format!("quickstart-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut env = String::new();
    let mut outputs = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let command = step["command"].as_str().unwrap();
        if command.starts_with("export ") {
            // the first step: the partner's own key in place of the placeholder
            env = command.replace("fc_yourkeyid_yoursecret", &p.key);
            continue;
        }
        if command.contains("/partner/feeds/$(") {
            // the upload is in: let the ingest run, as the queue's poller would
            h.ingest_queued(&[]).await;
        }
        let out = tokio::process::Command::new("sh")
            .arg("-ec")
            .arg(format!("{env}\n{command}"))
            .current_dir(&dir)
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "step {i} `{command}`: {out:?}");
        outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    server.abort();
    let dry: Value = serde_json::from_str(&outputs[2]).unwrap();
    assert_eq!(dry["valid"], true, "{dry}");
    let last: Value = serde_json::from_str(outputs.last().unwrap()).unwrap();
    assert_eq!(last["status"], "completed", "{last}");
    assert_eq!(last["counts"]["ingested"], 2);
    std::fs::remove_dir_all(&dir).ok();
}

/// S5: the partner-admin operations take an admin's token, not a partner's
/// key nor a shopper's token; every refusal is audited and nothing changes.
#[tokio::test]
async fn partner_admin_operations_refuse_partners_and_shoppers_and_audit_them() {
    let h = Harness::new().await;
    let p = h.new_partner("Acme", 1).await;
    let key_id = &p.key[3..19];
    let shopper = h.shopper("mallory");
    let ops = [
        (
            Method::POST,
            "/admin/partners".to_owned(),
            Some(json!({"name": "Evil"})),
        ),
        (Method::POST, format!("/admin/partners/{}/keys", p.id), None),
        (
            Method::DELETE,
            format!("/admin/partners/{}/keys/{key_id}", p.id),
            None,
        ),
        (
            Method::GET,
            format!("/admin/feeds?partner_id={}", p.id),
            None,
        ),
    ];
    for (method, path, body) in &ops {
        let as_shopper = h
            .call(method.clone(), path, Some(&shopper), body.clone())
            .await;
        assert_eq!(as_shopper.status, 403, "{method} {path}");
        // a partner's key, where a token belongs or in its own header
        let as_bearer = h
            .call(method.clone(), path, Some(&p.key), body.clone())
            .await;
        assert_eq!(as_bearer.status, 401, "{method} {path}");
        let mut req = Request::builder()
            .method(method.clone())
            .uri(path.as_str())
            .header("x-api-key", &p.key);
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let with_key = h
            .send(
                req.body(Body::from(
                    body.clone().map(|b| b.to_string()).unwrap_or_default(),
                ))
                .unwrap(),
            )
            .await;
        assert_eq!(with_key.status, 401, "{method} {path}");
    }
    // nothing changed: the key still works, no partner was made
    assert_eq!(
        h.new_upload(&p.key, json!({"format": "csv"})).await.status,
        201
    );
    let trail = h.audit_trail().await;
    let denied: Vec<&Value> = trail
        .iter()
        .filter(|e| e["actor"] == "mallory" && e["outcome"] == "denied")
        .collect();
    assert_eq!(denied.len(), 4, "{denied:?}");
    assert!(!trail.iter().any(|e| e["action"] == "POST /admin/partners"
        && e["outcome"] == "allowed"
        && e["actor"] == "mallory"));
    // a browser page cannot send the key cross-site: the API's CORS does not
    // allow the header, so the preflight tells the browser no
    let preflight = h
        .send(
            Request::builder()
                .method(Method::OPTIONS)
                .uri("/partner/feeds")
                .header("origin", "http://localhost:3000")
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "x-api-key")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let allowed = preflight
        .headers
        .get("access-control-allow-headers")
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .unwrap_or_default();
    assert!(
        allowed.contains("authorization"),
        "an allowed origin's preflight: {allowed}"
    );
    assert!(!allowed.contains("x-api-key"), "{allowed}");
}

/// A dry run reads, and writes nothing: no import, no report, no product; a
/// gzip bomb stops at the inflated limit; an oversized body is 413.
#[tokio::test]
async fn a_dry_run_writes_nothing_and_refuses_bombs_and_oversized_bodies() {
    use std::io::Write;
    let h = Harness::new().await;
    let p = h.new_partner("Acme", 1).await;
    let csv = "sku,name,price,currency,quantity,category\nMUG-1,Blue mug,12.99,EUR,4,kitchen\n";
    let dry = h.dry_run(&p.key, "csv", "1", csv).await;
    assert_eq!(dry.body["valid"], true, "{}", dry.body);
    assert!(h.imports(&p.id).await.is_empty());
    assert!(h.catalog().await.is_empty());
    let gzipped = |bytes: &[u8], level| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), level);
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    };
    let send = |headers: Vec<(&'static str, &'static str)>, body: Vec<u8>| {
        let h = &h;
        let key = p.key.clone();
        async move {
            h.partner_call(
                Method::POST,
                "/partner/feeds/validate",
                Some(&key),
                "198.51.100.7",
                &headers,
                body,
            )
            .await
        }
    };
    let gz_csv = vec![("content-type", "text/csv"), ("content-encoding", "gzip")];
    // gzipped: read the same
    let a = send(
        gz_csv.clone(),
        gzipped(csv.as_bytes(), flate2::Compression::default()),
    )
    .await;
    assert_eq!(
        (a.body["valid"].clone(), a.body["rows"].clone()),
        (json!(true), json!(1)),
        "{}",
        a.body
    );
    // a bomb: 64 MiB of one byte, a few KiB gzipped
    let bomb = gzipped(&vec![b'a'; 64 << 20], flate2::Compression::best());
    assert!(bomb.len() < 200_000, "{}", bomb.len());
    let a = send(gz_csv, bomb).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["valid"], false);
    assert!(
        ["too_large", "row_too_large"].contains(&a.body["file_error"]["code"].as_str().unwrap()),
        "{}",
        a.body
    );
    for headers in [
        vec![("content-type", "text/csv"), ("content-encoding", "br")],
        vec![("content-type", "text/plain")],
    ] {
        let a = send(headers, csv.as_bytes().to_vec()).await;
        assert_eq!(
            (a.status.as_u16(), error_code(&a)),
            (400, "invalid_request".into())
        );
    }
    let a = h
        .dry_run(&p.key, "csv", "1", "x".repeat((3 << 20) + 1))
        .await;
    assert_eq!(
        (a.status.as_u16(), error_code(&a)),
        (413, "payload_too_large".into())
    );
    assert!(h.imports(&p.id).await.is_empty());
}

/// One IPv6 host holds a /64: its failures count together, whichever of its
/// addresses they come from.
#[tokio::test]
async fn failures_from_one_ipv6_64_count_together() {
    let h = Harness::new().await;
    h.to_next_window(900);
    let mut rng = fastrand::Rng::with_seed(5);
    let mut attempt = |from: String| {
        let key = guess(&mut rng);
        let h = &h;
        async move {
            h.partner_call(
                Method::GET,
                "/partner/feeds/f-1",
                Some(&key),
                &from,
                &[],
                Body::empty(),
            )
            .await
            .status
        }
    };
    for i in 0..20u16 {
        let from = format!("2001:db8:1:2:{:x}::{:x}", i * 7 + 3, i + 1);
        assert_eq!(attempt(from.clone()).await, 401, "{from}");
    }
    assert_eq!(attempt("2001:db8:1:2:ffff::1".into()).await, 429);
    // the next /64 is another host
    assert_eq!(attempt("2001:db8:1:3::1".into()).await, 401);
}
