//! The server over Streamable HTTP: the real binary with `serve --http 127.0.0.1:PORT`, and
//! rmcp's HTTP client with a bearer token, in either protocol era.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::ClientHandler;
use rmcp::model::ProtocolVersion;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, ClientServiceExt as _, ServiceExt as _};
use tokio::io::AsyncBufReadExt as _;

use super::{BIN, Client, TestClient, free_port};

/// A server process on a free loopback port, with exactly the environment it was given; killed
/// on drop.
pub(crate) struct HttpServer {
    pub child: tokio::process::Child,
    /// The MCP endpoint, `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl HttpServer {
    /// Start it and wait (20 s at most) until it says it serves.
    pub(crate) async fn spawn(env: &HashMap<String, String>) -> Self {
        let port = free_port();
        let mut child = tokio::process::Command::new(BIN)
            .env_clear()
            .envs(env)
            .args(["serve", "--http", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn mcp-server-alipay serve --http");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[server {port}] {line}");
                let serving = line.contains("serving MCP at http://");
                sink.lock().unwrap().push(line);
                if serving && let Some(tx) = ready.take() {
                    let _ = tx.send(());
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(20), ready_rx)
            .await
            .expect("server did not start within 20 s")
            .expect("server exited before serving");
        let base = format!("http://127.0.0.1:{port}");
        Self {
            child,
            url: format!("{base}/mcp"),
            base,
            stderr,
        }
    }

    /// What it wrote to stderr so far.
    pub(crate) fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Ask it to stop (SIGTERM), as a service manager would.
    pub(crate) fn sigterm(&self) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// `kill -9`, and wait until it is gone.
    pub(crate) async fn kill9(mut self) {
        self.child.start_kill().expect("SIGKILL");
        self.child.wait().await.expect("reaped");
    }
}

/// An rmcp client over HTTP: a legacy handshake (a session), or 2026-07-28 (stateless).
pub(crate) async fn connect_http(url: &str, token: &str, version: ProtocolVersion) -> Client {
    let handler = TestClient {
        version: version.clone(),
    };
    connect_http_as(handler, url, token, version).await
}

/// As [`connect_http`], with the client `handler` (its capabilities, its answers to the server).
pub(crate) async fn connect_http_as<H: ClientHandler>(
    handler: H,
    url: &str,
    token: &str,
    version: ProtocolVersion,
) -> RunningService<RoleClient, H> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.to_string()).auth_header(token),
    );
    if version >= ProtocolVersion::V_2026_07_28 {
        handler
            .serve_with_lifecycle(
                transport,
                ClientLifecycleMode::Discover {
                    preferred_versions: vec![version],
                },
            )
            .await
            .expect("2026-07-28 discover over HTTP")
    } else {
        handler
            .serve(transport)
            .await
            .expect("initialize over HTTP")
    }
}
