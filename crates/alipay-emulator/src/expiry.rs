//! Applying order expiry to the store: on every touch ([`catch_up`], called by each handler
//! before it reads or moves a trade, and by the clock control after moving the clock) and by a
//! background sweep ([`run`]) so that an opened trade closes, and its `TRADE_CLOSED` notification
//! goes out, even when nobody asks about it. The rules are `trades::expire_order`'s.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};

use crate::shared::Shared;
use crate::trades;

/// How often the sweep looks. Alipay's own closing is not to the second either; a second is
/// plenty for `time_expire`, whose unit is the second.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Close every opened trade whose expiry has come by `now`. A read (no save, no allocation) when
/// nothing is due, so it is cheap to call before every request; one save when something closed.
/// Returns how many trades closed.
pub(crate) fn catch_up(shared: &Shared, now: &DateTime<FixedOffset>) -> usize {
    let due = shared.read(|store| trades::due_for_expiry(store, &shared.apps, now));
    if due.is_empty() {
        return 0;
    }
    let closed = shared.mutate(|store| trades::expire_all(store, &shared.apps, &due, now));
    if closed > 0 {
        tracing::info!("{closed} unpaid trade(s) closed at their expiry");
    }
    closed
}

/// The background sweep, until shutdown. Its first look is at once, so trades that expired while
/// a persisted emulator was stopped close on start.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            _ = tick.tick() => {
                catch_up(&shared, &shared.clock.now());
            }
        }
    }
}
