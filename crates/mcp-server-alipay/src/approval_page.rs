//! The refund approval page (`GET`/`POST /approve/{token}`): plain HTML that works without
//! JavaScript. A GET only shows the refund and the figures fetched from Alipay then; only a POST
//! with the form's anti-forgery value (and the PIN, when set) decides, so a fetch that only GETs
//! cannot approve anything. Without a PIN, an agent that can POST (a shell, a browser) can: the PIN
//! is what a person keeps from the model. The link itself is the capability: no bearer token. The flow is
//! `crate::service::approvals`; this file routes, parses the form and writes HTML.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::service::Services;
use crate::service::approvals::{self, APPROVAL_PATH, Decided, DecisionForm, Page};
use crate::service::refunds::RefundResult;

pub fn router(services: Services) -> Router {
    Router::new()
        .route(
            &format!("{APPROVAL_PATH}/{{token}}"),
            get(show).post(decide),
        )
        .with_state(services)
}

/// Serve the pages on their own listener until `shutdown` resolves (stdio mode).
pub async fn serve(
    listener: tokio::net::TcpListener,
    services: Services,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    if let Err(e) = axum::serve(listener, router(services))
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "refund approval pages stopped");
    }
}

fn esc(text: &str) -> String {
    html_escape::encode_text(text).into_owned()
}

/// A page, with headers that keep the token out of caches, referrers and frames.
fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        "<!doctype html><html lang=\"zh\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>body{{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}table{{border-collapse:collapse}}td{{padding:.2rem .8rem .2rem 0}}button{{font-size:1rem;padding:.5rem 1.2rem;margin-right:.8rem}}.note{{color:#555}}</style></head><body><h1>{}</h1>{body}</body></html>",
        esc(title),
        esc(title)
    );
    let mut response = (status, page).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn show(State(services): State<Services>, Path(token): Path<String>) -> Response {
    match approvals::view(&services, &token).await {
        Page::Closed(why) => html(
            StatusCode::GONE,
            "退款审批 · Refund approval",
            &format!("<p>{}</p>", esc(&why)),
        ),
        Page::Open {
            approval,
            refund,
            paid,
            already_refunded,
            trade_no,
            pin_required,
        } => {
            let pin = if pin_required {
                "<p><label>PIN <input type=\"password\" name=\"pin\" autocomplete=\"off\" required></label></p>"
            } else {
                ""
            };
            let body = format!(
                "<p>A refund waits for your approval. Nothing is sent to Alipay unless you approve it.</p>\
                 <table>\
                 <tr><td>商户订单号 Order</td><td>{order}</td></tr>\
                 <tr><td>支付宝交易号 Alipay trade</td><td>{trade}</td></tr>\
                 <tr><td>已付款 Paid (Alipay, now)</td><td>{paid} 元</td></tr>\
                 <tr><td>已退款 Already refunded</td><td>{refunded} 元</td></tr>\
                 <tr><td><b>本次退款 This refund</b></td><td><b>{amount} 元</b></td></tr>\
                 <tr><td>退款原因 Reason</td><td>{reason}</td></tr>\
                 <tr><td>退款请求号 Refund number</td><td>{request}</td></tr>\
                 </table>\
                 <form method=\"post\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">{pin}\
                 <p><button type=\"submit\" name=\"decision\" value=\"approve\">批准退款 Approve</button>\
                 <button type=\"submit\" name=\"decision\" value=\"deny\">拒绝 Deny</button></p></form>\
                 <p class=\"note\">This link works once and expires at {expires} (Beijing time). If the order's figures change before you approve, the refund is refused, not sent.</p>",
                order = esc(approval.out_trade_no.as_str()),
                trade = esc(trade_no.as_deref().unwrap_or("?")),
                paid = paid,
                refunded = already_refunded,
                amount = refund.refund_amount,
                reason = esc(refund.reason.as_deref().unwrap_or("(none)")),
                request = esc(approval.out_request_no.as_str()),
                csrf = esc(&approval.csrf),
                expires = esc(&approval.expires_at),
            );
            html(StatusCode::OK, "退款审批 · Refund approval", &body)
        }
    }
}

/// The posted form (`application/x-www-form-urlencoded`; a field given twice is refused).
fn parse_form(body: &[u8]) -> Option<DecisionForm> {
    let mut form = DecisionForm::default();
    for (key, value) in form_urlencoded::parse(body) {
        let slot = match key.as_ref() {
            "decision" => &mut form.decision,
            "csrf" => &mut form.csrf,
            "pin" => &mut form.pin,
            _ => continue,
        };
        if slot.replace(value.into_owned()).is_some() {
            return None;
        }
    }
    Some(form)
}

async fn decide(
    State(services): State<Services>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    let title = "退款审批 · Refund approval";
    let Some(form) = parse_form(&body) else {
        return html(
            StatusCode::BAD_REQUEST,
            title,
            "<p>The form was sent twice over; open the link again.</p>",
        );
    };
    match approvals::decide(&services, &token, &form).await {
        Decided::Denied => html(
            StatusCode::OK,
            title,
            "<p>Denied: nothing was refunded. The agent learns it when it asks again.</p>",
        ),
        Decided::Refused(why) => html(
            StatusCode::FORBIDDEN,
            title,
            &format!("<p>{}</p>", esc(&why)),
        ),
        Decided::Sent(result) => {
            let said = match result.as_ref() {
                RefundResult::Succeeded { .. } | RefundResult::Replayed(_) => {
                    "Approved: Alipay confirmed the refund.".to_string()
                }
                RefundResult::Failed(e) => {
                    format!("Approved, but Alipay refused the refund: {e}. No money moved.")
                }
                RefundResult::Refused(crate::service::refunds::Refusal::Guardrail(g)) => format!(
                    "Not sent: {} ({}).",
                    g.message(),
                    g.rule().name()
                ),
                RefundResult::Refused(_) => {
                    "Not sent: the refund could not be checked or recorded now; nothing was refunded.".to_string()
                }
                other => format!(
                    "Approved and sent; the outcome is not known yet ({:?}). The agent can check it with query-alipay-refund.",
                    other.state().as_str()
                ),
            };
            html(StatusCode::OK, title, &format!("<p>{}</p>", esc(&said)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_field_given_twice_is_refused() {
        let form = parse_form(b"decision=approve&csrf=abc&pin=1234").unwrap();
        assert_eq!(form.decision.as_deref(), Some("approve"));
        assert_eq!(form.pin.as_deref(), Some("1234"));
        assert!(parse_form(b"decision=deny&decision=approve&csrf=abc").is_none());
        assert!(parse_form(b"").unwrap().decision.is_none());
    }
}
