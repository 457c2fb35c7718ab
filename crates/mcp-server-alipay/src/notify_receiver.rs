//! `POST /alipay/notify`: Alipay's asynchronous notifications, over HTTP. This file only receives:
//! the body is checked and recorded by `crate::service::notifications`, and the answer is
//! `success` only after the ledger committed it; anything else is `fail` (Alipay retries a
//! `fail`). Subscribers hear of the change from the ledger's change feed (`crate::app`).

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;

use crate::service::Services;
use crate::service::notifications::{self, Received, Refused};

pub const NOTIFY_PATH: &str = "/alipay/notify";
/// Real notifications are a few KB; anything above this is refused.
const MAX_BODY: usize = 64 * 1024;
/// Bodies up to this size are read to the end before being refused, so the sender gets its `fail`
/// instead of a connection reset in the middle of its upload.
const READ_LIMIT: usize = 2 * 1024 * 1024;

pub fn router(services: Services) -> Router {
    Router::new()
        .route(NOTIFY_PATH, post(receive))
        .layer(DefaultBodyLimit::max(READ_LIMIT))
        .with_state(services)
}

/// Serve until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    services: Services,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let addr = listener.local_addr().ok();
    if let Err(e) = axum::serve(listener, router(services))
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(?addr, error = %e, "notify receiver stopped");
    }
}

fn answer(ok: bool) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        if ok { "success" } else { "fail" },
    )
}

async fn receive(
    State(services): State<Services>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> impl IntoResponse {
    // An oversized or unreadable body is answered like any other refusal: `fail`.
    let body = match &body {
        Ok(body) if body.len() > MAX_BODY => Err(format!(
            "body of {} bytes is larger than {MAX_BODY}",
            body.len()
        )),
        Ok(body) => Ok(body),
        Err(e) => Err(format!("unreadable body: {e}")),
    };
    let body = match body {
        Ok(body) => body,
        Err(reason) => {
            notifications::refuse(&services, &Refused::plain(reason)).await;
            return answer(false);
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match notifications::receive(&services, content_type, body).await {
        Received::Taken {
            notification: n,
            applied,
        } => {
            if applied {
                tracing::info!(notify_id = %n.notify_id, out_trade_no = %n.out_trade_no, trade_status = %n.trade_status, "notification accepted");
            } else {
                tracing::info!(notify_id = %n.notify_id, out_trade_no = %n.out_trade_no, "notification repeated; already recorded");
            }
            answer(true)
        }
        Received::Refused(_) => answer(false),
    }
}

/// The receiver's public URL for a listen address.
pub fn notify_url(addr: SocketAddr) -> String {
    format!("http://{addr}{NOTIFY_PATH}")
}
