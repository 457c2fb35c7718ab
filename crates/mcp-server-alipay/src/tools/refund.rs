//! `refund-alipay-payment` and `query-alipay-refund`.
//!
//! A refund moves money, so:
//! - its limits are checked first (largest refund, daily budget, and always: never more than what
//!   was paid minus what was refunded, taken from a signed query of the trade);
//! - it is recorded as pending before it is sent, and an `outRequestNo` always means one refund: the
//!   same number with the same amount replays the recorded result or resends with the same number,
//!   with a different amount it is refused locally;
//! - success is reported only when Alipay said so in a verified answer (`fund_change` = `Y`, or a
//!   refund query showing `REFUND_SUCCESS`); a lost answer is looked up, and retried with the same
//!   number only.

use std::time::{Duration, Instant};

use alipay_openapi::{
    Error, Money, RefundQuery, RefundQueryResponse, TradeQuery, TradeRefund, TradeRefundResponse,
    TradeStatus,
};
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::ledger::{NewRefund, RefundBegin, RefundRecord, RefundState, StatusUpdate};
use crate::tools::ToolKind;
use crate::tools::args::{RefundArgs, RefundQueryArgs};
use crate::tools::guard::{audit, outcome_word, refusal};
use crate::tools::outcome::{ToolOutcome, advice, alipay_message, error_json, transport_message};

const TOOL: &str = "refund-alipay-payment";

/// A refund that passed every check and may be sent (after the human confirms, if asked).
#[derive(Clone, Debug)]
pub struct RefundPlan {
    pub args: RefundArgs,
    raw: Map<String, Value>,
    /// From the signed trade query: what the buyer paid.
    pub paid: Money,
    /// Refunded before this one (Alipay's `refund_fee`, or our confirmed and pending refunds).
    pub already_refunded: Money,
    pub trade_no: Option<String>,
}

impl RefundPlan {
    /// What the human is asked to approve; every figure comes from Alipay, not from the model.
    pub fn confirmation_message(&self) -> String {
        format!(
            "Refund {} yuan of Alipay order {} (Alipay trade {})?\nPaid by the buyer: {} yuan. Already refunded: {} yuan. This refund: {} yuan. Remaining after it: {} yuan.\nReason: {}\nRefund request number: {}",
            self.args.refund_amount,
            self.args.out_trade_no,
            self.trade_no.as_deref().unwrap_or("?"),
            self.paid,
            self.already_refunded,
            self.args.refund_amount,
            self.paid
                .saturating_sub(self.already_refunded)
                .saturating_sub(self.args.refund_amount.into()),
            self.args.refund_reason.as_deref().unwrap_or("(none)"),
            self.args.out_request_no,
        )
    }

    /// The exact refund this plan is for (an approval is bound to it).
    pub fn fingerprint(&self) -> String {
        format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}",
            self.args.out_trade_no,
            self.args.out_request_no,
            self.args.refund_amount.fen(),
            self.args.refund_reason.as_deref().unwrap_or("")
        )
    }

    /// The figures the human saw; a change means asking again.
    pub fn figures(&self) -> (i64, i64) {
        (self.paid.fen(), self.already_refunded.fen())
    }
}

/// Either an answer already, or a plan to send.
pub enum Prepared {
    Done(ToolOutcome),
    Ready(Box<RefundPlan>),
}

/// Every check before anything is sent.
pub async fn prepare(app: &App, raw: &Map<String, Value>) -> Prepared {
    let args = match RefundArgs::parse(raw) {
        Ok(a) => a,
        Err(e) => return Prepared::Done(ToolOutcome::bad_argument(TOOL, &e)),
    };
    let refuse = |outcome: ToolOutcome| {
        audit(app, TOOL, raw, "refused", "not sent");
        Prepared::Done(outcome)
    };
    if let Some(max) = app.config.guard.max_refund
        && args.refund_amount > max
    {
        return refuse(refusal(
            "AP_MAX_REFUND_AMOUNT",
            format!(
                "refundAmount {} is more than the largest single refund allowed, {max}",
                args.refund_amount
            ),
            Some(max),
        ));
    }
    let previous = app
        .ledger
        .refunds(&args.out_trade_no)
        .unwrap_or_default()
        .into_iter()
        .find(|r| r.out_request_no == args.out_request_no);
    if let Some(previous) = &previous {
        if previous.refund_amount != args.refund_amount {
            return refuse(conflict(&args, previous));
        }
        if previous.state == RefundState::Succeeded {
            audit(app, TOOL, raw, "replayed", "succeeded");
            return Prepared::Done(replayed(&args, previous));
        }
    }
    // What the buyer paid and the trade's state, from a verified answer.
    let trade = match app
        .client
        .execute(&TradeQuery::by_out_trade_no(args.out_trade_no.as_str()))
        .await
    {
        Ok(t) => t,
        Err(e) => {
            let text = match &e {
                // The refund itself was never sent: say so, whatever Alipay said about the trade.
                Error::Business(g) => format!(
                    "退款执行失败. 错误信息: {}. {} Nothing was refunded (the refundable amount is checked before a refund is sent).",
                    alipay_message(g),
                    advice(g)
                ),
                other => format!(
                    "退款执行失败. 错误信息: the refundable amount could not be checked: {} Nothing was refunded; call again.",
                    transport_message(other)
                ),
            };
            return refuse(ToolOutcome::error(
                text,
                refund_json(
                    &args,
                    json!({ "error": error_json(&e), "confirmed": false }),
                ),
            ));
        }
    };
    let status = trade
        .trade_status
        .clone()
        .unwrap_or(TradeStatus::Other(String::new()));
    if let Some(s) = trade.trade_status.as_ref() {
        let update = StatusUpdate {
            trade_status: s.as_str(),
            trade_no: trade.trade_no.as_deref(),
            refunded: None,
            source: "query",
        };
        let _ = app.ledger.update_status(&args.out_trade_no, &update);
    }
    let paid = trade.total_amount.unwrap_or_default();
    let ours: i64 = app
        .ledger
        .refunds(&args.out_trade_no)
        .unwrap_or_default()
        .iter()
        .filter(|r| r.state.may_have_moved() && r.out_request_no != args.out_request_no)
        .map(|r| r.refund_amount.fen())
        .sum();
    let reported = app
        .ledger
        .order(&args.out_trade_no)
        .ok()
        .flatten()
        .map(|o| o.refunded_amount)
        .unwrap_or_default();
    let already_refunded = Money::from_fen(ours.max(reported.fen()));
    // A resend of an unsettled refund is exempt: the same number cannot move money twice.
    let resend = previous.is_some();
    if !resend {
        if status != TradeStatus::TradeSuccess {
            return refuse(refusal(
                "refundable amount",
                format!(
                    "order {} is {}, not paid and refundable (TRADE_SUCCESS)",
                    args.out_trade_no,
                    status.as_str()
                ),
                None,
            ));
        }
        let remaining = paid.saturating_sub(already_refunded);
        if Money::from(args.refund_amount) > remaining {
            return refuse(refusal(
                "refundable amount",
                format!(
                    "refundAmount {} is more than what remains refundable on order {}: paid {paid}, already refunded {already_refunded}, remaining {remaining}",
                    args.refund_amount, args.out_trade_no
                ),
                None,
            ));
        }
        if let Some(limit) = app.config.guard.daily_refund_limit {
            let used = app.ledger.refunded_on(&today()).unwrap_or_default();
            if used.fen() + args.refund_amount.fen() > limit.fen() {
                return refuse(daily_refusal(&args, used, limit));
            }
        }
    }
    Prepared::Ready(Box::new(RefundPlan {
        args,
        raw: raw.clone(),
        paid,
        already_refunded,
        trade_no: trade.trade_no,
    }))
}

fn today() -> String {
    alipay_openapi::time::beijing_now()
        .format("%Y-%m-%d")
        .to_string()
}

fn daily_refusal(args: &RefundArgs, used: Money, limit: alipay_openapi::Amount) -> ToolOutcome {
    refusal(
        "AP_DAILY_REFUND_LIMIT",
        format!(
            "refundAmount {} would bring today's refunds (Beijing time) to {}, over the daily limit of {limit} (already refunded today: {used})",
            args.refund_amount,
            Money::from_fen(used.fen() + args.refund_amount.fen())
        ),
        Some(limit),
    )
}

/// Record, send, and report. Called once the plan is approved (or needs no approval).
pub async fn execute(app: &App, plan: RefundPlan) -> ToolOutcome {
    let args = &plan.args;
    let new = NewRefund {
        out_trade_no: args.out_trade_no.clone(),
        out_request_no: args.out_request_no.clone(),
        amount: args.refund_amount,
        reason: args.refund_reason.clone(),
    };
    let daily = app.config.guard.daily_refund_limit.map(Money::from);
    let begin = match app.ledger.begin_refund(&new, daily, &today()) {
        Ok(b) => b,
        Err(e) => {
            audit(app, TOOL, &plan.raw, "refused", "ledger failure");
            return ToolOutcome::error(
                format!(
                    "退款执行失败. 错误信息: the refund could not be recorded ({e}); nothing was sent. Call again."
                ),
                refund_json(
                    args,
                    json!({ "error": { "kind": "ledger", "message": e.to_string() }, "confirmed": false }),
                ),
            );
        }
    };
    match begin {
        RefundBegin::Fresh | RefundBegin::Retry(_) => {}
        RefundBegin::Replay(previous) => {
            audit(app, TOOL, &plan.raw, "replayed", "succeeded");
            return replayed(args, &previous);
        }
        RefundBegin::Conflict(previous) => {
            audit(app, TOOL, &plan.raw, "refused", "not sent");
            return conflict(args, &previous);
        }
        RefundBegin::OverDailyLimit { used } => {
            audit(app, TOOL, &plan.raw, "refused", "not sent");
            return daily_refusal(
                args,
                used,
                app.config
                    .guard
                    .daily_refund_limit
                    .unwrap_or(args.refund_amount),
            );
        }
    }
    let request = TradeRefund {
        out_trade_no: args.out_trade_no.clone(),
        refund_amount: args.refund_amount,
        out_request_no: Some(args.out_request_no.clone()),
        refund_reason: args.refund_reason.clone(),
    };
    let started = Instant::now();
    let first = app.client.execute(&request).await;
    tracing::info!(tool = TOOL, out_trade_no = %args.out_trade_no, out_request_no = %args.out_request_no,
        refund_amount = %args.refund_amount, ok = first.is_ok(), "refund sent");
    let (outcome, state) = match first {
        Ok(answer) => answered(app, args, answer).await,
        Err(e) if e.outcome_unknown() => recover(app, args, &request, e, started).await,
        Err(e) => (failed(args, &e), RefundState::Failed),
    };
    let trade_no = outcome.structured.get("tradeNo").and_then(Value::as_str);
    let total = outcome
        .structured
        .get("totalRefunded")
        .and_then(Value::as_str)
        .and_then(|t| Money::from_yuan_str(t).ok());
    let detail = outcome
        .structured
        .pointer("/error/subCode")
        .and_then(Value::as_str);
    if let Err(e) = app.ledger.finish_refund(
        &args.out_trade_no,
        &args.out_request_no,
        state,
        trade_no,
        total,
        detail,
    ) {
        tracing::error!(out_trade_no = %args.out_trade_no, error = %e, "cannot record the refund outcome");
    }
    if state == RefundState::Succeeded
        && let Some(total) = total
        && plan.paid.fen() > 0
    {
        let status = if total >= plan.paid {
            "TRADE_CLOSED"
        } else {
            "TRADE_SUCCESS"
        };
        let update = StatusUpdate {
            trade_status: status,
            trade_no,
            refunded: Some(total),
            source: "refund",
        };
        let _ = app.ledger.update_status(&args.out_trade_no, &update);
    }
    audit(
        app,
        TOOL,
        &plan.raw,
        "allowed",
        match state {
            RefundState::Unknown => "unknown",
            _ => outcome_word(&outcome),
        },
    );
    tracing::info!(tool = TOOL, out_trade_no = %args.out_trade_no, out_request_no = %args.out_request_no, state = state.as_str(), "refund outcome");
    outcome
}

/// A verified answer to the refund call: the `fund_change` rule.
async fn answered(
    app: &App,
    args: &RefundArgs,
    answer: TradeRefundResponse,
) -> (ToolOutcome, RefundState) {
    let total = answer.refund_fee.map(|m| m.to_string());
    if answer.fund_changed() {
        return (
            succeeded(args, &answer.trade_no, total, true),
            RefundState::Succeeded,
        );
    }
    // `N` (or absent) does not prove the refund: Alipay says to confirm with a refund query.
    match query(app, &args.out_trade_no, &args.out_request_no).await {
        Ok(q) if q.refund_succeeded() => (
            succeeded(args, &answer.trade_no.or(q.trade_no), total, false),
            RefundState::Succeeded,
        ),
        Ok(q) => (
            ToolOutcome::error(
                format!(
                    "退款未确认: Alipay answered without moving money (fund_change=N) and the refund query shows status {}. Query again later with query-alipay-refund (outRequestNo {}), or repeat this refund with the same outRequestNo.",
                    q.refund_status.as_deref().unwrap_or("未知"),
                    args.out_request_no
                ),
                refund_json(
                    args,
                    json!({ "refundStatus": q.refund_status, "fundChange": "N", "confirmed": false, "outcomeUnknown": true }),
                ),
            ),
            RefundState::Unknown,
        ),
        Err(e) => (unknown(args, &e), RefundState::Unknown),
    }
}

/// The refund's answer was lost: find out, and if it did not happen, send it again with the same
/// `out_request_no`, within the time budget of one call.
async fn recover(
    app: &App,
    args: &RefundArgs,
    request: &TradeRefund,
    first: Error,
    started: Instant,
) -> (ToolOutcome, RefundState) {
    let budget = app.config.timeout + Duration::from_secs(1);
    let left = || budget.saturating_sub(started.elapsed());
    tracing::warn!(out_trade_no = %args.out_trade_no, out_request_no = %args.out_request_no, error = %first, "refund outcome unknown; checking");
    if let Ok(Ok(q)) =
        tokio::time::timeout(left(), query(app, &args.out_trade_no, &args.out_request_no)).await
        && q.refund_succeeded()
    {
        return (
            succeeded(args, &q.trade_no, None, true),
            RefundState::Succeeded,
        );
    }
    match tokio::time::timeout(left(), app.client.execute(request)).await {
        Ok(Ok(answer)) => Box::pin(answered(app, args, answer)).await,
        Ok(Err(e)) if !e.outcome_unknown() => (failed(args, &e), RefundState::Failed),
        Ok(Err(e)) => (unknown(args, &e), RefundState::Unknown),
        Err(_) => (unknown(args, &first), RefundState::Unknown),
    }
}

async fn query(
    app: &App,
    out_trade_no: &str,
    out_request_no: &str,
) -> Result<RefundQueryResponse, Error> {
    app.client
        .execute(&RefundQuery {
            out_trade_no: out_trade_no.to_string(),
            out_request_no: out_request_no.to_string(),
            query_options: None,
        })
        .await
}

fn refund_json(args: &RefundArgs, extra: Value) -> Value {
    let mut v = json!({
        "outTradeNo": args.out_trade_no,
        "outRequestNo": args.out_request_no,
        "refundAmount": args.refund_amount.to_string(),
    });
    if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), extra) {
        obj.extend(extra);
    }
    v
}

fn succeeded(
    args: &RefundArgs,
    trade_no: &Option<String>,
    refund_fee: Option<String>,
    moved_now: bool,
) -> ToolOutcome {
    let trade_no = trade_no.clone().unwrap_or_default();
    let result = if moved_now {
        "退款成功"
    } else {
        "重复请求退款幂等成功"
    };
    ToolOutcome::ok(
        format!("退款结果: {result}, 退款交易: {trade_no}"),
        refund_json(
            args,
            json!({
                "refundResult": if moved_now { "REFUND_SUCCESS" } else { "REFUND_ALREADY_DONE" },
                "tradeNo": trade_no,
                "totalRefunded": refund_fee,
                "fundChange": if moved_now { "Y" } else { "N" },
                "confirmed": true,
            }),
        ),
    )
}

/// The ledger already holds this refund as confirmed: answer from it, send nothing.
fn replayed(args: &RefundArgs, previous: &RefundRecord) -> ToolOutcome {
    succeeded(
        args,
        &previous.trade_no,
        previous.total_refunded.map(|m| m.to_string()),
        false,
    )
}

fn conflict(args: &RefundArgs, previous: &RefundRecord) -> ToolOutcome {
    ToolOutcome::error(
        format!(
            "退款执行失败. 错误信息: outRequestNo {} was already used on order {} for a refund of {} (now asked: {}); a refund request number always means one refund. To retry that refund, repeat its amount; for another refund, use a new outRequestNo. Nothing was sent.",
            previous.out_request_no,
            previous.out_trade_no,
            previous.refund_amount,
            args.refund_amount
        ),
        refund_json(
            args,
            json!({
                "error": { "kind": "conflict", "message": "outRequestNo already used with a different amount" },
                "existingRefund": { "refundAmount": previous.refund_amount.to_string(), "state": previous.state.as_str() },
                "confirmed": false,
            }),
        ),
    )
}

fn failed(args: &RefundArgs, e: &Error) -> ToolOutcome {
    let text = match e {
        Error::Business(g) => format!(
            "退款执行失败. 错误信息: {}. {}",
            alipay_message(g),
            advice(g)
        ),
        other => format!(
            "退款执行失败. 错误信息: {} No money moved.",
            transport_message(other)
        ),
    };
    ToolOutcome::error(
        text,
        refund_json(args, json!({ "error": error_json(e), "confirmed": false })),
    )
}

fn unknown(args: &RefundArgs, e: &Error) -> ToolOutcome {
    ToolOutcome::error(
        format!(
            "退款结果未知: {} Alipay may or may not have made this refund. Retry refund-alipay-payment with the SAME outRequestNo {} (Alipay refunds at most once per outRequestNo), or check with query-alipay-refund. Never retry it with a new outRequestNo.",
            transport_message(e),
            args.out_request_no
        ),
        refund_json(
            args,
            json!({ "error": error_json(e), "outcomeUnknown": true, "confirmed": false }),
        ),
    )
}

/// After a restart: settle refunds whose outcome was never recorded (the process died between
/// sending and recording), so the ledger agrees with Alipay.
pub async fn reconcile(app: std::sync::Arc<App>) {
    let unsettled = match app.ledger.unsettled_refunds() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot read unsettled refunds");
            return;
        }
    };
    for r in unsettled {
        match query(&app, &r.out_trade_no, &r.out_request_no).await {
            Ok(q) if q.refund_succeeded() => {
                let _ = app.ledger.finish_refund(
                    &r.out_trade_no,
                    &r.out_request_no,
                    RefundState::Succeeded,
                    q.trade_no.as_deref(),
                    None,
                    Some("reconciled"),
                );
                tracing::info!(out_trade_no = %r.out_trade_no, out_request_no = %r.out_request_no, "unsettled refund confirmed by Alipay");
            }
            Ok(_) => {
                let _ = app.ledger.finish_refund(
                    &r.out_trade_no,
                    &r.out_request_no,
                    RefundState::Failed,
                    None,
                    None,
                    Some("reconciled: Alipay has no such refund"),
                );
                tracing::info!(out_trade_no = %r.out_trade_no, out_request_no = %r.out_request_no, "unsettled refund not found at Alipay");
            }
            Err(e) => {
                tracing::warn!(out_trade_no = %r.out_trade_no, error = %e, "cannot reconcile a refund now")
            }
        }
    }
}

pub async fn refund_query(app: &App, raw: &Map<String, Value>) -> ToolOutcome {
    let tool = ToolKind::RefundQuery.name();
    let args = match RefundQueryArgs::parse(raw) {
        Ok(a) => a,
        Err(e) => return ToolOutcome::bad_argument(tool, &e),
    };
    let result = query(app, &args.out_trade_no, &args.out_request_no).await;
    tracing::info!(tool, out_trade_no = %args.out_trade_no, out_request_no = %args.out_request_no, ok = result.is_ok(), "refund queried");
    let base = json!({ "outTradeNo": args.out_trade_no, "outRequestNo": args.out_request_no });
    let with = |extra: Value| {
        let mut v = base.clone();
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        v
    };
    match result {
        Ok(q) if q.refund_succeeded() => {
            // A refund we hold as unsettled is settled by this verified answer.
            let _ = app.ledger.finish_refund(&args.out_trade_no, &args.out_request_no, RefundState::Succeeded, q.trade_no.as_deref(), None, None);
            ToolOutcome::ok(
                format!(
                    "查询到退款成功, 退款交易: {}, 退款金额: {}, 退款状态: REFUND_SUCCESS",
                    q.trade_no.as_deref().unwrap_or(""),
                    q.refund_amount.map(|m| m.to_string()).unwrap_or_default()
                ),
                with(json!({
                    "refunded": true,
                    "refundStatus": "REFUND_SUCCESS",
                    "refundAmount": q.refund_amount.map(|m| m.to_string()),
                    "totalAmount": q.total_amount.map(|m| m.to_string()),
                    "tradeNo": q.trade_no,
                })),
            )
        }
        Ok(q) => ToolOutcome::ok(
            format!(
                "未查询到退款成功. 退款状态: {}",
                q.refund_status.as_deref().unwrap_or("未知 (Alipay has no refund with this outRequestNo; if you just refunded, query again in a few seconds)")
            ),
            with(json!({ "refunded": false, "refundStatus": q.refund_status })),
        ),
        Err(Error::Business(g)) => ToolOutcome::error(
            format!("退款查询失败. 错误信息: {}. {}", alipay_message(&g), advice(&g)),
            with(json!({ "error": error_json(&Error::Business(g.clone())) })),
        ),
        Err(e) => ToolOutcome::error(
            format!("退款查询失败. 错误信息: {} Query again; nothing was changed.", transport_message(&e)),
            with(json!({ "error": error_json(&e) })),
        ),
    }
}
