//! The tools beyond the reference's five: a QR code to scan (`alipay.trade.precreate`), closing an
//! unpaid order, and listing orders from the ledger.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn qr_code_close_and_list() {
    let dir = TempDir::new("tools");
    let client = connect(&local_env(dir.path(), free_port())).await;

    // A QR code: Alipay's qr_code URL (here the emulator's phone cashier) and a PNG of it.
    let qr = call(
        &client,
        "create-qrcode-alipay-payment",
        json!({"outTradeNo":"QR_1","totalAmount":"12.00","orderTitle":"扫码付款 & 测试"}),
    )
    .await;
    assert!(!is_error(&qr), "{}", text(&qr));
    assert!(
        text(&qr).starts_with("二维码支付链接: [点击完成支付]("),
        "{}",
        text(&qr)
    );
    let qr_code = structured(&qr)["url"].as_str().unwrap().to_string();
    assert_eq!(structured(&qr)["method"], "alipay.trade.precreate");
    let png = qr
        .content
        .iter()
        .find_map(|c| c.as_image())
        .expect("a PNG of the QR code");
    assert_eq!(png.mime_type, "image/png");
    // The same order again is the same QR code, without a second precreate.
    let base = qr_code.split("/qr/").next().unwrap().to_string();
    let gateway = Gateway::from_link(&format!("{base}/gateway.do?app_id=9021000000000001"));
    let precreates = gateway.count_method("alipay.trade.precreate").await;
    let again = call(
        &client,
        "create-qrcode-alipay-payment",
        json!({"outTradeNo":"QR_1","totalAmount":"12.00","orderTitle":"扫码付款 & 测试"}),
    )
    .await;
    assert_eq!(structured(&again)["url"], qr_code.as_str());
    assert_eq!(
        gateway.count_method("alipay.trade.precreate").await,
        precreates
    );

    // Scanning opens the phone cashier; paying makes the trade.
    let page = gateway.open(&qr_code).await;
    assert!(page.contains("12.00"));
    gateway.pay("QR_1").await;
    let paid = call(
        &client,
        "query-alipay-payment",
        json!({"outTradeNo":"QR_1"}),
    )
    .await;
    assert!(
        text(&paid).starts_with("交易状态: TRADE_SUCCESS, 交易金额: 12.00"),
        "{}",
        text(&paid)
    );

    // Close: an opened, unpaid order closes; a paid one and a never-opened one cannot.
    let web = call(
        &client,
        "create-web-page-alipay-payment",
        json!({"outTradeNo":"CL_1","totalAmount":"3","orderTitle":"t"}),
    )
    .await;
    gateway.open(&link_of(&web)).await;
    let closed = call(
        &client,
        "close-alipay-payment",
        json!({"outTradeNo":"CL_1"}),
    )
    .await;
    assert!(!is_error(&closed), "{}", text(&closed));
    assert!(
        text(&closed).starts_with("关闭结果: 交易已关闭, 商户订单号: CL_1"),
        "{}",
        text(&closed)
    );
    let status = call(
        &client,
        "query-alipay-payment",
        json!({"outTradeNo":"CL_1"}),
    )
    .await;
    assert!(
        text(&status).starts_with("交易状态: TRADE_CLOSED"),
        "{}",
        text(&status)
    );
    let r = gateway.control("pay", "CL_1").await;
    assert_eq!(
        r.status().as_u16(),
        409,
        "a closed order can no longer be paid"
    );
    let paid_close = call(
        &client,
        "close-alipay-payment",
        json!({"outTradeNo":"QR_1"}),
    )
    .await;
    assert!(
        is_error(&paid_close) && text(&paid_close).contains("ACQ.TRADE_STATUS_ERROR"),
        "{}",
        text(&paid_close)
    );
    call(
        &client,
        "create-mobile-alipay-payment",
        json!({"outTradeNo":"CL_2","totalAmount":"3","orderTitle":"t"}),
    )
    .await;
    let unopened = call(
        &client,
        "close-alipay-payment",
        json!({"outTradeNo":"CL_2"}),
    )
    .await;
    assert!(is_error(&unopened));
    assert!(
        text(&unopened).contains("the buyer has not opened the link"),
        "{}",
        text(&unopened)
    );

    // The list: newest first, by status, by day.
    let all = call(&client, "list-alipay-orders", json!({})).await;
    let numbers: Vec<&str> = structured(&all)["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["outTradeNo"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["CL_2", "CL_1", "QR_1"]);
    let closed_only = call(
        &client,
        "list-alipay-orders",
        json!({"status":"TRADE_CLOSED"}),
    )
    .await;
    assert_eq!(structured(&closed_only)["count"], 1);
    let not_created = call(
        &client,
        "list-alipay-orders",
        json!({"status":"NOT_CREATED","limit":5}),
    )
    .await;
    assert_eq!(structured(&not_created)["orders"][0]["outTradeNo"], "CL_2");
    let today = alipay_openapi::time::beijing_now()
        .format("%Y-%m-%d")
        .to_string();
    let by_day = call(&client, "list-alipay-orders", json!({"day": today})).await;
    assert_eq!(structured(&by_day)["count"], 3);
    let other_day = call(&client, "list-alipay-orders", json!({"day":"2020-01-01"})).await;
    assert_eq!(structured(&other_day)["count"], 0);
    assert!(text(&other_day).contains("no orders match"));
    let bad = call(&client, "list-alipay-orders", json!({"status":"PAID"})).await;
    assert!(
        is_error(&bad) && text(&bad).contains("status: must be one of"),
        "{}",
        text(&bad)
    );
    client.cancel().await.unwrap();
}
