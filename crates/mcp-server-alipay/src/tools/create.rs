//! `create-mobile-alipay-payment`, `create-web-page-alipay-payment` and
//! `create-qrcode-alipay-payment`: the three ways to ask for money. One flow
//! (`crate::service::orders::create`); the desktop and QR tools add the link as a QR PNG.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::MAX_ORDER_TTL_MINUTES;
use crate::domain::OrderKind;
use crate::ledger::OrderRecord;
use crate::qr;
use crate::service::orders::{self, CreateRequest, Created};
use crate::tools::args::{ArgError, Field, FieldKind, MAX_TITLE_CHARS, RawArgs};
use crate::tools::render::{ErrorOut, ToolOutcome, WithError, failure_text};
use crate::tools::{CallContext, CallFuture, Hints, ToolDef, ToolKind, ToolReply, boxed};

const FIELDS: &[Field] = &[
    Field::optional(
        "outTradeNo",
        FieldKind::Number,
        "创建订单参数-商户订单号（可省略：省略时由服务端生成唯一订单号并返回；同一订单号重复调用返回同一订单）",
    ),
    Field::required(
        "totalAmount",
        FieldKind::Yuan,
        "该订单的支付金额，以元为单位",
    ),
    Field::required(
        "orderTitle",
        FieldKind::Text(MAX_TITLE_CHARS),
        "该订单的订单标题",
    ),
    Field::optional(
        "expiresInMinutes",
        FieldKind::Int {
            min: 1,
            max: MAX_ORDER_TTL_MINUTES as u64,
        },
        "订单有效期（分钟）：到期未付款则关闭。可省略（默认为服务端配置的 AP_ORDER_TTL_MINUTES），只能更短，不能更长",
    ),
];

/// 智易收 takes `agentName` (the agent's name, which the buyer sees) where the others take a title.
const AGENT_FIELDS: &[Field] = &[
    FIELDS[0],
    FIELDS[1],
    Field::required(
        "agentName",
        FieldKind::Text(MAX_AGENT_NAME_CHARS),
        "智能体名称（买家付款时看到的收款方名称）",
    ),
    FIELDS[3],
];

/// Alipay's longest `agent_name`.
pub const MAX_AGENT_NAME_CHARS: usize = 128;

const HINTS: Hints = Hints {
    read_only: false,
    destructive: false,
    idempotent: true,
    open_world: true,
};

pub const MOBILE: ToolDef = ToolDef {
    kind: ToolKind::MobilePay,
    name: "create-mobile-alipay-payment",
    select_key: "mobilePay",
    title: "Create an Alipay payment link for phones",
    description: "创建一笔支付宝订单，返回带有支付链接的 Markdown 文本，该链接在手机浏览器中打开后可跳转到支付宝或直接在浏览器中支付。本工具适用于移动网站或移动 App。",
    hints: HINTS,
    fields: FIELDS,
    validate: |raw| parse(raw, OrderKind::WebPage).map(drop),
    output_schema: crate::tools::output_schema_of::<CreateOutput>,
    call: call_mobile,
};

pub const WEB_PAGE: ToolDef = ToolDef {
    kind: ToolKind::WebPagePay,
    name: "create-web-page-alipay-payment",
    select_key: "webPagePay",
    title: "Create an Alipay payment link for desktop browsers",
    description: "创建一笔支付宝订单，返回带有支付链接的 Markdown 文本，该链接在电脑浏览器中打开后会展示支付二维码，用户可扫码支付。本工具适用于桌面网站或电脑客户端。",
    hints: HINTS,
    fields: FIELDS,
    validate: |raw| parse(raw, OrderKind::WebPage).map(drop),
    output_schema: crate::tools::output_schema_of::<CreateOutput>,
    call: call_web_page,
};

pub const QR_CODE: ToolDef = ToolDef {
    kind: ToolKind::QrPay,
    name: "create-qrcode-alipay-payment",
    select_key: "qrPay",
    title: "Create an Alipay payment QR code",
    description: "创建一笔支付宝订单，返回付款二维码（二维码链接与 PNG 图片），买家用支付宝 App 扫码支付。Create an order and return a QR code the buyer scans with the Alipay app.",
    hints: HINTS,
    fields: FIELDS,
    validate: |raw| parse(raw, OrderKind::WebPage).map(drop),
    output_schema: crate::tools::output_schema_of::<CreateOutput>,
    call: call_qr_code,
};

pub const AGENT: ToolDef = ToolDef {
    kind: ToolKind::AgentPay,
    name: "create-alipay-payment-agent",
    select_key: "agentPay",
    title: "Create an Alipay 智易收 payment link (personal collection)",
    description: "创建一笔支付宝智易收（个人收款）订单，返回带有支付链接的 Markdown 文本和付款二维码，适用于没有营业执照的个人卖家。Create a 智易收 (personal collection) order for sellers without a business licence: a payment link the buyer opens on a phone, and its QR code.",
    hints: HINTS,
    fields: AGENT_FIELDS,
    validate: |raw| parse(raw, OrderKind::Agent).map(drop),
    output_schema: crate::tools::output_schema_of::<CreateOutput>,
    call: call_agent,
};

fn call_agent<'a>(ctx: &'a CallContext<'a>, raw: &'a Map<String, Value>) -> CallFuture<'a> {
    boxed(call(ctx, raw, OrderKind::Agent))
}

fn call_mobile<'a>(ctx: &'a CallContext<'a>, raw: &'a Map<String, Value>) -> CallFuture<'a> {
    boxed(call(ctx, raw, OrderKind::Mobile))
}

fn call_web_page<'a>(ctx: &'a CallContext<'a>, raw: &'a Map<String, Value>) -> CallFuture<'a> {
    boxed(call(ctx, raw, OrderKind::WebPage))
}

fn call_qr_code<'a>(ctx: &'a CallContext<'a>, raw: &'a Map<String, Value>) -> CallFuture<'a> {
    boxed(call(ctx, raw, OrderKind::QrCode))
}

fn def_of(kind: OrderKind) -> &'static ToolDef {
    match kind {
        OrderKind::Mobile => &MOBILE,
        OrderKind::WebPage => &WEB_PAGE,
        OrderKind::QrCode => &QR_CODE,
        OrderKind::Agent => &AGENT,
    }
}

pub fn parse(raw: &Map<String, Value>, kind: OrderKind) -> Result<CreateRequest, ArgError> {
    let (fields, title, max) = match kind {
        OrderKind::Agent => (AGENT_FIELDS, "agentName", MAX_AGENT_NAME_CHARS),
        _ => (FIELDS, "orderTitle", MAX_TITLE_CHARS),
    };
    let args = RawArgs::new(raw, fields)?;
    Ok(CreateRequest {
        out_trade_no: args.optional_order_no("outTradeNo")?,
        kind,
        amount: args.yuan("totalAmount")?,
        title: args.required_text(title, max)?,
        expires_in_minutes: args
            .int("expiresInMinutes", 1, u64::from(MAX_ORDER_TTL_MINUTES))?
            .map(|m| m as u32),
    })
}

/// What a create answers.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_trade_no: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_amount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_title: Option<String>,
    /// The signed payment link (QR tool: the QR code URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// When Alipay stops taking payment (Beijing time, `yyyy-MM-dd HH:mm:ss`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// The order already existed and is returned unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub existing: Option<bool>,
    /// The order's MCP resource URI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The order this number already means, when it differs from the one asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub existing_order: Option<ExistingOrder>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorOut>,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExistingOrder {
    pub kind: String,
    pub total_amount: String,
    pub order_title: String,
    pub created_at: String,
}

crate::tools::render::with_error_field!(CreateOutput);

impl CreateOutput {
    fn about(out_trade_no: &impl ToString) -> Self {
        Self {
            out_trade_no: Some(out_trade_no.to_string()),
            ..Self::default()
        }
    }
}

async fn call(ctx: &CallContext<'_>, raw: &Map<String, Value>, kind: OrderKind) -> ToolReply {
    let tool = def_of(kind).name;
    let request = match parse(raw, kind) {
        Ok(r) => r,
        Err(e) => {
            return ToolReply::Done(ToolOutcome::bad_argument(tool, &e, CreateOutput::default()));
        }
    };
    let call = orders::ToolCall {
        tool,
        arguments: raw,
    };
    let created = orders::create(ctx.services, &request, &call).await;
    ToolReply::Done(render(tool, &created, ctx.can_wait))
}

/// `can_wait`: the wait tool is served, so the text can point the agent at it.
pub fn render(tool: &str, created: &Created, can_wait: bool) -> ToolOutcome {
    match created {
        Created::New { order, minted } => presented(order, *minted, false, can_wait),
        Created::Existing(order) => presented(order, false, true, can_wait),
        Created::TooLong { asked, limit } => {
            let e = ArgError {
                field: "expiresInMinutes".into(),
                message: format!(
                    "must be at most {limit} minutes, the longest an order may stay payable here (AP_ORDER_TTL_MINUTES, set by the server's operator), got {asked}"
                ),
            };
            ToolOutcome::bad_argument(tool, &e, CreateOutput::default())
        }
        Created::Conflict(existing) => conflict(existing),
        Created::Refused(g) => ToolOutcome::refused(g, CreateOutput::default()),
        Created::SigningFailed {
            out_trade_no,
            message,
        } => ToolOutcome::error(
            format!("支付链接生成失败. 错误信息: {message}"),
            &CreateOutput::about(out_trade_no).with_error(ErrorOut::new("signing", message)),
        ),
        Created::GatewayFailed {
            out_trade_no,
            error,
        } => ToolOutcome::error(
            failure_text(
                failed_prefix(tool),
                error,
                &format!("Call again with the same outTradeNo {out_trade_no}."),
            ),
            &CreateOutput::about(out_trade_no).with_error(ErrorOut::gateway(error)),
        ),
        Created::NoLink {
            out_trade_no,
            field,
        } => ToolOutcome::error(
            format!(
                "{}. 错误信息: Alipay answered without a {field}.",
                failed_prefix(tool)
            ),
            &CreateOutput::about(out_trade_no)
                .with_error(ErrorOut::new("malformed_response", format!("no {field}"))),
        ),
        Created::LedgerFailed {
            out_trade_no,
            error,
        } => ToolOutcome::error(
            format!(
                "The order could not be recorded ({error}); no link was given out. Call again."
            ),
            &CreateOutput::about(out_trade_no).with_error(ErrorOut::ledger(error)),
        ),
    }
}

/// How a failed precreate starts, the way the reference words its failures.
fn failed_prefix(tool: &str) -> &'static str {
    if tool == AGENT.name {
        "收款链接创建失败"
    } else {
        "二维码创建失败"
    }
}

fn conflict(existing: &OrderRecord) -> ToolOutcome {
    let text = format!(
        "Refused: order {} already exists as a {} payment of {} titled {:?} (created {}). An order number always means one order: to repeat it, call with the same amount, title and tool; for a different order, leave outTradeNo out and the server will mint a new number. Nothing was signed.",
        existing.out_trade_no,
        existing.kind.as_str(),
        existing.total_amount,
        existing.title,
        existing.created_at,
    );
    let output = CreateOutput {
        existing_order: Some(ExistingOrder {
            kind: existing.kind.as_str().into(),
            total_amount: existing.total_amount.to_string(),
            order_title: existing.title.clone(),
            created_at: existing.created_at.clone(),
        }),
        ..CreateOutput::about(&existing.out_trade_no)
    };
    ToolOutcome::error(
        text,
        &output.with_error(ErrorOut::new(
            "conflict",
            "the order number is taken by a different order",
        )),
    )
}

fn presented(order: &OrderRecord, minted: bool, existing: bool, can_wait: bool) -> ToolOutcome {
    let prefix = match order.kind {
        OrderKind::Mobile => "支付链接",
        OrderKind::WebPage => "网页支付链接",
        OrderKind::QrCode => "二维码支付链接",
        OrderKind::Agent => "支付链接",
    };
    let mut text = format!("{prefix}: [点击完成支付]({})", order.link);
    if minted || existing {
        text.push_str(&format!("\n商户订单号: {}", order.out_trade_no));
    }
    if existing {
        text.push_str(" (this order already existed; the same order is returned)");
    }
    if can_wait {
        text.push_str(&format!(
            "\n把链接交给买家后, 调用 wait-for-alipay-payment (outTradeNo: {}) 等待付款结果{}.",
            order.out_trade_no,
            order
                .expires_at
                .as_deref()
                .map(|at| format!("; 订单在 {at} (北京时间) 过期"))
                .unwrap_or_default()
        ));
    }
    let output = CreateOutput {
        out_trade_no: Some(order.out_trade_no.to_string()),
        total_amount: Some(order.total_amount.to_string()),
        order_title: Some(order.title.clone()),
        url: Some(order.link.clone()),
        kind: Some(order.kind.as_str().into()),
        method: Some(order.kind.method().into()),
        created_at: Some(order.created_at.clone()),
        expires_at: order.expires_at.clone(),
        existing: Some(existing),
        resource: Some(crate::resources::order_uri(&order.out_trade_no)),
        existing_order: None,
        error: None,
    };
    let mut outcome = ToolOutcome::ok(text, &output);
    if order.kind != OrderKind::Mobile {
        outcome.image_png = qr::png(&order.link);
    }
    outcome
}
