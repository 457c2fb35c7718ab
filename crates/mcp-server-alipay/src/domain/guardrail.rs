//! Guardrails: limits the model cannot change (they come from the environment only) and the one
//! rule that always applies (never refund more than remains). A refusal is a typed value: its rule,
//! its limit and its wording come from the same facts.

use alipay_openapi::{Amount, Money, TradeStatus};

use crate::domain::OutTradeNo;
use crate::domain::refund::{OverLimit, remaining};

/// Which rule refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    MaxPayment,
    MaxRefund,
    DailyRefund,
    Refundable,
    Confirm,
}

impl Rule {
    /// The rule's name as refusals and the audit log say it: the variable that sets it, or
    /// `refundable amount` for the rule that always applies.
    pub fn name(self) -> &'static str {
        match self {
            Self::MaxPayment => "AP_MAX_PAYMENT_AMOUNT",
            Self::MaxRefund => "AP_MAX_REFUND_AMOUNT",
            Self::DailyRefund => "AP_DAILY_REFUND_LIMIT",
            Self::Refundable => "refundable amount",
            Self::Confirm => "AP_REFUND_CONFIRM",
        }
    }
}

/// A refusal by a guardrail, with the facts it was decided on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Guardrail {
    /// `AP_MAX_PAYMENT_AMOUNT`.
    MaxPayment { asked: Amount, limit: Amount },
    /// `AP_MAX_REFUND_AMOUNT`.
    MaxRefund { asked: Amount, limit: Amount },
    /// `AP_DAILY_REFUND_LIMIT`.
    Daily {
        asked: Amount,
        used: Money,
        limit: Money,
    },
    /// Refundable amount: more than what remains.
    Remaining {
        order: OutTradeNo,
        asked: Amount,
        paid: Money,
        refunded: Money,
    },
    /// Refundable amount: the trade is not paid (or no longer refundable).
    NotPaid {
        order: OutTradeNo,
        status: Option<TradeStatus>,
    },
    /// `AP_REFUND_CONFIRM`: no person approved it (why, in one clause).
    NotApproved(String),
    /// `AP_REFUND_CONFIRM`: the figures changed while the person decided.
    FiguresChanged {
        asked_paid: Money,
        asked_refunded: Money,
        paid: Money,
        refunded: Money,
    },
}

impl Guardrail {
    /// The refusal for a limit the ledger or the pre-check found broken.
    pub fn over(over: OverLimit, order: &OutTradeNo, asked: Amount) -> Self {
        match over {
            OverLimit::Daily { used, limit } => Self::Daily { asked, used, limit },
            OverLimit::Remaining { paid, refunded } => Self::Remaining {
                order: order.clone(),
                asked,
                paid,
                refunded,
            },
        }
    }

    pub fn rule(&self) -> Rule {
        match self {
            Self::MaxPayment { .. } => Rule::MaxPayment,
            Self::MaxRefund { .. } => Rule::MaxRefund,
            Self::Daily { .. } => Rule::DailyRefund,
            Self::Remaining { .. } | Self::NotPaid { .. } => Rule::Refundable,
            Self::NotApproved(_) | Self::FiguresChanged { .. } => Rule::Confirm,
        }
    }

    /// The configured limit, for limits that have one.
    pub fn limit(&self) -> Option<Money> {
        match self {
            Self::MaxPayment { limit, .. } | Self::MaxRefund { limit, .. } => Some((*limit).into()),
            Self::Daily { limit, .. } => Some(*limit),
            _ => None,
        }
    }

    /// What was refused and why, in one clause.
    pub fn message(&self) -> String {
        match self {
            Self::MaxPayment { asked, limit } => format!(
                "totalAmount {asked} is more than the largest single order allowed, {limit}"
            ),
            Self::MaxRefund { asked, limit } => format!(
                "refundAmount {asked} is more than the largest single refund allowed, {limit}"
            ),
            Self::Daily { asked, used, limit } => format!(
                "refundAmount {asked} would bring today's refunds (Beijing time) to {}, over the daily limit of {limit} (already refunded today: {used})",
                used.saturating_add((*asked).into())
            ),
            Self::Remaining {
                order,
                asked,
                paid,
                refunded,
            } => format!(
                "refundAmount {asked} is more than what remains refundable on order {order}: paid {paid}, already refunded {refunded}, remaining {}",
                remaining(*paid, *refunded)
            ),
            Self::NotPaid { order, status } => format!(
                "order {order} is {}, not paid and refundable (TRADE_SUCCESS)",
                status
                    .as_ref()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|| "without a trade status".to_string())
            ),
            Self::NotApproved(why) => why.clone(),
            Self::FiguresChanged {
                asked_paid,
                asked_refunded,
                paid,
                refunded,
            } => format!(
                "the order's figures changed while the person was deciding (paid {asked_paid}, already refunded {asked_refunded} when asked; now {paid} and {refunded}); call again to ask with the new figures"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_names_its_rule_and_limit() {
        let a = |fen| Amount::from_fen(fen).unwrap();
        let order = OutTradeNo::parse("A1").unwrap();
        let daily = Guardrail::over(
            OverLimit::Daily {
                used: Money::from_fen(3_999),
                limit: Money::from_fen(5_000),
            },
            &order,
            a(1_002),
        );
        assert_eq!(daily.rule().name(), "AP_DAILY_REFUND_LIMIT");
        assert_eq!(daily.limit(), Some(Money::from_fen(5_000)));
        assert!(
            daily
                .message()
                .contains("to 50.01, over the daily limit of 50.00")
        );
        let remaining = Guardrail::over(
            OverLimit::Remaining {
                paid: Money::from_fen(8_880),
                refunded: Money::from_fen(2_000),
            },
            &order,
            a(10_000),
        );
        assert_eq!(remaining.rule(), Rule::Refundable);
        assert_eq!(remaining.limit(), None);
        assert!(
            remaining
                .message()
                .ends_with("paid 88.80, already refunded 20.00, remaining 68.80")
        );
        let unpaid = Guardrail::NotPaid {
            order,
            status: None,
        };
        assert!(unpaid.message().contains("without a trade status"));
        assert_eq!(
            Guardrail::NotApproved("x".into()).rule().name(),
            "AP_REFUND_CONFIRM"
        );
    }
}
