//! `query-alipay-refund`: whether a refund was made (`alipay.trade.fastpay.refund.query`): success
//! only on `REFUND_SUCCESS` (or the business fields, on older answers).

use alipay_openapi::{Error, RefundQueryResponse};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::domain::{OutRequestNo, OutTradeNo};
use crate::service::refund_query;
use crate::tools::args::{ArgError, Field, FieldKind, RawArgs};
use crate::tools::render::{ErrorOut, ToolOutcome, WithError, failure_text};
use crate::tools::{CallContext, CallFuture, Hints, ToolDef, ToolKind, ToolReply, boxed};

const FIELDS: &[Field] = &[
    Field::required("outRequestNo", FieldKind::Number, "退款请求号"),
    Field::required("outTradeNo", FieldKind::Number, "商户订单号"),
];

pub const DEF: ToolDef = ToolDef {
    kind: ToolKind::RefundQuery,
    name: "query-alipay-refund",
    select_key: "refundQuery",
    title: "Query an Alipay refund",
    description: "查询一笔支付宝退款，并返回退款状态和退款金额",
    hints: Hints {
        read_only: true,
        destructive: false,
        idempotent: true,
        open_world: true,
    },
    fields: FIELDS,
    validate: |raw| parse(raw).map(drop),
    output_schema: crate::tools::output_schema_of::<RefundQueryOutput>,
    call: call_tool,
};

pub fn parse(raw: &Map<String, Value>) -> Result<(OutTradeNo, OutRequestNo), ArgError> {
    let args = RawArgs::new(raw, FIELDS)?;
    let out_request_no = args.request_no("outRequestNo")?;
    Ok((args.order_no("outTradeNo")?, out_request_no))
}

/// What a refund query answers.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefundQueryOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_trade_no: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_request_no: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refunded: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_amount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_amount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trade_no: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorOut>,
}

crate::tools::render::with_error_field!(RefundQueryOutput);

fn call_tool<'a>(ctx: &'a CallContext<'a>, raw: &'a Map<String, Value>) -> CallFuture<'a> {
    boxed(async move {
        let (no, req) = match parse(raw) {
            Ok(p) => p,
            Err(e) => {
                return ToolReply::Done(ToolOutcome::bad_argument(
                    DEF.name,
                    &e,
                    RefundQueryOutput::default(),
                ));
            }
        };
        let result = refund_query::query(ctx.services, &no, &req).await;
        ToolReply::Done(render(&no, &req, &result))
    })
}

pub fn render(
    no: &OutTradeNo,
    req: &OutRequestNo,
    result: &Result<RefundQueryResponse, Error>,
) -> ToolOutcome {
    let about = RefundQueryOutput {
        out_trade_no: Some(no.to_string()),
        out_request_no: Some(req.to_string()),
        ..RefundQueryOutput::default()
    };
    match result {
        Ok(q) if q.refund_succeeded() => ToolOutcome::ok(
            format!(
                "查询到退款成功, 退款交易: {}, 退款金额: {}, 退款状态: REFUND_SUCCESS",
                q.trade_no.as_deref().unwrap_or(""),
                q.refund_amount.map(|m| m.to_string()).unwrap_or_default()
            ),
            &RefundQueryOutput {
                refunded: Some(true),
                refund_status: Some("REFUND_SUCCESS".into()),
                refund_amount: q.refund_amount.map(|m| m.to_string()),
                total_amount: q.total_amount.map(|m| m.to_string()),
                trade_no: q.trade_no.clone(),
                ..about
            },
        ),
        Ok(q) => ToolOutcome::ok(
            format!(
                "未查询到退款成功. 退款状态: {}",
                q.refund_status.as_deref().unwrap_or("未知 (Alipay has no refund with this outRequestNo; if you just refunded, query again in a few seconds)")
            ),
            &RefundQueryOutput {
                refunded: Some(false),
                refund_status: q.refund_status.clone(),
                ..about
            },
        ),
        Err(e) => ToolOutcome::error(
            failure_text("退款查询失败", e, "Query again; nothing was changed."),
            &about.with_error(ErrorOut::gateway(e)),
        ),
    }
}
