//! The outbox: which verified events are told outward, to which kind of target, and when a failed
//! delivery is tried again. Pure: the ledger asks [`order_event`] and [`refund_event`] inside the
//! transaction that records a change, and writes one delivery per target that [`receives`] it; the
//! delivery worker asks [`RetryPolicy::after_failure`] what to do after an attempt failed.

use std::time::Duration;

use alipay_openapi::{Amount, Money, TradeStatus};
use serde::{Deserialize, Serialize};

use super::order::{PaymentState, payment_state, progress};
use super::refund::RefundState;

/// What happened, as a webhook's `type` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "payment.succeeded")]
    PaymentSucceeded,
    /// Closed unpaid before its expiry (by `close-alipay-payment`, or at Alipay).
    #[serde(rename = "order.closed")]
    OrderClosed,
    /// Not paid by its expiry.
    #[serde(rename = "order.expired")]
    OrderExpired,
    #[serde(rename = "refund.succeeded")]
    RefundSucceeded,
    /// Sent to Alipay and refused there (no money moved).
    #[serde(rename = "refund.failed")]
    RefundFailed,
    /// A verified Alipay notification, kept byte for byte for `AP_NOTIFY_FORWARD_URL`.
    #[serde(rename = "alipay.notification")]
    AlipayNotification,
}

impl EventKind {
    pub const ALL: [Self; 6] = [
        Self::PaymentSucceeded,
        Self::OrderClosed,
        Self::OrderExpired,
        Self::RefundSucceeded,
        Self::RefundFailed,
        Self::AlipayNotification,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PaymentSucceeded => "payment.succeeded",
            Self::OrderClosed => "order.closed",
            Self::OrderExpired => "order.expired",
            Self::RefundSucceeded => "refund.succeeded",
            Self::RefundFailed => "refund.failed",
            Self::AlipayNotification => "alipay.notification",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A kind of place events are delivered to (each configured at most once).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// `AP_NOTIFY_FORWARD_URL`: the merchant's own Alipay notify handler, sent the verbatim form.
    Forward,
    /// `AP_WEBHOOK_URL`: our signed JSON event.
    Webhook,
    /// `AP_DINGTALK_WEBHOOK`: a DingTalk group robot.
    DingTalk,
    /// `AP_WECOM_WEBHOOK`: a WeCom (企业微信) group robot.
    WeCom,
    /// `AP_FEISHU_WEBHOOK`: a Feishu (飞书) custom bot.
    Feishu,
}

impl TargetKind {
    pub const ALL: [Self; 5] = [
        Self::Forward,
        Self::Webhook,
        Self::DingTalk,
        Self::WeCom,
        Self::Feishu,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forward => "forward",
            Self::Webhook => "webhook",
            Self::DingTalk => "dingtalk",
            Self::WeCom => "wecom",
            Self::Feishu => "feishu",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The variable that configures it.
    pub fn variable(self) -> &'static str {
        match self {
            Self::Forward => "AP_NOTIFY_FORWARD_URL",
            Self::Webhook => "AP_WEBHOOK_URL",
            Self::DingTalk => "AP_DINGTALK_WEBHOOK",
            Self::WeCom => "AP_WECOM_WEBHOOK",
            Self::Feishu => "AP_FEISHU_WEBHOOK",
        }
    }
}

/// Whether a target is sent an event of this kind: the merchant's notify handler hears exactly
/// what Alipay would have told it; everyone else hears our own events.
pub fn receives(target: TargetKind, kind: EventKind) -> bool {
    match target {
        TargetKind::Forward => kind == EventKind::AlipayNotification,
        _ => kind != EventKind::AlipayNotification,
    }
}

/// The facts of an order around a status change, for [`order_event`].
#[derive(Clone, Copy, Debug)]
pub struct StatusChange<'a> {
    pub before: Option<&'a TradeStatus>,
    pub after: &'a TradeStatus,
    pub total: Amount,
    pub refunded: Money,
    /// The new status came from our own `alipay.trade.close`.
    pub closed_by_us: bool,
    /// The order's expiry had passed on the gateway's clock when the change was seen.
    pub past_expiry: bool,
}

/// The event a status change is, if any: a first payment, or an end without one. A paid trade
/// that closes later (refunded in full) is told by its refunds' events, not as a close.
pub fn order_event(change: StatusChange<'_>) -> Option<EventKind> {
    let was_paid = progress(change.before) >= 2;
    let state = payment_state(
        Some(change.after),
        change.total,
        change.refunded,
        change.closed_by_us,
        change.past_expiry,
    );
    match state {
        _ if was_paid => None,
        PaymentState::Paid => Some(EventKind::PaymentSucceeded),
        PaymentState::Closed => Some(EventKind::OrderClosed),
        PaymentState::Expired => Some(EventKind::OrderExpired),
        PaymentState::Refunded | PaymentState::Waiting => None,
    }
}

/// The event a refund's settlement is, if any. A refund that was never sent (refused by a person
/// on its approval page, or expired there) moved nothing and tells nothing.
pub fn refund_event(before: RefundState, after: RefundState) -> Option<EventKind> {
    match (before, after) {
        (RefundState::Succeeded, _) => None,
        (_, RefundState::Succeeded) => Some(EventKind::RefundSucceeded),
        (RefundState::Pending | RefundState::Unknown, RefundState::Failed) => {
            Some(EventKind::RefundFailed)
        }
        _ => None,
    }
}

/// The figures an event carries (a webhook's `data`; what a chat message is made from). Written
/// once, when the event is recorded, so every retry sends the same.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventData {
    pub out_trade_no: String,
    /// `mobile`, `webPage`, `qrCode` or `agent`: the tool that made the order.
    pub order_kind: String,
    pub title: String,
    /// Yuan, two decimals.
    pub total_amount: String,
    pub trade_status: Option<String>,
    pub trade_no: Option<String>,
    /// Yuan: what Alipay last reported refunded in all.
    pub refunded_amount: String,
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<RefundData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_id: Option<String>,
    pub app_id: String,
    /// `prod`, `sandbox` or `local` (no money moves in local mode).
    pub env: String,
    /// Beijing time, `yyyy-MM-dd HH:mm:ss`: when this server recorded it.
    pub occurred_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundData {
    pub out_request_no: String,
    /// Yuan.
    pub refund_amount: String,
    pub state: String,
}

/// Where a delivery to one target stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Not yet taken by the target; tried again at its next time.
    Pending,
    /// The target answered as its platform says success looks.
    Delivered,
    /// Given up after the retry window.
    Failed,
}

impl DeliveryState {
    pub const ALL: [Self; 3] = [Self::Pending, Self::Delivered, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// When a failed delivery is tried again, and when it is given up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the 1st, 2nd, … failure; the last repeats.
    pub delays: Vec<Duration>,
    /// How long after the event it is still tried.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        let m = |minutes: u64| Duration::from_secs(60 * minutes);
        Self {
            delays: vec![Duration::from_secs(15), m(1), m(5), m(30), m(120), m(360)],
            give_up_after: m(24 * 60),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Try again at this time (Unix milliseconds).
    RetryAt(i64),
    GiveUp,
}

impl RetryPolicy {
    /// After the `failures`-th failed attempt (1 for the first) at `now_ms`, of an event recorded
    /// at `created_ms`. The last attempt falls on the end of the window, never after it.
    pub fn after_failure(&self, failures: u32, created_ms: i64, now_ms: i64) -> Next {
        let window_end = created_ms.saturating_add(self.give_up_after.as_millis() as i64);
        if now_ms >= window_end {
            return Next::GiveUp;
        }
        let index = (failures.max(1) as usize - 1).min(self.delays.len().saturating_sub(1));
        let delay = self
            .delays
            .get(index)
            .map_or(60_000, |d| d.as_millis() as i64);
        Next::RetryAt(now_ms.saturating_add(delay).min(window_end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change<'a>(before: Option<&'a TradeStatus>, after: &'a TradeStatus) -> StatusChange<'a> {
        StatusChange {
            before,
            after,
            total: Amount::from_fen(1000).unwrap(),
            refunded: Money::ZERO,
            closed_by_us: false,
            past_expiry: false,
        }
    }

    #[test]
    fn a_first_payment_is_an_event_once() {
        use TradeStatus::*;
        for before in [None, Some(&WaitBuyerPay)] {
            for after in [TradeSuccess, TradeFinished] {
                assert_eq!(
                    order_event(change(before, &after)),
                    Some(EventKind::PaymentSucceeded)
                );
            }
        }
        // Success then finished is one payment, not two.
        assert_eq!(
            order_event(change(Some(&TradeSuccess), &TradeFinished)),
            None
        );
        assert_eq!(order_event(change(None, &WaitBuyerPay)), None);
    }

    #[test]
    fn an_unpaid_end_is_closed_or_expired() {
        use TradeStatus::*;
        let mut c = change(Some(&WaitBuyerPay), &TradeClosed);
        assert_eq!(order_event(c), Some(EventKind::OrderClosed));
        c.past_expiry = true;
        assert_eq!(order_event(c), Some(EventKind::OrderExpired));
        // Our own close after the expiry is still our close.
        c.closed_by_us = true;
        assert_eq!(order_event(c), Some(EventKind::OrderClosed));
        // A paid trade closed by a full refund is told by the refund, not as a close.
        let mut paid = change(Some(&TradeSuccess), &TradeClosed);
        paid.refunded = Money::from_fen(1000);
        assert_eq!(order_event(paid), None);
        paid.before = None;
        assert_eq!(order_event(paid), None);
    }

    #[test]
    fn only_a_sent_refund_settling_is_an_event() {
        use RefundState::*;
        assert_eq!(
            refund_event(Pending, Succeeded),
            Some(EventKind::RefundSucceeded)
        );
        assert_eq!(
            refund_event(Unknown, Succeeded),
            Some(EventKind::RefundSucceeded)
        );
        assert_eq!(refund_event(Pending, Failed), Some(EventKind::RefundFailed));
        assert_eq!(refund_event(Unknown, Failed), Some(EventKind::RefundFailed));
        assert_eq!(refund_event(AwaitingApproval, Failed), None);
        assert_eq!(refund_event(Succeeded, Succeeded), None);
        assert_eq!(refund_event(Pending, Unknown), None);
    }

    #[test]
    fn the_forward_target_hears_only_alipay() {
        for kind in EventKind::ALL {
            assert_eq!(
                receives(TargetKind::Forward, kind),
                kind == EventKind::AlipayNotification
            );
            for t in [
                TargetKind::Webhook,
                TargetKind::DingTalk,
                TargetKind::WeCom,
                TargetKind::Feishu,
            ] {
                assert_eq!(receives(t, kind), kind != EventKind::AlipayNotification);
            }
        }
    }

    #[test]
    fn retries_back_off_then_stop_at_the_window() {
        let p = RetryPolicy::default();
        let t0 = 1_000_000;
        assert_eq!(p.after_failure(1, t0, t0), Next::RetryAt(t0 + 15_000));
        assert_eq!(
            p.after_failure(2, t0, t0 + 15_000),
            Next::RetryAt(t0 + 75_000)
        );
        // The last delay repeats.
        let late = t0 + 10 * 3_600_000;
        assert_eq!(
            p.after_failure(9, t0, late),
            Next::RetryAt(late + 21_600_000)
        );
        // Never past the window: the last try falls on its end, then it is given up.
        let end = t0 + 24 * 3_600_000;
        assert_eq!(p.after_failure(9, t0, end - 1_000), Next::RetryAt(end));
        assert_eq!(p.after_failure(10, t0, end), Next::GiveUp);
    }

    #[test]
    fn names_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for t in TargetKind::ALL {
            assert_eq!(TargetKind::parse(t.as_str()), Some(t));
        }
        for s in DeliveryState::ALL {
            assert_eq!(DeliveryState::parse(s.as_str()), Some(s));
        }
    }
}
