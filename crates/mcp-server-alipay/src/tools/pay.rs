//! `create-mobile-alipay-payment`, `create-web-page-alipay-payment` and
//! `create-qrcode-alipay-payment`. The server owns idempotency: an order number always means one
//! order. The same number with the same amount and title returns that order again; with anything
//! different it is refused before anything is signed.

use alipay_openapi::{AmountStyle, PayKind, PayOrder, TradePrecreate};
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::ledger::{CreateOrder, NewOrder, OrderKind, OrderRecord};
use crate::qr;
use crate::tools::ToolKind;
use crate::tools::args::{PayArgs, mint_order_number};
use crate::tools::guard::{audit, decision_of, outcome_word, refusal};
use crate::tools::outcome::{ToolOutcome, error_json, failure_text};

/// Alipay's `body` is at most 128 characters.
const MAX_BODY_CHARS: usize = 128;

pub async fn create_payment(app: &App, tool: ToolKind, raw: &Map<String, Value>) -> ToolOutcome {
    let outcome = create(app, tool, raw).await;
    if !matches!(outcome.structured.pointer("/error/kind"), Some(Value::String(k)) if k == "invalid_argument")
    {
        let decision = if outcome.structured.get("existing") == Some(&json!(true)) {
            "replayed".to_string()
        } else {
            decision_of(&outcome)
        };
        audit(app, tool.name(), raw, &decision, outcome_word(&outcome));
    }
    outcome
}

fn kind_of(tool: ToolKind) -> OrderKind {
    match tool {
        ToolKind::MobilePay => OrderKind::Mobile,
        ToolKind::QrPay => OrderKind::QrCode,
        _ => OrderKind::WebPage,
    }
}

async fn create(app: &App, tool: ToolKind, raw: &Map<String, Value>) -> ToolOutcome {
    let args = match PayArgs::parse(raw) {
        Ok(a) => a,
        Err(e) => return ToolOutcome::bad_argument(tool.name(), &e),
    };
    if let Some(max) = app.config.guard.max_payment
        && args.total_amount > max
    {
        return refusal(
            "AP_MAX_PAYMENT_AMOUNT",
            format!(
                "totalAmount {} is more than the largest single order allowed, {max}",
                args.total_amount
            ),
            Some(max),
        );
    }
    let kind = kind_of(tool);
    let out_trade_no = args.out_trade_no.clone().unwrap_or_else(mint_order_number);
    match app.ledger.order(&out_trade_no) {
        Ok(Some(existing)) => return same_or_conflict(tool, &existing, &args),
        Ok(None) => {}
        Err(e) => return ledger_failure(&out_trade_no, &e),
    }
    let link = match kind {
        OrderKind::QrCode => match precreate(app, &out_trade_no, &args).await {
            Ok(qr_code) => qr_code,
            Err(outcome) => return outcome,
        },
        _ => match sign_link(app, kind, &out_trade_no, &args) {
            Ok(link) => link,
            Err(outcome) => return outcome,
        },
    };
    let record = NewOrder {
        out_trade_no: out_trade_no.clone(),
        kind,
        amount: args.total_amount,
        title: args.order_title.clone(),
        link,
    };
    // Recorded before it is reported: a link the caller saw is always in the ledger.
    match app.ledger.create_order(&record) {
        Ok(CreateOrder::Created(order)) => {
            tracing::info!(tool = tool.name(), out_trade_no = %order.out_trade_no, total_amount = %order.total_amount, "order created");
            presented(tool, &order, args.out_trade_no.is_none(), false)
        }
        // Another call created it between our check and our insert.
        Ok(CreateOrder::Existing(existing)) => same_or_conflict(tool, &existing, &args),
        Err(e) => ledger_failure(&out_trade_no, &e),
    }
}

/// The reference copies the title into `body`; a title over Alipay's 128-character `body` limit
/// goes without one rather than being refused.
fn body_of(title: &str) -> Option<String> {
    (title.chars().count() <= MAX_BODY_CHARS).then(|| title.to_string())
}

fn sign_link(
    app: &App,
    kind: OrderKind,
    out_trade_no: &str,
    args: &PayArgs,
) -> Result<String, ToolOutcome> {
    let order = PayOrder {
        kind: if kind == OrderKind::Mobile {
            PayKind::Wap
        } else {
            PayKind::Page
        },
        out_trade_no: out_trade_no.to_string(),
        total_amount: args.total_amount,
        subject: args.order_title.clone(),
        body: body_of(&args.order_title),
        timeout_express: None,
        // The reference marks its links with its version; Alipay attributes MCP traffic by it.
        query_options: Some(vec![format!("mcp_{}", env!("CARGO_PKG_VERSION"))]),
        // As the reference writes it (a JSON number); Alipay accepts numbers and strings alike.
        amount_style: AmountStyle::Number,
    };
    app.client.payment_link(&order).map_err(|e| {
        tracing::error!(out_trade_no, error = %e, "signing failed");
        ToolOutcome::error(
            format!("支付链接生成失败. 错误信息: {e}"),
            json!({ "outTradeNo": out_trade_no, "error": { "kind": "signing", "message": e.to_string() } }),
        )
    })
}

async fn precreate(app: &App, out_trade_no: &str, args: &PayArgs) -> Result<String, ToolOutcome> {
    let request = TradePrecreate {
        out_trade_no: out_trade_no.to_string(),
        total_amount: args.total_amount,
        subject: args.order_title.clone(),
        body: body_of(&args.order_title),
        timeout_express: None,
    };
    match app.client.execute(&request).await {
        Ok(answer) => answer.qr_code.filter(|q| !q.is_empty()).ok_or_else(|| {
            ToolOutcome::error(
                "二维码创建失败. 错误信息: Alipay answered without a qr_code.",
                json!({ "outTradeNo": out_trade_no, "error": { "kind": "malformed_response", "message": "no qr_code" } }),
            )
        }),
        Err(e) => Err(ToolOutcome::error(
            failure_text("二维码创建失败", &e, &format!("Call again with the same outTradeNo {out_trade_no}.")),
            json!({ "outTradeNo": out_trade_no, "error": error_json(&e) }),
        )),
    }
}

/// The same number again: the same order if nothing differs, else a refusal naming it.
fn same_or_conflict(tool: ToolKind, existing: &OrderRecord, args: &PayArgs) -> ToolOutcome {
    let kind = kind_of(tool);
    if existing.total_amount == args.total_amount
        && existing.title == args.order_title
        && existing.kind == kind
    {
        return presented(tool, existing, false, true);
    }
    let text = format!(
        "Refused: order {} already exists as a {} payment of {} titled {:?} (created {}). An order number always means one order: to repeat it, call with the same amount, title and tool; for a different order, leave outTradeNo out and the server will mint a new number. Nothing was signed.",
        existing.out_trade_no,
        existing.kind.as_str(),
        existing.total_amount,
        existing.title,
        existing.created_at,
    );
    ToolOutcome::error(
        text,
        json!({
            "outTradeNo": existing.out_trade_no,
            "error": { "kind": "conflict", "message": "the order number is taken by a different order" },
            "existingOrder": { "kind": existing.kind.as_str(), "totalAmount": existing.total_amount.to_string(), "orderTitle": existing.title, "createdAt": existing.created_at },
        }),
    )
}

fn presented(tool: ToolKind, order: &OrderRecord, minted: bool, existing: bool) -> ToolOutcome {
    let prefix = match order.kind {
        OrderKind::Mobile => "支付链接",
        OrderKind::WebPage => "网页支付链接",
        OrderKind::QrCode => "二维码支付链接",
    };
    let mut text = format!("{prefix}: [点击完成支付]({})", order.link);
    if minted || existing {
        text.push_str(&format!("\n商户订单号: {}", order.out_trade_no));
    }
    if existing {
        text.push_str(" (this order already existed; the same order is returned)");
    }
    let mut outcome = ToolOutcome::ok(
        text,
        json!({
            "outTradeNo": order.out_trade_no,
            "totalAmount": order.total_amount.to_string(),
            "orderTitle": order.title,
            "url": order.link,
            "kind": order.kind.as_str(),
            "method": match order.kind {
                OrderKind::Mobile => "alipay.trade.wap.pay",
                OrderKind::WebPage => "alipay.trade.page.pay",
                OrderKind::QrCode => "alipay.trade.precreate",
            },
            "createdAt": order.created_at,
            "existing": existing,
            "resource": crate::resources::order_uri(&order.out_trade_no),
        }),
    );
    if tool != ToolKind::MobilePay {
        outcome.image_png = qr::png(&order.link);
    }
    outcome
}

fn ledger_failure(out_trade_no: &str, e: &crate::ledger::LedgerError) -> ToolOutcome {
    tracing::error!(out_trade_no, error = %e, "ledger failure");
    ToolOutcome::error(
        format!("The order could not be recorded ({e}); no link was given out. Call again."),
        json!({ "outTradeNo": out_trade_no, "error": { "kind": "ledger", "message": e.to_string() } }),
    )
}
