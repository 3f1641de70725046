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
    struct Captured(Arc<Mutex<Vec<u8>>>);

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
    fn capture() -> Captured {
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
        // without the local allowance, the sandbox is a loopback address
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
    }
}
