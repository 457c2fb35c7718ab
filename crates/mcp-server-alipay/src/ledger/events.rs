//! What every backend writes for an outbox event, the same way: which configured targets get a
//! delivery, the event's subject (what makes it unique besides its order and kind), its id, and
//! its figures. A backend only stores them, inside the transaction that records the change.

use alipay_openapi::TradeStatus;

use crate::domain::outbox::{
    EventData, EventKind, RefundData, StatusChange, TargetKind, order_event, receives,
};
use crate::domain::{AppScope, StatusSource};
use crate::ledger::{OrderRecord, RawForm, RefundRecord, StatusUpdate};

/// An event about to be recorded.
pub(crate) struct NewEvent<'a> {
    pub(crate) kind: EventKind,
    pub(crate) order: &'a OrderRecord,
    /// The refund it is about.
    pub(crate) refund: Option<&'a RefundRecord>,
    /// The notification it forwards: its id and the verbatim form.
    pub(crate) notification: Option<(&'a str, &'a RawForm)>,
}

impl<'a> NewEvent<'a> {
    /// The event a status change of `order` (as it is now, after `update`) is, if any.
    pub(crate) fn of_status(
        before: Option<&TradeStatus>,
        order: &'a OrderRecord,
        update: &StatusUpdate,
    ) -> Option<Self> {
        // Past its expiry when the change was seen, on the gateway's clock.
        let past_expiry = match (&order.expires_at, &update.seen_at) {
            (Some(expires), Some(seen)) => seen >= expires,
            _ => false,
        };
        let kind = order_event(StatusChange {
            before,
            after: &update.trade_status,
            total: order.total_amount,
            refunded: order.refunded_amount,
            closed_by_us: update.source == StatusSource::Close,
            past_expiry,
        })?;
        Some(Self {
            kind,
            order,
            refund: None,
            notification: None,
        })
    }

    /// The configured targets that hear of it (none: nothing is recorded).
    pub(crate) fn receivers(&self, targets: &[TargetKind]) -> Vec<TargetKind> {
        targets
            .iter()
            .copied()
            .filter(|t| receives(*t, self.kind))
            .collect()
    }

    /// The refund's number, the notification's id, or empty: with the order and the kind, what
    /// makes the event one.
    pub(crate) fn subject(&self) -> String {
        match (self.refund, self.notification) {
            (Some(r), _) => r.out_request_no.to_string(),
            (None, Some((notify_id, _))) => notify_id.to_string(),
            (None, None) => String::new(),
        }
    }

    /// The verbatim notification, when it forwards one.
    pub(crate) fn raw(&self) -> Option<&RawForm> {
        self.notification.map(|(_, raw)| raw)
    }

    /// Its figures as JSON text, recorded at `occurred_at` (Beijing time on the store's clock).
    pub(crate) fn data(&self, scope: &AppScope, occurred_at: String) -> String {
        let order = self.order;
        let data = EventData {
            out_trade_no: order.out_trade_no.to_string(),
            order_kind: order.kind.as_str().to_string(),
            title: order.title.clone(),
            total_amount: order.total_amount.to_string(),
            trade_status: order.trade_status.as_ref().map(|t| t.as_str().to_string()),
            trade_no: order.trade_no.clone(),
            refunded_amount: order.refunded_amount.to_string(),
            expires_at: order.expires_at.clone(),
            refund: self.refund.map(|r| RefundData {
                out_request_no: r.out_request_no.to_string(),
                refund_amount: r.refund_amount.to_string(),
                state: r.state.as_str().to_string(),
            }),
            notify_id: self.notification.map(|(id, _)| id.to_string()),
            app_id: scope.app_id.clone(),
            env: scope.env.as_str().to_string(),
            occurred_at,
        };
        // A struct of strings: serialising it cannot fail.
        serde_json::to_string(&data).unwrap_or_default()
    }
}

/// `evt_` and 32 hex digits (128 random bits).
pub(crate) fn new_event_id() -> String {
    let bytes: [u8; 16] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("evt_{hex}")
}

/// Unix milliseconds on this host's clock: the deliveries' schedule (the delivery worker passes
/// its own `now_ms` the same way).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
