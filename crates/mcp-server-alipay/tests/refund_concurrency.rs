//! Refunds that race (the real binary, local mode): the same refund sent twice at once, two
//! refunds of one order at once from one server and from two servers on one data dir, a resend of
//! a refund whose outcome was lost, and one ledger per environment, shared by apps that never see each other's orders. However the calls
//! interleave, the gateway refunds at most what was paid, each `outRequestNo` moves money at most
//! once, and a resend is the refund first recorded, not whatever the retry says.

mod common;

use common::*;
use serde_json::{Value, json};

/// Logged refund requests reaching the gateway.
async fn refund_requests(gateway: &Gateway) -> Vec<Value> {
    gateway
        .requests()
        .await
        .into_iter()
        .filter(|r| r["method"] == "alipay.trade.refund")
        .collect()
}

fn succeeded(result: &rmcp::model::CallToolResult) -> bool {
    text(result).starts_with("退款结果: 退款成功")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_refund_sent_twice_at_once_is_made_once() {
    let dir = TempDir::new("race-same");
    let client = connect(&local_env(dir.path(), free_port())).await;
    let gateway = paid_order(&client, "RACE_1", "10.00").await;
    let args = json!({"outTradeNo":"RACE_1","refundAmount":"4.00","outRequestNo":"RACE_1_R"});
    let (a, b) = tokio::join!(
        call(&client, "refund-alipay-payment", args.clone()),
        call(&client, "refund-alipay-payment", args.clone()),
    );
    // One is made; the other, which waited for it, replays its result as the reference words it.
    let replayed =
        |r: &rmcp::model::CallToolResult| text(r).starts_with("退款结果: 重复请求退款幂等成功");
    assert!(
        (succeeded(&a) && replayed(&b)) || (replayed(&a) && succeeded(&b)),
        "{}\n{}",
        text(&a),
        text(&b)
    );
    assert_eq!(
        refund_requests(&gateway).await.len(),
        1,
        "the second call waited for the first and replayed its result"
    );
    assert_eq!(gateway.trade("RACE_1").await["refund_fee"], "4.00");
    client.cancel().await.unwrap();
}

/// Two refunds of 6 on an order of 10, each alone allowed: whichever comes second is refused.
async fn two_refunds_race(first: &Client, second: &Client, gateway: &Gateway, no: &str) {
    // The first refund to arrive is made at once but answered late, so the other is checked while
    // the first is still in flight: only the ledger's own record of it can stop the second.
    gateway
        .fault(json!({"method":"alipay.trade.refund","kind":"timeout","delay_ms":1500,"times":1}))
        .await;
    let (a, b) = tokio::join!(
        call(
            first,
            "refund-alipay-payment",
            json!({"outTradeNo":no,"refundAmount":"6.00","outRequestNo":format!("{no}_A")}),
        ),
        call(
            second,
            "refund-alipay-payment",
            json!({"outTradeNo":no,"refundAmount":"6.00","outRequestNo":format!("{no}_B")}),
        ),
    );
    let outcomes = [&a, &b];
    assert_eq!(
        outcomes.iter().filter(|r| succeeded(r)).count(),
        1,
        "exactly one refund is made:\n{}\n{}",
        text(&a),
        text(&b)
    );
    let refused = outcomes.iter().find(|r| !succeeded(r)).unwrap();
    assert!(is_error(refused), "{}", text(refused));
    assert!(
        text(refused).contains("more than what remains refundable")
            && text(refused).contains("remaining 4.00"),
        "refused here, naming what remains: {}",
        text(refused)
    );
    assert_eq!(gateway.trade(no).await["refund_fee"], "6.00");
    let sent: Vec<Value> = refund_requests(gateway)
        .await
        .into_iter()
        .filter(|r| r["out_trade_no"] == no)
        .collect();
    assert_eq!(
        sent.len(),
        1,
        "the refused refund never reached the gateway: {sent:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_refunds_at_once_never_exceed_what_was_paid() {
    let dir = TempDir::new("race-two");
    let client = connect(&local_env(dir.path(), free_port())).await;
    let gateway = paid_order(&client, "RACE_2", "10.00").await;
    two_refunds_race(&client, &client, &gateway, "RACE_2").await;
    client.cancel().await.unwrap();
}

/// A desktop app and an editor on one data dir share one ledger: the limit holds across processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_refunding_one_order_never_exceed_what_was_paid() {
    let dir = TempDir::new("race-servers");
    let env = local_env(dir.path(), free_port());
    let first = connect(&env).await;
    let mut second_env = env.clone();
    second_env.insert("AP_LOCAL_PORT".into(), "0".into());
    let second = connect(&second_env).await;
    let gateway = paid_order(&first, "RACE_3", "10.00").await;
    two_refunds_race(&first, &second, &gateway, "RACE_3").await;
    second.cancel().await.unwrap();
    first.cancel().await.unwrap();
}

/// A refund whose every answer was lost stays "outcome unknown"; the retry with the same number
/// resends the refund as first recorded (its reason too), never a changed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_is_the_refund_first_recorded() {
    let dir = TempDir::new("race-resend");
    let mut env = local_env(dir.path(), free_port());
    env.insert("AP_NOTIFY_LISTEN".into(), "off".into());
    let client = connect(&env).await;
    let gateway = paid_order(&client, "RACE_4", "10.00").await;
    for method in ["alipay.trade.refund", "alipay.trade.fastpay.refund.query"] {
        gateway
            .fault(json!({"method": method, "kind": "http_500", "times": 2}))
            .await;
    }
    let lost = call(
        &client,
        "refund-alipay-payment",
        json!({"outTradeNo":"RACE_4","refundAmount":"3.00","outRequestNo":"RACE_4_R","refundReason":"画稿延期"}),
    )
    .await;
    assert!(is_error(&lost), "{}", text(&lost));
    assert!(
        text(&lost).contains("SAME outRequestNo RACE_4_R"),
        "{}",
        text(&lost)
    );
    gateway.clear_faults().await;
    let again = call(
        &client,
        "refund-alipay-payment",
        json!({"outTradeNo":"RACE_4","refundAmount":"3.00","outRequestNo":"RACE_4_R","refundReason":"changed my mind"}),
    )
    .await;
    assert!(succeeded(&again), "{}", text(&again));
    let sent = refund_requests(&gateway).await;
    assert!(sent.len() >= 2, "{sent:?}");
    for r in &sent {
        let content = r["sign_content"].as_str().unwrap();
        assert!(
            content.contains("\"refund_reason\":\"画稿延期\""),
            "{content}"
        );
        assert!(!content.contains("changed my mind"), "{content}");
    }
    assert_eq!(gateway.trade("RACE_4").await["refund_fee"], "3.00");
    client.cancel().await.unwrap();
}

/// The answer to a refund is lost, Alipay does not show it yet, and the resend is refused
/// outright: that refusal does not prove the first attempt failed, so the outcome stays unknown
/// (never "no money moved"), and the retry with the same number settles it, refunding once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_resend_after_a_lost_answer_is_not_a_failure() {
    let dir = TempDir::new("race-refused-resend");
    let mut env = local_env(dir.path(), free_port());
    env.insert("AP_NOTIFY_LISTEN".into(), "off".into());
    let client = connect(&env).await;
    let gateway = paid_order(&client, "RACE_5", "10.00").await;
    // First send: HTTP 502, not carried out. Resend: a definite business refusal.
    gateway
        .fault(json!({"method":"alipay.trade.refund","kind":"http_502","times":1}))
        .await;
    gateway
        .fault(json!({"method":"alipay.trade.refund","kind":"business","sub_code":"ACQ.TRADE_STATUS_ERROR","times":1}))
        .await;
    let args = json!({"outTradeNo":"RACE_5","refundAmount":"2.00","outRequestNo":"RACE_5_R"});
    let lost = call(&client, "refund-alipay-payment", args.clone()).await;
    let t = text(&lost);
    assert!(is_error(&lost), "{t}");
    assert!(t.starts_with("退款结果未知"), "{t}");
    assert!(!t.contains("No money moved"), "{t}");
    assert!(t.contains("SAME outRequestNo RACE_5_R"), "{t}");
    assert_eq!(structured(&lost)["outcomeUnknown"], true);
    let again = call(&client, "refund-alipay-payment", args).await;
    assert!(succeeded(&again), "{}", text(&again));
    assert_eq!(gateway.trade("RACE_5").await["refund_fee"], "2.00");
    client.cancel().await.unwrap();
}

/// Local mode and a real app never share a ledger; two apps on one data dir share its ledger file
/// and never see each other's orders, even under the same order number.
#[tokio::test]
async fn each_environment_and_app_has_its_own_ledger() {
    let dir = TempDir::new("ledger-scope");
    let env = local_env(dir.path(), free_port());
    let local = connect(&env).await;
    paid_order(&local, "SCOPE_LOCAL", "1.00").await;
    local.cancel().await.unwrap();

    let app_key = alipay_openapi::PrivateKey::generate().unwrap();
    let platform = alipay_openapi::PrivateKey::generate().unwrap();
    let prod = |app_id: &str| {
        let mut env = env.clone();
        env.insert("AP_APP_ID".into(), app_id.into());
        env.insert("AP_APP_KEY".into(), app_key.to_pkcs8_base64());
        env.insert("AP_PUB_KEY".into(), platform.public_key().to_spki_base64());
        // Never contacted: listing reads the ledger, and a page link is signed locally.
        env.insert(
            "AP_GATEWAY_URL".into(),
            format!("http://127.0.0.1:{}/gateway.do", free_port()),
        );
        env
    };
    let order = |amount: &str, title: &str| json!({"outTradeNo": "SCOPE_SHARED", "totalAmount": amount, "orderTitle": title});

    let first = connect(&prod("2021000000000001")).await;
    let listed_first = text(&call(&first, "list-alipay-orders", json!({})).await);
    assert!(
        !listed_first.contains("SCOPE_LOCAL"),
        "local orders stay out of the real app's ledger: {listed_first}"
    );
    let made = call(
        &first,
        "create-web-page-alipay-payment",
        order("1.00", "app one"),
    )
    .await;
    assert!(!is_error(&made), "{}", text(&made));
    first.cancel().await.unwrap();
    assert!(dir.path().join("data/ledger.db").exists());
    assert!(dir.path().join("data/local/ledger.db").exists());

    // Another app on the same data dir starts, and sees none of the first app's orders.
    let second = connect(&prod("2021000000000002")).await;
    let listed_second = text(&call(&second, "list-alipay-orders", json!({})).await);
    assert!(
        !listed_second.contains("SCOPE_SHARED"),
        "another app's orders are not listed: {listed_second}"
    );
    // The same number is a new order of this app, not a conflict with the other app's.
    let made = call(
        &second,
        "create-web-page-alipay-payment",
        order("2.00", "app two"),
    )
    .await;
    assert!(!is_error(&made), "{}", text(&made));
    assert_eq!(structured(&made)["existing"], false);
    assert_eq!(structured(&made)["totalAmount"], "2.00");
    second.cancel().await.unwrap();

    // The first app still has exactly its own order under that number.
    let first = connect(&prod("2021000000000001")).await;
    let again = call(
        &first,
        "create-web-page-alipay-payment",
        order("1.00", "app one"),
    )
    .await;
    assert!(!is_error(&again), "{}", text(&again));
    assert_eq!(structured(&again)["existing"], true);
    let conflict = call(
        &first,
        "create-web-page-alipay-payment",
        order("2.00", "app two"),
    )
    .await;
    assert!(is_error(&conflict), "{}", text(&conflict));
    assert_eq!(structured(&conflict)["error"]["kind"], "conflict");
    let listed_first = text(&call(&first, "list-alipay-orders", json!({})).await);
    assert!(
        listed_first.contains("SCOPE_SHARED | 1.00") && !listed_first.contains("2.00"),
        "{listed_first}"
    );
    first.cancel().await.unwrap();
}
