//! flash-checkout: `POST /flash-sales/{sale_id}/checkout`. Reads the request,
//! runs the flash checkout use case (`shared::checkout`: a random stock shard
//! of the sale, the buyer's limit in the same transaction, "sold out" from
//! memory once seen), writes the answer.

use lambda_http::{Body, Request, Response};
use shared::checkout::Checkout;
use shared::clock::SharedClock;
use shared::config::{CheckoutConfig, ConfigError, Source};
use shared::http::{RequestInfo, attempt, checkout_answer, path_param};
use tracing::Instrument;

pub const FUNCTION: &str = "flash-checkout";

pub struct Deps {
    checkout: Checkout,
    clock: SharedClock,
}

impl Deps {
    pub fn from_source(
        src: &dyn Source,
        sdk: &shared::aws::SdkConfig,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            checkout: Checkout::new(CheckoutConfig::from_source(src)?, sdk),
            clock: shared::clock::system(),
        })
    }

    /// The same function on another clock (tests move time instead of sleeping).
    pub fn with_clock(self, clock: SharedClock) -> Self {
        Self { clock, ..self }
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    let started = std::time::Instant::now();
    let info = RequestInfo::of(&req);
    let span = info.span();
    async {
        let origins = &deps.checkout.config().http.allowed_origins;
        let result = match (attempt(&req, &info, origins), path_param(&req, "sale_id")) {
            (Ok(attempt), Ok(sale_id)) => {
                tracing::Span::current().record("sale_id", sale_id.as_str());
                deps.checkout
                    .flash(&sale_id, &attempt, deps.clock.now())
                    .await
                    .map_err(Into::into)
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        Ok(checkout_answer(FUNCTION, &info, result, started))
    }
    .instrument(span)
    .await
}
