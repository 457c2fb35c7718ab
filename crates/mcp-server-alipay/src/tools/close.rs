//! `close-alipay-payment`: close an unpaid order so it can no longer be paid (`alipay.trade.close`).

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::domain::OutTradeNo;
use crate::service::orders::{self, Closed};
use crate::tools::args::{ArgError, Field, FieldKind, RawArgs};
use crate::tools::render::{ErrorOut, ToolOutcome, WithError, alipay_message, failure_text};
use crate::tools::{CallContext, CallFuture, Hints, ToolDef, ToolKind, ToolReply, boxed};

const FIELDS: &[Field] = &[Field::required(
    "outTradeNo",
    FieldKind::Number,
    "商户订单号",
)];

pub const DEF: ToolDef = ToolDef {
    kind: ToolKind::ClosePay,
    name: "close-alipay-payment",
    select_key: "closePay",
    title: "Close an unpaid Alipay payment",
    description: "关闭一笔未付款的支付宝订单，关闭后买家无法再付款。Close an unpaid Alipay order so it can no longer be paid (the buyer must have opened the link: Alipay creates the trade only then).",
    hints: Hints {
        read_only: false,
        destructive: true,
        idempotent: true,
        open_world: true,
    },
    fields: FIELDS,
    validate: |raw| parse(raw).map(drop),
    output_schema: crate::tools::output_schema_of::<CloseOutput>,
    call: call_tool,
};

pub fn parse(raw: &Map<String, Value>) -> Result<OutTradeNo, ArgError> {
    RawArgs::new(raw, FIELDS)?.order_no("outTradeNo")
}

/// What a close answers.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloseOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_trade_no: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trade_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trade_no: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorOut>,
}

crate::tools::render::with_error_field!(CloseOutput);

fn call_tool<'a>(ctx: &'a CallContext<'a>, raw: &'a Map<String, Value>) -> CallFuture<'a> {
    boxed(async move {
        let no = match parse(raw) {
            Ok(no) => no,
            Err(e) => {
                return ToolReply::Done(ToolOutcome::bad_argument(
                    DEF.name,
                    &e,
                    CloseOutput::default(),
                ));
            }
        };
        let closed = orders::close(ctx.services, &no).await;
        let (decision, outcome) = closed.audit();
        ctx.services.audit(DEF.name, raw, decision, outcome).await;
        ToolReply::Done(render(&no, &closed))
    })
}

pub fn render(no: &OutTradeNo, closed: &Closed) -> ToolOutcome {
    let about = CloseOutput {
        out_trade_no: Some(no.to_string()),
        ..CloseOutput::default()
    };
    match closed {
        Closed::Closed { trade_no } => ToolOutcome::ok(
            format!(
                "关闭结果: 交易已关闭, 商户订单号: {no}, 支付宝交易号: {}",
                trade_no.as_deref().unwrap_or("")
            ),
            &CloseOutput {
                closed: Some(true),
                trade_status: Some("TRADE_CLOSED".into()),
                trade_no: trade_no.clone(),
                ..about
            },
        ),
        Closed::NoTrade(g) => ToolOutcome::error(
            format!(
                "交易关闭失败. 错误信息: {}. Alipay has no trade for {no} yet: the buyer has not opened the link, so there is nothing to close at Alipay. The link itself stays payable until it expires; check again with query-alipay-payment, and close it once the buyer has opened it.",
                alipay_message(g)
            ),
            &CloseOutput {
                closed: Some(false),
                ..about
            }
            .with_error(ErrorOut::gateway(&alipay_openapi::Error::Business(
                g.clone(),
            ))),
        ),
        Closed::Failed(e) => ToolOutcome::error(
            failure_text(
                "交易关闭失败",
                e,
                "Check with query-alipay-payment, then call again.",
            ),
            &CloseOutput {
                closed: Some(false),
                ..about
            }
            .with_error(ErrorOut::gateway(e)),
        ),
    }
}
