//! `refund-alipay-payment` and `query-alipay-refund`.
//!
//! A refund moves money, so its outcome is only reported as success when Alipay said so in a
//! verified answer: `fund_change` = `Y`, or a refund query showing `REFUND_SUCCESS`. When an answer
//! is lost (timeout, garbled or unsigned body), the refund is looked up and, if not found, sent again
//! with the **same** `out_request_no` (which Alipay treats as the same refund); it is never sent
//! with a new number.

use std::time::Instant;

use alipay_openapi::{Error, RefundQuery, RefundQueryResponse, TradeRefund, TradeRefundResponse};
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::tools::ToolKind;
use crate::tools::args::{RefundArgs, RefundQueryArgs};
use crate::tools::outcome::{ToolOutcome, advice, alipay_message, error_json, transport_message};

pub async fn refund(app: &App, raw: &Map<String, Value>) -> ToolOutcome {
    let tool = ToolKind::RefundPay.name();
    let args = match RefundArgs::parse(raw) {
        Ok(a) => a,
        Err(e) => return ToolOutcome::bad_argument(tool, &e),
    };
    let request = TradeRefund {
        out_trade_no: args.out_trade_no.clone(),
        refund_amount: args.refund_amount,
        out_request_no: Some(args.out_request_no.clone()),
        refund_reason: args.refund_reason.clone(),
    };
    let started = Instant::now();
    let first = app.client.execute(&request).await;
    tracing::info!(tool, out_trade_no = %args.out_trade_no, out_request_no = %args.out_request_no,
        refund_amount = %args.refund_amount, ok = first.is_ok(), "refund sent");
    let outcome = match first {
        Ok(answer) => answered(app, &args, answer).await,
        Err(e) if e.outcome_unknown() => recover(app, &args, &request, e, started).await,
        Err(e) => failed(&args, &e),
    };
    tracing::info!(tool, out_trade_no = %args.out_trade_no, out_request_no = %args.out_request_no,
        is_error = outcome.is_error, "refund outcome");
    outcome
}

/// A verified answer to the refund call: the `fund_change` rule.
async fn answered(app: &App, args: &RefundArgs, answer: TradeRefundResponse) -> ToolOutcome {
    if answer.fund_changed() {
        return succeeded(
            args,
            &answer.trade_no,
            answer.refund_fee.map(|m| m.to_string()),
            true,
        );
    }
    // `N` (or absent) does not prove the refund: Alipay says to confirm with a refund query.
    match query(app, &args.out_trade_no, &args.out_request_no).await {
        Ok(q) if q.refund_succeeded() => succeeded(
            args,
            &answer.trade_no.or(q.trade_no),
            answer.refund_fee.map(|m| m.to_string()),
            false,
        ),
        Ok(q) => ToolOutcome::error(
            format!(
                "退款未确认: Alipay answered without moving money (fund_change=N) and the refund query shows status {}. Query again later with query-alipay-refund (outRequestNo {}), or repeat this refund with the same outRequestNo.",
                q.refund_status.as_deref().unwrap_or("未知"),
                args.out_request_no
            ),
            refund_json(
                args,
                json!({ "refundStatus": q.refund_status, "fundChange": "N", "confirmed": false }),
            ),
        ),
        Err(e) => unknown(args, &e),
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
) -> ToolOutcome {
    let budget = app.config.timeout + std::time::Duration::from_secs(1);
    let left = || budget.saturating_sub(started.elapsed());
    tracing::warn!(out_trade_no = %args.out_trade_no, out_request_no = %args.out_request_no, error = %first, "refund outcome unknown; checking");
    if let Ok(Ok(q)) =
        tokio::time::timeout(left(), query(app, &args.out_trade_no, &args.out_request_no)).await
        && q.refund_succeeded()
    {
        return succeeded(args, &q.trade_no, None, true);
    }
    match tokio::time::timeout(left(), app.client.execute(request)).await {
        Ok(Ok(answer)) => answered(app, args, answer).await,
        Ok(Err(e)) if !e.outcome_unknown() => failed(args, &e),
        Ok(Err(e)) => unknown(args, &e),
        Err(_) => unknown(args, &first),
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
        Ok(q) if q.refund_succeeded() => ToolOutcome::ok(
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
        ),
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
