//! `close-alipay-payment`: close an unpaid order so it can no longer be paid (`alipay.trade.close`).

use alipay_openapi::{Error, TradeClose};
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::ledger::StatusUpdate;
use crate::tools::ToolKind;
use crate::tools::args::CloseArgs;
use crate::tools::guard::{audit, outcome_word};
use crate::tools::outcome::{ToolOutcome, alipay_message, error_json, failure_text};

pub async fn close(app: &App, raw: &Map<String, Value>) -> ToolOutcome {
    let tool = ToolKind::ClosePay.name();
    let args = match CloseArgs::parse(raw) {
        Ok(a) => a,
        Err(e) => return ToolOutcome::bad_argument(tool, &e),
    };
    let no = &args.out_trade_no;
    let result = app
        .client
        .execute(&TradeClose {
            out_trade_no: no.clone(),
        })
        .await;
    tracing::info!(tool, out_trade_no = %no, ok = result.is_ok(), "close sent");
    let outcome = match result {
        Ok(answer) => {
            let update = StatusUpdate {
                trade_status: "TRADE_CLOSED",
                trade_no: answer.trade_no.as_deref(),
                refunded: None,
                source: "close",
            };
            if let Err(e) = app.ledger.update_status(no, &update) {
                tracing::error!(out_trade_no = %no, error = %e, "cannot record the close");
            }
            ToolOutcome::ok(
                format!(
                    "关闭结果: 交易已关闭, 商户订单号: {no}, 支付宝交易号: {}",
                    answer.trade_no.as_deref().unwrap_or("")
                ),
                json!({ "outTradeNo": no, "closed": true, "tradeStatus": "TRADE_CLOSED", "tradeNo": answer.trade_no }),
            )
        }
        Err(Error::Business(g)) if g.sub_code.as_deref() == Some("ACQ.TRADE_NOT_EXIST") => {
            ToolOutcome::error(
                format!(
                    "交易关闭失败. 错误信息: {}. Alipay has no trade for {no} yet: the buyer has not opened the link, so there is nothing to close at Alipay. The link itself stays payable until it expires; check again with query-alipay-payment, and close it once the buyer has opened it.",
                    alipay_message(&g)
                ),
                json!({ "outTradeNo": no, "closed": false, "error": error_json(&Error::Business(g.clone())) }),
            )
        }
        Err(e) => ToolOutcome::error(
            failure_text(
                "交易关闭失败",
                &e,
                "Check with query-alipay-payment, then call again.",
            ),
            json!({ "outTradeNo": no, "closed": false, "error": error_json(&e) }),
        ),
    };
    audit(app, tool, raw, "allowed", outcome_word(&outcome));
    outcome
}
