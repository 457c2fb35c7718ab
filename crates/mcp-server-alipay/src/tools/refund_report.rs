//! What `refund-alipay-payment` answers: the text the reference prints (`退款结果: …`) and the
//! structured result, for each way a refund can end — made, replayed, refused by a guardrail or a
//! conflicting number, failed with no money moved, outcome unknown, or not recorded.

use alipay_openapi::{Error, Money};
use serde_json::{Value, json};

use crate::ledger::{RefundRecord, RefundState};
use crate::tools::args::RefundArgs;
use crate::tools::guard::refusal;
use crate::tools::outcome::{
    ToolOutcome, error_json, failure_text, transport_message, with_fields,
};

pub fn daily_refusal(args: &RefundArgs, used: Money, limit: alipay_openapi::Amount) -> ToolOutcome {
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

pub fn remaining_refusal(args: &RefundArgs, paid: Money, refunded: Money) -> ToolOutcome {
    refusal(
        "refundable amount",
        format!(
            "refundAmount {} is more than what remains refundable on order {}: paid {paid}, already refunded {refunded}, remaining {}",
            args.refund_amount,
            args.out_trade_no,
            paid.saturating_sub(refunded)
        ),
        None,
    )
}

pub fn refund_json(args: &RefundArgs, extra: Value) -> Value {
    with_fields(
        json!({
            "outTradeNo": args.out_trade_no,
            "outRequestNo": args.out_request_no,
            "refundAmount": args.refund_amount.to_string(),
        }),
        extra,
    )
}

pub fn succeeded(
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
pub fn replayed(args: &RefundArgs, previous: &RefundRecord) -> ToolOutcome {
    succeeded(
        args,
        &previous.trade_no,
        previous.total_refunded.map(|m| m.to_string()),
        false,
    )
}

pub fn conflict(args: &RefundArgs, previous: &RefundRecord) -> ToolOutcome {
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

pub fn failed(args: &RefundArgs, e: &Error) -> ToolOutcome {
    ToolOutcome::error(
        failure_text("退款执行失败", e, "No money moved."),
        refund_json(args, json!({ "error": error_json(e), "confirmed": false })),
    )
}

pub fn unknown(args: &RefundArgs, e: &Error) -> ToolOutcome {
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

/// Alipay answered, but the ledger could not record it: not reported as done.
pub fn unrecorded(args: &RefundArgs, why: &str, state: RefundState) -> ToolOutcome {
    ToolOutcome::error(
        format!(
            "退款结果未记录: Alipay's answer ({}) could not be written to the order ledger ({why}). Retry refund-alipay-payment with the SAME outRequestNo {}; Alipay refunds at most once per outRequestNo.",
            state.as_str(),
            args.out_request_no
        ),
        refund_json(
            args,
            json!({ "error": { "kind": "ledger", "message": why }, "outcomeUnknown": true, "confirmed": false }),
        ),
    )
}

/// Another server process on this data dir holds the refund as its own, in flight.
pub fn in_flight_elsewhere(args: &RefundArgs) -> ToolOutcome {
    ToolOutcome::error(
        format!(
            "退款结果未知: another server process on this data dir is sending refund {} right now. Check with query-alipay-refund in a few seconds, or retry refund-alipay-payment with the SAME outRequestNo; never with a new one.",
            args.out_request_no
        ),
        refund_json(
            args,
            json!({ "error": { "kind": "in_flight", "message": "sent by another server process now" }, "outcomeUnknown": true, "confirmed": false }),
        ),
    )
}

/// The ledger could not be read, so the refund's limits cannot be checked: nothing is sent.
pub fn ledger_unreadable(args: &RefundArgs, e: &dyn std::fmt::Display) -> ToolOutcome {
    ToolOutcome::error(
        format!(
            "退款执行失败. 错误信息: the order ledger could not be read ({e}), so the refund's limits cannot be checked. Nothing was refunded; call again."
        ),
        refund_json(
            args,
            json!({ "error": { "kind": "ledger", "message": e.to_string() }, "confirmed": false }),
        ),
    )
}
