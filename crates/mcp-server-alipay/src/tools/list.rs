//! `list-alipay-orders`: recent orders from the ledger (read-only; no call to Alipay).

use alipay_openapi::TradeStatus;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::ledger::{LedgerError, OrderFilter, OrderRecord, StatusFilter};
use crate::service::orders;
use crate::tools::args::{ArgError, Field, FieldKind, RawArgs};
use crate::tools::render::{ErrorOut, ToolOutcome, WithError};
use crate::tools::{CallContext, CallFuture, Hints, ToolDef, ToolKind, ToolReply, boxed};

/// Statuses the list filters by (`NOT_CREATED`: the buyer never opened the link).
pub const LIST_STATUSES: [&str; 5] = [
    "NOT_CREATED",
    "WAIT_BUYER_PAY",
    "TRADE_SUCCESS",
    "TRADE_CLOSED",
    "TRADE_FINISHED",
];
pub const DEFAULT_LIMIT: u64 = 20;
pub const MAX_LIMIT: u64 = 100;

const FIELDS: &[Field] = &[
    Field::optional(
        "status",
        FieldKind::Choice(&LIST_STATUSES),
        "只列出此状态的订单 (NOT_CREATED: the buyer has not opened the link)",
    ),
    Field::optional(
        "day",
        FieldKind::Day,
        "只列出这一天（北京时间，yyyy-MM-dd）创建的订单",
    ),
    Field::optional(
        "limit",
        FieldKind::Int {
            min: 1,
            max: MAX_LIMIT,
        },
        "最多返回多少笔，默认 20",
    ),
];

pub const DEF: ToolDef = ToolDef {
    kind: ToolKind::ListOrders,
    name: "list-alipay-orders",
    select_key: "listOrders",
    title: "List recent Alipay orders",
    description: "列出本服务创建的最近订单，可按状态和日期（北京时间）筛选。List the orders this server created, newest first, optionally by status and Beijing day; read from the local ledger.",
    hints: Hints {
        read_only: true,
        destructive: false,
        idempotent: true,
        open_world: false,
    },
    fields: FIELDS,
    validate: |raw| parse(raw).map(drop),
    output_schema: crate::tools::output_schema_of::<ListOutput>,
    call: call_tool,
};

pub fn parse(raw: &Map<String, Value>) -> Result<OrderFilter, ArgError> {
    let args = RawArgs::new(raw, FIELDS)?;
    let status = args.choice("status", &LIST_STATUSES)?.map(|s| match s {
        "NOT_CREATED" => StatusFilter::NotCreated,
        other => StatusFilter::Is(TradeStatus::from(other)),
    });
    Ok(OrderFilter {
        status,
        day: args.day("day")?,
        limit: args.int("limit", 1, MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT) as usize,
    })
}

/// What the list answers.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListOutput {
    pub orders: Vec<ListedOrder>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorOut>,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListedOrder {
    pub out_trade_no: String,
    pub kind: String,
    pub total_amount: String,
    pub order_title: String,
    /// `None`: no trade at Alipay yet.
    pub trade_status: Option<String>,
    pub trade_no: Option<String>,
    pub refunded_amount: String,
    pub created_at: String,
    pub status_at: Option<String>,
    /// When Alipay stops taking payment (Beijing time).
    pub expires_at: Option<String>,
    /// The order's MCP resource URI.
    pub resource: String,
}

crate::tools::render::with_error_field!(ListOutput);

fn call_tool<'a>(ctx: &'a CallContext<'a>, raw: &'a Map<String, Value>) -> CallFuture<'a> {
    boxed(async move {
        let filter = match parse(raw) {
            Ok(f) => f,
            Err(e) => {
                return ToolReply::Done(ToolOutcome::bad_argument(
                    DEF.name,
                    &e,
                    ListOutput::default(),
                ));
            }
        };
        ToolReply::Done(render(&orders::list(ctx.services, &filter).await))
    })
}

pub fn render(listed: &Result<Vec<OrderRecord>, LedgerError>) -> ToolOutcome {
    let orders = match listed {
        Ok(o) => o,
        Err(e) => {
            return ToolOutcome::error(
                format!("订单列表读取失败: {e}"),
                &ListOutput::default().with_error(ErrorOut::ledger(e)),
            );
        }
    };
    let mut text = if orders.is_empty() {
        "没有符合条件的订单 (no orders match).".to_string()
    } else {
        format!("共 {} 笔订单 (newest first):", orders.len())
    };
    for o in orders {
        text.push_str(&format!(
            "\n- {} | {} | {} | {} | {} | created {}",
            o.out_trade_no,
            o.total_amount,
            o.trade_status
                .as_ref()
                .map_or("NOT_CREATED", |s| s.as_str()),
            o.kind.as_str(),
            o.title,
            o.created_at
        ));
    }
    let items: Vec<ListedOrder> = orders
        .iter()
        .map(|o| ListedOrder {
            out_trade_no: o.out_trade_no.to_string(),
            kind: o.kind.as_str().into(),
            total_amount: o.total_amount.to_string(),
            order_title: o.title.clone(),
            trade_status: o.trade_status.as_ref().map(|s| s.as_str().to_string()),
            trade_no: o.trade_no.clone(),
            refunded_amount: o.refunded_amount.to_string(),
            created_at: o.created_at.clone(),
            status_at: o.status_at.clone(),
            expires_at: o.expires_at.clone(),
            resource: crate::resources::order_uri(&o.out_trade_no),
        })
        .collect();
    ToolOutcome::ok(
        text,
        &ListOutput {
            count: Some(items.len()),
            orders: items,
            error: None,
        },
    )
}
