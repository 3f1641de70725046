//! flash-checkout: `POST /flash-sales/{sale_id}/checkout`. Reads the request,
//! runs the flash checkout use case (`shared::checkout`: a random stock shard
//! of the sale, the buyer's limit in the same transaction, "sold out" from
//! memory once seen), writes the answer.

use lambda_http::{Body, Request, Response};
use shared::checkout::Checkout;
use shared::http::{RequestInfo, attempt, checkout_answer, path_param};
use tracing::Instrument;

pub const FUNCTION: &str = "flash-checkout";

/// What the function holds for its life: the checkout use case, built once.
pub type Deps = Checkout;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    let started = std::time::Instant::now();
    let info = RequestInfo::of(&req);
    let span = info.span();
    async {
        let origins = &deps.config().http.allowed_origins;
        let result = match (attempt(&req, &info, origins), path_param(&req, "sale_id")) {
            (Ok(attempt), Ok(sale_id)) => {
                tracing::Span::current().record("sale_id", sale_id.as_str());
                deps.flash(&sale_id, &attempt, deps.now())
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
