//! One fetch of a partner's URL (issue 12): the sandbox feed server as the
//! partner's web server, the emulator's bucket as where the file lands.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use crate::common::Harness;
use flashcart_local::feed_server::{self, Expect, Feed, FeedServer, Mode};
use shared::config::Secret;
use shared::fetch::client::{Auth, FetchError, Fetched, Limits, Request, fetch};
use shared::fetch::ssrf::{Allowance, Refused};
use shared::objects::{Objects, Writer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

struct Partner {
    server: Arc<FeedServer>,
    base: String,
    limits: Limits,
}

async fn partner_server() -> Partner {
    let (server, base) = feed_server::start(0).await.unwrap();
    let addr: SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    Partner {
        server,
        limits: Limits {
            max_bytes: 1 << 20,
            timeout: Duration::from_secs(5),
            max_redirects: 3,
            allow: Allowance {
                http: true,
                ports: Vec::new(),
                exceptions: vec![addr],
            },
        },
        base,
    }
}

impl Harness {
    fn objects(&self) -> Objects {
        Objects::new(aws_sdk_s3::Client::new(&self.stack.sdk))
    }

    fn feed_writer(&self, key: &str) -> Writer {
        self.objects().writer(
            self.stack.stack.bucket("FeedsBucket"),
            key,
            "text/csv",
            &[("feed-version", "1".into()), ("fetch-id", "fx-1".into())],
        )
    }

    /// Versions of `key` in the feeds bucket.
    async fn versions(&self, key: &str) -> usize {
        aws_sdk_s3::Client::new(&self.stack.sdk)
            .list_object_versions()
            .bucket(self.stack.stack.bucket("FeedsBucket"))
            .prefix(key)
            .send()
            .await
            .unwrap()
            .versions()
            .len()
    }
}

fn request(url: &str) -> Request {
    Request {
        url: url.parse().unwrap(),
        auth: None,
        etag: None,
        last_modified: None,
    }
}

const CSV: &str = "sku,name,price,currency,quantity,category\nMUG-1,Blue mug,12.99,EUR,4,kitchen\n";

#[tokio::test]
async fn an_unchanged_feed_is_a_304_and_stores_nothing_a_changed_one_is_stored_again() {
    let h = Harness::new().await;
    let p = partner_server().await;
    p.server.put("daily", Feed::csv(CSV));
    let key = "incoming/p1/fx-1.csv";
    let url = format!("{}/feeds/daily", p.base);
    let first = fetch(&request(&url), &p.limits, h.feed_writer(key))
        .await
        .unwrap();
    let Fetched::Stored {
        bytes,
        etag,
        last_modified,
    } = first
    else {
        panic!("{first:?}");
    };
    assert_eq!(bytes, CSV.len() as u64);
    assert_eq!(h.versions(key).await, 1);
    let head = aws_sdk_s3::Client::new(&h.stack.sdk)
        .head_object()
        .bucket(h.stack.stack.bucket("FeedsBucket"))
        .key(key)
        .send()
        .await
        .unwrap();
    assert_eq!(head.metadata().unwrap()["fetch-id"], "fx-1");
    // the same validators again: 304, nothing written
    let again = Request {
        etag: etag.clone(),
        last_modified: last_modified.clone(),
        ..request(&url)
    };
    assert_eq!(
        fetch(&again, &p.limits, h.feed_writer(key)).await.unwrap(),
        Fetched::Unchanged
    );
    assert_eq!(h.versions(key).await, 1);
    // changed on the partner's side: stored
    p.server.put(
        "daily",
        Feed::csv(format!("{CSV}MUG-2,Red mug,9.50,EUR,1,kitchen\n")),
    );
    let changed = fetch(&again, &p.limits, h.feed_writer(key)).await.unwrap();
    assert!(matches!(changed, Fetched::Stored { .. }), "{changed:?}");
    assert_eq!(h.versions(key).await, 2);
    assert_eq!(p.server.hits("daily"), 3);
    // by name: resolved once, every address checked, the connection pinned
    // to them (the client's only resolver answers that one name)
    let port: u16 = p.base.rsplit(':').next().unwrap().parse().unwrap();
    let mut by_name = p.limits.clone();
    by_name.allow.ports = vec![port];
    by_name.allow.exceptions = vec![
        SocketAddr::from(([127, 0, 0, 1], port)),
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
    ];
    let got = fetch(
        &request(&format!("http://localhost:{port}/feeds/daily")),
        &by_name,
        h.feed_writer(key),
    )
    .await
    .unwrap();
    assert!(matches!(got, Fetched::Stored { .. }), "{got:?}");
    assert_eq!(p.server.hits("daily"), 4);
}

#[tokio::test]
async fn a_feed_over_the_limit_is_cut_mid_stream_and_nothing_is_stored() {
    let h = Harness::new().await;
    let p = partner_server().await;
    // 7 MiB: more than one part of the multipart upload before the cut
    let mut big = String::from("sku,name,price,currency,quantity,category\n");
    while big.len() < 7 << 20 {
        big.push_str("MUG-1,Blue mug,12.99,EUR,4,kitchen\n");
    }
    // streamed: no Content-Length to refuse it by, so it is cut mid-stream
    p.server.put(
        "big",
        Feed {
            mode: Mode::Stream,
            ..Feed::csv(big)
        },
    );
    let limits = Limits {
        max_bytes: 6 << 20,
        ..p.limits.clone()
    };
    let key = "incoming/p1/big.csv";
    let got = fetch(
        &request(&format!("{}/feeds/big", p.base)),
        &limits,
        h.feed_writer(key),
    )
    .await;
    assert!(matches!(got, Err(FetchError::TooLarge { .. })), "{got:?}");
    assert_eq!(h.versions(key).await, 0);
    assert_eq!(p.server.hits("big"), 1);
    // the part already uploaded was aborted, not left behind
    let pending = aws_sdk_s3::Client::new(&h.stack.sdk)
        .list_multipart_uploads()
        .bucket(h.stack.stack.bucket("FeedsBucket"))
        .send()
        .await
        .unwrap();
    assert!(pending.uploads().is_empty(), "{:?}", pending.uploads());
    // a streamed feed under the limit is stored whole
    let small = CSV.repeat(2000);
    p.server.put(
        "small",
        Feed {
            mode: Mode::Stream,
            ..Feed::csv(small.clone())
        },
    );
    let got = fetch(
        &request(&format!("{}/feeds/small", p.base)),
        &limits,
        h.feed_writer("incoming/p1/small.csv"),
    )
    .await
    .unwrap();
    assert!(
        matches!(got, Fetched::Stored { bytes, .. } if bytes == small.len() as u64),
        "{got:?}"
    );
    assert_eq!(h.versions("incoming/p1/small.csv").await, 1);
}

#[tokio::test]
async fn a_hanging_server_times_out_and_a_failing_one_is_a_transient_status() {
    let h = Harness::new().await;
    let p = partner_server().await;
    p.server.put(
        "slow",
        Feed {
            mode: Mode::Hang,
            ..Feed::csv(CSV)
        },
    );
    p.server.put(
        "down",
        Feed {
            mode: Mode::Fail,
            ..Feed::csv(CSV)
        },
    );
    let limits = Limits {
        timeout: Duration::from_millis(500),
        ..p.limits.clone()
    };
    let started = std::time::Instant::now();
    let got = fetch(
        &request(&format!("{}/feeds/slow", p.base)),
        &limits,
        h.feed_writer("incoming/p1/slow.csv"),
    )
    .await;
    assert!(matches!(got, Err(FetchError::TimedOut(_))), "{got:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(got.unwrap_err().is_transient());
    let got = fetch(
        &request(&format!("{}/feeds/down", p.base)),
        &limits,
        h.feed_writer("incoming/p1/down.csv"),
    )
    .await;
    let err = got.unwrap_err();
    assert!(matches!(err, FetchError::Status(500)), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(h.versions("incoming/p1/").await, 0);
}

#[tokio::test]
async fn credentials_go_to_the_profiles_origin_and_no_further() {
    let h = Harness::new().await;
    let p = partner_server().await;
    let other = partner_server().await;
    let expect = Expect {
        header: "authorization".into(),
        value: "Bearer s3cr3t-token".into(),
    };
    p.server.put(
        "private",
        Feed {
            auth: Some(expect.clone()),
            ..Feed::csv(CSV)
        },
    );
    let mut limits = p.limits.clone();
    limits
        .allow
        .exceptions
        .extend(other.limits.allow.exceptions.clone());
    let url = format!("{}/feeds/private", p.base);
    let without = fetch(&request(&url), &limits, h.feed_writer("incoming/p1/a.csv")).await;
    assert!(
        matches!(without, Err(FetchError::Status(401))),
        "{without:?}"
    );
    let with = Request {
        auth: Some(Auth::Bearer(Secret::from("s3cr3t-token"))),
        ..request(&url)
    };
    let got = fetch(&with, &limits, h.feed_writer("incoming/p1/a.csv"))
        .await
        .unwrap();
    assert!(matches!(got, Fetched::Stored { .. }));
    // a redirect to another origin: the token is not sent there
    other.server.put(
        "private",
        Feed {
            auth: Some(expect),
            ..Feed::csv(CSV)
        },
    );
    p.server.put(
        "moved",
        Feed {
            mode: Mode::Redirect(format!("{}/feeds/private", other.base)),
            ..Feed::csv(CSV)
        },
    );
    let moved = Request {
        auth: Some(Auth::Bearer(Secret::from("s3cr3t-token"))),
        ..request(&format!("{}/feeds/moved", p.base))
    };
    let got = fetch(&moved, &limits, h.feed_writer("incoming/p1/b.csv")).await;
    assert!(matches!(got, Err(FetchError::Status(401))), "{got:?}");
    assert_eq!(other.server.hits("private"), 1);
    // a secret that would start a header of its own is refused, and no
    // error names a secret
    let injected = Request {
        auth: Some(Auth::Header {
            name: "X-Feed-Token".into(),
            value: Secret::from("s3cr3t\r\nHost: evil"),
        }),
        ..request(&url)
    };
    let err = fetch(&injected, &limits, h.feed_writer("incoming/p1/c.csv"))
        .await
        .unwrap_err();
    let host_header = Request {
        auth: Some(Auth::Header {
            name: "Host".into(),
            value: Secret::from("s3cr3t-token"),
        }),
        ..request(&url)
    };
    let err2 = fetch(&host_header, &limits, h.feed_writer("incoming/p1/c.csv"))
        .await
        .unwrap_err();
    for e in [err, err2] {
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }
    assert_eq!(p.server.hits("private"), 2, "neither was sent");
}

/// The SSRF suite at fetch time: each refused before any connection (the
/// partner's server never sees a request it should not).
#[tokio::test]
async fn refused_addresses_are_never_connected_to() {
    let h = Harness::new().await;
    let p = partner_server().await;
    p.server.put("feed", Feed::csv(CSV));
    let port = p.base.rsplit(':').next().unwrap().to_owned();
    // the sandbox's port allowed, its address not: each loopback spelling is
    // refused for its address, not its port
    let deployed = Limits {
        allow: Allowance {
            http: true,
            ports: vec![port.parse().unwrap()],
            exceptions: Vec::new(),
        },
        ..p.limits.clone()
    };
    for url in [
        format!("http://127.0.0.1:{port}/feeds/feed"),
        format!("http://localhost:{port}/feeds/feed"),
        format!("http://[::ffff:127.0.0.1]:{port}/feeds/feed"),
        format!("http://2130706433:{port}/feeds/feed"),
        format!("http://0x7f.0.0.1:{port}/feeds/feed"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[fd00:ec2::254]/latest/meta-data/".to_owned(),
        "http://10.0.0.1/feed.csv".to_owned(),
        "http://0.0.0.0/feed.csv".to_owned(),
    ] {
        let got = fetch(
            &request(&url),
            &deployed,
            h.feed_writer("incoming/p1/x.csv"),
        )
        .await;
        assert!(
            matches!(got, Err(FetchError::Refused(Refused::Address { .. }))),
            "{url}: {got:?}"
        );
    }
    assert_eq!(p.server.hits("feed"), 0);
    // an allowed host that redirects to the metadata address: refused at the hop
    p.server.put(
        "trap",
        Feed {
            mode: Mode::Redirect("http://169.254.169.254/latest/meta-data/iam/".into()),
            ..Feed::csv(CSV)
        },
    );
    let got = fetch(
        &request(&format!("{}/feeds/trap", p.base)),
        &p.limits,
        h.feed_writer("incoming/p1/x.csv"),
    )
    .await;
    assert!(
        matches!(got, Err(FetchError::Refused(Refused::Address { .. }))),
        "{got:?}"
    );
    // four redirects in a row: one too many
    p.server.put(
        "loop",
        Feed {
            mode: Mode::Redirect(format!("{}/feeds/loop", p.base)),
            ..Feed::csv(CSV)
        },
    );
    let got = fetch(
        &request(&format!("{}/feeds/loop", p.base)),
        &p.limits,
        h.feed_writer("incoming/p1/x.csv"),
    )
    .await;
    assert!(
        matches!(got, Err(FetchError::TooManyRedirects(3))),
        "{got:?}"
    );
    assert_eq!(p.server.hits("loop"), 4);
    // https only, 443 only, when deployed
    let https_only = Limits {
        allow: Allowance::default(),
        ..p.limits.clone()
    };
    let got = fetch(
        &request(&format!("{}/feeds/feed", p.base)),
        &https_only,
        h.feed_writer("incoming/p1/x.csv"),
    )
    .await;
    assert!(
        matches!(got, Err(FetchError::Refused(Refused::Scheme(_)))),
        "{got:?}"
    );
    let got = fetch(
        &request("https://93.184.215.14:8443/feed.csv"),
        &https_only,
        h.feed_writer("incoming/p1/x.csv"),
    )
    .await;
    assert!(
        matches!(got, Err(FetchError::Refused(Refused::Port(8443)))),
        "{got:?}"
    );
    assert_eq!(h.versions("incoming/p1/").await, 0);
}

mod profiles {
    use crate::common::Harness;
    use chrono::Duration;
    use shared::domain::fetch_profile::{
        AfterFailure, PAUSE_AFTER_FAILURES, Schedule, after_failure,
    };
    use shared::feeds::import::Validation;
    use shared::store::fetch_profiles::{Ended, FetchProfile, FetchProfileStore, FetchRecord};

    fn store(h: &Harness) -> FetchProfileStore {
        FetchProfileStore::new(
            aws_sdk_dynamodb::Client::new(&h.stack.sdk),
            h.stack.stack.table("PartnersTable"),
        )
    }

    /// A profile of `partner` due in `due_in` seconds: every 6 hours, CSV,
    /// version 1, lenient, no authentication.
    pub(super) fn profile(h: &Harness, partner: &str, due_in: i64) -> FetchProfile {
        FetchProfile {
            partner_id: partner.into(),
            url: "https://feeds.example.com/daily.csv".into(),
            every_hours: Some(6),
            daily_at: None,
            format: "csv".into(),
            feed_version: 1,
            validation: Validation::Lenient,
            auth_type: "none".into(),
            username: None,
            header_name: None,
            secret_changed_at: None,
            next_fetch_at: h.now() + Duration::seconds(due_in),
            failures: 0,
            paused_reason: None,
            etag: None,
            last_modified: None,
            claimed_by: None,
            claimed_due: None,
            updated_at: h.now(),
        }
    }

    #[tokio::test]
    async fn due_profiles_come_from_the_index_and_a_fetch_is_claimed_once() {
        let h = Harness::new().await;
        let s = store(&h);
        s.put(&profile(&h, "p-due", -60)).await.unwrap();
        s.put(&profile(&h, "p-later", 3600)).await.unwrap();
        let mut paused = profile(&h, "p-paused", -120);
        paused.paused_reason = Some("6 failures in a row".into());
        s.put(&paused).await.unwrap();
        let due = s.due(h.now(), 50).await.unwrap();
        let ids: Vec<&str> = due.iter().map(|p| p.partner_id.as_str()).collect();
        assert_eq!(ids, vec!["p-due"]);
        // two fetchers at the same moment: one claim
        let lease = h.now() + Duration::minutes(2);
        let (a, b) = tokio::join!(
            s.claim(&due[0], "run-a", lease),
            s.claim(&due[0], "run-b", lease)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(
            u8::from(a.is_some()) + u8::from(b.is_some()),
            1,
            "{a:?} {b:?}"
        );
        let (claimed, run) = match (a, b) {
            (Some(c), None) => (c, "run-a"),
            (None, Some(c)) => (c, "run-b"),
            _ => unreachable!(),
        };
        // claimed: not due until the lease ends
        assert!(s.due(h.now(), 50).await.unwrap().is_empty());
        assert_eq!(s.due(lease, 50).await.unwrap().len(), 1);
        let next = h.now() + Duration::hours(6);
        let ended = Ended::Succeeded {
            next_fetch_at: next,
            etag: Some("\"e1\"".into()),
            last_modified: None,
        };
        assert!(s.end(&claimed, run, &ended, h.now()).await.unwrap());
        let stored = s.get("p-due").await.unwrap().unwrap();
        assert_eq!(
            (
                shared::domain::ts::format(&stored.next_fetch_at),
                stored.etag.as_deref()
            ),
            (shared::domain::ts::format(&next), Some("\"e1\""))
        );
        assert_eq!(stored.claimed_by, None);
        // ended once: a second end by the same run changes nothing
        assert!(!s.end(&claimed, run, &ended, h.now()).await.unwrap());
    }

    #[tokio::test]
    async fn failures_back_off_then_pause_and_a_profile_saved_meanwhile_stands() {
        let h = Harness::new().await;
        let s = store(&h);
        s.put(&profile(&h, "p1", -1)).await.unwrap();
        let schedule = Schedule::EveryHours(6);
        for n in 1..=PAUSE_AFTER_FAILURES {
            let due = s.due(h.now() + Duration::days(1), 50).await.unwrap();
            assert_eq!(due.len(), 1, "failure {n}");
            let claimed = s
                .claim(&due[0], "run", h.now() + Duration::minutes(2))
                .await
                .unwrap()
                .unwrap();
            let retry_at = match after_failure(&schedule, claimed.failures + 1, h.now()) {
                AfterFailure::RetryAt(t) => Some(t),
                AfterFailure::Pause => None,
            };
            let ended = Ended::Failed {
                retry_at,
                reason: "the server answered 500".into(),
            };
            assert!(s.end(&claimed, "run", &ended, h.now()).await.unwrap());
        }
        let paused = s.get("p1").await.unwrap().unwrap();
        assert_eq!(paused.failures, PAUSE_AFTER_FAILURES);
        assert_eq!(
            paused.paused_reason.as_deref(),
            Some("the server answered 500")
        );
        assert!(
            s.due(h.now() + Duration::days(30), 50)
                .await
                .unwrap()
                .is_empty()
        );
        // a profile saved while a fetch holds it: the claim's end does not
        // overwrite it
        s.put(&profile(&h, "p2", -1)).await.unwrap();
        let due = s.due(h.now(), 50).await.unwrap();
        let claimed = s
            .claim(&due[0], "run", h.now() + Duration::minutes(2))
            .await
            .unwrap()
            .unwrap();
        let mut saved = profile(&h, "p2", 600);
        saved.url = "https://feeds.example.com/new.csv".into();
        saved.updated_at = h.now();
        s.put(&saved).await.unwrap();
        let ended = Ended::Succeeded {
            next_fetch_at: h.now() + Duration::hours(6),
            etag: None,
            last_modified: None,
        };
        assert!(!s.end(&claimed, "run", &ended, h.now()).await.unwrap());
        assert_eq!(
            s.get("p2").await.unwrap().unwrap().url,
            "https://feeds.example.com/new.csv"
        );
        // and a stale read cannot claim the saved profile
        assert!(
            s.claim(&due[0], "run-2", h.now() + Duration::minutes(2))
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_partners_fetches_list_newest_first() {
        let h = Harness::new().await;
        let s = store(&h);
        for i in 0..3 {
            s.record(&FetchRecord {
                fetch_id: format!("fx-{i}"),
                partner_id: "p1".into(),
                started_at: h.now() + Duration::minutes(i),
                status: "fetched".into(),
                http_status: Some(200),
                bytes: 10,
                feed_id: Some(format!("fetch-{i}")),
                reason: None,
                host: "feeds.example.com".into(),
                duration_ms: 5,
            })
            .await
            .unwrap();
        }
        let got: Vec<String> = s
            .fetches("p1", 10)
            .await
            .unwrap()
            .into_iter()
            .map(|f| f.fetch_id)
            .collect();
        assert_eq!(got, vec!["fx-2", "fx-1", "fx-0"]);
        assert!(s.fetches("p2", 10).await.unwrap().is_empty());
        // each record carries the table's TTL: 90 days after it started
        let item = aws_sdk_dynamodb::Client::new(&h.stack.sdk)
            .query()
            .table_name(h.stack.stack.table("PartnersTable"))
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(
                ":pk",
                aws_sdk_dynamodb::types::AttributeValue::S(
                    shared::store::keys::partners::fetches_of("p1"),
                ),
            )
            .limit(1)
            .send()
            .await
            .unwrap()
            .items()[0]
            .clone();
        let ttl: i64 = item["expires_at_epoch"].as_n().unwrap().parse().unwrap();
        let started = chrono::DateTime::parse_from_rfc3339(item["started_at"].as_s().unwrap())
            .unwrap()
            .timestamp();
        assert_eq!(ttl - started, 90 * 86_400);
    }
}

mod secrets {
    use crate::common::Harness;
    use shared::config::{ExposeSecret, Secret};
    use shared::fetch::secrets::SecretStore;

    #[tokio::test]
    async fn a_partners_secret_is_set_rotated_read_and_deleted_in_secrets_manager() {
        let h = Harness::new().await;
        let prefix = format!("flashcart/partners/{}/", h.stack.stack.prefix);
        let store = SecretStore::new(shared::aws::secrets_manager(&h.stack.sdk), prefix.clone());
        assert!(store.get("p1").await.unwrap().is_none());
        store
            .put("p1", &Secret::from("first-s3cr3t"))
            .await
            .unwrap();
        assert_eq!(
            store.get("p1").await.unwrap().unwrap().expose_secret(),
            "first-s3cr3t"
        );
        // rotated: the next read has the new value
        store
            .put("p1", &Secret::from("second-s3cr3t"))
            .await
            .unwrap();
        let got = store.get("p1").await.unwrap().unwrap();
        assert_eq!(got.expose_secret(), "second-s3cr3t");
        assert!(!format!("{got:?} {store:?}").contains("s3cr3t"));
        // under the partners' path, one per partner
        let listed = aws_sdk_secretsmanager::Client::new(&h.stack.sdk)
            .describe_secret()
            .secret_id(format!("{prefix}p1"))
            .send()
            .await
            .unwrap();
        assert_eq!(listed.name(), Some(format!("{prefix}p1").as_str()));
        store.delete("p1").await.unwrap();
        assert!(store.get("p1").await.unwrap().is_none());
        // deleting what is not there is no error
        store.delete("p1").await.unwrap();
    }
}

mod runs {
    use super::{CSV, partner_server};
    use crate::common::Harness;
    use chrono::Duration;
    use flashcart_local::feed_server::{Expect, Feed};
    use shared::config::Secret;
    use shared::feeds::import::Validation;
    use shared::fetch::run::Fetcher;
    use shared::fetch::secrets::SecretStore;
    use shared::objects::Objects;
    use shared::store::audit::AuditStore;
    use shared::store::fetch_profiles::{FetchProfile, FetchProfileStore};
    use std::sync::{Arc, Mutex};

    /// Every log line written while it is the thread's subscriber.
    #[derive(Clone, Default)]
    pub(super) struct Captured(pub(super) Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Every log line of the test binary from the first call on, at DEBUG
    /// and above, whatever thread writes it: a global subscriber, so no
    /// thread's own dispatcher (or a callsite's cached interest) can hide a
    /// line from it.
    pub(super) fn capture() -> Captured {
        static CAPTURE: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
        CAPTURE
            .get_or_init(|| {
                let captured = Captured::default();
                let writer = captured.clone();
                let subscriber = tracing_subscriber::fmt()
                    .with_max_level(tracing::Level::DEBUG)
                    .with_ansi(false)
                    .with_writer(move || writer.clone())
                    .finish();
                tracing::subscriber::set_global_default(subscriber)
                    .expect("no other test sets a global subscriber");
                captured
            })
            .clone()
    }

    fn fetcher(h: &Harness, limits: shared::fetch::client::Limits, prefix: &str) -> Fetcher {
        let dynamo = aws_sdk_dynamodb::Client::new(&h.stack.sdk);
        Fetcher {
            profiles: FetchProfileStore::new(dynamo.clone(), h.stack.stack.table("PartnersTable")),
            secrets: SecretStore::new(shared::aws::secrets_manager(&h.stack.sdk), prefix),
            objects: Objects::new(aws_sdk_s3::Client::new(&h.stack.sdk)),
            audit: AuditStore::new(dynamo, h.stack.stack.table("AuditTable")),
            bucket: h.stack.stack.bucket("FeedsBucket").to_owned(),
            limits,
            budget: std::time::Duration::from_secs(600),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_due_profile_is_fetched_once_ingested_then_unchanged_and_its_secret_never_logged() {
        let captured = capture();

        let h = crate::feeds::with_partners().await;
        let p = partner_server().await;
        let token = "tok-9f8e7d-s3cr3t";
        p.server.put(
            "daily",
            Feed {
                auth: Some(Expect {
                    header: "x-feed-token".into(),
                    value: token.into(),
                }),
                ..Feed::csv(CSV)
            },
        );
        let prefix = format!("flashcart/partners/{}/", h.stack.stack.prefix);
        let f = fetcher(&h, p.limits.clone(), &prefix);
        f.secrets.put("p1", &Secret::from(token)).await.unwrap();
        f.profiles
            .put(&FetchProfile {
                url: format!("{}/feeds/daily", p.base),
                auth_type: "header".into(),
                header_name: Some("X-Feed-Token".into()),
                secret_changed_at: Some(h.now()),
                ..super::profiles::profile(&h, "p1", 0)
            })
            .await
            .unwrap();
        // two runs at the same moment: one fetch
        let clock = h.clock.clone();
        let now = move || shared::clock::Clock::now(clock.as_ref());
        let (a, b) = tokio::join!(f.run(now.clone(), "run-a"), f.run(now.clone(), "run-b"));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.fetched + b.fetched, 1, "{a:?} {b:?}");
        assert_eq!(p.server.hits("daily"), 1);
        // the S3 notification starts the ingest; the import names the fetch
        h.ingest_queued(&[]).await;
        let imports = h.imports("p1").await;
        assert_eq!(imports.len(), 1);
        let fetch_id = imports[0]
            .fetch_id
            .clone()
            .expect("the import names its fetch");
        assert!(fetch_id.starts_with("fx-"), "{fetch_id}");
        assert!(h.catalog().await.contains_key("p1:MUG-1"));
        let listed = f.profiles.fetches("p1", 10).await.unwrap();
        assert_eq!(
            (listed[0].fetch_id.as_str(), listed[0].status.as_str()),
            (fetch_id.as_str(), "fetched")
        );
        // six hours on: 304, no new import
        h.clock.advance(Duration::hours(6) + Duration::seconds(1));
        let s = f.run(now.clone(), "run-c").await.unwrap();
        assert_eq!(s.unchanged, 1, "{s:?}");
        h.ingest_queued(&[]).await;
        assert_eq!(h.imports("p1").await.len(), 1);
        // the secret rotated on the partner's side and not yet here: 401, a
        // failure retried in 5 minutes
        p.server.put(
            "daily",
            Feed {
                auth: Some(Expect {
                    header: "x-feed-token".into(),
                    value: "tok-rotated".into(),
                }),
                ..Feed::csv(format!("{CSV}MUG-2,Red mug,9.50,EUR,1,kitchen\n"))
            },
        );
        h.clock.advance(Duration::hours(6) + Duration::seconds(1));
        let s = f.run(now.clone(), "run-d").await.unwrap();
        assert_eq!(s.failed, 1, "{s:?}");
        let profile = f.profiles.get("p1").await.unwrap().unwrap();
        assert_eq!(profile.failures, 1);
        // rotated here too: the next fetch uses it
        f.secrets
            .put("p1", &Secret::from("tok-rotated"))
            .await
            .unwrap();
        h.clock.advance(Duration::minutes(6));
        let s = f.run(now.clone(), "run-e").await.unwrap();
        assert_eq!(s.fetched, 1, "{s:?}");
        // in no log line of any of it: not the old secret, not the new one
        let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
        assert!(logs.contains("fetch ended"), "the capture saw the runs");
        assert!(
            !logs.contains(token) && !logs.contains("tok-rotated"),
            "a secret was logged"
        );
    }

    /// The function as the template configures it (the sandbox's address
    /// allowed, as the local stack does), run as its schedule runs it.
    #[tokio::test]
    async fn the_scheduled_function_fetches_as_the_template_configures_it() {
        let h = crate::feeds::with_partners().await;
        let p = partner_server().await;
        p.server.put("open", Feed::csv(CSV));
        let addr = p.base.trim_start_matches("http://").to_owned();
        let env = h.env_changed(
            "FeedFetcherFunction",
            &[
                ("FETCH_ALLOW_HTTP", "1"),
                ("FETCH_ALLOWED_ADDRESSES", addr.as_str()),
            ],
        );
        assert!(
            env("SECRETS_PREFIX")
                .unwrap()
                .starts_with("flashcart/partners/")
        );
        let deps = feed_fetcher::Deps::from_source(&env, &h.stack.sdk)
            .unwrap()
            .with_clock(h.clock.clone());
        let store = FetchProfileStore::new(
            aws_sdk_dynamodb::Client::new(&h.stack.sdk),
            h.stack.stack.table("PartnersTable"),
        );
        store
            .put(&FetchProfile {
                url: format!("{}/feeds/open", p.base),
                every_hours: None,
                daily_at: Some("06:30".into()),
                feed_version: 2,
                validation: Validation::Strict,
                ..super::profiles::profile(&h, "p2", 0)
            })
            .await
            .unwrap();
        let summary = feed_fetcher::handle(&deps, serde_json::json!({"source": "aws.events"}))
            .await
            .unwrap();
        assert_eq!((summary.due, summary.fetched), (1, 1), "{summary:?}");
        // the next one is tomorrow's (or today's) 06:30 UTC
        let next = store.get("p2").await.unwrap().unwrap().next_fetch_at;
        assert_eq!(next.format("%H:%M").to_string(), "06:30");
        // without the local allowance (as deployed), the sandbox's http URL
        // is refused before any connection
        let deployed =
            feed_fetcher::Deps::from_source(&h.env_of("FeedFetcherFunction"), &h.stack.sdk)
                .unwrap()
                .with_clock(h.clock.clone());
        h.clock.advance(Duration::days(1));
        let summary = feed_fetcher::handle(&deployed, serde_json::json!({}))
            .await
            .unwrap();
        assert_eq!((summary.due, summary.refused), (1, 1), "{summary:?}");
        assert_eq!(p.server.hits("open"), 1);
        // the refusal is audited: the partner's fetch, the host, the rule
        let trail = AuditStore::new(
            aws_sdk_dynamodb::Client::new(&h.stack.sdk),
            h.stack.stack.table("AuditTable"),
        )
        .list(100, None, h.now())
        .await
        .unwrap()
        .0;
        let refused: Vec<_> = trail
            .iter()
            .filter(|e| e.action == "feed fetch" && e.outcome.starts_with("refused"))
            .collect();
        assert_eq!(refused.len(), 1, "{trail:?}");
        assert!(refused[0].target.starts_with("p2/fx-"));
        assert!(
            refused[0].outcome.contains("scheme_not_allowed"),
            "{}",
            refused[0].outcome
        );
    }
}

/// Profiles set through the API, as a partner (its key) and an admin set
/// them, then fetched by the function as the template configures it, with
/// the sandbox feed server allowed as `make run` allows it.
mod api {
    use super::{CSV, partner_server};
    use crate::common::{Answer, Harness, error_code};
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use chrono::Duration;
    use flashcart_local::feed_server::{Expect, Feed, Mode};
    use http::{Method, Request};
    use serde_json::{Value, json};
    use shared::fetch::secrets::SecretStore;
    use std::net::SocketAddr;

    /// A stack that allows the feed server at `base`, and a partner made
    /// through the admin API: (its id, its key).
    async fn stack_and_partner(base: &str) -> (Harness, String, String) {
        let addr = base.trim_start_matches("http://").to_owned();
        let h = Harness::with_parameters(&[
            ("FetchAllowHttp", "1".to_owned()),
            ("FetchAllowedAddresses", addr),
        ])
        .await;
        let created = h
            .call(
                Method::POST,
                "/admin/partners",
                Some(&h.admin()),
                Some(json!({"name": "Fetched Goods", "feed_version": 1})),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
        let id = created.body["partner_id"].as_str().unwrap().to_owned();
        let key = created.body["api_key"].as_str().unwrap().to_owned();
        (h, id, key)
    }

    impl Harness {
        async fn keyed(
            &self,
            method: Method,
            path: &str,
            key: &str,
            body: Option<Value>,
        ) -> Answer {
            let mut req = Request::builder()
                .method(method)
                .uri(path)
                .header("x-api-key", key)
                .header("content-type", "application/json")
                .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
                .unwrap();
            req.extensions_mut()
                .insert(ConnectInfo(SocketAddr::from(([198, 51, 100, 9], 40000))));
            self.send(req).await
        }

        async fn run_fetcher(&self) -> shared::fetch::run::Summary {
            let deps = feed_fetcher::Deps::from_source(
                &self.env_of("FeedFetcherFunction"),
                &self.stack.sdk,
            )
            .unwrap()
            .with_clock(self.clock.clone());
            feed_fetcher::handle(&deps, json!({"source": "aws.events"}))
                .await
                .unwrap()
        }

        /// No item of the tables a partner's requests and fetches write
        /// holds `text`.
        async fn assert_in_no_table(&self, text: &str) {
            for table in ["PartnersTable", "AuditTable", "RequestsTable"] {
                let items = self
                    .dynamo()
                    .scan()
                    .table_name(self.stack.stack.table(table))
                    .send()
                    .await
                    .unwrap();
                assert!(!items.items().is_empty(), "{table} was written");
                assert!(
                    !format!("{:?}", items.items()).contains(text),
                    "{table} holds the secret"
                );
            }
        }

        fn secret_store(&self) -> SecretStore {
            let env = self.env_of("PartnerApiFunction");
            SecretStore::new(
                shared::aws::secrets_manager(&self.stack.sdk),
                env("SECRETS_PREFIX").unwrap(),
            )
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn urls_that_can_never_be_fetched_are_refused_when_saved_and_nothing_is_kept() {
        let p = partner_server().await;
        let (h, partner, key) = stack_and_partner(&p.base).await;
        for (url, reason) in [
            ("https://127.0.0.1/feed.csv", "address_not_allowed"),
            ("https://[::1]/feed.csv", "address_not_allowed"),
            ("https://10.0.0.1/feed.csv", "address_not_allowed"),
            ("https://172.16.0.1/feed.csv", "address_not_allowed"),
            ("https://192.168.1.1/feed.csv", "address_not_allowed"),
            (
                "https://169.254.169.254/latest/meta-data/",
                "address_not_allowed",
            ),
            ("https://0.0.0.0/feed.csv", "address_not_allowed"),
            ("https://2130706433/feed.csv", "address_not_allowed"),
            ("https://0177.0.0.1/feed.csv", "address_not_allowed"),
            ("https://0x7f.1/feed.csv", "address_not_allowed"),
            ("https://[::ffff:127.0.0.1]/feed.csv", "address_not_allowed"),
            ("https://[fd00:ec2::254]/feed.csv", "address_not_allowed"),
            ("https://100.64.0.1/feed.csv", "address_not_allowed"),
            ("ftp://feeds.example.com/feed.csv", "scheme_not_allowed"),
            ("file:///etc/passwd", "scheme_not_allowed"),
            (
                "https://feeds.example.com:8443/feed.csv",
                "port_not_allowed",
            ),
            (
                "https://user:pw@feeds.example.com/feed.csv",
                "credentials_in_url",
            ),
        ] {
            let a = h
                .keyed(
                    Method::PUT,
                    "/partner/fetch-profile",
                    &key,
                    Some(json!({"url": url, "schedule": {"every_hours": 6}, "format": "csv"})),
                )
                .await;
            assert_eq!(a.status, 422, "{url}: {}", a.body);
            assert_eq!(error_code(&a), "rule_violation");
            assert_eq!(a.body["details"]["rule"], "url_not_allowed", "{url}");
            assert_eq!(a.body["details"]["reason_code"], reason, "{url}");
        }
        // what does not check is the caller's 400, naming the field
        for (body, field) in [
            (
                json!({"url": "https://feeds.example.com/f.csv", "schedule": {"every_hours": 0}, "format": "csv"}),
                "schedule.every_hours",
            ),
            (
                json!({"url": "https://feeds.example.com/f.csv", "schedule": {"daily_at": "25:00"}, "format": "csv"}),
                "schedule.daily_at",
            ),
            (
                json!({"url": "https://feeds.example.com/f.csv", "schedule": {"every_hours": 1, "daily_at": "06:00"}, "format": "csv"}),
                "schedule",
            ),
            (
                json!({"url": "https://feeds.example.com/f.csv", "schedule": {"every_hours": 1}, "format": "pdf"}),
                "format",
            ),
            (
                json!({"url": "not a url", "schedule": {"every_hours": 1}, "format": "csv"}),
                "url",
            ),
            (
                json!({"url": "https://feeds.example.com/f.csv", "schedule": {"every_hours": 1}, "format": "csv", "auth": {"type": "basic", "secret": "pw"}}),
                "auth.username",
            ),
            (
                json!({"url": "https://feeds.example.com/f.csv", "schedule": {"every_hours": 1}, "format": "csv", "auth": {"type": "header", "header_name": "Host", "secret": "x"}}),
                "auth.header_name",
            ),
            (
                json!({"url": "https://feeds.example.com/f.csv", "schedule": {"every_hours": 1}, "format": "csv", "auth": {"type": "bearer", "secret": "line\r\nX-Evil: 1"}}),
                "auth.secret",
            ),
            (
                json!({"url": "https://feeds.example.com/f.csv", "schedule": {"every_hours": 1}, "format": "csv", "auth": {"type": "bearer"}}),
                "auth.secret",
            ),
            (
                json!({"url": "https://feeds.example.com/f.csv", "schedule": {"every_hours": 1}, "format": "csv", "auth": {"type": "none", "secret": "x"}}),
                "auth",
            ),
        ] {
            let a = h
                .keyed(
                    Method::PUT,
                    "/partner/fetch-profile",
                    &key,
                    Some(body.clone()),
                )
                .await;
            assert_eq!(a.status, 400, "{body}: {}", a.body);
            assert_eq!(a.body["details"]["field"], field, "{body}: {}", a.body);
        }
        let a = h
            .keyed(Method::GET, "/partner/fetch-profile", &key, None)
            .await;
        assert_eq!(a.status, 404, "{}", a.body);
        assert_eq!(h.run_fetcher().await.due, 0);
        // each refusal is in the audit trail, with the caller's key
        let audit = h
            .call(
                Method::GET,
                "/admin/audit?limit=200",
                Some(&h.admin()),
                None,
            )
            .await;
        let refused = audit.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["action"] == "PUT /partner/fetch-profile"
                    && e["outcome"] == "rule_violation"
                    && e["actor"]
                        == format!("partner:{partner}/key:{}", key.split('_').nth(1).unwrap())
            })
            .count();
        assert_eq!(refused, 17);
        // and no secret was stored for the refused saves that carried one
        assert!(h.secret_store().get(&partner).await.unwrap().is_none());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_partner_sets_its_profile_the_fetch_is_ingested_and_the_secret_goes_nowhere_else() {
        let captured = super::runs::capture();
        let p = partner_server().await;
        let (h, partner, key) = stack_and_partner(&p.base).await;
        let secret = "sk-live-7c1e-0d5a-feedtoken";
        p.server.put(
            "goods.csv",
            Feed {
                auth: Some(Expect {
                    header: "x-feed-token".into(),
                    value: secret.into(),
                }),
                ..Feed::csv(CSV)
            },
        );
        let url = format!("{}/feeds/goods.csv", p.base);
        let profile = json!({
            "url": url,
            "schedule": {"every_hours": 6},
            "format": "csv",
            "validation": "strict",
            "auth": {"type": "header", "header_name": "X-Feed-Token", "secret": secret},
        });
        let saved = h
            .keyed(
                Method::PUT,
                "/partner/fetch-profile",
                &key,
                Some(profile.clone()),
            )
            .await;
        assert_eq!(saved.status, 200, "{}", saved.body);
        let b = &saved.body;
        assert_eq!(
            (b["secret_set"].as_bool(), b["status"].as_str()),
            (Some(true), Some("active"))
        );
        assert_eq!(
            b["auth"],
            json!({"type": "header", "header_name": "X-Feed-Token"})
        );
        assert!(
            b["secret_changed_at"].is_string() && b["next_fetch_at"].is_string(),
            "{b}"
        );
        let changed_at = b["secret_changed_at"].clone();
        let shown = h
            .keyed(Method::GET, "/partner/fetch-profile", &key, None)
            .await;
        assert_eq!(shown.status, 200);
        assert_eq!(shown.body["url"], url);
        assert!(!shown.body.to_string().contains(secret));
        // in Secrets Manager, under the partner's name; nowhere in DynamoDB
        let stored = h.secret_store().get(&partner).await.unwrap().unwrap();
        assert_eq!(shared::config::ExposeSecret::expose_secret(&stored), secret);
        h.assert_in_no_table(secret).await;

        // the scheduled function fetches it; the ingest imports it, naming the fetch
        let s = h.run_fetcher().await;
        assert_eq!((s.due, s.fetched), (1, 1), "{s:?}");
        h.ingest_queued(&[]).await;
        let fetches = h
            .call(
                Method::GET,
                &format!("/admin/partners/{partner}/fetches"),
                Some(&h.admin()),
                None,
            )
            .await;
        assert_eq!(fetches.status, 200, "{}", fetches.body);
        let last = &fetches.body["items"][0];
        assert_eq!(
            (last["status"].as_str(), last["http_status"].as_u64()),
            (Some("fetched"), Some(200))
        );
        let feed_id = last["feed_id"].as_str().unwrap().to_owned();
        let feed = h
            .keyed(
                Method::GET,
                &format!("/partner/feeds/{feed_id}"),
                &key,
                None,
            )
            .await;
        assert_eq!(feed.status, 200, "{}", feed.body);
        assert_eq!(feed.body["status"], "completed", "{}", feed.body);
        let shown = h
            .keyed(Method::GET, "/partner/fetch-profile", &key, None)
            .await;
        assert_eq!(shown.body["last_fetch"]["fetch_id"], last["fetch_id"]);

        // saved again without a secret: the secret stands; with one: rotated,
        // and the next fetch (due at once after a save) sends the new one
        let mut again = profile.clone();
        again["auth"]["secret"] = Value::Null;
        let kept = h
            .keyed(Method::PUT, "/partner/fetch-profile", &key, Some(again))
            .await;
        assert_eq!(kept.status, 200, "{}", kept.body);
        assert_eq!(kept.body["secret_changed_at"], changed_at);
        // ...but not for another origin or another use: whoever holds the
        // key cannot have the stored secret sent to a server of theirs
        for (field, value) in [
            ("url", json!("https://collector.example.net/goods.csv")),
            ("auth", json!({"type": "bearer"})),
            (
                "auth",
                json!({"type": "header", "header_name": "X-Other-Token"}),
            ),
        ] {
            let mut moved = profile.clone();
            if field == "url" {
                moved["auth"]["secret"] = Value::Null;
            }
            moved[field] = value;
            let a = h
                .keyed(Method::PUT, "/partner/fetch-profile", &key, Some(moved))
                .await;
            assert_eq!(a.status, 400, "{field}: {}", a.body);
            assert_eq!(a.body["details"]["field"], "auth.secret");
        }
        let shown = h
            .keyed(Method::GET, "/partner/fetch-profile", &key, None)
            .await;
        assert_eq!(shown.body["url"], url, "a refused save changes nothing");
        let rotated_secret = "sk-live-rotated-91b2";
        p.server.put(
            "goods.csv",
            Feed {
                auth: Some(Expect {
                    header: "x-feed-token".into(),
                    value: rotated_secret.into(),
                }),
                ..Feed::csv(format!("{CSV}MUG-2,Red mug,9.50,EUR,1,kitchen\n"))
            },
        );
        let mut rotated = profile.clone();
        rotated["auth"]["secret"] = json!(rotated_secret);
        let r = h
            .keyed(Method::PUT, "/partner/fetch-profile", &key, Some(rotated))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_ne!(r.body["secret_changed_at"], changed_at);
        let s = h.run_fetcher().await;
        assert_eq!(s.fetched, 1, "{s:?}");
        h.assert_in_no_table(secret).await;
        h.assert_in_no_table(rotated_secret).await;

        // deleted: 204, the secret gone, and no fetch after it
        let hits = p.server.hits("goods.csv");
        let gone = h
            .keyed(Method::DELETE, "/partner/fetch-profile", &key, None)
            .await;
        assert_eq!(gone.status, 204);
        let again = h
            .keyed(Method::DELETE, "/partner/fetch-profile", &key, None)
            .await;
        assert_eq!(again.status, 204, "deleting twice is not an error");
        assert!(h.secret_store().get(&partner).await.unwrap().is_none());
        assert_eq!(
            h.keyed(Method::GET, "/partner/fetch-profile", &key, None)
                .await
                .status,
            404
        );
        h.clock.advance(Duration::days(2));
        assert_eq!(h.run_fetcher().await.due, 0);
        assert_eq!(p.server.hits("goods.csv"), hits);

        // no answer, audit record or log line held either secret
        let audit = h
            .call(
                Method::GET,
                "/admin/audit?limit=100",
                Some(&h.admin()),
                None,
            )
            .await;
        let trail = audit.body.to_string();
        assert!(
            trail.contains("/partner/fetch-profile"),
            "the saves are audited"
        );
        let fetches: Vec<&Value> = audit.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "feed fetch")
            .collect();
        assert_eq!(fetches.len(), 2, "every fetch is audited");
        let outcome = fetches[0]["outcome"].as_str().unwrap();
        assert!(
            outcome.starts_with("fetched (")
                && outcome.contains(" bytes in ")
                && outcome.ends_with(" ms)"),
            "{outcome}"
        );
        assert!(
            fetches[0]["target"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{partner}/fx-"))
        );
        assert_eq!(
            fetches[0]["source_ip"], "127.0.0.1",
            "the host fetched from"
        );
        let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
        for text in [&trail, &logs] {
            assert!(!text.contains(secret) && !text.contains(rotated_secret));
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn failures_pause_the_profile_the_partner_sees_why_and_a_save_resumes_it() {
        let p = partner_server().await;
        let (h, partner, key) = stack_and_partner(&p.base).await;
        p.server.put(
            "down.csv",
            Feed {
                mode: Mode::Fail,
                ..Feed::csv(CSV)
            },
        );
        // an admin sets the profile this time
        let admin = h.admin();
        let body = json!({
            "url": format!("{}/feeds/down.csv", p.base),
            "schedule": {"daily_at": "03:00"},
            "format": "csv",
        });
        let unknown = h
            .call(
                Method::PUT,
                "/admin/partners/nobody/fetch-profile",
                Some(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(unknown.status, 404, "{}", unknown.body);
        let saved = h
            .call(
                Method::PUT,
                &format!("/admin/partners/{partner}/fetch-profile"),
                Some(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(saved.status, 200, "{}", saved.body);
        assert_eq!(saved.body["secret_set"], false);
        // a daily profile is first due at its time: move there
        let due =
            chrono::DateTime::parse_from_rfc3339(saved.body["next_fetch_at"].as_str().unwrap())
                .unwrap()
                .with_timezone(&chrono::Utc);
        h.clock.advance(due - h.now() + Duration::seconds(1));
        let mut failed = 0;
        for _ in 0..shared::domain::fetch_profile::PAUSE_AFTER_FAILURES {
            let s = h.run_fetcher().await;
            failed += s.failed;
            // the back-off: 5, 10, 20, ... minutes; a day covers them all
            h.clock.advance(Duration::hours(3));
        }
        assert_eq!(
            failed as u32,
            shared::domain::fetch_profile::PAUSE_AFTER_FAILURES
        );
        let shown = h
            .keyed(Method::GET, "/partner/fetch-profile", &key, None)
            .await;
        assert_eq!(shown.body["status"], "paused", "{}", shown.body);
        assert!(shown.body["next_fetch_at"].is_null());
        let reason = shown.body["paused_reason"].as_str().unwrap();
        assert!(reason.contains("500"), "{reason}");
        assert_eq!(shown.body["last_fetch"]["status"], "failed");
        // paused: no fetch however long
        let hits = p.server.hits("down.csv");
        h.clock.advance(Duration::days(3));
        assert_eq!(h.run_fetcher().await.due, 0);
        assert_eq!(p.server.hits("down.csv"), hits);
        // the partner fixes its server and saves: active, due at its time
        p.server.put("down.csv", Feed::csv(CSV));
        let resumed = h
            .keyed(Method::PUT, "/partner/fetch-profile", &key, Some(body))
            .await;
        assert_eq!(
            (
                resumed.body["status"].as_str(),
                resumed.body["failures"].as_u64()
            ),
            (Some("active"), Some(0))
        );
        h.clock.advance(Duration::days(1));
        assert_eq!(h.run_fetcher().await.fetched, 1);
        let listed = h
            .call(
                Method::GET,
                &format!("/admin/partners/{partner}/fetches?limit=3"),
                Some(&admin),
                None,
            )
            .await;
        let items = listed.body["items"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0]["status"], "fetched");
        assert_eq!(items[1]["status"], "failed");
        // an admin's delete stops it too
        let gone = h
            .call(
                Method::DELETE,
                &format!("/admin/partners/{partner}/fetch-profile"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(gone.status, 204);
        assert_eq!(
            h.keyed(Method::GET, "/partner/fetch-profile", &key, None)
                .await
                .status,
            404
        );
    }

    /// The feed server's own control route, as the README uses it.
    #[tokio::test]
    async fn the_sandbox_feed_server_is_changed_from_the_command_line() {
        let p = partner_server().await;
        let http = reqwest::Client::new();
        let url = format!("{}/feeds/cli.csv", p.base);
        let put = |mode: &str, body: &str| {
            http.put(format!("{url}?mode={mode}"))
                .header("content-type", "text/csv")
                .body(body.to_owned())
                .send()
        };
        assert_eq!(put("serve", CSV).await.unwrap().status(), 200);
        let got = http.get(&url).send().await.unwrap();
        let etag = got.headers()["etag"].to_str().unwrap().to_owned();
        assert_eq!(got.text().await.unwrap(), CSV);
        assert_eq!(put("fail", "").await.unwrap().status(), 200);
        assert_eq!(http.get(&url).send().await.unwrap().status(), 500);
        // an empty body changes the mode only: the same content, the same ETag
        put("serve", "").await.unwrap();
        let got = http.get(&url).send().await.unwrap();
        assert_eq!(got.headers()["etag"].to_str().unwrap(), etag);
        assert_eq!(got.text().await.unwrap(), CSV);
        assert_eq!(put("sideways", CSV).await.unwrap().status(), 400);
        let changed = format!("{CSV}MUG-2,Red mug,9.50,EUR,1,kitchen\n");
        put("serve", &changed).await.unwrap();
        let got = http
            .get(&url)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200, "a changed feed is not a 304");
    }
}
