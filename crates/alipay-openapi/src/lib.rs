//! The Alipay OpenAPI v2 gateway protocol (`gateway.do`), exactly: keys in every form Alipay hands
//! out, request signing and payment links byte-compatible with the official SDKs, response and
//! notification verification over the exact signed bytes, money in integer fen, Beijing time, and
//! an async client. It knows nothing of MCP or of the emulator; both build on it.
//!
//! Crypto: RSA2 (SHA256withRSA) signing and all verification through aws-lc; legacy RSA
//! (SHA1withRSA) signing through the pure-Rust `rsa` crate.

mod amount;
pub mod api;
pub mod bill;
mod client;
mod crypto;
mod error;
pub mod gateway;
mod keys;
pub mod notify;
mod request;
pub mod response;
mod sign_content;
pub mod time;
pub mod transport;

pub use amount::{Amount, MAX_FEN, Money};
pub use api::{
    AipayTradePrecreate, AipayTradePrecreateResponse, AmountStyle, ApiRequest,
    BillDownloadUrlQuery, BillDownloadUrlQueryResponse, PayKind, PayOrder, RefundQuery,
    RefundQueryResponse, TradeClose, TradeCloseResponse, TradePrecreate, TradePrecreateResponse,
    TradeQuery, TradeQueryResponse, TradeRefund, TradeRefundResponse, TradeStatus,
};
pub use client::{
    AlipayClient, ClientConfig, DEFAULT_MAX_RESPONSE_BYTES, PROD_GATEWAY, SANDBOX_GATEWAY,
};
pub use crypto::SignType;
pub use error::{
    AmountError, Error, GatewayError, KeyError, KeyProblem, NotifyError, RequestParseError,
    ResponseError, SignError, SignatureError,
};
pub use gateway::{GatewayRequest, RequestVerifyError};
pub use keys::{MIN_RSA_BITS, PrivateKey, PrivateKeyDer, PublicKey};
pub use notify::{SignedFields, TradeNotification};
pub use request::{Merchant, NODE_SDK_ID, RequestOptions, SignedRequest};
pub use sign_content::{notify_sign_content, sign_content};
pub use transport::{HttpTransport, PostFuture, Transport};
