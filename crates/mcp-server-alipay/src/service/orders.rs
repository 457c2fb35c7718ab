//! Orders: create (a signed link, or a precreated QR code), query, close, list. The server owns
//! idempotency: an order number always means one order. The same number with the same amount,
//! title and kind returns that order again; with anything different it is refused before anything
//! reaches Alipay or the caller. An order is recorded before it is reported, so a link anyone saw is in the ledger.

use alipay_openapi::{
    AipayTradePrecreate, Amount, AmountStyle, Error, GatewayError, PayKind, PayOrder, TradeClose,
    TradePrecreate, TradeQuery, TradeQueryResponse, TradeStatus,
};
use serde_json::{Map, Value};

use crate::domain::guardrail::Guardrail;
use crate::domain::order::{OrderTerms, same_order};
use crate::domain::{OrderKind, OutTradeNo, PaymentState, StatusSource};
use crate::ledger::{
    AuditDecision, AuditEntry, AuditOutcome, AuditRow, CreateOrder, LedgerError, NewOrder,
    OrderFilter, OrderRecord, StatusUpdate,
};
use crate::service::Services;

/// Alipay's `body` is at most 128 characters.
const MAX_BODY_CHARS: usize = 128;

/// An order to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateRequest {
    /// `None`: the server mints one.
    pub out_trade_no: Option<OutTradeNo>,
    pub kind: OrderKind,
    pub amount: Amount,
    pub title: String,
    /// `expiresInMinutes`: shorter than `AP_ORDER_TTL_MINUTES`, never longer.
    pub expires_in_minutes: Option<u32>,
}

/// What became of a create.
#[derive(Debug)]
pub enum Created {
    /// A new order, recorded; `minted` when the server chose its number.
    New {
        order: OrderRecord,
        minted: bool,
    },
    /// The same order again, unchanged.
    Existing(OrderRecord),
    /// The number already means a different order: refused, nothing signed.
    Conflict(OrderRecord),
    Refused(Guardrail),
    /// `expiresInMinutes` longer than the operator allows (`AP_ORDER_TTL_MINUTES`).
    TooLong {
        asked: u32,
        limit: u32,
    },
    /// The link could not be signed.
    SigningFailed {
        out_trade_no: OutTradeNo,
        message: String,
    },
    /// The QR code's `alipay.trade.precreate` failed (or came back without a code).
    GatewayFailed {
        out_trade_no: OutTradeNo,
        error: Error,
    },
    /// The precreate's answer had no link (`field`: `qr_code` or `pay_url`).
    NoLink {
        out_trade_no: OutTradeNo,
        field: &'static str,
    },
    /// Not recorded, so no link was given out.
    LedgerFailed {
        out_trade_no: OutTradeNo,
        error: LedgerError,
    },
}

impl Created {
    /// The audit row still to write for this outcome: `None` for a new order, whose row the
    /// ledger wrote with it, and for a rejected argument, which is not audited.
    fn audit_after(&self) -> Option<(AuditDecision, AuditOutcome)> {
        Some(match self {
            Self::TooLong { .. } | Self::New { .. } => return None,
            Self::Existing(_) => (AuditDecision::Replayed, AuditOutcome::Succeeded),
            Self::Conflict(_) => (
                AuditDecision::Refused("number already used".into()),
                AuditOutcome::Failed,
            ),
            Self::Refused(g) => (
                AuditDecision::Refused(g.rule().name().into()),
                AuditOutcome::Failed,
            ),
            Self::SigningFailed { .. }
            | Self::GatewayFailed { .. }
            | Self::NoLink { .. }
            | Self::LedgerFailed { .. } => (AuditDecision::Allowed, AuditOutcome::Failed),
        })
    }
}

/// The tool call a create serves, for its audit row.
pub struct ToolCall<'a> {
    pub tool: &'a str,
    pub arguments: &'a Map<String, Value>,
}

/// Create an order, audited: a new order's row is written in its commit (one ledger write a
/// create), any other outcome's after it.
pub async fn create(svc: &Services, request: &CreateRequest, call: &ToolCall<'_>) -> Created {
    let created = create_unless_known(svc, request, call).await;
    if let Some((decision, outcome)) = created.audit_after() {
        svc.audit(call.tool, call.arguments, decision, outcome)
            .await;
    }
    created
}

async fn create_unless_known(
    svc: &Services,
    request: &CreateRequest,
    call: &ToolCall<'_>,
) -> Created {
    if let Some(limit) = svc.guard.max_payment
        && request.amount > limit
    {
        return Created::Refused(Guardrail::MaxPayment {
            asked: request.amount,
            limit,
        });
    }
    let limit = svc.order_ttl_minutes;
    let ttl = match request.expires_in_minutes {
        Some(asked) if asked > limit => return Created::TooLong { asked, limit },
        Some(asked) => asked,
        None => limit,
    };
    let minted = request.out_trade_no.is_none();
    let out_trade_no = request
        .out_trade_no
        .clone()
        .unwrap_or_else(OutTradeNo::mint);
    // A replay of a number is found before a precreate, which asks Alipay. A link signed here
    // asks nobody, so its replay is found by the insert, which keeps the first order: one
    // signature wasted on a replay, one ledger read saved on every new order.
    let asks_alipay = match request.kind {
        OrderKind::QrCode | OrderKind::Agent => true,
        OrderKind::Mobile | OrderKind::WebPage => false,
    };
    if asks_alipay {
        match svc.ledger.order(&out_trade_no).await {
            Ok(Some(existing)) => return same_or_conflict(existing, request),
            Ok(None) => {}
            Err(error) => return ledger_failed(out_trade_no, error),
        }
    }
    // Sent as `time_expire`: Alipay closes the trade then, and the cashier stops taking payment.
    // Counted on the gateway's clock (the embedded gateway's can be moved by tests).
    let expires_at = alipay_openapi::time::timestamp_after(&svc.clock.now().await, ttl);
    let link = match request.kind {
        OrderKind::QrCode => match precreate(svc, &out_trade_no, request, &expires_at).await {
            Ok(qr_code) => qr_code,
            Err(failed) => return failed,
        },
        OrderKind::Agent => match agent_precreate(svc, &out_trade_no, request, &expires_at).await {
            Ok(pay_url) => markdown_safe(&pay_url),
            Err(failed) => return failed,
        },
        OrderKind::Mobile | OrderKind::WebPage => {
            match sign_link(svc, &out_trade_no, request, &expires_at) {
                Ok(link) => markdown_safe(&link),
                Err(message) => {
                    tracing::error!(out_trade_no = %out_trade_no, error = %message, "signing failed");
                    return Created::SigningFailed {
                        out_trade_no,
                        message,
                    };
                }
            }
        }
    };
    let record = NewOrder {
        out_trade_no: out_trade_no.clone(),
        kind: request.kind,
        amount: request.amount,
        title: request.title.clone(),
        link,
        expires_at: Some(expires_at),
        audit: Some(AuditRow::of(&AuditEntry {
            tool: call.tool,
            arguments: &Value::Object(call.arguments.clone()),
            decision: AuditDecision::Allowed,
            outcome: AuditOutcome::Succeeded,
        })),
    };
    match svc.ledger.create_order(&record).await {
        Ok(CreateOrder::Created(order)) => {
            tracing::info!(kind = order.kind.as_str(), out_trade_no = %order.out_trade_no, total_amount = %order.total_amount, "order created");
            Created::New { order, minted }
        }
        // A replay, or another call that created it between our check and our insert.
        Ok(CreateOrder::Existing(existing)) => same_or_conflict(existing, request),
        Err(error) => ledger_failed(out_trade_no, error),
    }
}

fn ledger_failed(out_trade_no: OutTradeNo, error: LedgerError) -> Created {
    tracing::error!(out_trade_no = %out_trade_no, error = %error, "ledger failure");
    Created::LedgerFailed {
        out_trade_no,
        error,
    }
}

fn same_or_conflict(existing: OrderRecord, request: &CreateRequest) -> Created {
    let terms = OrderTerms {
        kind: existing.kind,
        amount: existing.total_amount,
        title: &existing.title,
    };
    let asked = OrderTerms {
        kind: request.kind,
        amount: request.amount,
        title: &request.title,
    };
    if same_order(terms, asked) {
        Created::Existing(existing)
    } else {
        Created::Conflict(existing)
    }
}

/// The reference copies the title into `body`; a title over Alipay's 128-character `body` limit
/// goes without one rather than being refused.
fn body_of(title: &str) -> Option<String> {
    (title.chars().count() <= MAX_BODY_CHARS).then(|| title.to_string())
}

/// A signed link that survives Markdown and copy-paste: the characters that end a Markdown link
/// destination early (`(`, `)`, `<`, `>`, spaces) or that naive URL extractors stop at (quotes,
/// brackets, braces, `|`, `\`, `^`, backtick, `!`, `*`), percent-encoded wherever they appear in
/// the query. The signature is over the decoded values, so it stays valid.
pub fn markdown_safe(link: &str) -> String {
    let Some((head, query)) = link.split_once('?') else {
        return link.to_string();
    };
    let mut safe = String::with_capacity(link.len() + 16);
    safe.push_str(head);
    safe.push('?');
    for c in query.chars() {
        match c {
            '(' | ')' | '<' | '>' | ' ' | '"' | '\'' | '[' | ']' | '{' | '}' | '|' | '\\' | '^'
            | '`' | '!' | '*' => {
                let mut buf = [0; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    safe.push_str(&format!("%{b:02X}"));
                }
            }
            c => safe.push(c),
        }
    }
    safe
}

fn sign_link(
    svc: &Services,
    out_trade_no: &OutTradeNo,
    request: &CreateRequest,
    expires_at: &str,
) -> Result<String, String> {
    let order = PayOrder {
        kind: if request.kind == OrderKind::Mobile {
            PayKind::Wap
        } else {
            PayKind::Page
        },
        out_trade_no: out_trade_no.to_string(),
        total_amount: request.amount,
        subject: request.title.clone(),
        body: body_of(&request.title),
        timeout_express: None,
        // The reference marks its links with its version; Alipay attributes MCP traffic by it.
        query_options: Some(vec![format!("mcp_{}", env!("CARGO_PKG_VERSION"))]),
        time_expire: Some(expires_at.to_string()),
        // As the reference writes it (a JSON number); Alipay accepts numbers and strings alike.
        amount_style: AmountStyle::Number,
    };
    svc.client.payment_link(&order).map_err(|e| e.to_string())
}

async fn precreate(
    svc: &Services,
    out_trade_no: &OutTradeNo,
    request: &CreateRequest,
    expires_at: &str,
) -> Result<String, Created> {
    let precreate = TradePrecreate {
        out_trade_no: out_trade_no.to_string(),
        total_amount: request.amount,
        subject: request.title.clone(),
        body: body_of(&request.title),
        timeout_express: None,
        time_expire: Some(expires_at.to_string()),
    };
    match svc.client.execute(&precreate).await {
        Ok(answer) => answer
            .qr_code
            .filter(|q| !q.is_empty())
            .ok_or_else(|| Created::NoLink {
                out_trade_no: out_trade_no.clone(),
                field: "qr_code",
            }),
        Err(error) => Err(Created::GatewayFailed {
            out_trade_no: out_trade_no.clone(),
            error,
        }),
    }
}

/// 智易收: `alipay.aipay.trade.precreate`; the link is its `pay_url` (the QR PNG is ours, of the same
/// link, so it is never fetched from elsewhere).
async fn agent_precreate(
    svc: &Services,
    out_trade_no: &OutTradeNo,
    request: &CreateRequest,
    expires_at: &str,
) -> Result<String, Created> {
    let precreate = AipayTradePrecreate {
        out_trade_no: out_trade_no.to_string(),
        amount: request.amount,
        agent_name: request.title.clone(),
        agent_id: svc.agent_id.clone(),
        // As the reference marks its links, so Alipay attributes MCP traffic.
        request_channel_source: format!("mcp_{}", env!("CARGO_PKG_VERSION")),
        time_expire: Some(expires_at.to_string()),
    };
    match svc.client.execute(&precreate).await {
        Ok(answer) => answer
            .pay_url
            .filter(|u| !u.is_empty())
            .ok_or_else(|| Created::NoLink {
                out_trade_no: out_trade_no.clone(),
                field: "pay_url",
            }),
        Err(error) => Err(Created::GatewayFailed {
            out_trade_no: out_trade_no.clone(),
            error,
        }),
    }
}

/// What a payment query found.
#[derive(Debug)]
pub enum Queried {
    /// Alipay's verified answer (recorded in the ledger); `expired` when the order was not paid by
    /// its expiry (Alipay closed it then).
    Found {
        answer: Box<TradeQueryResponse>,
        expired: bool,
        expires_at: Option<String>,
    },
    /// Alipay has no trade for an order the ledger knows: the buyer has not opened the link, or
    /// (`expired`) never did before it expired.
    NotOpenedYet {
        error: Box<GatewayError>,
        expired: bool,
        expires_at: Option<String>,
    },
    Failed(Error),
}

/// `alipay.trade.query`, recording what it says.
pub async fn query(svc: &Services, out_trade_no: &OutTradeNo) -> Queried {
    let result = svc
        .client
        .execute(&TradeQuery::by_out_trade_no(out_trade_no.as_str()))
        .await;
    tracing::info!(out_trade_no = %out_trade_no, ok = result.is_ok(), "queried");
    let known = || async { svc.ledger.order(out_trade_no).await.ok().flatten() };
    match result {
        Ok(q) => {
            let order = match &q.trade_status {
                Some(status) => record_queried_status(svc, out_trade_no, &q, status.clone()).await,
                None => known().await,
            };
            let expired = match &order {
                Some(order) => {
                    crate::service::wait::state_of(svc, order).await == PaymentState::Expired
                }
                None => false,
            };
            Queried::Found {
                answer: Box::new(q),
                expired,
                expires_at: order.and_then(|o| o.expires_at),
            }
        }
        Err(Error::Business(g)) if g.sub_code.as_deref() == Some("ACQ.TRADE_NOT_EXIST") => {
            match known().await {
                Some(order) => Queried::NotOpenedYet {
                    error: g,
                    expired: svc.past_expiry(&order).await,
                    expires_at: order.expires_at,
                },
                None => Queried::Failed(Error::Business(g)),
            }
        }
        Err(e) => Queried::Failed(e),
    }
}

/// Record a status from a verified answer; a failure to record is logged (the answer stands).
pub async fn record_status(
    svc: &Services,
    out_trade_no: &OutTradeNo,
    trade_status: TradeStatus,
    trade_no: Option<String>,
    paid_at: Option<String>,
    source: StatusSource,
) {
    let update = status_update(svc, trade_status, trade_no, paid_at, source).await;
    if let Err(e) = svc.ledger.update_status(out_trade_no, &update).await {
        tracing::error!(out_trade_no = %out_trade_no, error = %e, source = source.as_str(), "cannot record the status");
    }
}

/// [`record_status`] from a query's answer, then the order as it stands (one ledger read when the
/// status is already known, the common case); `None` when it is not in the ledger or cannot be
/// read.
async fn record_queried_status(
    svc: &Services,
    out_trade_no: &OutTradeNo,
    answer: &TradeQueryResponse,
    trade_status: TradeStatus,
) -> Option<OrderRecord> {
    let update = status_update(
        svc,
        trade_status,
        answer.trade_no.clone(),
        answer.send_pay_date.clone(),
        StatusSource::Query,
    )
    .await;
    match svc
        .ledger
        .update_status_then_order(out_trade_no, &update)
        .await
    {
        Ok((_, order)) => order,
        Err(e) => {
            tracing::error!(out_trade_no = %out_trade_no, error = %e, source = "query", "cannot record the status");
            svc.ledger.order(out_trade_no).await.ok().flatten()
        }
    }
}

async fn status_update(
    svc: &Services,
    trade_status: TradeStatus,
    trade_no: Option<String>,
    paid_at: Option<String>,
    source: StatusSource,
) -> StatusUpdate {
    // Whether a close came after the order's expiry is read on the gateway's clock.
    let seen_at = if trade_status == TradeStatus::TradeClosed {
        Some(alipay_openapi::time::format_timestamp(
            &svc.clock.now().await,
        ))
    } else {
        None
    };
    StatusUpdate {
        trade_status,
        trade_no,
        refunded: None,
        source,
        seen_at,
        paid_at,
    }
}

/// What a close did.
#[derive(Debug)]
pub enum Closed {
    Closed {
        trade_no: Option<String>,
    },
    /// Alipay has no trade yet (the buyer never opened the link): nothing to close there.
    NoTrade(Box<GatewayError>),
    Failed(Error),
}

impl Closed {
    pub fn audit(&self) -> (AuditDecision, AuditOutcome) {
        match self {
            Self::Closed { .. } => (AuditDecision::Allowed, AuditOutcome::Succeeded),
            _ => (AuditDecision::Allowed, AuditOutcome::Failed),
        }
    }
}

/// `alipay.trade.close`: an unpaid order can no longer be paid.
pub async fn close(svc: &Services, out_trade_no: &OutTradeNo) -> Closed {
    let result = svc
        .client
        .execute(&TradeClose {
            out_trade_no: out_trade_no.to_string(),
        })
        .await;
    tracing::info!(out_trade_no = %out_trade_no, ok = result.is_ok(), "close sent");
    match result {
        Ok(answer) => {
            record_status(
                svc,
                out_trade_no,
                TradeStatus::TradeClosed,
                answer.trade_no.clone(),
                None,
                StatusSource::Close,
            )
            .await;
            Closed::Closed {
                trade_no: answer.trade_no,
            }
        }
        Err(Error::Business(g)) if g.sub_code.as_deref() == Some("ACQ.TRADE_NOT_EXIST") => {
            Closed::NoTrade(g)
        }
        Err(e) => Closed::Failed(e),
    }
}

/// Recent orders from the ledger (no call to Alipay).
pub async fn list(svc: &Services, filter: &OrderFilter) -> Result<Vec<OrderRecord>, LedgerError> {
    svc.ledger.list_orders(filter).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_survive_markdown_and_copy_paste() {
        let link = "https://gw/gateway.do?a=%E8%B2%93 (A4, 300dpi)&b=x[1]'\"*!&c=<p>{|}^`\\";
        let safe = markdown_safe(link);
        assert_eq!(
            safe,
            "https://gw/gateway.do?a=%E8%B2%93%20%28A4,%20300dpi%29&b=x%5B1%5D%27%22%2A%21&c=%3Cp%3E%7B%7C%7D%5E%60%5C"
        );
        // Decoded, the query is what was signed.
        let decoded: Vec<(String, String)> =
            form_urlencoded::parse(safe.split_once('?').unwrap().1.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        let original: Vec<(String, String)> =
            form_urlencoded::parse(link.split_once('?').unwrap().1.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        assert_eq!(decoded, original);
        assert_eq!(markdown_safe("https://gw/x"), "https://gw/x");
    }
}
