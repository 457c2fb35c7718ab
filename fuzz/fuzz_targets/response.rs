//! Gateway responses: `response::extract_response` and `verify_response` on any body, and — with
//! the body signed by the platform key — the typed answers of every JSON API. Never a panic; the
//! signed text is cut out of the body; a correctly signed object always verifies.
#![no_main]

use std::sync::LazyLock;

use alipay_openapi::response::{extract_response, verify_response};
use alipay_openapi::{
    PrivateKey, PublicKey, RefundQueryResponse, SignType, TradeCloseResponse,
    TradePrecreateResponse, TradeQueryResponse, TradeRefundResponse, gateway,
};
use libfuzzer_sys::fuzz_target;

static PLATFORM: LazyLock<PrivateKey> = LazyLock::new(|| {
    PrivateKey::load(
        "platform",
        include_str!("../../testdata/alipay-vectors/keys/alipay-private-pkcs8.pem"),
    )
    .unwrap()
});
static PLATFORM_PUBLIC: LazyLock<PublicKey> = LazyLock::new(|| PLATFORM.public_key().clone());

const METHODS: [&str; 6] = [
    "alipay.trade.query",
    "alipay.trade.refund",
    "alipay.trade.fastpay.refund.query",
    "alipay.trade.close",
    "alipay.trade.precreate",
    "alipay.trade.page.pay",
];

fn typed(method: &str, verified: alipay_openapi::response::VerifiedResponse) {
    match method {
        "alipay.trade.query" => drop(verified.into_result::<TradeQueryResponse>()),
        "alipay.trade.refund" => drop(verified.into_result::<TradeRefundResponse>()),
        "alipay.trade.fastpay.refund.query" => drop(verified.into_result::<RefundQueryResponse>()),
        "alipay.trade.close" => drop(verified.into_result::<TradeCloseResponse>()),
        "alipay.trade.precreate" => drop(verified.into_result::<TradePrecreateResponse>()),
        _ => drop(verified.into_result::<serde_json::Value>()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let method = METHODS[(mode & 0x7f) as usize % METHODS.len()];
    let Ok(body) = std::str::from_utf8(rest) else {
        return;
    };
    let sign_type = if mode & 0x40 == 0 {
        SignType::Rsa2
    } else {
        SignType::Rsa
    };
    if mode & 0x80 == 0 {
        // Any body, as the network delivers it.
        if let Ok(raw) = extract_response(body, method) {
            let start = raw.signed_content.as_ptr() as usize - body.as_ptr() as usize;
            assert!(start + raw.signed_content.len() <= body.len());
            assert!(raw.signed_content.starts_with('{'));
        }
        if let Ok(verified) = verify_response(body, method, &PLATFORM_PUBLIC, sign_type) {
            typed(method, verified);
        }
    } else {
        // The fuzz input as the response object, signed as the gateway signs it.
        let Ok(sign) = PLATFORM.sign(sign_type, body) else {
            return;
        };
        let key = if mode & 0x20 == 0 {
            gateway::response_key(method)
        } else {
            "error_response".to_string()
        };
        let full = gateway::response_body(&key, body, Some(&sign));
        let verdict = verify_response(&full, method, &PLATFORM_PUBLIC, sign_type);
        let is_object = body.trim() == body
            && serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(body).is_ok();
        if is_object {
            let verified = verdict.unwrap_or_else(|e| panic!("a signed object must verify: {e}"));
            typed(method, verified);
        }
    }
});
