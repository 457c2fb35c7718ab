//! `create-mobile-alipay-payment` and `create-web-page-alipay-payment`: a signed link, no network.

use alipay_openapi::{AmountStyle, PayKind, PayOrder};
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::qr;
use crate::tools::ToolKind;
use crate::tools::args::PayArgs;
use crate::tools::outcome::ToolOutcome;

/// Alipay's `body` is at most 128 characters; the reference copies the title into it.
const MAX_BODY_CHARS: usize = 128;

pub async fn create_payment(app: &App, tool: ToolKind, raw: &Map<String, Value>) -> ToolOutcome {
    let args = match PayArgs::parse(raw) {
        Ok(a) => a,
        Err(e) => return ToolOutcome::bad_argument(tool.name(), &e),
    };
    let kind = match tool {
        ToolKind::MobilePay => PayKind::Wap,
        _ => PayKind::Page,
    };
    let order = PayOrder {
        kind,
        out_trade_no: args.out_trade_no.clone(),
        total_amount: args.total_amount,
        subject: args.order_title.clone(),
        body: (args.order_title.chars().count() <= MAX_BODY_CHARS)
            .then(|| args.order_title.clone()),
        timeout_express: None,
        // The reference marks its links with its version; Alipay attributes MCP traffic by it.
        query_options: Some(vec![format!("mcp_{}", env!("CARGO_PKG_VERSION"))]),
        // As the reference writes it (a JSON number); Alipay accepts numbers and strings alike.
        amount_style: AmountStyle::Number,
    };
    let url = match app.client.payment_link(&order) {
        Ok(url) => url,
        Err(e) => {
            tracing::error!(tool = tool.name(), out_trade_no = %args.out_trade_no, error = %e, "signing failed");
            return ToolOutcome::error(
                format!("支付链接生成失败. 错误信息: {e}"),
                json!({ "outTradeNo": args.out_trade_no, "error": { "kind": "signing", "message": e.to_string() } }),
            );
        }
    };
    app.remember_order(&args.out_trade_no);
    tracing::info!(tool = tool.name(), out_trade_no = %args.out_trade_no, total_amount = %args.total_amount, "payment link created");
    let (prefix, kind_name) = match kind {
        PayKind::Wap => ("支付链接", "mobile"),
        PayKind::Page => ("网页支付链接", "webPage"),
    };
    let mut outcome = ToolOutcome::ok(
        format!("{prefix}: [点击完成支付]({url})"),
        json!({
            "outTradeNo": args.out_trade_no,
            "totalAmount": args.total_amount.to_string(),
            "orderTitle": args.order_title,
            "url": url,
            "kind": kind_name,
            "method": kind.method(),
        }),
    );
    if kind == PayKind::Page {
        outcome.image_png = qr::png(&url);
    }
    outcome
}
