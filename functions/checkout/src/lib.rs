//! checkout: `POST /checkout`. Reads the request, runs the cart checkout use
//! case (`shared::checkout`), writes the answer: 202 with the order, or the
//! error in the documented shape.

use lambda_http::{Body, Request, Response};
use shared::checkout::Checkout;
use shared::clock::SharedClock;
use shared::config::{CheckoutConfig, ConfigError, Source};
use shared::http::{RequestInfo, attempt, checkout_answer};
use tracing::Instrument;

pub const FUNCTION: &str = "checkout";

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
        let result = match attempt(&req, &info, origins) {
            Ok(attempt) => deps
                .checkout
                .cart(&attempt, deps.clock.now())
                .await
                .map_err(Into::into),
            Err(e) => Err(e),
        };
        Ok(checkout_answer(FUNCTION, &info, result, started))
    }
    .instrument(span)
    .await
}
