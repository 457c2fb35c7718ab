//! The buyer's side of a payment: opening a page-pay link (`alipay.trade.wap.pay` /
//! `alipay.trade.page.pay`), opening a cashier URL (`/qr/{token}`, what a phone reaches by
//! scanning, or a 智易收 order's `pay_url`), its QR image (`GET /qr/{token}/pic.png`, a 智易收
//! order's `pic_url`), and the cashier's pay button (`POST /cashier/{token}/pay`).
//!
//! Opening a cashier counts as the buyer engaging (ALIPAY-PROTOCOL §2.8.2: the trade is created
//! when the payer scans or logs in): the trade then exists as `WAIT_BUYER_PAY`. A link that was
//! built but never opened leaves no trade, so `alipay.trade.query` answers `ACQ.TRADE_NOT_EXIST`.
//!
//! Expiry: a `time_expire` already over when the link was signed (by its `timestamp`, or now if
//! earlier), or more than 15 days out, is `ACQ.INVALID_PARAMETER`; one that ran out while the link
//! waited to be opened is enforced (`ACQ.TRADE_HAS_CLOSE`, nothing is created). The cashier and
//! its pay button refuse an expired order the same way.

use std::sync::Arc;

use alipay_openapi::{GatewayRequest, PayKind};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, FixedOffset};

use crate::biz::{self, Moments};
use crate::cashier::{self, CashierView};
use crate::checks::Accepted;
use crate::codes::Failure;
use crate::model::{Product, yuan};
use crate::notice;
use crate::shared::Shared;
use crate::trades::{self, Ctx, TransitionError};

/// What a page-pay link open produced, for the request log.
pub(crate) struct LinkOutcome {
    pub response: Response,
    pub failure: Option<Failure>,
}

/// Alipay's error page (HTTP 200, as Alipay serves it).
pub(crate) fn error_response(failure: &Failure) -> Response {
    Html(cashier::error_page(&failure.sub_code, &failure.sub_msg)).into_response()
}

/// A checked page-pay request: register (or re-enter) the order, open its trade, show the cashier.
pub(crate) fn open_link(
    shared: &Shared,
    accepted: &Accepted<'_>,
    request: &GatewayRequest,
    now: DateTime<FixedOffset>,
) -> LinkOutcome {
    let Some(product) = PayKind::from_method(&accepted.method).and_then(Product::from_kind) else {
        return failed(Failure::invalid_method());
    };
    crate::expiry::catch_up(shared, &now);
    // The request's `timestamp` passed the common checks, so it parses; the fallback is moot.
    let issued = request
        .non_empty("timestamp")
        .and_then(alipay_openapi::time::parse_timestamp)
        .unwrap_or(now);
    let at = Moments { issued, now };
    let order = match biz::new_order(request, &accepted.biz, product, accepted.sign_type, at) {
        Ok(order) => order,
        Err(failure) => return failed(failure),
    };
    let out_trade_no = order.out_trade_no.clone();
    let ctx = Ctx {
        app: accepted.app,
        now,
    };
    let opened = shared.mutate(|store| {
        let token = trades::register_order(store, &ctx, order)?;
        trades::scan(store, &ctx, &out_trade_no).map_err(transition_failure)?;
        Ok(token)
    });
    match opened {
        Ok(token) => LinkOutcome {
            response: render_cashier(shared, &token, product == Product::Page),
            failure: None,
        },
        Err(failure) => failed(failure),
    }
}

fn failed(failure: Failure) -> LinkOutcome {
    LinkOutcome {
        response: error_response(&failure),
        failure: Some(failure),
    }
}

fn transition_failure(e: TransitionError) -> Failure {
    match e {
        TransitionError::NoOrder => Failure::business("ACQ.TRADE_NOT_EXIST"),
        TransitionError::NotAllowed { failure, .. } => failure,
    }
}

/// The cashier of the order with this token (desktop layout with a QR code, or phone layout).
fn render_cashier(shared: &Shared, token: &str, desktop: bool) -> Response {
    let pay_action = format!("/cashier/{token}/pay");
    let mobile_url = trades::cashier_url(&shared.base_url, token);
    shared.read(|store| {
        let Some(order) = store
            .key_by_token(token)
            .and_then(|(app, no)| store.order(&app, &no))
        else {
            return error_response(&Failure::business("ACQ.TRADE_NOT_EXIST"));
        };
        let amount = yuan(order.total_fen);
        let html = cashier::cashier_page(&CashierView {
            product: order.product,
            subject: &order.subject,
            body: order.body.as_deref(),
            amount: &amount,
            app_id: &order.app_id,
            out_trade_no: &order.out_trade_no,
            trade_no: order.trade.as_ref().map(|t| t.trade_no.as_str()),
            agent: order.agent.as_ref(),
            pay_action: &pay_action,
            mobile_url: &mobile_url,
            desktop,
        });
        Html(html).into_response()
    })
}

fn order_key(shared: &Shared, token: &str) -> Option<(String, String)> {
    shared.read(|s| s.key_by_token(token))
}

/// `GET /qr/{token}`: the phone cashier, reached by scanning a page-pay or precreate QR code.
pub(crate) async fn qr(State(shared): State<Arc<Shared>>, Path(token): Path<String>) -> Response {
    let Some((app_id, out_trade_no)) = order_key(&shared, &token) else {
        return (
            StatusCode::NOT_FOUND,
            error_response(&Failure::business("ACQ.TRADE_NOT_EXIST")),
        )
            .into_response();
    };
    let Some(app) = shared.apps.get(&app_id) else {
        return error_response(&Failure::invalid_app_id());
    };
    let ctx = Ctx {
        app,
        now: shared.clock.now(),
    };
    crate::expiry::catch_up(&shared, &ctx.now);
    match shared.mutate(|s| trades::scan(s, &ctx, &out_trade_no)) {
        Ok(()) => render_cashier(&shared, &token, false),
        Err(e) => error_response(&transition_failure(e)),
    }
}

/// `GET /qr/{token}/pic.png`: a PNG of the QR code of the order's phone cashier (`/qr/{token}`).
/// Only an image: fetching it opens nothing and creates no trade; the cashier it leads to is
/// what refuses an expired or paid order.
pub(crate) async fn qr_image(
    State(shared): State<Arc<Shared>>,
    Path(token): Path<String>,
) -> Response {
    if order_key(&shared, &token).is_none() {
        return (
            StatusCode::NOT_FOUND,
            error_response(&Failure::business("ACQ.TRADE_NOT_EXIST")),
        )
            .into_response();
    }
    match cashier::qr_png(&trades::cashier_url(&shared.base_url, &token)) {
        Some(png) => ([(header::CONTENT_TYPE, "image/png")], png).into_response(),
        // A token and a loopback address always fit in a QR code.
        None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `POST /cashier/{token}/pay`: the buyer pays. Then back to the merchant's `return_url` with
/// the signed return parameters (§3.4), or a paid page when there is none.
pub(crate) async fn pay(State(shared): State<Arc<Shared>>, Path(token): Path<String>) -> Response {
    let Some((app_id, out_trade_no)) = order_key(&shared, &token) else {
        return (
            StatusCode::NOT_FOUND,
            error_response(&Failure::business("ACQ.TRADE_NOT_EXIST")),
        )
            .into_response();
    };
    let Some(app) = shared.apps.get(&app_id) else {
        return error_response(&Failure::invalid_app_id());
    };
    let now = shared.clock.now();
    crate::expiry::catch_up(&shared, &now);
    let ctx = Ctx { app, now };
    let paid = shared.mutate(|s| trades::pay(s, &ctx, &out_trade_no));
    match paid {
        Ok(()) => {}
        // A second click on a paid order lands on the paid page again.
        Err(TransitionError::NotAllowed { status, .. }) if status.is_paid() => {}
        Err(e) => return error_response(&transition_failure(e)),
    }
    let timestamp = alipay_openapi::time::format_timestamp(&now);
    let redirect = shared.read(|store| {
        let order = store.order(&app_id, &out_trade_no)?;
        let trade = order.trade.as_ref()?;
        let target = order.return_url.as_deref()?;
        let mut url = reqwest::Url::parse(target).ok()?;
        let merchant_query: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let params = notice::return_params(
            app,
            order,
            trade,
            &timestamp,
            &shared.platform_key,
            merchant_query,
        )
        .ok()?;
        url.set_query(Some(&params.to_form()));
        Some(url.to_string())
    });
    if let Some(location) = redirect {
        return (StatusCode::FOUND, [(header::LOCATION, location)]).into_response();
    }
    shared.read(|store| match store.order(&app_id, &out_trade_no) {
        Some(order) => Html(cashier::paid_page(
            &order.subject,
            &yuan(order.total_fen),
            &order.out_trade_no,
            order
                .trade
                .as_ref()
                .map(|t| t.trade_no.as_str())
                .unwrap_or_default(),
        ))
        .into_response(),
        None => error_response(&Failure::business("ACQ.TRADE_NOT_EXIST")),
    })
}
