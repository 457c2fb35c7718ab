//! Settle refunds whose outcome was never recorded (a process died between sending and
//! recording), so the ledger agrees with Alipay: at start-up, and periodically
//! (`AP_RECONCILE_INTERVAL_SECONDS`, a minute by default) on every live process, so a dead instance's refunds are settled by a live
//! one without waiting for a restart. A refund another live server is sending right now is left to
//! it; one Alipay does not know yet stays unknown (still counted against every limit) until it is
//! old enough to be sure it never arrived. Each is settled under its order's lock, and one another
//! process settled meanwhile is left as it is, so one process settles each.

use crate::domain::RefundState;
use crate::ledger::RefundOutcome;
use crate::service::Services;
use crate::service::refund_query::ask as ask_refund;

/// How long after its last send a refund Alipay does not know is taken as never arrived. A request
/// in flight reaches Alipay within the client timeout; this leaves a wide margin beyond it.
pub const NEVER_ARRIVED_AFTER_SECS: i64 = 300;

/// What one pass did, for the log and for tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Now succeeded or failed in the ledger.
    pub settled: usize,
    /// Looked up, but still not known (Alipay does not know it yet, or another sender took it).
    pub still_unknown: usize,
    pub left_to_live_senders: usize,
    /// Not looked up or not recorded now (the gateway or the ledger failed); tried next time.
    pub not_reachable: usize,
}

pub async fn reconcile(svc: &Services) -> Reconciled {
    let mut done = Reconciled::default();
    let unsettled = match svc.ledger.unsettled_refunds().await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot read unsettled refunds");
            return done;
        }
    };
    // Awaiting a person's approval: never sent, nothing to look up.
    for r in unsettled
        .into_iter()
        .filter(|r| r.state != RefundState::AwaitingApproval)
    {
        let Some(sender) = r.owner.clone() else {
            // Recorded before refunds knew their sender: nobody else can be sending it.
            settle_one(svc, &r, None, &mut done).await;
            continue;
        };
        let alive =
            sender == *svc.ledger.instance() || svc.ledger.is_alive(&sender).await.unwrap_or(true);
        if alive {
            done.left_to_live_senders += 1;
            continue;
        }
        settle_one(svc, &r, Some(&sender), &mut done).await;
    }
    done
}

async fn settle_one(
    svc: &Services,
    r: &crate::ledger::RefundRecord,
    sender: Option<&crate::ledger::InstanceId>,
    done: &mut Reconciled,
) {
    let (no, req) = (&r.out_trade_no, &r.out_request_no);
    // One refund decision per order at a time, as the refund flow takes it.
    let Ok(_order) = svc.ledger.lock_order(no).await else {
        done.not_reachable += 1;
        return;
    };
    // Another process may have settled it (or resent it) while this one waited for the lock.
    match svc.ledger.refund(no, req).await {
        Ok(Some(now)) if now.state.in_flight() && now.owner == r.owner => {}
        Ok(_) => {
            done.left_to_live_senders += 1;
            return;
        }
        Err(_) => {
            done.not_reachable += 1;
            return;
        }
    }
    let (state, trade_no, detail) = match ask_refund(svc, no, req).await {
        Ok(q) if q.refund_succeeded() => (RefundState::Succeeded, q.trade_no, "reconciled"),
        Ok(_) if age_secs(svc, &r.updated_at).await > Some(NEVER_ARRIVED_AFTER_SECS) => (
            RefundState::Failed,
            None,
            "reconciled: Alipay has no such refund",
        ),
        Ok(_) => (RefundState::Unknown, None, "reconciled: not at Alipay yet"),
        Err(e) => {
            tracing::warn!(out_trade_no = %no, error = %e, "cannot reconcile a refund now");
            done.not_reachable += 1;
            return;
        }
    };
    let settled = RefundOutcome {
        state,
        trade_no,
        total_refunded: None,
        detail: Some(detail.into()),
        succeeded_at: None,
    };
    // Only while the dead sender still holds it: a resend by a live process owns it now.
    let stored = svc.ledger.finish_refund(no, req, &settled, sender).await;
    tracing::info!(out_trade_no = %no, out_request_no = %req, outcome = state.as_str(), stored = ?stored, "unsettled refund reconciled");
    match stored {
        Ok(Some(state)) if !state.in_flight() => done.settled += 1,
        Ok(_) => done.still_unknown += 1,
        Err(_) => done.not_reachable += 1,
    }
}

/// Seconds since a ledger timestamp (Beijing `yyyy-MM-dd HH:mm:ss`), on the ledger's own clock:
/// a host whose clock runs fast must not take a refund still on its way for one that never
/// arrived. `None` (not old enough to say) when the ledger cannot tell its time.
async fn age_secs(svc: &Services, timestamp: &str) -> Option<i64> {
    let then = alipay_openapi::time::parse_timestamp(timestamp)?;
    let now = alipay_openapi::time::parse_timestamp(&svc.ledger.now().await.ok()?)?;
    Some((now - then).num_seconds())
}
