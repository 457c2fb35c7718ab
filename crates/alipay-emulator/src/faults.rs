//! Fault injection (`POST /__emulator/faults`): the next `times` calls of a JSON API get a broken
//! answer, so clients can prove they never trust one. Kinds that lose the answer of a request the
//! gateway did execute (`timeout`, `truncated`, `bad_sign`, …) execute it first by default; kinds
//! that mean the gateway refused (`http_500`, `error_response`, `business`, …) do not.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use alipay_openapi::{PrivateKey, SignType, gateway};
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::answer::Fields;
use crate::api::JSON_METHODS;
use crate::codes::Failure;

/// Size of the `huge_body` answer.
pub const HUGE_BODY_BYTES: usize = 10 * 1024 * 1024;

/// What goes wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultKind {
    /// HTTP 500 with an HTML body.
    #[serde(rename = "http_500")]
    Http500,
    /// HTTP 502 with an HTML body (a proxy in front of the gateway).
    #[serde(rename = "http_502")]
    Http502,
    /// Hold the answer for `delay_ms` (default 30 s), then send it.
    #[serde(rename = "timeout")]
    Timeout,
    /// A valid body whose signature does not match.
    #[serde(rename = "bad_sign")]
    BadSign,
    /// A valid body without `sign`.
    #[serde(rename = "no_sign")]
    NoSign,
    /// A body that is not JSON.
    #[serde(rename = "malformed_json")]
    MalformedJson,
    /// A signed `error_response` (default `isp.unknow-error`).
    #[serde(rename = "error_response")]
    ErrorResponse,
    /// A signed business failure (default `40004 ACQ.SYSTEM_ERROR`).
    #[serde(rename = "business")]
    Business,
    /// The connection drops halfway through the body.
    #[serde(rename = "truncated")]
    Truncated,
    /// A correctly signed answer padded to 10 MB.
    #[serde(rename = "huge_body")]
    HugeBody,
    /// Signed with a key that is not the platform's.
    #[serde(rename = "wrong_key")]
    WrongKey,
    /// A correctly signed answer about another order.
    #[serde(rename = "other_order")]
    OtherOrder,
}

impl FaultKind {
    /// Answer-loss kinds run the request first by default; refusals do not.
    pub fn processes_by_default(self) -> bool {
        !matches!(
            self,
            Self::Http500 | Self::Http502 | Self::ErrorResponse | Self::Business
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Http500 => "http_500",
            Self::Http502 => "http_502",
            Self::Timeout => "timeout",
            Self::BadSign => "bad_sign",
            Self::NoSign => "no_sign",
            Self::MalformedJson => "malformed_json",
            Self::ErrorResponse => "error_response",
            Self::Business => "business",
            Self::Truncated => "truncated",
            Self::HugeBody => "huge_body",
            Self::WrongKey => "wrong_key",
            Self::OtherOrder => "other_order",
        }
    }
}

/// The body of `POST /__emulator/faults`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultSpec {
    /// A JSON API method; absent or `*` for every one.
    pub method: Option<String>,
    pub kind: FaultKind,
    pub sub_code: Option<String>,
    pub times: Option<u32>,
    pub delay_ms: Option<u64>,
    pub process: Option<bool>,
}

/// A registered fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Fault {
    /// `None`: any JSON API.
    pub method: Option<String>,
    pub kind: FaultKind,
    pub sub_code: Option<String>,
    pub remaining: u32,
    pub delay_ms: u64,
    pub process: bool,
}

/// Why a fault spec was refused (400).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FaultSpecError {
    #[error(
        "method {0:?} is not a JSON API the emulator answers (faults apply to: {methods})",
        methods = JSON_METHODS.join(", ")
    )]
    UnknownMethod(String),
    #[error("times must be at least 1")]
    ZeroTimes,
    #[error("delay_ms must be at most 600000 (10 minutes)")]
    DelayTooLong,
}

impl FaultSpec {
    pub(crate) fn into_fault(self) -> Result<Fault, FaultSpecError> {
        let method = match self.method.as_deref() {
            None | Some("*") | Some("") => None,
            Some(m) if JSON_METHODS.contains(&m) => Some(m.to_string()),
            Some(m) => return Err(FaultSpecError::UnknownMethod(m.to_string())),
        };
        let times = self.times.unwrap_or(1);
        if times == 0 {
            return Err(FaultSpecError::ZeroTimes);
        }
        let default_delay = if self.kind == FaultKind::Timeout {
            30_000
        } else {
            0
        };
        let delay_ms = self.delay_ms.unwrap_or(default_delay);
        if delay_ms > 600_000 {
            return Err(FaultSpecError::DelayTooLong);
        }
        Ok(Fault {
            method,
            kind: self.kind,
            sub_code: self.sub_code.filter(|s| !s.is_empty()),
            remaining: times,
            delay_ms,
            process: self.process.unwrap_or(self.kind.processes_by_default()),
        })
    }
}

/// The registered faults, first registered first used.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    list: Vec<Fault>,
}

impl Faults {
    pub(crate) fn add(&mut self, fault: Fault) {
        self.list.push(fault);
    }

    pub(crate) fn clear(&mut self) {
        self.list.clear();
    }

    pub(crate) fn list(&self) -> Vec<Fault> {
        self.list.clone()
    }

    /// Use up one call of the first fault that matches `method`.
    pub(crate) fn take(&mut self, method: &str) -> Option<Fault> {
        let index = self
            .list
            .iter()
            .position(|f| f.method.as_deref().is_none_or(|m| m == method))?;
        let fault = &mut self.list[index];
        fault.remaining -= 1;
        let taken = fault.clone();
        if fault.remaining == 0 {
            self.list.remove(index);
        }
        Some(taken)
    }
}

/// Everything needed to write a (faulty or not) JSON answer.
pub(crate) struct AnswerParts<'a> {
    /// `<method>_response`.
    pub key: &'a str,
    pub inner: &'a Fields,
    pub sign_type: SignType,
    pub platform_key: &'a PrivateKey,
    /// The order the request named, for `business` and `other_order`.
    pub out_trade_no: Option<&'a str>,
}

/// A normal answer: signed, `text/html;charset=utf-8` as Alipay labels it.
pub(crate) fn normal_answer(parts: &AnswerParts<'_>) -> Response {
    let inner = parts.inner.to_alipay_json();
    signed(parts.key, &inner, parts.platform_key, parts.sign_type)
}

/// The answer `fault` turns the request into. `parts.inner` is the real answer when the request
/// was processed, or the failure the gateway would give otherwise.
pub(crate) fn faulty_answer(
    fault: &Fault,
    parts: &AnswerParts<'_>,
    wrong_key: impl FnOnce() -> Option<PrivateKey>,
) -> Response {
    let key = parts.key;
    let sign_type = parts.sign_type;
    let inner = parts.inner.to_alipay_json();
    match fault.kind {
        FaultKind::Http500 => html_status(StatusCode::INTERNAL_SERVER_ERROR),
        FaultKind::Http502 => html_status(StatusCode::BAD_GATEWAY),
        FaultKind::Timeout => normal_answer(parts),
        FaultKind::BadSign => {
            let sign = sign_text(&inner, parts.platform_key, sign_type);
            // Another first Base64 character: still valid Base64, a different signature value.
            let flipped = match sign.chars().next() {
                Some('A') => format!("B{}", &sign[1..]),
                Some(_) => format!("A{}", &sign[1..]),
                None => "AAAA".to_string(),
            };
            text_html(gateway::response_body(key, &inner, Some(&flipped)))
        }
        FaultKind::NoSign => text_html(gateway::response_body(key, &inner, None)),
        FaultKind::MalformedJson => {
            let sign = sign_text(&inner, parts.platform_key, sign_type);
            let cut = &inner[..inner.len().saturating_sub(1)];
            text_html(format!("{{\"{key}\":{cut},\"sign\":\"{sign}\""))
        }
        FaultKind::ErrorResponse => {
            let sub_code = fault.sub_code.as_deref().unwrap_or("isp.unknow-error");
            let inner = Fields::failure(&Failure::for_sub_code(sub_code));
            signed(
                "error_response",
                &inner.to_alipay_json(),
                parts.platform_key,
                sign_type,
            )
        }
        FaultKind::Business => {
            let sub_code = fault.sub_code.as_deref().unwrap_or("ACQ.SYSTEM_ERROR");
            let mut inner = Fields::failure(&Failure::for_sub_code(sub_code));
            inner.opt("out_trade_no", parts.out_trade_no);
            signed(key, &inner.to_alipay_json(), parts.platform_key, sign_type)
        }
        FaultKind::Truncated => {
            let body = signed_text(key, &inner, parts.platform_key, sign_type);
            truncated(body)
        }
        FaultKind::HugeBody => {
            let mut body = signed_text(key, &inner, parts.platform_key, sign_type);
            // JSON whitespace before the closing brace: still a valid, correctly signed answer.
            body.pop();
            body.push_str(&" ".repeat(HUGE_BODY_BYTES.saturating_sub(body.len() + 1)));
            body.push('}');
            text_html(body)
        }
        FaultKind::WrongKey => match wrong_key() {
            Some(other) => signed(key, &inner, &other, sign_type),
            None => html_status(StatusCode::INTERNAL_SERVER_ERROR),
        },
        FaultKind::OtherOrder => {
            let mut other = parts.inner.clone();
            let asked = parts
                .out_trade_no
                .or_else(|| parts.inner.get_str("out_trade_no"))
                .unwrap_or("ORDER");
            other.str("out_trade_no", &format!("{asked}_OTHER"));
            signed(key, &other.to_alipay_json(), parts.platform_key, sign_type)
        }
    }
}

fn sign_text(inner: &str, key: &PrivateKey, sign_type: SignType) -> String {
    key.sign(sign_type, inner).unwrap_or_default()
}

fn signed_text(key: &str, inner: &str, platform_key: &PrivateKey, sign_type: SignType) -> String {
    let sign = sign_text(inner, platform_key, sign_type);
    gateway::response_body(key, inner, Some(&sign))
}

fn signed(key: &str, inner: &str, platform_key: &PrivateKey, sign_type: SignType) -> Response {
    text_html(signed_text(key, inner, platform_key, sign_type))
}

/// Alipay labels its JSON answers `text/html;charset=utf-8`.
pub(crate) fn text_html(body: String) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html;charset=utf-8"),
    );
    response
}

fn html_status(status: StatusCode) -> Response {
    let text = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        "<html><head><title>{code} {text}</title></head><body><h1>{code} {text}</h1></body></html>",
        code = status.as_u16()
    );
    (status, text_html(body)).into_response()
}

/// The first half of the body, then the connection drops: `Content-Length` promises the rest.
fn truncated(body: String) -> Response {
    let full = body.len();
    let half = Bytes::from(body.into_bytes()).slice(..full / 2);
    let mut response = Response::new(Body::new(TruncatedBody {
        first: Some(half),
        full: full as u64,
    }));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html;charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(full as u64));
    response
}

struct TruncatedBody {
    first: Option<Bytes>,
    full: u64,
}

impl http_body::Body for TruncatedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Poll::Ready(Some(match self.first.take() {
            Some(data) => Ok(http_body::Frame::data(data)),
            None => Err(std::io::Error::other("answer truncated on purpose")),
        }))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.full)
    }
}

/// How long to hold the answer.
pub(crate) fn delay(fault: &Fault) -> Duration {
    Duration::from_millis(fault.delay_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Result<Fault, String> {
        serde_json::from_str::<FaultSpec>(json)
            .map_err(|e| e.to_string())?
            .into_fault()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_follow_the_kind() {
        let f = spec(r#"{"method":"alipay.trade.query","kind":"timeout"}"#).unwrap();
        assert_eq!((f.remaining, f.delay_ms, f.process), (1, 30_000, true));
        let f = spec(r#"{"kind":"http_500","times":3}"#).unwrap();
        assert_eq!((f.method, f.remaining, f.process), (None, 3, false));
        let f = spec(r#"{"kind":"business","process":true}"#).unwrap();
        assert!(f.process);
        assert!(spec(r#"{"kind":"nope"}"#).is_err());
        assert!(spec(r#"{"kind":"http_500","extra":1}"#).is_err());
        assert!(
            spec(r#"{"method":"alipay.trade.page.pay","kind":"http_500"}"#)
                .unwrap_err()
                .contains("not a JSON API")
        );
        assert!(spec(r#"{"kind":"http_500","times":0}"#).is_err());
    }

    #[test]
    fn take_counts_down_and_matches_method() {
        let mut faults = Faults::default();
        faults.add(spec(r#"{"method":"alipay.trade.refund","kind":"no_sign","times":2}"#).unwrap());
        assert!(faults.take("alipay.trade.query").is_none());
        assert!(faults.take("alipay.trade.refund").is_some());
        assert_eq!(faults.list()[0].remaining, 1);
        assert!(faults.take("alipay.trade.refund").is_some());
        assert!(faults.take("alipay.trade.refund").is_none());
        faults.add(spec(r#"{"kind":"no_sign"}"#).unwrap());
        assert!(faults.take("alipay.trade.close").is_some());
    }
}
