//! `query-alipay-payment`: what Alipay says of an order now (`alipay.trade.query`). A link the
//! buyer has not opened yet has no trade at Alipay: said as such, not as an error.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::domain::OutTradeNo;
use crate::service::orders::{self, Queried};
use crate::tools::args::{ArgError, Field, FieldKind, RawArgs};
use crate::tools::render::{ErrorOut, ToolOutcome, WithError, alipay_message, failure_text};
use crate::tools::{CallContext, CallFuture, Hints, ToolDef, ToolKind, ToolReply, boxed};

const FIELDS: &[Field] = &[Field::required(
    "outTradeNo",
    FieldKind::Number,
    "商户订单号",
)];

pub const DEF: ToolDef = ToolDef {
    kind: ToolKind::QueryPay,
    name: "query-alipay-payment",
    select_key: "queryPay",
    title: "Query an Alipay payment",
    description: "查询一笔支付宝订单，并返回带有订单信息的文本",
    hints: Hints {
        read_only: true,
        destructive: false,
        idempotent: true,
        open_world: true,
    },
    fields: FIELDS,
    validate: |raw| parse(raw).map(drop),
    output_schema: crate::tools::output_schema_of::<QueryOutput>,
    call: call_tool,
};

pub fn parse(raw: &Map<String, Value>) -> Result<OutTradeNo, ArgError> {
    RawArgs::new(raw, FIELDS)?.order_no("outTradeNo")
}

/// What a payment query answers.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_trade_no: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trade_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paid: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_amount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buyer_pay_amount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trade_no: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_pay_date: Option<String>,
    /// The link was created but the buyer has not opened or paid it (and it has not expired).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub awaiting_buyer: Option<bool>,
    /// The order was not paid before it expired: it can no longer be paid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired: Option<bool>,
    /// When Alipay stops taking payment (Beijing time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_msg: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorOut>,
}

crate::tools::render::with_error_field!(QueryOutput);

fn call_tool<'a>(ctx: &'a CallContext<'a>, raw: &'a Map<String, Value>) -> CallFuture<'a> {
    boxed(async move {
        let no = match parse(raw) {
            Ok(no) => no,
            Err(e) => {
                return ToolReply::Done(ToolOutcome::bad_argument(
                    DEF.name,
                    &e,
                    QueryOutput::default(),
                ));
            }
        };
        ToolReply::Done(render(&no, &orders::query(ctx.services, &no).await))
    })
}

pub fn render(no: &OutTradeNo, queried: &Queried) -> ToolOutcome {
    let about = QueryOutput {
        out_trade_no: Some(no.to_string()),
        ..QueryOutput::default()
    };
    match queried {
        Queried::Found {
            answer: q,
            expired,
            expires_at,
        } => {
            let status = q.trade_status.as_ref().map(|s| s.as_str().to_string());
            let total = q.total_amount.map(|m| m.to_string());
            let mut text = format!(
                "交易状态: {}, 交易金额: {}, 支付宝交易号: {}",
                status.as_deref().unwrap_or(""),
                total.as_deref().unwrap_or(""),
                q.trade_no.as_deref().unwrap_or("")
            );
            if *expired {
                text.push_str(&format!(
                    " (订单已过期: not paid before {}, Beijing time; Alipay closed it and it can no longer be paid)",
                    expires_at.as_deref().unwrap_or("its expiry")
                ));
            }
            ToolOutcome::ok(
                text,
                &QueryOutput {
                    paid: Some(q.trade_status.as_ref().is_some_and(|s| s.is_paid())),
                    trade_status: status,
                    total_amount: total,
                    buyer_pay_amount: q.buyer_pay_amount.map(|m| m.to_string()),
                    trade_no: q.trade_no.clone(),
                    send_pay_date: q.send_pay_date.clone(),
                    awaiting_buyer: Some(false),
                    expired: Some(*expired),
                    expires_at: expires_at.clone(),
                    ..about
                },
            )
        }
        Queried::NotOpenedYet {
            error: g,
            expired: true,
            expires_at,
        } => ToolOutcome::ok(
            format!(
                "订单已过期: 买家在过期时间 {} (北京时间) 之前没有打开或支付这个支付链接 (Alipay: {}). The link expired unopened and can no longer be paid; create a new order to ask again.",
                expires_at.as_deref().unwrap_or("?"),
                alipay_message(g)
            ),
            &QueryOutput {
                paid: Some(false),
                awaiting_buyer: Some(false),
                expired: Some(true),
                expires_at: expires_at.clone(),
                sub_code: g.sub_code.clone(),
                sub_msg: g.sub_msg.clone(),
                ..about
            },
        ),
        Queried::NotOpenedYet {
            error: g,
            expired: false,
            expires_at,
        } => ToolOutcome::ok(
            format!(
                "交易尚未创建: 买家还没有打开或支付这个支付链接 (Alipay: {}). The buyer has not opened or paid the link yet; query again after they pay{}.",
                alipay_message(g),
                expires_at
                    .as_deref()
                    .map(|at| format!(" (it stays payable until {at}, Beijing time)"))
                    .unwrap_or_default()
            ),
            &QueryOutput {
                paid: Some(false),
                awaiting_buyer: Some(true),
                expired: Some(false),
                expires_at: expires_at.clone(),
                sub_code: g.sub_code.clone(),
                sub_msg: g.sub_msg.clone(),
                ..about
            },
        ),
        Queried::Failed(e) => ToolOutcome::error(
            failure_text("交易查询失败", e, "Query again; nothing was changed."),
            &about.with_error(ErrorOut::gateway(e)),
        ),
    }
}
