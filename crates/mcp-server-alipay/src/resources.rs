//! MCP resources: `alipay://orders` (recent orders), `alipay://orders/{outTradeNo}` (an order
//! with its status, refunds, notifications and deliveries), as JSON from the ledger, and
//! `alipay://bills/{date}` (a past day's bill reconciled against the ledger, as
//! `reconcile-alipay-bill` answers).

use rmcp::ErrorData as McpError;
use rmcp::model::{Resource, ResourceTemplate};
use serde_json::json;

use crate::app::App;
use crate::domain::OutTradeNo;
use crate::ledger::{LedgerError, OrderFilter};

pub const ORDERS_URI: &str = "alipay://orders";
const ORDER_PREFIX: &str = "alipay://orders/";
const BILL_PREFIX: &str = "alipay://bills/";
const RECENT: usize = 50;

pub fn order_uri(out_trade_no: &OutTradeNo) -> String {
    format!("{ORDER_PREFIX}{out_trade_no}")
}

pub async fn list(app: &App) -> Vec<Resource> {
    let mut resources = vec![
        Resource::new(ORDERS_URI, "orders")
            .with_description("The most recent orders this server created, newest first")
            .with_mime_type("application/json"),
    ];
    let recent = app
        .services
        .ledger
        .list_orders(&OrderFilter {
            limit: 20,
            ..Default::default()
        })
        .await
        .unwrap_or_default();
    resources.extend(recent.into_iter().map(|o| {
        Resource::new(
            order_uri(&o.out_trade_no),
            format!("order {}", o.out_trade_no),
        )
        .with_description(format!(
            "{} yuan, {}",
            o.total_amount,
            o.trade_status
                .as_ref()
                .map_or("not opened yet", |s| s.as_str())
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
        ResourceTemplate::new("alipay://bills/{date}", "bill")
            .with_description("A past Beijing day's Alipay trade bill (yyyy-MM-dd), reconciled against the ledger: totals with fees, and every discrepancy")
            .with_mime_type("application/json"),
    ]
}

/// The JSON text of a resource.
pub async fn read(app: &App, uri: &str) -> Result<String, McpError> {
    let ledger_error = |e: LedgerError| McpError::internal_error(e.to_string(), None);
    let ledger = &app.services.ledger;
    if uri == ORDERS_URI {
        let orders = ledger
            .list_orders(&OrderFilter {
                limit: RECENT,
                ..Default::default()
            })
            .await
            .map_err(ledger_error)?;
        return Ok(json!({ "orders": orders }).to_string());
    }
    // The URI goes back in `data` (SEP-2164), so a client can tell which read failed.
    let data = || Some(json!({ "uri": uri }));
    if let Some(date) = uri.strip_prefix(BILL_PREFIX) {
        return read_bill(app, date, data()).await;
    }
    let not_found =
        |no: &str| McpError::resource_not_found(format!("no order {no} in the ledger"), data());
    let Some(no) = uri.strip_prefix(ORDER_PREFIX) else {
        return Err(McpError::resource_not_found(
            format!("unknown resource {uri}; try {ORDERS_URI}"),
            data(),
        ));
    };
    // A number that breaks Alipay's rule can name no order of ours.
    let Some(out_trade_no) = OutTradeNo::parse(no) else {
        return Err(not_found(no));
    };
    match ledger
        .order_detail(&out_trade_no)
        .await
        .map_err(ledger_error)?
    {
        Some(detail) => serde_json::to_string(&detail)
            .map_err(|e| McpError::internal_error(e.to_string(), None)),
        None => Err(not_found(no)),
    }
}

async fn read_bill(
    app: &App,
    date: &str,
    data: Option<serde_json::Value>,
) -> Result<String, McpError> {
    use crate::service::bills;
    use crate::tools::bill::BillOutput;
    let canonical = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .is_ok_and(|d| d.format("%Y-%m-%d").to_string() == date);
    if !canonical {
        return Err(McpError::resource_not_found(
            format!(
                "{date:?} is not a date yyyy-MM-dd (Beijing time); try alipay://bills/2026-11-30"
            ),
            data,
        ));
    }
    match bills::reconcile_day(&app.services, date, &crate::service::NoProgress).await {
        Ok(report) => serde_json::to_string(&BillOutput::of(&report))
            .map_err(|e| McpError::internal_error(e.to_string(), None)),
        Err(e @ (bills::BillFailure::NotYet { .. } | bills::BillFailure::NoBill(_))) => {
            Err(McpError::resource_not_found(e.to_string(), data))
        }
        Err(e) => Err(McpError::internal_error(e.to_string(), data)),
    }
}
