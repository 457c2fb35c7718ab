//! The order ledger: every order this server creates, every status it learns, every refund, every
//! notification received, and an audit row for every money-moving call; and what must hold across
//! processes sharing it (which process is alive, one refund decision per order at a time, which
//! orders changed). An async trait with no rules in it: the money rules are `crate::domain`
//! functions, which a backend calls inside the transaction that records their outcome. SQLite is
//! the embedded backend; every backend passes `conformance`.
//!
//! Durability rule: a tool reports an action as done only after the ledger committed it; each call
//! commits in its own transaction, so `kill -9` at any point loses nothing already reported.
//!
//! Scope: a handle reads and writes the rows of one app in one environment ([`AppScope`]); every
//! row records both, so one store may hold several apps, and an order or refund number of one app
//! is never answered from another's.

#[cfg(test)]
mod conformance;
pub(crate) mod events;
mod postgres;
mod sqlite;

use std::fmt;

use alipay_openapi::{Amount, Money, TradeStatus};
use async_trait::async_trait;
use serde::Serialize;

use crate::domain::outbox::{DeliveryState, EventKind, Next, TargetKind};
use crate::domain::refund::{ApprovalStep, OverLimit};
use crate::domain::{OrderKind, OutRequestNo, OutTradeNo, RefundState, StatusSource};

pub use crate::domain::AppScope;
pub use postgres::{DEFAULT_POOL_SIZE, PostgresLedger, PostgresOptions};
pub use sqlite::SqliteLedger;

/// An order about to be recorded.
#[derive(Clone, Debug)]
pub struct NewOrder {
    pub out_trade_no: OutTradeNo,
    pub kind: OrderKind,
    pub amount: Amount,
    pub title: String,
    /// The payment link, or the QR code URL of a precreated order.
    pub link: String,
    /// Beijing time, `yyyy-MM-dd HH:mm:ss`: when Alipay stops taking payment (`time_expire`).
    pub expires_at: Option<String>,
    /// The call's audit row, written in the same commit as the order when the number is new
    /// (one write a create, not two; never an order without its row); not written when the
    /// number was taken, whose caller audits what it made of that.
    pub audit: Option<AuditRow>,
}

/// An order as the ledger knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderRecord {
    pub out_trade_no: OutTradeNo,
    pub kind: OrderKind,
    pub total_amount: Amount,
    pub title: String,
    pub link: String,
    /// Beijing time, `yyyy-MM-dd HH:mm:ss`.
    pub created_at: String,
    /// The last trade status learned from Alipay (`None`: no trade yet).
    pub trade_status: Option<TradeStatus>,
    pub trade_no: Option<String>,
    pub status_source: Option<StatusSource>,
    pub status_at: Option<String>,
    /// When Alipay stops taking payment (Beijing time); `None` for orders made before orders
    /// expired.
    pub expires_at: Option<String>,
    /// Cumulative refunded amount as Alipay last reported it.
    pub refunded_amount: Money,
    /// When it was paid (Beijing time), as Alipay said (`gmt_payment`, `send_pay_date`, the
    /// bill), else when this server first saw it paid; `None` while unpaid, and for orders paid
    /// before this was kept.
    pub paid_at: Option<String>,
}

/// Something learned about an order's trade, from a verified gateway answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusUpdate {
    pub trade_status: TradeStatus,
    pub trade_no: Option<String>,
    /// Cumulative refund (`refund_fee`), when the source reports it.
    pub refunded: Option<Money>,
    pub source: StatusSource,
    /// Beijing time on the gateway's clock when it was seen (`yyyy-MM-dd HH:mm:ss`): whether a
    /// close came at or after the order's expiry. `None` when not known.
    pub seen_at: Option<String>,
    /// When it was paid, if the source says (`gmt_payment`, `send_pay_date`, the bill).
    pub paid_at: Option<String>,
}

impl StatusUpdate {
    /// Whether applying this to `order` (as the ledger holds it, `None` if it holds no such order)
    /// would change nothing: the status it has, no trade number or payment time it lacks, no
    /// larger refund. Then a backend answers from that read, without a write transaction: a paid
    /// order queried again and again is the common case, and on PostgreSQL the write would cost
    /// a row lock and five round trips more.
    pub fn changes_nothing_in(&self, order: Option<&OrderRecord>) -> bool {
        let Some(order) = order else {
            return true;
        };
        let paid = matches!(
            self.trade_status,
            TradeStatus::TradeSuccess | TradeStatus::TradeFinished
        );
        order.trade_status.as_ref() == Some(&self.trade_status)
            && (order.trade_no.is_some() || self.trade_no.is_none())
            && !(paid && self.paid_at.is_some() && order.paid_at.is_none())
            && self
                .refunded
                .is_none_or(|r| r.fen() <= order.refunded_amount.fen())
    }
}

/// A server process, as the refunds it sends record it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct InstanceId(pub String);

impl InstanceId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A refund about to be sent.
#[derive(Clone, Debug)]
pub struct NewRefund {
    pub out_trade_no: OutTradeNo,
    pub out_request_no: OutRequestNo,
    pub amount: Amount,
    pub reason: Option<String>,
    /// The server process sending it, so only a dead one's are reconciled.
    pub owner: InstanceId,
    /// Where it stands with a person's approval.
    pub step: ApprovalStep,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundRecord {
    pub out_trade_no: OutTradeNo,
    pub out_request_no: OutRequestNo,
    pub refund_amount: Amount,
    pub reason: Option<String>,
    pub state: RefundState,
    pub trade_no: Option<String>,
    /// Alipay's cumulative `refund_fee` after this refund, when known.
    pub total_refunded: Option<Money>,
    /// Beijing day (`yyyy-MM-dd`) the refund was (last) begun: what the daily limit counts.
    pub day: String,
    pub created_at: String,
    pub updated_at: String,
    pub detail: Option<String>,
    /// The server process that last sent it.
    #[serde(skip)]
    pub owner: Option<InstanceId>,
}

/// What Alipay said about a refund, to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundOutcome {
    pub state: RefundState,
    pub trade_no: Option<String>,
    /// Alipay's cumulative refund on the trade, when it said.
    pub total_refunded: Option<Money>,
    pub detail: Option<String>,
    /// When Alipay made it (Beijing), when the source says (the bill's 完成时间); else the time it
    /// is recorded. Kept from the first word that it succeeded: which day's bill must have it.
    pub succeeded_at: Option<String>,
}

impl RefundOutcome {
    pub fn state(state: RefundState) -> Self {
        Self {
            state,
            trade_no: None,
            total_refunded: None,
            detail: None,
            succeeded_at: None,
        }
    }
}

/// What became of a refund request, decided atomically by [`crate::domain::refund::decide_begin`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefundBegin {
    /// New (or retried after a refusal): recorded as pending, owned by the sender; send it.
    Fresh,
    /// Same number, same amount, not yet confirmed: now owned by this sender; send it again.
    Retry(RefundRecord),
    /// Same number, same amount, already confirmed: answer from the record, send nothing.
    Replay(RefundRecord),
    /// Same number, different amount: refuse locally.
    Conflict(RefundRecord),
    /// Breaks a limit (in-flight refunds counted): refuse locally.
    Over(OverLimit),
    /// Same number, same amount, still awaiting a person's approval: nothing sent.
    StillAwaiting(RefundRecord),
}

/// Where a refund's approval page stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalStatus {
    /// Waiting for a person.
    Open,
    Approved,
    Denied,
    /// Not decided in time.
    Expired,
    /// A newer link was issued for the same refund.
    Replaced,
}

impl ApprovalStatus {
    pub const ALL: [Self; 5] = [
        Self::Open,
        Self::Approved,
        Self::Denied,
        Self::Expired,
        Self::Replaced,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Replaced => "replaced",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A refund's approval page, as recorded. The link's token itself is never stored: only its
/// SHA-256, so the ledger file cannot approve anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalRecord {
    pub token_hash: String,
    pub out_trade_no: OutTradeNo,
    pub out_request_no: OutRequestNo,
    /// The form's anti-forgery value.
    pub csrf: String,
    /// The figures offered for approval; a change by the time it is approved refuses it.
    pub paid: Money,
    pub refunded: Money,
    /// Beijing time.
    pub expires_at: String,
    pub status: ApprovalStatus,
    pub created_at: String,
    pub decided_at: Option<String>,
}

/// The limits a new refund (or one retried after it failed) is checked against, inside the
/// transaction that records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundLimits {
    /// `AP_DAILY_REFUND_LIMIT`.
    pub daily: Option<Money>,
    /// The Beijing day the refund counts against (`yyyy-MM-dd`).
    pub day: String,
    /// What the buyer paid, from a verified trade query.
    pub paid: Money,
}

/// A verified notification about one of our orders, with the fields the ledger keeps.
#[derive(Clone, Debug)]
pub struct ReceivedNotification {
    pub notify_id: String,
    pub out_trade_no: OutTradeNo,
    pub trade_status: TradeStatus,
    pub trade_no: Option<String>,
    pub refunded: Option<Money>,
    /// A refund's notification names the refund (`out_biz_no`, our `outRequestNo`): Alipay's
    /// signed word that it was made.
    pub refund_request_no: Option<OutRequestNo>,
    /// Everything but `sign` and `notify_time`, as `k=v&…` (sorted): a retry carries exactly this.
    pub content: String,
    /// Beijing time on the gateway's clock when Alipay sent it (`gmt_close`, else `notify_time`).
    pub seen_at: Option<String>,
    /// `gmt_payment`.
    pub paid_at: Option<String>,
    /// The body and content type exactly as received, for `AP_NOTIFY_FORWARD_URL`.
    pub raw: RawForm,
}

/// A form exactly as it came over the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawForm {
    pub content_type: String,
    pub body: Vec<u8>,
}

/// An event in the outbox: recorded in the transaction that recorded what it tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// `evt_` and 32 hex digits: the same on every attempt, so a receiver can deduplicate.
    pub id: String,
    pub kind: EventKind,
    pub out_trade_no: OutTradeNo,
    /// [`crate::domain::outbox::EventData`] as JSON text, written once.
    pub data: String,
    /// When it was recorded, Unix milliseconds.
    pub created_ms: i64,
    /// The verbatim notification of an [`EventKind::AlipayNotification`].
    pub raw: Option<RawForm>,
}

/// A delivery whose time has come, now leased to the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueDelivery {
    pub event: EventRecord,
    pub target: TargetKind,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// What one delivery attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptResult {
    /// `None`: delivered. Otherwise when to try again, or give up.
    pub next: Option<Next>,
    /// The HTTP status, when there was an answer.
    pub http_status: Option<u16>,
    /// What was wrong (or `ok`); never a URL, a secret or a signature.
    pub detail: String,
}

/// A delivery, as an order's resource and `doctor` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRecord {
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub target: TargetKind,
    pub state: DeliveryState,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Beijing time of the next attempt, while pending.
    pub next_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
}

/// How deliveries to one target have gone lately.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetHealth {
    pub target: TargetKind,
    pub pending: u64,
    pub delivered: u64,
    /// Given up.
    pub failed: u64,
    /// The latest failed attempt's detail and Beijing time, if any.
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub last_delivered_at: Option<String>,
}

/// The ledger's verdict on a verified notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotifyApply {
    /// Recorded and applied.
    Applied,
    /// The same notification again (an Alipay retry): nothing changes.
    Duplicate,
    /// A known `notify_id` with different content.
    ReusedId,
    /// Older than what the ledger knows (e.g. `TRADE_SUCCESS` for a closed order).
    Stale {
        incoming: TradeStatus,
        known: Option<TradeStatus>,
    },
}

/// Whether a received notification was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationVerdict {
    Accepted,
    Rejected,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationRecord {
    pub notify_id: Option<String>,
    /// As the notification named it (a refused one may name no order of ours).
    pub out_trade_no: Option<String>,
    pub trade_status: Option<TradeStatus>,
    pub verdict: NotificationVerdict,
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
    /// What was told outward about it, per target.
    pub deliveries: Vec<DeliveryRecord>,
}

/// Which orders `list_orders` keeps, by status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    /// Orders Alipay has no trade for yet (the buyer never opened the link).
    NotCreated,
    Is(TradeStatus),
}

/// A filter for `list_orders`, newest first.
#[derive(Clone, Debug, Default)]
pub struct OrderFilter {
    pub status: Option<StatusFilter>,
    /// Beijing day `yyyy-MM-dd` the order was created.
    pub day: Option<String>,
    pub limit: usize,
}

/// What the audit row says was decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditDecision {
    /// Sent (or signed) as asked.
    Allowed,
    /// Answered from the ledger; nothing sent.
    Replayed,
    /// Refused before anything was sent, by the named rule.
    Refused(String),
}

impl fmt::Display for AuditDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Allowed => f.write_str("allowed"),
            Self::Replayed => f.write_str("replayed"),
            Self::Refused(rule) => write!(f, "refused: {rule}"),
        }
    }
}

/// What the audit row says came of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditOutcome {
    Succeeded,
    Failed,
    /// Sent; whether it happened is not known.
    Unknown,
    NotSent,
    /// Alipay answered but the ledger could not record it.
    Unrecorded,
    /// Recorded, not sent: waiting for a person's approval on its page.
    AwaitingApproval,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
            Self::NotSent => "not sent",
            Self::Unrecorded => "unrecorded",
            Self::AwaitingApproval => "awaiting approval",
        }
    }
}

/// One audit row: a money-moving tool call and what became of it.
#[derive(Clone, Debug)]
pub struct AuditEntry<'a> {
    pub tool: &'a str,
    /// The arguments, as JSON, without secrets (tools take none).
    pub arguments: &'a serde_json::Value,
    pub decision: AuditDecision,
    pub outcome: AuditOutcome,
}

/// An audit row as stored: an [`AuditEntry`]'s fields, owned (they cross to the writer's thread
/// or into a statement).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    pub tool: String,
    /// The arguments as JSON text.
    pub arguments: String,
    pub decision: String,
    pub outcome: &'static str,
}

impl AuditRow {
    pub fn of(entry: &AuditEntry<'_>) -> Self {
        Self {
            tool: entry.tool.to_string(),
            arguments: entry.arguments.to_string(),
            decision: entry.decision.to_string(),
            outcome: entry.outcome.as_str(),
        }
    }
}

/// Whether an order number was new.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateOrder {
    Created(OrderRecord),
    Existing(OrderRecord),
}

/// An order whose committed state changed (status, refund, notification): what subscribers of
/// its resource, and anyone waiting on it, must hear.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderChanged {
    pub out_trade_no: OutTradeNo,
}

/// Held while one refund decision is made on an order (released on drop).
pub struct OrderLock(#[allow(dead_code)] Box<dyn Send + Sync>);

/// How long [`Ledger::lock_order`] waits for another holder of the order's lock before it gives
/// up: a holder makes a signed query and a refund call, each bounded by the gateway's timeout, so
/// a longer wait means a holder that is stuck, or on a host that is gone (whose lock the database
/// releases when TCP keepalive gives up on it, about a minute). A caller that gives up has done
/// nothing and can say so, well inside an MCP client's own patience.
pub const ORDER_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(45);

/// The answer of a wait for an order's lock that ran out: nothing was done.
pub(crate) fn order_lock_timed_out(no: &OutTradeNo, wait: std::time::Duration) -> LedgerError {
    LedgerError::new(
        LedgerErrorKind::Unavailable,
        format!(
            "another refund decision on order {no} has held its lock for over {} s (in this process or another sharing the ledger); nothing was done, try again later",
            wait.as_secs_f32()
        ),
    )
}

impl OrderLock {
    pub fn new(guard: impl Send + Sync + 'static) -> Self {
        Self(Box::new(guard))
    }
}

/// What went wrong in the ledger, by what a caller can do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LedgerErrorKind {
    /// The store cannot be reached or is busy now (locked, disk, connection); nothing changed.
    Unavailable,
    /// A write was sent but whether it committed is not known (the connection died at commit).
    CommitOutcomeUnknown,
    /// A constraint refused the write (another writer got there first); nothing changed.
    Conflict,
    /// A stored row cannot be read as what it should be.
    Corrupt,
    /// The store is not one this configuration may use (another environment's, an old layout).
    Refused,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("order ledger: {message}")]
pub struct LedgerError {
    pub kind: LedgerErrorKind,
    pub message: String,
}

impl LedgerError {
    pub fn new(kind: LedgerErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// The storage seam. Every method is one transaction; none makes a money decision of its own.
#[async_trait]
pub trait Ledger: Send + Sync {
    /// The scope this handle reads and writes.
    fn scope(&self) -> &AppScope;
    /// This process, as it registered itself when the ledger was opened.
    fn instance(&self) -> &InstanceId;
    /// Today's Beijing day (`yyyy-MM-dd`) on the store's clock: what the daily refund budget
    /// counts, the same for every process sharing the store.
    async fn today(&self) -> Result<String, LedgerError> {
        Ok(self.now().await?[..10].to_string())
    }
    /// Now, Beijing `yyyy-MM-dd HH:mm:ss`, on the store's clock: the clock every timestamp it
    /// records is read on, so ages compare like with like across hosts.
    async fn now(&self) -> Result<String, LedgerError>;
    /// Whether the process that registered `instance` still runs (its lease is held).
    async fn is_alive(&self, instance: &InstanceId) -> Result<bool, LedgerError>;
    /// Take the order's refund lock: one refund decision per order at a time, across every
    /// process sharing the store. Waits at most [`ORDER_LOCK_WAIT`] (or what the handle was
    /// opened with), then `Unavailable`.
    async fn lock_order(&self, out_trade_no: &OutTradeNo) -> Result<OrderLock, LedgerError>;
    /// Orders whose committed state changed, by any writer this backend can hear.
    fn changes(&self) -> tokio::sync::broadcast::Receiver<OrderChanged>;

    /// Record a new order (and its audit row, in the same commit), or return the one already
    /// recorded under that number (unchanged, and no audit row written).
    async fn create_order(&self, order: &NewOrder) -> Result<CreateOrder, LedgerError>;
    async fn order(&self, out_trade_no: &OutTradeNo) -> Result<Option<OrderRecord>, LedgerError>;
    /// Apply a status learned from a verified gateway answer (and raise the reported refund total,
    /// which only grows). Returns true when the status changed.
    async fn update_status(
        &self,
        out_trade_no: &OutTradeNo,
        update: &StatusUpdate,
    ) -> Result<bool, LedgerError>;
    /// [`Self::update_status`], then the order as it stands after it. A status that changes
    /// nothing (a paid order queried again, the common case) is answered from the one read that
    /// decides so; the rare write is read again after.
    async fn update_status_then_order(
        &self,
        out_trade_no: &OutTradeNo,
        update: &StatusUpdate,
    ) -> Result<(bool, Option<OrderRecord>), LedgerError> {
        let known = self.order(out_trade_no).await?;
        if update.changes_nothing_in(known.as_ref()) {
            return Ok((false, known));
        }
        let changed = self.update_status(out_trade_no, update).await?;
        Ok((changed, self.order(out_trade_no).await?))
    }
    async fn list_orders(&self, filter: &OrderFilter) -> Result<Vec<OrderRecord>, LedgerError>;

    /// Decide with [`crate::domain::refund::decide_begin`], atomically, and record the decision:
    /// a fresh refund as pending, a retry as now the sender's.
    async fn begin_refund(
        &self,
        refund: &NewRefund,
        limits: &RefundLimits,
    ) -> Result<RefundBegin, LedgerError>;
    /// Record a refund's outcome where [`crate::domain::refund::may_record`] allows (raising the
    /// order's reported refund total in any case); returns the state held afterwards, `None` when
    /// there is no such refund.
    async fn finish_refund(
        &self,
        out_trade_no: &OutTradeNo,
        out_request_no: &OutRequestNo,
        outcome: &RefundOutcome,
        sender: Option<&InstanceId>,
    ) -> Result<Option<RefundState>, LedgerError>;
    async fn refund(
        &self,
        out_trade_no: &OutTradeNo,
        out_request_no: &OutRequestNo,
    ) -> Result<Option<RefundRecord>, LedgerError>;
    async fn refunds(&self, out_trade_no: &OutTradeNo) -> Result<Vec<RefundRecord>, LedgerError>;
    /// Refunds whose outcome is not settled (pending or unknown), oldest first.
    async fn unsettled_refunds(&self) -> Result<Vec<RefundRecord>, LedgerError>;
    /// What was, or may have been, refunded on a trade besides `except`
    /// ([`crate::domain::refund::RefundFacts::refunded`]).
    async fn refunded_besides(
        &self,
        out_trade_no: &OutTradeNo,
        except: &OutRequestNo,
    ) -> Result<Money, LedgerError>;
    /// Sum of the refunds begun on a Beijing `day` that may have moved money.
    async fn refunded_on_day(&self, day: &str) -> Result<Money, LedgerError>;
    /// Orders paid on a Beijing `day` (`paid_at`, else when the payment was learned): what that
    /// day's bill must have.
    async fn paid_on(&self, day: &str) -> Result<Vec<OrderRecord>, LedgerError>;
    /// Refunds recorded as succeeded on a Beijing `day`: what that day's bill must have.
    async fn refunds_succeeded_on(&self, day: &str) -> Result<Vec<RefundRecord>, LedgerError>;

    /// Judge with [`crate::domain::notify::verdict`] and, if taken, record and apply it; a
    /// refund's notification settles its refund as succeeded.
    async fn apply_notification(
        &self,
        n: &ReceivedNotification,
    ) -> Result<NotifyApply, LedgerError>;
    /// Record a notification that was refused (the reason is kept, cut to a sane length; nothing
    /// else changes).
    async fn reject_notification(
        &self,
        notify_id: Option<&str>,
        out_trade_no: Option<&str>,
        reason: &str,
    ) -> Result<(), LedgerError>;
    async fn notifications(
        &self,
        out_trade_no: &OutTradeNo,
    ) -> Result<Vec<NotificationRecord>, LedgerError>;
    async fn audit(&self, entry: &AuditEntry<'_>) -> Result<(), LedgerError>;

    /// Record a refund's approval page (status open), replacing any open one of the same refund.
    async fn put_approval(&self, approval: &ApprovalRecord) -> Result<(), LedgerError>;
    async fn approval(&self, token_hash: &str) -> Result<Option<ApprovalRecord>, LedgerError>;
    /// Move an open approval to `status`, once: false when it was not open (decided, expired,
    /// replaced), so of two decisions at once only one wins.
    async fn close_approval(
        &self,
        token_hash: &str,
        status: ApprovalStatus,
    ) -> Result<bool, LedgerError>;
    /// Approvals still open, oldest first (for the expiry sweep).
    async fn open_approvals(&self) -> Result<Vec<ApprovalRecord>, LedgerError>;

    /// Lease up to `limit` deliveries due at `now_ms` to this instance for `lease_ms` (another
    /// instance takes them again only once the lease ran out), oldest first; only deliveries to
    /// the targets this handle was opened with.
    async fn claim_deliveries(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<DueDelivery>, LedgerError>;
    /// Record an attempt, and the delivery's next state. A delivery already delivered stays so.
    async fn record_attempt(
        &self,
        event_id: &str,
        target: TargetKind,
        result: &AttemptResult,
    ) -> Result<(), LedgerError>;
    /// When the next pending delivery is due (Unix milliseconds), if any.
    async fn next_delivery_at(&self) -> Result<Option<i64>, LedgerError>;
    async fn deliveries(
        &self,
        out_trade_no: &OutTradeNo,
    ) -> Result<Vec<DeliveryRecord>, LedgerError>;
    /// Per target that ever had a delivery.
    async fn delivery_health(&self) -> Result<Vec<TargetHealth>, LedgerError>;
    /// Orders whose expiry (Beijing `expired_by`) passed with no trade or an unpaid one, and no
    /// event of their end yet, expiring after `since`: what the expiry sweep asks Alipay about.
    async fn expired_untold(
        &self,
        since: &str,
        expired_by: &str,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, LedgerError>;
    /// An order Alipay has no trade for went past its expiry: record its `order.expired` event
    /// (once). False when it has a trade after all, or the event is already there.
    async fn note_expired(&self, out_trade_no: &OutTradeNo) -> Result<bool, LedgerError>;

    async fn order_detail(
        &self,
        out_trade_no: &OutTradeNo,
    ) -> Result<Option<OrderDetail>, LedgerError> {
        let Some(order) = self.order(out_trade_no).await? else {
            return Ok(None);
        };
        Ok(Some(OrderDetail {
            refunds: self.refunds(out_trade_no).await?,
            notifications: self.notifications(out_trade_no).await?,
            deliveries: self.deliveries(out_trade_no).await?,
            order,
        }))
    }
}
