//! The JSON APIs behind `/gateway.do`: read `biz_content`, run the trade rules, return the
//! answer object. Writing, signing and fault injection happen in `router.rs`.

use alipay_openapi::GatewayRequest;
use chrono::{DateTime, FixedOffset};

use crate::answer::Fields;
use crate::biz;
use crate::checks::Accepted;
use crate::codes::Failure;
use crate::model::Product;
use crate::shared::Shared;
use crate::trades::{self, Ctx};

/// Run a checked JSON API request and return its answer object.
pub fn answer(
    shared: &Shared,
    accepted: &Accepted<'_>,
    request: &GatewayRequest,
    now: DateTime<FixedOffset>,
) -> Fields {
    let ctx = Ctx {
        app: accepted.app,
        now,
    };
    let biz = &accepted.biz;
    let result = match accepted.method.as_str() {
        "alipay.trade.query" => biz::trade_ref(biz).and_then(|target| {
            let options = biz::query_options(biz)?;
            Ok(shared.read(|s| trades::query(s, &ctx, &target, &options)))
        }),
        "alipay.trade.refund" => {
            biz::refund(biz).map(|input| shared.mutate(|s| trades::refund(s, &ctx, &input)))
        }
        "alipay.trade.fastpay.refund.query" => biz::trade_ref(biz).and_then(|target| {
            let out_request_no = biz::out_request_no(biz)?;
            let options = biz::query_options(biz)?;
            Ok(shared.read(|s| trades::refund_query(s, &ctx, &target, &out_request_no, &options)))
        }),
        "alipay.trade.close" => {
            biz::trade_ref(biz).map(|target| shared.mutate(|s| trades::close(s, &ctx, &target)))
        }
        "alipay.trade.precreate" => {
            biz::new_order(request, biz, Product::Precreate, accepted.sign_type)
                .map(|order| shared.mutate(|s| trades::precreate(s, &ctx, order, &shared.base_url)))
        }
        // `checks` only lets known methods through; page APIs never come here.
        _ => Err(Failure::invalid_method()),
    };
    result.unwrap_or_else(|failure| not_processed(&failure, accepted))
}

/// The answer for a request that was not carried out: the failure, plus the order it named.
pub fn not_processed(failure: &Failure, accepted: &Accepted<'_>) -> Fields {
    let mut f = Fields::failure(failure);
    f.opt("out_trade_no", biz::named_order(&accepted.biz).as_deref());
    f
}
