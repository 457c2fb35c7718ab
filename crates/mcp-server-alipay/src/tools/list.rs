//! `list-alipay-orders`: recent orders from the ledger (read-only; no call to Alipay).

use serde_json::{Map, Value, json};

use crate::app::App;
use crate::ledger::OrderFilter;
use crate::tools::ToolKind;
use crate::tools::args::ListArgs;
use crate::tools::outcome::ToolOutcome;

pub async fn list(app: &App, raw: &Map<String, Value>) -> ToolOutcome {
    let args = match ListArgs::parse(raw) {
        Ok(a) => a,
        Err(e) => return ToolOutcome::bad_argument(ToolKind::ListOrders.name(), &e),
    };
    let filter = OrderFilter {
        status: args.status.clone(),
        day: args.day.clone(),
        limit: args.limit,
    };
    let orders = match app.ledger.list_orders(&filter) {
        Ok(o) => o,
        Err(e) => {
            return ToolOutcome::error(
                format!("订单列表读取失败: {e}"),
                json!({ "orders": [], "error": { "kind": "ledger", "message": e.to_string() } }),
            );
        }
    };
    let mut text = if orders.is_empty() {
        "没有符合条件的订单 (no orders match).".to_string()
    } else {
        format!("共 {} 笔订单 (newest first):", orders.len())
    };
    for o in &orders {
        text.push_str(&format!(
            "\n- {} | {} | {} | {} | {} | created {}",
            o.out_trade_no,
            o.total_amount,
            o.trade_status.as_deref().unwrap_or("NOT_CREATED"),
            o.kind.as_str(),
            o.title,
            o.created_at
        ));
    }
    let items: Vec<Value> = orders
        .iter()
        .map(|o| {
            json!({
                "outTradeNo": o.out_trade_no,
                "kind": o.kind.as_str(),
                "totalAmount": o.total_amount.to_string(),
                "orderTitle": o.title,
                "tradeStatus": o.trade_status,
                "tradeNo": o.trade_no,
                "refundedAmount": o.refunded_amount.to_string(),
                "createdAt": o.created_at,
                "statusAt": o.status_at,
                "resource": crate::resources::order_uri(&o.out_trade_no),
            })
        })
        .collect();
    ToolOutcome::ok(text, json!({ "orders": items, "count": items.len() }))
}
