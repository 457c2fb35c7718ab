//! Notifications: what a verified notification from Alipay may change. The checks that need no
//! ledger (signature, `sign_type`, app id) happen where it is received; these are the rules over
//! what the ledger already holds.

use alipay_openapi::{Amount, Money, TradeStatus};

use crate::domain::order::progress;

/// The ledger's verdict on a verified notification for one of our orders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotifyVerdict {
    /// New: record it and apply its status (`apply_status` false: an older partial-refund notice
    /// arriving late, acknowledged but changing no status).
    Apply { apply_status: bool },
    /// The same notification again (an Alipay retry): nothing changes, answer `success`.
    Duplicate,
    /// A known `notify_id` with different content: refuse.
    ReusedId,
    /// Older than what the ledger knows (e.g. `TRADE_SUCCESS` for a closed order): refuse.
    Stale {
        incoming: TradeStatus,
        known: Option<TradeStatus>,
    },
}

/// What the ledger holds that a notification is judged against.
#[derive(Clone, Copy, Debug)]
pub struct OrderFacts<'a> {
    pub status: Option<&'a TradeStatus>,
    /// Alipay's last reported cumulative refund.
    pub refunded: Money,
}

/// What a notification says.
#[derive(Clone, Copy, Debug)]
pub struct Incoming<'a> {
    /// Every field but `sign` and `notify_time`: what a retry repeats exactly.
    pub content: &'a str,
    pub status: &'a TradeStatus,
    pub refunded: Option<Money>,
}

/// `previous`: the content an accepted notification with the same `notify_id` had, if any.
pub fn verdict(previous: Option<&str>, order: OrderFacts<'_>, n: Incoming<'_>) -> NotifyVerdict {
    if let Some(previous) = previous {
        return if previous == n.content {
            NotifyVerdict::Duplicate
        } else {
            NotifyVerdict::ReusedId
        };
    }
    if progress(Some(n.status)) >= progress(order.status) {
        return NotifyVerdict::Apply { apply_status: true };
    }
    // Behind the order: a refund notice Alipay's later figures already cover is old news, taken
    // (so Alipay stops retrying) without moving the trade back; anything else is stale.
    if n.refunded.is_some_and(|r| r <= order.refunded) {
        return NotifyVerdict::Apply {
            apply_status: false,
        };
    }
    NotifyVerdict::Stale {
        incoming: n.status.clone(),
        known: order.status.cloned(),
    }
}

/// Why a notification for one of our orders is refused before the ledger looks at it, if it is.
pub fn amount_mismatch(notified: Amount, ordered: Amount) -> Option<String> {
    (notified != ordered)
        .then(|| format!("total_amount {notified} differs from the order's {ordered}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(s: &str) -> TradeStatus {
        TradeStatus::from(s)
    }

    #[test]
    fn retries_are_duplicates_and_reused_ids_are_refused() {
        let known = status("TRADE_SUCCESS");
        let order = OrderFacts {
            status: Some(&known),
            refunded: Money::ZERO,
        };
        let n = Incoming {
            content: "c1",
            status: &known,
            refunded: None,
        };
        assert_eq!(verdict(Some("c1"), order, n), NotifyVerdict::Duplicate);
        assert_eq!(verdict(Some("c0"), order, n), NotifyVerdict::ReusedId);
        assert_eq!(
            verdict(None, order, n),
            NotifyVerdict::Apply { apply_status: true }
        );
    }

    #[test]
    fn a_notification_never_moves_a_trade_backwards() {
        let closed = status("TRADE_CLOSED");
        let success = status("TRADE_SUCCESS");
        let order = OrderFacts {
            status: Some(&closed),
            refunded: Money::from_fen(100),
        };
        let late_payment = Incoming {
            content: "c",
            status: &success,
            refunded: None,
        };
        assert_eq!(
            verdict(None, order, late_payment),
            NotifyVerdict::Stale {
                incoming: success.clone(),
                known: Some(closed.clone())
            }
        );
        // An older partial-refund notice: acknowledged, no status change.
        let old_refund = Incoming {
            refunded: Some(Money::from_fen(50)),
            ..late_payment
        };
        assert_eq!(
            verdict(None, order, old_refund),
            NotifyVerdict::Apply {
                apply_status: false
            }
        );
        // A refund notice for more than the order shows is not covered: stale.
        let newer = Incoming {
            refunded: Some(Money::from_fen(101)),
            ..late_payment
        };
        assert!(matches!(
            verdict(None, order, newer),
            NotifyVerdict::Stale { .. }
        ));
        // Forward and equal moves apply.
        let open = OrderFacts {
            status: None,
            refunded: Money::ZERO,
        };
        assert_eq!(
            verdict(None, open, late_payment),
            NotifyVerdict::Apply { apply_status: true }
        );
    }

    #[test]
    fn the_amount_must_be_the_orders() {
        let a = |fen| Amount::from_fen(fen).unwrap();
        assert_eq!(amount_mismatch(a(100), a(100)), None);
        assert_eq!(
            amount_mismatch(a(100), a(8880)).as_deref(),
            Some("total_amount 1.00 differs from the order's 88.80")
        );
    }
}
