//! Three server processes in HTTP mode on one PostgreSQL ledger and one gateway (local mode: the
//! first process runs the embedded gateway, the others use it through the shared data dir),
//! clients spread across them in both protocol eras. The oracle is the gateway's own record (and
//! the database), never a server's word. Needs a database: `AP_TEST_DATABASE_URL` (CI starts one,
//! `.ci/postgres.sh`); without it the test says it was skipped, and fails under `CI=true`.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::http::{HttpServer, connect_http};
use common::*;
use rmcp::model::ProtocolVersion;
use serde_json::json;

const TOKEN: &str = "fleet-http-token-0123456789abcdef";

/// The database, or `None` (skipped) outside CI.
fn database() -> Option<String> {
    match std::env::var("AP_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but AP_TEST_DATABASE_URL is not set: the PostgreSQL tests cannot run")
        }
        _ => {
            eprintln!("skipped: AP_TEST_DATABASE_URL is not set");
            None
        }
    }
}

/// A fresh database for this test, on the server `url` names (dropped at the end by the CI
/// cluster's teardown).
async fn fresh_database(url: &str, name: &str) -> String {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to AP_TEST_DATABASE_URL");
    tokio::spawn(connection);
    // One statement each: batched, they would run in one implicit transaction.
    for sql in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        client.batch_execute(&sql).await.unwrap();
    }
    if url.contains("dbname=") {
        url.split_whitespace()
            .map(|kv| {
                if kv.starts_with("dbname=") {
                    format!("dbname={name}")
                } else {
                    kv.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        format!("{url} dbname={name}")
    }
}

struct Fleet {
    /// One client per instance: a stateless 2026-07-28 client on the first and third, a legacy
    /// session on the second.
    clients: Vec<Client>,
    servers: Vec<HttpServer>,
    gateway: Gateway,
    /// The database, for checks the gateway cannot answer.
    db: String,
    /// The instances' environment (for one more instance).
    env: HashMap<String, String>,
    _dir: TempDir,
}

impl Fleet {
    /// Disconnect the clients and stop the servers.
    async fn stop(self) {
        for client in self.clients {
            client.cancel().await.unwrap();
        }
        for server in self.servers {
            server.kill9().await;
        }
    }
}

async fn fleet(tag: &str, extra: &[(&str, &str)]) -> Option<Fleet> {
    fleet_with(tag, extra, |_, _| {}).await
}

/// The protocol a fleet's client `i` speaks.
fn era(i: usize) -> ProtocolVersion {
    if i == 1 {
        ProtocolVersion::V_2025_06_18
    } else {
        ProtocolVersion::V_2026_07_28
    }
}

/// As [`fleet`], with `each(i, env)` adjusting instance `i`'s environment.
async fn fleet_with(
    tag: &str,
    extra: &[(&str, &str)],
    each: impl Fn(usize, &mut HashMap<String, String>),
) -> Option<Fleet> {
    let url = database()?;
    let db = fresh_database(&url, &format!("mi_{tag}")).await;
    let dir = TempDir::new(tag);
    let mut env = local_env(dir.path(), free_port());
    env.insert("AP_DATABASE_URL".into(), db.clone());
    env.insert("AP_NOTIFY_LISTEN".into(), "off".into());
    env.insert("AP_HTTP_TOKEN".into(), TOKEN.into());
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    let (mut servers, mut clients) = (Vec::new(), Vec::new());
    for i in 0..3 {
        let mut env = env.clone();
        each(i, &mut env);
        let server = HttpServer::spawn(&env).await;
        clients.push(connect_http(&server.url, TOKEN, era(i)).await);
        servers.push(server);
    }
    // Any create tells where the shared gateway is.
    let created = call(
        &clients[0],
        "create-web-page-alipay-payment",
        json!({"outTradeNo": "FLEET_PROBE", "totalAmount": "0.01", "orderTitle": "probe"}),
    )
    .await;
    let gateway = Gateway::from_link(&link_of(&created));
    Some(Fleet {
        clients,
        servers,
        gateway,
        db,
        env,
        _dir: dir,
    })
}

/// A plain client on the fleet's database.
async fn sql(db: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(db, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

async fn refund_requests(gateway: &Gateway, no: &str) -> usize {
    gateway
        .requests()
        .await
        .into_iter()
        .filter(|r| r["method"] == "alipay.trade.refund" && r.to_string().contains(no))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_one_ledger_exactly_once() {
    let Some(f) = fleet("exactly_once", &[]).await else {
        return;
    };
    let [a, b, c] = [&f.clients[0], &f.clients[1], &f.clients[2]];

    // The same order created on all three at once is one order: one link, one amount.
    let args = json!({"outTradeNo": "FLEET_1", "totalAmount": "10.00", "orderTitle": "fleet"});
    let made = tokio::join!(
        call(a, "create-web-page-alipay-payment", args.clone()),
        call(b, "create-web-page-alipay-payment", args.clone()),
        call(c, "create-web-page-alipay-payment", args.clone()),
    );
    let links: Vec<String> = [&made.0, &made.1, &made.2]
        .iter()
        .map(|r| {
            assert!(!is_error(r), "{}", text(r));
            structured(r)["url"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(
        links.iter().all(|l| l == &links[0]),
        "one order, one link: {links:?}"
    );
    let fresh = [&made.0, &made.1, &made.2]
        .iter()
        .filter(|r| structured(r)["existing"] == false)
        .count();
    assert_eq!(fresh, 1, "exactly one instance made it");
    // A conflicting order under that number is refused on any instance.
    let other = call(
        c,
        "create-web-page-alipay-payment",
        json!({"outTradeNo": "FLEET_1", "totalAmount": "11.00", "orderTitle": "fleet"}),
    )
    .await;
    assert!(is_error(&other), "{}", text(&other));

    f.gateway.open(&links[0]).await;
    f.gateway.pay("FLEET_1").await;

    // The same refund sent to all three at once is one refund at the gateway.
    let refund =
        json!({"outTradeNo": "FLEET_1", "refundAmount": "4.00", "outRequestNo": "FLEET_1_R1"});
    let sent = tokio::join!(
        call(a, "refund-alipay-payment", refund.clone()),
        call(b, "refund-alipay-payment", refund.clone()),
        call(c, "refund-alipay-payment", refund.clone()),
    );
    for r in [&sent.0, &sent.1, &sent.2] {
        assert!(!is_error(r), "{}", text(r));
    }
    assert_eq!(refund_requests(&f.gateway, "FLEET_1_R1").await, 1);
    assert_eq!(f.gateway.trade("FLEET_1").await["refund_fee"], "4.00");

    // Two different refunds that together exceed what remains (6.00), sent to two instances at
    // once: exactly one is made.
    let (x, y) = tokio::join!(
        call(
            b,
            "refund-alipay-payment",
            json!({"outTradeNo": "FLEET_1", "refundAmount": "4.00", "outRequestNo": "FLEET_1_R2"}),
        ),
        call(
            c,
            "refund-alipay-payment",
            json!({"outTradeNo": "FLEET_1", "refundAmount": "4.00", "outRequestNo": "FLEET_1_R3"}),
        ),
    );
    let made: Vec<bool> = [&x, &y]
        .iter()
        .map(|r| text(r).starts_with("退款结果: 退款成功"))
        .collect();
    assert_eq!(
        made.iter().filter(|m| **m).count(),
        1,
        "{}\n{}",
        text(&x),
        text(&y)
    );
    assert_eq!(f.gateway.trade("FLEET_1").await["refund_fee"], "8.00");

    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_on_one_instance_hears_a_payment_another_recorded() {
    let Some(f) = fleet("wait", &[]).await else {
        return;
    };
    let [a, b] = [&f.clients[0], &f.clients[1]];
    let created = call(
        b,
        "create-web-page-alipay-payment",
        json!({"outTradeNo": "FLEET_W", "totalAmount": "3.00", "orderTitle": "wait"}),
    )
    .await;
    f.gateway.open(&link_of(&created)).await;
    let started = Instant::now();
    let wait = call(
        a,
        "wait-for-alipay-payment",
        json!({"outTradeNo": "FLEET_W", "timeoutSeconds": 30}),
    );
    let pay_and_record = async {
        // A's poller asks when the wait starts, then 3 s later: paying just after its first ask
        // leaves ~2.7 s before it could see the payment itself.
        tokio::time::sleep(Duration::from_millis(300)).await;
        f.gateway.pay("FLEET_W").await;
        let paid_at = Instant::now();
        // B learns it (as its notify receiver would) and records it in the shared ledger.
        let q = call(b, "query-alipay-payment", json!({"outTradeNo": "FLEET_W"})).await;
        assert!(text(&q).contains("TRADE_SUCCESS"), "{}", text(&q));
        paid_at
    };
    let (waited, paid_at) = tokio::join!(wait, pay_and_record);
    assert_eq!(structured(&waited)["state"], "paid", "{}", text(&waited));
    let heard = started.elapsed().saturating_sub(paid_at - started);
    assert!(
        heard < Duration::from_millis(1500),
        "the wait returned {heard:?} after the payment: it did not hear the other instance"
    );
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_refund_budget_holds_across_instances() {
    let Some(f) = fleet("budget", &[("AP_DAILY_REFUND_LIMIT", "5.00")]).await else {
        return;
    };
    let mut numbers = Vec::new();
    for (i, client) in f.clients.iter().enumerate() {
        let no = format!("FLEET_B{i}");
        let created = call(
            client,
            "create-web-page-alipay-payment",
            json!({"outTradeNo": no, "totalAmount": "3.00", "orderTitle": "budget"}),
        )
        .await;
        f.gateway.open(&link_of(&created)).await;
        f.gateway.pay(&no).await;
        numbers.push(no);
    }
    // Three refunds of 2.00 on three instances at once against a budget of 5.00: two are made.
    let refund = |i: usize| {
        call(
            &f.clients[i],
            "refund-alipay-payment",
            json!({"outTradeNo": numbers[i], "refundAmount": "2.00", "outRequestNo": format!("{}_R", numbers[i])}),
        )
    };
    let (r0, r1, r2) = tokio::join!(refund(0), refund(1), refund(2));
    let results = [r0, r1, r2];
    let ok = results
        .iter()
        .filter(|r| text(r).starts_with("退款结果: 退款成功"))
        .count();
    assert_eq!(ok, 2, "{:?}", results.iter().map(text).collect::<Vec<_>>());
    let mut refunded_fen = 0;
    for no in &numbers {
        let fee = f.gateway.trade(no).await["refund_fee"].clone();
        let fee = fee.as_str().unwrap_or("0.00");
        let (yuan, fen) = fee.split_once('.').unwrap_or((fee, "0"));
        refunded_fen += yuan.parse::<i64>().unwrap() * 100 + fen.parse::<i64>().unwrap();
    }
    assert_eq!(refunded_fen, 400, "the gateway refunded two of the three");
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_delivered_to_all_three_is_counted_once() {
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    // Between the gateway and the fleet: each notification goes to all three receivers at once.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}/fan-out", proxy.local_addr().unwrap());
    let answers = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let fan_out = {
        let (ports, answers) = (ports.clone(), answers.clone());
        move |headers: HeaderMap, body: Bytes| {
            let (ports, answers) = (ports.clone(), answers.clone());
            async move {
                let http = reqwest::Client::new();
                let post = |port: u16| {
                    http.post(format!("http://127.0.0.1:{port}/alipay/notify"))
                        .header("content-type", headers["content-type"].clone())
                        .body(body.to_vec())
                        .send()
                };
                let (x, y, z) = tokio::join!(post(ports[0]), post(ports[1]), post(ports[2]));
                let mut all = Vec::new();
                for r in [x, y, z] {
                    all.push(r.unwrap().text().await.unwrap());
                }
                answers.lock().unwrap().extend(all.clone());
                all[0].clone()
            }
        }
    };
    let app = axum::Router::new().route("/fan-out", axum::routing::post(fan_out));
    tokio::spawn(async move { axum::serve(proxy, app).await.unwrap() });
    let Some(f) = fleet_with(
        "notify",
        &[("AP_NOTIFY_URL", proxy_url.as_str())],
        |i, env| {
            env.insert("AP_NOTIFY_LISTEN".into(), format!("127.0.0.1:{}", ports[i]));
        },
    )
    .await
    else {
        return;
    };
    let created = call(
        &f.clients[1],
        "create-web-page-alipay-payment",
        json!({"outTradeNo": "FLEET_N", "totalAmount": "6.00", "orderTitle": "notify"}),
    )
    .await;
    f.gateway.open(&link_of(&created)).await;
    f.gateway.pay("FLEET_N").await;
    assert!(
        eventually(10, || async { answers.lock().unwrap().len() >= 3 }).await,
        "the fan-out delivered nothing"
    );
    // Every receiver answered success (the first took it, the others saw a duplicate)...
    assert_eq!(*answers.lock().unwrap(), ["success", "success", "success"]);
    // ...and the shared ledger holds it once, with one status change.
    let db = sql(&f.db).await;
    let count = |sql: &'static str| {
        let db = &db;
        async move { db.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(
        count("SELECT count(*) FROM notifications WHERE out_trade_no = 'FLEET_N' AND verdict = 'accepted'").await,
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM status_events WHERE out_trade_no = 'FLEET_N' AND trade_status = 'TRADE_SUCCESS'").await,
        1
    );
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_cut_off_by_kill_9_is_settled_by_a_live_instance_exactly_once() {
    // The live instances look for a dead one's refunds every 2 s (a minute by default).
    let Some(f) = fleet("kill", &[("AP_RECONCILE_INTERVAL_SECONDS", "2")]).await else {
        return;
    };
    let created = call(
        &f.clients[0],
        "create-web-page-alipay-payment",
        json!({"outTradeNo": "FLEET_K", "totalAmount": "9.00", "orderTitle": "kill"}),
    )
    .await;
    f.gateway.open(&link_of(&created)).await;
    f.gateway.pay("FLEET_K").await;
    // A fourth instance sends the refund; Alipay makes it but its answer is slow; the instance is
    // killed while it waits.
    f.gateway
        .fault(json!({"method": "alipay.trade.refund", "kind": "timeout", "delay_ms": 4000, "process": true, "times": 1}))
        .await;
    let doomed = HttpServer::spawn(&f.env).await;
    let client = connect_http(&doomed.url, TOKEN, ProtocolVersion::V_2026_07_28).await;
    let in_flight = tokio::spawn(async move {
        let args =
            json!({"outTradeNo": "FLEET_K", "refundAmount": "2.00", "outRequestNo": "FLEET_K_R"});
        let serde_json::Value::Object(args) = args else {
            unreachable!()
        };
        client
            .call_tool(
                rmcp::model::CallToolRequestParams::new("refund-alipay-payment")
                    .with_arguments(args),
            )
            .await
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    doomed.kill9().await;
    assert!(
        in_flight.await.unwrap().is_err(),
        "the killed instance never answered"
    );
    assert_eq!(
        refund_requests(&f.gateway, "FLEET_K_R").await,
        1,
        "it reached Alipay"
    );
    assert_eq!(f.gateway.trade("FLEET_K").await["refund_fee"], "2.00");
    // With no call from anyone, a live instance finds the dead one's refund and settles it from
    // Alipay's answer, without sending it again.
    let db = sql(&f.db).await;
    let state = || async {
        db.query_one(
            "SELECT state FROM refunds WHERE out_request_no = 'FLEET_K_R'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, String>(0)
    };
    assert!(
        eventually(30, || async { state().await == "succeeded" }).await,
        "still {} after 30 s",
        state().await
    );
    assert_eq!(
        refund_requests(&f.gateway, "FLEET_K_R").await,
        1,
        "not sent again"
    );
    // The same call on a live instance answers from the ledger as a replay: refunded once.
    let again = call(
        &f.clients[1],
        "refund-alipay-payment",
        json!({"outTradeNo": "FLEET_K", "refundAmount": "2.00", "outRequestNo": "FLEET_K_R"}),
    )
    .await;
    assert!(
        text(&again).starts_with("退款结果: 重复请求退款幂等成功"),
        "{}",
        text(&again)
    );
    assert_eq!(refund_requests(&f.gateway, "FLEET_K_R").await, 1);
    assert_eq!(
        f.gateway.trade("FLEET_K").await["refund_fee"],
        "2.00",
        "refunded once"
    );
    f.stop().await;
}
