//! MCP resources: `alipay://orders` (recent orders) and `alipay://orders/{outTradeNo}` (an order
//! with its status, refunds and notifications), as JSON from the ledger.

use rmcp::ErrorData as McpError;
use rmcp::model::{Resource, ResourceTemplate};
use serde_json::json;

use crate::app::App;
use crate::ledger::OrderFilter;

pub const ORDERS_URI: &str = "alipay://orders";
const ORDER_PREFIX: &str = "alipay://orders/";
const RECENT: usize = 50;

pub fn order_uri(out_trade_no: &str) -> String {
    format!("{ORDER_PREFIX}{out_trade_no}")
}

pub fn list(app: &App) -> Vec<Resource> {
    let mut resources = vec![
        Resource::new(ORDERS_URI, "orders")
            .with_description("The most recent orders this server created, newest first")
            .with_mime_type("application/json"),
    ];
    let recent = app
        .ledger
        .list_orders(&OrderFilter {
            limit: 20,
            ..Default::default()
        })
        .unwrap_or_default();
    resources.extend(recent.into_iter().map(|o| {
        Resource::new(
            order_uri(&o.out_trade_no),
            format!("order {}", o.out_trade_no),
        )
        .with_description(format!(
            "{} yuan, {}",
            o.total_amount,
            o.trade_status.as_deref().unwrap_or("not opened yet")
        ))
        .with_mime_type("application/json")
    }));
    resources
}

pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new("alipay://orders/{outTradeNo}", "order")
            .with_description("One order: amount, title, link, status learned from Alipay, refunds and notifications")
            .with_mime_type("application/json"),
    ]
}

/// The JSON text of a resource.
pub fn read(app: &App, uri: &str) -> Result<String, McpError> {
    let ledger_error =
        |e: crate::ledger::LedgerError| McpError::internal_error(e.to_string(), None);
    if uri == ORDERS_URI {
        let orders = app
            .ledger
            .list_orders(&OrderFilter {
                limit: RECENT,
                ..Default::default()
            })
            .map_err(ledger_error)?;
        return Ok(json!({ "orders": orders }).to_string());
    }
    let Some(no) = uri.strip_prefix(ORDER_PREFIX) else {
        return Err(McpError::resource_not_found(
            format!("unknown resource {uri}; try {ORDERS_URI}"),
            None,
        ));
    };
    match app.ledger.order_detail(no).map_err(ledger_error)? {
        Some(detail) => Ok(serde_json::to_string(&detail).unwrap_or_else(|_| "{}".into())),
        None => Err(McpError::resource_not_found(
            format!("no order {no} in the ledger"),
            None,
        )),
    }
}
