//! The cost of a desktop create's QR image against its one signature, on this machine:
//! `cargo run --release -p mcp-server-alipay --example qr_cost` (or `scripts/bench-qr.sh`).
//! Signs a real-size page-pay link's content with the vector app key, then renders the QR PNG of
//! a real-size (about 1 KB) signed link, each many times, and prints the mean of each and their
//! ratio; the goal is a create with its image at ≤ 3× its signature.
//!
//! `qr_cost images N` renders the image N times and nothing else, for an instruction count of one
//! image under `valgrind --tool=callgrind` (exact and repeatable where wall times are noisy; see
//! `scripts/bench-qr.sh --callgrind`).

use std::hint::black_box;
use std::time::Instant;

use alipay_openapi::{PrivateKey, SignType};

const KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/alipay-vectors/keys/app-private-pkcs8.b64"
);

/// Mean seconds per call of `f` over `runs` calls, after a few unmeasured.
fn mean(runs: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..runs / 10 {
        f();
    }
    let t0 = Instant::now();
    for _ in 0..runs {
        f();
    }
    t0.elapsed().as_secs_f64() / f64::from(runs)
}

/// A real-size (about 1 KB) page-pay link signed with `key`, and the content it signs.
fn signed_link(key: &PrivateKey) -> (&'static str, String) {
    let content = "app_id=2021000000000001&biz_content={\"out_trade_no\":\"MCP20261201150102A1B2C3D4E5F6A7B8C9D0E1F2A3B4C5D6\",\"total_amount\":\"128.00\",\"subject\":\"插画委托：头像一张\",\"product_code\":\"FAST_INSTANT_TRADE_PAY\",\"time_expire\":\"2026-12-01 15:31:02\"}&charset=utf-8&format=JSON&method=alipay.trade.page.pay&notify_url=https://pay.example.com/alipay/notify&return_url=https://shop.example.com/thanks&sign_type=RSA2&timestamp=2026-12-01 15:01:02&version=1.0";
    let signature = key.sign(SignType::Rsa2, content).expect("signs");
    let link = format!(
        "https://openapi.alipay.com/gateway.do?{}&sign={}",
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(content.split('&').filter_map(|kv| kv.split_once('=')))
            .finish(),
        form_urlencoded::byte_serialize(signature.as_bytes()).collect::<String>()
    );
    (content, link)
}

fn main() {
    let key = PrivateKey::load("app", &std::fs::read_to_string(KEY).expect("vector key"))
        .expect("vector key parses");
    let (content, link) = signed_link(&key);
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("images") {
        let count: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(1);
        for _ in 0..count {
            black_box(mcp_server_alipay::qr::png(black_box(&link)).unwrap());
        }
        return;
    }
    let sign = mean(500, || {
        black_box(key.sign(SignType::Rsa2, black_box(content)).unwrap());
    });
    let qr = mean(500, || {
        black_box(mcp_server_alipay::qr::png(black_box(&link)).unwrap());
    });
    let size = mcp_server_alipay::qr::png(&link).unwrap().len();
    println!(
        "link_bytes={} png_bytes={size} sign_us={:.0} qr_us={:.0} create_over_sign={:.2}",
        link.len(),
        sign * 1e6,
        qr * 1e6,
        (sign + qr) / sign
    );
}
