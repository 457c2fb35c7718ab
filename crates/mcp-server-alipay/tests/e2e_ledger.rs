//! Closing the loop, end to end (spawned binary, local mode): the order resource turns paid from
//! the gateway's notification alone and subscribers hear it; an order or refund number always means
//! one order or refund; every guardrail at, just under and just over its limit; human confirmation
//! of refunds; and a server killed between a refund and its reply agrees with the gateway after a
//! restart.

mod common;

use std::collections::HashMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

use common::*;
use rmcp::model::{ProtocolVersion, ReadResourceRequestParams, SubscribeRequestParams};
use serde_json::{Value, json};

fn env_with(dir: &TempDir, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env = local_env(dir.path(), free_port());
    env.insert(
        "AP_NOTIFY_LISTEN".into(),
        format!("127.0.0.1:{}", free_port()),
    );
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    env
}

async fn read_order<H: rmcp::ClientHandler>(
    client: &rmcp::service::RunningService<rmcp::service::RoleClient, H>,
    no: &str,
) -> Value {
    let result = client
        .read_resource(ReadResourceRequestParams::new(format!(
            "alipay://orders/{no}"
        )))
        .await
        .unwrap();
    let text = match &result.contents[0] {
        rmcp::model::ResourceContents::TextResourceContents { text, .. } => text.clone(),
        other => panic!("{other:?}"),
    };
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn a_payment_reaches_the_order_resource_and_its_subscribers_without_a_query() {
    let dir = TempDir::new("notify");
    let env = env_with(&dir, &[]);
    let (client, mut updates, _) =
        connect_events(&env, ProtocolVersion::V_2025_06_18, Elicit::Unsupported).await;
    let created = call(
        &client,
        "create-web-page-alipay-payment",
        json!({"outTradeNo":"NR_1","totalAmount":"66.60","orderTitle":"Portrait"}),
    )
    .await;
    assert_eq!(structured(&created)["resource"], "alipay://orders/NR_1");
    #[allow(deprecated)]
    client
        .subscribe(SubscribeRequestParams::new("alipay://orders/NR_1"))
        .await
        .unwrap();
    assert_eq!(
        read_order(&client, "NR_1").await["tradeStatus"],
        Value::Null
    );

    let link = link_of(&created);
    let gateway = Gateway::from_link(&link);
    gateway.open(&link).await;
    gateway.pay("NR_1").await;
    let uri = tokio::time::timeout(std::time::Duration::from_secs(15), updates.recv())
        .await
        .expect("resource update in time");
    assert_eq!(uri.as_deref(), Some("alipay://orders/NR_1"));
    let order = read_order(&client, "NR_1").await;
    assert_eq!(order["tradeStatus"], "TRADE_SUCCESS", "{order}");
    assert_eq!(
        order["statusSource"], "notify",
        "learned from the notification"
    );
    assert_eq!(order["notifications"][0]["verdict"], "accepted");
    assert_eq!(
        gateway.count_method("alipay.trade.query").await,
        0,
        "no query was needed"
    );
    // The update is pushed once the ledger committed, which can be before the gateway has
    // recorded our `success` answer.
    assert!(
        eventually(10, || async {
            gateway.trade("NR_1").await.to_string().contains("success")
        })
        .await,
        "the gateway saw `success`: {}",
        gateway.trade("NR_1").await
    );

    // The order list knows it too.
    let paid = call(
        &client,
        "list-alipay-orders",
        json!({"status":"TRADE_SUCCESS"}),
    )
    .await;
    assert_eq!(structured(&paid)["orders"][0]["outTradeNo"], "NR_1");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_2026_client_hears_the_payment_on_its_listen_stream() {
    let dir = TempDir::new("listen");
    let env = env_with(&dir, &[]);
    let (client, _updates, _) =
        connect_events(&env, ProtocolVersion::V_2026_07_28, Elicit::Unsupported).await;
    assert_eq!(
        client.peer_info().unwrap().protocol_version,
        ProtocolVersion::V_2026_07_28
    );
    let created = call(
        &client,
        "create-mobile-alipay-payment",
        json!({"outTradeNo":"NR_2","totalAmount":1,"orderTitle":"t"}),
    )
    .await;
    let filter = rmcp::model::SubscriptionFilter::builder()
        .resource_subscription("alipay://orders/NR_2")
        .build();
    let mut stream = client.listen(filter).await.unwrap();
    let link = link_of(&created);
    let gateway = Gateway::from_link(&link);
    gateway.open(&link).await;
    gateway.pay("NR_2").await;
    let note = tokio::time::timeout(std::time::Duration::from_secs(15), stream.next())
        .await
        .expect("in time")
        .unwrap();
    assert!(
        format!("{note:?}").contains("alipay://orders/NR_2"),
        "{note:?}"
    );
    assert_eq!(
        read_order(&client, "NR_2").await["tradeStatus"],
        "TRADE_SUCCESS"
    );
}

#[tokio::test]
async fn an_order_or_refund_number_always_means_one_thing() {
    let dir = TempDir::new("idem");
    let client = connect(&env_with(&dir, &[])).await;
    let args = json!({"outTradeNo":"ID_1","totalAmount":"10.00","orderTitle":"Cat"});
    let first = call(&client, "create-web-page-alipay-payment", args.clone()).await;
    let again = call(&client, "create-web-page-alipay-payment", args).await;
    assert!(!is_error(&again));
    assert_eq!(
        link_of(&first),
        link_of(&again),
        "the same order, the same link"
    );
    assert_eq!(structured(&again)["existing"], json!(true));
    for different in [
        json!({"outTradeNo":"ID_1","totalAmount":"10.01","orderTitle":"Cat"}),
        json!({"outTradeNo":"ID_1","totalAmount":"10.00","orderTitle":"Dog"}),
    ] {
        let refused = call(&client, "create-web-page-alipay-payment", different.clone()).await;
        assert!(is_error(&refused), "{different}");
        assert!(
            text(&refused).contains("order ID_1 already exists")
                && text(&refused).contains("10.00"),
            "{}",
            text(&refused)
        );
        assert!(!text(&refused).contains("gateway.do"), "nothing signed");
    }
    // Each call has its one audit row (the new order's written with it, in its commit).
    let db = rusqlite::Connection::open(dir.path().join("data/local/ledger.db")).unwrap();
    let rows: Vec<String> = db
        .prepare(
            "SELECT tool || ' | ' || decision || ' | ' || outcome FROM audit
             WHERE arguments LIKE '%\"ID_1\"%' ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let web = "create-web-page-alipay-payment";
    assert_eq!(
        rows,
        [
            format!("{web} | allowed | succeeded"),
            format!("{web} | replayed | succeeded"),
            format!("{web} | refused: number already used | failed"),
            format!("{web} | refused: number already used | failed"),
        ]
    );
    // Omitted numbers are minted, unique, and returned.
    let a = call(
        &client,
        "create-mobile-alipay-payment",
        json!({"totalAmount":1,"orderTitle":"t"}),
    )
    .await;
    let b = call(
        &client,
        "create-mobile-alipay-payment",
        json!({"totalAmount":1,"orderTitle":"t"}),
    )
    .await;
    let (na, nb) = (
        structured(&a)["outTradeNo"].as_str().unwrap(),
        structured(&b)["outTradeNo"].as_str().unwrap(),
    );
    assert!(na.starts_with("MCP") && nb.starts_with("MCP") && na != nb);
    assert!(text(&a).contains(&format!("商户订单号: {na}")));

    // Refunds: same number and amount replays without a gateway call; another amount is refused.
    let link = link_of(&first);
    let gateway = Gateway::from_link(&link);
    gateway.open(&link).await;
    gateway.pay("ID_1").await;
    let refund = json!({"outTradeNo":"ID_1","refundAmount":"3","outRequestNo":"ID_R1"});
    assert!(
        text(&call(&client, "refund-alipay-payment", refund.clone()).await)
            .starts_with("退款结果: 退款成功")
    );
    let sent = gateway.count_method("alipay.trade.refund").await;
    let replay = call(&client, "refund-alipay-payment", refund).await;
    assert!(
        text(&replay).starts_with("退款结果: 重复请求退款幂等成功"),
        "{}",
        text(&replay)
    );
    let conflict = call(
        &client,
        "refund-alipay-payment",
        json!({"outTradeNo":"ID_1","refundAmount":"4","outRequestNo":"ID_R1"}),
    )
    .await;
    assert!(is_error(&conflict));
    assert!(
        text(&conflict).contains("ID_R1 was already used") && text(&conflict).contains("3.00"),
        "{}",
        text(&conflict)
    );
    assert_eq!(
        gateway.count_method("alipay.trade.refund").await,
        sent,
        "replays and conflicts send nothing"
    );
    assert_eq!(gateway.trade("ID_1").await["refund_fee"], "3.00");
    client.cancel().await.unwrap();
}

fn refused_by(result: &rmcp::model::CallToolResult, rule: &str, limit: &str) {
    assert!(is_error(result), "{}", text(result));
    let t = text(result);
    assert!(
        t.contains(&format!("Refused by guardrail {rule}")) && t.contains(limit),
        "{t}"
    );
    assert_eq!(structured(result)["error"]["rule"], rule);
}

#[tokio::test]
async fn every_guardrail_at_just_under_and_just_over_its_limit() {
    let dir = TempDir::new("guard");
    let env = env_with(
        &dir,
        &[
            ("AP_MAX_PAYMENT_AMOUNT", "100"),
            ("AP_MAX_REFUND_AMOUNT", "20"),
            ("AP_DAILY_REFUND_LIMIT", "50"),
        ],
    );
    let client = connect(&env).await;
    let create =
        |no: &str, amount: &str| json!({"outTradeNo":no,"totalAmount":amount,"orderTitle":"t"});
    assert!(!is_error(
        &call(
            &client,
            "create-mobile-alipay-payment",
            create("G_UNDER", "99.99")
        )
        .await
    ));
    assert!(!is_error(
        &call(
            &client,
            "create-mobile-alipay-payment",
            create("G_AT", "100.00")
        )
        .await
    ));
    refused_by(
        &call(
            &client,
            "create-mobile-alipay-payment",
            create("G_OVER", "100.01"),
        )
        .await,
        "AP_MAX_PAYMENT_AMOUNT",
        "100.00",
    );
    refused_by(
        &call(
            &client,
            "create-qrcode-alipay-payment",
            create("G_OVER_QR", "100.01"),
        )
        .await,
        "AP_MAX_PAYMENT_AMOUNT",
        "100.00",
    );

    let gateway = paid_order(&client, "G_PAID", "100.00").await;
    let refund = |req: &str, amount: &str| json!({"outTradeNo":"G_PAID","refundAmount":amount,"outRequestNo":req});
    let before = gateway.count_method("alipay.trade.refund").await;
    refused_by(
        &call(&client, "refund-alipay-payment", refund("G_R0", "20.01")).await,
        "AP_MAX_REFUND_AMOUNT",
        "20.00",
    );
    assert_eq!(
        gateway.count_method("alipay.trade.refund").await,
        before,
        "a refused refund is never sent"
    );
    assert!(
        text(&call(&client, "refund-alipay-payment", refund("G_R1", "19.99")).await)
            .starts_with("退款结果: 退款成功")
    );
    assert!(
        text(&call(&client, "refund-alipay-payment", refund("G_R2", "20.00")).await)
            .starts_with("退款结果: 退款成功")
    );
    // Daily: 39.99 used; 10.01 brings it to exactly 50.00; one fen more is over.
    assert!(
        text(&call(&client, "refund-alipay-payment", refund("G_R3", "10.01")).await)
            .starts_with("退款结果: 退款成功")
    );
    refused_by(
        &call(&client, "refund-alipay-payment", refund("G_R4", "0.01")).await,
        "AP_DAILY_REFUND_LIMIT",
        "50.00",
    );
    assert_eq!(gateway.trade("G_PAID").await["refund_fee"], "50.00");

    // Refusals are in the audit log.
    let db = rusqlite::Connection::open(dir.path().join("data/local/ledger.db")).unwrap();
    let refused: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM audit WHERE decision LIKE 'refused%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(refused, 4, "two payments, two refunds refused");
    let daily: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM audit WHERE decision = 'refused: AP_DAILY_REFUND_LIMIT'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(daily, 1, "the audit row names the rule that refused");
    let allowed: i64 = db.query_row("SELECT COUNT(*) FROM audit WHERE tool = 'refund-alipay-payment' AND decision = 'allowed'", [], |r| r.get(0)).unwrap();
    assert_eq!(allowed, 3);
    client.cancel().await.unwrap();

    // Read-only: only the query and list tools exist.
    let dir = TempDir::new("readonly");
    let client = connect(&env_with(&dir, &[("AP_READ_ONLY", "true")])).await;
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "list-alipay-orders",
            "query-alipay-payment",
            "query-alipay-refund",
            "reconcile-alipay-bill",
            "wait-for-alipay-payment"
        ]
    );
    let refused = client
        .call_tool(
            rmcp::model::CallToolRequestParams::new("refund-alipay-payment").with_arguments(
                json!({"outTradeNo":"A","refundAmount":"1","outRequestNo":"R"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await;
    assert!(refused.is_err(), "a read-only server has no refund tool");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn refunds_wait_for_a_person_when_confirmation_is_on() {
    for (version, elicit, approved) in [
        (ProtocolVersion::V_2025_06_18, Elicit::Accept, true),
        (ProtocolVersion::V_2025_06_18, Elicit::Decline, false),
        (ProtocolVersion::V_2025_06_18, Elicit::Unsupported, false),
        (ProtocolVersion::V_2026_07_28, Elicit::Accept, true),
        (ProtocolVersion::V_2026_07_28, Elicit::Decline, false),
    ] {
        let dir = TempDir::new("confirm");
        let env = env_with(&dir, &[("AP_REFUND_CONFIRM", "true")]);
        let (client, _updates, questions) = connect_events(&env, version.clone(), elicit).await;
        let created = call(
            &client,
            "create-web-page-alipay-payment",
            json!({"outTradeNo":"C_1","totalAmount":"30","orderTitle":"t"}),
        )
        .await;
        let link = link_of(&created);
        let gateway = Gateway::from_link(&link);
        gateway.open(&link).await;
        gateway.pay("C_1").await;
        let result = call(
            &client,
            "refund-alipay-payment",
            json!({"outTradeNo":"C_1","refundAmount":"12.5","outRequestNo":"C_R1"}),
        )
        .await;
        let case = format!("{version:?} {elicit:?}");
        if approved {
            assert!(
                text(&result).starts_with("退款结果: 退款成功"),
                "{case}: {}",
                text(&result)
            );
            let asked = questions.lock().unwrap().join("\n");
            assert!(
                asked.contains("Paid by the buyer (Alipay, just now): 30.00 yuan")
                    && asked.contains("this server's refunds if more): 0.00 yuan")
                    && asked.contains("This refund: 12.50 yuan"),
                "{case}: {asked}"
            );
            assert_eq!(gateway.trade("C_1").await["refund_fee"], "12.50");
        } else if elicit == Elicit::Unsupported {
            // A client that cannot ask: the refund waits for a person on its approval page.
            assert!(!is_error(&result), "{case}: {}", text(&result));
            assert_eq!(structured(&result)["status"], "awaitingApproval", "{case}");
            assert!(
                structured(&result)["approvalUrl"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("http://127.0.0.1:")),
                "{case}: {}",
                structured(&result)
            );
            assert_eq!(
                gateway.count_method("alipay.trade.refund").await,
                0,
                "{case}: nothing sent"
            );
        } else {
            refused_by(&result, "AP_REFUND_CONFIRM", "");
            assert_eq!(
                gateway.count_method("alipay.trade.refund").await,
                0,
                "{case}: nothing sent"
            );
        }
        client.cancel().await.unwrap();
    }
}

/// Kill -9 the server while Alipay holds the refund's answer; after a restart the ledger agrees
/// with the gateway. (No notifications here: the refund's own notification would settle it
/// before the kill; this is about what the restart does.)
#[tokio::test]
async fn a_crash_between_a_refund_and_its_reply_loses_nothing() {
    let dir = TempDir::new("crash");
    let env = env_with(
        &dir,
        &[("AP_TIMEOUT_MS", "30000"), ("AP_NOTIFY_LISTEN", "off")],
    );
    // A server driven by hand, so it can be killed mid-call.
    let mut child = Command::new(BIN)
        .env_clear()
        .envs(&env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(serde_json::from_str(&line).unwrap_or(Value::Null));
        }
    });
    let mut send = |msg: Value| {
        writeln!(stdin, "{msg}").unwrap();
        stdin.flush().unwrap();
    };
    let answer = |id: i64| loop {
        let msg = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("an answer");
        if msg["id"] == id {
            break msg;
        }
    };
    send(
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}),
    );
    answer(1);
    send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
    send(
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"create-web-page-alipay-payment","arguments":{"outTradeNo":"K_1","totalAmount":"9","orderTitle":"t"}}}),
    );
    let link = answer(2)["result"]["structuredContent"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let gateway = Gateway::from_link(&link);
    gateway.open(&link).await;
    gateway.pay("K_1").await;
    // The gateway refunds, then holds its answer for a minute.
    gateway.fault(json!({"method":"alipay.trade.refund","kind":"timeout","delay_ms":60000,"times":1,"process":true})).await;
    send(
        json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"refund-alipay-payment","arguments":{"outTradeNo":"K_1","refundAmount":"4","outRequestNo":"K_R1"}}}),
    );
    let refunded = eventually(20, || async {
        gateway.trade("K_1").await["refund_fee"] == "4.00"
    })
    .await;
    assert!(refunded, "the gateway made the refund");
    child.kill().unwrap(); // SIGKILL: no chance to record the answer
    child.wait().unwrap();

    let db_path = dir.path().join("data/local/ledger.db");
    let state = |db: &std::path::Path| -> String {
        rusqlite::Connection::open(db)
            .unwrap()
            .query_row(
                "SELECT state FROM refunds WHERE out_request_no = 'K_R1'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(state(&db_path), "pending", "recorded before it was sent");
    let client = connect(&env).await;
    let settled = eventually(20, || async { state(&db_path) == "succeeded" }).await;
    assert!(
        settled,
        "after the restart the ledger agrees with the gateway"
    );
    let again = call(
        &client,
        "refund-alipay-payment",
        json!({"outTradeNo":"K_1","refundAmount":"4","outRequestNo":"K_R1"}),
    )
    .await;
    assert!(
        text(&again).starts_with("退款结果: 重复请求退款幂等成功"),
        "{}",
        text(&again)
    );
    assert_eq!(
        gateway.trade("K_1").await["refund_fee"],
        "4.00",
        "refunded once"
    );
    client.cancel().await.unwrap();
}
