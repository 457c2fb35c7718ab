//! An async client for the JSON APIs, and payment links. Each call is signed, POSTed, its raw
//! response verified with the Alipay public key, then parsed; a business failure comes back as
//! [`Error::Business`] only after its signature verified too.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::api::{ApiRequest, PayOrder};
use crate::error::{Error, ResponseError, SignError};
use crate::keys::PublicKey;
use crate::request::{Merchant, NODE_SDK_ID, RequestOptions};
use crate::response::{VerifiedResponse, verify_response};
use crate::time::timestamp_now;

/// Alipay's production gateway.
pub const PROD_GATEWAY: &str = "https://openapi.alipay.com/gateway.do";
/// Alipay's sandbox gateway.
pub const SANDBOX_GATEWAY: &str = "https://openapi-sandbox.dl.alipaydev.com/gateway.do";
/// A response body larger than this is refused (real ones are a few KB).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Everything a client needs. Keys are parsed before they get here, once.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub merchant: Merchant,
    /// The **Alipay** public key (`AP_PUB_KEY`), not the application's own.
    pub alipay_public_key: PublicKey,
    /// `PROD_GATEWAY`, `SANDBOX_GATEWAY`, or any URL (the emulator).
    pub gateway_url: String,
    pub notify_url: Option<String>,
    pub return_url: Option<String>,
    pub connect_timeout: Duration,
    /// Whole request, connect to last body byte.
    pub timeout: Duration,
    pub max_response_bytes: usize,
}

impl ClientConfig {
    pub fn new(
        merchant: Merchant,
        alipay_public_key: PublicKey,
        gateway_url: impl Into<String>,
    ) -> Self {
        Self {
            merchant,
            alipay_public_key,
            gateway_url: gateway_url.into(),
            notify_url: None,
            return_url: None,
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(5),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// A cheap-to-clone client.
#[derive(Clone, Debug)]
pub struct AlipayClient {
    config: Arc<ClientConfig>,
    /// Built on the first request: building it loads the system's root certificates (several
    /// milliseconds and a few hundred KB), which a server that only lists tools or signs links
    /// never needs.
    http: Arc<OnceLock<Result<reqwest::Client, String>>>,
}

impl AlipayClient {
    pub fn new(config: ClientConfig) -> Result<Self, Error> {
        Ok(Self {
            config: Arc::new(config),
            http: Arc::new(OnceLock::new()),
        })
    }

    fn http(&self) -> Result<&reqwest::Client, Error> {
        self.http
            .get_or_init(|| {
                reqwest::Client::builder()
                    .connect_timeout(self.config.connect_timeout)
                    .timeout(self.config.timeout)
                    .user_agent(concat!("alipay-openapi-rust/", env!("CARGO_PKG_VERSION")))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| Error::Transport(e.clone()))
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    fn options(&self, with_notify: bool, with_return: bool) -> RequestOptions<'_> {
        RequestOptions {
            notify_url: self.config.notify_url.as_deref().filter(|_| with_notify),
            return_url: self.config.return_url.as_deref().filter(|_| with_return),
        }
    }

    /// A signed payment link for `order`, timestamped now. No network.
    pub fn payment_link(&self, order: &PayOrder) -> Result<String, SignError> {
        self.payment_link_at(order, &timestamp_now())
    }

    /// A signed payment link at a given timestamp (`yyyy-MM-dd HH:mm:ss`, Beijing).
    pub fn payment_link_at(&self, order: &PayOrder, timestamp: &str) -> Result<String, SignError> {
        let signed = self.config.merchant.sign_request(
            order.kind.method(),
            &order.biz_content(),
            self.options(true, true),
            timestamp,
            Some(NODE_SDK_ID),
        )?;
        Ok(signed.page_url(&self.config.gateway_url))
    }

    /// Call a JSON API and return its typed success answer.
    pub async fn execute<R: ApiRequest>(&self, request: &R) -> Result<R::Response, Error> {
        let verified = self
            .execute_raw(R::METHOD, &request.biz_content(), R::SENDS_NOTIFY_URL)
            .await?;
        // An answer about another order or refund is never taken as this one's.
        for (field, asked, what) in [
            ("out_trade_no", request.out_trade_no(), "order"),
            ("out_request_no", request.out_request_no(), "refund request"),
        ] {
            if let (Some(asked), Some(answered)) =
                (asked, verified.body.get(field).and_then(|v| v.as_str()))
                && asked != answered
            {
                return Err(Error::Response(ResponseError::Malformed(format!(
                    "the gateway answered about {what} {answered:?}, not {asked:?}"
                ))));
            }
        }
        verified.into_result()
    }

    /// Call any method with a ready `biz_content`; the verified response object, whatever its code.
    pub async fn execute_raw(
        &self,
        method: &str,
        biz_content: &str,
        with_notify_url: bool,
    ) -> Result<VerifiedResponse, Error> {
        let signed = self.config.merchant.sign_request(
            method,
            biz_content,
            self.options(with_notify_url, false),
            &timestamp_now(),
            None,
        )?;
        let body = self
            .post(
                signed.exec_url(&self.config.gateway_url),
                signed.form_body(),
            )
            .await?;
        Ok(verify_response(
            &body,
            method,
            &self.config.alipay_public_key,
            self.config.merchant.sign_type,
        )?)
    }

    async fn post(&self, url: String, form: String) -> Result<String, Error> {
        let timeout = self.config.timeout;
        let map_err = |e: reqwest::Error| {
            // The URL carries the request's `sign`: it never goes into an error message.
            let e = e.without_url();
            if e.is_timeout() {
                Error::Timeout(timeout)
            } else if e.is_connect() {
                Error::Connect(error_chain(&e))
            } else {
                Error::Transport(error_chain(&e))
            }
        };
        let http = self.http()?;
        let send = async {
            let mut response = http
                .post(url)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded;charset=utf-8",
                )
                .header(reqwest::header::ACCEPT, "application/json")
                .body(form)
                .send()
                .await
                .map_err(map_err)?;
            let status = response.status();
            if status != reqwest::StatusCode::OK {
                return Err(Error::HttpStatus(status.as_u16()));
            }
            let limit = self.config.max_response_bytes;
            if response
                .content_length()
                .is_some_and(|n| n as usize > limit)
            {
                return Err(Error::TooLarge(limit));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(map_err)? {
                if body.len() + chunk.len() > limit {
                    return Err(Error::TooLarge(limit));
                }
                body.extend_from_slice(&chunk);
            }
            String::from_utf8(body).map_err(|_| {
                Error::Response(ResponseError::Malformed("the body is not UTF-8".into()))
            })
        };
        // reqwest enforces the timeout too; this bounds anything it does not cover.
        tokio::time::timeout(timeout + Duration::from_millis(50), send)
            .await
            .unwrap_or(Err(Error::Timeout(timeout)))
    }
}

/// The error and its causes on one line (reqwest's top-level message alone says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
