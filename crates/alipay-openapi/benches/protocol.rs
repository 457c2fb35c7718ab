//! `cargo bench -p alipay-openapi`: the cost of the protocol's hot paths against the floor they
//! sit on, the raw RSA2 signature. Link building should run at ≥ 90% of the raw sign rate (the key
//! is parsed once; everything around the signature is string work).

use std::hint::black_box;

use alipay_openapi::{
    AlipayClient, Amount, AmountStyle, ClientConfig, Merchant, PayKind, PayOrder, PrivateKey,
    PublicKey, SignType, SignedFields, gateway, response,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const KEYS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/alipay-vectors/keys/"
);

fn key_text(name: &str) -> String {
    std::fs::read_to_string(format!("{KEYS}{name}")).expect("vector keys")
}

fn bench(c: &mut Criterion) {
    let app_key = PrivateKey::load("app", &key_text("app-private-pkcs8.b64")).unwrap();
    let platform_key = PrivateKey::load("alipay", &key_text("alipay-private-pkcs8.b64")).unwrap();
    let alipay_public = PublicKey::load("alipay", &key_text("alipay-public-spki.b64")).unwrap();
    let content = "app_id=2021000000000001&biz_content={\"out_trade_no\":\"ORDER-20261125-0001\",\"total_amount\":\"88.88\",\"subject\":\"定製插畫：貓咪肖像\",\"product_code\":\"FAST_INSTANT_TRADE_PAY\"}&charset=utf-8&method=alipay.trade.page.pay&sign_type=RSA2&timestamp=2026-11-25 10:20:30&version=1.0";

    let mut group = c.benchmark_group("protocol");
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_rsa2_sign", |b| {
        b.iter(|| app_key.sign(SignType::Rsa2, black_box(content)).unwrap())
    });

    let merchant = Merchant {
        app_id: "2021000000000001".into(),
        private_key: app_key.clone(),
        sign_type: SignType::Rsa2,
        app_auth_token: None,
    };
    let mut config = ClientConfig::new(
        merchant,
        alipay_public.clone(),
        alipay_openapi::PROD_GATEWAY,
    );
    config.notify_url = Some("https://merchant.example.com/alipay/notify".into());
    config.return_url = Some("https://merchant.example.com/done".into());
    let client = AlipayClient::new(config).unwrap();
    let order = PayOrder {
        kind: PayKind::Page,
        out_trade_no: "ORDER-20261125-0001".into(),
        total_amount: Amount::from_yuan_str("88.88").unwrap(),
        subject: "定製插畫：貓咪肖像".into(),
        body: Some("定製插畫：貓咪肖像".into()),
        timeout_express: None,
        query_options: Some(vec!["mcp_0.1.0".into()]),
        amount_style: AmountStyle::Number,
        time_expire: None,
    };
    group.bench_function("payment_link", |b| {
        b.iter(|| client.payment_link(black_box(&order)).unwrap())
    });

    let inner = r#"{"code":"10000","msg":"Success","buyer_logon_id":"159****5620","buyer_pay_amount":"88.88","out_trade_no":"ORDER-20261125-0001","send_pay_date":"2026-11-25 10:21:05","total_amount":"88.88","trade_no":"2026112522001404500500012345","trade_status":"TRADE_SUCCESS"}"#;
    let body = gateway::signed_response_body(
        "alipay_trade_query_response",
        inner,
        &platform_key,
        SignType::Rsa2,
    )
    .unwrap();
    group.bench_function("verify_response", |b| {
        b.iter(|| {
            response::verify_response(
                black_box(&body),
                "alipay.trade.query",
                &alipay_public,
                SignType::Rsa2,
            )
            .unwrap()
        })
    });

    let mut fields = SignedFields::from_pairs(
        [
            ("app_id", "2021000000000001"),
            ("notify_id", "2026112500222102105004500512345678"),
            ("notify_type", "trade_status_sync"),
            ("notify_time", "2026-11-25 10:21:06"),
            ("out_trade_no", "ORDER-20261125-0001"),
            ("trade_no", "2026112522001404500500012345"),
            ("trade_status", "TRADE_SUCCESS"),
            ("total_amount", "88.88"),
            ("subject", "定製插畫：貓咪肖像"),
            ("charset", "utf-8"),
            ("version", "1.0"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .unwrap();
    fields.sign(&platform_key, SignType::Rsa2).unwrap();
    let form = fields.to_form();
    group.bench_function("verify_notification", |b| {
        b.iter(|| {
            SignedFields::from_form(black_box(form.as_bytes()))
                .unwrap()
                .verify_trade_notification(&alipay_public, SignType::Rsa2)
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
