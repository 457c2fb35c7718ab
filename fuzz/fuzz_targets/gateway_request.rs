//! The emulator's gateway: `GatewayRequest::from_parts` on any query string and form body, then
//! the `/gateway.do` handler itself (common checks, JSON APIs, trade rules, cashier) through
//! `alipay_emulator::fuzzing::GatewayHarness`. Half the inputs are turned into correctly signed
//! requests of a registered app, so the fuzzer gets past the signature check into `biz_content`
//! and the trade state machine. Never a panic; every JSON API answer verifies with the platform
//! key.
#![no_main]

use std::cell::RefCell;
use std::sync::LazyLock;

use alipay_emulator::AppConfig;
use alipay_emulator::fuzzing::GatewayHarness;
use alipay_openapi::{GatewayRequest, PrivateKey, PublicKey, SignType, response::verify_response};
use libfuzzer_sys::fuzz_target;

const APP_ID: &str = "2021000000000001";

static PLATFORM: LazyLock<PrivateKey> = LazyLock::new(|| {
    PrivateKey::load(
        "platform",
        include_str!("../../testdata/alipay-vectors/keys/alipay-private-pkcs8.pem"),
    )
    .unwrap()
});
static APP: LazyLock<PrivateKey> = LazyLock::new(|| {
    PrivateKey::load(
        "app",
        include_str!("../../testdata/alipay-vectors/keys/app-private-pkcs8.pem"),
    )
    .unwrap()
});
static PLATFORM_PUBLIC: LazyLock<PublicKey> = LazyLock::new(|| PLATFORM.public_key().clone());

const METHODS: [&str; 8] = [
    "alipay.trade.query",
    "alipay.trade.refund",
    "alipay.trade.fastpay.refund.query",
    "alipay.trade.close",
    "alipay.trade.precreate",
    "alipay.trade.wap.pay",
    "alipay.trade.page.pay",
    "alipay.trade.create",
];
const JSON_METHODS: [&str; 5] = [
    "alipay.trade.query",
    "alipay.trade.refund",
    "alipay.trade.fastpay.refund.query",
    "alipay.trade.close",
    "alipay.trade.precreate",
];

thread_local! {
    /// The harness, renewed every few thousand inputs so the in-memory store stays small.
    static HARNESS: RefCell<(usize, Option<GatewayHarness>)> = const { RefCell::new((0, None)) };
}

fn with_harness<R>(f: impl FnOnce(&GatewayHarness) -> R) -> R {
    HARNESS.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.1.is_none() || cell.0 >= 5000 {
            let app = AppConfig::new(APP_ID, APP.public_key().clone());
            cell.1 = Some(GatewayHarness::new(PLATFORM.clone(), app).expect("runtime"));
            cell.0 = 0;
        }
        cell.0 += 1;
        f(cell.1.as_ref().unwrap())
    })
}

/// A JSON API's answer always carries a signature the merchant can check.
fn check_answer(method: Option<&str>, sign_type: SignType, status: u16, body: &[u8]) {
    let Some(method) = method.filter(|m| JSON_METHODS.contains(m)) else {
        return;
    };
    assert_eq!(status, 200, "JSON APIs answer 200");
    let text = std::str::from_utf8(body).expect("UTF-8 answer");
    verify_response(text, method, &PLATFORM_PUBLIC, sign_type)
        .unwrap_or_else(|e| panic!("unverifiable answer to {method}: {e}: {text}"));
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // Query string | body, split at the first 0xFF (never in UTF-8).
    let (query, body) = match rest.iter().position(|&b| b == 0xff) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&rest[..0], rest),
    };
    let Ok(query) = std::str::from_utf8(query) else {
        return;
    };
    if mode & 1 == 0 {
        // Raw: whatever arrives on the wire.
        if let Ok(request) = GatewayRequest::from_parts(Some(query), Some(body)) {
            let _ = request.sign_content();
            let _ = request.verify(APP.public_key());
        }
        let content_type = match mode >> 1 & 3 {
            0 => None,
            1 => Some("application/x-www-form-urlencoded; charset=utf-8"),
            2 => Some("multipart/form-data; boundary=x"),
            _ => Some("text/plain"),
        };
        let (status, answer) = with_harness(|h| {
            h.call(
                mode & 8 == 0,
                (!query.is_empty()).then_some(query),
                content_type,
                body,
            )
        });
        if let Ok(request) = GatewayRequest::from_parts(
            Some(query),
            content_type
                .is_none_or(|t| t.starts_with("application/x-www"))
                .then_some(body),
        ) {
            let sign_type = request
                .non_empty("sign_type")
                .and_then(|t| t.parse().ok())
                .unwrap_or_default();
            check_answer(request.non_empty("method"), sign_type, status, &answer);
        }
        return;
    }
    // Signed: the query is `biz_content`, the body extra form parameters.
    let method = METHODS[(mode >> 1) as usize % METHODS.len()];
    let sign_type = if mode & 0x80 == 0 {
        SignType::Rsa2
    } else {
        SignType::Rsa
    };
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("app_id", APP_ID)
        .append_pair("method", method)
        .append_pair("charset", "utf-8")
        .append_pair("sign_type", sign_type.as_str())
        .append_pair("timestamp", "2026-11-25 10:00:00")
        .append_pair("version", "1.0")
        .append_pair("biz_content", query);
    let mut text = form.finish();
    if !body.is_empty() {
        text.push('&');
        text.push_str(&String::from_utf8_lossy(body));
    }
    let Ok(request) = GatewayRequest::from_parts(None, Some(text.as_bytes())) else {
        with_harness(|h| h.call(true, None, None, text.as_bytes()));
        return;
    };
    let Ok(sign) = APP.sign(sign_type, &request.sign_content()) else {
        return;
    };
    if request.get("sign").is_none() {
        text.push_str("&sign=");
        text.push_str(&form_urlencoded::byte_serialize(sign.as_bytes()).collect::<String>());
    }
    let (status, answer) = with_harness(|h| h.call(true, None, None, text.as_bytes()));
    if let Ok(request) = GatewayRequest::from_parts(None, Some(text.as_bytes())) {
        let sign_type = request
            .non_empty("sign_type")
            .and_then(|t| t.parse().ok())
            .unwrap_or_default();
        check_answer(request.non_empty("method"), sign_type, status, &answer);
    }
});
