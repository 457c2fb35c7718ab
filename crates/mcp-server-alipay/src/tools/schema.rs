//! What `tools/list` advertises: the reference's names, descriptions and argument shapes
//! (draft-07, `additionalProperties: false`), our output schemas, and annotations.

use serde_json::{Value, json};

use crate::tools::ToolKind;
use crate::tools::args::{MAX_NO_LEN, MAX_TITLE_CHARS};

impl ToolKind {
    /// The reference's description, word for word.
    pub fn description(self) -> &'static str {
        match self {
            ToolKind::MobilePay => {
                "创建一笔支付宝订单，返回带有支付链接的 Markdown 文本，该链接在手机浏览器中打开后可跳转到支付宝或直接在浏览器中支付。本工具适用于移动网站或移动 App。"
            }
            ToolKind::WebPagePay => {
                "创建一笔支付宝订单，返回带有支付链接的 Markdown 文本，该链接在电脑浏览器中打开后会展示支付二维码，用户可扫码支付。本工具适用于桌面网站或电脑客户端。"
            }
            ToolKind::QueryPay => "查询一笔支付宝订单，并返回带有订单信息的文本",
            ToolKind::RefundPay => "对交易发起退款，并返回退款状态和退款金额",
            ToolKind::RefundQuery => "查询一笔支付宝退款，并返回退款状态和退款金额",
            ToolKind::ClosePay => {
                "关闭一笔未付款的支付宝订单，关闭后买家无法再付款。Close an unpaid Alipay order so it can no longer be paid (the buyer must have opened the link: Alipay creates the trade only then)."
            }
            ToolKind::QrPay => {
                "创建一笔支付宝订单，返回付款二维码（二维码链接与 PNG 图片），买家用支付宝 App 扫码支付。Create an order and return a QR code the buyer scans with the Alipay app."
            }
            ToolKind::ListOrders => {
                "列出本服务创建的最近订单，可按状态和日期（北京时间）筛选。List the orders this server created, newest first, optionally by status and Beijing day; read from the local ledger."
            }
        }
    }

    pub fn input_schema(self) -> Value {
        let number = |d: &str| json!({ "type": "string", "maxLength": MAX_NO_LEN, "pattern": "^[A-Za-z0-9_-]{1,64}$", "description": d });
        let amount = |d: &str| json!({ "type": ["number", "string"], "minimum": 0.01, "maximum": 100000000, "description": d });
        let text =
            |d: &str| json!({ "type": "string", "maxLength": MAX_TITLE_CHARS, "description": d });
        let (properties, required) = match self {
            ToolKind::MobilePay | ToolKind::WebPagePay | ToolKind::QrPay => (
                json!({
                    "outTradeNo": number("创建订单参数-商户订单号（可省略：省略时由服务端生成唯一订单号并返回；同一订单号重复调用返回同一订单）"),
                    "totalAmount": amount("该订单的支付金额，以元为单位"),
                    "orderTitle": text("该订单的订单标题"),
                }),
                json!(["totalAmount", "orderTitle"]),
            ),
            ToolKind::ClosePay => (
                json!({ "outTradeNo": number("商户订单号") }),
                json!(["outTradeNo"]),
            ),
            ToolKind::ListOrders => (
                json!({
                    "status": { "type": "string", "enum": crate::tools::args::LIST_STATUSES, "description": "只列出此状态的订单 (NOT_CREATED: the buyer has not opened the link)" },
                    "day": { "type": "string", "pattern": "^\\d{4}-\\d{2}-\\d{2}$", "description": "只列出这一天（北京时间，yyyy-MM-dd）创建的订单" },
                    "limit": { "type": "integer", "minimum": 1, "maximum": 100, "description": "最多返回多少笔，默认 20" },
                }),
                json!([]),
            ),
            ToolKind::QueryPay => (
                json!({ "outTradeNo": number("商户订单号") }),
                json!(["outTradeNo"]),
            ),
            ToolKind::RefundPay => (
                json!({
                    "outTradeNo": number("商户订单号"),
                    "refundAmount": amount("退款金额，以元为单位"),
                    "outRequestNo": number("退款请求号，同一笔退款重试时必须使用相同的退款请求号"),
                    "refundReason": text("退款原因"),
                }),
                json!(["outTradeNo", "refundAmount", "outRequestNo"]),
            ),
            ToolKind::RefundQuery => (
                json!({
                    "outRequestNo": number("退款请求号"),
                    "outTradeNo": number("商户订单号"),
                }),
                json!(["outRequestNo", "outTradeNo"]),
            ),
        };
        json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
            "$schema": "http://json-schema.org/draft-07/schema#",
        })
    }

    pub fn output_schema(self) -> Value {
        let s = || json!({ "type": "string" });
        let s_or_null = || json!({ "type": ["string", "null"] });
        let b = || json!({ "type": "boolean" });
        let error = json!({
            "type": "object",
            "description": "present when the call failed",
            "properties": {
                "kind": s(), "code": s(), "msg": s(), "subCode": s_or_null(), "subMsg": s_or_null(),
                "message": s(), "field": s(), "outcomeUnknown": b(), "rule": s(), "limit": s_or_null(),
            },
        });
        let properties = match self {
            ToolKind::MobilePay | ToolKind::WebPagePay | ToolKind::QrPay => json!({
                "outTradeNo": s(), "totalAmount": s(), "orderTitle": s(),
                "url": { "type": "string", "description": "the signed payment link (QR tool: the QR code URL)" },
                "kind": s(), "method": s(), "createdAt": s(),
                "existing": { "type": "boolean", "description": "the order already existed and is returned unchanged" },
                "resource": { "type": "string", "description": "the order's MCP resource URI" },
                "existingOrder": { "type": "object" },
                "error": error,
            }),
            ToolKind::ClosePay => json!({
                "outTradeNo": s(), "closed": b(), "tradeStatus": s(), "tradeNo": s_or_null(), "error": error,
            }),
            ToolKind::ListOrders => json!({
                "orders": { "type": "array", "items": { "type": "object" } },
                "count": { "type": "integer" },
                "error": error,
            }),
            ToolKind::QueryPay => json!({
                "outTradeNo": s(), "tradeStatus": s_or_null(), "paid": b(),
                "totalAmount": s_or_null(), "buyerPayAmount": s_or_null(), "tradeNo": s_or_null(),
                "sendPayDate": s_or_null(),
                "awaitingBuyer": { "type": "boolean", "description": "the link was created but the buyer has not opened or paid it" },
                "subCode": s_or_null(), "subMsg": s_or_null(), "error": error,
            }),
            ToolKind::RefundPay => json!({
                "outTradeNo": s(), "outRequestNo": s(), "refundAmount": s(),
                "refundResult": s(), "tradeNo": s(), "totalRefunded": s_or_null(), "fundChange": s(),
                "refundStatus": s_or_null(), "confirmed": b(), "outcomeUnknown": b(),
                "existingRefund": { "type": "object" }, "error": error,
            }),
            ToolKind::RefundQuery => json!({
                "outTradeNo": s(), "outRequestNo": s(), "refunded": b(), "refundStatus": s_or_null(),
                "refundAmount": s_or_null(), "totalAmount": s_or_null(), "tradeNo": s_or_null(), "error": error,
            }),
        };
        json!({ "type": "object", "properties": properties })
    }
}
