//! `wait-for-alipay-payment`: wait, up to `timeoutSeconds`, for an order to be paid (or closed,
//! expired, refunded in full), so the agent learns of the payment in clients that never pass a
//! resource update to the model (`crate::service::wait`).

use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::domain::{OutTradeNo, PaymentState};
use crate::ledger::OrderRecord;
use crate::service::wait::{self, Waited};
use crate::tools::args::{ArgError, Field, FieldKind, RawArgs};
use crate::tools::render::{ErrorOut, ToolOutcome, WithError};
use crate::tools::{CallContext, CallFuture, Hints, ToolDef, ToolKind, ToolReply, boxed};

pub const DEFAULT_TIMEOUT_SECONDS: u64 = 45;
/// Below the ~60 s at which most clients cut a tool call.
pub const MAX_TIMEOUT_SECONDS: u64 = 50;

const FIELDS: &[Field] = &[
    Field::required("outTradeNo", FieldKind::Number, "商户订单号"),
    Field::optional(
        "timeoutSeconds",
        FieldKind::Int {
            min: 1,
            max: MAX_TIMEOUT_SECONDS,
        },
        "最多等待多少秒（1–50，默认 45）；到时仍未付款则返回当前状态，可用同一订单号再次调用",
    ),
];

pub const DEF: ToolDef = ToolDef {
    kind: ToolKind::WaitPay,
    name: "wait-for-alipay-payment",
    select_key: "waitPay",
    title: "Wait for an Alipay payment",
    description: "等待买家支付一笔支付宝订单：订单付款（或关闭、过期、全额退款）时立即返回，否则最多等待 timeoutSeconds 秒后返回当前状态。把支付链接或二维码交给买家后调用。Wait until the buyer pays: returns the moment the order is paid (or closed, expired, refunded in full), else after timeoutSeconds with its status; call again with the same outTradeNo until it expires.",
    hints: Hints {
        read_only: true,
        destructive: false,
        idempotent: true,
        open_world: true,
    },
    fields: FIELDS,
    validate: |raw| parse(raw).map(drop),
    output_schema: crate::tools::output_schema_of::<WaitOutput>,
    call: call_tool,
};

pub fn parse(raw: &Map<String, Value>) -> Result<(OutTradeNo, Duration), ArgError> {
    let args = RawArgs::new(raw, FIELDS)?;
    let no = args.order_no("outTradeNo")?;
    let seconds = args
        .int("timeoutSeconds", 1, MAX_TIMEOUT_SECONDS)?
        .unwrap_or(DEFAULT_TIMEOUT_SECONDS);
    Ok((no, Duration::from_secs(seconds)))
}

/// What a wait answers.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaitOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_trade_no: Option<String>,
    /// `paid`, `refunded`, `closed`, `expired` (all final) or `waiting`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Nothing more will happen by waiting.
    #[serde(rename = "final", skip_serializing_if = "Option::is_none")]
    pub is_final: Option<bool>,
    /// Alipay's trade status as last learned (`None`: the buyer has not opened the link).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trade_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paid: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_amount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trade_no: Option<String>,
    /// When Alipay stops taking payment (Beijing time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waited_seconds: Option<u64>,
    /// What to do next while it is unpaid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorOut>,
}

crate::tools::render::with_error_field!(WaitOutput);

fn call_tool<'a>(ctx: &'a CallContext<'a>, raw: &'a Map<String, Value>) -> CallFuture<'a> {
    boxed(async move {
        let (no, timeout) = match parse(raw) {
            Ok(p) => p,
            Err(e) => {
                return ToolReply::Done(ToolOutcome::bad_argument(
                    DEF.name,
                    &e,
                    WaitOutput::default(),
                ));
            }
        };
        let waited = wait::wait(ctx.services, &no, timeout, ctx.progress).await;
        ToolReply::Done(render(&no, &waited))
    })
}

pub fn render(no: &OutTradeNo, waited: &Waited) -> ToolOutcome {
    let about = WaitOutput {
        out_trade_no: Some(no.to_string()),
        ..WaitOutput::default()
    };
    match waited {
        Waited::Ended {
            order,
            state,
            waited,
        } => ended(order, *state, waited.as_secs()),
        Waited::UnknownOrder => ToolOutcome::error(
            format!(
                "支付等待失败. 错误信息: this server created no order {no}; wait-for-alipay-payment waits on orders made with the create tools. Check the outTradeNo."
            ),
            &about.with_error(ErrorOut::new("not_found", "no such order in the ledger")),
        ),
        Waited::LedgerFailed(e) => ToolOutcome::error(
            format!(
                "支付等待失败. 错误信息: the order ledger could not be read ({e}). Call again."
            ),
            &about.with_error(ErrorOut::ledger(e)),
        ),
    }
}

fn ended(order: &OrderRecord, state: PaymentState, waited_seconds: u64) -> ToolOutcome {
    let no = &order.out_trade_no;
    let status = order.trade_status.as_ref().map(|s| s.as_str().to_string());
    let expires = order.expires_at.as_deref().unwrap_or("?");
    let mut facts = format!(
        "交易状态: {}, 交易金额: {}",
        status.as_deref().unwrap_or("未创建"),
        order.total_amount
    );
    if let Some(trade_no) = &order.trade_no {
        facts.push_str(&format!(", 支付宝交易号: {trade_no}"));
    }
    let next = (state == PaymentState::Waiting).then(|| {
        format!(
            "call wait-for-alipay-payment again with outTradeNo {no} until it is paid or expires at {expires} (Beijing time)"
        )
    });
    let text = match state {
        PaymentState::Paid => format!("支付结果: 已支付, {facts}"),
        PaymentState::Refunded => format!("支付结果: 已全额退款, {facts}"),
        PaymentState::Closed => format!(
            "支付结果: 交易已关闭, {facts}. The order was closed unpaid and can no longer be paid."
        ),
        PaymentState::Expired => format!(
            "支付结果: 订单已过期 (过期时间 {expires}), {facts}. The buyer did not pay before it expired; the link no longer takes payment. Create a new order to ask again."
        ),
        PaymentState::Waiting => format!(
            "支付结果: 尚未支付 (已等待 {waited_seconds} 秒), {facts}. The buyer has not paid yet: {}.",
            next.as_deref().unwrap_or_default()
        ),
    };
    ToolOutcome::ok(
        text,
        &WaitOutput {
            out_trade_no: Some(no.to_string()),
            state: Some(state.as_str().into()),
            is_final: Some(state.is_final()),
            trade_status: status,
            paid: Some(state == PaymentState::Paid),
            total_amount: Some(order.total_amount.to_string()),
            trade_no: order.trade_no.clone(),
            expires_at: order.expires_at.clone(),
            waited_seconds: Some(waited_seconds),
            next,
            error: None,
        },
    )
}
