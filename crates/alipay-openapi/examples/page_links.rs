//! Build N page-pay links (`alipay.trade.page.pay`, GET) with `alipay-openapi`: our side of
//! `scripts/bench-vs-node.sh`, the same key, parameters and order shape as
//! `bench/node-reference/bench.js` (the official Node SDK's `pageExecute`).
//!
//! ```sh
//! cargo run --release -p alipay-openapi --example page_links -- 2000 [THREADS]
//! ```
//! prints `rust links=N seconds=S links_per_s=R avg_link_bytes=B threads=T`. One thread by
//! default, as the Node side (whose `pageExecute` runs on the one JavaScript thread); with
//! THREADS the N links are split across that many threads sharing one client, as the server's
//! tokio workers share it.

use std::time::Instant;

use alipay_openapi::{
    AlipayClient, Amount, AmountStyle, ClientConfig, Merchant, PayKind, PayOrder, PrivateKey,
    PublicKey, SignType,
};

const KEYS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/alipay-vectors/keys/"
);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, default: usize| -> Result<usize, std::num::ParseIntError> {
        std::env::args()
            .nth(i)
            .map(|a| a.parse())
            .transpose()
            .map(|v| v.unwrap_or(default))
    };
    let n = arg(1, 2000)?;
    let threads = arg(2, 1)?.max(1);
    let read = |name: &str| std::fs::read_to_string(format!("{KEYS}{name}"));
    let merchant = Merchant {
        app_id: "2021000000000001".into(),
        private_key: PrivateKey::load("app", &read("app-private-pkcs8.b64")?)?,
        sign_type: SignType::Rsa2,
        app_auth_token: None,
    };
    let alipay_public = PublicKey::load("alipay", &read("alipay-public-spki.b64")?)?;
    let mut config = ClientConfig::new(merchant, alipay_public, alipay_openapi::PROD_GATEWAY);
    config.return_url = Some("https://merchant.example.com/done".into());
    config.notify_url = Some("https://merchant.example.com/alipay/notify".into());
    let client = AlipayClient::new(config)?;
    let order = |i: usize| PayOrder {
        kind: PayKind::Page,
        out_trade_no: format!("BENCH{i}"),
        total_amount: Amount::from_yuan_str("88.88").expect("amount"),
        subject: "定製插畫：貓咪肖像".into(),
        body: Some("定製插畫：貓咪肖像".into()),
        timeout_express: None,
        query_options: Some(vec!["mcp_0.1.0".into()]),
        amount_style: AmountStyle::Number,
        time_expire: None,
    };

    let first = client.payment_link(&order(0))?;
    assert!(
        first.starts_with("https://openapi.alipay.com/gateway.do?method=alipay.trade.page.pay&")
            && first.contains("&sign="),
        "unexpected link: {first}"
    );
    for i in 0..n.min(200) {
        client.payment_link(&order(i))?; // warm-up, as the Node side
    }
    let started = Instant::now();
    let bytes: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (client, order) = (&client, &order);
                scope.spawn(move || {
                    (t..n)
                        .step_by(threads)
                        .map(|i| client.payment_link(&order(i)).map(|l| l.len()))
                        .sum::<Result<usize, _>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker").expect("link"))
            .sum()
    });
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "rust links={n} seconds={seconds:.3} links_per_s={:.1} avg_link_bytes={} threads={threads}",
        n as f64 / seconds,
        bytes / n.max(1)
    );
    Ok(())
}
