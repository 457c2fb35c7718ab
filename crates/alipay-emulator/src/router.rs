//! `GET|POST /gateway.do`: merge the query string and the form body, run the common checks, then
//! answer a JSON API (signed JSON, maybe faulted) or a page API (the cashier, or Alipay's error
//! page). Every hit is recorded in the request log.
//!
//! `GET /bill/{token}`: the zip behind a `bill_download_url`, once, within 30 s of its issue.

use std::sync::Arc;

use alipay_openapi::{GatewayRequest, SignType, gateway};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use serde_json::Value;

use crate::answer::Fields;
use crate::checkout;
use crate::checks::{self, PAGE_METHODS};
use crate::codes::Failure;
use crate::faults::{self, AnswerParts};
use crate::requests::RequestRecord;
use crate::shared::{Shared, lock};
use crate::{api, ids};

/// The `/gateway.do` handler.
pub(crate) async fn gateway_do(
    State(shared): State<Arc<Shared>>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The merchant's `timestamp` is held against the real clock (the merchant's did not move);
    // everything the emulator records or decides runs on its own clock.
    let wall = alipay_openapi::time::beijing_now();
    let now = shared.clock.at(wall);
    let mut record = RequestRecord {
        time: alipay_openapi::time::format_timestamp(&now),
        http_method: method.to_string(),
        ..RequestRecord::default()
    };
    let form = is_form(&headers).then_some(&body[..]);
    let request = match GatewayRequest::from_parts(query.as_deref(), form) {
        Ok(request) => request,
        Err(e) => {
            // Which value would be signed is ambiguous, so nothing else can be checked.
            let failure = Failure::invalid_parameter(&e.to_string());
            record.verdict = failure.sub_code.clone();
            record.code = Some(failure.code.to_string());
            record.sub_code = Some(failure.sub_code.clone());
            lock(&shared.requests).push(record);
            let inner = Fields::failure(&failure);
            return with_trace_id(faults::normal_answer(&AnswerParts {
                key: "error_response",
                inner: &inner,
                sign_type: SignType::Rsa2,
                platform_key: &shared.platform_key,
                out_trade_no: None,
            }));
        }
    };
    record.method = request.non_empty("method").map(str::to_string);
    record.app_id = request.non_empty("app_id").map(str::to_string);
    record.sign_content = request.sign_content();
    record.out_trade_no = request
        .non_empty("biz_content")
        .and_then(|b| serde_json::from_str::<Value>(b).ok())
        .and_then(|v| v.get("out_trade_no")?.as_str().map(str::to_string));
    let is_page = record
        .method
        .as_deref()
        .is_some_and(|m| PAGE_METHODS.contains(&m));

    let accepted = match checks::check(&shared, &request, &wall) {
        Ok(accepted) => accepted,
        Err(rejected) => {
            record.verdict = rejected.failure.sub_code.clone();
            record.code = Some(rejected.failure.code.to_string());
            record.sub_code = Some(rejected.failure.sub_code.clone());
            lock(&shared.requests).push(record);
            if is_page {
                return with_trace_id(checkout::error_response(&rejected.failure));
            }
            let key = match (&rejected.error_response, request.non_empty("method")) {
                (false, Some(method)) => gateway::response_key(method),
                _ => "error_response".to_string(),
            };
            let inner = Fields::failure(&rejected.failure);
            return with_trace_id(faults::normal_answer(&AnswerParts {
                key: &key,
                inner: &inner,
                sign_type: rejected.sign_type,
                platform_key: &shared.platform_key,
                out_trade_no: None,
            }));
        }
    };
    record.verdict = "ok".to_string();

    if is_page {
        let outcome = checkout::open_link(&shared, &accepted, &request, now);
        match &outcome.failure {
            Some(failure) => {
                record.code = Some(failure.code.to_string());
                record.sub_code = Some(failure.sub_code.clone());
            }
            None => record.code = Some("10000".to_string()),
        }
        lock(&shared.requests).push(record);
        return with_trace_id(outcome.response);
    }

    let fault = lock(&shared.faults).take(&accepted.method);
    let inner = match &fault {
        Some(f) if !f.process => {
            api::not_processed(&Failure::business("ACQ.SYSTEM_ERROR"), &accepted)
        }
        _ => api::answer(&shared, &accepted, &request, now),
    };
    record.code = inner.get_str("code").map(str::to_string);
    record.sub_code = inner.get_str("sub_code").map(str::to_string);
    record.fault = fault.as_ref().map(|f| f.kind.name().to_string());
    lock(&shared.requests).push(record);

    let key = gateway::response_key(&accepted.method);
    let out_trade_no = biz_out_trade_no(&accepted.biz);
    let parts = AnswerParts {
        key: &key,
        inner: &inner,
        sign_type: accepted.sign_type,
        platform_key: &shared.platform_key,
        out_trade_no: out_trade_no.as_deref(),
    };
    let response = match &fault {
        None => faults::normal_answer(&parts),
        Some(fault) => {
            let delay = faults::delay(fault);
            if !delay.is_zero() {
                // A held answer is released at shutdown so the server can stop promptly.
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shared.shutdown.cancelled() => {}
                }
            }
            faults::faulty_answer(fault, &parts, || shared.wrong_key())
        }
    };
    with_trace_id(response)
}

fn biz_out_trade_no(biz: &serde_json::Map<String, Value>) -> Option<String> {
    crate::biz::named_order(biz)
}

/// Form bodies are read when labelled as such, or unlabelled (some clients omit the header).
fn is_form(headers: &HeaderMap) -> bool {
    match headers.get(header::CONTENT_TYPE) {
        None => true,
        Some(v) => v
            .to_str()
            .map(|t| {
                t.to_ascii_lowercase()
                    .contains("application/x-www-form-urlencoded")
            })
            .unwrap_or(false),
    }
}

fn with_trace_id(mut response: Response) -> Response {
    if let Ok(v) = HeaderValue::from_str(&ids::trace_id()) {
        response.headers_mut().insert("trace_id", v);
    }
    response
}

/// `GET /bill/{token}`: the bill's zip (`application/zip`, named by Content-Disposition), once;
/// a used, expired (issued more than 30 s ago on the emulator's clock) or unknown link is a 404
/// with a plain-text reason. `HEAD` looks without using the link up.
pub(crate) async fn bill_download(
    State(shared): State<Arc<Shared>>,
    method: Method,
    Path(token): Path<String>,
) -> Response {
    let now = shared.clock.now();
    let found = {
        let mut links = lock(&shared.bill_links);
        if method == Method::HEAD {
            links.peek(&token, &now)
        } else {
            links.take(&token, &now)
        }
    };
    match found {
        Ok(download) => (
            [
                (header::CONTENT_TYPE, "application/zip".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}\"", download.file_name),
                ),
            ],
            download.zip,
        )
            .into_response(),
        Err(refused) => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            refused.reason(),
        )
            .into_response(),
    }
}
