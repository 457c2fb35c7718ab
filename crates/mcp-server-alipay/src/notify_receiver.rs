//! `POST /alipay/notify`: Alipay's asynchronous notifications. A notification changes the ledger
//! only when its signature verifies with `AP_PUB_KEY`, it is for our app, the order is ours and the
//! amount is the order's; then it is deduplicated on `notify_id`, written, and only then answered
//! `success`. Anything else is answered `fail` and changes nothing (Alipay retries a `fail`).

use std::net::SocketAddr;
use std::sync::Arc;

use alipay_openapi::{NotifyError, SignedFields, TradeNotification};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;

use crate::app::App;
use crate::ledger::{NotifyApply, ReceivedNotification};

pub const NOTIFY_PATH: &str = "/alipay/notify";
/// Real notifications are a few KB; anything above this is refused.
const MAX_BODY: usize = 64 * 1024;
/// Bodies up to this size are read to the end before being refused, so the sender gets its `fail`
/// instead of a connection reset in the middle of its upload.
const READ_LIMIT: usize = 2 * 1024 * 1024;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(NOTIFY_PATH, post(receive))
        .layer(DefaultBodyLimit::max(READ_LIMIT))
        .with_state(app)
}

/// Serve until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let addr = listener.local_addr().ok();
    if let Err(e) = axum::serve(listener, router(app))
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
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> impl IntoResponse {
    // An oversized or unreadable body is answered like any other refusal: `fail`.
    let verdict = match &body {
        Ok(body) if body.len() > MAX_BODY => Err((
            format!("body of {} bytes is larger than {MAX_BODY}", body.len()),
            None,
            None,
        )),
        Ok(body) => check(&app, &headers, body).await,
        Err(e) => Err((format!("unreadable body: {e}"), None, None)),
    };
    match verdict {
        Ok((n, NotifyApply::Applied)) => {
            tracing::info!(notify_id = %n.notify_id, out_trade_no = %n.out_trade_no, trade_status = %n.trade_status, "notification accepted");
            let uri = crate::resources::order_uri(&n.out_trade_no);
            let app = app.clone();
            // Tell subscribers after answering; a slow client must not delay Alipay's answer.
            tokio::spawn(async move {
                let sent = app.subscriptions.resource_updated(&uri).await;
                tracing::info!(%uri, subscribers = sent, "resource updated");
            });
            answer(true)
        }
        Ok((n, NotifyApply::Duplicate)) => {
            tracing::info!(notify_id = %n.notify_id, out_trade_no = %n.out_trade_no, "notification repeated; already recorded");
            answer(true)
        }
        Ok((n, refused)) => {
            let reason = match refused {
                NotifyApply::ReusedId => format!(
                    "notify_id {} was already used by a different notification",
                    n.notify_id
                ),
                NotifyApply::Stale(why) => format!("stale: {why}"),
                _ => "refused".to_string(),
            };
            reject(&app, Some(&n.notify_id), Some(&n.out_trade_no), &reason);
            answer(false)
        }
        Err((reason, notify_id, out_trade_no)) => {
            reject(&app, notify_id.as_deref(), out_trade_no.as_deref(), &reason);
            answer(false)
        }
    }
}

fn reject(app: &App, notify_id: Option<&str>, out_trade_no: Option<&str>, reason: &str) {
    tracing::warn!(notify_id, out_trade_no, reason, "notification refused");
    if let Err(e) = app
        .ledger
        .reject_notification(notify_id, out_trade_no, reason)
    {
        tracing::error!(error = %e, "cannot record a refused notification");
    }
}

type Refusal = (String, Option<String>, Option<String>);

async fn check(
    app: &App,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(ReceivedNotification, NotifyApply), Refusal> {
    let plain = |reason: String| (reason, None, None);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return Err(plain(format!(
            "content type {content_type:?} is not application/x-www-form-urlencoded"
        )));
    }
    let fields = SignedFields::from_form(body).map_err(|e| plain(e.to_string()))?;
    let notify_id = fields.get("notify_id").map(str::to_string);
    let out_trade_no = fields.get("out_trade_no").map(str::to_string);
    let refuse = |reason: String| (reason, notify_id.clone(), out_trade_no.clone());
    let key = &app.client.config().alipay_public_key;
    let sign_type = app.client.config().merchant.sign_type;
    // Alipay signs with the algorithm the app is configured for; a weaker one named in the
    // notification itself (legacy SHA1 for an RSA2 app) is not taken.
    if let Some(named) = fields.get("sign_type")
        && named != sign_type.as_str()
    {
        return Err(refuse(format!(
            "sign_type {named:?}, but this app signs with {sign_type} (AP_ENCRYPTION_ALGO)"
        )));
    }
    // What a retry repeats exactly: every field but the signature and the send time (Alipay may
    // stamp each delivery anew).
    let content = alipay_openapi::notify_sign_content(
        fields.iter().filter(|(k, _)| *k != "notify_time"),
        false,
    );
    let n: TradeNotification = fields
        .verify_trade_notification(key, sign_type)
        .map_err(|e| {
            refuse(match e {
                NotifyError::Signature(s) => {
                    format!("signature does not verify with AP_PUB_KEY: {s}")
                }
                other => other.to_string(),
            })
        })?;
    let our_app = &app.client.config().merchant.app_id;
    if &n.app_id != our_app {
        return Err(refuse(format!(
            "app_id {} is not ours ({our_app})",
            n.app_id
        )));
    }
    let order = app
        .ledger
        .order(&n.out_trade_no)
        .map_err(|e| refuse(e.to_string()))?
        .ok_or_else(|| refuse(format!("order {} is not in the ledger", n.out_trade_no)))?;
    if n.total_amount != order.total_amount {
        return Err(refuse(format!(
            "total_amount {} differs from the order's {}",
            n.total_amount, order.total_amount
        )));
    }
    let received = ReceivedNotification {
        notify_id: n.notify_id.clone(),
        out_trade_no: n.out_trade_no.clone(),
        trade_status: n.trade_status.as_str().to_string(),
        trade_no: n.trade_no.clone(),
        refunded: n.refund_fee,
        refund_request_no: n.out_biz_no.clone().filter(|_| n.refund_fee.is_some()),
        content,
    };
    let applied = app
        .ledger
        .apply_notification(&received)
        .map_err(|e| refuse(e.to_string()))?;
    Ok((received, applied))
}

/// The receiver's public URL for a listen address.
pub fn notify_url(addr: SocketAddr) -> String {
    format!("http://{addr}{NOTIFY_PATH}")
}
