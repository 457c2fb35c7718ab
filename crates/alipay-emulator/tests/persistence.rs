//! With a state directory, orders, trades, refunds and pending notifications survive a restart.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use alipay_emulator::{Emulator, EmulatorError, JOURNAL_FILE, STATE_FILE};
use alipay_openapi::{
    Amount, PayKind, RefundQuery, TradePrecreate, TradeQuery, TradeRefund, TradeStatus,
};
use common::*;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "alipay-emulator-test-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn persisted(dir: &Path) -> alipay_emulator::EmulatorConfig {
    let mut c = config();
    c.state_dir = Some(dir.to_path_buf());
    c.notify_retry = vec![Duration::from_millis(100); 1000];
    c
}

/// A notify_url that answers `fail` until told to accept.
async fn switchable_receiver() -> (String, Arc<AtomicBool>, Arc<AtomicUsize>) {
    let accept = Arc::new(AtomicBool::new(false));
    let hits = Arc::new(AtomicUsize::new(0));
    let (a, h) = (accept.clone(), hits.clone());
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move || {
            let (a, h) = (a.clone(), h.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                if a.load(Ordering::SeqCst) {
                    "success"
                } else {
                    "fail"
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, accept, hits)
}

#[tokio::test]
async fn trades_refunds_orders_and_pending_notifications_survive_a_restart() {
    let dir = temp_dir("restart");
    let (notify_url, accept, hits) = switchable_receiver().await;

    let env = start_with(persisted(&dir)).await;
    // A paid, partly refunded trade.
    env.paid(PayKind::Wap, "KEEP_1", "50").await;
    let refund = TradeRefund {
        out_trade_no: "KEEP_1".into(),
        refund_amount: Amount::from_yuan_str("20").unwrap(),
        out_request_no: Some("KR1".into()),
        refund_reason: None,
    };
    env.client.execute(&refund).await.unwrap();
    let before = env
        .client
        .execute(&TradeQuery::by_out_trade_no("KEEP_1"))
        .await
        .unwrap();
    // A precreated order nobody scanned yet.
    env.client
        .execute(&TradePrecreate {
            out_trade_no: "KEEP_2".into(),
            total_amount: Amount::from_yuan_str("3").unwrap(),
            subject: "未扫码".into(),
            body: None,
            timeout_express: None,
            time_expire: None,
        })
        .await
        .unwrap();
    // A paid order whose notification keeps failing.
    let client = client_with_urls(&env.emu, Some(&notify_url), None);
    env.get(
        &client
            .payment_link(&order(PayKind::Wap, "KEEP_3", "1", "x"))
            .unwrap(),
    )
    .await;
    env.act("KEEP_3", "pay").await;
    eventually(Duration::from_secs(10), || async {
        (hits.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    let notify_id = env.trade("KEEP_3").await["notifications"][0]["notify_id"].clone();
    env.emu.shutdown().await;

    let text = std::fs::read_to_string(dir.join(STATE_FILE)).unwrap();
    let state: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(state["format"], 1);
    assert!(!dir.join(format!("{STATE_FILE}.tmp")).exists());

    accept.store(true, Ordering::SeqCst);
    let env = start_with(persisted(&dir)).await;
    let after = env
        .client
        .execute(&TradeQuery::by_out_trade_no("KEEP_1"))
        .await
        .unwrap();
    assert_eq!(after.trade_status, Some(TradeStatus::TradeSuccess));
    assert_eq!(after.trade_no, before.trade_no);
    assert_eq!(after.send_pay_date, before.send_pay_date);
    let repeat = env.client.execute(&refund).await.unwrap();
    assert_eq!(
        (
            repeat.fund_change.as_deref(),
            repeat.refund_fee.map(|m| m.to_string())
        ),
        (Some("N"), Some("20.00".into()))
    );
    let found = env
        .client
        .execute(&RefundQuery {
            out_trade_no: "KEEP_1".into(),
            out_request_no: "KR1".into(),
            query_options: None,
        })
        .await
        .unwrap();
    assert!(found.refund_succeeded());

    let err = env
        .client
        .execute(&TradeQuery::by_out_trade_no("KEEP_2"))
        .await
        .unwrap_err();
    assert_eq!(
        err.business().unwrap().sub_code.as_deref(),
        Some("ACQ.TRADE_NOT_EXIST")
    );
    let (status, v) = env.act("KEEP_2", "pay").await;
    assert_eq!(
        (status, v["trade_status"].as_str()),
        (200, Some("TRADE_SUCCESS"))
    );

    // The pending notification resumes, same notify_id, history kept.
    let n = eventually(Duration::from_secs(10), || {
        let env = &env;
        async move {
            let n = env.trade("KEEP_3").await["notifications"][0].clone();
            (n["state"] == "delivered").then_some(n)
        }
    })
    .await;
    assert_eq!(n["notify_id"], notify_id);
    let attempts = n["attempts"].as_array().unwrap();
    assert!(attempts.len() >= 2);
    assert_eq!(attempts[0]["body"], "fail");
    assert_eq!(attempts.last().unwrap()["body"], "success");
    env.emu.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every answered change is in the journal the moment it is answered: an emulator that stops
/// without its shutdown (as a crash would) loses none of them, and its successor folds them in.
#[tokio::test]
async fn answered_changes_survive_a_stop_without_shutdown() {
    let dir = temp_dir("no-shutdown");
    let env = start_with(persisted(&dir)).await;
    for i in 0..30 {
        env.paid(PayKind::Wap, &format!("CRASH_{i}"), "1").await;
    }
    let refund = TradeRefund {
        out_trade_no: "CRASH_0".into(),
        refund_amount: Amount::from_yuan_str("0.40").unwrap(),
        out_request_no: Some("CR1".into()),
        refund_reason: None,
    };
    env.client.execute(&refund).await.unwrap();
    // No shutdown: nothing is compacted, the journal alone holds the changes.
    drop(env);
    assert!(!dir.join(STATE_FILE).exists());
    assert!(std::fs::metadata(dir.join(JOURNAL_FILE)).unwrap().len() > 0);

    let env = start_with(persisted(&dir)).await;
    for i in 0..30 {
        let q = env
            .client
            .execute(&TradeQuery::by_out_trade_no(format!("CRASH_{i}")))
            .await
            .unwrap();
        assert_eq!(q.trade_status, Some(TradeStatus::TradeSuccess));
    }
    let repeat = env.client.execute(&refund).await.unwrap();
    assert_eq!(repeat.fund_change.as_deref(), Some("N"));
    // The start folded the journal into the snapshot.
    assert!(dir.join(STATE_FILE).exists());
    assert_eq!(std::fs::metadata(dir.join(JOURNAL_FILE)).unwrap().len(), 0);
    env.emu.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_corrupt_state_file_stops_the_start_with_a_clear_error() {
    let dir = temp_dir("corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(STATE_FILE), "{\"format\":1,\"orders\":").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = Emulator::start(persisted(&dir), listener)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, EmulatorError::State(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(STATE_FILE) && text.contains("move it away"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn without_a_state_dir_nothing_is_written_and_a_restart_starts_empty() {
    let env = start().await;
    env.paid(PayKind::Wap, "MEM_1", "1").await;
    env.emu.shutdown().await;
    let env = start().await;
    let err = env
        .client
        .execute(&TradeQuery::by_out_trade_no("MEM_1"))
        .await
        .unwrap_err();
    assert_eq!(
        err.business().unwrap().sub_code.as_deref(),
        Some("ACQ.TRADE_NOT_EXIST")
    );
}
