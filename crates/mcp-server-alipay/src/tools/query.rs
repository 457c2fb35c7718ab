//! `query-alipay-payment`.

use alipay_openapi::{Error, TradeQuery};
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::ledger::StatusUpdate;
use crate::tools::ToolKind;
use crate::tools::args::QueryArgs;
use crate::tools::outcome::{ToolOutcome, alipay_message, error_json, failure_text};

pub async fn query_payment(app: &App, raw: &Map<String, Value>) -> ToolOutcome {
    let tool = ToolKind::QueryPay.name();
    let args = match QueryArgs::parse(raw) {
        Ok(a) => a,
        Err(e) => return ToolOutcome::bad_argument(tool, &e),
    };
    let no = &args.out_trade_no;
    let result = app
        .client
        .execute(&TradeQuery::by_out_trade_no(no.as_str()))
        .await;
    tracing::info!(tool, out_trade_no = %no, ok = result.is_ok(), "queried");
    let known = || matches!(app.ledger.order(no), Ok(Some(_)));
    match result {
        Ok(q) => {
            let status = q.trade_status.as_ref().map(|s| s.as_str().to_string());
            if let Some(s) = &status {
                let update = StatusUpdate {
                    trade_status: s,
                    trade_no: q.trade_no.as_deref(),
                    refunded: None,
                    source: "query",
                };
                if let Err(e) = app.ledger.update_status(no, &update) {
                    tracing::error!(out_trade_no = %no, error = %e, "cannot record the queried status");
                }
            }
            let total = q.total_amount.map(|m| m.to_string());
            ToolOutcome::ok(
                format!(
                    "交易状态: {}, 交易金额: {}, 支付宝交易号: {}",
                    status.as_deref().unwrap_or(""),
                    total.as_deref().unwrap_or(""),
                    q.trade_no.as_deref().unwrap_or("")
                ),
                json!({
                    "outTradeNo": no,
                    "tradeStatus": status,
                    "paid": q.trade_status.as_ref().is_some_and(|s| s.is_paid()),
                    "totalAmount": total,
                    "buyerPayAmount": q.buyer_pay_amount.map(|m| m.to_string()),
                    "tradeNo": q.trade_no,
                    "sendPayDate": q.send_pay_date,
                    "awaitingBuyer": false,
                }),
            )
        }
        Err(Error::Business(g))
            if g.sub_code.as_deref() == Some("ACQ.TRADE_NOT_EXIST") && known() =>
        {
            // Alipay creates the trade only when the buyer opens the link: not an error.
            ToolOutcome::ok(
                format!(
                    "交易尚未创建: 买家还没有打开或支付这个支付链接 (Alipay: {}). The buyer has not opened or paid the link yet; query again after they pay.",
                    alipay_message(&g)
                ),
                json!({
                    "outTradeNo": no,
                    "tradeStatus": null,
                    "paid": false,
                    "awaitingBuyer": true,
                    "subCode": g.sub_code,
                    "subMsg": g.sub_msg,
                }),
            )
        }
        Err(e) => ToolOutcome::error(
            failure_text("交易查询失败", &e, "Query again; nothing was changed."),
            json!({ "outTradeNo": no, "error": error_json(&e) }),
        ),
    }
}
