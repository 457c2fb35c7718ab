//! The trade state machine (ALIPAY-PROTOCOL §2.12, §5.5) and the JSON APIs that read and move it.
//!
//! ```text
//!  link opened / precreate      scan (cashier opened)          pay
//!  ─────────────────> [order] ─────────────────> WAIT_BUYER_PAY ─────> TRADE_SUCCESS ──finish──> TRADE_FINISHED
//!                                                    │ close             │ partial refund (stays)
//!                                                    ▼                   └─ full refund ──> TRADE_CLOSED
//!                                               TRADE_CLOSED
//! ```
//!
//! Every function works on the in-memory [`Store`] under the caller's lock and queues the
//! notifications the change causes; persisting and delivering is the caller's job.
//!
//! Expiry: an order may carry `expire_at` (its `time_expire`, or what its `timeout_express`
//! works out to). From then on nobody can open or pay it, and an opened `WAIT_BUYER_PAY` trade
//! closes as if by `close`, dated at its expiry ([`expire_order`]). Handlers apply expiry up to
//! their `now` before they run (`expiry::catch_up`, also a background sweep); [`scan`], the door
//! to paying, checks again by itself. A link never opened leaves no trade, expired or not.

use std::collections::HashMap;

use alipay_openapi::{Amount, SignType, TradeStatus};
use chrono::{DateTime, FixedOffset};
use serde_json::{Value, json};

use crate::answer::Fields;
use crate::codes::Failure;
use crate::config::AppConfig;
use crate::ids;
use crate::model::{
    Agent, DeliveryState, Notification, Order, Product, Refund, Store, Trade, yuan,
};
use crate::notice::{RefundNotice, notification_fields};

/// The app a request is for, and the time it happens.
pub(crate) struct Ctx<'a> {
    pub app: &'a AppConfig,
    pub now: DateTime<FixedOffset>,
}

impl Ctx<'_> {
    fn timestamp(&self) -> String {
        alipay_openapi::time::format_timestamp(&self.now)
    }

    fn timestamp_ms(&self) -> String {
        self.now.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
    }
}

/// An order as a pay request describes it.
#[derive(Clone, Debug)]
pub(crate) struct NewOrder {
    pub out_trade_no: String,
    pub product: Product,
    pub total: Amount,
    pub subject: String,
    pub body: Option<String>,
    pub passback_params: Option<String>,
    pub notify_url: Option<String>,
    pub return_url: Option<String>,
    pub sign_type: SignType,
    /// `time_expire`, or what `timeout_express` works out to.
    pub expire_at: Option<DateTime<FixedOffset>>,
    /// A 智易收 order's agent.
    pub agent: Option<Agent>,
}

/// How a request names a trade: `trade_no` wins when both are given (as Alipay documents).
#[derive(Clone, Debug)]
pub(crate) struct TradeRef {
    pub out_trade_no: Option<String>,
    pub trade_no: Option<String>,
}

/// Why a buyer or control action cannot happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TransitionError {
    /// No link or precreate for this order was ever seen.
    NoOrder,
    /// The trade is in a state that does not allow it; the failure is what Alipay's cashier says.
    NotAllowed {
        status: TradeStatus,
        failure: Failure,
    },
}

/// Register (or re-enter) an order from a page link or a precreate. An order whose expiry has
/// already passed is not registered (`ACQ.TRADE_HAS_CLOSE`). Re-using an `out_trade_no`: paid →
/// `ACQ.TRADE_HAS_SUCCESS`, closed or expired → `ACQ.TRADE_HAS_CLOSE`, different content →
/// `ACQ.CONTEXT_INCONSISTENT`; identical → the same order (its notify/return URLs updated to the
/// latest request's; its expiry stays the first request's, as Alipay's timer started then).
pub(crate) fn register_order(
    store: &mut Store,
    ctx: &Ctx<'_>,
    new: NewOrder,
) -> Result<String, Failure> {
    let app_id = ctx.app.app_id.clone();
    expire_order(store, ctx, &new.out_trade_no);
    if let Some(existing) = store.order_mut(&app_id, &new.out_trade_no) {
        match existing.trade.as_ref().map(|t| &t.status) {
            Some(TradeStatus::TradeSuccess | TradeStatus::TradeFinished) => {
                return Err(Failure::business("ACQ.TRADE_HAS_SUCCESS"));
            }
            Some(TradeStatus::TradeClosed) => return Err(closed_failure(existing, &ctx.now)),
            None if existing.is_expired(&ctx.now) => {
                return Err(closed_failure(existing, &ctx.now));
            }
            _ => {}
        }
        let same = existing.total_fen == new.total.fen()
            && existing.subject == new.subject
            && existing.body == new.body
            && existing.product.same_family(new.product)
            && same_agent(existing.agent.as_ref(), new.agent.as_ref());
        if !same {
            return Err(Failure::business("ACQ.CONTEXT_INCONSISTENT"));
        }
        if new.notify_url.is_some() {
            existing.notify_url = new.notify_url;
        }
        if new.return_url.is_some() {
            existing.return_url = new.return_url;
        }
        existing.sign_type = new.sign_type;
        return Ok(existing.token.clone());
    }
    if let Some(at) = new.expire_at
        && at <= ctx.now
    {
        // A link opened after its time_expire: Alipay shows the order as closed and keeps nothing.
        return Err(Failure::order_expired(
            &alipay_openapi::time::format_timestamp(&at),
        ));
    }
    let expire_at = new
        .expire_at
        .map(|at| alipay_openapi::time::format_timestamp(&at));
    let token = ids::cashier_token();
    let order = Order {
        app_id: app_id.clone(),
        out_trade_no: new.out_trade_no.clone(),
        product: new.product,
        total_fen: new.total.fen(),
        subject: new.subject,
        body: new.body,
        passback_params: new.passback_params,
        notify_url: new.notify_url,
        return_url: new.return_url,
        sign_type: new.sign_type,
        token: token.clone(),
        created_at: ctx.timestamp(),
        expire_at,
        agent: new.agent,
        trade: None,
    };
    store.put_order(order);
    Ok(token)
}

/// The same agent: its id and name (`request_channel_source` names the caller's version, which
/// may change between a request and its retry).
fn same_agent(a: Option<&Agent>, b: Option<&Agent>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.agent_id == b.agent_id && a.agent_name == b.agent_name,
        (a, b) => a.is_none() && b.is_none(),
    }
}

/// The buyer opened the cashier (scanned the QR code or logged in): the trade now exists,
/// `WAIT_BUYER_PAY`. Re-opening an unpaid trade is fine; a paid, closed or expired one is
/// refused (an expired opened trade is closed first).
pub(crate) fn scan(
    store: &mut Store,
    ctx: &Ctx<'_>,
    out_trade_no: &str,
) -> Result<(), TransitionError> {
    expire_order(store, ctx, out_trade_no);
    let seq = store.seq + 1;
    let order = store
        .order_mut(&ctx.app.app_id, out_trade_no)
        .ok_or(TransitionError::NoOrder)?;
    match &order.trade {
        None if order.is_expired(&ctx.now) => Err(TransitionError::NotAllowed {
            status: TradeStatus::Other(NO_TRADE.into()),
            failure: closed_failure(order, &ctx.now),
        }),
        None => {
            order.trade = Some(Trade {
                trade_no: ids::trade_no(&ctx.now, seq),
                status: TradeStatus::WaitBuyerPay,
                buyer_id: ids::buyer_id(),
                buyer_logon_id: ids::buyer_logon_id(),
                gmt_create: ctx.timestamp(),
                gmt_payment: None,
                gmt_close: None,
                refunds: Vec::new(),
            });
            store.seq = seq;
            Ok(())
        }
        Some(t) if t.status == TradeStatus::WaitBuyerPay => Ok(()),
        Some(_) => Err(not_allowed_for_buyer(order, &ctx.now)),
    }
}

/// The buyer pays: `WAIT_BUYER_PAY` (created now if needed) → `TRADE_SUCCESS`, notification queued.
pub(crate) fn pay(
    store: &mut Store,
    ctx: &Ctx<'_>,
    out_trade_no: &str,
) -> Result<(), TransitionError> {
    scan(store, ctx, out_trade_no)?;
    let trade = trade_mut(store, ctx, out_trade_no)?;
    trade.status = TradeStatus::TradeSuccess;
    trade.gmt_payment = Some(ctx.timestamp());
    queue_notification(store, ctx, out_trade_no, None);
    Ok(())
}

/// The unpaid trade closes (timeout, or the buyer gives up). An order whose cashier was never
/// opened gets its trade created and closed, so the link can no longer be paid. Closing a closed
/// trade again changes nothing, nor does closing an expired order never opened (it is dead and
/// has no trade); a paid trade cannot be closed this way (refund it).
pub(crate) fn close_unpaid(
    store: &mut Store,
    ctx: &Ctx<'_>,
    out_trade_no: &str,
) -> Result<(), TransitionError> {
    expire_order(store, ctx, out_trade_no);
    let order = store
        .order(&ctx.app.app_id, out_trade_no)
        .ok_or(TransitionError::NoOrder)?;
    match order.trade.as_ref().map(|t| &t.status) {
        Some(TradeStatus::TradeClosed) => return Ok(()),
        None if order.is_expired(&ctx.now) => return Ok(()),
        _ => {}
    }
    scan(store, ctx, out_trade_no)?;
    let trade = trade_mut(store, ctx, out_trade_no)?;
    trade.status = TradeStatus::TradeClosed;
    trade.gmt_close = Some(ctx.timestamp());
    queue_notification(store, ctx, out_trade_no, None);
    Ok(())
}

/// The refund window ends: `TRADE_SUCCESS` → `TRADE_FINISHED` (no more refunds).
pub(crate) fn finish(
    store: &mut Store,
    ctx: &Ctx<'_>,
    out_trade_no: &str,
) -> Result<(), TransitionError> {
    let order = store
        .order(&ctx.app.app_id, out_trade_no)
        .ok_or(TransitionError::NoOrder)?;
    let status = order.trade.as_ref().map(|t| t.status.clone());
    match status {
        Some(TradeStatus::TradeFinished) => Ok(()),
        Some(TradeStatus::TradeSuccess) => {
            let trade = trade_mut(store, ctx, out_trade_no)?;
            trade.status = TradeStatus::TradeFinished;
            queue_notification(store, ctx, out_trade_no, None);
            Ok(())
        }
        other => Err(TransitionError::NotAllowed {
            status: other.unwrap_or(TradeStatus::Other("NO_TRADE".into())),
            failure: Failure::business("ACQ.TRADE_STATUS_ERROR"),
        }),
    }
}

fn trade_mut<'a>(
    store: &'a mut Store,
    ctx: &Ctx<'_>,
    out_trade_no: &str,
) -> Result<&'a mut Trade, TransitionError> {
    store
        .order_mut(&ctx.app.app_id, out_trade_no)
        .and_then(|o| o.trade.as_mut())
        .ok_or(TransitionError::NoOrder)
}

/// The status reported for an order that has no trade.
const NO_TRADE: &str = "NO_TRADE";

/// Why the buyer cannot go on with an order whose trade is paid or closed.
fn not_allowed_for_buyer(order: &Order, now: &DateTime<FixedOffset>) -> TransitionError {
    let status = order
        .trade
        .as_ref()
        .map_or(TradeStatus::Other(NO_TRADE.into()), |t| t.status.clone());
    let failure = match status {
        TradeStatus::TradeClosed => closed_failure(order, now),
        _ => Failure::business("ACQ.TRADE_HAS_SUCCESS"),
    };
    TransitionError::NotAllowed { status, failure }
}

/// `ACQ.TRADE_HAS_CLOSE` for a closed or expired order; its text says so when the order ran out
/// of time unpaid (a trade closed by a full refund was paid, so it did not expire).
fn closed_failure(order: &Order, now: &DateTime<FixedOffset>) -> Failure {
    let paid = order.trade.as_ref().is_some_and(Trade::was_paid);
    match &order.expire_at {
        Some(at) if !paid && order.is_expired(now) => Failure::order_expired(at),
        _ => Failure::business("ACQ.TRADE_HAS_CLOSE"),
    }
}

/// Close the order's opened, unpaid trade if its expiry has come, as Alipay's timer does:
/// `TRADE_CLOSED` dated at the expiry (not at the moment the emulator noticed), with the
/// notification a close sends. Returns whether it closed something; an order never opened, or
/// already paid or closed, is left alone.
pub(crate) fn expire_order(store: &mut Store, ctx: &Ctx<'_>, out_trade_no: &str) -> bool {
    let Some(order) = store.order_mut(&ctx.app.app_id, out_trade_no) else {
        return false;
    };
    if !order.expiry_due(&ctx.now) {
        return false;
    }
    let gmt_close = order.expire_at.clone();
    let Some(trade) = order.trade.as_mut() else {
        return false;
    };
    trade.status = TradeStatus::TradeClosed;
    trade.gmt_close = gmt_close.or_else(|| Some(ctx.timestamp()));
    queue_notification(store, ctx, out_trade_no, None);
    true
}

/// `(app_id, out_trade_no)` of every opened trade due to expire by `now`, among the apps
/// registered (an order of an app no longer registered cannot be closed: its notification could
/// not be signed for a known seller). Cheap: unpaid trades only, no allocation when none is due.
pub(crate) fn due_for_expiry(
    store: &Store,
    apps: &HashMap<String, AppConfig>,
    now: &DateTime<FixedOffset>,
) -> Vec<(String, String)> {
    store
        .orders_that_may_expire()
        .filter(|o| apps.contains_key(&o.app_id))
        .filter(|o| o.expiry_due(now))
        .map(|o| (o.app_id.clone(), o.out_trade_no.clone()))
        .collect()
}

/// Close every trade in `due` (from [`due_for_expiry`]) whose expiry has come by `now`; returns
/// how many closed.
pub(crate) fn expire_all(
    store: &mut Store,
    apps: &HashMap<String, AppConfig>,
    due: &[(String, String)],
    now: &DateTime<FixedOffset>,
) -> usize {
    due.iter()
        .filter(|(app_id, out_trade_no)| {
            apps.get(app_id).is_some_and(|app| {
                let ctx = Ctx { app, now: *now };
                expire_order(store, &ctx, out_trade_no)
            })
        })
        .count()
}

/// Queue a notification of the order's current trade state, when the order has a `notify_url`
/// and its product notifies that state.
fn queue_notification(
    store: &mut Store,
    ctx: &Ctx<'_>,
    out_trade_no: &str,
    refund: Option<RefundNotice<'_>>,
) {
    let Some(order) = store.order(&ctx.app.app_id, out_trade_no) else {
        return;
    };
    let (Some(trade), Some(url)) = (&order.trade, &order.notify_url) else {
        return;
    };
    if !order.product.notifies(&trade.status) {
        return;
    }
    let notify_id = ids::notify_id(&ctx.now);
    let fields = notification_fields(ctx.app, order, trade, &notify_id, refund);
    let notification = Notification {
        id: 0,
        app_id: order.app_id.clone(),
        out_trade_no: order.out_trade_no.clone(),
        notify_id,
        url: url.clone(),
        trade_status: trade.status.as_str().to_string(),
        sign_type: order.sign_type,
        fields,
        state: DeliveryState::Pending,
        next_attempt_ms: ctx.now.timestamp_millis(),
        attempts: Vec::new(),
        created_at: ctx.timestamp(),
    };
    let id = store.next_seq();
    store.push_notification(Notification { id, ..notification });
}

// ---------------------------------------------------------------------------------------------
// JSON APIs. Each returns the complete answer object (success or failure).

/// Find the order a request names; `None` when there is no such order or no trade yet.
fn find_trade<'a>(store: &'a Store, ctx: &Ctx<'_>, target: &TradeRef) -> Option<&'a Order> {
    let order = match (&target.trade_no, &target.out_trade_no) {
        (Some(trade_no), _) => store.order_by_trade_no(&ctx.app.app_id, trade_no),
        (None, Some(out_trade_no)) => store.order(&ctx.app.app_id, out_trade_no),
        (None, None) => None,
    }?;
    order.trade.as_ref().map(|_| order)
}

/// `alipay.trade.query` (§2.9).
pub(crate) fn query(
    store: &Store,
    ctx: &Ctx<'_>,
    target: &TradeRef,
    query_options: &[String],
) -> Fields {
    let Some(order) = find_trade(store, ctx, target) else {
        let mut f = Fields::failure(&Failure::business("ACQ.TRADE_NOT_EXIST"));
        f.str("buyer_pay_amount", "0.00")
            .str("invoice_amount", "0.00")
            .opt("out_trade_no", target.out_trade_no.as_deref())
            .str("point_amount", "0.00")
            .str("receipt_amount", "0.00");
        return f;
    };
    let Some(trade) = &order.trade else {
        return Fields::failure(&Failure::business("ACQ.TRADE_NOT_EXIST"));
    };
    let paid = trade.was_paid();
    let paid_amount = if paid {
        yuan(order.total_fen)
    } else {
        "0.00".into()
    };
    let mut f = Fields::success();
    f.str("buyer_logon_id", &trade.buyer_logon_id)
        .str("buyer_pay_amount", &paid_amount)
        .str("invoice_amount", &paid_amount)
        .str("out_trade_no", &order.out_trade_no)
        .str("point_amount", "0.00")
        .str("receipt_amount", &paid_amount)
        .opt("send_pay_date", trade.gmt_payment.as_deref())
        .str("subject", &order.subject)
        .str("total_amount", &yuan(order.total_fen))
        .str("trade_no", &trade.trade_no)
        .str("trade_status", trade.status.as_str())
        .str("buyer_user_id", &trade.buyer_id);
    if paid && query_options.iter().any(|o| o == "fund_bill_list") {
        f.value(
            "fund_bill_list",
            json!([{"amount": yuan(order.total_fen), "fund_channel": "ALIPAYACCOUNT"}]),
        );
    }
    f
}

/// A refund request, fields already checked for type and format.
#[derive(Clone, Debug)]
pub(crate) struct RefundInput {
    pub target: TradeRef,
    pub amount: Amount,
    pub out_request_no: Option<String>,
    pub reason: Option<String>,
}

/// `alipay.trade.refund` (§2.10, §5.5), checks in this order: trade exists; an existing
/// `out_request_no` is an idempotent repeat (same amount → `fund_change` `N`) or a conflict
/// (`ACQ.DISCORDANT_REPEAT_REQUEST`) whatever the trade's state now, so a retried full refund
/// still succeeds; unpaid or closed → `ACQ.TRADE_STATUS_ERROR`; finished →
/// `ACQ.TRADE_HAS_FINISHED`; no `out_request_no` and not the full amount →
/// `ACQ.REFUND_AMT_NOT_EQUAL_TOTAL`; more than what is left → `ACQ.REASON_TRADE_REFUND_FEE_ERR`.
pub(crate) fn refund(store: &mut Store, ctx: &Ctx<'_>, input: &RefundInput) -> Fields {
    let failure = |sub_code: &str| {
        let mut f = Fields::failure(&Failure::business(sub_code));
        f.opt("out_trade_no", input.target.out_trade_no.as_deref())
            .str("refund_fee", "0.00")
            .str("send_back_fee", "0.00");
        f
    };
    let Some(order) = find_trade(store, ctx, &input.target) else {
        return failure("ACQ.TRADE_NOT_EXIST");
    };
    let out_trade_no = order.out_trade_no.clone();
    let total_fen = order.total_fen;
    let Some(trade) = order.trade.clone() else {
        return failure("ACQ.TRADE_NOT_EXIST");
    };
    let request_no = input
        .out_request_no
        .clone()
        .unwrap_or_else(|| out_trade_no.clone());
    let amount = input.amount.fen();

    if let Some(previous) = trade
        .refunds
        .iter()
        .find(|r| r.out_request_no == request_no)
    {
        if previous.amount_fen != amount {
            return failure("ACQ.DISCORDANT_REPEAT_REQUEST");
        }
        return refund_success(&out_trade_no, &trade, previous, "N");
    }
    match trade.status {
        TradeStatus::TradeSuccess => {}
        TradeStatus::TradeFinished => return failure("ACQ.TRADE_HAS_FINISHED"),
        _ => return failure("ACQ.TRADE_STATUS_ERROR"),
    }
    if input.out_request_no.is_none() && amount != total_fen {
        return failure("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL");
    }
    let refunded = trade.refunded_fen();
    if amount > total_fen - refunded {
        return failure("ACQ.REASON_TRADE_REFUND_FEE_ERR");
    }

    let record = Refund {
        out_request_no: request_no,
        amount_fen: amount,
        reason: input.reason.clone(),
        gmt_refund: ctx.timestamp_ms(),
    };
    let Ok(trade_mut) = trade_mut(store, ctx, &out_trade_no) else {
        return failure("ACQ.TRADE_NOT_EXIST");
    };
    trade_mut.refunds.push(record.clone());
    let refund_fee = refunded + amount;
    if refund_fee == total_fen {
        trade_mut.status = TradeStatus::TradeClosed;
        trade_mut.gmt_close = Some(ctx.timestamp());
    }
    let updated = trade_mut.clone();
    queue_notification(
        store,
        ctx,
        &out_trade_no,
        Some(RefundNotice {
            refund: &record,
            refund_fee,
        }),
    );
    refund_success(&out_trade_no, &updated, &record, "Y")
}

fn refund_success(out_trade_no: &str, trade: &Trade, refund: &Refund, fund_change: &str) -> Fields {
    let mut f = Fields::success();
    f.str("buyer_logon_id", &trade.buyer_logon_id)
        .str("buyer_user_id", &trade.buyer_id)
        .str("fund_change", fund_change)
        .str("gmt_refund_pay", refund.gmt_refund_pay())
        .str("out_trade_no", out_trade_no)
        .str("refund_fee", &yuan(trade.refunded_fen()))
        .str("send_back_fee", &yuan(refund.amount_fen))
        .str("trade_no", &trade.trade_no);
    f
}

/// `alipay.trade.fastpay.refund.query` (§2.11): unknown trade → `ACQ.TRADE_NOT_EXIST`; unknown
/// refund → a bare `10000` (Alipay's "nothing found").
pub(crate) fn refund_query(
    store: &Store,
    ctx: &Ctx<'_>,
    target: &TradeRef,
    out_request_no: &str,
    query_options: &[String],
) -> Fields {
    let Some(order) = find_trade(store, ctx, target) else {
        let mut f = Fields::failure(&Failure::business("ACQ.TRADE_NOT_EXIST"));
        f.opt("out_trade_no", target.out_trade_no.as_deref());
        return f;
    };
    let Some(trade) = &order.trade else {
        return Fields::failure(&Failure::business("ACQ.TRADE_NOT_EXIST"));
    };
    let Some(refund) = trade
        .refunds
        .iter()
        .find(|r| r.out_request_no == out_request_no)
    else {
        return Fields::success();
    };
    let mut f = Fields::success();
    f.str("out_request_no", &refund.out_request_no)
        .str("out_trade_no", &order.out_trade_no)
        .opt("refund_reason", refund.reason.as_deref())
        .str("refund_amount", &yuan(refund.amount_fen))
        .str("total_amount", &yuan(order.total_fen))
        .str("trade_no", &trade.trade_no)
        .str("refund_status", "REFUND_SUCCESS");
    if query_options.iter().any(|o| o == "gmt_refund_pay") {
        f.str("gmt_refund_pay", refund.gmt_refund_pay());
    }
    f
}

/// `alipay.trade.close`: only `WAIT_BUYER_PAY` closes; a link never opened has no trade yet
/// (`ACQ.TRADE_NOT_EXIST`, pitfall 10); anything else is `ACQ.TRADE_STATUS_ERROR`.
pub(crate) fn close(store: &mut Store, ctx: &Ctx<'_>, target: &TradeRef) -> Fields {
    let failure = |sub_code: &str| {
        let mut f = Fields::failure(&Failure::business(sub_code));
        f.opt("out_trade_no", target.out_trade_no.as_deref())
            .opt("trade_no", target.trade_no.as_deref());
        f
    };
    let Some(order) = find_trade(store, ctx, target) else {
        return failure("ACQ.TRADE_NOT_EXIST");
    };
    let out_trade_no = order.out_trade_no.clone();
    let status = order.trade.as_ref().map(|t| t.status.clone());
    if status != Some(TradeStatus::WaitBuyerPay) {
        return failure("ACQ.TRADE_STATUS_ERROR");
    }
    if close_unpaid(store, ctx, &out_trade_no).is_err() {
        return failure("ACQ.TRADE_STATUS_ERROR");
    }
    let trade_no = store
        .order(&ctx.app.app_id, &out_trade_no)
        .and_then(|o| o.trade.as_ref())
        .map(|t| t.trade_no.clone())
        .unwrap_or_default();
    let mut f = Fields::success();
    f.str("out_trade_no", &out_trade_no)
        .str("trade_no", &trade_no);
    f
}

/// `alipay.trade.precreate` and `alipay.aipay.trade.precreate`: registers the order (no trade
/// until the cashier is opened) and answers the phone cashier's URL: as `qr_code` (precreate), or
/// as `pay_url` with `pic_url`, a PNG of its QR code (智易收).
pub(crate) fn precreate(store: &mut Store, ctx: &Ctx<'_>, new: NewOrder, base_url: &str) -> Fields {
    let out_trade_no = new.out_trade_no.clone();
    let product = new.product;
    match register_order(store, ctx, new) {
        Ok(token) => {
            let cashier = cashier_url(base_url, &token);
            let mut f = Fields::success();
            f.str("out_trade_no", &out_trade_no);
            if product == Product::AgentPay {
                f.str("pay_url", &cashier)
                    .str("pic_url", &qr_image_url(base_url, &token));
            } else {
                f.str("qr_code", &cashier);
            }
            f
        }
        Err(failure) => {
            let mut f = Fields::failure(&failure);
            f.str("out_trade_no", &out_trade_no);
            f
        }
    }
}

/// The phone cashier of the order with this token: opening it is the buyer engaging.
pub(crate) fn cashier_url(base_url: &str, token: &str) -> String {
    format!("{base_url}/qr/{token}")
}

/// A PNG of the QR code of [`cashier_url`] (a 智易收 order's `pic_url`). Fetching it opens
/// nothing.
pub(crate) fn qr_image_url(base_url: &str, token: &str) -> String {
    format!("{base_url}/qr/{token}/pic.png")
}

/// The order and trade as the control API shows them.
pub(crate) fn order_view(store: &Store, order: &Order, base_url: &str) -> Value {
    let trade = order.trade.as_ref();
    let notifications: Vec<Value> = store
        .notifications_of(&order.app_id, &order.out_trade_no)
        .map(|n| {
            json!({
                "notify_id": n.notify_id,
                "trade_status": n.trade_status,
                "url": n.url,
                "state": n.state,
                "fields": n.fields.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
                "attempts": n.attempts,
            })
        })
        .collect();
    json!({
        "app_id": order.app_id,
        "out_trade_no": order.out_trade_no,
        "method": order.product.method(),
        "product_code": order.product.product_code(),
        "subject": order.subject,
        "body": order.body,
        "total_amount": yuan(order.total_fen),
        "notify_url": order.notify_url,
        "return_url": order.return_url,
        "cashier_url": cashier_url(base_url, &order.token),
        "agent": order.agent,
        "created_at": order.created_at,
        "expire_at": order.expire_at,
        "trade_status": trade.map(|t| t.status.as_str().to_string()),
        "trade_no": trade.map(|t| t.trade_no.clone()),
        "buyer_id": trade.map(|t| t.buyer_id.clone()),
        "buyer_logon_id": trade.map(|t| t.buyer_logon_id.clone()),
        "gmt_create": trade.map(|t| t.gmt_create.clone()),
        "gmt_payment": trade.and_then(|t| t.gmt_payment.clone()),
        "gmt_close": trade.and_then(|t| t.gmt_close.clone()),
        "refund_fee": yuan(trade.map(Trade::refunded_fen).unwrap_or(0)),
        "refunds": trade.map(|t| t.refunds.iter().map(|r| json!({
            "out_request_no": r.out_request_no,
            "refund_amount": yuan(r.amount_fen),
            "refund_reason": r.reason,
            "gmt_refund_pay": r.gmt_refund_pay(),
        })).collect::<Vec<_>>()).unwrap_or_default(),
        "notifications": notifications,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alipay_openapi::time::parse_timestamp;

    fn app() -> AppConfig {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/alipay-vectors/keys/app-public-spki.b64"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let key = alipay_openapi::PublicKey::load("app public", &text).unwrap();
        AppConfig::new("2021000000000001", key)
    }

    fn at(text: &str) -> DateTime<FixedOffset> {
        parse_timestamp(text).unwrap()
    }

    fn new_order(no: &str, product: Product, expire_at: &str) -> NewOrder {
        NewOrder {
            out_trade_no: no.into(),
            product,
            total: Amount::from_yuan_str("1").unwrap(),
            subject: "s".into(),
            body: None,
            passback_params: None,
            notify_url: Some("http://127.0.0.1:9/notify".into()),
            return_url: None,
            sign_type: SignType::Rsa2,
            expire_at: Some(at(expire_at)),
            agent: None,
        }
    }

    fn status(store: &Store, no: &str) -> Option<TradeStatus> {
        store
            .order("2021000000000001", no)?
            .trade
            .as_ref()
            .map(|t| t.status.clone())
    }

    #[test]
    fn an_opened_trade_closes_at_its_expiry_on_the_next_touch_once() {
        let app = app();
        let mut store = Store::default();
        let ctx = |now: &str| Ctx {
            app: &app,
            now: at(now),
        };
        let opened = ctx("2026-11-25 10:00:00");
        register_order(
            &mut store,
            &opened,
            new_order("E_1", Product::Wap, "2026-11-25 10:10:00"),
        )
        .unwrap();
        scan(&mut store, &opened, "E_1").unwrap();
        scan(&mut store, &ctx("2026-11-25 10:09:59"), "E_1").unwrap();
        assert_eq!(status(&store, "E_1"), Some(TradeStatus::WaitBuyerPay));

        // The first touch at or after the expiry closes it, dated at the expiry, and notifies.
        let later = ctx("2026-11-25 10:30:00");
        let err = pay(&mut store, &later, "E_1").unwrap_err();
        let TransitionError::NotAllowed { status: s, failure } = err else {
            panic!("{err:?}");
        };
        assert_eq!(s, TradeStatus::TradeClosed);
        assert_eq!(failure.sub_code, "ACQ.TRADE_HAS_CLOSE");
        assert!(
            failure.sub_msg.contains("2026-11-25 10:10:00"),
            "{}",
            failure.sub_msg
        );
        let trade = store
            .order("2021000000000001", "E_1")
            .unwrap()
            .trade
            .clone()
            .unwrap();
        assert_eq!(trade.gmt_close.as_deref(), Some("2026-11-25 10:10:00"));
        let all: Vec<_> = store.notifications().collect();
        assert_eq!(all.len(), 1);
        let n = all[0];
        assert_eq!(n.trade_status, "TRADE_CLOSED");
        assert!(
            n.fields
                .contains(&("gmt_close".into(), "2026-11-25 10:10:00".into()))
        );

        // Further touches change nothing and notify nothing more.
        assert!(!expire_order(&mut store, &later, "E_1"));
        assert!(scan(&mut store, &later, "E_1").is_err());
        assert_eq!(close_unpaid(&mut store, &later, "E_1"), Ok(()));
        let again = register_order(
            &mut store,
            &later,
            new_order("E_1", Product::Wap, "2026-11-26 10:00:00"),
        );
        assert_eq!(again.unwrap_err().sub_code, "ACQ.TRADE_HAS_CLOSE");
        assert_eq!(store.notifications().count(), 1);
    }

    #[test]
    fn the_sweep_closes_due_trades_and_page_pay_closes_silently() {
        let app = app();
        let apps = HashMap::from([(app.app_id.clone(), app.clone())]);
        let mut store = Store::default();
        let start = Ctx {
            app: &app,
            now: at("2026-11-25 10:00:00"),
        };
        for (no, product, expiry) in [
            ("S_PAGE", Product::Page, "2026-11-25 10:05:00"),
            ("S_PRE", Product::Precreate, "2026-11-25 10:05:00"),
            ("S_LATER", Product::Wap, "2026-11-25 11:00:00"),
            ("S_UNOPENED", Product::Wap, "2026-11-25 10:05:00"),
        ] {
            register_order(&mut store, &start, new_order(no, product, expiry)).unwrap();
            if no != "S_UNOPENED" {
                scan(&mut store, &start, no).unwrap();
            }
        }
        let now = at("2026-11-25 10:05:00");
        let due = due_for_expiry(&store, &apps, &now);
        assert_eq!(due.len(), 2, "{due:?}");
        assert_eq!(expire_all(&mut store, &apps, &due, &now), 2);
        assert!(due_for_expiry(&store, &apps, &now).is_empty());
        assert_eq!(status(&store, "S_PAGE"), Some(TradeStatus::TradeClosed));
        assert_eq!(status(&store, "S_PRE"), Some(TradeStatus::TradeClosed));
        assert_eq!(status(&store, "S_LATER"), Some(TradeStatus::WaitBuyerPay));
        // Never opened: nothing at Alipay, and it can no longer be opened.
        assert_eq!(status(&store, "S_UNOPENED"), None);
        let ctx = Ctx { app: &app, now };
        let err = scan(&mut store, &ctx, "S_UNOPENED").unwrap_err();
        assert!(
            matches!(err, TransitionError::NotAllowed { ref failure, .. } if failure.sub_code == "ACQ.TRADE_HAS_CLOSE"),
            "{err:?}"
        );
        assert_eq!(close_unpaid(&mut store, &ctx, "S_UNOPENED"), Ok(()));
        assert_eq!(status(&store, "S_UNOPENED"), None);
        // Page pay notifies TRADE_SUCCESS only; precreate notifies the close.
        let notified: Vec<&str> = store
            .notifications()
            .map(|n| n.out_trade_no.as_str())
            .collect();
        assert_eq!(notified, ["S_PRE"]);
        // Orders of an app no longer registered are left for when it is.
        assert!(due_for_expiry(&store, &HashMap::new(), &at("2026-11-25 12:00:00")).is_empty());
    }

    #[test]
    fn a_link_opened_after_its_expiry_registers_nothing() {
        let app = app();
        let mut store = Store::default();
        let ctx = Ctx {
            app: &app,
            now: at("2026-11-25 10:05:00"),
        };
        let err = register_order(
            &mut store,
            &ctx,
            new_order("L_1", Product::Wap, "2026-11-25 10:05:00"),
        )
        .unwrap_err();
        assert_eq!(err.sub_code, "ACQ.TRADE_HAS_CLOSE");
        assert!(
            err.sub_msg.contains("支付截止时间 2026-11-25 10:05:00"),
            "{}",
            err.sub_msg
        );
        assert_eq!(store.all_orders().count(), 0);
    }
}
