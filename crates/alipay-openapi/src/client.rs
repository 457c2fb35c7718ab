//! An async client for the JSON APIs, and payment links. Each call is signed, POSTed, its raw
//! response verified with the Alipay public key, then parsed; a business failure comes back as
//! [`Error::Business`] only after its signature verified too.

use std::sync::Arc;
use std::time::Duration;

use crate::api::{ApiRequest, PayOrder};
use crate::error::{Error, ResponseError, SignError};
use crate::keys::PublicKey;
use crate::request::{Merchant, NODE_SDK_ID, RequestOptions};
use crate::response::{VerifiedResponse, verify_response};
use crate::time::timestamp_now;
use crate::transport::{HttpTransport, Transport};

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
    transport: Arc<dyn Transport>,
}

impl AlipayClient {
    /// A client that reaches `config.gateway_url` over HTTP(S).
    pub fn new(config: ClientConfig) -> Result<Self, Error> {
        let transport = HttpTransport::new(config.connect_timeout, config.timeout);
        Ok(Self::with_transport(config, Arc::new(transport)))
    }

    /// A client whose requests go through `transport` (still signed for, and addressed to,
    /// `config.gateway_url`).
    pub fn with_transport(config: ClientConfig, transport: Arc<dyn Transport>) -> Self {
        Self {
            config: Arc::new(config),
            transport,
        }
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
        let send = self
            .transport
            .post(&url, form, self.config.max_response_bytes);
        // An HTTP transport enforces the timeout too; this bounds anything it does not cover.
        tokio::time::timeout(timeout + Duration::from_millis(50), send)
            .await
            .unwrap_or(Err(Error::Timeout(timeout)))
    }
}
