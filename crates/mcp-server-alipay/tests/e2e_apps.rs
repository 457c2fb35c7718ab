//! MCP Apps end to end (the real binary, local mode): over Streamable HTTP, a host that declares
//! `io.modelcontextprotocol/ui` (in the legacy handshake, or per request in 2026-07-28) sees the
//! create tools name the checkout view, the app-only tools marked so, and the view's resource as a
//! self-contained HTML app; a host without the extension sees today's tools with no `_meta`, no
//! `ui://` resource, and no app-only tool at all. Over stdio, the app-only tools give the model
//! nothing: the status tool is `query-alipay-payment` for this server's orders only, and the
//! refund card's decision tool refuses any call without the card's one-time grant (which travels
//! only in the result's `_meta`), then applies the PIN rule of the approval page.

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use rmcp::model::{
    CallToolResult, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion,
    ReadResourceRequestParams, ResourceContents, Tool,
};
use rmcp::service::{RoleClient, RunningService};
use rmcp::{ClientHandler, ServiceExt as _};
use serde_json::{Value, json};

const TOKEN: &str = "e2e-apps-token-0123456789abcdef";
const CHECKOUT: &str = "ui://alipay/checkout";
const APP_ONLY: [&str; 2] = ["get-alipay-checkout-status", "decide-alipay-refund-in-card"];
const CREATE_TOOLS: [&str; 4] = [
    "create-mobile-alipay-payment",
    "create-web-page-alipay-payment",
    "create-alipay-payment-agent",
    "create-qrcode-alipay-payment",
];

/// A client that declares MCP Apps (`apps`) or not.
#[derive(Clone)]
struct Host {
    version: ProtocolVersion,
    apps: bool,
}

impl ClientHandler for Host {
    fn get_info(&self) -> ClientConfig {
        let capabilities: ClientCapabilities = if self.apps {
            serde_json::from_value(json!({ "extensions": { "io.modelcontextprotocol/ui": {
                "mimeTypes": ["text/html;profile=mcp-app"] } } }))
            .unwrap()
        } else {
            ClientCapabilities::default()
        };
        ClientConfig::new(capabilities, Implementation::new("e2e-apps-host", "0.1.0"))
            .with_protocol_version(self.version.clone())
    }
}

type Session = RunningService<RoleClient, Host>;

/// `serve --http` on a free port; killed on drop.
struct HttpServer {
    _child: tokio::process::Child,
    url: String,
    _dir: TempDir,
}

async fn http_server(extra: &[(&str, &str)]) -> HttpServer {
    let dir = TempDir::new("e2e-apps-http");
    let mut env = local_env(dir.path(), free_port());
    env.insert(
        "AP_NOTIFY_LISTEN".into(),
        format!("127.0.0.1:{}", free_port()),
    );
    env.insert("AP_HTTP_TOKEN".into(), TOKEN.into());
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    let port = free_port();
    let child = tokio::process::Command::new(BIN)
        .env_clear()
        .envs(&env)
        .args(["serve", "--http", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn serve --http");
    let base = format!("http://127.0.0.1:{port}");
    let up = eventually(20, || async {
        reqwest::get(format!("{base}/healthz"))
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    assert!(up, "the server did not serve /healthz");
    HttpServer {
        _child: child,
        url: format!("{base}/mcp"),
        _dir: dir,
    }
}

async fn connect_http(url: &str, version: ProtocolVersion, apps: bool) -> Session {
    let host = Host {
        version: version.clone(),
        apps,
    };
    http::connect_http_as(host, url, TOKEN, version).await
}

fn ui(tool: &Tool) -> Option<&Value> {
    tool.meta.as_ref().and_then(|m| m.0.get("ui"))
}

async fn read(session: &Session, uri: &str) -> (String, Option<String>, Value) {
    let result = session
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
        .expect("resources/read");
    match result.contents.into_iter().next() {
        Some(ResourceContents::TextResourceContents {
            text,
            mime_type,
            meta,
            ..
        }) => (
            text,
            mime_type,
            meta.map(|m| Value::Object(m.0)).unwrap_or(Value::Null),
        ),
        other => panic!("{uri}: not text contents: {other:?}"),
    }
}

#[tokio::test]
async fn hosts_that_render_views_see_them_and_other_hosts_see_todays_tools() {
    let server = http_server(&[("AP_REFUND_CONFIRM", "true")]).await;
    for version in [ProtocolVersion::V_2025_06_18, ProtocolVersion::V_2026_07_28] {
        let plain = connect_http(&server.url, version.clone(), false).await;
        let host = connect_http(&server.url, version.clone(), true).await;

        // Without the extension: today's list, not one `_meta`, no app-only tool to call.
        let today = plain.list_all_tools().await.unwrap();
        assert_eq!(today.len(), 11, "{version:?}");
        assert!(today.iter().all(|t| t.meta.is_none()), "{version:?}");
        assert!(!today.iter().any(|t| APP_ONLY.contains(&t.name.as_ref())));
        let resources = plain.list_all_resources().await.unwrap();
        assert!(!resources.iter().any(|r| r.uri.starts_with("ui://")));
        for name in APP_ONLY {
            let refused = plain
                .call_tool(
                    rmcp::model::CallToolRequestParams::new(name)
                        .with_arguments(json!({"outTradeNo": "X1"}).as_object().unwrap().clone()),
                )
                .await;
            assert!(
                refused.is_err(),
                "{name} must not exist for a host without the extension"
            );
        }

        // With it: the same tools in the same order, the create tools naming the checkout view
        // (both keys), then the app-only tools.
        let tools = host.list_all_tools().await.unwrap();
        let names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
        let mut expected: Vec<_> = today.iter().map(|t| t.name.to_string()).collect();
        expected.extend(APP_ONLY.map(String::from));
        assert_eq!(names, expected, "{version:?}");
        for tool in &tools {
            let name = tool.name.as_ref();
            let meta = tool.meta.as_ref().map(|m| Value::Object(m.0.clone()));
            if CREATE_TOOLS.contains(&name) {
                assert_eq!(ui(tool).unwrap()["resourceUri"], CHECKOUT, "{name}");
                assert_eq!(meta.unwrap()["ui/resourceUri"], CHECKOUT, "{name}");
            } else if APP_ONLY.contains(&name) {
                assert_eq!(ui(tool).unwrap()["visibility"], json!(["app"]), "{name}");
            } else if name == "refund-alipay-payment" {
                assert_eq!(
                    ui(tool).unwrap()["resourceUri"],
                    "ui://alipay/refund-approval"
                );
            } else {
                assert!(tool.meta.is_none(), "{name} has no view");
            }
        }
        let listed = host.list_all_resources().await.unwrap();
        let checkout = listed.iter().find(|r| r.uri == CHECKOUT).expect("listed");
        assert_eq!(
            checkout.mime_type.as_deref(),
            Some("text/html;profile=mcp-app")
        );

        // The view: one self-contained HTML document, loading nothing, asking for no CSP domain.
        let (html, mime, meta) = read(&host, CHECKOUT).await;
        assert_eq!(mime.as_deref(), Some("text/html;profile=mcp-app"));
        assert!(html.starts_with("<!doctype html>"));
        let lower = html.to_ascii_lowercase();
        for banned in ["<link", "src=", "@import", "url(", "http://", "https://"] {
            assert!(!lower.contains(banned), "the view contains {banned:?}");
        }
        assert!(meta["ui"].get("csp").is_none(), "{meta}");
        assert_eq!(meta["ui"]["prefersBorder"], true);

        plain.cancel().await.unwrap();
        host.cancel().await.unwrap();
    }
}

/// A stdio session of a host that renders views, refunds needing approval (with `pin`, if any).
async fn stdio_host(dir: &TempDir, pin: Option<&str>) -> Session {
    let mut env: HashMap<String, String> = local_env(dir.path(), free_port());
    env.insert(
        "AP_NOTIFY_LISTEN".into(),
        format!("127.0.0.1:{}", free_port()),
    );
    env.insert("AP_REFUND_CONFIRM".into(), "true".into());
    if let Some(pin) = pin {
        env.insert("AP_REFUND_PIN".into(), pin.into());
    }
    env.insert("AP_APPROVAL_LISTEN".into(), "127.0.0.1:0".into());
    env.insert("AP_LOG_ENABLED".into(), "true".into());
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.env_clear().envs(&env);
    let (transport, _stderr) = rmcp::transport::TokioChildProcess::builder(cmd)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn mcp-server-alipay");
    Host {
        version: ProtocolVersion::V_2025_06_18,
        apps: true,
    }
    .serve(transport)
    .await
    .expect("MCP handshake")
}

fn grant_of(result: &CallToolResult) -> String {
    let meta = result.meta.as_ref().expect("the refund result has _meta");
    meta.0["alipay/approvalGrant"]
        .as_str()
        .expect("a grant")
        .to_string()
}

async fn decide(session: &Session, grant: &str, decision: &str) -> CallToolResult {
    call(
        session,
        "decide-alipay-refund-in-card",
        json!({"grant": grant, "decision": decision}),
    )
    .await
}

async fn ask_refund(session: &Session, request_no: &str) -> CallToolResult {
    let asked = call(
        session,
        "refund-alipay-payment",
        json!({"outTradeNo": "APPS_1", "refundAmount": "5.00", "outRequestNo": request_no}),
    )
    .await;
    assert_eq!(
        structured(&asked)["status"],
        "awaitingApproval",
        "{}",
        text(&asked)
    );
    asked
}

#[tokio::test]
async fn app_only_tools_give_the_model_nothing() {
    let dir = TempDir::new("e2e-apps-stdio");
    let host = stdio_host(&dir, None).await;

    // The status tool: only this server's orders, and then what query-alipay-payment answers.
    let foreign = call(
        &host,
        "get-alipay-checkout-status",
        json!({"outTradeNo": "NOT_OURS_1"}),
    )
    .await;
    assert!(is_error(&foreign));
    assert_eq!(structured(&foreign)["error"]["kind"], "not_found");
    let gateway = paid_order(&host, "APPS_1", "30.00").await;
    let status = call(
        &host,
        "get-alipay-checkout-status",
        json!({"outTradeNo": "APPS_1"}),
    )
    .await;
    let query = call(
        &host,
        "query-alipay-payment",
        json!({"outTradeNo": "APPS_1"}),
    )
    .await;
    assert_eq!(structured(&status), structured(&query));
    assert_eq!(structured(&status)["paid"], true);

    // A refund awaiting approval: its grant is in `_meta` only, never where the model reads.
    let asked = ask_refund(&host, "APPS_1_R1").await;
    let grant = grant_of(&asked);
    assert_eq!(grant.len(), 64);
    assert!(!text(&asked).contains(&grant));
    assert!(!structured(&asked).to_string().contains(&grant));
    assert_eq!(asked.meta.as_ref().unwrap().0["alipay/pinRequired"], false);

    // What the model could send: no grant, or one it made up.
    let no_grant = call(
        &host,
        "decide-alipay-refund-in-card",
        json!({"decision": "approve"}),
    )
    .await;
    assert!(is_error(&no_grant));
    assert_eq!(structured(&no_grant)["decided"], "refused");
    let made_up = decide(&host, &"0".repeat(64), "approve").await;
    assert!(is_error(&made_up));
    assert_eq!(structured(&made_up)["decided"], "refused");
    assert_eq!(gateway.count_method("alipay.trade.refund").await, 0);

    // The card's grant: sent once, and the grant is spent.
    let approved = decide(&host, &grant, "approve").await;
    assert!(!is_error(&approved), "{}", text(&approved));
    assert_eq!(structured(&approved)["decided"], "sent");
    assert_eq!(structured(&approved)["refundState"], "succeeded");
    let reused = decide(&host, &grant, "approve").await;
    assert_eq!(
        structured(&reused)["decided"],
        "refused",
        "a grant works once"
    );
    assert_eq!(gateway.count_method("alipay.trade.refund").await, 1);
    host.cancel().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    // A grant is never written to the log.
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
    assert!(log.contains("APPS_1"), "the log was written");
    assert!(!log.contains(&grant), "the log holds a grant");
}

#[tokio::test]
async fn with_a_pin_the_card_can_deny_but_only_the_page_approves() {
    let dir = TempDir::new("e2e-apps-pin");
    let host = stdio_host(&dir, Some("kq7-PIN-w3z")).await;
    let gateway = paid_order(&host, "APPS_1", "30.00").await;
    let asked = ask_refund(&host, "APPS_1_R1").await;
    assert_eq!(asked.meta.as_ref().unwrap().0["alipay/pinRequired"], true);
    let grant = grant_of(&asked);

    // The PIN is never taken in a tool argument, so the card cannot approve, and the grant stays.
    let approve = decide(&host, &grant, "approve").await;
    assert!(is_error(&approve));
    assert_eq!(structured(&approve)["decided"], "refused");
    assert!(
        text(&approve).contains("approval page"),
        "{}",
        text(&approve)
    );
    let with_pin = call(
        &host,
        "decide-alipay-refund-in-card",
        json!({"grant": grant, "decision": "approve", "pin": "kq7-PIN-w3z"}),
    )
    .await;
    assert_eq!(
        structured(&with_pin)["decided"],
        "refused",
        "no pin argument"
    );
    let denied = decide(&host, &grant, "deny").await;
    assert_eq!(
        structured(&denied)["decided"],
        "denied",
        "{}",
        text(&denied)
    );
    assert_eq!(gateway.count_method("alipay.trade.refund").await, 0);

    // The refund's replay says it was denied.
    let replay = call(
        &host,
        "refund-alipay-payment",
        json!({"outTradeNo": "APPS_1", "refundAmount": "5.00", "outRequestNo": "APPS_1_R1"}),
    )
    .await;
    assert!(is_error(&replay), "{}", text(&replay));
    host.cancel().await.unwrap();
}
