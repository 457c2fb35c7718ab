//! Refunds: the money rules, as plain functions over typed facts. Every backend of the ledger
//! loads the facts inside the transaction that records a refund and asks these functions what to
//! do; the refund flow asks the same functions first, before anything is sent. So a rule is
//! written once, and two refunds at once can never both pass it.
//!
//! What "refunded" means on a trade: the larger of Alipay's last reported cumulative refund and
//! this ledger's confirmed refunds (Alipay's figure includes refunds made elsewhere, ours may be
//! ahead of its last report), plus this ledger's refunds still in flight (pending or unknown:
//! they may have moved money that no report shows yet).

use alipay_openapi::{Amount, Money};
use serde::Serialize;

/// The state of one refund request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundState {
    /// Recorded, being sent; outcome not yet known.
    Pending,
    /// Alipay confirmed it (`fund_change` Y, `REFUND_SUCCESS`, or its signed notification).
    Succeeded,
    /// Alipay refused it; no money moved.
    Failed,
    /// Sent, answer lost: may or may not have happened.
    Unknown,
    /// Recorded, not sent: waiting for a person to approve it on its approval page
    /// (`AP_REFUND_CONFIRM` where the client cannot ask). Counts against every limit meanwhile.
    AwaitingApproval,
}

impl RefundState {
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Succeeded,
        Self::Failed,
        Self::Unknown,
        Self::AwaitingApproval,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
            Self::AwaitingApproval => "awaiting_approval",
        }
    }

    /// `None` for text that is no state (a corrupt row is an error, never a guess).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Pending or unknown: sent (or being sent), so it may have moved money that nobody has
    /// confirmed yet; only a resend with the same number may follow.
    pub fn in_flight(self) -> bool {
        matches!(self, Self::Pending | Self::Unknown)
    }

    /// Not settled: in flight, or awaiting a person's approval. Counted as (possibly) refunded by
    /// every limit, and only these may be overwritten by an outcome other than success.
    pub fn unsettled(self) -> bool {
        self.in_flight() || self == Self::AwaitingApproval
    }

    /// Counts against the daily budget: everything but a refusal (no money moved).
    pub fn may_have_moved_money(self) -> bool {
        self != Self::Failed
    }
}

/// A trade's refunds as the ledger knows them, not counting the request being decided.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RefundFacts {
    /// Our refunds Alipay confirmed.
    pub confirmed: Money,
    /// Our refunds pending, unknown or awaiting approval.
    pub in_flight: Money,
    /// Alipay's last reported cumulative refund on the trade (`refund_fee`).
    pub reported: Money,
}

impl RefundFacts {
    /// What was, or may have been, refunded (see the module doc).
    pub fn refunded(&self) -> Money {
        self.confirmed
            .max(self.reported)
            .saturating_add(self.in_flight)
    }
}

/// A refund request already recorded under the number asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PriorRefund {
    pub amount: Amount,
    pub state: RefundState,
}

/// The limits a new refund is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefundLimits {
    /// `AP_DAILY_REFUND_LIMIT`.
    pub daily: Option<Money>,
    /// What the buyer paid, from a verified trade query.
    pub paid: Money,
}

/// A refund that breaks a limit, with the figures that say by how much.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverLimit {
    /// Would bring the Beijing day's refunds over `AP_DAILY_REFUND_LIMIT`.
    Daily { used: Money, limit: Money },
    /// Would refund more than what was paid minus what was (or may have been) refunded.
    Remaining { paid: Money, refunded: Money },
}

/// `used` today plus `amount`, against the daily limit.
pub fn check_daily(used: Money, amount: Amount, limit: Option<Money>) -> Result<(), OverLimit> {
    match limit {
        Some(limit) if used.saturating_add(amount.into()) > limit => {
            Err(OverLimit::Daily { used, limit })
        }
        _ => Ok(()),
    }
}

/// `amount` against what remains of `paid` after `refunded`.
pub fn check_remaining(paid: Money, refunded: Money, amount: Amount) -> Result<(), OverLimit> {
    if refunded.saturating_add(amount.into()) > paid {
        return Err(OverLimit::Remaining { paid, refunded });
    }
    Ok(())
}

/// Where a refund stands with its approval (`AP_REFUND_CONFIRM`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ApprovalStep {
    /// No approval involved (off, or given already through the client).
    #[default]
    None,
    /// To be recorded as awaiting a person's approval, not sent.
    Ask,
    /// A person approved it on its page: send it now.
    Approved,
}

/// What to do with a refund request, decided inside the transaction that records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BeginDecision {
    /// New (or retried after Alipay refused it, so no money moved): record it as pending, send it.
    Fresh,
    /// Same number, same amount, outcome not confirmed: send it again with the same number, which
    /// Alipay cannot turn into a second refund, so no limit applies to it.
    Retry,
    /// Same number, same amount, already confirmed: answer from the record, send nothing.
    Replay,
    /// Same number, different amount: refuse locally.
    Conflict,
    /// Breaks a limit: refuse locally.
    Over(OverLimit),
    /// Same number, same amount, still awaiting a person's approval: nothing to do but wait.
    StillAwaiting,
}

/// The one rule for beginning a refund. `daily_used` is what the Beijing day's refunds that may
/// have moved money add up to (this request excluded only if it was refused before: a retried
/// refusal counts on the day it is retried).
pub fn decide_begin(
    prior: Option<PriorRefund>,
    amount: Amount,
    facts: &RefundFacts,
    daily_used: Money,
    limits: &RefundLimits,
    step: ApprovalStep,
) -> BeginDecision {
    match prior {
        Some(p) if p.amount != amount => return BeginDecision::Conflict,
        Some(p) if p.state == RefundState::Succeeded => return BeginDecision::Replay,
        Some(p) if p.state.in_flight() => return BeginDecision::Retry,
        // Awaiting approval: only the approval sends it (every limit checked again, the refund
        // itself left out of the figures); anything else finds it still waiting.
        Some(p) if p.state == RefundState::AwaitingApproval && step != ApprovalStep::Approved => {
            return BeginDecision::StillAwaiting;
        }
        // Failed (no money moved), new, or approved just now: every limit applies.
        _ => {}
    }
    if let Err(over) = check_daily(daily_used, amount, limits.daily)
        .and_then(|()| check_remaining(limits.paid, facts.refunded(), amount))
    {
        return BeginDecision::Over(over);
    }
    BeginDecision::Fresh
}

/// Which outcome may overwrite which. Alipay's verified success always applies (it said so, whoever
/// sent the refund). Anything else applies only while the refund is unsettled (pending or unknown)
/// and, when a `sender` is named, still that sender's: another process may have taken it over with
/// a resend, and then its outcome is the one that counts. So a confirmed refund is never
/// downgraded, and a refusal, once settled, is changed only by a success.
pub fn may_record(
    stored: RefundState,
    stored_owner: Option<&str>,
    incoming: RefundState,
    sender: Option<&str>,
) -> bool {
    incoming == RefundState::Succeeded
        || (stored.unsettled() && sender.is_none_or(|s| stored_owner == Some(s)))
}

/// What may still be refunded: paid minus refunded, never below zero.
pub fn remaining(paid: Money, refunded: Money) -> Money {
    paid.saturating_sub(refunded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yuan(fen: i64) -> Money {
        Money::from_fen(fen)
    }

    fn amount(fen: i64) -> Amount {
        Amount::from_fen(fen).unwrap()
    }

    const NO_LIMITS: RefundLimits = RefundLimits {
        daily: None,
        paid: Money::ZERO,
    };

    fn paid(fen: i64) -> RefundLimits {
        RefundLimits {
            paid: yuan(fen),
            ..NO_LIMITS
        }
    }

    #[test]
    fn refunded_is_the_larger_report_plus_what_is_in_flight() {
        let f = RefundFacts {
            confirmed: yuan(3_000),
            in_flight: yuan(1_000),
            reported: yuan(6_000),
        };
        assert_eq!(f.refunded(), yuan(7_000));
        let ahead = RefundFacts {
            reported: yuan(2_000),
            ..f
        };
        assert_eq!(
            ahead.refunded(),
            yuan(4_000),
            "our confirmations count when ahead"
        );
        assert_eq!(RefundFacts::default().refunded(), Money::ZERO);
    }

    #[test]
    fn a_refund_fits_what_remains_to_the_fen() {
        assert_eq!(
            check_remaining(yuan(10_000), yuan(6_000), amount(4_000)),
            Ok(())
        );
        assert_eq!(
            check_remaining(yuan(10_000), yuan(6_000), amount(4_001)),
            Err(OverLimit::Remaining {
                paid: yuan(10_000),
                refunded: yuan(6_000)
            })
        );
        assert!(check_remaining(Money::ZERO, Money::ZERO, amount(1)).is_err());
        assert_eq!(remaining(yuan(100), yuan(150)), Money::ZERO);
    }

    #[test]
    fn the_daily_budget_counts_to_the_fen() {
        let limit = Some(yuan(1_500));
        assert_eq!(check_daily(yuan(1_000), amount(500), limit), Ok(()));
        assert_eq!(
            check_daily(yuan(1_000), amount(501), limit),
            Err(OverLimit::Daily {
                used: yuan(1_000),
                limit: yuan(1_500)
            })
        );
        assert_eq!(check_daily(yuan(i64::MAX), amount(1), None), Ok(()));
        assert!(
            check_daily(yuan(i64::MAX - 1), amount(2), Some(yuan(i64::MAX - 1))).is_err(),
            "a sum past i64::MAX saturates and still exceeds"
        );
    }

    #[test]
    fn a_number_means_one_refund() {
        let facts = RefundFacts::default();
        let lim = paid(10_000);
        let prior = |fen, state| {
            Some(PriorRefund {
                amount: amount(fen),
                state,
            })
        };
        let decide = |p, fen| {
            decide_begin(
                p,
                amount(fen),
                &facts,
                Money::ZERO,
                &lim,
                ApprovalStep::None,
            )
        };
        assert_eq!(decide(None, 100), BeginDecision::Fresh);
        assert_eq!(
            decide(prior(100, RefundState::Pending), 99),
            BeginDecision::Conflict
        );
        assert_eq!(
            decide(prior(100, RefundState::Succeeded), 99),
            BeginDecision::Conflict
        );
        assert_eq!(
            decide(prior(100, RefundState::Succeeded), 100),
            BeginDecision::Replay
        );
        assert_eq!(
            decide(prior(100, RefundState::Pending), 100),
            BeginDecision::Retry
        );
        assert_eq!(
            decide(prior(100, RefundState::Unknown), 100),
            BeginDecision::Retry
        );
        assert_eq!(
            decide(prior(100, RefundState::Failed), 100),
            BeginDecision::Fresh
        );
    }

    #[test]
    fn a_resend_is_never_refused_by_a_limit_but_a_retried_refusal_is_new() {
        // Everything is refunded already and the day's budget is spent.
        let facts = RefundFacts {
            confirmed: yuan(10_000),
            ..Default::default()
        };
        let lim = RefundLimits {
            daily: Some(yuan(100)),
            paid: yuan(10_000),
        };
        let unknown = Some(PriorRefund {
            amount: amount(500),
            state: RefundState::Unknown,
        });
        assert_eq!(
            decide_begin(
                unknown,
                amount(500),
                &facts,
                yuan(100),
                &lim,
                ApprovalStep::None
            ),
            BeginDecision::Retry
        );
        let failed = Some(PriorRefund {
            amount: amount(500),
            state: RefundState::Failed,
        });
        assert_eq!(
            decide_begin(
                failed,
                amount(50),
                &RefundFacts::default(),
                yuan(60),
                &lim,
                ApprovalStep::None
            ),
            BeginDecision::Conflict
        );
        assert_eq!(
            decide_begin(
                failed,
                amount(500),
                &RefundFacts::default(),
                yuan(0),
                &lim,
                ApprovalStep::None
            ),
            BeginDecision::Over(OverLimit::Daily {
                used: Money::ZERO,
                limit: yuan(100)
            })
        );
        assert_eq!(
            decide_begin(
                failed,
                amount(500),
                &facts,
                Money::ZERO,
                &paid(10_000),
                ApprovalStep::None
            ),
            BeginDecision::Over(OverLimit::Remaining {
                paid: yuan(10_000),
                refunded: yuan(10_000)
            })
        );
    }

    #[test]
    fn the_daily_limit_is_checked_before_the_remainder() {
        let lim = RefundLimits {
            daily: Some(yuan(100)),
            paid: yuan(50),
        };
        assert!(matches!(
            decide_begin(
                None,
                amount(200),
                &RefundFacts::default(),
                Money::ZERO,
                &lim,
                ApprovalStep::None
            ),
            BeginDecision::Over(OverLimit::Daily { .. })
        ));
    }

    #[test]
    fn a_refund_awaiting_approval_is_sent_only_by_its_approval_and_counts_meanwhile() {
        let awaiting = Some(PriorRefund {
            amount: amount(500),
            state: RefundState::AwaitingApproval,
        });
        let lim = paid(1_000);
        let decide = |step, facts: &RefundFacts| {
            decide_begin(awaiting, amount(500), facts, Money::ZERO, &lim, step)
        };
        let none = RefundFacts::default();
        assert_eq!(
            decide(ApprovalStep::None, &none),
            BeginDecision::StillAwaiting
        );
        assert_eq!(
            decide(ApprovalStep::Ask, &none),
            BeginDecision::StillAwaiting
        );
        assert_eq!(decide(ApprovalStep::Approved, &none), BeginDecision::Fresh);
        // Limits are checked again when it is approved: 600 refunded meanwhile leaves 400.
        let meanwhile = RefundFacts {
            confirmed: yuan(600),
            ..none
        };
        assert!(matches!(
            decide(ApprovalStep::Approved, &meanwhile),
            BeginDecision::Over(OverLimit::Remaining { .. })
        ));
        // Another amount under the same number is still a conflict.
        assert_eq!(
            decide_begin(
                awaiting,
                amount(499),
                &none,
                Money::ZERO,
                &lim,
                ApprovalStep::Approved
            ),
            BeginDecision::Conflict
        );
        assert!(RefundState::AwaitingApproval.unsettled());
        assert!(!RefundState::AwaitingApproval.in_flight());
        assert!(
            RefundState::AwaitingApproval.may_have_moved_money(),
            "counted by the daily budget"
        );
        // A denial or an expiry settles it as failed; nothing else but success overwrites that.
        assert!(may_record(
            RefundState::AwaitingApproval,
            Some("a"),
            RefundState::Failed,
            None
        ));
    }

    #[test]
    fn every_state_reads_back_from_its_name() {
        for state in RefundState::ALL {
            // Exhaustive: a new state that is not listed in ALL fails to compile here first.
            let listed = match state {
                RefundState::Pending
                | RefundState::Succeeded
                | RefundState::Failed
                | RefundState::Unknown
                | RefundState::AwaitingApproval => true,
            };
            assert!(listed);
            assert_eq!(RefundState::parse(state.as_str()), Some(state));
        }
        assert_eq!(RefundState::ALL.len(), 5);
    }

    #[test]
    fn which_outcome_may_overwrite_which() {
        use RefundState::*;
        // Alipay's success applies whoever sent it, over anything.
        for stored in RefundState::ALL {
            assert!(
                may_record(stored, Some("a"), Succeeded, Some("b")),
                "{stored:?}"
            );
        }
        // A settled refund is never downgraded.
        for incoming in [Pending, Failed, Unknown] {
            assert!(!may_record(Succeeded, Some("a"), incoming, Some("a")));
            assert!(!may_record(Succeeded, Some("a"), incoming, None));
            assert!(!may_record(Failed, Some("a"), incoming, None));
        }
        // Unsettled: only its own sender's outcome (or a sender-less one) applies.
        assert!(may_record(Pending, Some("a"), Failed, Some("a")));
        assert!(!may_record(Pending, Some("b"), Failed, Some("a")));
        assert!(!may_record(Unknown, None, Unknown, Some("a")));
        assert!(may_record(Unknown, Some("b"), Failed, None));
    }
}
