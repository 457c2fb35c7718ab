//! The gateway answering a client in the same process: an `alipay_openapi::Transport` that hands
//! the request to the emulator's own routes, so it is checked, executed, logged and (with a fault)
//! broken exactly as one that came over HTTP, without a socket, a second HTTP parse or a thread
//! hand-off. A process that embeds the emulator uses it for its own calls; browsers, notifications
//! and other processes still use the HTTP server.

use std::future::poll_fn;
use std::pin::Pin;

use alipay_openapi::Error;
use alipay_openapi::transport::{PostFuture, Transport, utf8_body};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body::Body as _;
use tower::ServiceExt as _;

/// See the module docs; from [`crate::RunningEmulator::in_process`].
#[derive(Clone)]
pub struct InProcessGateway {
    routes: Router,
    /// `http://127.0.0.1:PORT`: the URLs this gateway answers for start with it.
    base_url: String,
}

impl std::fmt::Debug for InProcessGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessGateway")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl InProcessGateway {
    pub(crate) fn new(routes: Router, base_url: String) -> Self {
        Self { routes, base_url }
    }

    async fn send(&self, url: &str, form: String, max_bytes: usize) -> Result<String, Error> {
        // The URL carries the request's `sign`: only the expected prefix is ever named.
        let path = url
            .strip_prefix(self.base_url.as_str())
            .filter(|rest| rest.starts_with('/'))
            .ok_or_else(|| {
                Error::Connect(format!(
                    "the in-process gateway answers only for {}",
                    self.base_url
                ))
            })?;
        let request = Request::post(path)
            .header(
                header::CONTENT_TYPE,
                "application/x-www-form-urlencoded;charset=utf-8",
            )
            .header(header::ACCEPT, "application/json")
            .body(Body::from(form))
            .map_err(|_| Error::Transport("the request URL is not a valid path".into()))?;
        // Run to the end even if the caller stops waiting (its timeout), as a server does with a
        // request it received: what the gateway did stays done, and is logged.
        let routes = self.routes.clone();
        let response = tokio::spawn(routes.oneshot(request))
            .await
            .map_err(|e| Error::Transport(format!("the in-process gateway failed: {e}")))?
            .unwrap_or_else(|never| match never {});
        if response.status() != StatusCode::OK {
            return Err(Error::HttpStatus(response.status().as_u16()));
        }
        let mut body = response.into_body();
        if body.size_hint().lower() > max_bytes as u64 {
            return Err(Error::TooLarge(max_bytes));
        }
        let mut bytes = Vec::new();
        while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            let frame =
                frame.map_err(|e| Error::Transport(format!("the answer broke off: {e}")))?;
            if let Ok(data) = frame.into_data() {
                if bytes.len() + data.len() > max_bytes {
                    return Err(Error::TooLarge(max_bytes));
                }
                bytes.extend_from_slice(&data);
            }
        }
        utf8_body(bytes)
    }
}

impl Transport for InProcessGateway {
    fn post<'a>(&'a self, url: &'a str, form: String, max_bytes: usize) -> PostFuture<'a> {
        Box::pin(self.send(url, form, max_bytes))
    }
}
