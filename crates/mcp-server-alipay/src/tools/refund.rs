//! `refund-alipay-payment`. A refund moves money, so:
//! - its limits are checked first (largest refund, daily budget, and always: never more than what
//!   was paid, from a signed query of the trade, minus what was or may have been refunded), and
//!   checked again inside the transaction that records it;
//! - it is recorded as pending before it is sent, and an `outRequestNo` always means one refund: the
//!   same number with the same amount replays a confirmed result, or resends the recorded request
//!   unchanged when its outcome is unknown; with a different amount it is refused locally;
//! - success is reported only when Alipay said so in a verified answer (`fund_change` = `Y`, or a
//!   refund query showing `REFUND_SUCCESS`) and the ledger recorded it; a lost answer is looked
//!   up, and retried with the same number only.

use std::time::{Duration, Instant};

use alipay_openapi::{Error, Money, TradeQuery, TradeRefund, TradeRefundResponse, TradeStatus};
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::ledger::{
    NewRefund, RefundBegin, RefundLimits, RefundOutcome, RefundState, StatusUpdate,
};
use crate::tools::args::RefundArgs;
use crate::tools::guard::{audit, decision_of, outcome_word, refusal};
use crate::tools::outcome::{ToolOutcome, error_json, failure_text};
use crate::tools::refund_query::query;
use crate::tools::refund_report::{
    conflict, daily_refusal, failed, in_flight_elsewhere, ledger_unreadable, refund_json,
    remaining_refusal, replayed, succeeded, unknown, unrecorded,
};

const TOOL: &str = "refund-alipay-payment";

/// A refund that passed every check and may be sent (after the human confirms, if asked).
#[derive(Clone, Debug)]
pub struct RefundPlan {
    pub args: RefundArgs,
    raw: Map<String, Value>,
    /// From the signed trade query: what the buyer paid.
    pub paid: Money,
    /// Refunded before this one: Alipay's last reported total or our confirmed refunds, whichever
    /// is more, plus our refunds still in flight (`Ledger::refunded_before`).
    pub already_refunded: Money,
    pub trade_no: Option<String>,
}

impl RefundPlan {
    /// What the human is asked to approve: the paid amount from Alipay's signed answer, the
    /// refunded amount from Alipay's reports and our records; nothing from the model.
    pub fn confirmation_message(&self) -> String {
        format!(
            "Refund {} yuan of Alipay order {} (Alipay trade {})?\nPaid by the buyer (Alipay, just now): {} yuan. Already refunded, in flight included (Alipay's last report, or this server's refunds if more): {} yuan. This refund: {} yuan. Remaining after it: {} yuan.\nReason: {}\nRefund request number: {}",
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
    let mut args = match RefundArgs::parse(raw) {
        Ok(a) => a,
        Err(e) => return Prepared::Done(ToolOutcome::bad_argument(TOOL, &e)),
    };
    let refuse = |outcome: ToolOutcome| {
        audit(app, TOOL, raw, &decision_of(&outcome), "not sent");
        Prepared::Done(outcome)
    };
    // The ledger's figures decide what may be sent: if it cannot be read, nothing is.
    let previous = match app.ledger.refunds(&args.out_trade_no) {
        Ok(refunds) => refunds
            .into_iter()
            .find(|r| r.out_request_no == args.out_request_no),
        Err(e) => return refuse(ledger_unreadable(&args, &e)),
    };
    if let Some(previous) = &previous {
        if previous.refund_amount != args.refund_amount {
            return refuse(conflict(&args, previous));
        }
        if previous.state == RefundState::Succeeded {
            audit(app, TOOL, raw, "replayed", "succeeded");
            return Prepared::Done(replayed(&args, previous));
        }
        // Another server on this data dir is sending it right now: two senders would race.
        if previous.state == RefundState::Pending
            && let Some(sender) = previous.owner.as_deref()
            && sender != app.instance.token()
            && crate::instance::is_alive(&app.config.data_dir, sender)
        {
            return refuse(in_flight_elsewhere(&args));
        }
        // A number means one refund: any retry is the refund as first recorded, its reason too
        // (Alipay binds the number to its first parameters).
        args.refund_reason = previous.reason.clone();
    }
    // Sent before, outcome unknown: it may already have moved money, so it can only be resent
    // with the same number (Alipay refunds at most once per number), never refused as new.
    let resend = previous
        .as_ref()
        .is_some_and(|p| matches!(p.state, RefundState::Pending | RefundState::Unknown));
    if let Some(max) = app.config.guard.max_refund
        && args.refund_amount > max
        && !resend
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
    // What the buyer paid and the trade's state, from a verified answer.
    let trade = match app
        .client
        .execute(&TradeQuery::by_out_trade_no(args.out_trade_no.as_str()))
        .await
    {
        Ok(t) => t,
        Err(e) if resend => {
            audit(app, TOOL, raw, "allowed", "unknown");
            return Prepared::Done(unknown(&args, &e));
        }
        Err(e) => {
            // The refund itself was not sent: say so, whatever happened to the trade query.
            const NOT_SENT: &str = "Nothing was refunded (the refundable amount is checked with a signed trade query before a refund is sent); call again.";
            let text = match &e {
                Error::Business(_) => {
                    format!("{} {NOT_SENT}", failure_text("退款执行失败", &e, ""))
                }
                _ => failure_text("退款执行失败", &e, NOT_SENT),
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
    let already_refunded = match app
        .ledger
        .refunded_before(&args.out_trade_no, &args.out_request_no)
    {
        Ok(m) => m,
        Err(e) => return refuse(ledger_unreadable(&args, &e)),
    };
    if !resend {
        if trade.trade_status != Some(TradeStatus::TradeSuccess) {
            let status = trade
                .trade_status
                .as_ref()
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|| "without a trade status".to_string());
            return refuse(refusal(
                "refundable amount",
                format!(
                    "order {} is {status}, not paid and refundable (TRADE_SUCCESS)",
                    args.out_trade_no
                ),
                None,
            ));
        }
        let remaining = paid.saturating_sub(already_refunded);
        if Money::from(args.refund_amount) > remaining {
            return refuse(remaining_refusal(&args, paid, already_refunded));
        }
        if let Some(limit) = app.config.guard.daily_refund_limit {
            let used = match app.ledger.refunded_on(&today()) {
                Ok(m) => m,
                Err(e) => return refuse(ledger_unreadable(&args, &e)),
            };
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

/// Record, send, and report. Called once the plan is approved (or needs no approval).
pub async fn execute(app: &App, plan: RefundPlan) -> ToolOutcome {
    let args = &plan.args;
    let new = NewRefund {
        out_trade_no: args.out_trade_no.clone(),
        out_request_no: args.out_request_no.clone(),
        amount: args.refund_amount,
        reason: args.refund_reason.clone(),
        owner: app.instance.token().to_string(),
    };
    let today = today();
    let limits = RefundLimits {
        daily: app.config.guard.daily_refund_limit.map(Money::from),
        day: &today,
        paid: plan.paid,
    };
    let begin = match app.ledger.begin_refund(&new, &limits) {
        Ok(b) => b,
        Err(e) => {
            audit(app, TOOL, &plan.raw, "refused: ledger failure", "not sent");
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
    let refuse = |outcome: ToolOutcome| {
        audit(app, TOOL, &plan.raw, &decision_of(&outcome), "not sent");
        outcome
    };
    // A resend repeats the recorded request exactly: the same number with other parameters is
    // `ACQ.DISCORDANT_REPEAT_REQUEST`, which would hide whether the first attempt went through.
    let (reason, resend) = match begin {
        RefundBegin::Fresh => (args.refund_reason.clone(), false),
        RefundBegin::Retry(previous) => (previous.reason, true),
        RefundBegin::Replay(previous) => {
            audit(app, TOOL, &plan.raw, "replayed", "succeeded");
            return replayed(args, &previous);
        }
        RefundBegin::Conflict(previous) => return refuse(conflict(args, &previous)),
        RefundBegin::OverDailyLimit { used } => {
            let limit = app
                .config
                .guard
                .daily_refund_limit
                .unwrap_or(args.refund_amount);
            return refuse(daily_refusal(args, used, limit));
        }
        RefundBegin::OverRemaining { refunded } => {
            return refuse(remaining_refusal(args, plan.paid, refunded));
        }
    };
    let request = TradeRefund {
        out_trade_no: args.out_trade_no.clone(),
        refund_amount: args.refund_amount,
        out_request_no: Some(args.out_request_no.clone()),
        refund_reason: reason,
    };
    let started = Instant::now();
    let first = app.client.execute(&request).await;
    tracing::info!(tool = TOOL, out_trade_no = %args.out_trade_no, out_request_no = %args.out_request_no,
        refund_amount = %args.refund_amount, resend, ok = first.is_ok(), "refund sent");
    let (mut outcome, mut state) = match first {
        Ok(answer) => answered(app, args, answer).await,
        Err(e) if e.outcome_unknown() => recover(app, args, &request, e, started).await,
        Err(e) => (failed(args, &e), RefundState::Failed),
    };
    if resend && state == RefundState::Failed {
        // Refused now, but an earlier attempt with this number may have gone through: only a
        // refund query that answers says which.
        match query(app, &args.out_trade_no, &args.out_request_no).await {
            Ok(q) if q.refund_succeeded() => {
                (outcome, state) = (
                    succeeded(args, &q.trade_no, None, false),
                    RefundState::Succeeded,
                );
            }
            Ok(_) => {}
            Err(e) => (outcome, state) = (unknown(args, &e), RefundState::Unknown),
        }
    }
    // What the report says, owned: the report itself may still be replaced below.
    let field = |pointer: &str| {
        outcome
            .structured
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let (trade_no, detail) = (field("/tradeNo"), field("/error/subCode"));
    let trade_no = trade_no.as_deref();
    let total = field("/totalRefunded").and_then(|t| Money::from_yuan_str(&t).ok());
    let recorded = RefundOutcome {
        state,
        trade_no,
        total_refunded: total,
        detail: detail.as_deref(),
    };
    match app.ledger.finish_refund(
        &args.out_trade_no,
        &args.out_request_no,
        &recorded,
        Some(app.instance.token()),
    ) {
        Ok(Some(stored)) if stored == state => {}
        // Confirmed meanwhile (by a refund query, another process, a notification): it is done,
        // by this call's send unless the number had been sent before.
        Ok(Some(RefundState::Succeeded)) => {
            (outcome, state) = (
                succeeded(args, &plan.trade_no, None, !resend),
                RefundState::Succeeded,
            );
        }
        // Taken over by another server's resend: its outcome is the one that counts.
        Ok(Some(_)) => (outcome, state) = (in_flight_elsewhere(args), RefundState::Unknown),
        Ok(None) => {
            audit(app, TOOL, &plan.raw, "allowed", "unrecorded");
            return unrecorded(args, "the refund's row is gone", state);
        }
        Err(e) => {
            // Never report a refund the ledger does not hold; the same number makes it safe to retry.
            tracing::error!(out_trade_no = %args.out_trade_no, error = %e, "cannot record the refund outcome");
            audit(app, TOOL, &plan.raw, "allowed", "unrecorded");
            return unrecorded(args, &e.to_string(), state);
        }
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
    let word = if state == RefundState::Unknown {
        "unknown"
    } else {
        outcome_word(&outcome)
    };
    audit(app, TOOL, &plan.raw, "allowed", word);
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
        // Even a definite refusal of the resend does not prove the lost first attempt failed
        // (Alipay may still be processing it): the outcome stays unknown.
        Ok(Err(e)) => (unknown(args, &e), RefundState::Unknown),
        Err(_) => (unknown(args, &first), RefundState::Unknown),
    }
}
