//! The control API under `/__emulator/` (JSON in and out), for tests and tools: act as the buyer
//! (scan, pay) or as time (close, finish, or move the clock), read trades, the request log and
//! the keys, and inject faults. Errors are `{"error": "…"}` with 400, 404 or 409. Reading or
//! acting on trades applies expiry first, like any other touch.

use std::sync::Arc;

use alipay_openapi::{ApiRequest, TradeQuery};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::expiry;
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

/// The clock as `GET`/`POST /__emulator/clock` answer it.
fn clock_view(shared: &Shared) -> Response {
    Json(json!({
        "now": alipay_openapi::time::format_timestamp(&shared.clock.now()),
        "offset_seconds": shared.clock.offset_seconds(),
    }))
    .into_response()
}

/// `GET /__emulator/clock`.
pub(crate) async fn clock(State(shared): State<Arc<Shared>>) -> Response {
    clock_view(&shared)
}

/// The body of `POST /__emulator/clock`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockMove {
    advance_seconds: u64,
}

/// `POST /__emulator/clock` `{"advance_seconds": N}`: time passes N seconds at once. The offset
/// is saved with the state (under the store lock, so concurrent moves add up and persist in
/// order); then expiries up to the new now are applied, and the notifier (woken by the save)
/// sends the retries that came due.
pub(crate) async fn move_clock(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    // An object only: serde would also read a struct from an array (`[60]`).
    let parsed = serde_json::from_slice::<Value>(&body).and_then(|v| match v {
        Value::Object(_) => serde_json::from_value::<ClockMove>(v),
        other => Err(serde::de::Error::custom(format!(
            "expected a JSON object, got {other}"
        ))),
    });
    let request = match parsed {
        Ok(request) => request,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "invalid clock move: {e}; expected {{\"advance_seconds\": N}} with N a whole number of seconds, 0 or more"
                ),
            );
        }
    };
    let moved = shared.mutate(|store| {
        let offset = shared.clock.advance(request.advance_seconds)?;
        store.clock_offset_seconds = offset;
        Ok::<_, crate::clock::TooFar>(offset)
    });
    if let Err(e) = moved {
        return error(StatusCode::BAD_REQUEST, e.to_string());
    }
    expiry::catch_up(&shared, &shared.clock.now());
    clock_view(&shared)
}

/// `GET /__emulator/apps/{app_id}/trades`.
pub(crate) async fn list_trades(
    State(shared): State<Arc<Shared>>,
    Path(app_id): Path<String>,
) -> Response {
    if !shared.apps.contains_key(&app_id) {
        return unknown_app(&app_id);
    }
    expiry::catch_up(&shared, &shared.clock.now());
    let list: Vec<Value> = shared.read(|store| {
        store
            .orders_of(&app_id)
            .map(|o| trades::order_view(store, o, &shared.base_url))
            .collect()
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
    expiry::catch_up(&shared, &shared.clock.now());
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
        now: shared.clock.now(),
    };
    expiry::catch_up(&shared, &ctx.now);
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
