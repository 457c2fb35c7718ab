//! The order ledger: every order this server creates, every status it learns, every refund, every
//! notification received, and an audit row for every money-moving call. Behind a small trait so a
//! PostgreSQL backend can follow the SQLite one.
//!
//! Durability rule: a tool reports an action as done only after the ledger committed it; the
//! SQLite backend commits each call in its own transaction (WAL), so `kill -9` at any point loses
//! nothing already reported.

mod sqlite;

use alipay_openapi::{Amount, Money};
use serde::Serialize;

pub use sqlite::SqliteLedger;

/// Which tool created an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum OrderKind {
    #[serde(rename = "mobile")]
    Mobile,
    #[serde(rename = "webPage")]
    WebPage,
    #[serde(rename = "qrCode")]
    QrCode,
}

impl OrderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderKind::Mobile => "mobile",
            OrderKind::WebPage => "webPage",
            OrderKind::QrCode => "qrCode",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "mobile" => Some(OrderKind::Mobile),
            "webPage" => Some(OrderKind::WebPage),
            "qrCode" => Some(OrderKind::QrCode),
            _ => None,
        }
    }
}

/// An order about to be recorded.
#[derive(Clone, Debug)]
pub struct NewOrder {
    pub out_trade_no: String,
    pub kind: OrderKind,
    pub amount: Amount,
    pub title: String,
    /// The payment link, or the QR code URL of a precreated order.
    pub link: String,
}

/// An order as the ledger knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderRecord {
    pub out_trade_no: String,
    pub kind: OrderKind,
    pub total_amount: Amount,
    pub title: String,
    pub link: String,
    pub created_at: String,
    /// The last trade status learned from Alipay (`None`: no trade yet).
    pub trade_status: Option<String>,
    pub trade_no: Option<String>,
    /// Where the status came from: `query`, `notify`, `refund`, `close`, `reconcile`.
    pub status_source: Option<String>,
    pub status_at: Option<String>,
    /// Cumulative refunded amount as Alipay last reported it.
    pub refunded_amount: Money,
}

/// Something learned about an order's trade, from a verified gateway answer.
#[derive(Clone, Debug)]
pub struct StatusUpdate<'a> {
    pub trade_status: &'a str,
    pub trade_no: Option<&'a str>,
    /// Cumulative refund (`refund_fee`), when the source reports it.
    pub refunded: Option<Money>,
    pub source: &'a str,
}

/// The state of one refund request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundState {
    /// Recorded, being sent; outcome not yet known.
    Pending,
    /// Alipay confirmed it (`fund_change` Y or `REFUND_SUCCESS`).
    Succeeded,
    /// Alipay refused it; no money moved.
    Failed,
    /// Sent, answer lost: may or may not have happened.
    Unknown,
}

impl RefundState {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundState::Pending => "pending",
            RefundState::Succeeded => "succeeded",
            RefundState::Failed => "failed",
            RefundState::Unknown => "unknown",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "succeeded" => RefundState::Succeeded,
            "failed" => RefundState::Failed,
            "unknown" => RefundState::Unknown,
            _ => RefundState::Pending,
        }
    }
}

/// A refund about to be sent.
#[derive(Clone, Debug)]
pub struct NewRefund {
    pub out_trade_no: String,
    pub out_request_no: String,
    pub amount: Amount,
    pub reason: Option<String>,
    /// The server process sending it (`crate::instance`), so only a dead one's are reconciled.
    pub owner: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundRecord {
    pub out_trade_no: String,
    pub out_request_no: String,
    pub refund_amount: Amount,
    pub reason: Option<String>,
    pub state: RefundState,
    pub trade_no: Option<String>,
    /// Alipay's cumulative `refund_fee` after this refund, when known.
    pub total_refunded: Option<Money>,
    /// Beijing day (`yyyy-MM-dd`) the refund was first requested: what the daily limit counts.
    pub day: String,
    pub created_at: String,
    pub updated_at: String,
    pub detail: Option<String>,
    /// The server process that last sent it.
    #[serde(skip)]
    pub owner: Option<String>,
}

/// What Alipay said about a refund, to record.
#[derive(Clone, Copy, Debug)]
pub struct RefundOutcome<'a> {
    pub state: RefundState,
    pub trade_no: Option<&'a str>,
    /// Alipay's cumulative refund on the trade, when it said.
    pub total_refunded: Option<Money>,
    pub detail: Option<&'a str>,
}

impl RefundOutcome<'_> {
    pub fn state(state: RefundState) -> Self {
        RefundOutcome {
            state,
            trade_no: None,
            total_refunded: None,
            detail: None,
        }
    }
}

/// What to do with a refund request, decided atomically.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefundBegin {
    /// New: recorded as pending; send it.
    Fresh,
    /// Same number, same amount, not yet confirmed: send it again with the same number.
    Retry(RefundRecord),
    /// Same number, same amount, already confirmed: answer from the record, send nothing.
    Replay(RefundRecord),
    /// Same number, different amount: refuse locally.
    Conflict(RefundRecord),
    /// Would exceed the daily refund limit (`used` includes pending and unknown refunds).
    OverDailyLimit { used: Money },
    /// Would exceed what was paid minus what was (or may have been) refunded.
    OverRemaining { refunded: Money },
}

/// The limits a new refund (or a refund retried after it failed) is checked against, inside the
/// transaction that records it, so two concurrent refunds cannot both pass.
#[derive(Clone, Copy, Debug)]
pub struct RefundLimits<'a> {
    /// `AP_DAILY_REFUND_LIMIT`.
    pub daily: Option<Money>,
    /// The Beijing day the refund counts against.
    pub day: &'a str,
    /// What the buyer paid, from a verified trade query.
    pub paid: Money,
}

/// A verified notification, with the fields the ledger keeps.
#[derive(Clone, Debug)]
pub struct ReceivedNotification {
    pub notify_id: String,
    pub out_trade_no: String,
    pub trade_status: String,
    pub trade_no: Option<String>,
    pub refunded: Option<Money>,
    /// A refund's notification names the refund (`out_biz_no`, our `outRequestNo`): Alipay's
    /// signed word that it was made.
    pub refund_request_no: Option<String>,
    /// Everything but `sign`, as `k=v&…` (sorted): a retry carries exactly the same.
    pub content: String,
}

/// The ledger's verdict on a verified, checked notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotifyApply {
    /// Recorded and applied.
    Applied,
    /// The same notification again (an Alipay retry): nothing changes.
    Duplicate,
    /// A known `notify_id` with different content.
    ReusedId,
    /// Older than what the ledger knows (e.g. `TRADE_SUCCESS` for a closed order).
    Stale(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationRecord {
    pub notify_id: Option<String>,
    pub out_trade_no: Option<String>,
    pub trade_status: Option<String>,
    pub verdict: String,
    pub reason: Option<String>,
    pub received_at: String,
}

/// An order with everything that happened to it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderDetail {
    #[serde(flatten)]
    pub order: OrderRecord,
    pub refunds: Vec<RefundRecord>,
    pub notifications: Vec<NotificationRecord>,
}

/// A filter for `list-alipay-orders`.
#[derive(Clone, Debug, Default)]
pub struct OrderFilter {
    /// A trade status, or `NOT_CREATED` for orders Alipay has no trade for yet.
    pub status: Option<String>,
    /// Beijing day `yyyy-MM-dd` the order was created.
    pub day: Option<String>,
    pub limit: usize,
}

/// One audit row: a money-moving tool call and what became of it.
#[derive(Clone, Debug)]
pub struct AuditEntry<'a> {
    pub tool: &'a str,
    /// The arguments, as JSON, without secrets (tools take none).
    pub arguments: &'a serde_json::Value,
    /// `allowed`, `replayed`, or `refused: <rule>`.
    pub decision: &'a str,
    pub outcome: &'a str,
}

#[derive(Debug, thiserror::Error)]
#[error("order ledger: {0}")]
pub struct LedgerError(pub String);

impl From<rusqlite::Error> for LedgerError {
    fn from(e: rusqlite::Error) -> Self {
        LedgerError(e.to_string())
    }
}

/// Whether an order number was new.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateOrder {
    Created(OrderRecord),
    Existing(OrderRecord),
}

pub trait Ledger: Send + Sync {
    /// Bind the ledger to one environment and app the first time; refuse another one later, so an
    /// order or refund number can never be answered from another app's (or local mode's) records.
    fn claim(&self, env: &str, app_id: &str) -> Result<(), LedgerError>;
    /// Record a new order, or return the one already recorded under that number (unchanged).
    fn create_order(&self, order: &NewOrder) -> Result<CreateOrder, LedgerError>;
    fn order(&self, out_trade_no: &str) -> Result<Option<OrderRecord>, LedgerError>;
    /// Apply a status learned from a verified gateway answer. Returns true when it changed.
    fn update_status(
        &self,
        out_trade_no: &str,
        update: &StatusUpdate<'_>,
    ) -> Result<bool, LedgerError>;
    /// Decide, atomically, what to do with a refund request: replay, resend with the same number,
    /// refuse, or record it as pending (checking the daily limit and the refundable remainder).
    fn begin_refund(
        &self,
        refund: &NewRefund,
        limits: &RefundLimits<'_>,
    ) -> Result<RefundBegin, LedgerError>;
    /// Record a refund's outcome; returns the state the ledger holds afterwards. A confirmed refund
    /// is never downgraded by a later, less certain answer; any other outcome applies only while
    /// the refund is still unsettled and, when `sender` is given, still that sender's (another
    /// process may have taken it over with a resend). `Succeeded` always applies: Alipay said so.
    fn finish_refund(
        &self,
        out_trade_no: &str,
        out_request_no: &str,
        outcome: &RefundOutcome<'_>,
        sender: Option<&str>,
    ) -> Result<Option<RefundState>, LedgerError>;
    fn refunds(&self, out_trade_no: &str) -> Result<Vec<RefundRecord>, LedgerError>;
    /// Refunds whose outcome is not settled (pending or unknown), for reconciliation.
    fn unsettled_refunds(&self) -> Result<Vec<RefundRecord>, LedgerError>;
    /// What was, or may have been, refunded on a trade besides `except_request`: Alipay's last
    /// reported total or our confirmed refunds, whichever is more, plus our refunds in flight.
    fn refunded_before(
        &self,
        out_trade_no: &str,
        except_request: &str,
    ) -> Result<Money, LedgerError>;
    /// Sum of the refunds requested on `day` that may have moved money.
    fn refunded_on(&self, day: &str) -> Result<Money, LedgerError>;
    fn apply_notification(&self, n: &ReceivedNotification) -> Result<NotifyApply, LedgerError>;
    /// Record a notification that was refused (the reason is kept; nothing else changes).
    fn reject_notification(
        &self,
        notify_id: Option<&str>,
        out_trade_no: Option<&str>,
        reason: &str,
    ) -> Result<(), LedgerError>;
    fn notifications(&self, out_trade_no: &str) -> Result<Vec<NotificationRecord>, LedgerError>;
    fn list_orders(&self, filter: &OrderFilter) -> Result<Vec<OrderRecord>, LedgerError>;
    fn audit(&self, entry: &AuditEntry<'_>) -> Result<(), LedgerError>;

    fn order_detail(&self, out_trade_no: &str) -> Result<Option<OrderDetail>, LedgerError> {
        let Some(order) = self.order(out_trade_no)? else {
            return Ok(None);
        };
        Ok(Some(OrderDetail {
            refunds: self.refunds(out_trade_no)?,
            notifications: self.notifications(out_trade_no)?,
            order,
        }))
    }
}

/// Progress of a trade: a status never moves backwards by a notification.
pub fn status_rank(status: Option<&str>) -> u8 {
    match status {
        None => 0,
        Some("WAIT_BUYER_PAY") => 1,
        Some("TRADE_SUCCESS") => 2,
        Some("TRADE_CLOSED" | "TRADE_FINISHED") => 3,
        Some(_) => 1,
    }
}
