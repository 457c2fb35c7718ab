//! Refunds. A refund moves money, so:
//! - its limits are checked first (largest refund, daily budget, and always: never more than what
//!   was paid, from a signed query of the trade, minus what was or may have been refunded), and
//!   checked again inside the transaction that records it (`crate::domain::refund`, both times);
//! - one refund decision per order at a time (the ledger's order lock, across processes);
//! - with `AP_REFUND_CONFIRM` a person approves the plan ([`Confirm`]) and the figures are fetched
//!   again afterwards: a refund whose figures changed is refused, not sent;
//! - it is recorded as pending before it is sent, and an `outRequestNo` always means one refund:
//!   the same number with the same amount replays a confirmed result, or resends the recorded
//!   request unchanged when its outcome is unknown; with a different amount it is refused locally;
//! - success is reported only when Alipay said so in a verified answer (`fund_change` = `Y`, or a
//!   refund query showing `REFUND_SUCCESS`) and the ledger recorded it; a lost answer is looked
//!   up, and retried with the same number only.

use std::time::{Duration, Instant};

use alipay_openapi::{
    Amount, Error, Money, TradeQuery, TradeRefund, TradeRefundResponse, TradeStatus,
};
use async_trait::async_trait;

use crate::domain::guardrail::Guardrail;
use crate::domain::refund::ApprovalStep;
use crate::domain::refund::{check_daily, check_remaining, remaining};
use crate::domain::{OutRequestNo, OutTradeNo, RefundState, StatusSource, beijing_today};
use crate::ledger::{
    AuditDecision, AuditOutcome, LedgerError, NewRefund, RefundBegin, RefundLimits, RefundOutcome,
    RefundRecord, StatusUpdate,
};
use crate::service::approvals::{self, ApprovalOffer};
use crate::service::refund_query::ask as ask_refund;
use crate::service::{Services, orders};

/// A refund as asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundRequest {
    pub out_trade_no: OutTradeNo,
    pub out_request_no: OutRequestNo,
    pub amount: Amount,
    pub reason: Option<String>,
}

/// A refund that passed every check and may be sent (after the person approves, if asked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundPlan {
    /// As it will be sent: a retry keeps the reason first recorded (Alipay binds the number to
    /// its first parameters).
    pub request: RefundRequest,
    /// From the signed trade query: what the buyer paid.
    pub paid: Money,
    /// Refunded before this one (`crate::domain::refund::RefundFacts::refunded`).
    pub already_refunded: Money,
    pub trade_no: Option<String>,
}

impl RefundPlan {
    /// What the person is asked to approve: the paid amount from Alipay's signed answer, the
    /// refunded amount from Alipay's reports and our records; nothing from the model.
    pub fn confirmation_message(&self) -> String {
        let r = &self.request;
        format!(
            "Refund {} yuan of Alipay order {} (Alipay trade {})?\nPaid by the buyer (Alipay, just now): {} yuan. Already refunded, in flight included (Alipay's last report, or this server's refunds if more): {} yuan. This refund: {} yuan. Remaining after it: {} yuan.\nReason: {}\nRefund request number: {}",
            r.amount,
            r.out_trade_no,
            self.trade_no.as_deref().unwrap_or("?"),
            self.paid,
            self.already_refunded,
            r.amount,
            remaining(self.paid, self.already_refunded).saturating_sub(r.amount.into()),
            r.reason.as_deref().unwrap_or("(none)"),
            r.out_request_no,
        )
    }

    /// The figures the person saw; a change means asking again.
    pub fn figures(&self) -> (Money, Money) {
        (self.paid, self.already_refunded)
    }
}

/// A person's answer to a refund plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The client cannot ask anyone (no elicitation): the refund waits for approval on a page.
    CannotAsk,
    Approved,
    /// Not approved; why, in one clause.
    Refused(String),
    /// The question went out; the client calls again with the answer.
    Asking,
}

/// Asks a person to approve a refund plan (MCP elicitation, in `crate::confirm`).
#[async_trait]
pub trait Confirm: Send + Sync {
    async fn ask(&self, plan: &RefundPlan) -> Decision;
    /// Whether asking is possible at all (checked before the order's lock is let go).
    fn can_ask(&self) -> bool;
}

/// Why a refund was not sent.
#[derive(Debug)]
pub enum Refusal {
    Guardrail(Guardrail),
    /// The number was used for a refund of another amount.
    Conflict(RefundRecord),
    /// The ledger could not be read, so the limits cannot be checked.
    LedgerUnreadable(LedgerError),
    /// The refund could not be recorded before sending.
    NotRecorded(LedgerError),
    /// The trade query that gives what was paid failed.
    TradeQueryFailed(Error),
}

/// How a refund ended.
#[derive(Debug)]
pub enum RefundResult {
    /// Alipay confirmed it; `moved_now` when this call's send moved the money.
    Succeeded {
        trade_no: Option<String>,
        total_refunded: Option<Money>,
        moved_now: bool,
    },
    /// Confirmed before: answered from the ledger, nothing sent.
    Replayed(RefundRecord),
    /// Nothing was sent.
    Refused(Refusal),
    /// Alipay refused it: no money moved.
    Failed(Error),
    /// Alipay answered without moving money (`fund_change` N) and the refund query does not show it.
    NotConfirmed { refund_status: Option<String> },
    /// It may or may not have happened.
    Unknown(Error),
    /// Alipay answered, but the ledger could not record it.
    Unrecorded { state: RefundState, why: String },
    /// Another live process holds it in flight (`sent`: this call had sent it too).
    InFlightElsewhere { sent: bool },
    /// A person was asked; the client calls again with the answer.
    AwaitingPerson,
    /// Recorded, not sent: a person approves it on its page (the client could not ask).
    AwaitingApproval(ApprovalOffer),
}

impl RefundResult {
    /// The refund's state as this result leaves it.
    pub fn state(&self) -> RefundState {
        match self {
            Self::Succeeded { .. } | Self::Replayed(_) => RefundState::Succeeded,
            Self::Failed(_) => RefundState::Failed,
            Self::Unrecorded { state, .. } => *state,
            Self::AwaitingApproval(_) => RefundState::AwaitingApproval,
            _ => RefundState::Unknown,
        }
    }

    /// The audit row this result stands for (`None`: nothing decided yet).
    pub fn audit(&self) -> Option<(AuditDecision, AuditOutcome)> {
        use AuditDecision::{Allowed, Refused as No, Replayed};
        Some(match self {
            Self::Succeeded { .. } => (Allowed, AuditOutcome::Succeeded),
            Self::Replayed(_) => (Replayed, AuditOutcome::Succeeded),
            Self::Refused(refusal) => {
                let decision = match refusal {
                    Refusal::Guardrail(g) => No(g.rule().name().into()),
                    Refusal::Conflict(_) => No("number already used".into()),
                    Refusal::NotRecorded(_) => No("ledger failure".into()),
                    Refusal::LedgerUnreadable(_) | Refusal::TradeQueryFailed(_) => Allowed,
                };
                (decision, AuditOutcome::NotSent)
            }
            Self::Failed(_) => (Allowed, AuditOutcome::Failed),
            Self::NotConfirmed { .. } | Self::Unknown(_) => (Allowed, AuditOutcome::Unknown),
            Self::Unrecorded { .. } => (Allowed, AuditOutcome::Unrecorded),
            Self::InFlightElsewhere { sent: false } => (Allowed, AuditOutcome::NotSent),
            Self::InFlightElsewhere { sent: true } => (Allowed, AuditOutcome::Unknown),
            Self::AwaitingApproval(_) => (Allowed, AuditOutcome::AwaitingApproval),
            Self::AwaitingPerson => return None,
        })
    }
}

fn refused(g: Guardrail) -> RefundResult {
    RefundResult::Refused(Refusal::Guardrail(g))
}

/// The whole refund: lock the order, check, (ask the person,) record, send, settle.
pub async fn refund(svc: &Services, request: RefundRequest, confirm: &dyn Confirm) -> RefundResult {
    let lock = match svc.ledger.lock_order(&request.out_trade_no).await {
        Ok(lock) => lock,
        Err(e) => return RefundResult::Refused(Refusal::LedgerUnreadable(e)),
    };
    let plan = match prepare(svc, request.clone(), ApprovalStep::None).await {
        Ok(plan) => plan,
        Err(done) => return done,
    };
    if !svc.guard.refund_confirm {
        return execute(svc, plan, ApprovalStep::None).await;
    }
    if !confirm.can_ask() {
        // No way to ask in this client: record it as awaiting approval on a page, under the lock.
        return approvals::offer(svc, &plan).await;
    }
    // A person may take minutes: other refunds of the order need not wait for them.
    drop(lock);
    match confirm.ask(&plan).await {
        Decision::Approved => {}
        Decision::Refused(why) => return refused(Guardrail::NotApproved(why)),
        Decision::Asking => return RefundResult::AwaitingPerson,
        Decision::CannotAsk => {
            let _lock = match svc.ledger.lock_order(&request.out_trade_no).await {
                Ok(lock) => lock,
                Err(e) => return RefundResult::Refused(Refusal::LedgerUnreadable(e)),
            };
            return match prepare(svc, request, ApprovalStep::None).await {
                Ok(plan) => approvals::offer(svc, &plan).await,
                Err(done) => done,
            };
        }
    }
    // Approved: check again, with fresh figures, and send only what the person saw.
    let _lock = match svc.ledger.lock_order(&request.out_trade_no).await {
        Ok(lock) => lock,
        Err(e) => return RefundResult::Refused(Refusal::LedgerUnreadable(e)),
    };
    let fresh = match prepare(svc, request, ApprovalStep::None).await {
        Ok(plan) => plan,
        Err(done) => return done,
    };
    if fresh.figures() != plan.figures() {
        return refused(Guardrail::FiguresChanged {
            asked_paid: plan.paid,
            asked_refunded: plan.already_refunded,
            paid: fresh.paid,
            refunded: fresh.already_refunded,
        });
    }
    execute(svc, fresh, ApprovalStep::None).await
}

/// Every check before anything is sent: a plan, or the answer already. `step`: `Approved` when a
/// person just approved it on its page (a refund awaiting approval is then what is planned).
pub async fn prepare(
    svc: &Services,
    mut request: RefundRequest,
    step: ApprovalStep,
) -> Result<RefundPlan, RefundResult> {
    let unreadable = |e| RefundResult::Refused(Refusal::LedgerUnreadable(e));
    // The ledger's figures decide what may be sent: if it cannot be read, nothing is.
    let previous = svc
        .ledger
        .refund(&request.out_trade_no, &request.out_request_no)
        .await
        .map_err(unreadable)?;
    if let Some(previous) = &previous {
        if previous.refund_amount != request.amount {
            return Err(RefundResult::Refused(Refusal::Conflict(previous.clone())));
        }
        if previous.state == RefundState::Succeeded {
            return Err(RefundResult::Replayed(previous.clone()));
        }
        // Decided on its page: the replay says how, rather than asking again.
        if previous.state == RefundState::Failed
            && let Some(why) = previous
                .detail
                .as_deref()
                .filter(|d| d.starts_with("approval: "))
        {
            return Err(refused(Guardrail::NotApproved(format!(
                "refund {} was not approved on its page ({}); nothing was refunded. To ask again, use a new outRequestNo",
                previous.out_request_no,
                why.trim_start_matches("approval: ")
            ))));
        }
        // Another live server sharing the ledger is sending it right now: two senders would race.
        if previous.state == RefundState::Pending
            && let Some(sender) = &previous.owner
            && sender != svc.ledger.instance()
            && svc.ledger.is_alive(sender).await.map_err(unreadable)?
        {
            return Err(RefundResult::InFlightElsewhere { sent: false });
        }
        request.reason = previous.reason.clone();
    }
    // Sent before, outcome unknown: it may already have moved money, so it can only be resent
    // with the same number (Alipay refunds at most once per number), never refused as new.
    // Awaiting approval, asked again through the tool: a fresh link for the same refund, under
    // every guardrail as when it was offered.
    let awaiting = previous
        .as_ref()
        .is_some_and(|p| p.state == RefundState::AwaitingApproval);
    let resend = previous.as_ref().is_some_and(|p| p.state.in_flight());
    if let Some(limit) = svc.guard.max_refund
        && request.amount > limit
        && !resend
    {
        return Err(refused(Guardrail::MaxRefund {
            asked: request.amount,
            limit,
        }));
    }
    // What the buyer paid and the trade's state, from a verified answer.
    let trade = match svc
        .client
        .execute(&TradeQuery::by_out_trade_no(request.out_trade_no.as_str()))
        .await
    {
        Ok(t) => t,
        Err(e) if resend => return Err(RefundResult::Unknown(e)),
        Err(e) => return Err(RefundResult::Refused(Refusal::TradeQueryFailed(e))),
    };
    if let Some(status) = &trade.trade_status {
        orders::record_status(
            svc,
            &request.out_trade_no,
            status.clone(),
            trade.trade_no.clone(),
            trade.send_pay_date.clone(),
            StatusSource::Query,
        )
        .await;
    }
    let paid = trade.total_amount.unwrap_or_default();
    let already_refunded = svc
        .ledger
        .refunded_besides(&request.out_trade_no, &request.out_request_no)
        .await
        .map_err(unreadable)?;
    if !resend {
        if trade.trade_status != Some(TradeStatus::TradeSuccess) {
            return Err(refused(Guardrail::NotPaid {
                order: request.out_trade_no.clone(),
                status: trade.trade_status.clone(),
            }));
        }
        if let Err(over) = check_remaining(paid, already_refunded, request.amount) {
            return Err(refused(Guardrail::over(
                over,
                &request.out_trade_no,
                request.amount,
            )));
        }
        if let Some(limit) = svc.guard.daily_refund_limit {
            let today = svc.ledger.today().await.map_err(unreadable)?;
            let mut used = svc
                .ledger
                .refunded_on_day(&today)
                .await
                .map_err(unreadable)?;
            // A refund awaiting approval already counts today: not twice.
            if let Some(p) = previous
                .as_ref()
                .filter(|p| p.state == RefundState::AwaitingApproval && p.day == today)
            {
                used = used.saturating_sub(p.refund_amount.into());
            }
            if let Err(over) = check_daily(used, request.amount, Some(limit.into())) {
                return Err(refused(Guardrail::over(
                    over,
                    &request.out_trade_no,
                    request.amount,
                )));
            }
        }
    }
    let plan = RefundPlan {
        request,
        paid,
        already_refunded,
        trade_no: trade.trade_no,
    };
    if awaiting && step != ApprovalStep::Approved {
        return Err(approvals::offer(svc, &plan).await);
    }
    Ok(plan)
}

/// Record, send, and settle. Called once the plan is approved (or needs no approval), under the
/// order's lock.
pub async fn execute(svc: &Services, plan: RefundPlan, step: ApprovalStep) -> RefundResult {
    let r = &plan.request;
    let new = NewRefund {
        out_trade_no: r.out_trade_no.clone(),
        out_request_no: r.out_request_no.clone(),
        amount: r.amount,
        reason: r.reason.clone(),
        owner: svc.ledger.instance().clone(),
        step,
    };
    let limits = RefundLimits {
        daily: svc.guard.daily_refund_limit.map(Money::from),
        day: today(svc).await,
        paid: plan.paid,
    };
    // A resend repeats the recorded request exactly: the same number with other parameters is
    // `ACQ.DISCORDANT_REPEAT_REQUEST`, which would hide whether the first attempt went through.
    let (reason, resend) = match svc.ledger.begin_refund(&new, &limits).await {
        Ok(RefundBegin::Fresh) => (r.reason.clone(), false),
        Ok(RefundBegin::Retry(previous)) => (previous.reason, true),
        Ok(RefundBegin::Replay(previous)) => return RefundResult::Replayed(previous),
        Ok(RefundBegin::Conflict(previous)) => {
            return RefundResult::Refused(Refusal::Conflict(previous));
        }
        Ok(RefundBegin::Over(over)) => {
            return refused(Guardrail::over(over, &r.out_trade_no, r.amount));
        }
        // Put up for approval by another call meanwhile: it is sent only from its page.
        Ok(RefundBegin::StillAwaiting(_)) => {
            return RefundResult::InFlightElsewhere { sent: false };
        }
        Err(e) => return RefundResult::Refused(Refusal::NotRecorded(e)),
    };
    let request = TradeRefund {
        out_trade_no: r.out_trade_no.to_string(),
        refund_amount: r.amount,
        out_request_no: Some(r.out_request_no.to_string()),
        refund_reason: reason,
    };
    let started = Instant::now();
    let first = svc.client.execute(&request).await;
    tracing::info!(out_trade_no = %r.out_trade_no, out_request_no = %r.out_request_no,
        refund_amount = %r.amount, resend, ok = first.is_ok(), "refund sent");
    let mut result = match first {
        Ok(answer) => answered(svc, r, answer).await,
        Err(e) if e.outcome_unknown() => recover(svc, r, &request, e, started).await,
        Err(e) => RefundResult::Failed(e),
    };
    if resend && matches!(result, RefundResult::Failed(_)) {
        // Refused now, but an earlier attempt with this number may have gone through: only a
        // refund query that answers says which.
        match ask_refund(svc, &r.out_trade_no, &r.out_request_no).await {
            Ok(q) if q.refund_succeeded() => {
                result = RefundResult::Succeeded {
                    trade_no: q.trade_no,
                    total_refunded: None,
                    moved_now: false,
                };
            }
            Ok(_) => {}
            Err(e) => result = RefundResult::Unknown(e),
        }
    }
    settle(svc, &plan, resend, result).await
}

/// Record what Alipay said, and report only what the ledger holds.
async fn settle(
    svc: &Services,
    plan: &RefundPlan,
    resend: bool,
    result: RefundResult,
) -> RefundResult {
    let r = &plan.request;
    let state = result.state();
    let recorded = recorded_outcome(&result);
    let mut result = match svc
        .ledger
        .finish_refund(
            &r.out_trade_no,
            &r.out_request_no,
            &recorded,
            Some(svc.ledger.instance()),
        )
        .await
    {
        Ok(Some(stored)) if stored == state => result,
        // Confirmed meanwhile (by a refund query, another process, a notification): it is done,
        // by this call's send unless the number had been sent before.
        Ok(Some(RefundState::Succeeded)) => RefundResult::Succeeded {
            trade_no: plan.trade_no.clone(),
            total_refunded: None,
            moved_now: !resend,
        },
        // Taken over by another server's resend: its outcome is the one that counts.
        Ok(Some(_)) => RefundResult::InFlightElsewhere { sent: true },
        Ok(None) => {
            return RefundResult::Unrecorded {
                state,
                why: "the refund's row is gone".into(),
            };
        }
        Err(e) => {
            // Never report a refund the ledger does not hold; the same number makes it safe to retry.
            tracing::error!(out_trade_no = %r.out_trade_no, error = %e, "cannot record the refund outcome");
            return RefundResult::Unrecorded {
                state,
                why: e.to_string(),
            };
        }
    };
    if let RefundResult::Succeeded {
        total_refunded: Some(total),
        trade_no,
        ..
    } = &mut result
        && plan.paid > Money::ZERO
    {
        let status = if *total >= plan.paid {
            TradeStatus::TradeClosed
        } else {
            TradeStatus::TradeSuccess
        };
        let update = StatusUpdate {
            trade_status: status,
            trade_no: trade_no.clone(),
            refunded: Some(*total),
            source: StatusSource::Refund,
            // A close by a full refund is no expiry.
            seen_at: None,
            paid_at: None,
        };
        if let Err(e) = svc.ledger.update_status(&r.out_trade_no, &update).await {
            tracing::error!(out_trade_no = %r.out_trade_no, error = %e, "cannot record the refunded status");
        }
    }
    tracing::info!(out_trade_no = %r.out_trade_no, out_request_no = %r.out_request_no, state = result.state().as_str(), "refund outcome");
    result
}

/// Today's Beijing day on the ledger's clock (the store's, shared by every instance); the local
/// clock's when the store cannot say (the ledger's own call fails the same way right after).
pub(crate) async fn today(svc: &Services) -> String {
    match svc.ledger.today().await {
        Ok(day) => day,
        Err(_) => beijing_today(),
    }
}

/// What the ledger records of a result.
fn recorded_outcome(result: &RefundResult) -> RefundOutcome {
    let sub_code = |e: &Error| match e {
        Error::Business(g) => g.sub_code.clone(),
        _ => None,
    };
    match result {
        RefundResult::Succeeded {
            trade_no,
            total_refunded,
            ..
        } => RefundOutcome {
            trade_no: trade_no.clone().filter(|t| !t.is_empty()),
            total_refunded: *total_refunded,
            ..RefundOutcome::state(RefundState::Succeeded)
        },
        RefundResult::Failed(e) => RefundOutcome {
            detail: sub_code(e),
            ..RefundOutcome::state(RefundState::Failed)
        },
        RefundResult::Unknown(e) => RefundOutcome {
            detail: sub_code(e),
            ..RefundOutcome::state(RefundState::Unknown)
        },
        other => RefundOutcome::state(other.state()),
    }
}

/// A verified answer to the refund call: the `fund_change` rule.
async fn answered(svc: &Services, r: &RefundRequest, answer: TradeRefundResponse) -> RefundResult {
    if answer.fund_changed() {
        return RefundResult::Succeeded {
            trade_no: answer.trade_no,
            total_refunded: answer.refund_fee,
            moved_now: true,
        };
    }
    // `N` (or absent) does not prove the refund: Alipay says to confirm with a refund query.
    match ask_refund(svc, &r.out_trade_no, &r.out_request_no).await {
        Ok(q) if q.refund_succeeded() => RefundResult::Succeeded {
            trade_no: answer.trade_no.or(q.trade_no),
            total_refunded: answer.refund_fee,
            moved_now: false,
        },
        Ok(q) => RefundResult::NotConfirmed {
            refund_status: q.refund_status,
        },
        Err(e) => RefundResult::Unknown(e),
    }
}

/// The refund's answer was lost: find out, and if it did not happen, send it again with the same
/// `out_request_no`, within the time budget of one call.
async fn recover(
    svc: &Services,
    r: &RefundRequest,
    request: &TradeRefund,
    first: Error,
    started: Instant,
) -> RefundResult {
    let budget = svc.timeout + Duration::from_secs(1);
    let left = || budget.saturating_sub(started.elapsed());
    tracing::warn!(out_trade_no = %r.out_trade_no, out_request_no = %r.out_request_no, error = %first, "refund outcome unknown; checking");
    if let Ok(Ok(q)) =
        tokio::time::timeout(left(), ask_refund(svc, &r.out_trade_no, &r.out_request_no)).await
        && q.refund_succeeded()
    {
        return RefundResult::Succeeded {
            trade_no: q.trade_no,
            total_refunded: None,
            moved_now: true,
        };
    }
    match tokio::time::timeout(left(), svc.client.execute(request)).await {
        Ok(Ok(answer)) => Box::pin(answered(svc, r, answer)).await,
        // Even a definite refusal of the resend does not prove the lost first attempt failed
        // (Alipay may still be processing it): the outcome stays unknown.
        Ok(Err(e)) => RefundResult::Unknown(e),
        Err(_) => RefundResult::Unknown(first),
    }
}
