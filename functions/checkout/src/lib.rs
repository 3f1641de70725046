//! checkout: `POST /checkout`. Reads the request, runs the cart checkout use
//! case (`shared::checkout`), writes the answer: 202 with the order, or the
//! error in the documented shape.

use lambda_http::{Body, Request, Response};
use shared::checkout::Checkout;
use shared::http::{RequestInfo, attempt, checkout_answer};
use tracing::Instrument;

pub const FUNCTION: &str = "checkout";

/// What the function holds for its life: the checkout use case, built once.
pub type Deps = Checkout;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    let started = std::time::Instant::now();
    let info = RequestInfo::of(&req);
    let span = info.span();
    async {
        let origins = &deps.config().http.allowed_origins;
        let result = match attempt(&req, &info, origins) {
            Ok(attempt) => deps.cart(&attempt, deps.now()).await.map_err(Into::into),
            Err(e) => Err(e),
        };
        Ok(checkout_answer(FUNCTION, &info, result, started))
    }
    .instrument(span)
    .await
}
