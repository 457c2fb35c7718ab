//! End to end (spawned binary, local mode): `wait-for-alipay-payment` and order expiry.
//!
//! The wait runs out unpaid, learns of a payment by its own queries when no notification can
//! arrive (one poller per order, none once nobody waits), reports progress to a client that asked
//! for it, and is not cut by `AP_HTTP_TIMEOUT_MS` over Streamable HTTP. Every create sends
//! `time_expire` and says `expiresAt`; `expiresInMinutes` may shorten it, never lengthen it.
//! Moving the embedded gateway's clock (`POST /__emulator/clock`) past an order's expiry makes the
//! cashier refuse it and the query and the wait say it expired, also for a wait under way; an
//! order created after a move is payable for its whole TTL. Links whose title holds brackets,
//! parentheses, quotes and spaces are percent-encoded and still open the cashier with a valid
//! signature.

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use common::*;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation,
    ProgressNotificationParam, ProtocolVersion, ReadResourceRequestParams, ResourceContents,
};
use rmcp::service::{NotificationContext, RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ServiceExt as _};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;

const WAIT: &str = "wait-for-alipay-payment";
const TOKEN: &str = "e2e-wait-token-0123456789abcdef";

/// The local-mode environment with a private notify port, plus `extra`.
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

/// `yyyy-MM-dd HH:mm:ss`, Beijing.
fn beijing(text: &str) -> DateTime<FixedOffset> {
    alipay_openapi::time::parse_timestamp(text)
        .unwrap_or_else(|| panic!("not a Beijing timestamp: {text:?}"))
}

/// Seconds from `now` to `at` (negative when `at` is before).
fn seconds_ahead(at: &str, now: &DateTime<FixedOffset>) -> i64 {
    (beijing(at) - *now).num_seconds()
}

/// The embedded gateway's clock (`GET /__emulator/clock`).
async fn gateway_now(gateway: &Gateway) -> DateTime<FixedOffset> {
    let r = reqwest::get(format!("{}/__emulator/clock", gateway.base))
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "GET /__emulator/clock: {}",
        r.status()
    );
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    beijing(v["now"].as_str().expect("clock answers now"))
}

/// Move the embedded gateway's clock forward (`POST /__emulator/clock`); returns its new now.
async fn advance_clock(gateway: &Gateway, seconds: u64) -> DateTime<FixedOffset> {
    let r = reqwest::Client::new()
        .post(format!("{}/__emulator/clock", gateway.base))
        .header("content-type", "application/json")
        .body(json!({ "advance_seconds": seconds }).to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert!(
        status.is_success(),
        "POST /__emulator/clock: {status} {body}"
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["offset_seconds"].as_i64().unwrap_or_default() >= seconds as i64,
        "{v}"
    );
    beijing(v["now"].as_str().expect("clock answers now"))
}

/// The JSON `biz_content` of a logged request, from its sign content.
fn logged_biz(request: &Value) -> Value {
    let content = request["sign_content"].as_str().expect("sign content");
    let start = content.find("biz_content=").expect("biz_content signed") + "biz_content=".len();
    serde_json::Deserializer::from_str(&content[start..])
        .into_iter::<Value>()
        .next()
        .expect("a JSON biz_content")
        .expect("a JSON biz_content")
}

/// The order resource `alipay://orders/{no}` as JSON.
async fn read_order<H: ClientHandler>(client: &RunningService<RoleClient, H>, no: &str) -> Value {
    let result = client
        .read_resource(ReadResourceRequestParams::new(format!(
            "alipay://orders/{no}"
        )))
        .await
        .unwrap();
    match &result.contents[0] {
        ResourceContents::TextResourceContents { text, .. } => serde_json::from_str(text).unwrap(),
        other => panic!("{other:?}"),
    }
}

/// `action="/cashier/{token}/pay"` of a cashier page.
fn pay_action(page: &str) -> String {
    let start = page
        .find("action=\"/cashier/")
        .expect("a pay form on the cashier")
        + 8;
    let end = page[start..].find('"').unwrap() + start;
    page[start..end].to_string()
}

/// GET a URL, as a browser following the link: the status and the page.
async fn get_page(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// POST the cashier's pay form, as the pay button does: the status and the page.
async fn press_pay(gateway: &Gateway, action: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("{}{action}", gateway.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// A wait with `timeoutSeconds`, bounded well past it so a hung wait fails the test.
async fn wait_for<H: ClientHandler>(
    client: &RunningService<RoleClient, H>,
    no: &str,
    timeout_seconds: u64,
) -> rmcp::model::CallToolResult {
    tokio::time::timeout(
        Duration::from_secs(timeout_seconds + 30),
        call(
            client,
            WAIT,
            json!({"outTradeNo": no, "timeoutSeconds": timeout_seconds}),
        ),
    )
    .await
    .unwrap_or_else(|_| panic!("the wait on {no} did not answer within {timeout_seconds} s + 30 s"))
}

/// Create an order with `tool`; asserts it succeeded.
async fn create<H: ClientHandler>(
    client: &RunningService<RoleClient, H>,
    tool: &str,
    args: Value,
) -> rmcp::model::CallToolResult {
    let created = call(client, tool, args).await;
    assert!(!is_error(&created), "{tool}: {}", text(&created));
    created
}

// --- 1. the wait runs out -----------------------------------------------------------------------

#[tokio::test]
async fn the_wait_returns_unpaid_when_its_time_runs_out() {
    let dir = TempDir::new("wait-runs-out");
    let client = connect(&env_with(&dir, &[])).await;
    let no = "WAIT_OUT_1";
    let created = create(
        &client,
        "create-mobile-alipay-payment",
        json!({"outTradeNo": no, "totalAmount": "12.30", "orderTitle": "等待超时"}),
    )
    .await;
    let expires_at = structured(&created)["expiresAt"]
        .as_str()
        .expect("expiresAt")
        .to_string();

    let started = Instant::now();
    let waited = wait_for(&client, no, 2).await;
    let took = started.elapsed();
    assert!(!is_error(&waited), "{}", text(&waited));
    let s = structured(&waited);
    assert_eq!(s["outTradeNo"], no, "{s}");
    assert_eq!(s["state"], "waiting", "{s}");
    assert_eq!(s["final"], false, "{s}");
    assert_eq!(s["paid"], false, "{s}");
    assert_eq!(s["totalAmount"], "12.30", "{s}");
    assert_eq!(s["expiresAt"], expires_at.as_str(), "{s}");
    assert!(s.get("tradeNo").is_none_or(Value::is_null), "{s}");
    assert!(
        s["waitedSeconds"].as_u64().expect("waitedSeconds") >= 2,
        "{s}"
    );
    let next = s["next"].as_str().expect("next while unpaid");
    assert!(next.contains(no), "next names the order: {next}");
    assert!(next.contains(&expires_at), "next names expiresAt: {next}");
    assert!(
        text(&waited).starts_with("支付结果: 尚未支付"),
        "{}",
        text(&waited)
    );
    assert!(took >= Duration::from_secs(2), "returned early: {took:?}");
    assert!(
        took < Duration::from_secs(20),
        "took {took:?} for a 2 s wait"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_wait_on_an_order_this_server_never_made_is_a_not_found_error() {
    let dir = TempDir::new("wait-unknown");
    let client = connect(&env_with(&dir, &[])).await;
    let started = Instant::now();
    let waited = wait_for(&client, "NO_SUCH_ORDER_1", 30).await;
    assert!(is_error(&waited), "{}", text(&waited));
    assert_eq!(
        structured(&waited)["error"]["kind"],
        "not_found",
        "{}",
        structured(&waited)
    );
    assert!(
        text(&waited).contains("NO_SUCH_ORDER_1"),
        "{}",
        text(&waited)
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "an unknown order is answered at once, not after the timeout"
    );
    // Arguments outside 1–50 are refused, naming the field.
    for bad in [json!(0), json!(51), json!("x")] {
        let r = call(
            &client,
            WAIT,
            json!({"outTradeNo": "NO_SUCH_ORDER_1", "timeoutSeconds": bad}),
        )
        .await;
        assert!(is_error(&r), "timeoutSeconds {bad}: {}", text(&r));
        assert_eq!(structured(&r)["error"]["kind"], "invalid_argument");
        assert_eq!(structured(&r)["error"]["field"], "timeoutSeconds");
    }
    client.cancel().await.unwrap();
}

// --- 2. paid without any notification -----------------------------------------------------------

#[tokio::test]
async fn the_wait_returns_paid_within_seconds_when_no_notification_can_arrive() {
    let dir = TempDir::new("wait-paid");
    let notify_url = "http://127.0.0.1:1/alipay/notify";
    let client = Arc::new(
        connect(&env_with(
            &dir,
            &[("AP_NOTIFY_LISTEN", "off"), ("AP_NOTIFY_URL", notify_url)],
        ))
        .await,
    );
    let no = "WAIT_PAID_1";
    let created = create(
        &client,
        "create-web-page-alipay-payment",
        json!({"outTradeNo": no, "totalAmount": "66.60", "orderTitle": "无通知的付款"}),
    )
    .await;
    let link = link_of(&created);
    let gateway = Gateway::from_link(&link);
    assert_eq!(
        link_param(&link, "notify_url").as_deref(),
        Some(notify_url),
        "the link sends notifications where nobody listens"
    );
    gateway.open(&link).await; // the buyer opens the cashier

    let started = Instant::now();
    let waiter = {
        let client = client.clone();
        tokio::spawn(async move { wait_for(&*client, no, 30).await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !waiter.is_finished(),
        "the wait returned before the payment"
    );
    let paid_at = Instant::now();
    gateway.pay(no).await;
    let waited = waiter.await.unwrap();
    let took = started.elapsed();
    let after_payment = paid_at.elapsed();
    assert!(!is_error(&waited), "{}", text(&waited));
    let s = structured(&waited);
    assert_eq!(s["state"], "paid", "{s}");
    assert_eq!(s["final"], true, "{s}");
    assert_eq!(s["paid"], true, "{s}");
    assert_eq!(s["tradeStatus"], "TRADE_SUCCESS", "{s}");
    let trade_no = s["tradeNo"].as_str().expect("tradeNo once paid");
    assert_eq!(trade_no, gateway.trade(no).await["trade_no"], "{s}");
    assert!(s.get("next").is_none_or(Value::is_null), "{s}");
    assert!(
        text(&waited).starts_with("支付结果: 已支付, 交易状态: TRADE_SUCCESS"),
        "{}",
        text(&waited)
    );
    assert!(
        took < Duration::from_secs(20) && after_payment < Duration::from_secs(12),
        "a 30 s wait should answer within seconds of the payment: {after_payment:?} after it, {took:?} in all"
    );
    // The ledger learned it from the server's own query, not from a notification.
    let order = read_order(&*client, no).await;
    assert_eq!(order["tradeStatus"], "TRADE_SUCCESS", "{order}");
    assert_eq!(order["statusSource"], "query", "{order}");

    // A second wait on the paid order answers at once.
    let again_started = Instant::now();
    let again = wait_for(&*client, no, 30).await;
    assert!(!is_error(&again), "{}", text(&again));
    assert_eq!(structured(&again)["state"], "paid");
    assert_eq!(structured(&again)["tradeNo"], trade_no);
    assert_eq!(structured(&again)["waitedSeconds"], 0);
    assert!(
        again_started.elapsed() < Duration::from_secs(5),
        "a paid order's wait took {:?}",
        again_started.elapsed()
    );
    Arc::into_inner(client)
        .expect("the waiter is done")
        .cancel()
        .await
        .unwrap();
}

#[tokio::test]
async fn one_poller_per_order_however_many_wait_and_none_once_nobody_waits() {
    let dir = TempDir::new("wait-poller");
    let client = Arc::new(connect(&env_with(&dir, &[])).await);
    let no = "WAIT_POLL_1";
    let created = create(
        &client,
        "create-mobile-alipay-payment",
        json!({"outTradeNo": no, "totalAmount": "4.00", "orderTitle": "一个轮询"}),
    )
    .await;
    let gateway = Gateway::from_link(&link_of(&created));
    let queries = || async {
        gateway
            .requests()
            .await
            .iter()
            .filter(|r| r["method"] == "alipay.trade.query" && r["out_trade_no"] == no)
            .count()
    };
    let before = queries().await;
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { wait_for(&*client, no, 7).await })
        })
        .collect();
    for waiter in waiters {
        let waited = waiter.await.unwrap();
        assert_eq!(structured(&waited)["state"], "waiting", "{}", text(&waited));
    }
    let during = queries().await - before;
    // One poller: about every 3 s over 7 s (at 0, 3, 6 s, perhaps 9); three would ask ~9 times.
    assert!(
        (1..=5).contains(&during),
        "three waits of 7 s on one order asked Alipay {during} times"
    );
    // Nobody waits: at most the poll already under way, then nothing.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let settled = queries().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        queries().await,
        settled,
        "Alipay is still asked about an order nobody waits on"
    );
    Arc::into_inner(client).unwrap().cancel().await.unwrap();
}

// --- 3. progress notifications --------------------------------------------------------------------

/// A client that records the progress notifications it receives.
#[derive(Clone)]
struct ProgressClient {
    seen: Arc<Mutex<Vec<(ProgressNotificationParam, Instant)>>>,
}

impl ClientHandler for ProgressClient {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("e2e-progress-client", "0.1.0"),
        )
        .with_protocol_version(ProtocolVersion::V_2025_06_18)
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _ctx: NotificationContext<RoleClient>,
    ) {
        self.seen.lock().unwrap().push((params, Instant::now()));
    }
}

#[tokio::test]
async fn a_wait_with_a_progress_token_hears_progress_every_few_seconds() {
    let dir = TempDir::new("wait-progress");
    let env = env_with(&dir, &[]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.env_clear().envs(&env);
    let (transport, _stderr) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn mcp-server-alipay");
    let client = ProgressClient { seen: seen.clone() }
        .serve(transport)
        .await
        .expect("MCP handshake");
    let no = "WAIT_PROGRESS_1";
    create(
        &client,
        "create-qrcode-alipay-payment",
        json!({"outTradeNo": no, "totalAmount": "9.90", "orderTitle": "进度通知"}),
    )
    .await;

    // rmcp's client puts a progressToken in every request's `_meta`.
    let started = Instant::now();
    let waited = wait_for(&client, no, 9).await;
    assert!(!is_error(&waited), "{}", text(&waited));
    assert_eq!(structured(&waited)["state"], "waiting");
    assert!(structured(&waited)["waitedSeconds"].as_u64().unwrap() >= 9);
    // Notifications are handled on their own tasks: give the last one a moment.
    eventually(3, || async { seen.lock().unwrap().len() >= 2 }).await;
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.len() >= 2,
        "a 9 s wait should hear progress at about 4 s and 8 s, got {seen:?}"
    );
    let token = &seen[0].0.progress_token;
    let mut last = 0.0;
    for (p, at) in &seen {
        assert_eq!(&p.progress_token, token, "one token for one request");
        assert!(p.progress > last, "progress must increase: {seen:?}");
        last = p.progress;
        assert_eq!(p.total, Some(9.0), "{p:?}");
        assert!(p.progress <= 9.0 + 0.5, "{p:?}");
        let message = p.message.as_deref().unwrap_or_default();
        assert!(
            message.contains(no),
            "the message names the order: {message}"
        );
        assert!(
            at.duration_since(started) >= Duration::from_secs(2),
            "no progress before the first interval: {p:?}"
        );
    }
    client.cancel().await.unwrap();
}

// --- 4. Streamable HTTP -------------------------------------------------------------------------

/// A `serve --http` process on a free loopback port; killed on drop.
struct HttpServer {
    _child: tokio::process::Child,
    url: String,
    _dir: TempDir,
}

impl HttpServer {
    async fn start(tag: &str, extra: &[(&str, &str)]) -> Self {
        let dir = TempDir::new(tag);
        let env = env_with(&dir, extra);
        let port = free_port();
        let mut child = tokio::process::Command::new(BIN)
            .env_clear()
            .envs(&env)
            .args(["serve", "--http", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn mcp-server-alipay serve --http");
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[server] {line}");
                if line.contains("serving MCP at http://")
                    && let Some(tx) = ready.take()
                {
                    let _ = tx.send(());
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(20), ready_rx)
            .await
            .expect("server did not start within 20 s")
            .expect("server exited before serving");
        Self {
            _child: child,
            url: format!("http://127.0.0.1:{port}/mcp"),
            _dir: dir,
        }
    }
}

/// An rmcp client over HTTP: a 2025-06-18 session, or a stateless 2026-07-28 client.
async fn connect_http(url: &str, version: ProtocolVersion) -> Client {
    http::connect_http(url, TOKEN, version).await
}

#[tokio::test]
async fn over_streamable_http_a_wait_is_not_cut_by_the_request_timeout() {
    let server = HttpServer::start(
        "wait-http",
        &[("AP_HTTP_TOKEN", TOKEN), ("AP_HTTP_TIMEOUT_MS", "1000")],
    )
    .await;
    let modern = connect_http(&server.url, ProtocolVersion::V_2026_07_28).await;
    let legacy = connect_http(&server.url, ProtocolVersion::V_2025_06_18).await;
    assert_eq!(
        legacy.peer_info().unwrap().protocol_version,
        ProtocolVersion::V_2025_06_18
    );
    let mut gateway = None;
    for (name, client, no) in [
        ("2026-07-28 stateless", &modern, "WAIT_HTTP_MODERN"),
        ("2025-06-18 session", &legacy, "WAIT_HTTP_LEGACY"),
    ] {
        let created = create(
            client,
            "create-mobile-alipay-payment",
            json!({"outTradeNo": no, "totalAmount": "3.00", "orderTitle": "HTTP 等待"}),
        )
        .await;
        gateway.get_or_insert_with(|| Gateway::from_link(&link_of(&created)));
        let started = Instant::now();
        let waited = tokio::time::timeout(
            Duration::from_secs(30),
            client.call_tool(
                CallToolRequestParams::new(WAIT).with_arguments(
                    json!({"outTradeNo": no, "timeoutSeconds": 3})
                        .as_object()
                        .unwrap()
                        .clone(),
                ),
            ),
        )
        .await
        .unwrap_or_else(|_| panic!("{name}: no answer within 30 s"))
        .unwrap_or_else(|e| {
            panic!("{name}: a 3 s wait was refused (503?) with AP_HTTP_TIMEOUT_MS=1000: {e}")
        });
        let took = started.elapsed();
        assert!(!is_error(&waited), "{name}: {}", text(&waited));
        let s = structured(&waited);
        assert_eq!(s["state"], "waiting", "{name}: {s}");
        assert!(s["waitedSeconds"].as_u64().unwrap() >= 3, "{name}: {s}");
        assert!(
            took >= Duration::from_secs(3),
            "{name}: answered in {took:?}"
        );
    }

    // The timeout still applies to every other call: a query held 2.5 s by the gateway is cut.
    let gateway = gateway.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await; // the waits' pollers have stopped
    gateway
        .fault(json!({"method":"alipay.trade.query","kind":"timeout","delay_ms":2500,"process":true,"times":3}))
        .await;
    let started = Instant::now();
    let late = modern
        .call_tool(
            CallToolRequestParams::new("query-alipay-payment").with_arguments(
                json!({"outTradeNo": "WAIT_HTTP_MODERN"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await;
    assert!(late.is_err(), "a slow query should be cut at 1 s: {late:?}");
    assert!(started.elapsed() < Duration::from_millis(2400));
    gateway.clear_faults().await;
    modern.cancel().await.unwrap();
    legacy.cancel().await.unwrap();
}

// --- 5. expiry on every create --------------------------------------------------------------------

#[tokio::test]
async fn every_create_sends_time_expire_and_reports_expires_at() {
    let dir = TempDir::new("expiry-create");
    let client = connect(&env_with(&dir, &[])).await;
    let mut seen = Vec::new();
    let mut gateway = None;
    for (tool, no, kind) in [
        ("create-mobile-alipay-payment", "EXP_MOBILE_1", "mobile"),
        ("create-web-page-alipay-payment", "EXP_WEB_1", "webPage"),
        ("create-qrcode-alipay-payment", "EXP_QR_1", "qrCode"),
    ] {
        let created = create(
            &client,
            tool,
            json!({"outTradeNo": no, "totalAmount": "5.00", "orderTitle": "过期时间"}),
        )
        .await;
        let s = structured(&created).clone();
        assert_eq!(s["kind"], kind, "{s}");
        let expires_at = s["expiresAt"]
            .as_str()
            .unwrap_or_else(|| panic!("{tool}: expiresAt in {s}"))
            .to_string();
        let url = s["url"].as_str().unwrap().to_string();
        // The first tool gives a link to the gateway (the QR code's URL is its cashier's).
        let gw = gateway.get_or_insert_with(|| Gateway::from_link(&url));
        // About AP_ORDER_TTL_MINUTES (30) ahead, by the gateway's clock and by real Beijing time.
        for (clock, now) in [
            ("gateway", gateway_now(gw).await),
            ("system", alipay_openapi::time::beijing_now()),
        ] {
            let ahead = seconds_ahead(&expires_at, &now);
            assert!(
                (30 * 60 - 120..=30 * 60 + 120).contains(&ahead),
                "{tool}: expiresAt {expires_at} is {ahead} s after the {clock} clock's now"
            );
        }
        // The text points at the wait tool.
        let t = text(&created);
        let line = t
            .lines()
            .find(|l| l.contains(WAIT))
            .unwrap_or_else(|| panic!("{tool}: no line pointing at {WAIT}: {t}"));
        assert!(line.contains(no), "{line}");
        assert!(line.contains(&expires_at), "{line}");
        // What Alipay was sent.
        let time_expire = if kind == "qrCode" {
            let logged: Vec<Value> = gw
                .requests()
                .await
                .into_iter()
                .filter(|r| r["method"] == "alipay.trade.precreate" && r["out_trade_no"] == no)
                .collect();
            assert_eq!(logged.len(), 1, "{logged:?}");
            logged_biz(&logged[0])["time_expire"].clone()
        } else {
            let biz: Value =
                serde_json::from_str(&link_param(&url, "biz_content").unwrap()).unwrap();
            assert_eq!(biz["out_trade_no"], no);
            biz["time_expire"].clone()
        };
        assert_eq!(time_expire, expires_at.as_str(), "{tool}: time_expire sent");
        seen.push((no, expires_at));
    }

    // The list and the order resource carry it too.
    let listed = call(&client, "list-alipay-orders", json!({})).await;
    assert!(!is_error(&listed), "{}", text(&listed));
    let orders = structured(&listed)["orders"].as_array().unwrap().clone();
    for (no, expires_at) in &seen {
        let item = orders
            .iter()
            .find(|o| o["outTradeNo"] == *no)
            .unwrap_or_else(|| panic!("{no} not listed: {orders:?}"));
        assert_eq!(item["expiresAt"], expires_at.as_str(), "{item}");
        let resource = read_order(&client, no).await;
        assert_eq!(resource["expiresAt"], expires_at.as_str(), "{resource}");
    }
    // A repeat of the same order keeps its expiry.
    let again = create(
        &client,
        "create-mobile-alipay-payment",
        json!({"outTradeNo": "EXP_MOBILE_1", "totalAmount": "5.00", "orderTitle": "过期时间"}),
    )
    .await;
    assert_eq!(structured(&again)["existing"], true);
    assert_eq!(structured(&again)["expiresAt"], seen[0].1.as_str());
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn expires_in_minutes_may_shorten_an_order_but_never_lengthen_it() {
    let dir = TempDir::new("expiry-ttl");
    let client = connect(&env_with(&dir, &[("AP_ORDER_TTL_MINUTES", "10")])).await;

    for tool in [
        "create-mobile-alipay-payment",
        "create-web-page-alipay-payment",
        "create-qrcode-alipay-payment",
    ] {
        let refused = call(
            &client,
            tool,
            json!({"totalAmount": "1.00", "orderTitle": "太长", "expiresInMinutes": 11}),
        )
        .await;
        assert!(is_error(&refused), "{tool}: {}", text(&refused));
        let t = text(&refused);
        assert!(t.contains("expiresInMinutes"), "{t}");
        assert!(t.contains("10"), "the text names the limit: {t}");
        let e = &structured(&refused)["error"];
        assert_eq!(e["kind"], "invalid_argument", "{e}");
        assert_eq!(e["field"], "expiresInMinutes", "{e}");
    }
    for bad in [json!(0), json!(21_601), json!(2.5)] {
        let r = call(
            &client,
            "create-mobile-alipay-payment",
            json!({"totalAmount": "1.00", "orderTitle": "x", "expiresInMinutes": bad}),
        )
        .await;
        assert!(is_error(&r), "expiresInMinutes {bad}: {}", text(&r));
        assert_eq!(structured(&r)["error"]["field"], "expiresInMinutes");
    }

    let short = create(
        &client,
        "create-web-page-alipay-payment",
        json!({"outTradeNo": "EXP_SHORT_1", "totalAmount": "1.00", "orderTitle": "五分钟", "expiresInMinutes": 5}),
    )
    .await;
    let at = structured(&short)["expiresAt"]
        .as_str()
        .unwrap()
        .to_string();
    let link = link_of(&short);
    let gateway = Gateway::from_link(&link);
    let ahead = seconds_ahead(&at, &gateway_now(&gateway).await);
    assert!(
        (5 * 60 - 90..=5 * 60 + 90).contains(&ahead),
        "{at}: {ahead} s ahead"
    );
    let biz: Value = serde_json::from_str(&link_param(&link, "biz_content").unwrap()).unwrap();
    assert_eq!(biz["time_expire"], at.as_str());

    let limit = create(
        &client,
        "create-qrcode-alipay-payment",
        json!({"outTradeNo": "EXP_LIMIT_1", "totalAmount": "1.00", "orderTitle": "十分钟", "expiresInMinutes": 10}),
    )
    .await;
    let at = structured(&limit)["expiresAt"].as_str().unwrap();
    let ahead = seconds_ahead(at, &gateway_now(&gateway).await);
    assert!(
        (10 * 60 - 90..=10 * 60 + 90).contains(&ahead),
        "{at}: {ahead} s ahead"
    );

    let default = create(
        &client,
        "create-mobile-alipay-payment",
        json!({"outTradeNo": "EXP_DEFAULT_1", "totalAmount": "1.00", "orderTitle": "默认"}),
    )
    .await;
    let at = structured(&default)["expiresAt"].as_str().unwrap();
    let ahead = seconds_ahead(at, &gateway_now(&gateway).await);
    assert!(
        (10 * 60 - 90..=10 * 60 + 90).contains(&ahead),
        "AP_ORDER_TTL_MINUTES=10 is the default: {at}: {ahead} s ahead"
    );
    client.cancel().await.unwrap();
}

// --- 6. past expiry ---------------------------------------------------------------------------------

#[tokio::test]
async fn past_expiry_the_cashier_refuses_and_the_query_and_the_wait_say_expired() {
    let dir = TempDir::new("expiry-past");
    let client = connect(&env_with(&dir, &[])).await;
    let opened_no = "EXP_OPENED_1";
    let unopened_no = "EXP_UNOPENED_1";
    let qr_no = "EXP_QR_PAST_1";
    let opened = create(
        &client,
        "create-web-page-alipay-payment",
        json!({"outTradeNo": opened_no, "totalAmount": "20.00", "orderTitle": "打开过的订单"}),
    )
    .await;
    let unopened = create(
        &client,
        "create-mobile-alipay-payment",
        json!({"outTradeNo": unopened_no, "totalAmount": "21.00", "orderTitle": "没打开过的链接"}),
    )
    .await;
    create(
        &client,
        "create-qrcode-alipay-payment",
        json!({"outTradeNo": qr_no, "totalAmount": "22.00", "orderTitle": "没扫过的二维码"}),
    )
    .await;
    let opened_link = link_of(&opened);
    let unopened_link = link_of(&unopened);
    let expires_at = structured(&opened)["expiresAt"]
        .as_str()
        .unwrap()
        .to_string();
    let gateway = Gateway::from_link(&opened_link);

    // The buyer opens one cashier and does not pay; before expiry the query says it waits.
    let page = gateway.open(&opened_link).await;
    let action = pay_action(&page);
    let before = call(
        &client,
        "query-alipay-payment",
        json!({"outTradeNo": opened_no}),
    )
    .await;
    assert!(!is_error(&before), "{}", text(&before));
    assert_eq!(structured(&before)["tradeStatus"], "WAIT_BUYER_PAY");
    assert_eq!(structured(&before)["expired"], false);

    // 31 minutes pass at the gateway.
    let now = advance_clock(&gateway, 31 * 60).await;
    assert!(now >= beijing(&expires_at), "{now} vs {expires_at}");

    // The cashier refuses both.
    let (status, refused) = press_pay(&gateway, &action).await;
    assert!(
        refused.contains("ACQ.TRADE_HAS_CLOSE") && !refused.contains("支付成功"),
        "the pay button on an expired order: {status} {refused}"
    );
    let (status, page) = get_page(&unopened_link).await;
    assert!(
        page.contains("ACQ.TRADE_HAS_CLOSE") && !page.contains("pay-button"),
        "an expired link never opened: {status} {page}"
    );
    let r = gateway.control("pay", opened_no).await;
    assert_eq!(r.status().as_u16(), 409, "{}", r.text().await.unwrap());
    let r = gateway.control("pay", unopened_no).await;
    assert!(
        r.status().is_client_error(),
        "paying an expired link never opened: {}",
        r.status()
    );
    assert_eq!(
        gateway.trade(opened_no).await["trade_status"],
        "TRADE_CLOSED"
    );

    // The wait says so at once, before any query (the unopened link), and after one.
    let started = Instant::now();
    let waited = wait_for(&client, unopened_no, 30).await;
    assert!(!is_error(&waited), "{}", text(&waited));
    let s = structured(&waited);
    assert_eq!(s["state"], "expired", "{s}");
    assert_eq!(s["final"], true, "{s}");
    assert_eq!(s["paid"], false, "{s}");
    assert!(s.get("next").is_none_or(Value::is_null), "{s}");
    assert!(
        text(&waited).starts_with("支付结果: 订单已过期"),
        "{}",
        text(&waited)
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // The query: an opened trade Alipay closed at expiry.
    let q = call(
        &client,
        "query-alipay-payment",
        json!({"outTradeNo": opened_no}),
    )
    .await;
    assert!(!is_error(&q), "{}", text(&q));
    let s = structured(&q);
    assert_eq!(s["tradeStatus"], "TRADE_CLOSED", "{s}");
    assert_eq!(s["expired"], true, "{s}");
    assert_eq!(s["paid"], false, "{s}");
    assert_eq!(s["expiresAt"], expires_at.as_str(), "{s}");
    assert!(text(&q).contains("订单已过期"), "{}", text(&q));

    // The query: a link never opened past its expiry.
    let q = call(
        &client,
        "query-alipay-payment",
        json!({"outTradeNo": unopened_no}),
    )
    .await;
    assert!(!is_error(&q), "{}", text(&q));
    assert!(text(&q).starts_with("订单已过期"), "{}", text(&q));
    let s = structured(&q);
    assert_eq!(s["expired"], true, "{s}");
    assert_eq!(s["awaitingBuyer"], false, "{s}");
    assert_eq!(s["paid"], false, "{s}");

    // The QR code nobody scanned: expired too.
    let q = call(
        &client,
        "query-alipay-payment",
        json!({"outTradeNo": qr_no}),
    )
    .await;
    assert!(!is_error(&q), "{}", text(&q));
    assert_eq!(structured(&q)["expired"], true, "{}", structured(&q));

    for no in [opened_no, qr_no] {
        let started = Instant::now();
        let waited = wait_for(&client, no, 30).await;
        assert!(!is_error(&waited), "{}", text(&waited));
        assert_eq!(
            structured(&waited)["state"],
            "expired",
            "{}",
            structured(&waited)
        );
        assert_eq!(structured(&waited)["final"], true);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{no}: {:?}",
            started.elapsed()
        );
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_wait_in_progress_ends_expired_when_the_gateway_clock_passes_expiry() {
    let dir = TempDir::new("expiry-during-wait");
    let client = Arc::new(connect(&env_with(&dir, &[])).await);
    let no = "EXP_DURING_1";
    let created = create(
        &client,
        "create-mobile-alipay-payment",
        json!({"outTradeNo": no, "totalAmount": "8.00", "orderTitle": "等待中过期"}),
    )
    .await;
    let link = link_of(&created);
    let gateway = Gateway::from_link(&link);
    gateway.open(&link).await;
    let waiter = {
        let client = client.clone();
        tokio::spawn(async move { wait_for(&*client, no, 30).await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!waiter.is_finished());
    let moved = Instant::now();
    advance_clock(&gateway, 31 * 60).await;
    let waited = waiter.await.unwrap();
    assert!(!is_error(&waited), "{}", text(&waited));
    assert_eq!(
        structured(&waited)["state"],
        "expired",
        "{}",
        structured(&waited)
    );
    assert!(
        moved.elapsed() < Duration::from_secs(12),
        "the wait should notice the expiry within a poll or two: {:?}",
        moved.elapsed()
    );
    Arc::into_inner(client).unwrap().cancel().await.unwrap();
}

#[tokio::test]
async fn an_order_created_after_the_gateway_clock_moved_is_payable_for_its_whole_ttl() {
    let dir = TempDir::new("expiry-after-move");
    let client = connect(&env_with(&dir, &[])).await;
    let first = create(
        &client,
        "create-mobile-alipay-payment",
        json!({"outTradeNo": "EXP_MOVED_0", "totalAmount": "1.00", "orderTitle": "时钟之前"}),
    )
    .await;
    let gateway = Gateway::from_link(&link_of(&first));
    // Two hours pass at the gateway (local mode: its clock is the one that expires orders).
    let now = advance_clock(&gateway, 2 * 3600).await;

    let no = "EXP_MOVED_1";
    let created = create(
        &client,
        "create-mobile-alipay-payment",
        json!({"outTradeNo": no, "totalAmount": "2.00", "orderTitle": "时钟之后"}),
    )
    .await;
    let expires_at = structured(&created)["expiresAt"]
        .as_str()
        .unwrap()
        .to_string();
    let ahead = seconds_ahead(&expires_at, &now);
    assert!(
        (30 * 60 - 120..=30 * 60 + 120).contains(&ahead),
        "expiresAt {expires_at} should be about 30 min after the gateway's now {now}, is {ahead} s"
    );
    let waited = wait_for(&client, no, 1).await;
    assert_eq!(
        structured(&waited)["state"],
        "waiting",
        "a new order must not be born expired: {}",
        text(&waited)
    );
    let page = gateway.open(&link_of(&created)).await;
    assert!(
        page.contains("pay-button"),
        "the new link opens the cashier: {page}"
    );
    client.cancel().await.unwrap();
}

// --- 7. links that survive Markdown -----------------------------------------------------------------

#[tokio::test]
async fn links_with_brackets_quotes_and_spaces_are_encoded_and_still_open_the_cashier() {
    let dir = TempDir::new("link-encoding");
    let client = connect(&env_with(&dir, &[])).await;
    let title = r#"貓咪肖像 (A4, 300dpi) [限定] "特别" 'x'"#;
    for (tool, no) in [
        ("create-mobile-alipay-payment", "LINK_ENC_MOBILE"),
        ("create-web-page-alipay-payment", "LINK_ENC_WEB"),
    ] {
        let created = create(
            &client,
            tool,
            json!({"outTradeNo": no, "totalAmount": "30.00", "orderTitle": title}),
        )
        .await;
        let url = structured(&created)["url"].as_str().unwrap().to_string();
        for raw in ['(', ')', '[', ']', '"', '\'', ' ', '<', '>'] {
            assert!(!url.contains(raw), "{tool}: {raw:?} raw in the link {url}");
        }
        // The text's Markdown link is the whole link, and the same string.
        assert_eq!(link_of(&created), url, "{tool}");
        // The signed values are unchanged once decoded.
        let biz: Value = serde_json::from_str(&link_param(&url, "biz_content").unwrap()).unwrap();
        assert_eq!(biz["subject"], title, "{tool}: {biz}");
        assert_eq!(biz["out_trade_no"], no);

        // Opening it shows the cashier: the gateway verified the signature.
        let gateway = Gateway::from_link(&url);
        let before = gateway.request_count().await;
        let (status, page) = get_page(&url).await;
        assert_eq!(status, 200, "{tool}: {page}");
        assert!(
            !page.contains("错误代码") && page.contains("pay-button"),
            "{tool}: not the cashier: {page}"
        );
        assert!(page.contains("30.00"), "{tool}: the amount on the cashier");
        assert!(
            page.contains("貓咪肖像"),
            "{tool}: the title on the cashier"
        );
        let log = gateway.requests().await;
        let opened: Vec<&Value> = log[before..]
            .iter()
            .filter(|r| r["out_trade_no"] == no)
            .collect();
        assert!(!opened.is_empty(), "{log:?}");
        assert!(
            opened.iter().all(|r| r["verdict"] == "ok"),
            "{tool}: the signature verified: {opened:?}"
        );

        // Paying works.
        let (status, paid) = press_pay(&gateway, &pay_action(&page)).await;
        assert!(
            paid.contains("支付成功"),
            "{tool}: the pay button: {status} {paid}"
        );
        let q = call(&client, "query-alipay-payment", json!({"outTradeNo": no})).await;
        assert!(
            text(&q).starts_with("交易状态: TRADE_SUCCESS, 交易金额: 30.00"),
            "{}",
            text(&q)
        );
    }
    client.cancel().await.unwrap();
}
