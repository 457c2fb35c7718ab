//! Orders: create (a signed link, or a precreated QR code), query, close, list. The server owns
//! idempotency: an order number always means one order. The same number with the same amount,
//! title and kind returns that order again; with anything different it is refused before anything
//! is signed. An order is recorded before it is reported, so a link anyone saw is in the ledger.

use alipay_openapi::{
    Amount, AmountStyle, Error, GatewayError, PayKind, PayOrder, TradeClose, TradePrecreate,
    TradeQuery, TradeQueryResponse, TradeStatus,
};

use crate::domain::guardrail::Guardrail;
use crate::domain::order::{OrderTerms, same_order};
use crate::domain::{OrderKind, OutTradeNo, StatusSource};
use crate::ledger::{
    AuditDecision, AuditOutcome, CreateOrder, LedgerError, NewOrder, OrderFilter, OrderRecord,
    StatusUpdate,
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
    NoQrCode {
        out_trade_no: OutTradeNo,
    },
    /// Not recorded, so no link was given out.
    LedgerFailed {
        out_trade_no: OutTradeNo,
        error: LedgerError,
    },
}

impl Created {
    /// The audit row this outcome stands for.
    pub fn audit(&self) -> (AuditDecision, AuditOutcome) {
        match self {
            Self::New { .. } => (AuditDecision::Allowed, AuditOutcome::Succeeded),
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
            | Self::NoQrCode { .. }
            | Self::LedgerFailed { .. } => (AuditDecision::Allowed, AuditOutcome::Failed),
        }
    }
}

pub async fn create(svc: &Services, request: &CreateRequest) -> Created {
    if let Some(limit) = svc.guard.max_payment
        && request.amount > limit
    {
        return Created::Refused(Guardrail::MaxPayment {
            asked: request.amount,
            limit,
        });
    }
    let minted = request.out_trade_no.is_none();
    let out_trade_no = request
        .out_trade_no
        .clone()
        .unwrap_or_else(OutTradeNo::mint);
    match svc.ledger.order(&out_trade_no).await {
        Ok(Some(existing)) => return same_or_conflict(existing, request),
        Ok(None) => {}
        Err(error) => return ledger_failed(out_trade_no, error),
    }
    let link = match request.kind {
        OrderKind::QrCode => match precreate(svc, &out_trade_no, request).await {
            Ok(qr_code) => qr_code,
            Err(failed) => return failed,
        },
        OrderKind::Mobile | OrderKind::WebPage => match sign_link(svc, &out_trade_no, request) {
            Ok(link) => link,
            Err(message) => {
                tracing::error!(out_trade_no = %out_trade_no, error = %message, "signing failed");
                return Created::SigningFailed {
                    out_trade_no,
                    message,
                };
            }
        },
    };
    let record = NewOrder {
        out_trade_no: out_trade_no.clone(),
        kind: request.kind,
        amount: request.amount,
        title: request.title.clone(),
        link,
    };
    match svc.ledger.create_order(&record).await {
        Ok(CreateOrder::Created(order)) => {
            tracing::info!(kind = order.kind.as_str(), out_trade_no = %order.out_trade_no, total_amount = %order.total_amount, "order created");
            Created::New { order, minted }
        }
        // Another call created it between our check and our insert.
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

fn sign_link(
    svc: &Services,
    out_trade_no: &OutTradeNo,
    request: &CreateRequest,
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
        // As the reference writes it (a JSON number); Alipay accepts numbers and strings alike.
        amount_style: AmountStyle::Number,
    };
    svc.client.payment_link(&order).map_err(|e| e.to_string())
}

async fn precreate(
    svc: &Services,
    out_trade_no: &OutTradeNo,
    request: &CreateRequest,
) -> Result<String, Created> {
    let precreate = TradePrecreate {
        out_trade_no: out_trade_no.to_string(),
        total_amount: request.amount,
        subject: request.title.clone(),
        body: body_of(&request.title),
        timeout_express: None,
    };
    match svc.client.execute(&precreate).await {
        Ok(answer) => answer
            .qr_code
            .filter(|q| !q.is_empty())
            .ok_or_else(|| Created::NoQrCode {
                out_trade_no: out_trade_no.clone(),
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
    /// Alipay's verified answer (recorded in the ledger).
    Found(Box<TradeQueryResponse>),
    /// Alipay has no trade yet for an order the ledger knows: the buyer has not opened the link.
    NotOpenedYet(Box<GatewayError>),
    Failed(Error),
}

/// `alipay.trade.query`, recording what it says.
pub async fn query(svc: &Services, out_trade_no: &OutTradeNo) -> Queried {
    let result = svc
        .client
        .execute(&TradeQuery::by_out_trade_no(out_trade_no.as_str()))
        .await;
    tracing::info!(out_trade_no = %out_trade_no, ok = result.is_ok(), "queried");
    match result {
        Ok(q) => {
            if let Some(status) = &q.trade_status {
                record_status(
                    svc,
                    out_trade_no,
                    status.clone(),
                    q.trade_no.clone(),
                    StatusSource::Query,
                )
                .await;
            }
            Queried::Found(Box::new(q))
        }
        Err(Error::Business(g))
            if g.sub_code.as_deref() == Some("ACQ.TRADE_NOT_EXIST")
                && matches!(svc.ledger.order(out_trade_no).await, Ok(Some(_))) =>
        {
            Queried::NotOpenedYet(g)
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
    source: StatusSource,
) {
    let update = StatusUpdate {
        trade_status,
        trade_no,
        refunded: None,
        source,
    };
    if let Err(e) = svc.ledger.update_status(out_trade_no, &update).await {
        tracing::error!(out_trade_no = %out_trade_no, error = %e, source = source.as_str(), "cannot record the status");
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
