//! End to end over Streamable HTTP: the real binary with `serve --http 127.0.0.1:PORT` in local
//! mode, rmcp's HTTP client with the bearer token. A stateless 2026-07-28 client and a 2025-06-18
//! session client run the whole flow on one server at once; the gate in front of MCP (token,
//! Origin, Host, body size, concurrency, timeout), the generated token, /healthz, and a SIGTERM
//! that arrives while a call is in flight.

mod common;

use std::time::{Duration, Instant};

use common::http::{HttpServer, connect_http};
use common::*;
use rmcp::ServiceExt as _;
use rmcp::model::ProtocolVersion;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;

const TOKEN: &str = "e2e-http-token-0123456789abcdef";

/// A local-mode server over HTTP on its own data dir; killed on drop.
struct Server {
    http: HttpServer,
    dir: TempDir,
}

impl std::ops::Deref for Server {
    type Target = HttpServer;
    fn deref(&self) -> &HttpServer {
        &self.http
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut HttpServer {
        &mut self.http
    }
}

impl Server {
    /// Start with the local-mode environment plus `extra`; waits until it serves.
    async fn start(tag: &str, extra: &[(&str, &str)]) -> Self {
        let dir = TempDir::new(tag);
        let mut env = local_env(dir.path(), free_port());
        env.insert(
            "AP_NOTIFY_LISTEN".into(),
            format!("127.0.0.1:{}", free_port()),
        );
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        Self {
            http: HttpServer::spawn(&env).await,
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

type HttpClient = Client;

/// Create a desktop link, pay it on the embedded gateway, query, refund part, query the refund.
async fn pay_query_refund(client: &HttpClient, no: &str) {
    let created = call(
        client,
        "create-web-page-alipay-payment",
        json!({"outTradeNo": no, "totalAmount": "10.00", "orderTitle": "HTTP 端到端"}),
    )
    .await;
    assert!(!is_error(&created), "{}", text(&created));
    assert!(text(&created).starts_with("网页支付链接: [点击完成支付](http://127.0.0.1:"));
    assert!(
        created.content.iter().any(|c| c.as_image().is_some()),
        "QR image"
    );
    let link = link_of(&created);
    let gateway = Gateway::from_link(&link);

    let unpaid = call(client, "query-alipay-payment", json!({"outTradeNo": no})).await;
    assert!(!is_error(&unpaid), "{}", text(&unpaid));
    assert_eq!(structured(&unpaid)["awaitingBuyer"], json!(true));

    gateway.open(&link).await; // the buyer opens the cashier
    gateway.pay(no).await;
    let paid = call(client, "query-alipay-payment", json!({"outTradeNo": no})).await;
    assert!(!is_error(&paid), "{}", text(&paid));
    assert!(
        text(&paid).starts_with("交易状态: TRADE_SUCCESS, 交易金额: 10.00, 支付宝交易号: "),
        "{}",
        text(&paid)
    );
    assert_eq!(structured(&paid)["paid"], json!(true));

    let request_no = format!("{no}_R1");
    let refund = call(
        client,
        "refund-alipay-payment",
        json!({"outTradeNo": no, "refundAmount": "2.5", "outRequestNo": request_no, "refundReason": "HTTP"}),
    )
    .await;
    assert!(!is_error(&refund), "{}", text(&refund));
    assert!(
        text(&refund).starts_with("退款结果: 退款成功, 退款交易: "),
        "{}",
        text(&refund)
    );
    let refund_query = call(
        client,
        "query-alipay-refund",
        json!({"outTradeNo": no, "outRequestNo": request_no}),
    )
    .await;
    assert!(
        text(&refund_query).contains("退款金额: 2.50, 退款状态: REFUND_SUCCESS"),
        "{}",
        text(&refund_query)
    );
}

#[tokio::test]
async fn both_protocol_eras_run_the_whole_flow_on_one_server() {
    let server = Server::start("http-flow", &[("AP_HTTP_TOKEN", TOKEN)]).await;
    let modern = connect_http(&server.url, TOKEN, ProtocolVersion::V_2026_07_28).await;
    let legacy = connect_http(&server.url, TOKEN, ProtocolVersion::V_2025_06_18).await;
    assert_eq!(
        legacy.peer_info().unwrap().protocol_version,
        ProtocolVersion::V_2025_06_18
    );
    assert_eq!(
        modern.peer_info().unwrap().protocol_version,
        ProtocolVersion::V_2026_07_28
    );
    for client in [&modern, &legacy] {
        let info = client.peer_info().unwrap();
        assert_eq!(info.server_info.as_ref().unwrap().name, "mcp-server-alipay");
        assert_eq!(client.list_all_tools().await.unwrap().len(), 11);
    }
    // At the same time, on the same server and the same embedded gateway.
    tokio::join!(
        pay_query_refund(&modern, "HTTP_MODERN_1"),
        pay_query_refund(&legacy, "HTTP_LEGACY_1"),
    );
    // A resource and the ledger behind it, as over stdio.
    let order = legacy
        .read_resource(rmcp::model::ReadResourceRequestParams::new(
            "alipay://orders/HTTP_MODERN_1",
        ))
        .await
        .unwrap();
    let rmcp::model::ResourceContents::TextResourceContents { text: body, .. } = &order.contents[0]
    else {
        panic!("text resource")
    };
    assert!(body.contains("\"tradeStatus\":\"TRADE_SUCCESS\""), "{body}");
    // Same logs as stdio: the tool lines land in AP_LOG_FILE.
    let log = server.log();
    assert!(log.contains("serving MCP over Streamable HTTP"), "{log}");
    assert!(
        log.contains("queried") && log.contains("HTTP_MODERN_1") && log.contains("HTTP_LEGACY_1"),
        "{log}"
    );
    assert!(!log.contains(TOKEN), "the token is never logged");
    modern.cancel().await.unwrap();
    legacy.cancel().await.unwrap();
}

/// A raw 2026-07-28 `tools/list` POST with the headers the rmcp client sends.
fn tools_list(http: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
    http.post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/list")
        .body(
            json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{
                "io.modelcontextprotocol/protocolVersion":"2026-07-28",
                "io.modelcontextprotocol/clientCapabilities":{}}}})
            .to_string(),
        )
}

#[tokio::test]
async fn the_gate_token_origin_host_body_and_healthz() {
    let server = Server::start(
        "http-gate",
        &[
            ("AP_HTTP_TOKEN", TOKEN),
            ("AP_HTTP_ALLOWED_ORIGINS", "http://localhost:3000"),
            ("AP_HTTP_MAX_BODY_BYTES", "4096"),
        ],
    )
    .await;
    let http = reqwest::Client::new();

    // /healthz: no token, small JSON.
    let health = http
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let health: serde_json::Value = health.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["env"], "local");

    // No token, a wrong token, the wrong scheme: 401 with WWW-Authenticate: Bearer.
    for auth in [
        None,
        Some(format!("Bearer {TOKEN}x")),
        Some("Bearer ".to_string()),
        Some(format!("Basic {TOKEN}")),
    ] {
        let mut request = tools_list(&http, &server.url);
        if let Some(auth) = &auth {
            request = request.header("authorization", auth);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        let challenge = r.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
    }
    // The right token (the scheme is case-insensitive): served.
    let ok = tools_list(&http, &server.url)
        .header("authorization", format!("bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("query-alipay-payment"));

    // A browser Origin not allowed: 403 (before the token is even looked at); an allowed one,
    // written with its default port, passes; no Origin (not a browser) passes.
    for (origin, token, want) in [
        ("https://evil.example", TOKEN, 403),
        ("http://localhost:3001", TOKEN, 403),
        ("null", TOKEN, 403),
        ("https://evil.example", "wrong-token-wrong-token", 403),
        ("http://localhost:3000", TOKEN, 200),
        ("HTTP://LOCALHOST:3000", TOKEN, 200),
    ] {
        let r = tools_list(&http, &server.url)
            .header("origin", origin)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "{origin}");
    }

    // A Host that is not ours (DNS rebinding): 403 from rmcp's Host check.
    let rebound = tools_list(&http, &server.url)
        .header("host", "evil.example")
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);

    // A body over AP_HTTP_MAX_BODY_BYTES: 413.
    let big = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
        "name":"query-alipay-payment","arguments":{"outTradeNo":"X","pad":"x".repeat(10_000)},
        "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",
                 "io.modelcontextprotocol/clientCapabilities":{}}}});
    let r = http
        .post(&server.url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .body(big.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    // A legacy initialize gets a session id.
    let init = http
        .post(&server.url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(
            json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
                "protocolVersion":"2025-06-18","capabilities":{},
                "clientInfo":{"name":"raw","version":"0"}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(init.status(), 200);
    assert!(init.headers().contains_key("mcp-session-id"));

    // The rmcp client with a wrong token cannot connect at all.
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(server.url.clone())
            .auth_header("not-the-token-not-the-token"),
    );
    assert!(
        TestClient {
            version: ProtocolVersion::V_2025_06_18
        }
        .serve(transport)
        .await
        .is_err()
    );
}

#[tokio::test]
async fn without_a_token_one_is_generated_and_printed_once() {
    let server = Server::start("http-gen", &[]).await;
    let lines: Vec<String> = server
        .stderr()
        .into_iter()
        .filter(|l| l.contains("AP_HTTP_TOKEN is not set"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let token = lines[0].rsplit(' ').next().unwrap().to_string();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    let client = connect_http(&server.url, &token, ProtocolVersion::V_2026_07_28).await;
    assert_eq!(client.list_all_tools().await.unwrap().len(), 11);
    let refused = tools_list(&reqwest::Client::new(), &server.url)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "never unauthenticated");
    assert!(
        !server.log().contains(&token),
        "the token stays off the log"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn sigterm_lets_the_call_in_flight_answer() {
    let mut server = Server::start("http-term", &[("AP_HTTP_TOKEN", TOKEN)]).await;
    let client = connect_http(&server.url, TOKEN, ProtocolVersion::V_2026_07_28).await;
    let gateway = paid_order(&client, "HTTP_TERM_1", "1.00").await;
    gateway
        .fault(
            json!({"method":"alipay.trade.query","kind":"timeout","delay_ms":1500,"process":true}),
        )
        .await;

    let started = Instant::now();
    let in_flight = tokio::spawn(async move {
        let r = call(
            &client,
            "query-alipay-payment",
            json!({"outTradeNo": "HTTP_TERM_1"}),
        )
        .await;
        (r, client)
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.sigterm();

    let (answer, _client) = in_flight.await.unwrap();
    assert!(
        text(&answer).starts_with("交易状态: TRADE_SUCCESS"),
        "{}",
        text(&answer)
    );
    assert!(started.elapsed() >= Duration::from_millis(1400));
    let status = tokio::time::timeout(Duration::from_secs(10), server.child.wait())
        .await
        .expect("exits soon after the call answered")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(server.log().contains("shutting down"), "{}", server.log());
    // Nothing listens any more.
    assert!(
        reqwest::Client::new()
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn concurrency_cap_and_timeout() {
    let server = Server::start(
        "http-limits",
        &[
            ("AP_HTTP_TOKEN", TOKEN),
            ("AP_HTTP_MAX_CONCURRENT", "1"),
            ("AP_HTTP_TIMEOUT_MS", "1000"),
        ],
    )
    .await;
    let legacy = connect_http(&server.url, TOKEN, ProtocolVersion::V_2025_06_18).await;
    let gateway = paid_order(&legacy, "HTTP_LIMIT_1", "1.00").await;

    // A session call held 1.5 s by the gateway keeps the only slot until its answer has been
    // streamed: meanwhile another request waits the timeout, then gets 503 + Retry-After.
    gateway
        .fault(
            json!({"method":"alipay.trade.query","kind":"timeout","delay_ms":1500,"process":true}),
        )
        .await;
    let held = tokio::spawn(async move {
        let r = call(
            &legacy,
            "query-alipay-payment",
            json!({"outTradeNo": "HTTP_LIMIT_1"}),
        )
        .await;
        (r, legacy)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let http = reqwest::Client::new();
    let busy = tools_list(&http, &server.url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(busy.status(), 503);
    assert_eq!(busy.headers()["retry-after"], "1");
    let (answer, legacy) = held.await.unwrap();
    assert!(
        text(&answer).starts_with("交易状态: TRADE_SUCCESS"),
        "{}",
        text(&answer)
    );

    // A stateless call not answered within AP_HTTP_TIMEOUT_MS: 503.
    gateway
        .fault(
            json!({"method":"alipay.trade.query","kind":"timeout","delay_ms":1500,"process":true}),
        )
        .await;
    let modern = connect_http(&server.url, TOKEN, ProtocolVersion::V_2026_07_28).await;
    let started = Instant::now();
    let late = modern
        .call_tool(
            rmcp::model::CallToolRequestParams::new("query-alipay-payment").with_arguments(
                json!({"outTradeNo": "HTTP_LIMIT_1"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await;
    assert!(late.is_err(), "{late:?}");
    assert!(started.elapsed() < Duration::from_millis(1400));
    // Free again afterwards.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let ok = tools_list(&http, &server.url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    legacy.cancel().await.unwrap();
    modern.cancel().await.unwrap();
}
