//! Between PostgreSQL and the ledger's types: errors by kind, and rows read strictly (a row that
//! is not what it should be is `Corrupt`, never a guess).

use std::fmt::Display;

use alipay_openapi::{Amount, Money, TradeStatus};
use deadpool_postgres::{GenericClient, PoolError, Transaction};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};

use crate::domain::{OrderKind, OutRequestNo, OutTradeNo, RefundState, StatusSource};
use crate::ledger::{
    ApprovalRecord, ApprovalStatus, InstanceId, LedgerError, LedgerErrorKind, NotificationRecord,
    NotificationVerdict, OrderRecord, RefundRecord,
};

/// A transaction on a pooled connection.
pub(super) type Tx<'a> = Transaction<'a>;
/// Statement parameters.
pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// What went wrong inside a call: PostgreSQL's error (classified at the seam) or one of ours.
pub(super) enum Fail {
    Sql(tokio_postgres::Error),
    Ledger(LedgerError),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
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
            Self::Sql(e) => sql_error(&e),
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

/// What a caller can do about a PostgreSQL error, by its SQLSTATE class.
pub(super) fn kind_of(e: &tokio_postgres::Error) -> LedgerErrorKind {
    use LedgerErrorKind::*;
    let Some(code) = e.code() else {
        // No answer from the server: the connection, TLS, a timeout. Nothing changed.
        return Unavailable;
    };
    let code = code.code();
    match (&code[..2], code) {
        // Unique, foreign key, not null: another writer got there first.
        ("23", _) => Conflict,
        // Data or index corruption reported by the server itself.
        ("XX", "XX001" | "XX002") => Corrupt,
        // Authentication, privileges, no such database or schema: this configuration may not.
        ("28", _) | ("3D", _) | ("3F", _) | (_, "42501") => Refused,
        // Serialization failures and deadlocks (rolled back), lock and statement timeouts,
        // connections, resources, operator intervention, everything else: try again later.
        _ => Unavailable,
    }
}

/// A PostgreSQL error as a ledger error (the server's message and code, no parameter values).
pub(super) fn sql_error(e: &tokio_postgres::Error) -> LedgerError {
    let message = match e.as_db_error() {
        Some(db) => format!("PostgreSQL: {} ({})", db.message(), db.code().code()),
        None => format!("PostgreSQL: {}", with_cause(e)),
    };
    LedgerError::new(kind_of(e), message)
}

/// An error and what caused it (tokio-postgres shows only the first).
pub(super) fn with_cause(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// A failure to get a connection from the pool.
pub(super) fn pool_error(e: PoolError) -> LedgerError {
    match e {
        PoolError::Backend(e) => sql_error(&e),
        PoolError::Timeout(_) => LedgerError::new(
            LedgerErrorKind::Unavailable,
            "PostgreSQL: no connection to the database in time",
        ),
        PoolError::Closed => LedgerError::new(LedgerErrorKind::Unavailable, "the ledger is closed"),
        other => LedgerError::new(LedgerErrorKind::Unavailable, format!("PostgreSQL: {other}")),
    }
}

/// Every row `sql` yields, each read by `read`.
pub(super) async fn all<T>(
    tx: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
    read: impl Fn(&Row) -> Res<T>,
) -> Res<Vec<T>> {
    let stmt = tx.prepare_cached(sql).await?;
    tx.query(&stmt, params).await?.iter().map(read).collect()
}

/// The first row `sql` yields (a primary-key lookup).
pub(super) async fn first<T>(
    tx: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
    read: impl Fn(&Row) -> Res<T>,
) -> Res<Option<T>> {
    let stmt = tx.prepare_cached(sql).await?;
    tx.query(&stmt, params).await?.first().map(read).transpose()
}

/// Run `sql`; the number of rows it changed.
pub(super) async fn execute(tx: &impl GenericClient, sql: &str, params: Params<'_>) -> Res<u64> {
    let stmt = tx.prepare_cached(sql).await?;
    Ok(tx.execute(&stmt, params).await?)
}

/// Column `col` of `row`, as `T`; a value that is not one is `Corrupt`.
pub(super) fn get<'a, T: FromSql<'a>>(row: &'a Row, col: &str) -> Res<T> {
    row.try_get(col)
        .map_err(|e| corrupt(format!("column {col}: {e}")))
}

/// Column `i` of `row`, as `T`.
pub(super) fn at<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Res<T> {
    row.try_get(i)
        .map_err(|e| corrupt(format!("column {i}: {e}")))
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

fn trade_no_of(text: &str) -> Res<OutTradeNo> {
    OutTradeNo::parse(text)
        .ok_or_else(|| corrupt(format!("order number {text:?} is not a merchant number")))
}

fn request_no_of(text: &str, no: &OutTradeNo, what: &str) -> Res<OutRequestNo> {
    OutRequestNo::parse(text).ok_or_else(|| {
        corrupt(format!(
            "order {no}: {what} {text:?}, which is not a merchant number"
        ))
    })
}

/// The columns [`order_row`] reads, for `SELECT`.
pub(super) const ORDER_COLUMNS: &str = "out_trade_no, kind, amount_fen, title, link, created_at,
    trade_status, trade_no, status_source, status_at, expires_at, paid_at, refunded_fen";

pub(super) fn order_row(row: &Row) -> Res<OrderRecord> {
    let no = trade_no_of(get(row, "out_trade_no")?)?;
    let kind: &str = get(row, "kind")?;
    let source: Option<&str> = get(row, "status_source")?;
    Ok(OrderRecord {
        kind: OrderKind::parse(kind)
            .ok_or_else(|| corrupt(format!("order {no}: kind {kind:?} is no order kind")))?,
        total_amount: amount(get(row, "amount_fen")?, format_args!("order {no}"))?,
        title: get(row, "title")?,
        link: get(row, "link")?,
        created_at: get(row, "created_at")?,
        trade_status: get::<Option<&str>>(row, "trade_status")?.map(TradeStatus::from),
        trade_no: get(row, "trade_no")?,
        status_source: source
            .map(|s| {
                StatusSource::parse(s)
                    .ok_or_else(|| corrupt(format!("order {no}: status source {s:?} is no source")))
            })
            .transpose()?,
        status_at: get(row, "status_at")?,
        expires_at: get(row, "expires_at")?,
        paid_at: get(row, "paid_at")?,
        refunded_amount: money(
            get(row, "refunded_fen")?,
            format_args!("order {no} refunded"),
        )?,
        out_trade_no: no,
    })
}

/// The columns [`refund_row`] reads.
pub(super) const REFUND_COLUMNS: &str = "out_trade_no, out_request_no, amount_fen, reason, state,
    trade_no, total_refunded_fen, day, created_at, updated_at, detail, owner";

pub(super) fn refund_row(row: &Row) -> Res<RefundRecord> {
    let no = trade_no_of(get(row, "out_trade_no")?)?;
    let req = request_no_of(get(row, "out_request_no")?, &no, "refund number")?;
    let what = format!("refund {req} of order {no}");
    Ok(RefundRecord {
        refund_amount: amount(get(row, "amount_fen")?, &what)?,
        reason: get(row, "reason")?,
        state: state(get(row, "state")?, &what)?,
        trade_no: get(row, "trade_no")?,
        total_refunded: get::<Option<i64>>(row, "total_refunded_fen")?
            .map(|fen| money(fen, &what))
            .transpose()?,
        day: get(row, "day")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        detail: get(row, "detail")?,
        owner: get::<Option<String>>(row, "owner")?.map(InstanceId),
        out_trade_no: no,
        out_request_no: req,
    })
}

/// The columns [`approval_row`] reads.
pub(super) const APPROVAL_COLUMNS: &str =
    "token_hash, out_trade_no, out_request_no, csrf, paid_fen, refunded_fen, expires_at, status,
     created_at, decided_at";

pub(super) fn approval_row(row: &Row) -> Res<ApprovalRecord> {
    let no = trade_no_of(get(row, "out_trade_no")?)?;
    let req = request_no_of(
        get(row, "out_request_no")?,
        &no,
        "approval of refund number",
    )?;
    let what = format!("approval of refund {req} of order {no}");
    let status: &str = get(row, "status")?;
    Ok(ApprovalRecord {
        token_hash: get(row, "token_hash")?,
        csrf: get(row, "csrf")?,
        paid: money(get(row, "paid_fen")?, &what)?,
        refunded: money(get(row, "refunded_fen")?, &what)?,
        expires_at: get(row, "expires_at")?,
        status: ApprovalStatus::parse(status)
            .ok_or_else(|| corrupt(format!("{what}: status {status:?} is no status")))?,
        created_at: get(row, "created_at")?,
        decided_at: get(row, "decided_at")?,
        out_trade_no: no,
        out_request_no: req,
    })
}

/// The columns [`notification_row`] reads.
pub(super) const NOTIFICATION_COLUMNS: &str =
    "notify_id, out_trade_no, trade_status, verdict, reason, received_at";

pub(super) fn notification_row(row: &Row) -> Res<NotificationRecord> {
    let verdict: &str = get(row, "verdict")?;
    Ok(NotificationRecord {
        notify_id: get(row, "notify_id")?,
        out_trade_no: get(row, "out_trade_no")?,
        trade_status: get::<Option<&str>>(row, "trade_status")?.map(TradeStatus::from),
        verdict: match verdict {
            "accepted" => NotificationVerdict::Accepted,
            "rejected" => NotificationVerdict::Rejected,
            other => {
                return Err(corrupt(format!(
                    "notification verdict {other:?} is no verdict"
                )));
            }
        },
        reason: get(row, "reason")?,
        received_at: get(row, "received_at")?,
    })
}
