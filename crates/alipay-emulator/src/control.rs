//! The control API under `/__emulator/` (JSON in and out), for tests and tools: act as the buyer
//! (scan, pay) or as time (close, finish), read trades, the request log and the keys, and inject
//! faults. Errors are `{"error": "…"}` with 400, 404 or 409.

use std::sync::Arc;

use alipay_openapi::{ApiRequest, TradeQuery};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::faults::FaultSpec;
use crate::shared::{Shared, lock};
use crate::trades::{self, Ctx, TransitionError};

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn unknown_app(app_id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("app {app_id:?} is not registered with this emulator"),
    )
}

/// `GET /__emulator/keys`.
pub(crate) async fn keys(State(shared): State<Arc<Shared>>) -> Response {
    let public = shared.platform_key.public_key();
    Json(json!({
        "alipay_public_key": public.to_spki_base64(),
        "alipay_public_key_pem": public.to_spki_pem(),
    }))
    .into_response()
}

/// `GET /__emulator/apps`.
pub(crate) async fn apps(State(shared): State<Arc<Shared>>) -> Response {
    let mut list: Vec<Value> = shared
        .apps
        .values()
        .map(|a| {
            json!({
                "app_id": a.app_id,
                "seller_id": a.seller_id,
                "app_public_key": a.public_key.to_spki_base64(),
                "sign_type": a.sign_type.map(|t| t.as_str()),
                "disabled_methods": a.disabled_methods,
            })
        })
        .collect();
    list.sort_by(|a, b| a["app_id"].as_str().cmp(&b["app_id"].as_str()));
    Json(json!({ "apps": list })).into_response()
}

/// `GET /__emulator/requests`.
pub(crate) async fn requests(State(shared): State<Arc<Shared>>) -> Response {
    Json(json!({ "requests": lock(&shared.requests).all() })).into_response()
}

/// `DELETE /__emulator/requests`.
pub(crate) async fn clear_requests(State(shared): State<Arc<Shared>>) -> Response {
    lock(&shared.requests).clear();
    Json(json!({ "cleared": true })).into_response()
}

/// `GET /__emulator/faults`.
pub(crate) async fn faults(State(shared): State<Arc<Shared>>) -> Response {
    Json(json!({ "faults": lock(&shared.faults).list() })).into_response()
}

/// `POST /__emulator/faults`.
pub(crate) async fn add_fault(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let spec: FaultSpec = match serde_json::from_slice(&body) {
        Ok(spec) => spec,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "invalid fault: {e} (expected {{\"method\":\"{method}\",\"kind\":\"http_500\",\"times\":1}}; kinds: http_500, http_502, timeout, bad_sign, no_sign, malformed_json, error_response, business, truncated, huge_body, wrong_key, other_order)",
                    method = <TradeQuery as ApiRequest>::METHOD
                ),
            );
        }
    };
    match spec.into_fault() {
        Ok(fault) => {
            if fault.kind == crate::faults::FaultKind::WrongKey {
                // Make the other key now, off the async workers, so the faulted request does not
                // spend its client's timeout on RSA key generation.
                let keys = shared.clone();
                let _ = tokio::task::spawn_blocking(move || keys.wrong_key()).await;
            }
            lock(&shared.faults).add(fault.clone());
            Json(json!({ "fault": fault })).into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// `DELETE /__emulator/faults`.
pub(crate) async fn clear_faults(State(shared): State<Arc<Shared>>) -> Response {
    lock(&shared.faults).clear();
    Json(json!({ "cleared": true })).into_response()
}

/// `GET /__emulator/apps/{app_id}/trades`.
pub(crate) async fn list_trades(
    State(shared): State<Arc<Shared>>,
    Path(app_id): Path<String>,
) -> Response {
    if !shared.apps.contains_key(&app_id) {
        return unknown_app(&app_id);
    }
    let list: Vec<Value> = shared.read(|store| {
        store
            .orders
            .get(&app_id)
            .map(|orders| {
                orders
                    .values()
                    .map(|o| trades::order_view(store, o, &shared.base_url))
                    .collect()
            })
            .unwrap_or_default()
    });
    Json(json!({ "trades": list })).into_response()
}

/// `GET /__emulator/apps/{app_id}/trades/{out_trade_no}`.
pub(crate) async fn trade(
    State(shared): State<Arc<Shared>>,
    Path((app_id, out_trade_no)): Path<(String, String)>,
) -> Response {
    if !shared.apps.contains_key(&app_id) {
        return unknown_app(&app_id);
    }
    view(&shared, &app_id, &out_trade_no)
}

fn view(shared: &Shared, app_id: &str, out_trade_no: &str) -> Response {
    shared.read(|store| match store.order(app_id, out_trade_no) {
        Some(order) => Json(trades::order_view(store, order, &shared.base_url)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no payment link or precreate for order {out_trade_no:?} of app {app_id} was ever seen"),
        ),
    })
}

/// `POST /__emulator/apps/{app_id}/trades/{out_trade_no}/{scan|pay|close|finish}`.
pub(crate) async fn act(
    State(shared): State<Arc<Shared>>,
    Path((app_id, out_trade_no, action)): Path<(String, String, String)>,
) -> Response {
    let Some(app) = shared.apps.get(&app_id) else {
        return unknown_app(&app_id);
    };
    let ctx = Ctx {
        app,
        now: alipay_openapi::time::beijing_now(),
    };
    let result = match action.as_str() {
        "scan" => shared.mutate(|s| trades::scan(s, &ctx, &out_trade_no)),
        "pay" => shared.mutate(|s| trades::pay(s, &ctx, &out_trade_no)),
        "close" => shared.mutate(|s| trades::close_unpaid(s, &ctx, &out_trade_no)),
        "finish" => shared.mutate(|s| trades::finish(s, &ctx, &out_trade_no)),
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!("unknown action {other:?}; use scan, pay, close or finish"),
            );
        }
    };
    match result {
        Ok(()) => view(&shared, &app_id, &out_trade_no),
        Err(TransitionError::NoOrder) => error(
            StatusCode::NOT_FOUND,
            format!(
                "no payment link or precreate for order {out_trade_no:?} of app {app_id} was ever seen"
            ),
        ),
        Err(TransitionError::NotAllowed { status, failure }) => error(
            StatusCode::CONFLICT,
            format!(
                "cannot {action} order {out_trade_no:?}: the trade is {status} ({}: {})",
                failure.sub_code, failure.sub_msg
            ),
        ),
    }
}
