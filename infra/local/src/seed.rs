//! Demo data for `make run`: a catalog, one active flash sale, two partners,
//! one of them publishing its feed on the sandbox feed server with a fetch
//! profile pointing at it.
//! Written through the same stores the functions use, so it obeys the same
//! rules; running it twice changes nothing.

use aws_config::SdkConfig;
use chrono::{Duration, Utc};
use shared::domain::api_key::ApiKey;
use shared::domain::flash_sale::NewFlashSale;
use shared::domain::money::Money;
use shared::domain::product::ProductInput;
use shared::feeds::import::Validation;
use shared::store::catalog::CatalogStore;
use shared::store::flash_sales::{CreateSaleError, FlashSaleStore};
use shared::store::partners::{ApiKeyRecord, CreatePartnerError, Partner, PartnerStore};

use crate::bootstrap::Stack;
use crate::feed_server::{Expect, Feed, FeedServer};
use shared::config::FetchSettings;
use shared::feeds::FeedVersion;
use shared::feeds::contract;
use shared::fetch::profiles::{ProfileInput, ProfileService};

pub const DEMO_SALE: &str = "demo-flash";
pub const DEMO_SALE_SKU: &str = "HEADPHONES-X1";
pub const DEMO_PARTNER: &str = "demo-partner";
/// Local only: the demo partner's key, printed by `make run`.
pub const DEMO_PARTNER_KEY: &str = "fc_demopartner01_localonlydemosecret0000000000000000";
/// (partner id, name, API key, default feed version, default validation):
/// one partner on version 1 and lenient feeds, one on version 2 and strict.
pub const PARTNERS: &[(&str, &str, &str, u8, Validation)] = &[
    (
        DEMO_PARTNER,
        "Demo Partner",
        DEMO_PARTNER_KEY,
        1,
        Validation::Lenient,
    ),
    (
        "acme-outdoor",
        "Acme Outdoor",
        "fc_acmeoutdoor01_localonlyacmesecret0000000000000000",
        2,
        Validation::Strict,
    ),
];

/// (sku, name, category, price in cents, stock)
const CATALOG: &[(&str, &str, &str, i64, i64)] = &[
    (
        "HEADPHONES-X1",
        "Noise-cancelling headphones X1",
        "audio",
        19900,
        1000,
    ),
    ("SPEAKER-MINI", "Mini bluetooth speaker", "audio", 3900, 250),
    ("EARBUDS-S", "Sport earbuds", "audio", 5900, 300),
    ("TURNTABLE-2", "Belt-drive turntable", "audio", 24900, 40),
    ("MUG-BLUE", "Blue stoneware mug", "kitchen", 1299, 500),
    ("KETTLE-STEEL", "Steel kettle 1.7 l", "kitchen", 4500, 120),
    ("KNIFE-CHEF", "Chef's knife 20 cm", "kitchen", 7900, 80),
    ("PAN-CAST", "Cast-iron pan 28 cm", "kitchen", 5400, 60),
    ("GRINDER-BURR", "Burr coffee grinder", "kitchen", 8900, 45),
    (
        "BOOK-RUST",
        "The Rust Programming Language",
        "books",
        3999,
        200,
    ),
    (
        "BOOK-DDIA",
        "Designing Data-Intensive Applications",
        "books",
        4599,
        150,
    ),
    (
        "BOOK-SRE",
        "Site Reliability Engineering",
        "books",
        4200,
        90,
    ),
    ("TENT-2P", "Two-person tent", "outdoor", 18900, 30),
    ("BOTTLE-1L", "Insulated bottle 1 l", "outdoor", 2900, 400),
    ("HEADLAMP-300", "Headlamp 300 lm", "outdoor", 3400, 150),
    ("BACKPACK-30", "Hiking backpack 30 l", "outdoor", 8900, 70),
    ("LAMP-DESK", "LED desk lamp", "home", 4900, 110),
    ("PLANT-POT", "Ceramic plant pot", "home", 1900, 260),
    ("BLANKET-WOOL", "Wool blanket", "home", 7900, 55),
    ("CLOCK-WALL", "Wall clock", "home", 2900, 95),
    ("PUZZLE-1000", "1000-piece puzzle", "toys", 2400, 180),
    ("BLOCKS-STEM", "STEM building blocks", "toys", 4900, 140),
    ("KITE-DELTA", "Delta kite", "toys", 2200, 75),
    ("CARDS-GAME", "Card game for four", "toys", 1500, 320),
];

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("seed product {0}: {1}")]
    Product(String, String),
    #[error("seed flash sale: {0}")]
    Sale(String),
    #[error("seed partner: {0}")]
    Partner(String),
}

/// What was seeded, for the startup banner.
#[derive(Debug)]
pub struct Seeded {
    pub products: usize,
    pub sale_id: String,
    /// (partner id, API key)
    pub partners: Vec<(String, String)>,
    /// Whether acme-outdoor's fetch profile is there.
    pub fetched: bool,
}

/// The partner whose feed is fetched, the header its server asks for, and
/// that header's value (local only; it lives in the emulator's Secrets
/// Manager, as a real one would in AWS's).
pub const FETCHED_PARTNER: &str = "acme-outdoor";
pub const FETCH_HEADER: &str = "X-Feed-Token";
pub const FETCH_TOKEN: &str = "local-only-feed-token";

/// Where the sandbox feed server is, and what a fetch may reach locally.
pub struct FeedSandbox<'a> {
    pub server: &'a FeedServer,
    pub base_url: &'a str,
    pub fetch: FetchSettings,
}

/// `acme-outdoor` publishes a valid version 2 feed at
/// `<sandbox>/feeds/acme-outdoor.csv`, behind a token header, and its fetch
/// profile (every hour, due at once) points there; saved through the same
/// service the partner API uses, so the token goes to Secrets Manager. A
/// profile already pointing there is left as it is (one pointing at another
/// port, from an emulator that outlived an earlier run, is saved again).
async fn seed_fetch(
    stack: &Stack,
    sdk: &SdkConfig,
    sandbox: &FeedSandbox<'_>,
    now: chrono::DateTime<Utc>,
) -> Result<(), SeedError> {
    let failed = |e: String| SeedError::Partner(format!("{FETCHED_PARTNER}'s fetch profile: {e}"));
    let (_, body) = contract::example(FeedVersion::V2, "csv")
        .ok_or_else(|| failed("no example feed".into()))?;
    let name = format!("{FETCHED_PARTNER}.csv");
    sandbox.server.put(
        &name,
        Feed {
            auth: Some(Expect {
                header: FETCH_HEADER.into(),
                value: FETCH_TOKEN.into(),
            }),
            ..Feed::csv(body)
        },
    );
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let service = ProfileService::new(
        dynamo.clone(),
        stack.table("PartnersTable"),
        shared::aws::secrets_manager(sdk),
        &sandbox.fetch,
    );
    let url = format!("{}/feeds/{name}", sandbox.base_url);
    let existing = service
        .profiles
        .get(FETCHED_PARTNER)
        .await
        .map_err(|e| failed(e.to_string()))?;
    if existing.is_some_and(|p| reqwest::Url::parse(&p.url).ok() == reqwest::Url::parse(&url).ok())
    {
        return Ok(());
    }
    let partner = PartnerStore::new(dynamo, stack.table("PartnersTable"))
        .get(FETCHED_PARTNER)
        .await
        .map_err(|e| failed(e.to_string()))?
        .ok_or_else(|| failed("the partner is not there".into()))?;
    let input: ProfileInput = serde_json::from_value(serde_json::json!({
        "url": url,
        "schedule": {"every_hours": 1},
        "format": "csv",
        "auth": {"type": "header", "header_name": FETCH_HEADER, "secret": FETCH_TOKEN},
    }))
    .map_err(|e| failed(e.to_string()))?;
    service
        .save(&partner, input, now)
        .await
        .map_err(|e| failed(e.to_string()))?;
    Ok(())
}

pub async fn seed(
    stack: &Stack,
    sdk: &SdkConfig,
    feeds: Option<&FeedSandbox<'_>>,
) -> Result<Seeded, SeedError> {
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let catalog = CatalogStore::new(dynamo.clone(), stack.table("CatalogTable"));
    let now = Utc::now();
    for (sku, name, category, cents, stock) in CATALOG {
        let input = ProductInput {
            name: (*name).to_owned(),
            description: format!("Demo product: {name}."),
            price: Money {
                amount: *cents,
                currency: "EUR".into(),
            },
            category: (*category).to_owned(),
            stock: *stock,
        };
        input
            .validate()
            .map_err(|e| SeedError::Product((*sku).into(), e.to_string()))?;
        if catalog
            .get(sku)
            .await
            .map_err(|e| SeedError::Product((*sku).into(), e.to_string()))?
            .is_some()
        {
            continue; // keep stock already sold or moved into the sale
        }
        catalog
            .put(&input.into_product((*sku).to_owned(), now, now))
            .await
            .map_err(|e| SeedError::Product((*sku).into(), e.to_string()))?;
    }

    let sales = FlashSaleStore::new(dynamo.clone(), stack.table("FlashSalesTable"), catalog);
    let sale = NewFlashSale {
        sale_id: Some(DEMO_SALE.into()),
        sku: DEMO_SALE_SKU.into(),
        price: Money {
            amount: 9900,
            currency: "EUR".into(),
        },
        quantity: 200,
        starts_at: now - Duration::minutes(1),
        ends_at: now + Duration::days(7),
        per_user_limit: 2,
        shards: Some(8),
    };
    sale.validate(now)
        .map_err(|e| SeedError::Sale(e.to_string()))?;
    match sales.create(&sale.into_sale(DEMO_SALE.into(), now)).await {
        Ok(()) | Err(CreateSaleError::AlreadyExists(_)) => {}
        Err(e) => return Err(SeedError::Sale(e.to_string())),
    }

    let partners = PartnerStore::new(dynamo, stack.table("PartnersTable"));
    for (partner_id, name, presented, feed_version, validation) in PARTNERS {
        let key = ApiKey::parse(presented)
            .ok_or_else(|| SeedError::Partner(format!("{partner_id}: the key is malformed")))?;
        let created = partners
            .create(
                &Partner {
                    partner_id: (*partner_id).into(),
                    name: (*name).into(),
                    created_at: now,
                    feed_version: *feed_version,
                    validation: *validation,
                },
                &ApiKeyRecord {
                    key_id: key.key_id.clone(),
                    partner_id: (*partner_id).into(),
                    secret_hash: key.secret_hash(),
                    created_at: now,
                    revoked_at: None,
                },
            )
            .await;
        match created {
            Ok(()) | Err(CreatePartnerError::AlreadyExists(_)) => {}
            Err(e) => return Err(SeedError::Partner(e.to_string())),
        }
    }

    // the fetch profile is a demo of its own: a run whose parameters forbid
    // reaching the sandbox (FLASHCART_PARAMETERS) starts without it
    let fetched = match feeds {
        Some(sandbox) => match seed_fetch(stack, sdk, sandbox, now).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "no fetch profile seeded");
                false
            }
        },
        None => false,
    };

    Ok(Seeded {
        products: CATALOG.len(),
        sale_id: DEMO_SALE.into(),
        partners: PARTNERS
            .iter()
            .map(|(id, _, key, _, _)| ((*id).to_owned(), (*key).to_owned()))
            .collect(),
        fetched,
    })
}
