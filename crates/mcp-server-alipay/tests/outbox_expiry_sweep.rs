//! The expiry sweep, in process: orders that end unpaid with no word from Alipay are told as
//! expired, once. A link nobody opened has no trade at Alipay (so no notification ever comes); a
//! link that was opened has a trade the gateway closes at its expiry, and the sweep's query learns
//! it.
//! The embedded gateway's clock is moved past the expiry instead of waiting.

use std::sync::Arc;

use alipay_emulator::{AppConfig, Emulator, EmulatorConfig};
use alipay_openapi::{AlipayClient, ClientConfig, Merchant, PrivateKey, SignType};
use mcp_server_alipay::domain::outbox::{EventKind, TargetKind};
use mcp_server_alipay::domain::{AppScope, Env, OrderKind, OutTradeNo};
use mcp_server_alipay::ledger::SqliteLedger;
use mcp_server_alipay::service::orders::{self, CreateRequest, Created};
use mcp_server_alipay::service::{EmbeddedClock, Services, expiry};

const APP_ID: &str = "2021000000000099";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_that_expire_unpaid_are_told_once() {
    let (platform, app_key) = (
        PrivateKey::generate().unwrap(),
        PrivateKey::generate().unwrap(),
    );
    let config = EmulatorConfig::new(platform)
        .with_app(AppConfig::new(APP_ID, app_key.public_key().clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emulator = Emulator::start(config, listener).await.unwrap();
    let client = AlipayClient::new(ClientConfig::new(
        Merchant {
            app_id: APP_ID.into(),
            private_key: app_key,
            sign_type: SignType::Rsa2,
            app_auth_token: None,
        },
        emulator.alipay_public_key(),
        emulator.gateway_url(),
    ))
    .unwrap();
    let dir = std::env::temp_dir().join(format!("mcp-alipay-sweep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let scope = AppScope {
        env: Env::Local,
        app_id: APP_ID.into(),
    };
    let ledger = SqliteLedger::open(&dir.join("ledger.db"), scope, &dir.join("instances"))
        .await
        .unwrap()
        .with_outbox(&[TargetKind::Webhook]);
    let svc = Services {
        client,
        ledger: Arc::new(ledger),
        guard: Default::default(),
        timeout: std::time::Duration::from_secs(5),
        order_ttl_minutes: 30,
        agent_id: "sweep-test".into(),
        clock: Arc::new(EmbeddedClock(emulator.clock())),
        waits: Default::default(),
        approvals: None,
    };
    let create = |no: &str, kind: OrderKind| {
        let svc = svc.clone();
        let no = OutTradeNo::parse(no).unwrap();
        async move {
            let created = orders::create(
                &svc,
                &CreateRequest {
                    out_trade_no: Some(no.clone()),
                    kind,
                    amount: alipay_openapi::Amount::from_yuan_str("3.00").unwrap(),
                    title: "sweep".into(),
                    expires_in_minutes: Some(5),
                },
                &orders::ToolCall {
                    tool: "create-web-page-alipay-payment",
                    arguments: &serde_json::Map::new(),
                },
            )
            .await;
            let Created::New { order, .. } = created else {
                panic!("{created:?}")
            };
            (no, order.link)
        }
    };
    let http = reqwest::Client::new();
    let (unopened, _) = create("SWEEP_LINK", OrderKind::WebPage).await;
    let (opened, link) = create("SWEEP_OPENED", OrderKind::WebPage).await;
    // Opened in a browser: the gateway now has an unpaid trade.
    assert!(http.get(&link).send().await.unwrap().status().is_success());
    let (paid, _) = create("SWEEP_PAID", OrderKind::QrCode).await;
    let pay = http
        .post(format!(
            "{}/__emulator/apps/{APP_ID}/trades/SWEEP_PAID/pay",
            emulator.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert!(pay.status().is_success());

    // Before the expiry there is nothing to tell.
    assert_eq!(expiry::sweep(&svc).await, 0);
    let moved = http
        .post(format!("{}/__emulator/clock", emulator.base_url()))
        .body(r#"{"advance_seconds": 400}"#)
        .send()
        .await
        .unwrap();
    assert!(moved.status().is_success());

    // After it: the unopened link is recorded as expired (1), the opened one's close is learned
    // by the sweep's query and told as an expiry too.
    assert_eq!(expiry::sweep(&svc).await, 1);
    let told = |no: OutTradeNo| {
        let ledger = svc.ledger.clone();
        async move {
            ledger
                .deliveries(&no)
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.kind)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(told(unopened.clone()).await, [EventKind::OrderExpired]);
    assert_eq!(told(opened.clone()).await, [EventKind::OrderExpired]);
    // A payment nobody told us of (no notify URL here) is learned by the sweep's query, and told
    // as a payment, never as an expiry.
    assert_eq!(told(paid.clone()).await, [EventKind::PaymentSucceeded]);
    // Once: a second sweep asks no more about them.
    assert_eq!(expiry::sweep(&svc).await, 0);
    assert_eq!(told(unopened).await.len(), 1);
    assert_eq!(told(opened).await.len(), 1);
    drop(svc);
    let _ = std::fs::remove_dir_all(&dir);
}
