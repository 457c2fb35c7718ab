//! Test harness: spawn the real `mcp-server-alipay` binary and speak MCP to it with rmcp's client,
//! in local mode on a private data dir; reach the embedded gateway's control API over HTTP.
#![allow(dead_code)]

pub(crate) mod http;
pub(crate) mod raw;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
    ProtocolVersion,
};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ServiceExt as _};
use serde_json::Value;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_mcp-server-alipay");

/// A scratch directory removed on drop.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "mcp-alipay-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free loopback port (bound then released).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The environment of a local-mode server in `dir`: only what a stdio client would pass.
pub(crate) fn local_env(dir: &Path, port: u16) -> HashMap<String, String> {
    let mut env = HashMap::new();
    env.insert("HOME".into(), dir.display().to_string());
    env.insert("PATH".into(), std::env::var("PATH").unwrap_or_default());
    env.insert("AP_DATA_DIR".into(), dir.join("data").display().to_string());
    env.insert(
        "AP_LOG_FILE".into(),
        dir.join("server.log").display().to_string(),
    );
    env.insert("AP_LOCAL_PORT".into(), port.to_string());
    env
}

/// How a test client answers the server's elicitation requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Elicit {
    /// The client does not offer elicitation.
    Unsupported,
    Accept,
    Decline,
}

/// A client that records resource updates and answers elicitation as told.
#[derive(Clone)]
pub(crate) struct EventClient {
    pub version: ProtocolVersion,
    pub elicit: Elicit,
    pub updates: tokio::sync::mpsc::UnboundedSender<String>,
    pub questions: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ClientHandler for EventClient {
    fn get_info(&self) -> ClientConfig {
        let capabilities = if self.elicit == Elicit::Unsupported {
            ClientCapabilities::default()
        } else {
            ClientCapabilities::builder().enable_elicitation().build()
        };
        ClientConfig::new(
            capabilities,
            Implementation::new("e2e-event-client", "0.1.0"),
        )
        .with_protocol_version(self.version.clone())
    }

    async fn create_elicitation(
        &self,
        request: rmcp::model::ElicitRequestParams,
        _ctx: rmcp::service::RequestContext<RoleClient>,
    ) -> Result<rmcp::model::ElicitResult, rmcp::ErrorData> {
        use rmcp::model::{ElicitRequestParams, ElicitResult, ElicitationAction};
        if let ElicitRequestParams::FormElicitationParams { message, .. } = &request {
            self.questions.lock().unwrap().push(message.clone());
        }
        Ok(match self.elicit {
            Elicit::Accept => ElicitResult::new(ElicitationAction::Accept)
                .with_content(serde_json::json!({ "confirm": true })),
            _ => ElicitResult::new(ElicitationAction::Decline),
        })
    }

    async fn on_resource_updated(
        &self,
        params: rmcp::model::ResourceUpdatedNotificationParam,
        _ctx: rmcp::service::NotificationContext<RoleClient>,
    ) {
        let _ = self.updates.send(params.uri);
    }
}

pub(crate) type EventSession = RunningService<RoleClient, EventClient>;

/// Spawn the server and connect an [`EventClient`]: a legacy handshake, or (2026-07-28) none.
pub(crate) async fn connect_events(
    env: &HashMap<String, String>,
    version: ProtocolVersion,
    elicit: Elicit,
) -> (
    EventSession,
    tokio::sync::mpsc::UnboundedReceiver<String>,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use rmcp::{ClientLifecycleMode, ClientServiceExt as _};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let questions = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let handler = EventClient {
        version: version.clone(),
        elicit,
        updates: tx,
        questions: questions.clone(),
    };
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.env_clear().envs(env);
    let (transport, _stderr) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    let session = if version >= ProtocolVersion::V_2026_07_28 {
        handler
            .serve_with_lifecycle(
                transport,
                ClientLifecycleMode::Discover {
                    preferred_versions: vec![version],
                },
            )
            .await
            .expect("2026-07-28 lifecycle")
    } else {
        handler.serve(transport).await.expect("MCP handshake")
    };
    (session, rx, questions)
}

/// Poll `check` until it is true or `secs` pass.
pub(crate) async fn eventually<F, Fut>(secs: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

#[derive(Clone)]
pub(crate) struct TestClient {
    pub version: ProtocolVersion,
}

impl ClientHandler for TestClient {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("e2e-test-client", "0.1.0"),
        )
        .with_protocol_version(self.version.clone())
    }
}

pub(crate) type Client = RunningService<RoleClient, TestClient>;

/// Spawn the server with exactly `env` and complete the MCP handshake.
pub(crate) async fn connect(env: &HashMap<String, String>) -> Client {
    connect_with(env, ProtocolVersion::V_2025_06_18).await
}

pub(crate) async fn connect_with(
    env: &HashMap<String, String>,
    version: ProtocolVersion,
) -> Client {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.env_clear().envs(env);
    let (transport, _stderr) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn mcp-server-alipay");
    TestClient { version }
        .serve(transport)
        .await
        .expect("MCP handshake")
}

pub(crate) async fn call<H: ClientHandler>(
    client: &RunningService<RoleClient, H>,
    tool: &str,
    args: Value,
) -> CallToolResult {
    let Value::Object(map) = args else {
        panic!("arguments must be an object")
    };
    client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(map))
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

pub(crate) fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn is_error(result: &CallToolResult) -> bool {
    result.is_error == Some(true)
}

pub(crate) fn structured(result: &CallToolResult) -> &Value {
    result
        .structured_content
        .as_ref()
        .expect("structured content")
}

/// Create a web-page order of `amount`, open its link on the gateway and pay it: the gateway.
pub(crate) async fn paid_order<H: ClientHandler>(
    client: &RunningService<RoleClient, H>,
    no: &str,
    amount: &str,
) -> Gateway {
    let created = call(
        client,
        "create-web-page-alipay-payment",
        serde_json::json!({"outTradeNo": no, "totalAmount": amount, "orderTitle": "paid in a test"}),
    )
    .await;
    assert!(!is_error(&created), "{}", text(&created));
    let link = link_of(&created);
    let gateway = Gateway::from_link(&link);
    gateway.open(&link).await;
    gateway.pay(no).await;
    gateway
}

/// The link inside `[点击完成支付](…)`, the way clients of the reference extract it.
pub(crate) fn link_of(result: &CallToolResult) -> String {
    let t = text(result);
    let start = t.find("[点击完成支付](").expect("markdown link") + "[点击完成支付](".len();
    let end = t[start..].find(')').expect("closing parenthesis") + start;
    t[start..end].to_string()
}

/// `http://127.0.0.1:PORT` of the gateway a link points at.
pub(crate) fn gateway_base(link: &str) -> String {
    let end = link.find("/gateway.do").expect("gateway path");
    link[..end].to_string()
}

/// A query parameter of a link, decoded.
pub(crate) fn link_param(link: &str, name: &str) -> Option<String> {
    let query = link.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The embedded gateway's control API.
pub(crate) struct Gateway {
    pub base: String,
    pub app_id: String,
    http: reqwest::Client,
}

impl Gateway {
    /// The gateway at `base` (`http://127.0.0.1:PORT`), for app `app_id`.
    pub(crate) fn new(base: &str, app_id: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            app_id: app_id.to_string(),
            http: reqwest::Client::new(),
        }
    }

    pub(crate) fn from_link(link: &str) -> Self {
        Self {
            base: gateway_base(link),
            app_id: link_param(link, "app_id").expect("app_id"),
            http: reqwest::Client::new(),
        }
    }

    /// Open a link the way a browser does.
    pub(crate) async fn open(&self, link: &str) -> String {
        let response = self.http.get(link).send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        response.text().await.unwrap()
    }

    pub(crate) async fn control(&self, action: &str, out_trade_no: &str) -> reqwest::Response {
        self.http
            .post(format!(
                "{}/__emulator/apps/{}/trades/{out_trade_no}/{action}",
                self.base, self.app_id
            ))
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn pay(&self, out_trade_no: &str) {
        let r = self.control("pay", out_trade_no).await;
        assert!(
            r.status().is_success(),
            "pay {out_trade_no}: {} {}",
            r.status(),
            r.text().await.unwrap()
        );
    }

    pub(crate) async fn trade(&self, out_trade_no: &str) -> Value {
        self.http
            .get(format!(
                "{}/__emulator/apps/{}/trades/{out_trade_no}",
                self.base, self.app_id
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap()
    }

    /// Every request logged by the gateway, oldest first.
    pub(crate) async fn requests(&self) -> Vec<Value> {
        let log: Value = serde_json::from_str(
            &self
                .http
                .get(format!("{}/__emulator/requests", self.base))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        )
        .unwrap();
        log.as_array()
            .or_else(|| log.get("requests").and_then(Value::as_array))
            .cloned()
            .unwrap_or_else(|| panic!("unexpected request log shape: {log}"))
    }

    /// How many requests for `method` reached /gateway.do so far.
    pub(crate) async fn count_method(&self, method: &str) -> usize {
        self.requests()
            .await
            .iter()
            .filter(|r| r["method"] == method)
            .count()
    }

    /// Inject a fault (`POST /__emulator/faults`).
    pub(crate) async fn fault(&self, fault: Value) {
        let r = self
            .http
            .post(format!("{}/__emulator/faults", self.base))
            .header("content-type", "application/json")
            .body(fault.to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "fault {fault}: {}", r.status());
    }

    /// Remove every fault not yet used up (`DELETE /__emulator/faults`).
    pub(crate) async fn clear_faults(&self) {
        let r = self
            .http
            .delete(format!("{}/__emulator/faults", self.base))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "clear faults: {}", r.status());
    }

    /// Faults still armed (`GET /__emulator/faults`).
    pub(crate) async fn faults(&self) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!("{}/__emulator/faults", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap();
        v["faults"].as_array().cloned().unwrap_or_default()
    }

    /// Every order of the app, as the gateway sees it.
    pub(crate) async fn trades(&self) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!(
                "{}/__emulator/apps/{}/trades",
                self.base, self.app_id
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap();
        v["trades"].as_array().cloned().unwrap_or_default()
    }

    /// How many requests reached /gateway.do so far.
    pub(crate) async fn request_count(&self) -> usize {
        let log: Value = self
            .http
            .get(format!("{}/__emulator/requests", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap();
        log.as_array()
            .or_else(|| log.get("requests").and_then(Value::as_array))
            .map(Vec::len)
            .unwrap_or_else(|| panic!("unexpected request log shape: {log}"))
    }
}
