//! The gateway side of the protocol (what Alipay does, and what our emulator does): read a
//! request's parameters from its query string and form body, rebuild the sign content, verify it
//! with the application's public key, and write signed JSON responses.

use std::borrow::Cow;

use crate::crypto::SignType;
use crate::error::{RequestParseError, SignError, SignatureError};
use crate::keys::{PrivateKey, PublicKey};
use crate::sign_content::sign_content;

/// The parameters of one gateway request, query string and form body merged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GatewayRequest {
    params: Vec<(String, String)>,
}

/// Why a request's signature was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestVerifyError {
    /// No `sign` parameter.
    MissingSign,
    /// No `sign_type` parameter.
    MissingSignType,
    /// `sign_type` is neither `RSA2` nor `RSA`.
    UnknownSignType(String),
    /// The signature does not match the content the gateway rebuilt (returned for the error text).
    Mismatch { sign_content: String },
}

impl GatewayRequest {
    /// Merge the query string and an `application/x-www-form-urlencoded` body, each decoded once
    /// with form rules (`+` is a space). A parameter given twice with different values is refused.
    pub fn from_parts(
        query: Option<&str>,
        form_body: Option<&[u8]>,
    ) -> Result<Self, RequestParseError> {
        let mut params: Vec<(String, String)> = Vec::new();
        let query_pairs = query
            .map(|q| form_urlencoded::parse(q.as_bytes()))
            .into_iter()
            .flatten();
        let body_pairs = form_body.map(form_urlencoded::parse).into_iter().flatten();
        for (k, v) in query_pairs.chain(body_pairs) {
            match params.iter().find(|(key, _)| key.as_str() == k) {
                Some((_, existing)) if existing.as_str() == v => {}
                Some(_) => return Err(RequestParseError::DuplicateParameter(k.into_owned())),
                None => params.push((k.into_owned(), v.into_owned())),
            }
        }
        Ok(Self { params })
    }

    /// From a full link (`https://host/gateway.do?…`), as a browser would send it.
    pub fn from_url(url: &str) -> Result<Self, RequestParseError> {
        let query = url
            .split_once('?')
            .map(|(_, q)| q)
            .ok_or_else(|| RequestParseError::BadUrl("no query string".into()))?;
        let query = query.split('#').next().unwrap_or_default();
        Self::from_parts(Some(query), None)
    }

    /// The value of a parameter, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A present, non-empty parameter.
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// Every parameter in arrival order.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The content the gateway verifies: all parameters but `sign`, empty values dropped, sorted.
    pub fn sign_content(&self) -> String {
        sign_content(self.params())
    }

    /// Verify the request's signature with the application's public key, using its `sign_type`.
    pub fn verify(&self, app_public_key: &PublicKey) -> Result<SignType, RequestVerifyError> {
        let sign = self
            .non_empty("sign")
            .ok_or(RequestVerifyError::MissingSign)?;
        let sign_type = self
            .non_empty("sign_type")
            .ok_or(RequestVerifyError::MissingSignType)?;
        let sign_type: SignType = sign_type
            .parse()
            .map_err(|_| RequestVerifyError::UnknownSignType(sign_type.to_string()))?;
        let content = self.sign_content();
        match app_public_key.verify(sign_type, &content, sign) {
            Ok(()) => Ok(sign_type),
            Err(SignatureError::Missing) => Err(RequestVerifyError::MissingSign),
            Err(_) => Err(RequestVerifyError::Mismatch {
                sign_content: content,
            }),
        }
    }
}

/// `alipay.trade.query` → `alipay_trade_query_response`.
pub fn response_key(method: &str) -> String {
    let mut key = method.replace('.', "_");
    key.push_str("_response");
    key
}

/// Serialise a response object the way Alipay does: compact, raw UTF-8, `/` escaped as `\/`.
pub fn to_alipay_json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    let json = serde_json::to_string(value).unwrap_or_else(|_| "{}".to_string());
    // In compact JSON a `/` can only occur inside a string, so this escapes exactly the strings.
    match json.contains('/') {
        true => json.replace('/', "\\/"),
        false => json,
    }
}

/// The full response body: `{"<key>":<inner>,"sign":"<signature over inner>"}`.
pub fn signed_response_body(
    key: &str,
    inner: &str,
    platform_key: &PrivateKey,
    sign_type: SignType,
) -> Result<String, SignError> {
    let sign = platform_key.sign(sign_type, inner)?;
    Ok(response_body(key, inner, Some(&sign)))
}

/// A response body with the given signature (or none). The emulator uses this to inject faults.
pub fn response_body(key: &str, inner: &str, sign: Option<&str>) -> String {
    let key: Cow<'_, str> = serde_json::to_string(key)
        .map(Cow::Owned)
        .unwrap_or(Cow::Borrowed("\"error_response\""));
    match sign {
        Some(sign) => format!("{{{key}:{inner},\"sign\":\"{sign}\"}}"),
        None => format!("{{{key}:{inner}}}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_query_and_body_and_refuses_conflicts() {
        let r = GatewayRequest::from_parts(Some("a=1&b=x+y"), Some(b"c=%E4%B8%AD&a=1")).unwrap();
        assert_eq!(r.get("b"), Some("x y"));
        assert_eq!(r.get("c"), Some("中"));
        assert_eq!(r.sign_content(), "a=1&b=x y&c=中");
        assert_eq!(
            GatewayRequest::from_parts(Some("a=1"), Some(b"a=2")),
            Err(RequestParseError::DuplicateParameter("a".into()))
        );
    }

    #[test]
    fn alipay_json_escapes_slashes_and_keeps_utf8() {
        let v = serde_json::json!({"u": "https://a/b", "s": "交易"});
        assert_eq!(to_alipay_json(&v), r#"{"s":"交易","u":"https:\/\/a\/b"}"#);
        assert_eq!(
            response_key("alipay.trade.fastpay.refund.query"),
            "alipay_trade_fastpay_refund_query_response"
        );
    }
}
