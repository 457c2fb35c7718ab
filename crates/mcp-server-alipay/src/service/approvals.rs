//! A person's approval of a refund on a page, for clients that cannot ask (no elicitation): the
//! refund is recorded as awaiting approval and nothing is sent; the answer carries a one-time link
//! (256 random bits, only its SHA-256 stored) that expires after `AP_REFUND_APPROVAL_TTL_MINUTES`.
//! Opening the page shows the figures fetched from Alipay then; only a POST with the form's
//! anti-forgery value (and `AP_REFUND_PIN`, when set) decides, once. On approval the figures are
//! fetched again and a refund whose figures changed is refused; otherwise it is sent with its
//! recorded `outRequestNo`. Denials and expiries settle the refund as failed and are audited.

use alipay_openapi::{Money, TradeQuery};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::config::Secret;
use crate::domain::RefundState;
use crate::domain::refund::ApprovalStep;
use crate::ledger::{
    ApprovalRecord, ApprovalStatus, AuditDecision, AuditOutcome, NewRefund, RefundBegin,
    RefundLimits, RefundOutcome, RefundRecord,
};
use crate::service::Services;
use crate::service::refunds::{self, RefundPlan, RefundRequest, RefundResult, Refusal};

/// How the approval pages are reached and how long a link lives.
#[derive(Clone, Debug)]
pub struct ApprovalSettings {
    /// `http://host:port` the links start with (`AP_APPROVAL_BASE_URL`, else the listener's).
    pub base_url: String,
    /// `AP_REFUND_APPROVAL_TTL_MINUTES`.
    pub ttl_minutes: u32,
    /// `AP_REFUND_PIN`: approval needs it when set.
    pub pin: Option<Secret>,
}

/// The path of an approval page, below the base URL.
pub const APPROVAL_PATH: &str = "/approve";

/// Detail recorded on a refund a person denied, or whose approval expired: a replay says so.
pub const DENIED: &str = "approval: denied by a person";
pub const EXPIRED: &str = "approval: not decided before its link expired";
pub const FIGURES_CHANGED: &str = "approval: the figures changed before it was approved";
pub const WRONG_PIN: &str = "approval: a wrong PIN was given on its page";
pub const REFUSED_AT_APPROVAL: &str = "approval: a guardrail refused it when it was approved";

/// A refund offered for approval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalOffer {
    /// The one-time link (a capability: whoever opens it can decide).
    pub url: String,
    /// The link's token (what an MCP Apps view's grant stands for, `crate::apps::grants`).
    pub token: String,
    /// Beijing time.
    pub expires_at: String,
    pub paid: Money,
    pub already_refunded: Money,
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Record the refund as awaiting approval (every limit checked in the transaction, the refund then
/// counting against them) and issue its link. A refund already awaiting gets a new link (the old
/// one stops working), so a replayed call always hands back one that works.
pub async fn offer(svc: &Services, plan: &RefundPlan) -> RefundResult {
    let Some(settings) = &svc.approvals else {
        // Approval pages are off: there is no way to ask, so nothing is sent.
        return RefundResult::Refused(Refusal::Guardrail(
            crate::domain::guardrail::Guardrail::NotApproved(
                "every refund needs a person's approval, and this MCP client cannot ask one (it does not offer elicitation) while approval pages are off (AP_APPROVAL_LISTEN=off); refund from a client that does, or ask the operator".into(),
            ),
        ));
    };
    let r = &plan.request;
    let new = NewRefund {
        out_trade_no: r.out_trade_no.clone(),
        out_request_no: r.out_request_no.clone(),
        amount: r.amount,
        reason: r.reason.clone(),
        owner: svc.ledger.instance().clone(),
        step: ApprovalStep::Ask,
    };
    let limits = RefundLimits {
        daily: svc.guard.daily_refund_limit.map(Money::from),
        day: refunds::today(svc).await,
        paid: plan.paid,
    };
    match svc.ledger.begin_refund(&new, &limits).await {
        // Recorded as awaiting; an unknown one awaiting its resend's approval; or waiting already.
        Ok(RefundBegin::Fresh | RefundBegin::Retry(_) | RefundBegin::StillAwaiting(_)) => {}
        Ok(RefundBegin::Replay(previous)) => return RefundResult::Replayed(previous),
        Ok(RefundBegin::Conflict(previous)) => {
            return RefundResult::Refused(Refusal::Conflict(previous));
        }
        Ok(RefundBegin::Over(over)) => {
            return RefundResult::Refused(Refusal::Guardrail(
                crate::domain::guardrail::Guardrail::over(over, &r.out_trade_no, r.amount),
            ));
        }
        Err(e) => return RefundResult::Refused(Refusal::NotRecorded(e)),
    }
    let token = random_hex(32);
    let now = alipay_openapi::time::beijing_now();
    let mut record = ApprovalRecord {
        token_hash: hash(&token),
        out_trade_no: r.out_trade_no.clone(),
        out_request_no: r.out_request_no.clone(),
        csrf: random_hex(16),
        paid: plan.paid,
        refunded: plan.already_refunded,
        expires_at: alipay_openapi::time::timestamp_after(&now, settings.ttl_minutes),
        status: ApprovalStatus::Open,
        created_at: String::new(),
        decided_at: None,
    };
    // The figures approval is checked against: money moved, not other refunds merely offered.
    record.refunded = plan
        .already_refunded
        .saturating_sub(awaiting_others(svc, &record).await);
    if let Err(e) = svc.ledger.put_approval(&record).await {
        return RefundResult::Refused(Refusal::NotRecorded(e));
    }
    tracing::info!(out_trade_no = %r.out_trade_no, out_request_no = %r.out_request_no, expires_at = %record.expires_at, "refund awaiting a person's approval");
    RefundResult::AwaitingApproval(ApprovalOffer {
        url: format!(
            "{}{APPROVAL_PATH}/{token}",
            settings.base_url.trim_end_matches('/')
        ),
        token,
        expires_at: record.expires_at,
        paid: plan.paid,
        already_refunded: plan.already_refunded,
    })
}

/// What an approval page shows.
#[derive(Debug)]
pub enum Page {
    /// Open: the refund and the figures fetched from Alipay just now.
    Open {
        approval: Box<ApprovalRecord>,
        refund: Box<RefundRecord>,
        paid: Money,
        already_refunded: Money,
        trade_no: Option<String>,
        pin_required: bool,
    },
    /// No such link, or decided already, or expired: why, for the person.
    Closed(String),
}

/// The approval behind a token, if it is still open (expiring it when its time is up).
async fn open_approval(svc: &Services, token: &str) -> Result<ApprovalRecord, String> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("This approval link is not valid.".into());
    }
    let approval = match svc.ledger.approval(&hash(token)).await {
        Ok(Some(a)) => a,
        Ok(None) => return Err("This approval link is not valid.".into()),
        Err(e) => {
            return Err(format!(
                "The order ledger could not be read ({e}); try again."
            ));
        }
    };
    if approval.status != ApprovalStatus::Open {
        return Err(format!(
            "This refund was already {} {}; the link works once.",
            approval.status.as_str(),
            approval.decided_at.as_deref().unwrap_or("")
        ));
    }
    if expired(&approval) {
        expire(svc, &approval).await;
        return Err(format!(
            "This approval link expired at {} (Beijing time); nothing was refunded. Ask for the refund again.",
            approval.expires_at
        ));
    }
    Ok(approval)
}

/// Approval links live by this server's clock (they are ours, not Alipay's).
fn expired(approval: &ApprovalRecord) -> bool {
    alipay_openapi::time::parse_timestamp(&approval.expires_at)
        .is_none_or(|at| alipay_openapi::time::beijing_now() >= at)
}

/// The page for a token.
pub async fn view(svc: &Services, token: &str) -> Page {
    let approval = match open_approval(svc, token).await {
        Ok(a) => a,
        Err(why) => return Page::Closed(why),
    };
    let refund = match svc
        .ledger
        .refund(&approval.out_trade_no, &approval.out_request_no)
        .await
    {
        Ok(Some(r)) => r,
        Ok(None) => return Page::Closed("This refund is no longer in the ledger.".into()),
        Err(e) => return Page::Closed(format!("The order ledger could not be read ({e}).")),
    };
    // The figures a person decides on come from Alipay now, never from the conversation.
    let trade = match svc
        .client
        .execute(&TradeQuery::by_out_trade_no(approval.out_trade_no.as_str()))
        .await
    {
        Ok(t) => t,
        Err(e) => {
            return Page::Closed(format!(
                "Alipay could not be asked for the order's figures ({e}); reload the page to try again."
            ));
        }
    };
    let already_refunded = match svc
        .ledger
        .refunded_besides(&approval.out_trade_no, &approval.out_request_no)
        .await
    {
        Ok(m) => m,
        Err(e) => return Page::Closed(format!("The order ledger could not be read ({e}).")),
    };
    Page::Open {
        pin_required: svc.approvals.as_ref().is_some_and(|s| s.pin.is_some()),
        paid: trade.total_amount.unwrap_or_default(),
        already_refunded,
        trade_no: trade.trade_no,
        refund: Box::new(refund),
        approval: Box::new(approval),
    }
}

/// What the person sent.
#[derive(Clone, Default)]
pub struct DecisionForm {
    pub decision: Option<String>,
    pub csrf: Option<String>,
    pub pin: Option<String>,
}

impl std::fmt::Debug for DecisionForm {
    // Never the PIN.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionForm")
            .field("decision", &self.decision)
            .field("csrf", &self.csrf.as_ref().map(|_| "…"))
            .field("pin", &self.pin.as_ref().map(|_| "redacted"))
            .finish()
    }
}

/// What a decision did.
#[derive(Debug)]
pub enum Decided {
    /// Approved and sent: how the refund ended.
    Sent(Box<RefundResult>),
    Denied,
    /// Nothing decided, and why (a bad form, a wrong PIN, decided already, expired, changed).
    Refused(String),
}

fn same(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    bool::from(a.ct_eq(&b))
}

/// Decide on a token with a posted form.
pub async fn decide(svc: &Services, token: &str, form: &DecisionForm) -> Decided {
    let approval = match open_approval(svc, token).await {
        Ok(a) => a,
        Err(why) => return Decided::Refused(why),
    };
    if !form
        .csrf
        .as_deref()
        .is_some_and(|csrf| same(csrf, &approval.csrf))
    {
        return Decided::Refused(
            "The form is not the one this page served (its anti-forgery value is missing or wrong); open the link again."
                .into(),
        );
    }
    match form.decision.as_deref() {
        Some("deny") => {
            if !close_unsent(
                svc,
                &approval,
                ApprovalStatus::Denied,
                DENIED,
                "denied by a person",
            )
            .await
            {
                return Decided::Refused("This refund was already decided.".into());
            }
            Decided::Denied
        }
        Some("approve") => approve(svc, &approval, form).await,
        _ => Decided::Refused("Choose approve or deny.".into()),
    }
}

/// Decide on a token from an MCP Apps view's button: the view's one-time grant, already taken,
/// stands in for the page's anti-forgery value. No PIN ever comes this way: with one set, only
/// the page approves (an approval here would fail as a wrong PIN and end the link).
pub async fn decide_in_view(svc: &Services, token: &str, decision: &str) -> Decided {
    let approval = match open_approval(svc, token).await {
        Ok(a) => a,
        Err(why) => return Decided::Refused(why),
    };
    let form = DecisionForm {
        decision: Some(decision.to_string()),
        csrf: Some(approval.csrf),
        pin: None,
    };
    decide(svc, token, &form).await
}

async fn approve(svc: &Services, approval: &ApprovalRecord, form: &DecisionForm) -> Decided {
    if let Some(pin) = svc.approvals.as_ref().and_then(|s| s.pin.as_ref()) {
        let given = form.pin.as_deref().unwrap_or_default();
        if !same(given, pin.expose()) {
            // A wrong PIN ends the link: guessing gets one try per link.
            close_unsent(
                svc,
                approval,
                ApprovalStatus::Denied,
                WRONG_PIN,
                "wrong PIN",
            )
            .await;
            return Decided::Refused(
                "The PIN is wrong, so this refund was not approved and the link no longer works; ask for the refund again."
                    .into(),
            );
        }
    }
    let Ok(Some(refund)) = svc
        .ledger
        .refund(&approval.out_trade_no, &approval.out_request_no)
        .await
    else {
        return Decided::Refused("This refund is no longer in the ledger.".into());
    };
    let request = RefundRequest {
        out_trade_no: refund.out_trade_no.clone(),
        out_request_no: refund.out_request_no.clone(),
        amount: refund.refund_amount,
        reason: refund.reason.clone(),
    };
    let _lock = match svc.ledger.lock_order(&request.out_trade_no).await {
        Ok(lock) => lock,
        Err(e) => {
            return Decided::Refused(format!(
                "The order could not be locked ({e}); nothing was sent. Try again."
            ));
        }
    };
    // Under the lock: another decision of this link may have won while we waited for it.
    if !matches!(
        svc.ledger.approval(&approval.token_hash).await,
        Ok(Some(ApprovalRecord {
            status: ApprovalStatus::Open,
            ..
        }))
    ) {
        return Decided::Refused("This refund was already decided.".into());
    }
    // Fresh figures and every guardrail again, before the link is spent: a passing failure
    // (Alipay or the ledger cannot be asked now) leaves it open to try again.
    let plan = match refunds::prepare(svc, request, ApprovalStep::Approved).await {
        Ok(plan) => plan,
        Err(
            RefundResult::Refused(
                Refusal::TradeQueryFailed(_)
                | Refusal::LedgerUnreadable(_)
                | Refusal::NotRecorded(_),
            )
            | RefundResult::Unknown(_)
            | RefundResult::InFlightElsewhere { sent: false },
        ) => {
            return Decided::Refused(
                "Alipay (or the order ledger) could not be asked for the order's figures just now, so nothing was decided or sent; try again in a moment."
                    .into(),
            );
        }
        Err(result) => {
            if !close(svc, approval, ApprovalStatus::Denied).await {
                return Decided::Refused("This refund was already decided.".into());
            }
            if matches!(result, RefundResult::Refused(_)) {
                // A limit refuses it now: it will not be sent, so it stops counting.
                settle_unsent(svc, approval, REFUSED_AT_APPROVAL).await;
            }
            if let Some((decision, outcome)) = result.audit() {
                audit(svc, approval, decision, outcome).await;
            }
            return Decided::Sent(Box::new(result));
        }
    };
    // Money moved by other refunds since the page was offered; other refunds merely offered
    // for approval meanwhile moved none (they still count against what remains, above).
    let refunded_now = plan
        .already_refunded
        .saturating_sub(awaiting_others(svc, approval).await);
    if plan.paid != approval.paid || refunded_now != approval.refunded {
        close_unsent(
            svc,
            approval,
            ApprovalStatus::Denied,
            FIGURES_CHANGED,
            "figures changed",
        )
        .await;
        return Decided::Refused(format!(
            "The order's figures changed since the page was offered (paid {}, already refunded {} then; now {} and {}), so nothing was sent; ask for the refund again.",
            approval.paid, approval.refunded, plan.paid, refunded_now
        ));
    }
    if !close(svc, approval, ApprovalStatus::Approved).await {
        return Decided::Refused("This refund was already decided.".into());
    }
    let result = refunds::execute(svc, plan, ApprovalStep::Approved).await;
    if let Some((decision, outcome)) = result.audit() {
        audit(svc, approval, decision, outcome).await;
    }
    Decided::Sent(Box::new(result))
}

/// What other refunds of the order awaiting approval add up to (money none of them has moved).
async fn awaiting_others(svc: &Services, approval: &ApprovalRecord) -> Money {
    svc.ledger
        .refunds(&approval.out_trade_no)
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| {
            r.state == RefundState::AwaitingApproval && r.out_request_no != approval.out_request_no
        })
        .fold(Money::ZERO, |sum, r| {
            sum.saturating_add(r.refund_amount.into())
        })
}

/// Close an open approval, once: false when another decision (or the expiry) came first.
async fn close(svc: &Services, approval: &ApprovalRecord, status: ApprovalStatus) -> bool {
    svc.ledger
        .close_approval(&approval.token_hash, status)
        .await
        .unwrap_or(false)
}

/// Close an approval whose refund will not be sent: settle the refund as not made (`detail`, what
/// a replay says) and audit it as refused by `AP_REFUND_CONFIRM` for `why`. Only the first
/// decision does this; false for the others.
async fn close_unsent(
    svc: &Services,
    approval: &ApprovalRecord,
    status: ApprovalStatus,
    detail: &str,
    why: &str,
) -> bool {
    if !close(svc, approval, status).await {
        return false;
    }
    settle_unsent(svc, approval, detail).await;
    let decision = AuditDecision::Refused(format!("AP_REFUND_CONFIRM: {why}"));
    audit(svc, approval, decision, AuditOutcome::NotSent).await;
    true
}

/// A refund that will not be sent: settle it as failed (no money moved) if it still awaits.
async fn settle_unsent(svc: &Services, approval: &ApprovalRecord, why: &str) {
    let Ok(Some(refund)) = svc
        .ledger
        .refund(&approval.out_trade_no, &approval.out_request_no)
        .await
    else {
        return;
    };
    if refund.state != RefundState::AwaitingApproval {
        return;
    }
    let outcome = RefundOutcome {
        detail: Some(why.to_string()),
        ..RefundOutcome::state(RefundState::Failed)
    };
    if let Err(e) = svc
        .ledger
        .finish_refund(
            &approval.out_trade_no,
            &approval.out_request_no,
            &outcome,
            None,
        )
        .await
    {
        tracing::error!(error = %e, "cannot settle a refund that will not be sent");
    }
}

async fn audit(
    svc: &Services,
    approval: &ApprovalRecord,
    decision: AuditDecision,
    outcome: AuditOutcome,
) {
    let mut arguments = serde_json::Map::new();
    arguments.insert(
        "outTradeNo".into(),
        approval.out_trade_no.to_string().into(),
    );
    arguments.insert(
        "outRequestNo".into(),
        approval.out_request_no.to_string().into(),
    );
    arguments.insert("via".into(), "approval page".into());
    svc.audit("refund-alipay-payment", &arguments, decision, outcome)
        .await;
}

/// An approval whose time ran out: closed as expired, its refund settled as failed, audited.
pub async fn expire(svc: &Services, approval: &ApprovalRecord) {
    if close_unsent(
        svc,
        approval,
        ApprovalStatus::Expired,
        EXPIRED,
        "approval expired",
    )
    .await
    {
        tracing::info!(out_trade_no = %approval.out_trade_no, out_request_no = %approval.out_request_no, "refund approval expired");
    }
}

/// Expire every open approval whose time is up (run every minute).
pub async fn sweep(svc: &Services) -> usize {
    let Ok(open) = svc.ledger.open_approvals().await else {
        return 0;
    };
    let mut expired_now = 0;
    for approval in open {
        if expired(&approval) {
            expire(svc, &approval).await;
            expired_now += 1;
        }
    }
    expired_now
}
