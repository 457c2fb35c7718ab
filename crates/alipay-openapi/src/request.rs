//! The merchant side of a request: common parameters, the signature, and the two transports —
//! a signed GET link for the page APIs and a query string plus form body for the JSON APIs.
//!
//! Layout follows the Node SDK 4.x byte for byte (ALIPAY-PROTOCOL §2.5): common parameters in the
//! query string in insertion order with WHATWG form encoding (space → `+`), `sign` last; then, for
//! links, `alipay_sdk` and `biz_content` with `encodeURIComponent` encoding.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::crypto::SignType;
use crate::error::SignError;
use crate::keys::PrivateKey;
use crate::sign_content::sign_content;

/// The `alipay_sdk` value the reference server's links carry (signed like any parameter).
pub const NODE_SDK_ID: &str = "alipay-sdk-nodejs-4.0.0";

/// `encodeURIComponent` leaves `A–Z a–z 0–9 - _ . ! ~ * ' ( )` alone.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// Who signs requests: the application and its private key.
#[derive(Clone)]
pub struct Merchant {
    pub app_id: String,
    pub private_key: PrivateKey,
    pub sign_type: SignType,
    /// ISV acting for a merchant (`app_auth_token`); `None` for a merchant's own app.
    pub app_auth_token: Option<String>,
}

impl std::fmt::Debug for Merchant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Merchant")
            .field("app_id", &self.app_id)
            .field("private_key", &self.private_key)
            .field("sign_type", &self.sign_type)
            .field(
                "app_auth_token",
                &self.app_auth_token.as_ref().map(|_| "redacted"),
            )
            .finish()
    }
}

/// Optional common parameters of one request. Empty strings count as absent: an empty value is
/// never sent (the gateway drops it from its sign content, so signing it would fail).
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestOptions<'a> {
    pub notify_url: Option<&'a str>,
    pub return_url: Option<&'a str>,
}

/// A signed request, ready to become a link or an HTTP call.
#[derive(Clone, Debug)]
pub struct SignedRequest {
    /// Common parameters in the Node SDK's order, `sign` last.
    query: Vec<(&'static str, String)>,
    /// `alipay_sdk` (links only), then `biz_content`.
    tail: Vec<(&'static str, String)>,
}

impl Merchant {
    /// Sign `method` with `biz_content` (JSON text, sent and signed exactly as given) at
    /// `timestamp` (`yyyy-MM-dd HH:mm:ss`, Beijing). `sdk_id` adds `alipay_sdk` (page links).
    pub fn sign_request(
        &self,
        method: &str,
        biz_content: &str,
        options: RequestOptions<'_>,
        timestamp: &str,
        sdk_id: Option<&str>,
    ) -> Result<SignedRequest, SignError> {
        let present = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(str::to_string);
        let mut query: Vec<(&'static str, String)> = Vec::with_capacity(11);
        query.push(("method", method.to_string()));
        query.push(("app_id", self.app_id.clone()));
        query.push(("charset", "utf-8".to_string()));
        query.push(("version", "1.0".to_string()));
        query.push(("sign_type", self.sign_type.as_str().to_string()));
        query.push(("timestamp", timestamp.to_string()));
        if let Some(v) = present(options.return_url) {
            query.push(("return_url", v));
        }
        if let Some(v) = present(options.notify_url) {
            query.push(("notify_url", v));
        }
        if let Some(v) = present(self.app_auth_token.as_deref()) {
            query.push(("app_auth_token", v));
        }
        let mut tail: Vec<(&'static str, String)> = Vec::with_capacity(2);
        if let Some(v) = present(sdk_id) {
            tail.push(("alipay_sdk", v));
        }
        if !biz_content.is_empty() {
            tail.push(("biz_content", biz_content.to_string()));
        }
        let content = sign_content(
            query
                .iter()
                .chain(tail.iter())
                .map(|(k, v)| (*k, v.as_str())),
        );
        let sign = self.private_key.sign(self.sign_type, &content)?;
        query.push(("sign", sign));
        Ok(SignedRequest { query, tail })
    }
}

impl SignedRequest {
    /// The GET link the browser opens: `<gateway>?<common params>&<alipay_sdk, biz_content>`.
    pub fn page_url(&self, gateway: &str) -> String {
        let mut url = self.exec_url(gateway);
        for (k, v) in &self.tail {
            url.push('&');
            url.push_str(k);
            url.push('=');
            url.extend(utf8_percent_encode(v, URI_COMPONENT));
        }
        url
    }

    /// The POST URL of a JSON API call: the gateway with the common parameters.
    pub fn exec_url(&self, gateway: &str) -> String {
        let mut url = String::with_capacity(gateway.len() + 1024);
        url.push_str(gateway);
        url.push(if gateway.contains('?') { '&' } else { '?' });
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.query {
            ser.append_pair(k, v);
        }
        url.push_str(&ser.finish());
        url
    }

    /// The form body of a JSON API call (`biz_content=…`).
    pub fn form_body(&self) -> String {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.tail {
            ser.append_pair(k, v);
        }
        ser.finish()
    }

    /// Every parameter sent, `sign` included.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.query
            .iter()
            .chain(self.tail.iter())
            .map(|(k, v)| (*k, v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_component_matches_javascript() {
        let s: String = utf8_percent_encode("a b!~*'()-_.&=+/%\"中", URI_COMPONENT).collect();
        assert_eq!(s, "a%20b!~*'()-_.%26%3D%2B%2F%25%22%E4%B8%AD");
    }

    #[test]
    fn form_encoding_matches_urlsearchparams() {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        ser.append_pair("t", "2026-11-25 10:20:30*~!");
        assert_eq!(ser.finish(), "t=2026-11-25+10%3A20%3A30*%7E%21");
    }
}
