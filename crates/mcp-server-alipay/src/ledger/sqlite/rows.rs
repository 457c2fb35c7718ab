//! Between SQLite and the ledger's types: errors by kind, and rows read strictly (a row that is not
//! what it should be is `Corrupt`, never a guess).

use std::fmt::Display;

use alipay_openapi::{Amount, Money, TradeStatus};
use rusqlite::{Connection, ErrorCode, Params, Row};

use crate::domain::{OrderKind, OutRequestNo, OutTradeNo, RefundState, StatusSource};
use crate::ledger::{
    ApprovalRecord, ApprovalStatus, InstanceId, LedgerError, LedgerErrorKind, NotificationRecord,
    NotificationVerdict, OrderRecord, RefundRecord,
};

/// What went wrong inside a blocking call: SQLite's error (classified at the seam) or one of ours.
pub(super) enum Fail {
    Sql(rusqlite::Error),
    Ledger(LedgerError),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sql(e)
    }
}

impl From<LedgerError> for Fail {
    fn from(e: LedgerError) -> Self {
        Self::Ledger(e)
    }
}

impl Fail {
    pub(super) fn into_ledger(self) -> LedgerError {
        match self {
            Self::Ledger(e) => e,
            Self::Sql(e) => LedgerError::new(kind_of(&e), e.to_string()),
        }
    }
}

pub(super) type Res<T> = Result<T, Fail>;

pub(super) fn fail(kind: LedgerErrorKind, message: impl Into<String>) -> Fail {
    Fail::Ledger(LedgerError::new(kind, message))
}

pub(super) fn corrupt(message: impl Display) -> Fail {
    fail(LedgerErrorKind::Corrupt, message.to_string())
}

/// What a caller can do about a SQLite error.
fn kind_of(e: &rusqlite::Error) -> LedgerErrorKind {
    use LedgerErrorKind::*;
    use rusqlite::Error as E;
    match e {
        E::SqliteFailure(f, _) => match f.code {
            ErrorCode::ConstraintViolation => Conflict,
            ErrorCode::DatabaseCorrupt => Corrupt,
            ErrorCode::NotADatabase => Refused,
            // Busy, locked, I/O, full, permissions, memory: nothing changed, try again later.
            _ => Unavailable,
        },
        E::InvalidColumnType(..)
        | E::FromSqlConversionFailure(..)
        | E::IntegralValueOutOfRange(..)
        | E::Utf8Error(..)
        | E::InvalidColumnName(_) => Corrupt,
        _ => Unavailable,
    }
}

/// Every row `sql` yields, each read by `read`.
pub(super) fn all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    read: impl Fn(&Row<'_>) -> Res<T>,
) -> Res<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(read(row)?);
    }
    Ok(out)
}

/// The first row `sql` yields (a primary-key lookup).
pub(super) fn first<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    read: impl Fn(&Row<'_>) -> Res<T>,
) -> Res<Option<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    match rows.next()? {
        Some(row) => Ok(Some(read(row)?)),
        None => Ok(None),
    }
}

pub(super) fn amount(fen: i64, what: impl Display) -> Res<Amount> {
    Amount::from_fen(fen).ok_or_else(|| corrupt(format!("{what}: {fen} fen is not an amount")))
}

pub(super) fn money(fen: i64, what: impl Display) -> Res<Money> {
    if fen < 0 {
        return Err(corrupt(format!("{what}: {fen} fen is negative")));
    }
    Ok(Money::from_fen(fen))
}

/// `a + b`, or `Corrupt` past `i64::MAX` fen (no real sum gets there).
pub(super) fn sum(a: Money, b: Money, what: impl Display) -> Res<Money> {
    a.checked_add(b)
        .ok_or_else(|| corrupt(format!("{what}: the sum overflows")))
}

pub(super) fn state(text: &str, what: impl Display) -> Res<RefundState> {
    RefundState::parse(text)
        .ok_or_else(|| corrupt(format!("{what}: state {text:?} is no refund state")))
}

fn trade_no_of(text: String) -> Res<OutTradeNo> {
    OutTradeNo::parse(&text)
        .ok_or_else(|| corrupt(format!("order number {text:?} is not a merchant number")))
}

pub(super) fn order_row(row: &Row<'_>) -> Res<OrderRecord> {
    let no = trade_no_of(row.get("out_trade_no")?)?;
    let kind: String = row.get("kind")?;
    let source: Option<String> = row.get("status_source")?;
    Ok(OrderRecord {
        kind: OrderKind::parse(&kind)
            .ok_or_else(|| corrupt(format!("order {no}: kind {kind:?} is no order kind")))?,
        total_amount: amount(row.get("amount_fen")?, format_args!("order {no}"))?,
        title: row.get("title")?,
        link: row.get("link")?,
        created_at: row.get("created_at")?,
        trade_status: row
            .get::<_, Option<String>>("trade_status")?
            .map(|s| TradeStatus::from(s.as_str())),
        trade_no: row.get("trade_no")?,
        status_source: source
            .map(|s| {
                StatusSource::parse(&s)
                    .ok_or_else(|| corrupt(format!("order {no}: status source {s:?} is no source")))
            })
            .transpose()?,
        status_at: row.get("status_at")?,
        expires_at: row.get("expires_at")?,
        paid_at: row.get("paid_at")?,
        refunded_amount: money(
            row.get("refunded_fen")?,
            format_args!("order {no} refunded"),
        )?,
        out_trade_no: no,
    })
}

pub(super) fn refund_row(row: &Row<'_>) -> Res<RefundRecord> {
    let no = trade_no_of(row.get("out_trade_no")?)?;
    let req: String = row.get("out_request_no")?;
    let req = OutRequestNo::parse(&req).ok_or_else(|| {
        corrupt(format!(
            "order {no}: refund number {req:?} is not a merchant number"
        ))
    })?;
    let what = format!("refund {req} of order {no}");
    Ok(RefundRecord {
        refund_amount: amount(row.get("amount_fen")?, &what)?,
        reason: row.get("reason")?,
        state: state(&row.get::<_, String>("state")?, &what)?,
        trade_no: row.get("trade_no")?,
        total_refunded: row
            .get::<_, Option<i64>>("total_refunded_fen")?
            .map(|fen| money(fen, &what))
            .transpose()?,
        day: row.get("day")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
        detail: row.get("detail")?,
        owner: row.get::<_, Option<String>>("owner")?.map(InstanceId),
        out_trade_no: no,
        out_request_no: req,
    })
}

pub(super) fn approval_row(row: &Row<'_>) -> Res<ApprovalRecord> {
    let no = trade_no_of(row.get("out_trade_no")?)?;
    let req: String = row.get("out_request_no")?;
    let req = OutRequestNo::parse(&req).ok_or_else(|| {
        corrupt(format!(
            "order {no}: approval of refund number {req:?}, which is not a merchant number"
        ))
    })?;
    let what = format!("approval of refund {req} of order {no}");
    let status: String = row.get("status")?;
    Ok(ApprovalRecord {
        token_hash: row.get("token_hash")?,
        csrf: row.get("csrf")?,
        paid: money(row.get("paid_fen")?, &what)?,
        refunded: money(row.get("refunded_fen")?, &what)?,
        expires_at: row.get("expires_at")?,
        status: ApprovalStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("{what}: status {status:?} is no status")))?,
        created_at: row.get("created_at")?,
        decided_at: row.get("decided_at")?,
        out_trade_no: no,
        out_request_no: req,
    })
}

/// Columns: notify_id, out_trade_no, trade_status, verdict, reason, received_at.
pub(super) fn notification_row(row: &Row<'_>) -> Res<NotificationRecord> {
    let verdict: String = row.get("verdict")?;
    Ok(NotificationRecord {
        notify_id: row.get("notify_id")?,
        out_trade_no: row.get("out_trade_no")?,
        trade_status: row
            .get::<_, Option<String>>("trade_status")?
            .map(|s| TradeStatus::from(s.as_str())),
        verdict: match verdict.as_str() {
            "accepted" => NotificationVerdict::Accepted,
            "rejected" => NotificationVerdict::Rejected,
            other => {
                return Err(corrupt(format!(
                    "notification verdict {other:?} is no verdict"
                )));
            }
        },
        reason: row.get("reason")?,
        received_at: row.get("received_at")?,
    })
}
