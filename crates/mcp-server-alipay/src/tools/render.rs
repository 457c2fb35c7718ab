//! What a tool call produces, independent of MCP: the reference's human text, structured output
//! (serialised from the tool's typed output, whose schema `tools/list` advertises), an optional
//! PNG, and whether it is an error. Also the wording shared by every tool: a failed gateway call
//! (what happened and what to do, with Alipay's `sub_code` and `sub_msg` when Alipay said
//! something), a rejected argument, a guardrail refusal.

use alipay_openapi::{Error, GatewayError, ResponseError};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::domain::guardrail::Guardrail;
use crate::ledger::LedgerError;
use crate::tools::args::ArgError;

#[derive(Clone, Debug, PartialEq)]
pub struct ToolOutcome {
    pub is_error: bool,
    pub text: String,
    pub image_png: Option<Vec<u8>>,
    pub structured: Value,
    /// For an MCP Apps view only: the result's `_meta`, which hosts keep out of the model's
    /// context (the refund approval view's grant).
    pub view_meta: Option<ViewMeta>,
}

/// A result's `_meta` for a view; it may carry a grant, so `Debug` never shows it.
#[derive(Clone, PartialEq)]
pub struct ViewMeta(pub serde_json::Map<String, Value>);

impl std::fmt::Debug for ViewMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ViewMeta(…)")
    }
}

impl ToolOutcome {
    pub fn ok(text: impl Into<String>, structured: &impl Serialize) -> Self {
        Self::new(false, text.into(), structured)
    }

    pub fn error(text: impl Into<String>, structured: &impl Serialize) -> Self {
        Self::new(true, text.into(), structured)
    }

    fn new(is_error: bool, text: String, structured: &impl Serialize) -> Self {
        Self {
            is_error,
            text,
            image_png: None,
            view_meta: None,
            // Output structs are plain data (strings, numbers, options): serialising cannot fail.
            structured: serde_json::to_value(structured).unwrap_or(Value::Null),
        }
    }

    /// A rejected argument: nothing was sent. `empty` is the tool's output with no field set.
    pub fn bad_argument<T: Serialize + WithError>(tool: &str, e: &ArgError, empty: T) -> Self {
        Self::error(
            format!(
                "Invalid arguments for tool {tool}: {e}. Nothing was sent to Alipay; fix the argument and call again."
            ),
            &empty.with_error(ErrorOut::invalid_argument(e)),
        )
    }

    /// A guardrail refusal: the rule and its limit. The limit lives in the server's environment,
    /// out of the model's reach, and the text says so.
    pub fn refused<T: Serialize + WithError>(g: &Guardrail, base: T) -> Self {
        let rule = g.rule().name();
        let why = if rule.starts_with("AP_") {
            "This limit is set in the server's environment by its operator and cannot be changed from the conversation"
        } else {
            "This rule always applies: what was paid comes from Alipay's signed answer just now, what was refunded from Alipay's last report or this server's confirmed refunds, whichever is more, plus this server's refunds still in flight; nothing comes from the conversation"
        };
        Self::error(
            format!(
                "Refused by guardrail {rule}: {}. {why}; nothing was sent to Alipay.",
                g.message()
            ),
            &base.with_error(ErrorOut::guardrail(g)),
        )
    }
}

/// An output struct that can carry an `error` object.
pub trait WithError {
    fn with_error(self, error: ErrorOut) -> Self;
}

/// `WithError` for output structs with an `error: Option<ErrorOut>` field.
macro_rules! with_error_field {
    ($($output:ty),+ $(,)?) => {$(
        impl $crate::tools::render::WithError for $output {
            fn with_error(self, error: $crate::tools::render::ErrorOut) -> Self {
                Self {
                    error: Some(error),
                    ..self
                }
            }
        }
    )+};
}
pub(crate) use with_error_field;

/// The `error` object of structured output: present when the call failed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorOut {
    /// `invalid_argument`, `guardrail`, `conflict`, `alipay`, `ledger`, `in_flight`, `signing`,
    /// `malformed_response`, or how the gateway call failed (`timeout`, `connect`, …).
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_msg: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The argument that was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The call may or may not have taken effect at Alipay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome_unknown: Option<bool>,
    /// The guardrail that refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The guardrail's configured limit, yuan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

impl ErrorOut {
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        Self {
            kind: kind.to_string(),
            message: Some(message.into()),
            ..Self::default()
        }
    }

    pub fn invalid_argument(e: &ArgError) -> Self {
        Self {
            field: Some(e.field.clone()),
            ..Self::new("invalid_argument", e.message.clone())
        }
    }

    pub fn guardrail(g: &Guardrail) -> Self {
        Self {
            rule: Some(g.rule().name().to_string()),
            limit: g.limit().map(|l| l.to_string()),
            ..Self::new("guardrail", g.message())
        }
    }

    pub fn ledger(e: &LedgerError) -> Self {
        Self::new("ledger", e.to_string())
    }

    /// A failed gateway call.
    pub fn gateway(e: &Error) -> Self {
        match e {
            Error::Business(g) => Self {
                kind: "alipay".into(),
                code: Some(g.code.clone()),
                msg: Some(g.msg.clone()),
                sub_code: g.sub_code.clone(),
                sub_msg: g.sub_msg.clone(),
                ..Self::default()
            },
            other => Self {
                outcome_unknown: Some(other.outcome_unknown()),
                ..Self::new(error_kind(other), other.to_string())
            },
        }
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
        _ => "gateway",
    }
}

/// `<prefix>. 错误信息: …` for a failed gateway call: Alipay's message and what to do about it, or
/// what happened on the way and `then` (what the caller should do next).
pub fn failure_text(prefix: &str, e: &Error, then: &str) -> String {
    match e {
        Error::Business(g) => format!("{prefix}. 错误信息: {}. {}", alipay_message(g), advice(g)),
        other => format!("{prefix}. 错误信息: {} {then}", transport_message(other)),
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
