//! The JSON APIs behind `/gateway.do`: read `biz_content`, run the trade rules (or make a
//! bill), return the answer object. Writing, signing and fault injection happen in `router.rs`.

use alipay_openapi::{
    AipayTradePrecreate, ApiRequest, BillDownloadUrlQuery, BillDownloadUrlQueryResponse,
    GatewayRequest, RefundQuery, TradeClose, TradePrecreate, TradeQuery, TradeRefund,
};
use chrono::{DateTime, FixedOffset};

use crate::answer::Fields;
use crate::bill_links::Download;
use crate::biz::{self, Moments};
use crate::checks::Accepted;
use crate::codes::Failure;
use crate::model::Product;
use crate::shared::{Shared, lock};
use crate::trades::{self, Ctx};
use crate::{bill_query, bill_zip, bills, ids};

/// What carries out one JSON API: the trade rules, or the failure of its `biz_content`.
type Handler = fn(&Shared, &Ctx<'_>, &Accepted<'_>, &GatewayRequest) -> Result<Fields, Failure>;

/// The JSON APIs, each named by `alipay-openapi`'s `ApiRequest::METHOD`.
const APIS: [(&str, Handler); 7] = [
    (<TradeQuery as ApiRequest>::METHOD, query),
    (<TradeRefund as ApiRequest>::METHOD, refund),
    (<RefundQuery as ApiRequest>::METHOD, refund_query),
    (<TradeClose as ApiRequest>::METHOD, close),
    (<TradePrecreate as ApiRequest>::METHOD, precreate),
    (<AipayTradePrecreate as ApiRequest>::METHOD, agent_precreate),
    (
        <BillDownloadUrlQuery as ApiRequest>::METHOD,
        bill_download_url,
    ),
];

/// The `method`s of the JSON APIs (the page APIs are `checks::PAGE_METHODS`).
pub(crate) const JSON_METHODS: [&str; APIS.len()] = {
    let mut methods = [""; APIS.len()];
    let mut i = 0;
    while i < APIS.len() {
        methods[i] = APIS[i].0;
        i += 1;
    }
    methods
};

/// Run a checked JSON API request and return its answer object. Expiries up to `now` are
/// applied first, so a query, refund or close sees a trade whose time ran out as closed.
pub(crate) fn answer(
    shared: &Shared,
    accepted: &Accepted<'_>,
    request: &GatewayRequest,
    now: DateTime<FixedOffset>,
) -> Fields {
    crate::expiry::catch_up(shared, &now);
    let ctx = Ctx {
        app: accepted.app,
        now,
    };
    let result = match APIS.iter().find(|(method, _)| *method == accepted.method) {
        Some((_, handler)) => handler(shared, &ctx, accepted, request),
        // `checks` only lets known methods through; page APIs never come here.
        None => Err(Failure::invalid_method()),
    };
    result.unwrap_or_else(|failure| not_processed(&failure, accepted))
}

fn query(
    shared: &Shared,
    ctx: &Ctx<'_>,
    accepted: &Accepted<'_>,
    _: &GatewayRequest,
) -> Result<Fields, Failure> {
    let target = biz::trade_ref(&accepted.biz)?;
    let options = biz::query_options(&accepted.biz)?;
    Ok(shared.read(|s| trades::query(s, ctx, &target, &options)))
}

fn refund(
    shared: &Shared,
    ctx: &Ctx<'_>,
    accepted: &Accepted<'_>,
    _: &GatewayRequest,
) -> Result<Fields, Failure> {
    let input = biz::refund(&accepted.biz)?;
    Ok(shared.mutate(|s| trades::refund(s, ctx, &input)))
}

fn refund_query(
    shared: &Shared,
    ctx: &Ctx<'_>,
    accepted: &Accepted<'_>,
    _: &GatewayRequest,
) -> Result<Fields, Failure> {
    let target = biz::trade_ref(&accepted.biz)?;
    let out_request_no = biz::out_request_no(&accepted.biz)?;
    let options = biz::query_options(&accepted.biz)?;
    Ok(shared.read(|s| trades::refund_query(s, ctx, &target, &out_request_no, &options)))
}

fn close(
    shared: &Shared,
    ctx: &Ctx<'_>,
    accepted: &Accepted<'_>,
    _: &GatewayRequest,
) -> Result<Fields, Failure> {
    let target = biz::trade_ref(&accepted.biz)?;
    Ok(shared.mutate(|s| trades::close(s, ctx, &target)))
}

fn precreate(
    shared: &Shared,
    ctx: &Ctx<'_>,
    accepted: &Accepted<'_>,
    request: &GatewayRequest,
) -> Result<Fields, Failure> {
    // Handled at once: `time_expire` is held against the emulator's now, as Alipay holds it
    // against its own.
    let at = Moments {
        issued: ctx.now,
        now: ctx.now,
    };
    let order = biz::new_order(
        request,
        &accepted.biz,
        Product::Precreate,
        accepted.sign_type,
        at,
    )?;
    Ok(shared.mutate(|s| trades::precreate(s, ctx, order, &shared.base_url)))
}

/// `alipay.aipay.trade.precreate` (智易收): the order, then the same trade machine as precreate.
fn agent_precreate(
    shared: &Shared,
    ctx: &Ctx<'_>,
    accepted: &Accepted<'_>,
    request: &GatewayRequest,
) -> Result<Fields, Failure> {
    // Handled at once, as precreate.
    let at = Moments {
        issued: ctx.now,
        now: ctx.now,
    };
    let order = biz::agent_order(request, &accepted.biz, accepted.sign_type, at)?;
    Ok(shared.mutate(|s| trades::precreate(s, ctx, order, &shared.base_url)))
}

/// `alipay.data.dataservice.bill.downloadurl.query`: the checks (`bill_query`), then the bill of
/// that day or month made now and a one-shot link to its zip (`bill_links`), with
/// `bill_file_code: EMPTY_DATA_WITH_BILL_FILE` when the period had no business (the link still
/// serves a bill, with headers and zero totals).
fn bill_download_url(
    shared: &Shared,
    ctx: &Ctx<'_>,
    accepted: &Accepted<'_>,
    _: &GatewayRequest,
) -> Result<Fields, Failure> {
    let query = bill_query::read(&accepted.biz, &ctx.now)?;
    let bill = shared.read(|s| bills::generate(s, ctx.app, query, &ctx.now));
    let zip = bill_zip::zip(&bill.files, &ctx.now).map_err(|e| {
        tracing::error!("cannot write the bill's zip: {e}");
        Failure::for_sub_code("isp.unknow-error")
    })?;
    let token = ids::bill_token();
    let url = format!("{}/bill/{token}", shared.base_url);
    lock(&shared.bill_links).issue(
        token,
        ctx.now,
        Download {
            file_name: bill.download_name,
            zip,
        },
    );
    let mut f = Fields::success();
    f.str("bill_download_url", &url);
    if bill.empty {
        f.str("bill_file_code", BillDownloadUrlQueryResponse::EMPTY);
    }
    Ok(f)
}

/// The answer for a request that was not carried out: the failure, plus the order it named.
pub(crate) fn not_processed(failure: &Failure, accepted: &Accepted<'_>) -> Fields {
    let mut f = Fields::failure(failure);
    f.opt("out_trade_no", biz::named_order(&accepted.biz).as_deref());
    f
}
