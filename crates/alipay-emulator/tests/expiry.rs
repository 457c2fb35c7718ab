//! Order expiry as Alipay does it: `time_expire` validated (`ACQ.INVALID_PARAMETER`), expired
//! links and trades refused at the cashier (`ACQ.TRADE_HAS_CLOSE`), opened trades closed at their
//! expiry with one `TRADE_CLOSED` notification, and the clock control that gets there without
//! waiting (`POST /__emulator/clock`), which every timestamp and retry follows.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use alipay_openapi::time::{format_timestamp, parse_timestamp, timestamp_after};
use alipay_openapi::{
    Amount, Error, PayKind, SignType, SignedFields, TradeClose, TradePrecreate, TradeQuery,
    TradeRefund, TradeStatus,
};
use chrono::{DateTime, FixedOffset, TimeDelta};
use common::*;
use reqwest::Method;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

fn sub_code(err: &Error) -> String {
    err.business()
        .unwrap_or_else(|| panic!("not a business error: {err:?}"))
        .sub_code
        .clone()
        .unwrap_or_default()
}

fn sub_msg(err: &Error) -> String {
    err.business()
        .and_then(|b| b.sub_msg.clone())
        .unwrap_or_default()
}

fn at(text: &str) -> DateTime<FixedOffset> {
    parse_timestamp(text).unwrap_or_else(|| panic!("not a timestamp: {text:?}"))
}

/// Seconds from `a` to `b`.
fn seconds_between(a: &str, b: &str) -> i64 {
    (at(b) - at(a)).num_seconds()
}

impl Env {
    async fn clock(&self) -> Value {
        let (status, v) = self.control(Method::GET, "/__emulator/clock", None).await;
        assert_eq!(status, 200, "{v}");
        v
    }

    /// The emulator's now.
    async fn now(&self) -> DateTime<FixedOffset> {
        at(self.clock().await["now"].as_str().unwrap())
    }

    async fn advance(&self, seconds: u64) -> Value {
        let (status, v) = self
            .control(
                Method::POST,
                "/__emulator/clock",
                Some(json!({ "advance_seconds": seconds })),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        v
    }

    async fn status_of(&self, out_trade_no: &str) -> Result<TradeStatus, String> {
        match self
            .client
            .execute(&TradeQuery::by_out_trade_no(out_trade_no))
            .await
        {
            Ok(q) => Ok(q.trade_status.unwrap()),
            Err(e) => Err(sub_code(&e)),
        }
    }
}

/// A payment link for an order that expires `minutes` after the emulator's now.
async fn expiring_link(
    env: &Env,
    kind: PayKind,
    no: &str,
    minutes: u32,
    notify_url: Option<&str>,
) -> String {
    let client = client_with_urls(&env.emu, notify_url, None);
    let mut o = order(kind, no, "12.30", "限时订单");
    o.time_expire = Some(timestamp_after(&env.now().await, minutes));
    client.payment_link(&o).unwrap()
}

fn precreate(no: &str, time_expire: Option<String>) -> TradePrecreate {
    TradePrecreate {
        out_trade_no: no.into(),
        total_amount: Amount::from_yuan_str("5").unwrap(),
        subject: "扫码限时".into(),
        body: None,
        timeout_express: None,
        time_expire,
    }
}

fn pay_action(html: &str) -> String {
    let start = html.find("action=\"").unwrap() + 8;
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_string()
}

fn error_code(html: &str) -> Option<&str> {
    let start = html.find("错误代码 ")? + "错误代码 ".len();
    html[start..].split_whitespace().next()
}

#[tokio::test]
async fn time_expire_is_validated_with_alipays_code_on_every_create() {
    let env = start().await;
    let now = env.now().await;
    let past = format_timestamp(&(now - TimeDelta::minutes(1)));
    let too_far = timestamp_after(&now, 15 * 24 * 60 + 2);
    let cases = [
        ("2026-11-25T10:00:00".to_string(), "格式错误"),
        ("2026-11-25 10:00".to_string(), "格式错误"),
        (past, "不晚于请求时间"),
        (too_far, "之后 15 天"),
    ];

    // Precreate: a signed 40004 answer.
    for (i, (time_expire, rule)) in cases.iter().enumerate() {
        let err = env
            .client
            .execute(&precreate(&format!("V_PRE_{i}"), Some(time_expire.clone())))
            .await
            .unwrap_err();
        assert_eq!(sub_code(&err), "ACQ.INVALID_PARAMETER", "{time_expire}");
        let msg = sub_msg(&err);
        assert!(msg.contains("time_expire") && msg.contains(rule), "{msg}");
    }
    // Not a string at all.
    let params = signed_params(
        "alipay.trade.precreate",
        r#"{"out_trade_no":"V_PRE_N","total_amount":"1","subject":"s","time_expire":20261125}"#,
        &[],
    );
    let raw = env.post_form(&params).await;
    let body: Value = serde_json::from_str(&raw.body).unwrap();
    let inner = &body["alipay_trade_precreate_response"];
    assert_eq!(inner["sub_code"], "ACQ.INVALID_PARAMETER", "{inner}");
    assert!(
        inner["sub_msg"]
            .as_str()
            .unwrap()
            .contains("time_expire 必须是字符串")
    );

    // Page and wap links: Alipay's error page at the cashier; nothing is registered.
    for kind in [PayKind::Wap, PayKind::Page] {
        for (i, (time_expire, rule)) in cases.iter().enumerate() {
            let no = format!("V_{kind:?}_{i}");
            let mut o = order(kind, &no, "1", "s");
            o.time_expire = Some(time_expire.clone());
            let page = env.get(&env.client.payment_link(&o).unwrap()).await;
            assert_eq!(page.status, 200);
            assert_eq!(
                error_code(&page.body),
                Some("ACQ.INVALID_PARAMETER"),
                "{no}"
            );
            assert!(
                page.body.contains("time_expire") && page.body.contains(rule),
                "{no}: {}",
                page.body
            );
            let (status, _) = env
                .control(
                    Method::GET,
                    &format!("/__emulator/apps/{APP_ID}/trades/{no}"),
                    None,
                )
                .await;
            assert_eq!(status, 404, "{no} was registered");
        }
    }

    // The edges that pass: 15 days exactly (less the time it takes to get there), and a
    // time_expire beside a timeout_express (it wins).
    let ok = env
        .client
        .execute(&precreate(
            "V_PRE_OK",
            Some(timestamp_after(&env.now().await, 15 * 24 * 60)),
        ))
        .await
        .unwrap();
    assert!(ok.qr_code.is_some());
    let mut o = order(PayKind::Wap, "V_WAP_OK", "1", "s");
    o.timeout_express = Some("1m".into());
    o.time_expire = Some(timestamp_after(&env.now().await, 30));
    env.get(&env.client.payment_link(&o).unwrap()).await;
    let view = env.trade("V_WAP_OK").await;
    assert_eq!(view["expire_at"], o.time_expire.unwrap().as_str());
    assert_eq!(view["trade_status"], "WAIT_BUYER_PAY");
}

#[tokio::test]
async fn a_link_opened_after_its_time_expire_shows_a_closed_order_and_creates_nothing() {
    let env = start().await;
    for kind in [PayKind::Wap, PayKind::Page] {
        let no = format!("LATE_{kind:?}");
        let link = expiring_link(&env, kind, &no, 2, None).await;
        env.advance(3 * 60).await;
        let page = env.get(&link).await;
        assert_eq!(page.status, 200);
        assert_eq!(
            error_code(&page.body),
            Some("ACQ.TRADE_HAS_CLOSE"),
            "{}",
            page.body
        );
        assert!(page.body.contains("支付截止时间"), "{}", page.body);
        // Nothing exists at Alipay: no trade, no order to pay.
        assert_eq!(env.status_of(&no).await, Err("ACQ.TRADE_NOT_EXIST".into()));
        assert_eq!(env.act(&no, "pay").await.0, 404);
    }
    let requests = env.requests().await;
    assert!(
        requests
            .iter()
            .any(|r| r["sub_code"] == "ACQ.TRADE_HAS_CLOSE"),
        "the refused link is in the request log"
    );
}

#[tokio::test]
async fn the_cashier_and_the_control_api_refuse_to_pay_an_expired_trade() {
    let env = start().await;
    let rx = receiver(&[]).await;
    let link = expiring_link(&env, PayKind::Wap, "EXP_PAY", 10, Some(&rx.url)).await;
    let cashier = env.get(&link).await;
    assert_eq!(error_code(&cashier.body), None, "{}", cashier.body);
    let action = pay_action(&cashier.body);
    let qr = env.trade("EXP_PAY").await["cashier_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        env.status_of("EXP_PAY").await,
        Ok(TradeStatus::WaitBuyerPay)
    );

    env.advance(10 * 60).await;
    // The pay button of the page the buyer still has open.
    let paid = env
        .http
        .post(format!("{}{action}", env.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 200);
    let html = paid.text().await.unwrap();
    assert_eq!(error_code(&html), Some("ACQ.TRADE_HAS_CLOSE"), "{html}");
    assert!(html.contains("支付截止时间"), "{html}");
    // Re-opening the link or the phone cashier: the same.
    for url in [&link, &qr] {
        let page = env.get(url).await;
        assert_eq!(error_code(&page.body), Some("ACQ.TRADE_HAS_CLOSE"), "{url}");
    }
    // The control API's buyer: 409 with Alipay's code.
    let (status, v) = env.act("EXP_PAY", "pay").await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("ACQ.TRADE_HAS_CLOSE"),
        "{v}"
    );
    assert_eq!(env.status_of("EXP_PAY").await, Ok(TradeStatus::TradeClosed));
    let view = env.trade("EXP_PAY").await;
    assert_eq!(view["gmt_payment"], Value::Null);
    assert_eq!(view["gmt_close"], view["expire_at"]);
    eventually(WAIT, || async { (rx.count() >= 1).then_some(()) }).await;
    assert_eq!(
        env.trade("EXP_PAY").await["notifications"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// Moving the clock runs the sweep: the opened trades close at their expiry without anyone
/// touching them, wap and precreate notify `TRADE_CLOSED` once, page pay closes silently.
#[tokio::test]
async fn moving_the_clock_closes_opened_trades_at_their_expiry_with_one_notification() {
    let env = start().await;
    let rx = receiver(&[]).await;
    let client = client_with_urls(&env.emu, Some(&rx.url), None);
    for (kind, no) in [(PayKind::Wap, "SW_WAP"), (PayKind::Page, "SW_PAGE")] {
        let link = expiring_link(&env, kind, no, 30, Some(&rx.url)).await;
        env.get(&link).await;
    }
    let pre_expiry = timestamp_after(&env.now().await, 30);
    client
        .execute(&precreate("SW_PRE", Some(pre_expiry.clone())))
        .await
        .unwrap();
    env.act("SW_PRE", "scan").await;
    // A precreate nobody scans: nothing to close, ever.
    client
        .execute(&precreate("SW_UNSCANNED", Some(pre_expiry.clone())))
        .await
        .unwrap();
    // One that outlives the move.
    let keep = expiring_link(&env, PayKind::Wap, "SW_KEEP", 120, Some(&rx.url)).await;
    env.get(&keep).await;

    env.advance(29 * 60).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.count(), 0, "nothing expires early");
    let moved = env.advance(60).await;
    assert_eq!(moved["offset_seconds"], 30 * 60);

    // No touch yet: the notifications come from the sweep the move ran.
    let got = eventually(WAIT, || async { (rx.count() >= 2).then(|| rx.all()) }).await;
    let mut closed: Vec<(String, String)> = got
        .iter()
        .map(|r| {
            let n = SignedFields::from_form(&r.body)
                .unwrap()
                .verify_trade_notification(&env.emu.alipay_public_key(), SignType::Rsa2)
                .unwrap();
            assert_eq!(n.trade_status, TradeStatus::TradeClosed);
            assert!(n.gmt_payment.is_none());
            (
                n.out_trade_no.clone(),
                n.fields.get("gmt_close").unwrap().to_string(),
            )
        })
        .collect();
    closed.sort();
    assert_eq!(closed[0].0, "SW_PRE");
    assert_eq!(closed[0].1, pre_expiry, "gmt_close is the expiry");
    assert_eq!(closed[1].0, "SW_WAP");
    assert_eq!(
        closed[1].1,
        env.trade("SW_WAP").await["expire_at"].as_str().unwrap()
    );

    for no in ["SW_WAP", "SW_PAGE", "SW_PRE"] {
        let view = env.trade(no).await;
        assert_eq!(view["trade_status"], "TRADE_CLOSED", "{no}");
        assert_eq!(view["gmt_close"], view["expire_at"], "{no}");
    }
    assert_eq!(
        env.status_of("SW_UNSCANNED").await,
        Err("ACQ.TRADE_NOT_EXIST".into())
    );
    assert_eq!(
        env.status_of("SW_KEEP").await,
        Ok(TradeStatus::WaitBuyerPay)
    );
    let (status, v) = env.act("SW_UNSCANNED", "pay").await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("ACQ.TRADE_HAS_CLOSE"),
        "{v}"
    );

    // Every further touch leaves them closed and notifies nothing more.
    let refund = env
        .client
        .execute(&TradeRefund {
            out_trade_no: "SW_WAP".into(),
            refund_amount: Amount::from_yuan_str("1").unwrap(),
            out_request_no: None,
            refund_reason: None,
        })
        .await
        .unwrap_err();
    assert_eq!(sub_code(&refund), "ACQ.TRADE_STATUS_ERROR");
    let close = env
        .client
        .execute(&TradeClose {
            out_trade_no: "SW_PRE".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(sub_code(&close), "ACQ.TRADE_STATUS_ERROR");
    assert_eq!(
        env.act("SW_WAP", "close").await.0,
        200,
        "closing a closed trade is a no-op"
    );
    env.advance(2 * 3600).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (no, expected) in [("SW_WAP", 1), ("SW_PRE", 1), ("SW_PAGE", 0)] {
        let n = env.trade(no).await["notifications"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(n, expected, "{no}");
    }
    // SW_KEEP expired with those two hours: the third and last notification.
    eventually(WAIT, || async { (rx.count() >= 3).then_some(()) }).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.count(), 3);
}

#[tokio::test]
async fn timeout_express_runs_from_the_first_request_except_on_wap() {
    let env = start().await;
    let mut page = order(PayKind::Page, "TE_PAGE", "1", "s");
    page.timeout_express = Some("5m".into());
    env.get(&env.client.payment_link(&page).unwrap()).await;
    // Wap below 5m is accepted; its timer only starts when the buyer confirms payment.
    let mut wap = order(PayKind::Wap, "TE_WAP", "1", "s");
    wap.timeout_express = Some("1m".into());
    let wap_page = env.get(&env.client.payment_link(&wap).unwrap()).await;
    assert_eq!(error_code(&wap_page.body), None, "{}", wap_page.body);
    let expiry = env.trade("TE_PAGE").await["expire_at"]
        .as_str()
        .unwrap()
        .to_string();
    let created = env.trade("TE_PAGE").await["created_at"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(seconds_between(&created, &expiry), 300);

    env.advance(6 * 60).await;
    assert_eq!(env.status_of("TE_PAGE").await, Ok(TradeStatus::TradeClosed));
    assert_eq!(env.status_of("TE_WAP").await, Ok(TradeStatus::WaitBuyerPay));
    let (status, v) = env.act("TE_WAP", "pay").await;
    assert_eq!(
        (status, v["trade_status"].as_str()),
        (200, Some("TRADE_SUCCESS"))
    );
}

/// `notify_time`, `gmt_*`, `trade_no`'s date and the retry schedule all run on the moved clock.
#[tokio::test]
async fn the_clock_moves_timestamps_and_makes_a_retry_due() {
    let mut config = config();
    config.notify_retry = vec![Duration::from_secs(3600), Duration::from_secs(3600)];
    let env = start_with(config).await;
    let rx = receiver(&[(500, "busy")]).await;
    let v = env.clock().await;
    assert_eq!(v["offset_seconds"], 0);
    let real = alipay_openapi::time::beijing_now();
    let moved = env.advance(2 * 86400).await;
    assert_eq!(moved["offset_seconds"], 2 * 86400);
    let ahead = (at(moved["now"].as_str().unwrap()) - real).num_seconds();
    assert!((2 * 86400 - 1..2 * 86400 + 10).contains(&ahead), "{ahead}");

    let client = client_with_urls(&env.emu, Some(&rx.url), None);
    env.get(
        &client
            .payment_link(&order(PayKind::Wap, "CLK_1", "3", "s"))
            .unwrap(),
    )
    .await;
    let (status, view) = env.act("CLK_1", "pay").await;
    assert_eq!(status, 200, "{view}");
    let emu_now = format_timestamp(&env.now().await);
    for key in ["created_at", "gmt_create", "gmt_payment"] {
        let t = view[key].as_str().unwrap();
        assert!(
            seconds_between(t, &emu_now).abs() < 10,
            "{key} {t} vs {emu_now}"
        );
    }
    let trade_no = view["trade_no"].as_str().unwrap();
    assert_eq!(&trade_no[..8], &emu_now.replace('-', "")[..8]);

    // The first delivery fails; the retry is an hour away on the emulator's clock.
    let first = eventually(WAIT, || async { (rx.count() >= 1).then(|| rx.all()) }).await;
    let notify_time = form_value(&first[0].body, "notify_time");
    assert!(
        seconds_between(&notify_time, &emu_now).abs() < 10,
        "{notify_time}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.count(), 1, "the retry waits");

    env.advance(3600).await;
    let both = eventually(WAIT, || async { (rx.count() >= 2).then(|| rx.all()) }).await;
    let retry_time = form_value(&both[1].body, "notify_time");
    assert!(
        (3600..3610).contains(&seconds_between(&notify_time, &retry_time)),
        "{notify_time} → {retry_time}"
    );
    let n = eventually(WAIT, || {
        let env = &env;
        async move {
            let n = env.trade("CLK_1").await["notifications"][0].clone();
            (n["state"] == "delivered").then_some(n)
        }
    })
    .await;
    assert_eq!(n["attempts"][1]["at"], retry_time.as_str());
    // Same notify_id across the retry, signed anew with its own notify_time.
    assert_eq!(
        form_value(&both[0].body, "notify_id"),
        form_value(&both[1].body, "notify_id")
    );
}

fn form_value(body: &[u8], key: &str) -> String {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("{key} missing"))
}

#[tokio::test]
async fn the_clock_control_checks_its_input_and_the_request_timestamp_stays_real() {
    let mut config = config();
    config.timestamp_skew = Some(Duration::from_secs(300));
    let env = start_with(config).await;
    for body in [
        json!({"advance_seconds": -1}),
        json!({"advance_seconds": 1.5}),
        json!({"advance_seconds": "60"}),
        json!({}),
        json!({"advance_seconds": 1, "rewind": true}),
        json!([60]),
    ] {
        let (status, v) = env
            .control(Method::POST, "/__emulator/clock", Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{body}: {v}");
        let e = v["error"].as_str().unwrap();
        assert!(
            e.contains("advance_seconds") && e.contains("0 or more"),
            "{e}"
        );
    }
    let (status, v) = env
        .control(
            Method::POST,
            "/__emulator/clock",
            Some(json!({"advance_seconds": 200u64 * 366 * 86400})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().contains("100 years"), "{v}");
    assert_eq!(
        env.clock().await["offset_seconds"],
        0,
        "refused moves change nothing"
    );
    assert_eq!(env.advance(0).await["offset_seconds"], 0);

    // A day later on the emulator, the merchant's real-time `timestamp` is still within the
    // 300 s tolerance: the merchant's clock did not move.
    env.advance(86400).await;
    assert_eq!(
        env.status_of("NOPE").await,
        Err("ACQ.TRADE_NOT_EXIST".into())
    );
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "alipay-emulator-expiry-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn persisted(dir: &std::path::Path) -> alipay_emulator::EmulatorConfig {
    let mut c = config();
    c.state_dir = Some(dir.to_path_buf());
    c
}

/// An opened trade that expired while the emulator was stopped closes on start, by the
/// background sweep alone; the clock offset survives the restart.
#[tokio::test]
async fn the_background_sweep_closes_what_expired_while_stopped() {
    let dir = temp_dir("sweep");
    let rx = receiver(&[]).await;
    let env = start_with(persisted(&dir)).await;
    env.advance(600).await;
    let link = expiring_link(&env, PayKind::Wap, "BG_1", 60, Some(&rx.url)).await;
    env.get(&link).await;
    env.emu.shutdown().await;

    // Move the expiry into the past by hand, as if an hour had gone by while stopped.
    let path = dir.join(alipay_emulator::STATE_FILE);
    let mut state: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(state["clock_offset_seconds"], 600);
    let order = &mut state["orders"][APP_ID]["BG_1"];
    let created = order["created_at"].as_str().unwrap().to_string();
    let expired = format_timestamp(&(at(&created) - TimeDelta::minutes(1)));
    order["expire_at"] = Value::String(expired.clone());
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();

    let env = start_with(persisted(&dir)).await;
    let got = eventually(WAIT, || async { (rx.count() >= 1).then(|| rx.all()) }).await;
    assert_eq!(form_value(&got[0].body, "trade_status"), "TRADE_CLOSED");
    assert_eq!(form_value(&got[0].body, "gmt_close"), expired);
    assert_eq!(env.clock().await["offset_seconds"], 600);
    env.emu.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A state file written before expiry existed (no `expire_at`, no clock offset) loads, and its
/// orders never expire.
#[tokio::test]
async fn a_state_file_from_before_expiry_still_loads() {
    let dir = temp_dir("legacy");
    std::fs::create_dir_all(&dir).unwrap();
    let now = format_timestamp(&alipay_openapi::time::beijing_now());
    let order = |no: &str, token: &str, trade: Value| {
        json!({
            "app_id": APP_ID, "out_trade_no": no, "product": "wap", "total_fen": 990,
            "subject": "旧订单", "body": null, "passback_params": null, "notify_url": null,
            "return_url": null, "sign_type": "RSA2", "token": token, "created_at": now,
            "trade": trade,
        })
    };
    let trade = json!({
        "trade_no": "2026112522001400000000000001", "status": "WAIT_BUYER_PAY",
        "buyer_id": "2088000000000001", "buyer_logon_id": "abc***@sandbox.com",
        "gmt_create": now, "gmt_payment": null, "gmt_close": null, "refunds": [],
    });
    let state = json!({
        "format": 1,
        "orders": { APP_ID: {
            "OLD_1": order("OLD_1", "bax0legacy000000000000001", trade),
            "OLD_2": order("OLD_2", "bax0legacy000000000000002", Value::Null),
        }},
        "notifications": [],
        "seq": 1,
    });
    std::fs::write(
        dir.join(alipay_emulator::STATE_FILE),
        serde_json::to_vec(&state).unwrap(),
    )
    .unwrap();

    let env = start_with(persisted(&dir)).await;
    assert_eq!(env.clock().await["offset_seconds"], 0);
    env.advance(30 * 86400).await;
    assert_eq!(env.status_of("OLD_1").await, Ok(TradeStatus::WaitBuyerPay));
    assert_eq!(env.trade("OLD_1").await["expire_at"], Value::Null);
    let (status, v) = env.act("OLD_2", "pay").await;
    assert_eq!(
        (status, v["trade_status"].as_str()),
        (200, Some("TRADE_SUCCESS")),
        "{v}"
    );
    env.emu.shutdown().await;
    let saved: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(alipay_emulator::STATE_FILE)).unwrap(),
    )
    .unwrap();
    assert_eq!(saved["clock_offset_seconds"], 30 * 86400);
    assert!(saved["orders"][APP_ID]["OLD_1"].get("expire_at").is_none());
    let _ = std::fs::remove_dir_all(&dir);
}
