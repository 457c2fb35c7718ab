//! 智易收 `alipay.aipay.trade.precreate` over HTTP: its checks and codes, a signed answer whose
//! `pay_url` is the phone cashier and whose `pic_url` is that cashier's QR code as a PNG, and the
//! order living in the ordinary trade machine (opened by `pay_url`, paid, notified, queried,
//! refunded, closed, expired) with wap's rules where Alipay's are not documented.

mod common;

use std::time::Duration;

use alipay_openapi::response::verify_response;
use alipay_openapi::time::{format_timestamp, parse_timestamp, timestamp_after};
use alipay_openapi::{
    AipayTradePrecreate, AipayTradePrecreateResponse, Amount, Error, PayKind, RefundQuery,
    ResponseError, SignType, SignedFields, TradeClose, TradeNotification, TradeQuery, TradeRefund,
    TradeStatus,
};
use chrono::{DateTime, FixedOffset};
use common::*;
use reqwest::Method;
use serde_json::{Value, json};

const METHOD: &str = "alipay.aipay.trade.precreate";
const WAIT: Duration = Duration::from_secs(10);

fn agent_order(no: &str, yuan: &str) -> AipayTradePrecreate {
    AipayTradePrecreate {
        out_trade_no: no.into(),
        amount: Amount::from_yuan_str(yuan).unwrap(),
        agent_name: "诗歌创作助手".into(),
        agent_id: "agent_poet_01".into(),
        request_channel_source: "mcp_0.1.0".into(),
        time_expire: None,
    }
}

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

fn pay_action(html: &str) -> String {
    let start = html.find("action=\"").unwrap() + 8;
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_string()
}

fn error_code(html: &str) -> Option<&str> {
    let start = html.find("错误代码 ")? + "错误代码 ".len();
    html[start..].split_whitespace().next()
}

fn verify(received: &Received, env: &Env) -> TradeNotification {
    SignedFields::from_form(&received.body)
        .unwrap()
        .verify_trade_notification(&env.emu.alipay_public_key(), SignType::Rsa2)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&received.body)))
}

async fn received(receiver: &Receiver, n: usize) -> Vec<Received> {
    eventually(WAIT, || async {
        (receiver.count() >= n).then(|| receiver.all())
    })
    .await
}

impl Env {
    async fn now(&self) -> DateTime<FixedOffset> {
        let (status, v) = self.control(Method::GET, "/__emulator/clock", None).await;
        assert_eq!(status, 200, "{v}");
        at(v["now"].as_str().unwrap())
    }

    async fn advance(&self, seconds: u64) {
        let (status, v) = self
            .control(
                Method::POST,
                "/__emulator/clock",
                Some(json!({ "advance_seconds": seconds })),
            )
            .await;
        assert_eq!(status, 200, "{v}");
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

    /// A raw signed request; the answer verified with the platform key.
    async fn raw_agent(&self, biz: &str) -> Value {
        let raw = self.post_form(&signed_params(METHOD, biz, &[])).await;
        assert_eq!(raw.status, 200);
        let v = verify_response(
            &raw.body,
            METHOD,
            &self.emu.alipay_public_key(),
            SignType::Rsa2,
        )
        .unwrap_or_else(|e| panic!("{e}: {}", raw.body));
        assert!(!v.is_error_response, "{}", raw.body);
        Value::Object(v.body)
    }
}

/// The PNG's pixels are exactly the QR code of `url`: 1-bit black on white, square modules, a
/// four-module quiet zone. Comparing against the code the `qrcode` crate makes of `url` is
/// decoding it (one text has one code at a given version and error-correction level).
fn assert_png_is_qr_of(png_bytes: &[u8], url: &str) {
    assert_eq!(&png_bytes[..8], b"\x89PNG\r\n\x1a\n");
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut buf).unwrap();
    let (w, h) = (frame.width as usize, frame.height as usize);
    assert_eq!(w, h);
    let code = qrcode::QrCode::new(url.as_bytes()).unwrap();
    let modules = code.width();
    let quiet = 4;
    assert_eq!(w % (modules + 2 * quiet), 0, "{w} px for {modules} modules");
    let scale = w / (modules + 2 * quiet);
    assert!(scale >= 2, "{scale} px per module");
    let colors = code.to_colors();
    for y in 0..h {
        for x in 0..w {
            let (mx, my) = (x / scale, y / scale);
            let inside =
                (quiet..quiet + modules).contains(&mx) && (quiet..quiet + modules).contains(&my);
            let dark = inside && colors[(my - quiet) * modules + mx - quiet] == qrcode::Color::Dark;
            let pixel = buf[y * frame.line_size + x];
            assert_eq!(pixel, if dark { 0 } else { 255 }, "pixel {x},{y}");
        }
    }
}

#[tokio::test]
async fn fields_are_checked_with_alipays_codes_and_the_number_is_guarded() {
    let env = start().await;
    // Each fault, answered signed, 40004 ACQ.INVALID_PARAMETER naming the field, with the order.
    let cases = [
        (
            r#"{"amount":"1.00","agent_name":"n","agent_id":"a"}"#,
            "缺少必选参数 out_trade_no",
        ),
        (
            r#"{"out_trade_no":"V_1","agent_name":"n","agent_id":"a"}"#,
            "缺少必选参数 amount",
        ),
        (
            r#"{"out_trade_no":"V_1","amount":1.5,"agent_name":"n","agent_id":"a"}"#,
            "amount 必须是字符串",
        ),
        (
            r#"{"out_trade_no":"V_1","amount":"1.234","agent_name":"n","agent_id":"a"}"#,
            "amount 金额格式错误",
        ),
        (
            r#"{"out_trade_no":"V_1","amount":"0.00","agent_name":"n","agent_id":"a"}"#,
            "amount 金额格式错误",
        ),
        (
            r#"{"out_trade_no":"V_1","amount":"100000000.01","agent_name":"n","agent_id":"a"}"#,
            "amount 金额格式错误",
        ),
        (
            r#"{"out_trade_no":"V_1","total_amount":"1.00","agent_name":"n","agent_id":"a"}"#,
            "缺少必选参数 amount",
        ),
        (
            r#"{"out_trade_no":"V_1","amount":"1.00","agent_id":"a"}"#,
            "缺少必选参数 agent_name",
        ),
        (
            r#"{"out_trade_no":"V_1","amount":"1.00","agent_name":"n"}"#,
            "缺少必选参数 agent_id",
        ),
        (
            r#"{"out_trade_no":"V_1","amount":"1.00","agent_name":"n","agent_id":"a","time_expire":"2026-11-25T10:00:00"}"#,
            "time_expire",
        ),
    ];
    for (biz, rule) in cases {
        let inner = env.raw_agent(biz).await;
        assert_eq!(inner["code"], "40004", "{biz}: {inner}");
        assert_eq!(inner["sub_code"], "ACQ.INVALID_PARAMETER", "{biz}: {inner}");
        assert!(
            inner["sub_msg"].as_str().unwrap().contains(rule),
            "{biz}: {inner}"
        );
        if biz.contains("V_1") {
            assert_eq!(inner["out_trade_no"], "V_1", "{inner}");
        }
    }
    // agent_name: 128 characters pass, 129 do not.
    let mut long = agent_order("V_2", "1");
    long.agent_name = "名".repeat(129);
    let err = env.client.execute(&long).await.unwrap_err();
    assert_eq!(sub_code(&err), "ACQ.INVALID_PARAMETER");
    assert!(sub_msg(&err).contains("agent_name 长度 129"), "{err:?}");
    long.agent_name = "名".repeat(128);
    env.client.execute(&long).await.unwrap();
    // The bounds of amount.
    for (no, yuan) in [("V_MIN", "0.01"), ("V_MAX", "100000000")] {
        let ok = env.client.execute(&agent_order(no, yuan)).await.unwrap();
        assert_eq!(ok.out_trade_no.as_deref(), Some(no));
    }
    let (status, _) = env
        .control(
            Method::GET,
            &format!("/__emulator/apps/{APP_ID}/trades/V_1"),
            None,
        )
        .await;
    assert_eq!(status, 404, "a refused request registers nothing");

    // The same number: identical content re-enters the order (request_channel_source may
    // change between versions), different content is a tampered order, as for precreate.
    let first = env
        .client
        .execute(&agent_order("G_1", "8.88"))
        .await
        .unwrap();
    let mut newer = agent_order("G_1", "8.88");
    newer.request_channel_source = "mcp_0.2.0".into();
    let again = env.client.execute(&newer).await.unwrap();
    assert_eq!(again, first);
    let mut other_agent = agent_order("G_1", "8.88");
    other_agent.agent_id = "agent_other".into();
    for changed in [agent_order("G_1", "9.99"), other_agent] {
        let err = env.client.execute(&changed).await.unwrap_err();
        assert_eq!(sub_code(&err), "ACQ.CONTEXT_INCONSISTENT");
    }
    // Another product cannot reuse the number, nor this one another's.
    let link = env
        .client
        .payment_link(&order(PayKind::Wap, "G_1", "8.88", "诗歌创作助手"))
        .unwrap();
    let page = env.get(&link).await;
    assert_eq!(error_code(&page.body), Some("ACQ.CONTEXT_INCONSISTENT"));
    env.open_link(PayKind::Wap, "G_2", "1").await;
    let err = env
        .client
        .execute(&agent_order("G_2", "1"))
        .await
        .unwrap_err();
    assert_eq!(sub_code(&err), "ACQ.CONTEXT_INCONSISTENT");
    // Paid: the number is spent.
    let (status, _) = env.act("G_1", "pay").await;
    assert_eq!(status, 200);
    let err = env
        .client
        .execute(&agent_order("G_1", "8.88"))
        .await
        .unwrap_err();
    assert_eq!(sub_code(&err), "ACQ.TRADE_HAS_SUCCESS");

    // An answer about another order is refused by the client, as for every API.
    env.fault(json!({"method": METHOD, "kind": "other_order", "times": 1}))
        .await;
    let err = env
        .client
        .execute(&agent_order("G_3", "1"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Response(ResponseError::Malformed(m)) if m.contains("G_3_OTHER")),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_answer_is_a_cashier_page_and_its_qr_png() {
    let env = start().await;
    let answer: AipayTradePrecreateResponse = env
        .client
        .execute(&agent_order("AG_1", "88.8"))
        .await
        .unwrap();
    assert_eq!(answer.out_trade_no.as_deref(), Some("AG_1"));
    let pay_url = answer.pay_url.unwrap();
    let pic_url = answer.pic_url.unwrap();
    assert!(
        pay_url.starts_with(&format!("{}/qr/", env.base())),
        "{pay_url}"
    );
    assert_eq!(pic_url, format!("{pay_url}/pic.png"));
    // The raw answer: Alipay's key, the three fields, signed (verified again here by hand).
    let inner = env
        .raw_agent(r#"{"out_trade_no":"AG_1","amount":"88.80","agent_name":"诗歌创作助手","agent_id":"agent_poet_01","request_channel_source":"mcp_0.1.0"}"#)
        .await;
    assert_eq!(inner["code"], "10000");
    assert_eq!(inner["pay_url"], pay_url.as_str());
    assert_eq!(inner["pic_url"], pic_url.as_str());

    // The image: a PNG of pay_url's QR code. Fetching it opens nothing.
    let response = env.http.get(&pic_url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    let png = response.bytes().await.unwrap();
    assert_png_is_qr_of(&png, &pay_url);
    assert_eq!(
        env.status_of("AG_1").await,
        Err("ACQ.TRADE_NOT_EXIST".into())
    );
    let missing = env
        .http
        .get(format!("{}/qr/bax0nosuchtoken/pic.png", env.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // pay_url is the phone cashier: the order, the agent, a pay button; opening it creates the
    // trade, as opening a wap link does.
    let page = env.get(&pay_url).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("¥</small>88.80"), "{}", page.body);
    assert!(page.body.contains("诗歌创作助手") && page.body.contains("agent_poet_01"));
    assert!(page.body.contains(METHOD));
    assert_eq!(env.status_of("AG_1").await, Ok(TradeStatus::WaitBuyerPay));
    let paid = env
        .http
        .post(format!("{}{}", env.base(), pay_action(&page.body)))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 200);
    assert!(paid.text().await.unwrap().contains("支付成功"));
    assert_eq!(env.status_of("AG_1").await, Ok(TradeStatus::TradeSuccess));
    // A paid order's cashier refuses.
    let page = env.get(&pay_url).await;
    assert_eq!(error_code(&page.body), Some("ACQ.TRADE_HAS_SUCCESS"));
    let view = env.trade("AG_1").await;
    assert_eq!(view["method"], METHOD);
    assert_eq!(view["agent"]["agent_id"], "agent_poet_01");
    assert_eq!(view["agent"]["request_channel_source"], "mcp_0.1.0");
}

#[tokio::test]
async fn paid_queried_notified_and_refunded_like_a_wap_order() {
    let env = start().await;
    let rx = receiver(&[]).await;
    let client = client_with_urls(&env.emu, Some(&rx.url), None);
    let answer = client.execute(&agent_order("AP_1", "30")).await.unwrap();
    assert_eq!(env.trade("AP_1").await["notify_url"], rx.url.as_str());
    env.get(&answer.pay_url.unwrap()).await;
    let (status, v) = env.act("AP_1", "pay").await;
    assert_eq!(
        (status, v["trade_status"].as_str()),
        (200, Some("TRADE_SUCCESS"))
    );

    let q = env
        .client
        .execute(&TradeQuery::by_out_trade_no("AP_1"))
        .await
        .unwrap();
    assert_eq!(q.trade_status, Some(TradeStatus::TradeSuccess));
    assert_eq!(q.total_amount.unwrap().to_string(), "30.00");
    assert_eq!(q.buyer_pay_amount.unwrap().to_string(), "30.00");
    assert_eq!(q.subject.as_deref(), Some("诗歌创作助手"));
    let trade_no = q.trade_no.clone().unwrap();

    let got = received(&rx, 1).await;
    let n = verify(&got[0], &env);
    assert_eq!(n.trade_status, TradeStatus::TradeSuccess);
    assert_eq!(n.out_trade_no, "AP_1");
    assert_eq!(n.total_amount.to_string(), "30.00");
    assert_eq!(n.trade_no.as_deref(), Some(trade_no.as_str()));

    // Partial refund, its query, its notification.
    let refund = env
        .client
        .execute(&TradeRefund {
            out_trade_no: "AP_1".into(),
            refund_amount: Amount::from_yuan_str("10").unwrap(),
            out_request_no: Some("AP_1_R1".into()),
            refund_reason: Some("部分退款".into()),
        })
        .await
        .unwrap();
    assert!(refund.fund_changed());
    assert_eq!(refund.refund_fee.unwrap().to_string(), "10.00");
    let rq = env
        .client
        .execute(&RefundQuery {
            out_trade_no: "AP_1".into(),
            out_request_no: "AP_1_R1".into(),
            query_options: None,
        })
        .await
        .unwrap();
    assert!(rq.refund_succeeded());
    assert_eq!(rq.refund_amount.unwrap().to_string(), "10.00");
    assert_eq!(rq.total_amount.unwrap().to_string(), "30.00");
    let got = received(&rx, 2).await;
    let n = verify(&got[1], &env);
    assert_eq!(n.trade_status, TradeStatus::TradeSuccess);
    assert_eq!(n.refund_fee.unwrap().to_string(), "10.00");
    assert_eq!(n.out_biz_no.as_deref(), Some("AP_1_R1"));

    // The rest: the trade closes, notified.
    env.client
        .execute(&TradeRefund {
            out_trade_no: "AP_1".into(),
            refund_amount: Amount::from_yuan_str("20").unwrap(),
            out_request_no: Some("AP_1_R2".into()),
            refund_reason: None,
        })
        .await
        .unwrap();
    assert_eq!(env.status_of("AP_1").await, Ok(TradeStatus::TradeClosed));
    let got = received(&rx, 3).await;
    let n = verify(&got[2], &env);
    assert_eq!(n.trade_status, TradeStatus::TradeClosed);
    assert_eq!(n.refund_fee.unwrap().to_string(), "30.00");
}

#[tokio::test]
async fn control_pay_and_close_work_on_agent_orders() {
    let env = start().await;
    let rx = receiver(&[]).await;
    let client = client_with_urls(&env.emu, Some(&rx.url), None);
    // Paid through the control API without opening pay_url first (it opens it).
    client.execute(&agent_order("CT_1", "5")).await.unwrap();
    let (status, v) = env.act("CT_1", "pay").await;
    assert_eq!(
        (status, v["trade_status"].as_str()),
        (200, Some("TRADE_SUCCESS"))
    );
    assert_eq!(v["total_amount"], "5.00");
    assert_eq!(v["method"], METHOD);
    assert_eq!(env.act("CT_1", "pay").await.0, 409);
    // A payment notified, then finished and notified (wap's rules).
    let (status, _) = env.act("CT_1", "finish").await;
    assert_eq!(status, 200);
    let got = received(&rx, 2).await;
    assert_eq!(
        verify(&got[1], &env).trade_status,
        TradeStatus::TradeFinished
    );

    // An opened, unpaid order closes with alipay.trade.close and notifies the close.
    let answer = client.execute(&agent_order("CT_2", "5")).await.unwrap();
    let err = env
        .client
        .execute(&TradeClose {
            out_trade_no: "CT_2".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(sub_code(&err), "ACQ.TRADE_NOT_EXIST", "not opened yet");
    env.get(&answer.pay_url.clone().unwrap()).await;
    let closed = env
        .client
        .execute(&TradeClose {
            out_trade_no: "CT_2".into(),
        })
        .await
        .unwrap();
    assert_eq!(closed.out_trade_no.as_deref(), Some("CT_2"));
    assert_eq!(env.status_of("CT_2").await, Ok(TradeStatus::TradeClosed));
    let got = received(&rx, 3).await;
    let n = verify(&got[2], &env);
    assert_eq!(
        (n.out_trade_no.as_str(), n.trade_status),
        ("CT_2", TradeStatus::TradeClosed)
    );
    let page = env.get(&answer.pay_url.unwrap()).await;
    assert_eq!(error_code(&page.body), Some("ACQ.TRADE_HAS_CLOSE"));
    assert_eq!(env.act("CT_2", "pay").await.0, 409);
}

#[tokio::test]
async fn time_expire_closes_an_opened_order_and_kills_an_unopened_one() {
    let env = start().await;
    let rx = receiver(&[]).await;
    let client = client_with_urls(&env.emu, Some(&rx.url), None);
    let now = env.now().await;

    // Invalid: already over.
    let mut past = agent_order("EX_0", "1");
    past.time_expire = Some(format_timestamp(&now));
    let err = client.execute(&past).await.unwrap_err();
    assert_eq!(sub_code(&err), "ACQ.INVALID_PARAMETER");
    assert!(sub_msg(&err).contains("time_expire"), "{err:?}");

    let expiry = timestamp_after(&now, 2);
    let mut opened = agent_order("EX_1", "6");
    opened.time_expire = Some(expiry.clone());
    let opened = client.execute(&opened).await.unwrap();
    let mut unopened = agent_order("EX_2", "6");
    unopened.time_expire = Some(expiry.clone());
    let unopened = client.execute(&unopened).await.unwrap();
    assert_eq!(env.trade("EX_1").await["expire_at"], expiry.as_str());
    let page = env.get(opened.pay_url.as_deref().unwrap()).await;
    assert!(error_code(&page.body).is_none(), "{}", page.body);
    assert_eq!(env.status_of("EX_1").await, Ok(TradeStatus::WaitBuyerPay));

    env.advance(3 * 60).await;
    // The opened trade closed at its expiry, notified once.
    assert_eq!(env.status_of("EX_1").await, Ok(TradeStatus::TradeClosed));
    assert_eq!(env.trade("EX_1").await["gmt_close"], expiry.as_str());
    let got = received(&rx, 1).await;
    let n = verify(&got[0], &env);
    assert_eq!(n.trade_status, TradeStatus::TradeClosed);
    assert_eq!(n.gmt_close.as_deref(), Some(expiry.as_str()));
    // Its cashier, its pay button and the control API refuse; the unopened one left no trade and
    // cannot be opened or paid.
    for url in [opened.pay_url.unwrap(), unopened.pay_url.unwrap()] {
        let page = env.get(&url).await;
        assert_eq!(error_code(&page.body), Some("ACQ.TRADE_HAS_CLOSE"), "{url}");
        assert!(page.body.contains("支付截止时间"), "{}", page.body);
    }
    assert_eq!(
        env.status_of("EX_2").await,
        Err("ACQ.TRADE_NOT_EXIST".into())
    );
    for no in ["EX_1", "EX_2"] {
        let (status, v) = env.act(no, "pay").await;
        assert_eq!(status, 409, "{no}: {v}");
    }
    // The image is still served (it is only a picture of the dead page).
    let pic = env
        .http
        .get(unopened.pic_url.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(pic.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        rx.count(),
        1,
        "one close notification, none for the unopened order"
    );
}
