//! The notify receiver against forged, replayed and malformed notifications. Each must be answered
//! `fail` with the ledger unchanged; the genuine one is answered `success` once, and its retries
//! `success` again without being counted twice.

mod common;

use alipay_openapi::{PrivateKey, SignType, SignedFields};
use common::*;
use serde_json::json;

struct Receiver {
    url: String,
    http: reqwest::Client,
    db: std::path::PathBuf,
}

impl Receiver {
    async fn post(&self, content_type: &str, body: String) -> String {
        let r = self
            .http
            .post(&self.url)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        r.text().await.unwrap()
    }

    async fn send(&self, fields: &SignedFields) -> String {
        self.post(
            "application/x-www-form-urlencoded; charset=utf-8",
            fields.to_form(),
        )
        .await
    }

    /// Everything a notification may change.
    fn snapshot(&self) -> String {
        let db = rusqlite::Connection::open(&self.db).unwrap();
        let orders: Vec<String> = db
            .prepare("SELECT out_trade_no || '|' || COALESCE(trade_status,'') || '|' || refunded_fen || '|' || COALESCE(trade_no,'') FROM orders ORDER BY out_trade_no")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let accepted: i64 = db
            .query_row(
                "SELECT COUNT(*) FROM notifications WHERE verdict = 'accepted'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let events: i64 = db
            .query_row("SELECT COUNT(*) FROM status_events", [], |r| r.get(0))
            .unwrap();
        format!("{orders:?} accepted={accepted} events={events}")
    }
}

fn fields(pairs: &[(&str, &str)], key: &PrivateKey) -> SignedFields {
    let mut f = SignedFields::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .unwrap();
    f.sign(key, SignType::Rsa2).unwrap();
    f
}

#[tokio::test]
async fn only_genuine_notifications_change_the_ledger() {
    let dir = TempDir::new("notify-suite");
    let notify_port = free_port();
    let mut env = local_env(dir.path(), free_port());
    env.insert(
        "AP_NOTIFY_LISTEN".into(),
        format!("127.0.0.1:{notify_port}"),
    );
    let client = connect(&env).await;
    let created = call(
        &client,
        "create-web-page-alipay-payment",
        json!({"outTradeNo":"NS_1","totalAmount":"25.00","orderTitle":"t"}),
    )
    .await;
    let app_id = link_param(&link_of(&created), "app_id").unwrap();
    let key_text =
        |f: &str| std::fs::read_to_string(dir.path().join("data/local").join(f)).unwrap();
    let platform = PrivateKey::load("platform", &key_text("alipay-private-key.txt")).unwrap();
    let other = PrivateKey::load("app", &key_text("app-private-key.txt")).unwrap();
    let receiver = Receiver {
        url: format!("http://127.0.0.1:{notify_port}/alipay/notify"),
        http: reqwest::Client::new(),
        db: dir.path().join("data/local/ledger.db"),
    };
    let base = |notify_id: &'static str, status: &'static str, amount: &'static str| {
        vec![
            ("notify_id", notify_id),
            ("notify_time", "2026-11-25 10:21:06"),
            ("notify_type", "trade_status_sync"),
            ("charset", "utf-8"),
            ("version", "1.0"),
            ("app_id", "APP"),
            ("auth_app_id", "APP"),
            ("out_trade_no", "NS_1"),
            ("trade_no", "2026112522001400000000000777"),
            ("trade_status", status),
            ("total_amount", amount),
            ("subject", "t"),
        ]
    };
    let with_app = |mut v: Vec<(&'static str, &'static str)>, app: &'static str| {
        for (k, val) in v.iter_mut() {
            if *k == "app_id" || *k == "auth_app_id" {
                *val = app;
            }
        }
        v
    };
    let app: &'static str = Box::leak(app_id.clone().into_boxed_str());
    let genuine = fields(
        &with_app(base("N_PAY", "TRADE_SUCCESS", "25.00"), app),
        &platform,
    );

    let before = receiver.snapshot();
    let mut forged_sign = genuine.clone();
    forged_sign = SignedFields::from_pairs(forged_sign.iter().map(|(k, v)| {
        (
            k.to_string(),
            if k == "sign" {
                // Another first character (one signature in 64 starts with "A" already).
                let first = if v.starts_with('A') { 'B' } else { 'A' };
                format!("{first}{}", &v[1..])
            } else {
                v.to_string()
            },
        )
    }))
    .unwrap();
    let replace = |v: Vec<(&'static str, &'static str)>,
                   key: &'static str,
                   value: &'static str|
     -> Vec<(&'static str, &'static str)> {
        v.into_iter()
            .map(|(k, old)| if k == key { (k, value) } else { (k, old) })
            .collect()
    };
    let bad_cases: Vec<(&str, String, String)> = vec![
        (
            "forged signature",
            "application/x-www-form-urlencoded".into(),
            forged_sign.to_form(),
        ),
        (
            "signed by another key",
            "application/x-www-form-urlencoded".into(),
            fields(
                &with_app(base("N_X1", "TRADE_SUCCESS", "25.00"), app),
                &other,
            )
            .to_form(),
        ),
        (
            "wrong app_id",
            "application/x-www-form-urlencoded".into(),
            fields(&base("N_X2", "TRADE_SUCCESS", "25.00"), &platform).to_form(),
        ),
        (
            "unknown order",
            "application/x-www-form-urlencoded".into(),
            fields(
                &replace(
                    with_app(base("N_X3", "TRADE_SUCCESS", "25.00"), app),
                    "out_trade_no",
                    "NS_NOPE",
                ),
                &platform,
            )
            .to_form(),
        ),
        (
            "amount off by 0.01",
            "application/x-www-form-urlencoded".into(),
            fields(
                &with_app(base("N_X4", "TRADE_SUCCESS", "24.99"), app),
                &platform,
            )
            .to_form(),
        ),
        (
            "amount off by +0.01",
            "application/x-www-form-urlencoded".into(),
            fields(
                &with_app(base("N_X6", "TRADE_SUCCESS", "25.01"), app),
                &platform,
            )
            .to_form(),
        ),
        (
            "fields missing",
            "application/x-www-form-urlencoded".into(),
            fields(
                &with_app(base("N_X5", "TRADE_SUCCESS", "25.00"), app)
                    .into_iter()
                    .filter(|(k, _)| *k != "trade_status")
                    .collect::<Vec<_>>(),
                &platform,
            )
            .to_form(),
        ),
        (
            "1 MB body",
            "application/x-www-form-urlencoded".into(),
            format!("{}&padding={}", genuine.to_form(), "x".repeat(1 << 20)),
        ),
        (
            "wrong content type",
            "application/json".into(),
            serde_json::to_string(&genuine.iter().collect::<std::collections::BTreeMap<_, _>>())
                .unwrap(),
        ),
        (
            "empty body",
            "application/x-www-form-urlencoded".into(),
            String::new(),
        ),
    ];
    for (case, content_type, body) in &bad_cases {
        assert_eq!(
            receiver.post(content_type, body.clone()).await,
            "fail",
            "{case}"
        );
        assert_eq!(receiver.snapshot(), before, "{case}: ledger unchanged");
    }

    // The genuine one, once, then its retries.
    assert_eq!(receiver.send(&genuine).await, "success");
    let paid = receiver.snapshot();
    assert!(paid.contains("NS_1|TRADE_SUCCESS"), "{paid}");
    assert!(paid.contains("accepted=1"), "{paid}");
    let mut retry = SignedFields::from_pairs(
        genuine
            .iter()
            .filter(|(k, _)| *k != "sign" && *k != "sign_type")
            .map(|(k, v)| {
                (
                    k.to_string(),
                    if k == "notify_time" {
                        "2026-11-25 10:25:06".to_string()
                    } else {
                        v.to_string()
                    },
                )
            }),
    )
    .unwrap();
    retry.sign(&platform, SignType::Rsa2).unwrap();
    for _ in 0..3 {
        assert_eq!(receiver.send(&genuine).await, "success");
        assert_eq!(
            receiver.send(&retry).await,
            "success",
            "a retry stamped with a new notify_time"
        );
    }
    assert_eq!(receiver.snapshot(), paid, "retries are not counted twice");

    // A known notify_id with other content is a replay, refused.
    let replayed = fields(
        &with_app(base("N_PAY", "TRADE_FINISHED", "25.00"), app),
        &platform,
    );
    assert_eq!(receiver.send(&replayed).await, "fail");
    assert_eq!(receiver.snapshot(), paid);

    // A full refund closes the order; a later TRADE_SUCCESS cannot reopen it.
    let mut closed = with_app(base("N_CLOSE", "TRADE_CLOSED", "25.00"), app);
    closed.extend([
        ("refund_fee", "25.00"),
        ("gmt_refund", "2026-11-25 11:00:00"),
        ("gmt_close", "2026-11-25 11:00:00"),
    ]);
    assert_eq!(receiver.send(&fields(&closed, &platform)).await, "success");
    let after_close = receiver.snapshot();
    assert!(
        after_close.contains("NS_1|TRADE_CLOSED|2500"),
        "{after_close}"
    );
    let reopened = fields(
        &with_app(base("N_LATE", "TRADE_SUCCESS", "25.00"), app),
        &platform,
    );
    assert_eq!(receiver.send(&reopened).await, "fail");
    assert_eq!(receiver.snapshot(), after_close);

    // Every refusal is recorded with its reason.
    let db = rusqlite::Connection::open(&receiver.db).unwrap();
    let rejected: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM notifications WHERE verdict = 'rejected'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rejected as usize, bad_cases.len() + 2);
    client.cancel().await.unwrap();
}

/// The gateway's own notification: its first delivery is spoiled on the way (the signature
/// altered, so our receiver answers `fail`), the emulator retries on its schedule, the retry is
/// accepted once, and a redelivery of the very form the gateway sent answers `success` without
/// counting twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_retry_after_a_fail_is_accepted_once() {
    use alipay_emulator::{AppConfig, Emulator, EmulatorConfig};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let dir = TempDir::new("notify-retry");
    let app_id = "2021000000000077";
    let app_key = PrivateKey::generate().unwrap();
    let platform = PrivateKey::generate().unwrap();
    let mut config = EmulatorConfig::new(platform.clone())
        .with_app(AppConfig::new(app_id, app_key.public_key().clone()));
    config.notify_retry = vec![std::time::Duration::from_millis(300); 4];
    let emulator = Emulator::start(
        config,
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    .unwrap();

    // Between the gateway and our receiver: the first delivery arrives with its signature altered.
    let receiver_port = free_port();
    let receiver = format!("http://127.0.0.1:{receiver_port}/alipay/notify");
    let deliveries = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let relay = {
        let (deliveries, answers, receiver) =
            (deliveries.clone(), answers.clone(), receiver.clone());
        move |body: axum::body::Bytes| {
            let (deliveries, answers, receiver) =
                (deliveries.clone(), answers.clone(), receiver.clone());
            async move {
                let mut fields = SignedFields::from_form(&body).unwrap();
                if deliveries.fetch_add(1, Ordering::SeqCst) == 0 {
                    fields = SignedFields::from_pairs(fields.iter().map(|(k, v)| {
                        let v = if k == "sign" {
                            format!("{}{}", if v.starts_with('A') { "B" } else { "A" }, &v[1..])
                        } else {
                            v.to_string()
                        };
                        (k.to_string(), v)
                    }))
                    .unwrap();
                }
                let answer = reqwest::Client::new()
                    .post(&receiver)
                    .header(
                        "content-type",
                        "application/x-www-form-urlencoded; charset=utf-8",
                    )
                    .body(fields.to_form())
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                answers.lock().unwrap().push(answer.clone());
                answer
            }
        }
    };
    let relay_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_url = format!(
        "http://{}/alipay/notify",
        relay_listener.local_addr().unwrap()
    );
    tokio::spawn(async move {
        axum::serve(
            relay_listener,
            axum::Router::new().route("/alipay/notify", axum::routing::post(relay)),
        )
        .await
        .unwrap()
    });

    let mut env = local_env(dir.path(), free_port());
    env.insert("AP_APP_ID".into(), app_id.into());
    env.insert("AP_APP_KEY".into(), app_key.to_pkcs8_base64());
    env.insert("AP_PUB_KEY".into(), platform.public_key().to_spki_base64());
    env.insert("AP_GATEWAY_URL".into(), emulator.gateway_url());
    env.insert(
        "AP_NOTIFY_LISTEN".into(),
        format!("127.0.0.1:{receiver_port}"),
    );
    env.insert("AP_NOTIFY_URL".into(), relay_url);
    let client = connect(&env).await;
    let created = call(
        &client,
        "create-web-page-alipay-payment",
        json!({"outTradeNo":"NR_RETRY","totalAmount":"12.30","orderTitle":"retry"}),
    )
    .await;
    let link = link_of(&created);
    let gateway = Gateway::from_link(&link);
    gateway.open(&link).await;
    gateway.pay("NR_RETRY").await;

    let delivered = eventually(20, || async {
        gateway.trade("NR_RETRY").await["notifications"][0]["state"] == "delivered"
    })
    .await;
    let trade = gateway.trade("NR_RETRY").await;
    assert!(delivered, "the gateway's retry was accepted: {trade}");
    let attempts = trade["notifications"][0]["attempts"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        attempts.len(),
        2,
        "one failed delivery, one retry: {attempts:?}"
    );
    assert_eq!(
        attempts[0]["body"], "fail",
        "the spoiled delivery was refused"
    );
    assert_eq!(attempts[1]["body"], "success");
    assert_eq!(*answers.lock().unwrap(), ["fail", "success"]);

    let receiver_db = Receiver {
        url: receiver.clone(),
        http: reqwest::Client::new(),
        db: dir.path().join("data/ledger.db"),
    };
    let paid = receiver_db.snapshot();
    assert!(paid.contains("NR_RETRY|TRADE_SUCCESS|0|"), "{paid}");
    assert!(paid.contains("accepted=1"), "{paid}");
    // The exact form the gateway sent on its retry, delivered again (as Alipay may).
    let fields: Vec<(String, String)> = trade["notifications"][0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut again = SignedFields::from_pairs(fields.into_iter().chain([(
        "notify_time".to_string(),
        attempts[1]["at"].as_str().unwrap().to_string(),
    )]))
    .unwrap();
    again.sign(&platform, SignType::Rsa2).unwrap();
    for _ in 0..3 {
        assert_eq!(receiver_db.send(&again).await, "success");
    }
    assert_eq!(
        receiver_db.snapshot(),
        paid,
        "redeliveries are not counted twice"
    );
    let rejected: i64 = rusqlite::Connection::open(dir.path().join("data/ledger.db"))
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM notifications WHERE verdict = 'rejected'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rejected, 1, "the spoiled delivery is on record as refused");
    client.cancel().await.unwrap();
    emulator.shutdown().await;
}
