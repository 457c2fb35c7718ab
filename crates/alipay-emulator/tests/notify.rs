//! Asynchronous notifications (§3.1–§3.2, §5.7) into a local receiver: signed so that the
//! `alipay-openapi` verifier accepts them, which states notify per product, refunds, retries with
//! one `notify_id`, strict `success`, and every attempt recorded.

mod common;

use std::time::Duration;

use alipay_openapi::{
    Amount, PayKind, SignType, SignedFields, TradeClose, TradeRefund, TradeStatus,
};
use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

fn verify(received: &Received, env: &Env) -> alipay_openapi::TradeNotification {
    assert_eq!(
        received.content_type,
        "application/x-www-form-urlencoded; charset=utf-8"
    );
    SignedFields::from_form(&received.body)
        .unwrap()
        .verify_trade_notification(&env.emu.alipay_public_key(), SignType::Rsa2)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&received.body)))
}

async fn notifications(env: &Env, out_trade_no: &str) -> Vec<Value> {
    env.trade(out_trade_no).await["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Wait until the receiver holds `n` notifications.
async fn received(receiver: &Receiver, n: usize) -> Vec<Received> {
    eventually(WAIT, || async {
        (receiver.count() >= n).then(|| receiver.all())
    })
    .await
}

async fn open_and_pay(env: &Env, kind: PayKind, notify_url: &str, no: &str, yuan: &str) {
    let client = client_with_urls(&env.emu, Some(notify_url), None);
    let mut o = order(kind, no, yuan, "通知测试");
    o.body = Some("商品描述".into());
    let url = client.payment_link(&o).unwrap();
    env.get(&url).await;
    let (status, v) = env.act(no, "pay").await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test]
async fn a_payment_notifies_with_a_verifiable_signature_and_alipays_fields() {
    let env = start().await;
    let rx = receiver(&[]).await;
    open_and_pay(&env, PayKind::Wap, &rx.url, "N_1", "66.60").await;
    let got = received(&rx, 1).await;
    let n = verify(&got[0], &env);
    assert_eq!(n.trade_status, TradeStatus::TradeSuccess);
    assert_eq!(n.out_trade_no, "N_1");
    assert_eq!(n.app_id, APP_ID);
    assert_eq!(n.total_amount.to_string(), "66.60");
    assert_eq!(n.receipt_amount.unwrap().to_string(), "66.60");
    assert_eq!(n.buyer_pay_amount.unwrap().to_string(), "66.60");
    assert_eq!(n.notify_type.as_deref(), Some("trade_status_sync"));
    assert_eq!(n.notify_id.len(), 34);
    assert!(n.refund_fee.is_none() && n.gmt_refund.is_none());
    assert_eq!(
        n.seller_id.as_deref(),
        Some(alipay_emulator::derived_seller_id(APP_ID).as_str())
    );
    let view = env.trade("N_1").await;
    assert_eq!(n.trade_no.as_deref(), view["trade_no"].as_str());
    assert_eq!(n.buyer_id.as_deref(), view["buyer_id"].as_str());
    assert_eq!(n.gmt_payment.as_deref(), view["gmt_payment"].as_str());
    let f = &n.fields;
    for key in [
        "notify_time",
        "charset",
        "version",
        "auth_app_id",
        "subject",
        "body",
        "gmt_create",
        "buyer_logon_id",
        "invoice_amount",
        "point_amount",
        "sign_type",
        "sign",
    ] {
        assert!(f.get(key).is_some_and(|v| !v.is_empty()), "{key} missing");
    }
    assert_eq!(
        f.get("fund_bill_list"),
        Some(r#"[{"amount":"66.60","fundChannel":"ALIPAYACCOUNT"}]"#)
    );
    assert!(
        f.iter().all(|(_, v)| !v.is_empty()),
        "only non-empty fields are sent"
    );
    // Signed over everything but sign and sign_type: the content rebuilt without sign_type verifies.
    env.emu
        .alipay_public_key()
        .verify(SignType::Rsa2, &f.signed_content(), f.get("sign").unwrap())
        .unwrap();

    let list = notifications(&env, "N_1").await;
    let delivered = eventually(WAIT, || {
        let env = &env;
        async move {
            let list = notifications(env, "N_1").await;
            (list[0]["state"] == "delivered").then_some(list)
        }
    })
    .await;
    assert_eq!(list.len(), 1);
    let attempt = &delivered[0]["attempts"][0];
    assert_eq!(
        (
            attempt["http_status"].as_u64(),
            attempt["success"].as_bool()
        ),
        (Some(200), Some(true))
    );
    assert_eq!(attempt["body"], "success");
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_the_same_notify_id_until_success() {
    let env = start_with({
        let mut c = config();
        c.notify_retry = vec![Duration::from_millis(30); 3];
        c
    })
    .await;
    // Not `success`: a 500, a 200 with another word, a 200 with a newline, then success.
    let rx = receiver(&[(500, "error"), (200, "fail"), (200, "success\n")]).await;
    open_and_pay(&env, PayKind::Page, &rx.url, "N_RETRY", "1").await;
    let got = received(&rx, 4).await;
    let notes: Vec<_> = got.iter().map(|r| verify(r, &env)).collect();
    assert!(
        notes.iter().all(|n| n.notify_id == notes[0].notify_id),
        "one notify_id across retries"
    );
    let list = eventually(WAIT, || {
        let env = &env;
        async move {
            let list = notifications(env, "N_RETRY").await;
            (list[0]["state"] == "delivered").then_some(list)
        }
    })
    .await;
    let attempts = list[0]["attempts"].as_array().unwrap();
    let statuses: Vec<_> = attempts
        .iter()
        .map(|a| (a["http_status"].as_u64(), a["success"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (Some(500), false),
            (Some(200), false),
            (Some(200), false),
            (Some(200), true)
        ]
    );
    assert_eq!(attempts[1]["body"], "fail");
    assert_eq!(
        list[0]["notify_id"].as_str(),
        Some(notes[0].notify_id.as_str())
    );
}

#[tokio::test]
async fn delivery_gives_up_after_the_schedule_and_records_transport_errors() {
    let env = start().await; // two retries
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/notify", closed.local_addr().unwrap());
    drop(closed);
    open_and_pay(&env, PayKind::Wap, &url, "N_DEAD", "1").await;
    let list = eventually(WAIT, || {
        let env = &env;
        async move {
            let list = notifications(env, "N_DEAD").await;
            (list[0]["state"] == "gave_up").then_some(list)
        }
    })
    .await;
    let attempts = list[0]["attempts"].as_array().unwrap();
    assert_eq!(
        attempts.len(),
        3,
        "the first delivery and one per scheduled retry"
    );
    for a in attempts {
        assert!(a["http_status"].is_null());
        assert!(!a["error"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn refunds_notify_per_product_rules() {
    let env = start().await;
    let rx = receiver(&[]).await;
    let refund = |no: &str, yuan: &str, req: &str| TradeRefund {
        out_trade_no: no.into(),
        refund_amount: Amount::from_yuan_str(yuan).unwrap(),
        out_request_no: Some(req.into()),
        refund_reason: None,
    };

    // Wap: partial → TRADE_SUCCESS with the refund; full → TRADE_CLOSED with gmt_close.
    open_and_pay(&env, PayKind::Wap, &rx.url, "N_WAP", "10").await;
    env.client
        .execute(&refund("N_WAP", "4", "RW1"))
        .await
        .unwrap();
    env.client
        .execute(&refund("N_WAP", "6", "RW2"))
        .await
        .unwrap();
    // A repeat moves no money and sends nothing.
    env.client
        .execute(&refund("N_WAP", "6", "RW2"))
        .await
        .unwrap();
    let got = received(&rx, 3).await;
    let notes: Vec<_> = got.iter().map(|r| verify(r, &env)).collect();
    let partial = notes
        .iter()
        .find(|n| n.out_biz_no.as_deref() == Some("RW1"))
        .unwrap();
    assert_eq!(partial.trade_status, TradeStatus::TradeSuccess);
    assert_eq!(partial.refund_fee.unwrap().to_string(), "4.00");
    let gmt_refund = partial.gmt_refund.as_deref().unwrap();
    assert_eq!(
        gmt_refund.len(),
        23,
        "yyyy-MM-dd HH:mm:ss.SSS: {gmt_refund}"
    );
    assert!(partial.gmt_close.is_none());
    let full = notes
        .iter()
        .find(|n| n.out_biz_no.as_deref() == Some("RW2"))
        .unwrap();
    assert_eq!(full.trade_status, TradeStatus::TradeClosed);
    assert_eq!(full.refund_fee.unwrap().to_string(), "10.00");
    assert!(full.gmt_refund.is_some() && full.gmt_close.is_some());
    assert_eq!(notifications(&env, "N_WAP").await.len(), 3);

    // Page pay notifies TRADE_SUCCESS only: the partial refund yes, the closing full refund no.
    open_and_pay(&env, PayKind::Page, &rx.url, "N_PAGE", "10").await;
    env.client
        .execute(&refund("N_PAGE", "1", "RP1"))
        .await
        .unwrap();
    env.client
        .execute(&refund("N_PAGE", "9", "RP2"))
        .await
        .unwrap();
    let list = notifications(&env, "N_PAGE").await;
    let statuses: Vec<_> = list
        .iter()
        .map(|n| n["trade_status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["TRADE_SUCCESS", "TRADE_SUCCESS"]);
}

#[tokio::test]
async fn closing_and_finishing_notify_wap_trades() {
    let env = start().await;
    let rx = receiver(&[]).await;
    let client = client_with_urls(&env.emu, Some(&rx.url), None);
    let url = client
        .payment_link(&order(PayKind::Wap, "N_CLOSE", "3", "x"))
        .unwrap();
    env.get(&url).await;
    env.client
        .execute(&TradeClose {
            out_trade_no: "N_CLOSE".into(),
        })
        .await
        .unwrap();
    let got = received(&rx, 1).await;
    let n = verify(&got[0], &env);
    assert_eq!(n.trade_status, TradeStatus::TradeClosed);
    assert!(
        n.refund_fee.is_none() && n.gmt_refund.is_none(),
        "an unpaid close carries no refund"
    );
    assert!(n.gmt_close.is_some() && n.gmt_payment.is_none());
    assert!(n.fields.get("receipt_amount").is_none());

    open_and_pay(&env, PayKind::Wap, &rx.url, "N_FIN", "3").await;
    env.act("N_FIN", "finish").await;
    let got = received(&rx, 3).await;
    let statuses: Vec<_> = got.iter().map(|r| verify(r, &env).trade_status).collect();
    assert!(
        statuses.contains(&TradeStatus::TradeFinished),
        "{statuses:?}"
    );

    // No notify_url, no notification.
    env.paid(PayKind::Wap, "N_NONE", "1").await;
    assert!(notifications(&env, "N_NONE").await.is_empty());
}

#[tokio::test]
async fn passback_params_and_percent_signs_survive_the_round_trip() {
    let env = start().await;
    let rx = receiver(&[]).await;
    let biz = r#"{"out_trade_no":"N_PB","total_amount":"1.00","subject":"a+b 100%","product_code":"QUICK_WAP_WAY","passback_params":"merchant%3Dx%26y%3D1"}"#;
    let params = signed_params("alipay.trade.wap.pay", biz, &[("notify_url", &rx.url)]);
    env.get(&format!("{}?{}", env.emu.gateway_url(), form(&params)))
        .await;
    env.act("N_PB", "pay").await;
    let got = received(&rx, 1).await;
    let n = verify(&got[0], &env);
    assert_eq!(
        n.fields.get("passback_params"),
        Some("merchant%3Dx%26y%3D1")
    );
    assert_eq!(n.fields.get("subject"), Some("a+b 100%"));
}
