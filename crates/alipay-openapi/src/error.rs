//! Every way the protocol can fail, as enums. Messages name the key, field or rule; they never
//! contain key material or a signature.

use std::time::Duration;

/// A key could not be loaded. `label` is the caller's name for the key (e.g. `AP_APP_KEY`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{label}: {problem}")]
pub struct KeyError {
    pub label: String,
    pub problem: KeyProblem,
}

impl KeyError {
    pub(crate) fn new(label: &str, problem: KeyProblem) -> Self {
        Self {
            label: label.to_string(),
            problem,
        }
    }
}

/// What is wrong with a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyProblem {
    #[error("the key is empty")]
    Empty,
    #[error("{0}")]
    File(String),
    #[error("malformed PEM: {0}")]
    Pem(String),
    #[error("the PEM key is encrypted; give the unencrypted key")]
    Encrypted,
    #[error("not valid Base64: {0}")]
    Base64(String),
    #[error(
        "not an RSA key in any known form (PKCS#8, PKCS#1, SubjectPublicKeyInfo); is it truncated?"
    )]
    NotAKey,
    #[error("not an RSA key (algorithm {0}); Alipay uses RSA keys")]
    NotRsa(String),
    #[error(
        "this is a public key, but a private key is needed here (the application private key you generated, not a public key from the console)"
    )]
    PublicWherePrivateExpected,
    #[error(
        "this is a private key, but a public key is needed here (the Alipay public key from the console); never share a private key"
    )]
    PrivateWherePublicExpected,
    #[error("the RSA key has {0} bits; at least 2048 are required (RSA2 needs 2048-bit keys)")]
    TooShort(usize),
    #[error("the RSA key is invalid: {0}")]
    Invalid(String),
}

/// Signing failed inside the crypto backend (never for a key that loaded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    #[error("signing failed: {0}")]
    Backend(&'static str),
}

/// A signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    #[error("the signature is missing")]
    Missing,
    #[error("the signature is not valid Base64")]
    NotBase64,
    #[error("the {0} signature does not match the signed content")]
    Mismatch(crate::SignType),
    #[error("unsupported sign_type {0:?} (expected RSA2 or RSA)")]
    UnknownSignType(String),
}

/// A money amount was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AmountError {
    #[error("must be a yuan amount such as 88.80, got an empty value")]
    Empty,
    #[error(
        "must be a yuan amount such as 88.80 (digits, one optional '.', at most two decimals), got {0:?}"
    )]
    NotANumber(String),
    #[error("must be a JSON number or a string, got {0}")]
    WrongType(&'static str),
    #[error("must be a finite number")]
    NotFinite,
    #[error("must have at most two decimal places (fen), got {0}")]
    TooManyDecimals(String),
    #[error("must be at least 0.01, got {0}")]
    NotPositive(String),
    #[error("must be at most 100000000.00, got {0}")]
    TooLarge(String),
}

/// A gateway response body could not be trusted or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    #[error("malformed gateway response: {0}")]
    Malformed(String),
    #[error("the gateway response has neither {0:?} nor \"error_response\"")]
    MissingResponse(String),
    #[error("the gateway response signature is missing")]
    MissingSignature,
    #[error(
        "the gateway response signature does not verify ({0}); the configured Alipay public key (AP_PUB_KEY) may be wrong, or the response was altered"
    )]
    BadSignature(SignatureError),
}

/// An asynchronous notification (or return_url query) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    #[error("malformed notification body: {0}")]
    Malformed(String),
    #[error("notification field {0:?} appears twice with different values")]
    DuplicateField(String),
    #[error("notification field {0:?} is missing")]
    MissingField(&'static str),
    #[error("notification field {field:?} is invalid: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("notification signature: {0}")]
    Signature(SignatureError),
}

/// A gateway request (as the gateway receives it) could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestParseError {
    #[error("parameter {0:?} is given twice with different values")]
    DuplicateParameter(String),
    #[error("malformed request URL: {0}")]
    BadUrl(String),
}

/// A business failure reported by the gateway (`code` ≠ `10000`), after its signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub code: String,
    pub msg: String,
    pub sub_code: Option<String>,
    pub sub_msg: Option<String>,
    /// The verified response object, for fields a caller may still want (e.g. `out_trade_no`).
    pub body: serde_json::Value,
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Alipay answered {} {}", self.code, self.msg)?;
        if let Some(sub_code) = &self.sub_code {
            write!(f, ", {sub_code}")?;
        }
        if let Some(sub_msg) = &self.sub_msg {
            write!(f, ": {sub_msg}")?;
        }
        Ok(())
    }
}

impl std::error::Error for GatewayError {}

/// Everything an API call through [`crate::AlipayClient`] can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("the gateway did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("cannot connect to the gateway: {0}")]
    Connect(String),
    #[error("the gateway answered HTTP {0}")]
    HttpStatus(u16),
    #[error("the gateway response is larger than {0} bytes")]
    TooLarge(usize),
    #[error("transport error: {0}")]
    Transport(String),
    #[error(transparent)]
    Response(#[from] ResponseError),
    #[error(transparent)]
    Business(Box<GatewayError>),
    #[error(transparent)]
    Sign(#[from] SignError),
}

impl From<GatewayError> for Error {
    fn from(e: GatewayError) -> Self {
        Self::Business(Box::new(e))
    }
}

impl Error {
    /// True when the request may have reached the gateway and changed something, so a money-moving
    /// call must be retried with the same request number (or its outcome queried), never a new one.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            Self::Connect(_) | Self::Sign(_) => false,
            Self::Business(e) => {
                e.code == "20000"
                    || matches!(
                        e.sub_code.as_deref(),
                        Some("ACQ.SYSTEM_ERROR" | "isp.unknow-error" | "aop.unknow-error")
                    )
            }
            Self::Timeout(_)
            | Self::HttpStatus(_)
            | Self::TooLarge(_)
            | Self::Transport(_)
            | Self::Response(_) => true,
        }
    }

    /// The gateway's business error, if that is what this is.
    pub fn business(&self) -> Option<&GatewayError> {
        match self {
            Self::Business(e) => Some(e),
            _ => None,
        }
    }
}
