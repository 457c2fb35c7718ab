//! The buyer's side over HTTP: page-pay links render the cashier, its pay button pays and
//! redirects to `return_url` with signed parameters (§3.4), re-opened links follow §2.8.3, and
//! errors render Alipay's error page.

mod common;

use alipay_openapi::{PayKind, SignType, SignedFields, TradeQuery, TradeStatus};
use common::*;

fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("{start} not in {html}"))
        + start.len();
    let len = html[from..].find(end).unwrap();
    &html[from..from + len]
}

fn pay_action(html: &str) -> String {
    between(html, r#"<form method="post" action=""#, "\"").to_string()
}

async fn click_pay(env: &Env, html: &str) -> Raw {
    let response = env
        .http
        .post(format!("{}{}", env.base(), pay_action(html)))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    Raw {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

#[tokio::test]
async fn page_pay_cashier_shows_the_order_and_a_qr_code_and_escapes_the_title() {
    let env = start().await;
    let url = env
        .client
        .payment_link(&order(
            PayKind::Page,
            "CASH_1",
            "88.8",
            "<script>alert('x')</script>夏日诗歌",
        ))
        .unwrap();
    let page = env.get(&url).await;
    assert_eq!(page.status, 200);
    assert!(
        page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.body;
    assert!(!html.contains("<script>alert"), "the title must be escaped");
    assert!(html.contains("&lt;script&gt;alert('x')&lt;/script&gt;夏日诗歌"));
    assert!(html.contains(r#"<div class="amount" id="amount"><small>¥</small>88.80</div>"#));
    assert!(html.contains(APP_ID));
    assert!(html.contains("CASH_1"));
    assert!(html.contains("<svg"), "page pay shows a QR code");
    let trade_no = env.trade("CASH_1").await["trade_no"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        html.contains(&trade_no),
        "opening the cashier created the trade"
    );

    // The QR code's target is the phone cashier of the same order.
    let mobile = between(&html, r#"<a href=""#, "\"").to_string();
    assert!(
        mobile.starts_with(&format!("{}/qr/", env.base())),
        "{mobile}"
    );
    let phone = env.get(&mobile).await;
    assert!(phone.body.contains(r#"<body class="mobile">"#));
    assert!(phone.body.contains(&trade_no));
    assert_eq!(pay_action(&phone.body), pay_action(&html));
}

#[tokio::test]
async fn wap_cashier_is_a_phone_page() {
    let env = start().await;
    let html = env.open_link(PayKind::Wap, "WAP_1", "0.01").await;
    assert!(html.contains(r#"<body class="mobile">"#));
    assert!(html.contains(r#"name="viewport""#));
    assert!(!html.contains("<svg"));
    assert!(html.contains("确认付款 ¥0.01"));
}

#[tokio::test]
async fn paying_redirects_to_return_url_with_verifiable_parameters() {
    let env = start().await;
    let client = client_with_urls(
        &env.emu,
        None,
        Some("https://merchant.example/return?from=alipay"),
    );
    let url = client
        .payment_link(&order(PayKind::Page, "RET_1", "20", "退货测试"))
        .unwrap();
    let html = env.get(&url).await.body;
    let redirect = click_pay(&env, &html).await;
    assert_eq!(redirect.status, 302);
    let location = redirect.headers["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("https://merchant.example/return?from=alipay&"),
        "{location}"
    );
    let query = location.split_once('?').unwrap().1;
    let fields = SignedFields::from_pairs(
        form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())),
    )
    .unwrap();
    // Verified over all fields but sign/sign_type (the merchant's own `from` included).
    fields
        .verify(&env.emu.alipay_public_key(), SignType::Rsa2)
        .unwrap();
    assert_eq!(fields.get("method"), Some("alipay.trade.page.pay.return"));
    assert_eq!(fields.get("out_trade_no"), Some("RET_1"));
    assert_eq!(fields.get("total_amount"), Some("20.00"));
    assert_eq!(fields.get("app_id"), Some(APP_ID));
    assert_eq!(fields.get("auth_app_id"), Some(APP_ID));
    assert_eq!(fields.get("sign_type"), Some("RSA2"));
    assert_eq!(
        fields.get("seller_id"),
        Some(alipay_emulator::derived_seller_id(APP_ID).as_str())
    );
    assert!(alipay_openapi::time::parse_timestamp(fields.get("timestamp").unwrap()).is_some());
    let q = env
        .client
        .execute(&TradeQuery::by_out_trade_no("RET_1"))
        .await
        .unwrap();
    assert_eq!(q.trade_status, Some(TradeStatus::TradeSuccess));
    assert_eq!(fields.get("trade_no"), q.trade_no.as_deref());

    // A tampered parameter no longer verifies.
    let tampered = SignedFields::from_pairs(fields.iter().map(|(k, v)| {
        let v = if k == "total_amount" { "0.01" } else { v };
        (k.to_string(), v.to_string())
    }))
    .unwrap();
    assert!(
        tampered
            .verify(&env.emu.alipay_public_key(), SignType::Rsa2)
            .is_err()
    );

    // Wap links return with their own method name.
    let client = client_with_urls(&env.emu, None, Some("http://127.0.0.1:9/r"));
    let url = client
        .payment_link(&order(PayKind::Wap, "RET_2", "1", "x"))
        .unwrap();
    let html = env.get(&url).await.body;
    let location = click_pay(&env, &html).await.headers["location"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(location.starts_with("http://127.0.0.1:9/r?"), "{location}");
    assert!(location.contains("method=alipay.trade.wap.pay.return"));
}

#[tokio::test]
async fn without_return_url_the_buyer_sees_a_paid_page_and_a_second_click_is_harmless() {
    let env = start().await;
    let html = env.open_link(PayKind::Wap, "NORET_1", "5.5").await;
    let paid = click_pay(&env, &html).await;
    assert_eq!(paid.status, 200);
    assert!(paid.body.contains("支付成功"));
    assert!(paid.body.contains("5.50"));
    let again = click_pay(&env, &html).await;
    assert!(again.body.contains("支付成功"));
    assert_eq!(env.trade("NORET_1").await["trade_status"], "TRADE_SUCCESS");
}

#[tokio::test]
async fn reopening_an_order_number_follows_alipays_rules() {
    let env = start().await;
    let html = env.open_link(PayKind::Wap, "RE_1", "10").await;
    let trade_no = env.trade("RE_1").await["trade_no"].clone();
    // Identical content: the same order, the same trade (a page link for it too).
    let again = env.open_link(PayKind::Wap, "RE_1", "10").await;
    assert_eq!(pay_action(&again), pay_action(&html));
    env.open_link(PayKind::Page, "RE_1", "10").await;
    assert_eq!(env.trade("RE_1").await["trade_no"], trade_no);

    // Other content under the same number.
    let other = env
        .client
        .payment_link(&order(PayKind::Wap, "RE_1", "11", "测试订单"))
        .unwrap();
    let page = env.get(&other).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("错误代码 ACQ.CONTEXT_INCONSISTENT"),
        "{}",
        page.body
    );
    assert!(page.body.contains("错误原因: 交易信息被篡改"));

    // Paid.
    click_pay(&env, &html).await;
    let same = env
        .client
        .payment_link(&order(PayKind::Wap, "RE_1", "10", "测试订单"))
        .unwrap();
    let page = env.get(&same).await;
    assert!(
        page.body.contains("错误代码 ACQ.TRADE_HAS_SUCCESS"),
        "{}",
        page.body
    );
    assert!(page.body.contains("错误原因: 交易已被支付"));
    let qr = env.trade("RE_1").await["cashier_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(env.get(&qr).await.body.contains("ACQ.TRADE_HAS_SUCCESS"));

    // Closed.
    env.open_link(PayKind::Wap, "RE_2", "10").await;
    env.act("RE_2", "close").await;
    let link = env
        .client
        .payment_link(&order(PayKind::Wap, "RE_2", "10", "测试订单"))
        .unwrap();
    let page = env.get(&link).await;
    assert!(
        page.body.contains("错误代码 ACQ.TRADE_HAS_CLOSE"),
        "{}",
        page.body
    );
    // Its cashier's pay button is refused too.
    let qr = env.trade("RE_2").await["cashier_url"]
        .as_str()
        .unwrap()
        .to_string();
    let token = qr.rsplit('/').next().unwrap();
    let form = format!(r#"<form method="post" action="/cashier/{token}/pay">"#);
    let pay_closed = click_pay(&env, &form).await;
    assert_eq!(pay_closed.status, 200);
    assert!(
        pay_closed.body.contains("错误代码 ACQ.TRADE_HAS_CLOSE"),
        "{}",
        pay_closed.body
    );
    assert_eq!(env.trade("RE_2").await["trade_status"], "TRADE_CLOSED");

    // The log records the refusals.
    let log = env.requests().await;
    assert!(
        log.iter()
            .any(|r| r["sub_code"] == "ACQ.CONTEXT_INCONSISTENT")
    );
}

#[tokio::test]
async fn bad_orders_and_unknown_cashiers_render_error_pages() {
    let env = start().await;
    // A correctly signed link whose amount has three decimals.
    let params = signed_params(
        "alipay.trade.wap.pay",
        r#"{"out_trade_no":"BAD_1","total_amount":"0.001","subject":"x","product_code":"QUICK_WAP_WAY"}"#,
        &[],
    );
    let url = format!("{}?{}", env.emu.gateway_url(), form(&params));
    let page = env.get(&url).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("错误代码 ACQ.INVALID_PARAMETER"),
        "{}",
        page.body
    );
    assert!(page.body.contains("total_amount"));
    assert_eq!(
        env.control(
            reqwest::Method::GET,
            &format!("/__emulator/apps/{APP_ID}/trades/BAD_1"),
            None
        )
        .await
        .0,
        404
    );

    // Wrong product code for the API.
    let params = signed_params(
        "alipay.trade.page.pay",
        r#"{"out_trade_no":"BAD_2","total_amount":"1","subject":"x","product_code":"QUICK_WAP_WAY"}"#,
        &[],
    );
    let page = env
        .get(&format!("{}?{}", env.emu.gateway_url(), form(&params)))
        .await;
    assert!(page.body.contains("product_code"), "{}", page.body);

    // A POSTed page-pay form (what the SDKs' form variant does) works like the GET link.
    let params = signed_params(
        "alipay.trade.page.pay",
        r#"{"out_trade_no":"FORM_1","total_amount":"1","subject":"表单","product_code":"FAST_INSTANT_TRADE_PAY"}"#,
        &[],
    );
    let page = env.post_form(&params).await;
    assert!(
        page.body.contains("表单") && page.body.contains("<svg"),
        "{}",
        page.body
    );

    let missing = env.get(&format!("{}/qr/bax0nothing", env.base())).await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("ACQ.TRADE_NOT_EXIST"));
    let response = env
        .http
        .post(format!("{}/cashier/bax0nothing/pay", env.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
}
