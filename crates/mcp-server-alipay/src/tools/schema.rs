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
        }
    }

    pub fn input_schema(self) -> Value {
        let number = |d: &str| json!({ "type": "string", "maxLength": MAX_NO_LEN, "pattern": "^[A-Za-z0-9_-]{1,64}$", "description": d });
        let amount = |d: &str| json!({ "type": ["number", "string"], "minimum": 0.01, "maximum": 100000000, "description": d });
        let text =
            |d: &str| json!({ "type": "string", "maxLength": MAX_TITLE_CHARS, "description": d });
        let (properties, required) = match self {
            ToolKind::MobilePay | ToolKind::WebPagePay => (
                json!({
                    "outTradeNo": number("创建订单参数-商户订单号"),
                    "totalAmount": amount("该订单的支付金额，以元为单位"),
                    "orderTitle": text("该订单的订单标题"),
                }),
                json!(["outTradeNo", "totalAmount", "orderTitle"]),
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
                "message": s(), "field": s(), "outcomeUnknown": b(),
            },
        });
        let properties = match self {
            ToolKind::MobilePay | ToolKind::WebPagePay => json!({
                "outTradeNo": s(), "totalAmount": s(), "orderTitle": s(),
                "url": { "type": "string", "description": "the signed payment link" },
                "kind": s(), "method": s(), "error": error,
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
                "refundStatus": s_or_null(), "confirmed": b(), "outcomeUnknown": b(), "error": error,
            }),
            ToolKind::RefundQuery => json!({
                "outTradeNo": s(), "outRequestNo": s(), "refunded": b(), "refundStatus": s_or_null(),
                "refundAmount": s_or_null(), "totalAmount": s_or_null(), "tradeNo": s_or_null(), "error": error,
            }),
        };
        json!({ "type": "object", "properties": properties })
    }
}
