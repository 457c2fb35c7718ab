//! Gateway faults, end to end (the real binary, local mode, the embedded gateway's fault API): for
//! every tool that calls the gateway and every way an answer can go wrong — HTTP 500/502, a timeout,
//! a refused connection, a bad, missing or foreign signature, JSON that is not JSON, a signed
//! `error_response`, a truncated body, a 10 MB body, `ACQ.SYSTEM_ERROR`, an answer about another
//! order — the tool never reports success, says what happened, and answers within the timeout
//! plus a margin. A refund whose outcome is unknown says so and asks for a retry with the same
//! `outRequestNo`; the server's own recovery (refund query, then one resend with the same number)
//! shows in the gateway's request log, and the trade is refunded exactly once however the errors
//! go.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// The gateway timeout the servers here run with.
const TIMEOUT_MS: u64 = 2000;
/// How long the emulator holds a `timeout` answer: far beyond the client's patience.
const HOLD_MS: u64 = 8000;
/// A correctness bound, not a benchmark: a call must come back within its time budget plus this.
const MARGIN: Duration = Duration::from_secs(4);

/// A fault kind, what the error must say about it, and the structured error kind.
struct Kind {
    name: &'static str,
    says: &'static str,
    error_kind: &'static str,
}

const KINDS: [Kind; 12] = [
    Kind {
        name: "http_500",
        says: "HTTP 500",
        error_kind: "http_status",
    },
    Kind {
        name: "http_502",
        says: "HTTP 502",
        error_kind: "http_status",
    },
    Kind {
        name: "timeout",
        says: "did not answer within 2000 ms",
        error_kind: "timeout",
    },
    Kind {
        name: "bad_sign",
        says: "signature does not verify",
        error_kind: "response_signature",
    },
    Kind {
        name: "wrong_key",
        says: "signature does not verify",
        error_kind: "response_signature",
    },
    Kind {
        name: "no_sign",
        says: "signature is missing",
        error_kind: "response_signature",
    },
    Kind {
        name: "malformed_json",
        says: "malformed gateway response",
        error_kind: "malformed_response",
    },
    Kind {
        name: "error_response",
        says: "isp.unknow-error",
        error_kind: "alipay",
    },
    Kind {
        name: "truncated",
        says: "transport error",
        error_kind: "transport",
    },
    Kind {
        name: "huge_body",
        says: "larger than 1048576 bytes",
        error_kind: "response_too_large",
    },
    Kind {
        name: "business",
        says: "ACQ.SYSTEM_ERROR",
        error_kind: "alipay",
    },
    Kind {
        name: "other_order",
        says: "answered about order",
        error_kind: "malformed_response",
    },
];

/// Kinds whose request the gateway carries out before spoiling the answer (the fault API's
/// `process` default).
fn processes(kind: &str) -> bool {
    !matches!(
        kind,
        "http_500" | "http_502" | "error_response" | "business"
    )
}

fn fault(method: &str, kind: &str, times: u32) -> Value {
    let mut f = json!({"method": method, "kind": kind, "times": times});
    if kind == "timeout" {
        f["delay_ms"] = json!(HOLD_MS);
    }
    f
}

fn env_for(dir: &TempDir) -> std::collections::HashMap<String, String> {
    let mut env = local_env(dir.path(), free_port());
    env.insert("AP_TIMEOUT_MS".into(), TIMEOUT_MS.to_string());
    // No notifications: what the ledger learns here comes from the tools' own answers only.
    env.insert("AP_NOTIFY_LISTEN".into(), "off".into());
    env
}

/// A value of `biz_content` in a logged request's sign content.
fn biz_field(request: &Value, name: &str) -> Option<String> {
    let content = request["sign_content"].as_str()?;
    let start = content.find(&format!("\"{name}\":\""))? + name.len() + 4;
    let end = content[start..].find('"')? + start;
    Some(content[start..end].to_string())
}

/// Logged requests of `method` after position `from`.
fn of_method(requests: &[Value], from: usize, method: &str) -> Vec<Value> {
    requests[from..]
        .iter()
        .filter(|r| r["method"] == method)
        .cloned()
        .collect()
}

/// What the error must say for `kind`. Writing a 10 MB answer can take a debug-built emulator on a
/// busy machine longer than the timeout; then "did not answer in time" is the true account.
fn says(kind: &Kind, t: &str) -> bool {
    t.contains(kind.says)
        || (kind.name == "huge_body"
            && t.contains(&format!("did not answer within {TIMEOUT_MS} ms")))
}

/// The failure contract every faulted call must meet.
fn assert_failed(result: &rmcp::model::CallToolResult, kind: &Kind, label: &str) {
    let t = text(result);
    assert!(is_error(result), "{label}: reported as success: {t}");
    assert!(
        !t.contains("成功"),
        "{label}: success wording in an error: {t}"
    );
    assert!(
        !t.contains("sign="),
        "{label}: the request URL (and its sign) leaked: {t}"
    );
    assert!(
        says(kind, &t),
        "{label}: does not say what happened ({}): {t}",
        kind.says
    );
    let error = &structured(result)["error"];
    let timed_out = kind.name == "huge_body" && error["kind"] == "timeout";
    if !timed_out {
        assert_eq!(error["kind"], kind.error_kind, "{label}: {error}");
    }
}

async fn timed(
    client: &Client,
    tool: &str,
    args: Value,
) -> (rmcp::model::CallToolResult, Duration) {
    let started = Instant::now();
    let result = call(client, tool, args).await;
    (result, started.elapsed())
}

/// The emulator makes the `wrong_key` fault's key on first use, and an RSA key generation can
/// outlast a short timeout. Use that fault until it answers in time, so the cases below measure
/// the server, not the key generation.
async fn warm_up_wrong_key(client: &Client, gateway: &Gateway, out_trade_no: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        gateway
            .fault(fault("alipay.trade.query", "wrong_key", 1))
            .await;
        let r = call(
            client,
            "query-alipay-payment",
            json!({"outTradeNo":out_trade_no}),
        )
        .await;
        if structured(&r)["error"]["kind"] == "response_signature" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "wrong_key never answered: {}",
            text(&r)
        );
    }
}

/// Query, refund query, close, QR-code creation, and the refund's trade query under every fault.
#[tokio::test]
async fn no_fault_is_ever_reported_as_success() {
    let dir = TempDir::new("faults-tools");
    let client = connect(&env_for(&dir)).await;
    let gateway = paid_order(&client, "F_PAID", "20.00").await;
    let refund = call(
        &client,
        "refund-alipay-payment",
        json!({"outTradeNo":"F_PAID","refundAmount":"1","outRequestNo":"F_PAID_R1"}),
    )
    .await;
    assert!(
        text(&refund).starts_with("退款结果: 退款成功"),
        "{}",
        text(&refund)
    );

    warm_up_wrong_key(&client, &gateway, "F_PAID").await;
    let mut checked = 0;
    for kind in &KINDS {
        // Each tool, each kind: the fault is used up by the method under test.
        let close_no = format!("F_CLOSE_{}", kind.name.to_uppercase());
        let created = call(
            &client,
            "create-mobile-alipay-payment",
            json!({"outTradeNo":close_no,"totalAmount":"3","orderTitle":"to close"}),
        )
        .await;
        gateway.open(&link_of(&created)).await;
        let qr_no = format!("F_QR_{}", kind.name.to_uppercase());
        let refund_no = format!("F_PAID_{}", kind.name.to_uppercase());
        let cases: [(&str, &str, Value); 5] = [
            (
                "query-alipay-payment",
                "alipay.trade.query",
                json!({"outTradeNo":"F_PAID"}),
            ),
            (
                "query-alipay-refund",
                "alipay.trade.fastpay.refund.query",
                json!({"outTradeNo":"F_PAID","outRequestNo":"F_PAID_R1"}),
            ),
            (
                "close-alipay-payment",
                "alipay.trade.close",
                json!({"outTradeNo":close_no}),
            ),
            (
                "create-qrcode-alipay-payment",
                "alipay.trade.precreate",
                json!({"outTradeNo":qr_no,"totalAmount":"4.00","orderTitle":"QR 扫码"}),
            ),
            // A refund checks the refundable amount with a signed trade query first.
            (
                "refund-alipay-payment",
                "alipay.trade.query",
                json!({"outTradeNo":"F_PAID","refundAmount":"1","outRequestNo":refund_no}),
            ),
        ];
        for (tool, method, args) in cases {
            let label = format!("{tool} / {}", kind.name);
            let from = gateway.request_count().await;
            gateway.fault(fault(method, kind.name, 1)).await;
            let (result, elapsed) = timed(&client, tool, args.clone()).await;
            assert_failed(&result, kind, &label);
            assert!(
                elapsed < Duration::from_millis(TIMEOUT_MS) + MARGIN,
                "{label}: answered after {elapsed:?}"
            );
            let requests = gateway.requests().await;
            let hits = of_method(&requests, from, method);
            assert_eq!(
                hits.len(),
                1,
                "{label}: one request, no blind retry: {hits:?}"
            );
            assert_eq!(
                hits[0]["fault"], kind.name,
                "{label}: the fault hit the method under test"
            );
            assert!(gateway.faults().await.is_empty(), "{label}: fault used up");
            if tool == "refund-alipay-payment" {
                assert!(
                    of_method(&requests, from, "alipay.trade.refund").is_empty(),
                    "{label}: no refund is sent when the refundable amount is unknown"
                );
                assert!(text(&result).contains("Nothing was refunded"), "{label}");
            }
            checked += 1;

            // Nothing false was recorded, and the next call works.
            match tool {
                "create-qrcode-alipay-payment" => {
                    let db = rusqlite::Connection::open(dir.path().join("data/local/ledger.db"))
                        .unwrap();
                    let rows: i64 = db
                        .query_row(
                            "SELECT COUNT(*) FROM orders WHERE out_trade_no = ?1",
                            [&qr_no],
                            |r| r.get(0),
                        )
                        .unwrap();
                    assert_eq!(rows, 0, "{label}: no order recorded, no QR code given out");
                    let again = call(&client, tool, args).await;
                    assert!(
                        !is_error(&again),
                        "{label}: retry with the same number: {}",
                        text(&again)
                    );
                }
                "close-alipay-payment" => {
                    let db = rusqlite::Connection::open(dir.path().join("data/local/ledger.db"))
                        .unwrap();
                    let status: Option<String> = db
                        .query_row(
                            "SELECT trade_status FROM orders WHERE out_trade_no = ?1",
                            [&close_no],
                            |r| r.get(0),
                        )
                        .unwrap();
                    assert_ne!(
                        status.as_deref(),
                        Some("TRADE_CLOSED"),
                        "{label}: a failed close is not recorded as closed"
                    );
                }
                _ => {
                    let again = call(&client, tool, args).await;
                    assert!(
                        !is_error(&again),
                        "{label}: the next call: {}",
                        text(&again)
                    );
                }
            }
        }
    }
    assert_eq!(checked, 60);
    assert_eq!(
        gateway.trade("F_PAID").await["refund_fee"],
        "13.00",
        "1 + one retried refund per kind"
    );
    client.cancel().await.unwrap();
}

/// A refund whose answer is lost once: the server finds out and, if the refund did not happen,
/// resends it with the same number. A refund whose answers keep failing: outcome unknown, retry
/// with the same `outRequestNo`. Either way the trade is refunded exactly once.
#[tokio::test]
async fn refunds_under_faults_are_recovered_with_the_same_number_and_made_once() {
    let dir = TempDir::new("faults-refund");
    let client = connect(&env_for(&dir)).await;
    let mut gateway: Option<Gateway> = None;
    for kind in &KINDS {
        let no = format!("FR_{}", kind.name.to_uppercase());
        let gw = paid_order(&client, &no, "10.00").await;
        let gw = match &gateway {
            Some(g) => g,
            None => {
                warm_up_wrong_key(&client, &gw, &no).await;
                gateway.insert(gw)
            }
        };

        // Once: recovered within the call.
        let label = format!("refund / {} once", kind.name);
        let req_a = format!("{no}_A");
        let from = gw.request_count().await;
        gw.fault(fault("alipay.trade.refund", kind.name, 1)).await;
        let (result, elapsed) = timed(
            &client,
            "refund-alipay-payment",
            json!({"outTradeNo":no,"refundAmount":"1.00","outRequestNo":req_a}),
        )
        .await;
        assert!(
            elapsed < Duration::from_millis(TIMEOUT_MS) + Duration::from_secs(1) + MARGIN,
            "{label}: answered after {elapsed:?}"
        );
        let requests = gw.requests().await;
        let refunds = of_method(&requests, from, "alipay.trade.refund");
        let queries = of_method(&requests, from, "alipay.trade.fastpay.refund.query");
        assert_eq!(refunds[0]["fault"], kind.name, "{label}");
        assert_eq!(
            queries.len(),
            1,
            "{label}: the server looked the refund up: {requests:?}"
        );
        let expected_sends = if processes(kind.name) { 1 } else { 2 };
        assert_eq!(
            refunds.len(),
            expected_sends,
            "{label}: {} the refund was made, so {} resend",
            if processes(kind.name) {
                "the query showed"
            } else {
                "the query did not show"
            },
            if processes(kind.name) { "no" } else { "one" },
        );
        for r in &refunds {
            assert_eq!(
                biz_field(r, "out_request_no").as_deref(),
                Some(req_a.as_str()),
                "{label}: same number: {r}"
            );
        }
        // Success only because a verified answer (the refund query, or the resend) said so.
        assert!(
            text(&result).starts_with("退款结果: 退款成功"),
            "{label}: {}",
            text(&result)
        );
        assert_eq!(structured(&result)["confirmed"], true, "{label}");
        assert_eq!(
            gw.trade(&no).await["refund_fee"],
            "1.00",
            "{label}: refunded once"
        );

        // Every answer lost: the refund and its lookup keep failing.
        let label = format!("refund / {} always", kind.name);
        let req_b = format!("{no}_B");
        let from = gw.request_count().await;
        gw.fault(fault("alipay.trade.refund", kind.name, 3)).await;
        gw.fault(fault("alipay.trade.fastpay.refund.query", kind.name, 3))
            .await;
        let (result, elapsed) = timed(
            &client,
            "refund-alipay-payment",
            json!({"outTradeNo":no,"refundAmount":"2.00","outRequestNo":req_b}),
        )
        .await;
        assert!(
            elapsed < Duration::from_millis(TIMEOUT_MS) + Duration::from_secs(1) + MARGIN,
            "{label}: answered after {elapsed:?}"
        );
        let t = text(&result);
        assert!(is_error(&result), "{label}: {t}");
        assert!(!t.contains("成功"), "{label}: {t}");
        assert!(
            !t.contains("sign="),
            "{label}: the request URL (and its sign) leaked: {t}"
        );
        assert!(
            t.starts_with("退款结果未知: "),
            "{label}: says the outcome is unknown: {t}"
        );
        assert!(
            says(kind, &t),
            "{label}: says what happened ({}): {t}",
            kind.says
        );
        assert!(
            t.contains(&format!("SAME outRequestNo {req_b}"))
                && t.contains("Never retry it with a new outRequestNo"),
            "{label}: asks for a retry with the same number: {t}"
        );
        assert_eq!(structured(&result)["outcomeUnknown"], true, "{label}");
        assert_eq!(structured(&result)["outRequestNo"], json!(req_b), "{label}");
        let requests = gw.requests().await;
        let refunds = of_method(&requests, from, "alipay.trade.refund");
        assert!(
            !refunds.is_empty() && refunds.len() <= 2,
            "{label}: first send and at most one resend: {refunds:?}"
        );
        for r in &refunds {
            assert_eq!(
                biz_field(r, "out_request_no").as_deref(),
                Some(req_b.as_str()),
                "{label}: same number: {r}"
            );
        }
        let expected_fee = if processes(kind.name) { "3.00" } else { "1.00" };
        assert_eq!(
            gw.trade(&no).await["refund_fee"],
            expected_fee,
            "{label}: at most once"
        );
        let state: String = rusqlite::Connection::open(dir.path().join("data/local/ledger.db"))
            .unwrap()
            .query_row(
                "SELECT state FROM refunds WHERE out_request_no = ?1",
                [&req_b],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(state, "unknown", "{label}: the ledger holds it as unknown");

        // The caller does as told: the same outRequestNo again, the gateway healthy.
        gw.clear_faults().await;
        let again = call(
            &client,
            "refund-alipay-payment",
            json!({"outTradeNo":no,"refundAmount":"2.00","outRequestNo":req_b}),
        )
        .await;
        assert!(
            text(&again).starts_with("退款结果: 退款成功")
                || text(&again).starts_with("退款结果: 重复请求退款幂等成功"),
            "{label}: retry: {}",
            text(&again)
        );
        let trade = gw.trade(&no).await;
        assert_eq!(
            trade["refund_fee"], "3.00",
            "{label}: 1.00 + 2.00, each exactly once: {trade}"
        );
        let numbers: Vec<String> = of_method(&gw.requests().await, 0, "alipay.trade.refund")
            .iter()
            .filter(|r| r["out_trade_no"] == json!(no))
            .filter_map(|r| biz_field(r, "out_request_no"))
            .collect();
        assert!(
            numbers.iter().all(|n| *n == req_a || *n == req_b),
            "{label}: never a new refund number: {numbers:?}"
        );
    }
    client.cancel().await.unwrap();
}

/// No gateway at all: a prod-mode server (the vector keys) pointed at a closed port.
#[tokio::test]
async fn a_refused_connection_is_said_as_such() {
    let dir = TempDir::new("faults-refused");
    let closed = free_port();
    let keys = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/alipay-vectors/keys/"
    );
    let mut env = local_env(dir.path(), free_port());
    env.insert("AP_APP_ID".into(), "2021000000000001".into());
    env.insert("AP_APP_KEY".into(), format!("{keys}app-private-pkcs8.pem"));
    env.insert("AP_PUB_KEY".into(), format!("{keys}alipay-public-spki.pem"));
    env.insert(
        "AP_GATEWAY_URL".into(),
        format!("http://127.0.0.1:{closed}/gateway.do"),
    );
    env.insert("AP_TIMEOUT_MS".into(), TIMEOUT_MS.to_string());
    env.insert("AP_NOTIFY_LISTEN".into(), "off".into());
    let client = connect(&env).await;
    let cases = [
        ("query-alipay-payment", json!({"outTradeNo":"CR_1"})),
        (
            "query-alipay-refund",
            json!({"outTradeNo":"CR_1","outRequestNo":"CR_R1"}),
        ),
        ("close-alipay-payment", json!({"outTradeNo":"CR_1"})),
        (
            "create-qrcode-alipay-payment",
            json!({"outTradeNo":"CR_2","totalAmount":"1","orderTitle":"t"}),
        ),
        (
            "refund-alipay-payment",
            json!({"outTradeNo":"CR_1","refundAmount":"1","outRequestNo":"CR_R2"}),
        ),
    ];
    for (tool, args) in cases {
        let (result, elapsed) = timed(&client, tool, args).await;
        let t = text(&result);
        assert!(is_error(&result), "{tool}: {t}");
        assert!(!t.contains("成功"), "{tool}: {t}");
        assert!(
            !t.contains("sign="),
            "{tool}: the request URL (and its sign) leaked: {t}"
        );
        assert!(t.contains("cannot connect to the gateway"), "{tool}: {t}");
        assert!(t.contains("Nothing reached Alipay"), "{tool}: {t}");
        assert_eq!(structured(&result)["error"]["kind"], "connect", "{tool}");
        assert!(
            elapsed < Duration::from_millis(TIMEOUT_MS) + MARGIN,
            "{tool}: {elapsed:?}"
        );
    }
    // The refund was refused before anything was recorded or sent.
    let refunds: i64 = rusqlite::Connection::open(dir.path().join("data/ledger.db"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM refunds", [], |r| r.get(0))
        .unwrap();
    assert_eq!(refunds, 0);
    client.cancel().await.unwrap();
}

/// A TCP relay to the gateway that the test can switch off: then the port refuses connections.
struct Relay {
    accept: tokio::task::JoinHandle<()>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(port: u16, upstream: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let tracked = conns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tracked.lock().unwrap().push(task);
            }
        });
        Self { accept, conns }
    }

    /// Stop listening and cut every open connection.
    async fn stop(self) {
        self.accept.abort();
        let _ = self.accept.await;
        let conns: Vec<_> = self.conns.lock().unwrap().drain(..).collect();
        for c in conns {
            c.abort();
            let _ = c.await;
        }
    }
}

/// Approves every refund; the first time, switches the gateway off before answering.
#[derive(Clone)]
struct StopGatewayOnApproval {
    relay: std::sync::Arc<tokio::sync::Mutex<Option<Relay>>>,
}

impl rmcp::ClientHandler for StopGatewayOnApproval {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        rmcp::model::ClientConfig::new(
            rmcp::model::ClientCapabilities::builder()
                .enable_elicitation()
                .build(),
            rmcp::model::Implementation::new("fault-client", "0.1.0"),
        )
        .with_protocol_version(rmcp::model::ProtocolVersion::V_2025_06_18)
    }

    async fn create_elicitation(
        &self,
        _request: rmcp::model::ElicitRequestParams,
        _ctx: rmcp::service::RequestContext<rmcp::service::RoleClient>,
    ) -> Result<rmcp::model::ElicitResult, rmcp::ErrorData> {
        if let Some(relay) = self.relay.lock().await.take() {
            relay.stop().await;
        }
        Ok(
            rmcp::model::ElicitResult::new(rmcp::model::ElicitationAction::Accept)
                .with_content(json!({ "confirm": true })),
        )
    }
}

/// The gateway goes away while a person approves a refund: the server checks the figures again
/// after approval, meets the dead gateway, says what happened and that nothing was refunded (or,
/// had the refund itself been sent, that its outcome is unknown), and the retry with the same
/// number, once the gateway is back, refunds once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_whose_connection_is_refused_moves_no_money() {
    use alipay_emulator::{AppConfig, Emulator, EmulatorConfig};
    use alipay_openapi::PrivateKey;
    use rmcp::ServiceExt as _;

    let dir = TempDir::new("faults-refused-refund");
    let app_id = "2021000000000088";
    let app_key = PrivateKey::generate().unwrap();
    let platform = PrivateKey::generate().unwrap();
    let emulator = Emulator::start(
        EmulatorConfig::new(platform.clone())
            .with_app(AppConfig::new(app_id, app_key.public_key().clone())),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    .unwrap();
    let relay_port = free_port();
    let relay = Relay::start(relay_port, emulator.addr()).await;
    let shared_relay = std::sync::Arc::new(tokio::sync::Mutex::new(Some(relay)));

    let mut env = local_env(dir.path(), free_port());
    env.insert("AP_APP_ID".into(), app_id.into());
    env.insert("AP_APP_KEY".into(), app_key.to_pkcs8_base64());
    env.insert("AP_PUB_KEY".into(), platform.public_key().to_spki_base64());
    env.insert(
        "AP_GATEWAY_URL".into(),
        format!("http://127.0.0.1:{relay_port}/gateway.do"),
    );
    env.insert("AP_REFUND_CONFIRM".into(), "true".into());
    env.insert("AP_NOTIFY_LISTEN".into(), "off".into());
    env.insert("AP_TIMEOUT_MS".into(), TIMEOUT_MS.to_string());
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.env_clear().envs(&env);
    let (transport, _) = rmcp::transport::TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let client = StopGatewayOnApproval {
        relay: shared_relay.clone(),
    }
    .serve(transport)
    .await
    .unwrap();

    let created = call(
        &client,
        "create-web-page-alipay-payment",
        json!({"outTradeNo":"RR_1","totalAmount":"9.00","orderTitle":"t"}),
    )
    .await;
    let link = link_of(&created);
    let gateway = Gateway::new(&emulator.base_url(), app_id);
    gateway
        .open(&link.replace(
            &format!("127.0.0.1:{relay_port}"),
            &emulator.addr().to_string(),
        ))
        .await;
    gateway.pay("RR_1").await;

    let args = json!({"outTradeNo":"RR_1","refundAmount":"4.00","outRequestNo":"RR_R1"});
    let started = Instant::now();
    let result = call(&client, "refund-alipay-payment", args.clone()).await;
    let elapsed = started.elapsed();
    assert!(
        shared_relay.lock().await.is_none(),
        "the gateway was switched off during approval"
    );
    let t = text(&result);
    assert!(is_error(&result), "{t}");
    assert!(!t.contains("成功") && !t.contains("sign="), "{t}");
    if t.contains("Nothing was refunded") {
        // The re-check after approval (the figures shown may have changed) met the dead gateway.
        assert_eq!(structured(&result)["confirmed"], false, "{t}");
        assert!(t.contains("call again"), "{t}");
    } else if structured(&result)["outcomeUnknown"] == true {
        // The first send met the dying connection: then it must ask for the same number.
        assert!(t.contains("SAME outRequestNo RR_R1"), "{t}");
    } else {
        assert!(t.contains("cannot connect to the gateway"), "{t}");
        assert!(t.contains("No money moved"), "{t}");
        assert_eq!(structured(&result)["error"]["kind"], "connect");
        let state: String = rusqlite::Connection::open(dir.path().join("data/ledger.db"))
            .unwrap()
            .query_row(
                "SELECT state FROM refunds WHERE out_request_no = 'RR_R1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            state, "failed",
            "a refund that never left is recorded as failed"
        );
    }
    assert!(
        elapsed < Duration::from_millis(TIMEOUT_MS) + Duration::from_secs(1) + MARGIN,
        "{elapsed:?}"
    );
    assert_eq!(
        gateway.count_method("alipay.trade.refund").await,
        0,
        "nothing reached the gateway"
    );
    assert_eq!(gateway.trade("RR_1").await["refund_fee"], "0.00");

    // The gateway is back: the same number refunds, once.
    let relay = Relay::start(relay_port, emulator.addr()).await;
    let again = call(&client, "refund-alipay-payment", args).await;
    assert!(
        text(&again).starts_with("退款结果: 退款成功"),
        "{}",
        text(&again)
    );
    assert_eq!(gateway.trade("RR_1").await["refund_fee"], "4.00");
    client.cancel().await.unwrap();
    relay.stop().await;
    emulator.shutdown().await;
}
