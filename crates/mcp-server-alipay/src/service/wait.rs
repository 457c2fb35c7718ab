//! Waiting for a payment: `wait-for-alipay-payment` returns the moment an order reaches a final
//! state (paid, refunded, closed, expired), at once if it is there already, else when its time
//! runs out. Most clients never pass a resource update to the model and cut a call at about 60 s,
//! so this is how an agent learns it was paid.
//!
//! Two ways in, whichever is first: the ledger's change feed (the notify receiver records a
//! verified notification) and, while anyone waits on an order, a query to Alipay about every
//! [`POLL_EVERY`] ([`WaitHub`]: one poller per order however many wait), so "paid" arrives within
//! seconds even when no notification ever comes (a laptop behind NAT, a notify URL that is down).
//! Polling stops when nobody waits, at a final state, or once the order expired.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::domain::order::payment_state;
use crate::domain::{OutTradeNo, PaymentState, StatusSource};
use crate::ledger::{LedgerError, OrderRecord};
use crate::service::{Services, orders};

/// How often Alipay is asked while someone waits.
pub const POLL_EVERY: Duration = Duration::from_secs(3);
/// How often a waiter that asked for progress hears of it (the issue: at least every 5 s).
pub const PROGRESS_EVERY: Duration = Duration::from_secs(4);

pub use crate::service::{NoProgress, Progress};

/// How a wait ended.
#[derive(Debug)]
pub enum Waited {
    /// The order as the ledger holds it when the wait ended, and where its payment stands.
    Ended {
        order: Box<OrderRecord>,
        state: PaymentState,
        waited: Duration,
    },
    /// No order of this server has that number.
    UnknownOrder,
    LedgerFailed(LedgerError),
}

/// Where an order's payment stands now.
pub async fn state_of(svc: &Services, order: &OrderRecord) -> PaymentState {
    let past_expiry = svc.past_expiry(order).await;
    payment_state(
        order.trade_status.as_ref(),
        order.total_amount,
        order.refunded_amount,
        order.status_source == Some(StatusSource::Close),
        past_expiry,
    )
}

/// Wait up to `timeout` for the order to reach a final state.
pub async fn wait(
    svc: &Services,
    out_trade_no: &OutTradeNo,
    timeout: Duration,
    progress: &dyn Progress,
) -> Waited {
    let started = Instant::now();
    let deadline = started + timeout;
    // Subscribed before the first read: a change between the two is not missed.
    let mut changes = svc.ledger.changes();
    let read = || async {
        match svc.ledger.order(out_trade_no).await {
            Ok(Some(order)) => Ok(order),
            Ok(None) => Err(Waited::UnknownOrder),
            Err(e) => Err(Waited::LedgerFailed(e)),
        }
    };
    let mut order = match read().await {
        Ok(order) => order,
        Err(ended) => return ended,
    };
    let mut poll: Option<Arc<Poll>> = None;
    let mut next_progress = started + PROGRESS_EVERY;
    loop {
        let mut state = state_of(svc, &order).await;
        if state == PaymentState::Expired && poll.is_some() {
            // Our clock says expired, but a payment may have come in at the last second: ask once
            // more before saying so.
            orders::query(svc, out_trade_no).await;
            if let Ok(fresh) = read().await {
                order = fresh;
            }
            state = state_of(svc, &order).await;
        }
        let now = Instant::now();
        if state.is_final() || now >= deadline {
            return Waited::Ended {
                order: Box::new(order),
                state,
                waited: now - started,
            };
        }
        if poll.is_none() {
            poll = Some(svc.waits.join(svc, out_trade_no));
        }
        // Wake for a change of this order, the next progress report, the deadline, or a tick
        // (which notices the gateway's clock passing the order's expiry).
        let tick = (now + POLL_EVERY).min(deadline);
        tokio::select! {
            change = changes.recv() => match change {
                Ok(c) if c.out_trade_no != *out_trade_no => continue,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => tokio::time::sleep_until(tick).await,
            },
            () = tokio::time::sleep_until(next_progress.min(tick)) => {}
        }
        if Instant::now() >= next_progress {
            let waited = Instant::now() - started;
            progress
                .report(
                    waited.as_secs_f64(),
                    timeout.as_secs_f64(),
                    format!(
                        "waiting for order {out_trade_no} to be paid ({} s of {} s)",
                        waited.as_secs(),
                        timeout.as_secs()
                    ),
                )
                .await;
            next_progress += PROGRESS_EVERY;
        }
        match read().await {
            Ok(fresh) => order = fresh,
            Err(ended) => return ended,
        }
    }
}

/// One poller per order while anyone waits on it; a waiter holds its [`Poll`].
#[derive(Default)]
pub struct WaitHub {
    polls: Mutex<HashMap<OutTradeNo, Weak<Poll>>>,
}

/// Held by a waiter: the poller of its order runs while one is held.
pub struct Poll;

impl WaitHub {
    /// The poll of this order, started if nobody waits on it yet.
    pub fn join(&self, svc: &Services, out_trade_no: &OutTradeNo) -> Arc<Poll> {
        let mut polls = self.polls.lock().unwrap_or_else(PoisonError::into_inner);
        polls.retain(|_, p| p.strong_count() > 0);
        if let Some(poll) = polls.get(out_trade_no).and_then(Weak::upgrade) {
            return poll;
        }
        let poll = Arc::new(Poll);
        polls.insert(out_trade_no.clone(), Arc::downgrade(&poll));
        tokio::spawn(run_poll(
            svc.clone(),
            out_trade_no.clone(),
            Arc::downgrade(&poll),
        ));
        poll
    }

    /// Orders polled now (for tests and the log).
    pub fn polling(&self) -> usize {
        let polls = self.polls.lock().unwrap_or_else(PoisonError::into_inner);
        polls.values().filter(|p| p.strong_count() > 0).count()
    }
}

/// Ask Alipay about the order (recording what it says, which wakes the waiters) now and every
/// [`POLL_EVERY`] while anyone waits, until it is final or expired.
async fn run_poll(svc: Services, out_trade_no: OutTradeNo, waiters: Weak<Poll>) {
    loop {
        if waiters.strong_count() == 0 {
            return;
        }
        orders::query(&svc, &out_trade_no).await;
        match svc.ledger.order(&out_trade_no).await {
            Ok(Some(order)) if state_of(&svc, &order).await.is_final() => return,
            Ok(None) => return,
            _ => {}
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}
