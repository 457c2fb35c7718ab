//! `query-alipay-refund`, and the settling of refunds a dead process left unsettled.

use std::sync::Arc;

use alipay_openapi::{Error, RefundQuery, RefundQueryResponse};
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::ledger::RefundState;
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
        Err(e) => ToolOutcome::error(
            failure_text("退款查询失败", &e, "Query again; nothing was changed."),
            with(json!({ "error": error_json(&e) })),
        ),
    }
}

/// After a restart: settle refunds whose outcome was never recorded (a process died between
/// sending and recording), so the ledger agrees with Alipay. A refund another live server (on the
/// same data dir) is sending right now is left to it.
pub async fn reconcile(app: Arc<App>) {
    let unsettled = match app.ledger.unsettled_refunds() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot read unsettled refunds");
            return;
        }
    };
    for r in unsettled {
        let sender = r.owner.as_deref().unwrap_or_default();
        if sender == app.instance.token() || crate::instance::is_alive(&app.config.data_dir, sender)
        {
            continue;
        }
        let (no, req) = (&r.out_trade_no, &r.out_request_no);
        match query(&app, no, req).await {
            Ok(q) if q.refund_succeeded() => {
                let _ = app.ledger.finish_refund(
                    no,
                    req,
                    RefundState::Succeeded,
                    q.trade_no.as_deref(),
                    None,
                    Some("reconciled"),
                );
                tracing::info!(out_trade_no = %no, out_request_no = %req, "unsettled refund confirmed by Alipay");
            }
            Ok(_) => {
                let _ = app.ledger.finish_refund(
                    no,
                    req,
                    RefundState::Failed,
                    None,
                    None,
                    Some("reconciled: Alipay has no such refund"),
                );
                tracing::info!(out_trade_no = %no, out_request_no = %req, "unsettled refund not found at Alipay");
            }
            Err(e) => {
                tracing::warn!(out_trade_no = %no, error = %e, "cannot reconcile a refund now")
            }
        }
    }
}
