//! Gateway responses: `{"<method>_response":{…},"sign":"…"}`. The signature covers the exact raw
//! text of the response object, so we cut that text out of the body byte for byte (re-serialising
//! would change escapes such as `\/`), verify it, and only then parse it.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::crypto::SignType;
use crate::error::{Error, GatewayError, ResponseError, SignatureError};
use crate::gateway::response_key;
use crate::keys::PublicKey;

/// The pieces of a response body, before any check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawResponse<'a> {
    /// True when the object came under `error_response` rather than `<method>_response`.
    pub is_error_response: bool,
    /// The exact text of the response object: what the gateway signed.
    pub signed_content: &'a str,
    /// The `sign` value, if any.
    pub sign: Option<String>,
    /// `alipay_cert_sn` (certificate mode), if any.
    pub cert_sn: Option<String>,
}

/// A response whose signature verified.
#[derive(Clone, Debug)]
pub struct VerifiedResponse {
    pub is_error_response: bool,
    /// The verified response object.
    pub body: serde_json::Map<String, serde_json::Value>,
}

/// Find `<method>_response` (or, failing that, `error_response`) and `sign` in a body.
pub fn extract_response<'a>(body: &'a str, method: &str) -> Result<RawResponse<'a>, ResponseError> {
    let top: BTreeMap<String, &'a RawValue> = serde_json::from_str(body)
        .map_err(|e| ResponseError::Malformed(format!("not a JSON object ({e})")))?;
    let key = response_key(method);
    let (is_error_response, raw) = match (top.get(&key), top.get("error_response")) {
        (Some(raw), _) => (false, *raw),
        (None, Some(raw)) => (true, *raw),
        (None, None) => return Err(ResponseError::MissingResponse(key)),
    };
    if !raw.get().starts_with('{') {
        return Err(ResponseError::Malformed(format!(
            "{} is not a JSON object",
            if is_error_response {
                "error_response"
            } else {
                key.as_str()
            }
        )));
    }
    let string_field = |name: &str| -> Result<Option<String>, ResponseError> {
        top.get(name)
            .map(|raw| {
                serde_json::from_str::<String>(raw.get())
                    .map_err(|_| ResponseError::Malformed(format!("{name:?} is not a string")))
            })
            .transpose()
    };
    Ok(RawResponse {
        is_error_response,
        signed_content: raw.get(),
        sign: string_field("sign")?,
        cert_sn: string_field("alipay_cert_sn")?,
    })
}

/// Extract and verify a response with the Alipay public key. Nothing in the body is trusted
/// before this returns `Ok`.
pub fn verify_response(
    body: &str,
    method: &str,
    alipay_public_key: &PublicKey,
    sign_type: SignType,
) -> Result<VerifiedResponse, ResponseError> {
    let raw = extract_response(body, method)?;
    let sign = raw
        .sign
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or(ResponseError::MissingSignature)?;
    alipay_public_key
        .verify(sign_type, raw.signed_content, sign)
        .map_err(|e| match e {
            SignatureError::Missing => ResponseError::MissingSignature,
            other => ResponseError::BadSignature(other),
        })?;
    let body = serde_json::from_str(raw.signed_content)
        .map_err(|e| ResponseError::Malformed(format!("response object: {e}")))?;
    Ok(VerifiedResponse {
        is_error_response: raw.is_error_response,
        body,
    })
}

impl VerifiedResponse {
    /// The `code` field (`"10000"` on success).
    pub fn code(&self) -> &str {
        self.body
            .get("code")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    }

    /// Success (`code` = `10000`) as the typed response; anything else as a [`GatewayError`].
    pub fn into_result<T: DeserializeOwned>(self) -> Result<T, Error> {
        let field = |name: &str| {
            self.body
                .get(name)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        if self.code() != "10000" || self.is_error_response {
            return Err(Error::from(GatewayError {
                code: field("code").unwrap_or_default(),
                msg: field("msg").unwrap_or_default(),
                sub_code: field("sub_code"),
                sub_msg: field("sub_msg"),
                body: serde_json::Value::Object(self.body),
            }));
        }
        serde_json::from_value(serde_json::Value::Object(self.body))
            .map_err(|e| Error::Response(ResponseError::Malformed(format!("response fields: {e}"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_exact_text_and_prefers_method_key() {
        let body = r#"{"error_response":{"code":"1"},"alipay_trade_query_response": {"a":"x\/y" ,"b":[1, 2]} ,"sign":"c2ln"}"#;
        let raw = extract_response(body, "alipay.trade.query").unwrap();
        assert_eq!(raw.signed_content, r#"{"a":"x\/y" ,"b":[1, 2]}"#);
        assert!(!raw.is_error_response);
        assert_eq!(raw.sign.as_deref(), Some("c2ln"));
    }

    #[test]
    fn falls_back_to_error_response_and_reports_missing_parts() {
        let raw = extract_response(
            r#"{"error_response":{"code":"40002"}}"#,
            "alipay.trade.query",
        )
        .unwrap();
        assert!(raw.is_error_response);
        assert_eq!(raw.sign, None);
        assert!(matches!(
            extract_response(r#"{"other_response":{}}"#, "alipay.trade.query"),
            Err(ResponseError::MissingResponse(_))
        ));
        assert!(matches!(
            extract_response("<html>", "alipay.trade.query"),
            Err(ResponseError::Malformed(_))
        ));
        assert!(matches!(
            extract_response(
                r#"{"alipay_trade_query_response":{"code":"10000""#,
                "alipay.trade.query"
            ),
            Err(ResponseError::Malformed(_))
        ));
        assert!(matches!(
            extract_response(
                r#"{"alipay_trade_query_response":"x","sign":"a"}"#,
                "alipay.trade.query"
            ),
            Err(ResponseError::Malformed(_))
        ));
    }
}
