//! The HTTP server under slow clients: the real binary with `serve --http` in local mode and short
//! limits. Connections that never finish their request head are closed after
//! `AP_HTTP_HEADER_TIMEOUT_MS` while real MCP calls are served; a kept-alive connection with nothing
//! in flight is closed after `AP_HTTP_IDLE_TIMEOUT_MS`, but a call or a stream that lasts longer is
//! not; beyond `AP_HTTP_MAX_CONNECTIONS` the oldest connections with nothing in flight make room
//! for a new one, and one with a call in flight is not cut; a SIGTERM with slow connections open still exits at once. Only behaviour is asserted: "closed"
//! within generous bounds, never how fast.

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use rmcp::model::ProtocolVersion;
use rmcp::service::{RoleClient, RunningService};
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const TOKEN: &str = "slow-clients-token-0123456789abcdef";

/// Half a request head: a request line and a header, never the blank line that ends it.
const HALF_HEAD: &[u8] =
    b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Slow: ";

struct Server {
    child: tokio::process::Child,
    addr: String,
    _dir: TempDir,
}

impl Server {
    async fn start(tag: &str, extra: &[(&str, &str)]) -> Self {
        let dir = TempDir::new(tag);
        let mut env: HashMap<String, String> = local_env(dir.path(), free_port());
        env.insert(
            "AP_NOTIFY_LISTEN".into(),
            format!("127.0.0.1:{}", free_port()),
        );
        env.insert("AP_HTTP_TOKEN".into(), TOKEN.into());
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        let addr = format!("127.0.0.1:{}", free_port());
        let mut child = tokio::process::Command::new(BIN)
            .env_clear()
            .envs(&env)
            .args(["serve", "--http", &addr])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn mcp-server-alipay serve --http");
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
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
            child,
            addr,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    fn sigterm(&self) {
        let pid = self.child.id().expect("running").to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
    }
}

type HttpClient = RunningService<RoleClient, TestClient>;

async fn connect_http(url: &str, version: ProtocolVersion) -> HttpClient {
    http::connect_http(url, TOKEN, version).await
}

/// Wait (up to `within`) for the server to close `tcp`: EOF or a reset. `false` if still open.
async fn closed_by_server(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // an answer (there should be none); keep reading to the end
        }
    }
}

/// `GET /healthz` on `tcp`, kept alive; the status line of the answer, read to its end.
async fn healthz(tcp: &mut TcpStream) -> String {
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(n > 0, "closed before answering");
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("content-length");
            if body.len() >= length {
                return head.lines().next().unwrap().to_string();
            }
        }
    }
}

#[tokio::test]
async fn half_headers_are_closed_while_real_calls_are_served() {
    let server = Server::start("slow-heads", &[("AP_HTTP_HEADER_TIMEOUT_MS", "1000")]).await;
    const SLOW: usize = 300;
    let opened = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        let mut tcp = TcpStream::connect(&server.addr).await.unwrap();
        tcp.write_all(HALF_HEAD).await.unwrap();
        slow.push(tcp);
    }
    // A few trickle their head a byte at a time: the deadline counts from the accept, so
    // trickling does not extend it.
    let trickling: Vec<_> = (0..5)
        .map(|_| {
            let addr = server.addr.clone();
            tokio::spawn(async move {
                let mut tcp = TcpStream::connect(&addr).await.unwrap();
                let started = Instant::now();
                for byte in HALF_HEAD.iter().cycle() {
                    if tcp.write_all(&[*byte]).await.is_err() {
                        break;
                    }
                    if started.elapsed() > Duration::from_secs(20) {
                        panic!("a trickling head was kept open for 20 s");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                started.elapsed()
            })
        })
        .collect();

    // Meanwhile, real MCP calls are served: a 2026-07-28 client lists the tools and makes a
    // payment link, a session client too.
    let modern = connect_http(&server.url(), ProtocolVersion::V_2026_07_28).await;
    let legacy = connect_http(&server.url(), ProtocolVersion::V_2025_06_18).await;
    for (client, no) in [(&modern, "SLOW_HEADS_1"), (&legacy, "SLOW_HEADS_2")] {
        assert_eq!(client.list_all_tools().await.unwrap().len(), 11);
        let created = call(
            client,
            "create-mobile-alipay-payment",
            json!({"outTradeNo": no, "totalAmount": "1.00", "orderTitle": "slow clients"}),
        )
        .await;
        assert!(!is_error(&created), "{}", text(&created));
    }

    // Every half head is closed by the server: not before the header timeout, and eventually.
    for (i, tcp) in slow.iter_mut().enumerate() {
        assert!(
            closed_by_server(tcp, Duration::from_secs(30)).await,
            "slow connection {i} still open after 30 s"
        );
    }
    assert!(opened.elapsed() >= Duration::from_millis(900));
    for t in trickling {
        let lasted = t.await.unwrap();
        assert!(lasted >= Duration::from_millis(900), "{lasted:?}");
    }
    // And the real clients still work afterwards.
    assert_eq!(modern.list_all_tools().await.unwrap().len(), 11);
    modern.cancel().await.unwrap();
    legacy.cancel().await.unwrap();
}

#[tokio::test]
async fn an_idle_connection_is_closed_but_a_long_call_or_stream_is_not() {
    let server = Server::start(
        "slow-idle",
        &[
            ("AP_HTTP_HEADER_TIMEOUT_MS", "1000"),
            ("AP_HTTP_IDLE_TIMEOUT_MS", "1000"),
        ],
    )
    .await;

    // Kept alive: a second request soon after the first is served on the same connection; then
    // with nothing in flight the server closes it, not before the idle timeout.
    let mut tcp = TcpStream::connect(&server.addr).await.unwrap();
    assert_eq!(healthz(&mut tcp).await, "HTTP/1.1 200 OK");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(healthz(&mut tcp).await, "HTTP/1.1 200 OK");
    let idle_from = Instant::now();
    assert!(
        closed_by_server(&mut tcp, Duration::from_secs(30)).await,
        "an idle keep-alive connection still open after 30 s"
    );
    assert!(idle_from.elapsed() >= Duration::from_millis(900));

    // A session's GET stream (SSE) stays open well past the idle timeout: it is a request in
    // flight.
    let http = reqwest::Client::new();
    let init = http
        .post(server.url())
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
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    drop(init.text().await);
    let initialized = http
        .post(server.url())
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .body(json!({"jsonrpc":"2.0","method":"notifications/initialized"}).to_string())
        .send()
        .await
        .unwrap();
    assert!(
        initialized.status().is_success(),
        "{}",
        initialized.status()
    );
    let mut stream = http
        .get(server.url())
        .bearer_auth(TOKEN)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let open_until = tokio::time::Instant::now() + Duration::from_millis(3000);
    loop {
        match tokio::time::timeout_at(open_until, stream.chunk()).await {
            Err(_) => break, // still open after 3 idle timeouts
            Ok(Ok(Some(_))) => continue,
            Ok(other) => panic!("the SSE stream ended: {other:?}"),
        }
    }

    // A call that answers after three idle timeouts (a wait for a payment that does not come)
    // gets its answer.
    let client = connect_http(&server.url(), ProtocolVersion::V_2026_07_28).await;
    let created = call(
        &client,
        "create-mobile-alipay-payment",
        json!({"outTradeNo": "SLOW_WAIT_1", "totalAmount": "1.00", "orderTitle": "slow clients"}),
    )
    .await;
    assert!(!is_error(&created), "{}", text(&created));
    let started = Instant::now();
    let waited = call(
        &client,
        "wait-for-alipay-payment",
        json!({"outTradeNo": "SLOW_WAIT_1", "timeoutSeconds": 3}),
    )
    .await;
    assert!(!is_error(&waited), "{}", text(&waited));
    assert_eq!(structured(&waited)["state"], "waiting", "{}", text(&waited));
    assert!(started.elapsed() >= Duration::from_millis(2900));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn beyond_the_cap_the_oldest_connections_with_nothing_in_flight_make_room() {
    // A header timeout far longer than the test: only the cap can close a silent connection.
    let server = Server::start(
        "slow-cap",
        &[
            ("AP_HTTP_HEADER_TIMEOUT_MS", "60000"),
            ("AP_HTTP_MAX_CONNECTIONS", "3"),
        ],
    )
    .await;
    let client = connect_http(&server.url(), ProtocolVersion::V_2026_07_28).await;
    let created = call(
        &client,
        "create-mobile-alipay-payment",
        json!({"outTradeNo": "SLOW_CAP_1", "totalAmount": "1.00", "orderTitle": "slow clients"}),
    )
    .await;
    assert!(!is_error(&created), "{}", text(&created));
    // One connection with a call in flight for 3 s, two that send nothing: every slot taken.
    let waiting = tokio::spawn(async move {
        let waited = call(
            &client,
            "wait-for-alipay-payment",
            json!({"outTradeNo": "SLOW_CAP_1", "timeoutSeconds": 3}),
        )
        .await;
        (waited, client)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(TcpStream::connect(&server.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A fourth is served: the silent ones are closed to make room, long before their header
    // timeout; the call in flight is not cut.
    let mut fourth = TcpStream::connect(&server.addr).await.unwrap();
    assert_eq!(healthz(&mut fourth).await, "HTTP/1.1 200 OK");
    assert!(
        closed_by_server(&mut silent[0], Duration::from_secs(10)).await,
        "the oldest silent connection was not closed to make room"
    );
    let (waited, client) = waiting.await.unwrap();
    assert!(!is_error(&waited), "{}", text(&waited));
    assert_eq!(structured(&waited)["state"], "waiting", "{}", text(&waited));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn sigterm_with_slow_connections_open_exits_at_once() {
    let mut server = Server::start("slow-term", &[]).await;
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut tcp = TcpStream::connect(&server.addr).await.unwrap();
        tcp.write_all(HALF_HEAD).await.unwrap();
        slow.push(tcp);
    }
    let mut idle = TcpStream::connect(&server.addr).await.unwrap();
    assert_eq!(healthz(&mut idle).await, "HTTP/1.1 200 OK");
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.sigterm();
    // Well within the default 10 s header timeout: nothing in flight, so nothing to wait for.
    let status = tokio::time::timeout(Duration::from_secs(8), server.child.wait())
        .await
        .expect("exits before the header timeout would have closed the slow connections")
        .unwrap();
    assert!(status.success(), "{status:?}");
    for tcp in slow.iter_mut().chain([&mut idle]) {
        assert!(closed_by_server(tcp, Duration::from_secs(5)).await);
    }
}
