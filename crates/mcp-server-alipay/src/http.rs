//! Streamable HTTP transport: `serve --http ADDR` (or `AP_HTTP_LISTEN`) serves MCP at `/mcp` with
//! rmcp's `StreamableHttpService` on axum, stateless 2026-07-28 clients and session-based
//! 2025-03-26…2025-11-25 clients on the same endpoint, and `GET /healthz` for load balancers.
//!
//! In front of MCP, in this order: the `Origin` check (DNS-rebinding defence; browsers only),
//! the bearer token (constant-time, never optional), a slot among `AP_HTTP_MAX_CONCURRENT`, and
//! `AP_HTTP_TIMEOUT_MS` until the answer starts. rmcp itself checks `Host` and the body size.
//! Below them, per connection (`connections`): `AP_HTTP_HEADER_TIMEOUT_MS`,
//! `AP_HTTP_IDLE_TIMEOUT_MS` and `AP_HTTP_MAX_CONNECTIONS`, against clients that hold connections
//! open without sending a request.
//! SIGTERM/SIGINT stops accepting, lets the calls in flight finish and answer, then ends the
//! sessions and streams, then the app.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::config::{Config, HttpSettings, normalize_origin};
use crate::mcp::{AlipayMcp, Served};

mod connections;

/// Run the server over HTTP until SIGTERM/SIGINT. Binds before anything else starts, so a taken
/// port is one line on stderr and nothing half-started.
pub async fn run(config: Config, addr: SocketAddr) -> ExitCode {
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "mcp-server-alipay: AP_HTTP_LISTEN (serve --http): cannot listen on {addr}: {e}"
            );
            return ExitCode::FAILURE;
        }
    };
    let local_addr = listener.local_addr().unwrap_or(addr);
    let settings = config.http.clone();
    let token = match &settings.token {
        Some(t) => t.expose().to_string(),
        None => {
            let t = format!(
                "{:032x}{:032x}",
                rand::random::<u128>(),
                rand::random::<u128>()
            );
            // Once, on stderr only (never the log file).
            eprintln!(
                "mcp-server-alipay: AP_HTTP_TOKEN is not set; clients must send `Authorization: Bearer <token>` with this token, generated for this run only: {t}"
            );
            t
        }
    };
    let hosts = allowed_hosts(&settings, local_addr);
    if hosts
        .as_ref()
        .is_some_and(|h| h.len() == LOOPBACK_HOSTS.len())
        && !local_addr.ip().is_loopback()
    {
        eprintln!(
            "mcp-server-alipay: listening on {local_addr} but only loopback Host names are accepted; set AP_HTTP_ALLOWED_HOSTS to the name clients use (e.g. mcp.example.com), or * behind a proxy that checks Host"
        );
    }

    let app = match App::start(config, crate::app::ApprovalMount::Http(local_addr)).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("mcp-server-alipay: {e}");
            return ExitCode::FAILURE;
        }
    };

    let sessions_stop = CancellationToken::new();
    let gate = Arc::new(Gate::new(&settings, &token, local_addr, app.clone()));
    let router = router(app.clone(), &settings, hosts, gate.clone(), &sessions_stop);

    let accepting_stop = CancellationToken::new();
    let limits = connections::Limits {
        header_timeout: settings.header_timeout,
        idle_timeout: settings.idle_timeout,
        max_connections: settings
            .max_connections
            .unwrap_or_else(connections::default_max_connections),
    };
    if let Some(files) = connections::open_file_limit()
        && limits.max_connections + FDS_BESIDES_CONNECTIONS > files
    {
        eprintln!(
            "mcp-server-alipay: AP_HTTP_MAX_CONNECTIONS={} leaves fewer than {FDS_BESIDES_CONNECTIONS} of the {files} open files allowed (ulimit -n) for the ledger, the log and calls to Alipay; raise ulimit -n or lower AP_HTTP_MAX_CONNECTIONS",
            limits.max_connections
        );
    }
    let server = tokio::spawn(connections::serve(
        listener,
        router,
        limits,
        accepting_stop.clone(),
    ));
    tracing::info!(
        env = app.config.env.as_str(),
        tools = app.config.tools.len(),
        addr = %local_addr,
        "serving MCP over Streamable HTTP"
    );
    eprintln!(
        "mcp-server-alipay: serving MCP at http://{local_addr}/mcp (Streamable HTTP, bearer token required; GET /healthz)"
    );

    crate::terminated().await;
    let in_flight = gate.calls_in_flight();
    tracing::info!(
        in_flight,
        "shutting down: no new connections; finishing calls in flight"
    );
    accepting_stop.cancel();
    // Let every call in flight answer (bounded by the request timeout), then end the sessions
    // and the long-lived streams, which would otherwise hold the graceful shutdown open.
    let deadline = tokio::time::Instant::now() + settings.timeout;
    while gate.calls_in_flight() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if gate.calls_in_flight() > 0 {
        tracing::warn!(
            in_flight = gate.calls_in_flight(),
            "shutdown: calls still in flight after AP_HTTP_TIMEOUT_MS; ending them"
        );
    }
    sessions_stop.cancel();
    if tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .is_err()
    {
        tracing::warn!("shutdown: connections still open after 5 s; closing them");
    }
    app.shutdown().await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Descriptors the process needs besides its HTTP connections: the ledger, the log, the listeners,
/// pooled connections to Alipay, PostgreSQL and the delivery targets.
const FDS_BESIDES_CONNECTIONS: usize = 64;

/// The names every loopback-bound server answers to.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// rmcp's `Host` allow-list: loopback names, the listen address when it is a specific IP, and
/// `AP_HTTP_ALLOWED_HOSTS`; `None` (from `*`) accepts any `Host`.
fn allowed_hosts(settings: &HttpSettings, addr: SocketAddr) -> Option<Vec<String>> {
    let mut hosts: Vec<String> = LOOPBACK_HOSTS.iter().map(|h| h.to_string()).collect();
    match &settings.allowed_hosts {
        Some(list) if list.is_empty() => return None,
        Some(list) => hosts.extend(list.iter().cloned()),
        None => {}
    }
    let ip = addr.ip();
    if !ip.is_unspecified() && !ip.is_loopback() {
        hosts.push(match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        });
    }
    Some(hosts)
}

/// The origins of a page served by this very server on loopback (`http://localhost:PORT`, …):
/// not a foreign site, so not a DNS-rebinding attempt. Only when the server listens on loopback
/// (or every address, loopback included).
fn own_origins(addr: SocketAddr) -> Vec<String> {
    let ip = addr.ip();
    if !ip.is_loopback() && !ip.is_unspecified() {
        return Vec::new();
    }
    let port = addr.port();
    ["localhost", "127.0.0.1", "[::1]"]
        .iter()
        .filter_map(|host| normalize_origin(&format!("http://{host}:{port}")))
        .collect()
}

fn router(
    app: Arc<App>,
    settings: &HttpSettings,
    hosts: Option<Vec<String>>,
    gate: Arc<Gate>,
    sessions_stop: &CancellationToken,
) -> axum::Router {
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(true)
        // A stateless (2026-07-28) request whose first message is its answer gets it as plain
        // JSON, not a one-event SSE stream; anything that streams (listen, progress) stays SSE.
        .with_json_response(true)
        .with_max_request_body_bytes(settings.max_body_bytes)
        .with_sse_keep_alive(Some(Duration::from_secs(15)))
        .with_cancellation_token(sessions_stop.child_token());
    config = match hosts {
        Some(hosts) => config.with_allowed_hosts(hosts),
        None => config.disable_allowed_hosts(),
    };
    let served = Served::ready(app.clone());
    let mcp: StreamableHttpService<AlipayMcp, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(AlipayMcp::new(served.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let approvals = app
        .services
        .approvals
        .is_some()
        .then(|| crate::approval_page::router(app.services.clone()));
    let router = axum::Router::new()
        .route_service("/mcp", mcp)
        .layer(axum::middleware::from_fn_with_state(gate, guard));
    // The approval pages need no bearer token: their link is the capability.
    let router = match approvals {
        Some(pages) => router.merge(pages),
        None => router,
    };
    router.route(
        "/healthz",
        axum::routing::get(move || {
            let env = app.config.env.as_str();
            async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    format!(
                        r#"{{"status":"ok","version":"{}","env":"{env}"}}"#,
                        env!("CARGO_PKG_VERSION")
                    ),
                )
            }
        }),
    )
}

/// What every `/mcp` request passes before rmcp sees it.
struct Gate {
    token_digest: [u8; 32],
    /// `AP_HTTP_ALLOWED_ORIGINS`, and the server's own loopback origins.
    origins: Vec<String>,
    slots: Arc<Semaphore>,
    timeout: Duration,
    max_body_bytes: usize,
    /// POST requests whose answer has not ended yet (GET streams are not counted).
    posts: Arc<AtomicUsize>,
    app: Arc<App>,
}

impl Gate {
    fn new(settings: &HttpSettings, token: &str, addr: SocketAddr, app: Arc<App>) -> Self {
        let mut origins = settings.allowed_origins.clone();
        origins.extend(own_origins(addr));
        Self {
            token_digest: Sha256::digest(token.as_bytes()).into(),
            origins,
            slots: Arc::new(Semaphore::new(settings.max_concurrent)),
            timeout: settings.timeout,
            max_body_bytes: settings.max_body_bytes,
            posts: Arc::new(AtomicUsize::new(0)),
            app,
        }
    }

    /// `Authorization: Bearer <token>`, compared in constant time over SHA-256 digests (equal
    /// lengths whatever was sent, so neither the token nor its length leaks through timing).
    fn authorized(&self, request: &Request) -> bool {
        let Some(value) = request.headers().get(header::AUTHORIZATION) else {
            return false;
        };
        let value = value.as_bytes();
        let Some(scheme) = value.get(..7) else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case(b"bearer ") {
            return false;
        }
        let presented: [u8; 32] = Sha256::digest(value[7..].trim_ascii()).into();
        bool::from(presented.ct_eq(&self.token_digest))
    }

    fn origin_allowed(&self, origin: &HeaderValue) -> bool {
        origin
            .to_str()
            .ok()
            .and_then(normalize_origin)
            .is_some_and(|o| self.origins.contains(&o))
    }

    /// Calls still to be answered: POSTs in flight, less the `subscriptions/listen` streams (a POST
    /// each, open until the client or the shutdown ends them).
    fn calls_in_flight(&self) -> usize {
        self.posts
            .load(Ordering::SeqCst)
            .saturating_sub(self.app.listen_streams())
    }
}

fn refuse(status: StatusCode, message: &'static str) -> Response {
    let mut response = (status, message).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer realm="mcp-server-alipay""#),
        );
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

async fn guard(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    if let Some(origin) = request.headers().get(header::ORIGIN)
        && !gate.origin_allowed(origin)
    {
        tracing::warn!(origin = ?origin, "HTTP: refused a browser Origin not in AP_HTTP_ALLOWED_ORIGINS");
        return refuse(
            StatusCode::FORBIDDEN,
            "Forbidden: Origin not allowed (AP_HTTP_ALLOWED_ORIGINS)",
        );
    }
    if !gate.authorized(&request) {
        tracing::info!(
            presented = request.headers().contains_key(header::AUTHORIZATION),
            "HTTP: refused a request without the bearer token"
        );
        return refuse(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: send Authorization: Bearer <AP_HTTP_TOKEN>",
        );
    }
    let deadline = tokio::time::Instant::now() + gate.timeout;
    let Ok(Ok(permit)) =
        tokio::time::timeout_at(deadline, gate.slots.clone().acquire_owned()).await
    else {
        tracing::warn!("HTTP: every AP_HTTP_MAX_CONCURRENT slot busy until the timeout");
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable: too many requests in flight (AP_HTTP_MAX_CONCURRENT)",
        );
    };
    let in_flight = (request.method() == Method::POST).then(|| InFlight::enter(&gate.posts));
    // A wait for a payment answers when the buyer pays, up to its own timeout: AP_HTTP_TIMEOUT_MS
    // must not cut it. The body is read here (bounded, as rmcp would) to see which call it is.
    let (request, deadline) = if request.method() == Method::POST {
        let (parts, body) = request.into_parts();
        let read = axum::body::to_bytes(body, gate.max_body_bytes);
        let bytes = match tokio::time::timeout_at(deadline, read).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(_)) => {
                return refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Payload Too Large: the body is over AP_HTTP_MAX_BODY_BYTES",
                );
            }
            Err(_) => {
                return refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service Unavailable: the request body did not arrive within AP_HTTP_TIMEOUT_MS",
                );
            }
        };
        let deadline = if waits_for_payment(&bytes) {
            deadline.max(tokio::time::Instant::now() + WAIT_DEADLINE)
        } else {
            deadline
        };
        (Request::from_parts(parts, Body::from(bytes)), deadline)
    } else {
        (request, deadline)
    };
    match tokio::time::timeout_at(deadline, next.run(request)).await {
        // A POST keeps its slot until its answer (often an SSE stream) has ended; a GET stream
        // is long-lived by design and gives its slot back as soon as it starts.
        Ok(response) => match in_flight {
            Some(in_flight) => response.map(|body| HeldUntilEnd::wrap(body, (permit, in_flight))),
            None => response,
        },
        Err(_) => {
            tracing::warn!(timeout = ?gate.timeout, "HTTP: request not answered within AP_HTTP_TIMEOUT_MS");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable: not answered within AP_HTTP_TIMEOUT_MS",
            )
        }
    }
}

/// The longest a `wait-for-alipay-payment` call may take: its largest `timeoutSeconds`, plus the
/// last query and the answer.
const WAIT_DEADLINE: Duration = Duration::from_secs(crate::tools::wait::MAX_TIMEOUT_SECONDS + 15);

/// Whether a request body is a `tools/call` of `wait-for-alipay-payment`.
fn waits_for_payment(body: &[u8]) -> bool {
    let name = crate::tools::wait::DEF.name.as_bytes();
    // Most calls are not waits: a substring search (memchr's, not a byte-by-byte window scan)
    // turns them away before any JSON is parsed.
    if memchr::memmem::find(body, name).is_none() {
        return false;
    }
    #[derive(serde::Deserialize)]
    struct Call {
        method: Option<String>,
        params: Option<Params>,
    }
    #[derive(serde::Deserialize)]
    struct Params {
        name: Option<String>,
    }
    serde_json::from_slice::<Call>(body).is_ok_and(|c| {
        c.method.as_deref() == Some("tools/call")
            && c.params.and_then(|p| p.name).as_deref() == Some(crate::tools::wait::DEF.name)
    })
}

/// One POST in flight; counted down when dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that holds `guard` (a concurrency slot, an in-flight count) until its last
/// frame, an error, or its drop (when the client goes away).
struct HeldUntilEnd<G> {
    body: Body,
    guard: Option<G>,
}

impl<G> HeldUntilEnd<G> {
    fn wrap(body: Body, guard: G) -> Body
    where
        G: Send + Unpin + 'static,
    {
        Body::new(Self {
            body,
            guard: Some(guard),
        })
    }
}

impl<G: Unpin> http_body::Body for HeldUntilEnd<G> {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.guard = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_call_of_the_wait_tool_waits_longer() {
        let call = |method: &str, name: &str| {
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"name": name, "arguments": {"outTradeNo": "A"}}})
                .to_string()
        };
        assert!(waits_for_payment(
            call("tools/call", "wait-for-alipay-payment").as_bytes()
        ));
        assert!(!waits_for_payment(
            call("tools/call", "query-alipay-payment").as_bytes()
        ));
        assert!(!waits_for_payment(
            call("resources/read", "wait-for-alipay-payment").as_bytes()
        ));
        assert!(!waits_for_payment(b"wait-for-alipay-payment {not json"));
    }

    #[test]
    fn host_allow_list() {
        let s = HttpSettings::default();
        let loopback = allowed_hosts(&s, "127.0.0.1:8080".parse().unwrap()).unwrap();
        assert_eq!(loopback, ["localhost", "127.0.0.1", "::1"]);
        let lan = allowed_hosts(&s, "10.0.0.5:8080".parse().unwrap()).unwrap();
        assert!(lan.contains(&"10.0.0.5".to_string()));
        let v6 = allowed_hosts(&s, "[fd00::5]:8080".parse().unwrap()).unwrap();
        assert!(v6.contains(&"[fd00::5]".to_string()));
        let any = allowed_hosts(&s, "0.0.0.0:8080".parse().unwrap()).unwrap();
        assert_eq!(any.len(), 3, "only loopback names unless configured");
        let named = HttpSettings {
            allowed_hosts: Some(vec!["mcp.example.com".into()]),
            ..HttpSettings::default()
        };
        assert!(
            allowed_hosts(&named, "0.0.0.0:8080".parse().unwrap())
                .unwrap()
                .contains(&"mcp.example.com".to_string())
        );
        let own = own_origins("127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            own,
            [
                "http://localhost:8080",
                "http://127.0.0.1:8080",
                "http://[::1]:8080"
            ]
        );
        assert_eq!(
            own_origins("0.0.0.0:80".parse().unwrap())[0],
            "http://localhost"
        );
        assert!(own_origins("10.0.0.5:8080".parse().unwrap()).is_empty());
        let star = HttpSettings {
            allowed_hosts: Some(vec![]),
            ..HttpSettings::default()
        };
        assert_eq!(allowed_hosts(&star, "0.0.0.0:8080".parse().unwrap()), None);
    }
}
