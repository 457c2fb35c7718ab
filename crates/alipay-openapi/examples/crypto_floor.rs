//! The crypto floor of one `query-alipay-payment` on this machine, one thread: what two RSA2
//! signatures (the request's, and the gateway's over its answer) and two verifications (the
//! gateway's of the request, ours of the answer) cost, with nothing else around them. The HTTP
//! benchmark (`scripts/bench-http.sh`) runs it beside the load so that the server's CPU per call is
//! compared with a floor measured in the same run, on the same noisy machine.
//!
//! ```sh
//! cargo run --release -p alipay-openapi --example crypto_floor -- [SIGNATURES]
//! ```
//! prints `sign_us=… verify_us=… query_floor_us=…` (means over SIGNATURES calls, default 2000).

use std::hint::black_box;
use std::time::Instant;

use alipay_openapi::{PrivateKey, PublicKey, SignType};

const KEYS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/alipay-vectors/keys/"
);

/// A query's signed content, the size the server signs (the answer the gateway signs is similar).
const CONTENT: &str = "app_id=2021000000000001&biz_content={\"out_trade_no\":\"MCP20261201150102A1B2C3D4E5F6A7B8\"}&charset=utf-8&format=JSON&method=alipay.trade.query&sign_type=RSA2&timestamp=2026-12-01 15:01:02&version=1.0";

/// Mean microseconds per call of `f` over `runs` calls, after a tenth as many unmeasured.
fn mean_us(runs: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..runs / 10 {
        f();
    }
    let t0 = Instant::now();
    for _ in 0..runs {
        f();
    }
    t0.elapsed().as_secs_f64() * 1e6 / f64::from(runs)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: u32 = std::env::args().nth(1).map_or(Ok(2000), |a| a.parse())?;
    let private = PrivateKey::load(
        "app",
        &std::fs::read_to_string(format!("{KEYS}app-private-pkcs8.b64"))?,
    )?;
    let public = PublicKey::load(
        "app",
        &std::fs::read_to_string(format!("{KEYS}app-public-spki.b64"))?,
    )?;
    let signature = private.sign(SignType::Rsa2, CONTENT)?;
    let sign = mean_us(runs, || {
        black_box(private.sign(SignType::Rsa2, black_box(CONTENT)).ok());
    });
    let verify = mean_us(runs * 10, || {
        black_box(
            public
                .verify(SignType::Rsa2, black_box(CONTENT), &signature)
                .ok(),
        );
    });
    println!(
        "sign_us={sign:.1} verify_us={verify:.1} query_floor_us={:.1}",
        2.0 * sign + 2.0 * verify
    );
    Ok(())
}
