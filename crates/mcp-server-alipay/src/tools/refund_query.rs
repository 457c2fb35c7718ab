//! `query-alipay-refund`, and the settling of refunds a dead process left unsettled.

use std::sync::Arc;

use alipay_openapi::{Error, RefundQuery, RefundQueryResponse};
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::ledger::{RefundOutcome, RefundState};
use crate::tools::ToolKind;
use crate::tools::args::RefundQueryArgs;
use crate::tools::outcome::{ToolOutcome, error_json, failure_text, with_fields};

/// A signed `alipay.trade.fastpay.refund.query`.
pub async fn query(
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

pub async fn refund_query(app: &App, raw: &Map<String, Value>) -> ToolOutcome {
    let tool = ToolKind::RefundQuery.name();
    let args = match RefundQueryArgs::parse(raw) {
        Ok(a) => a,
        Err(e) => return ToolOutcome::bad_argument(tool, &e),
    };
    let result = query(app, &args.out_trade_no, &args.out_request_no).await;
    tracing::info!(tool, out_trade_no = %args.out_trade_no, out_request_no = %args.out_request_no, ok = result.is_ok(), "refund queried");
    let with = |extra: Value| {
        with_fields(
            json!({ "outTradeNo": args.out_trade_no, "outRequestNo": args.out_request_no }),
            extra,
        )
    };
    match result {
        Ok(q) if q.refund_succeeded() => {
            // A refund we hold as unsettled is settled by this verified answer.
            let settled = RefundOutcome {
                trade_no: q.trade_no.as_deref(),
                ..RefundOutcome::state(RefundState::Succeeded)
            };
            let _ = app.ledger.finish_refund(&args.out_trade_no, &args.out_request_no, &settled, None);
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
        Err(e) => ToolOutcome::error(
            failure_text("退款查询失败", &e, "Query again; nothing was changed."),
            with(json!({ "error": error_json(&e) })),
        ),
    }
}

/// How long after its last send a refund Alipay does not know is taken as never arrived. A request
/// in flight reaches Alipay within the client timeout; this leaves a wide margin beyond it.
const NEVER_ARRIVED_AFTER_SECS: i64 = 300;

/// After a restart: settle refunds whose outcome was never recorded (a process died between
/// sending and recording), so the ledger agrees with Alipay. A refund another live server (on the
/// same data dir) is sending right now is left to it; one Alipay does not know yet stays unknown
/// (still counted against every limit) until it is old enough to be sure it never arrived.
pub async fn reconcile(app: Arc<App>) {
    let unsettled = match app.ledger.unsettled_refunds() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot read unsettled refunds");
            return;
        }
    };
    for r in unsettled {
        let sender = r.owner.clone().unwrap_or_default();
        if sender == app.instance.token()
            || crate::instance::is_alive(&app.config.data_dir, &sender)
        {
            continue;
        }
        let (no, req) = (&r.out_trade_no, &r.out_request_no);
        // One refund decision per order at a time, as the refund tool takes it.
        let _order = app.refund_lock(no).await;
        let (state, trade_no, detail) = match query(&app, no, req).await {
            Ok(q) if q.refund_succeeded() => (RefundState::Succeeded, q.trade_no, "reconciled"),
            Ok(_) if age_secs(&r.updated_at) > Some(NEVER_ARRIVED_AFTER_SECS) => (
                RefundState::Failed,
                None,
                "reconciled: Alipay has no such refund",
            ),
            Ok(_) => (RefundState::Unknown, None, "reconciled: not at Alipay yet"),
            Err(e) => {
                tracing::warn!(out_trade_no = %no, error = %e, "cannot reconcile a refund now");
                continue;
            }
        };
        let settled = RefundOutcome {
            state,
            trade_no: trade_no.as_deref(),
            total_refunded: None,
            detail: Some(detail),
        };
        // Only while the dead sender still holds it: a resend by a live process owns it now.
        let stored = app.ledger.finish_refund(no, req, &settled, Some(&sender));
        tracing::info!(out_trade_no = %no, out_request_no = %req, outcome = settled.state.as_str(), stored = ?stored, "unsettled refund reconciled");
    }
}

/// Seconds since a ledger timestamp (Beijing `yyyy-MM-dd HH:mm:ss`).
fn age_secs(timestamp: &str) -> Option<i64> {
    let then = alipay_openapi::time::parse_timestamp(timestamp)?;
    Some((chrono::Utc::now() - then.with_timezone(&chrono::Utc)).num_seconds())
}
