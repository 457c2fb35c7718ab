//! What a tool call produces, independent of MCP: the reference's human text, typed structured
//! output, an optional PNG, and whether it is an error. Also the wording of every failure: what
//! happened and what to do, with Alipay's `sub_code` and `sub_msg` when Alipay said something.

use alipay_openapi::{Error, GatewayError, ResponseError};
use serde_json::{Value, json};

use crate::tools::args::ArgError;

#[derive(Clone, Debug, PartialEq)]
pub struct ToolOutcome {
    pub is_error: bool,
    pub text: String,
    pub image_png: Option<Vec<u8>>,
    pub structured: Value,
}

impl ToolOutcome {
    pub fn ok(text: impl Into<String>, structured: Value) -> Self {
        Self {
            is_error: false,
            text: text.into(),
            image_png: None,
            structured,
        }
    }

    pub fn error(text: impl Into<String>, structured: Value) -> Self {
        Self {
            is_error: true,
            text: text.into(),
            image_png: None,
            structured,
        }
    }

    /// A rejected argument: nothing was sent.
    pub fn bad_argument(tool: &str, e: &ArgError) -> Self {
        Self::error(
            format!(
                "Invalid arguments for tool {tool}: {e}. Nothing was sent to Alipay; fix the argument and call again."
            ),
            json!({ "error": { "kind": "invalid_argument", "field": e.field, "message": e.message } }),
        )
    }
}

/// `base` with the fields of `extra` added (both JSON objects).
pub fn with_fields(mut base: Value, extra: Value) -> Value {
    if let (Some(obj), Value::Object(extra)) = (base.as_object_mut(), extra) {
        obj.extend(extra);
    }
    base
}

/// `<prefix>. 错误信息: …` for a failed gateway call: Alipay's message and what to do about it, or
/// what happened on the way and `then` (what the caller should do next).
pub fn failure_text(prefix: &str, e: &Error, then: &str) -> String {
    match e {
        Error::Business(g) => format!("{prefix}. 错误信息: {}. {}", alipay_message(g), advice(g)),
        other => format!("{prefix}. 错误信息: {} {then}", transport_message(other)),
    }
}

/// The `error` object of structured output for a failed gateway call.
pub fn error_json(e: &Error) -> Value {
    match e {
        Error::Business(g) => json!({
            "kind": "alipay",
            "code": g.code,
            "msg": g.msg,
            "subCode": g.sub_code,
            "subMsg": g.sub_msg,
        }),
        other => json!({
            "kind": error_kind(other),
            "message": other.to_string(),
            "outcomeUnknown": other.outcome_unknown(),
        }),
    }
}

fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::Timeout(_) => "timeout",
        Error::Connect(_) => "connect",
        Error::HttpStatus(_) => "http_status",
        Error::TooLarge(_) => "response_too_large",
        Error::Transport(_) => "transport",
        Error::Response(ResponseError::BadSignature(_) | ResponseError::MissingSignature) => {
            "response_signature"
        }
        Error::Response(_) => "malformed_response",
        Error::Business(_) => "alipay",
        Error::Sign(_) => "signing",
    }
}

/// `<sub_msg> (<sub_code>)`, the way the reference's `错误信息:` is followed here.
pub fn alipay_message(g: &GatewayError) -> String {
    match (&g.sub_msg, &g.sub_code) {
        (Some(m), Some(c)) => format!("{m} ({c})"),
        (None, Some(c)) => format!("{} ({c})", g.msg),
        (Some(m), None) => format!("{m} ({})", g.code),
        (None, None) => format!("{} ({})", g.msg, g.code),
    }
}

/// What the caller should do about a business failure.
pub fn advice(g: &GatewayError) -> &'static str {
    match g.sub_code.as_deref().unwrap_or_default() {
        "ACQ.TRADE_NOT_EXIST" | "TRADE_NOT_EXIST" => {
            "Alipay has no trade with this outTradeNo: check the number; a payment link's trade exists only after the buyer opens it."
        }
        "ACQ.SYSTEM_ERROR" | "isp.unknow-error" | "aop.unknow-error" => {
            "Alipay had a temporary error. Call again with the same arguments (for a refund, the same outRequestNo)."
        }
        "ACQ.REASON_TRADE_REFUND_FEE_ERR"
        | "ACQ.REFUND_FEE_ERROR"
        | "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL" => {
            "The refund amount is more than what remains refundable on this trade; query the payment and refund at most the remainder."
        }
        "ACQ.DISCORDANT_REPEAT_REQUEST" => {
            "This outRequestNo was already used for a refund with a different amount. To retry that refund, repeat its amount; for a new refund, use a new outRequestNo."
        }
        "ACQ.TRADE_STATUS_ERROR" => {
            "The trade is not in a state that allows this (unpaid, or already closed)."
        }
        "ACQ.TRADE_HAS_FINISHED" => "The trade has finished and can no longer be refunded.",
        "ACQ.TRADE_HAS_CLOSE" => "The trade is closed.",
        "ACQ.TRADE_HAS_SUCCESS" => "The trade is already paid.",
        "ACQ.SELLER_BALANCE_NOT_ENOUGH" => {
            "The merchant account balance is too low for this refund."
        }
        "ACQ.TRADE_NOT_ALLOW_REFUND" => "This trade's contract does not allow refunds.",
        "ACQ.INVALID_PARAMETER" => "Alipay rejected a parameter; check the amounts and numbers.",
        "isv.invalid-signature" => {
            "Alipay could not verify our request: AP_APP_KEY does not match the application public key set in the Alipay console, or AP_ENCRYPTION_ALGO differs from the console's setting."
        }
        "isv.invalid-app-id" => {
            "Alipay does not know AP_APP_ID in this environment (prod vs sandbox?)."
        }
        "isv.missing-signature-config" | "isv.missing-signature-key" => {
            "No public key is configured for this app in the Alipay console (or the restricted key has no signing method)."
        }
        "isv.insufficient-isv-permissions" | "isv.invalid-open-scene-api-permission" => {
            "The app is not allowed to call this API: add the product / tick this tool for the key in the Alipay console."
        }
        "isv.invalid-cloud-app-permission" => {
            "The Alipay MCP Server switch is not enabled for this app in the console."
        }
        "isv.invalid-timestamp" => "Alipay rejected the request time; check the server clock.",
        _ => "See Alipay's message above.",
    }
}

/// The sentence for a failure that is not Alipay's business answer.
pub fn transport_message(e: &Error) -> String {
    match e {
        Error::Response(ResponseError::BadSignature(_) | ResponseError::MissingSignature) => {
            format!(
                "{e}. The answer was not trusted. If every call fails this way, AP_PUB_KEY is probably not the Alipay public key of this app (a common mistake is the app's own public key)."
            )
        }
        Error::Connect(_) => format!(
            "{e}. Nothing reached Alipay; check the network or AP_GATEWAY_URL and call again."
        ),
        other => format!("{other}."),
    }
}
