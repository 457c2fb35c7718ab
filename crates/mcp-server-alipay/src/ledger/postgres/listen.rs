//! `changes()`: every transaction that changes an order runs `pg_notify(channel, out_trade_no)`
//! (delivered at its commit, never if it rolls back), and each handle LISTENs on a dedicated
//! connection and feeds what it hears to its broadcast channel. So a handle hears the writes of
//! every process on the store, its own included, within moments of their commit.
//!
//! The channel is the store's and scope's (schema, environment, app): one app never hears
//! another's orders. A lost connection is re-established with a backoff; what was committed
//! while it was down is not heard, and nothing says what was missed (a subscriber that must not
//! miss a change reads the order again after a reconnect is logged).

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tokio::sync::broadcast;
use tokio_postgres::{Client, Notification};
use tokio_util::sync::CancellationToken;

use super::Cx;
use super::conn::{Connector, Line};
use crate::domain::{AppScope, OutTradeNo};
use crate::ledger::{LedgerError, OrderChanged};

const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The NOTIFY channel of a schema and scope: a plain identifier, shorter than PostgreSQL's limit
/// whatever the app id.
pub(super) fn channel(schema: &str, scope: &AppScope) -> String {
    let digest = Sha256::digest(format!(
        "{schema}\0{}\0{}",
        scope.env.as_str(),
        scope.app_id
    ));
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("ap_ledger_{hex}")
}

/// The listening connection, until the handle is dropped.
pub(super) struct Listener {
    line: Line,
    stop: CancellationToken,
}

async fn listen(
    connector: &Connector,
    line: &Line,
    channel: &str,
    changes: &broadcast::Sender<OrderChanged>,
    name: &str,
) -> Result<(Client, tokio::task::JoinHandle<()>), LedgerError> {
    let (wanted, sender) = (channel.to_string(), changes.clone());
    let heard = move |n: Notification| {
        if n.channel() == wanted
            && let Some(no) = OutTradeNo::parse(n.payload())
        {
            // No subscriber is no error.
            let _ = sender.send(OrderChanged { out_trade_no: no });
        }
    };
    let (client, driver) = connector
        .dedicated(&format!("changes {name}"), line, heard)
        .await?;
    // A plain identifier (hex), so it needs no quoting.
    client
        .batch_execute(&format!("LISTEN {channel}"))
        .await
        .map_err(|e| super::rows::sql_error(&e))?;
    Ok((client, driver))
}

impl Listener {
    /// Listen for `cx`'s changes (before this returns, so nothing committed after is missed).
    pub(super) async fn start(
        connector: Connector,
        cx: Arc<Cx>,
        changes: broadcast::Sender<OrderChanged>,
        name: String,
    ) -> Result<Self, LedgerError> {
        let line = Line::default();
        let (client, driver) = listen(&connector, &line, &cx.channel, &changes, &name).await?;
        let stop = CancellationToken::new();
        let (task_line, task_stop) = (line.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut _client, mut driver) = (client, driver);
            loop {
                tokio::select! {
                    () = task_stop.cancelled() => return,
                    _ = &mut driver => {}
                }
                tracing::warn!(
                    "the ledger's change listener lost its PostgreSQL connection; changes committed until it is back are not heard"
                );
                let mut backoff = Duration::from_millis(250);
                loop {
                    tokio::select! {
                        () = task_stop.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    match listen(&connector, &task_line, &cx.channel, &changes, &name).await {
                        Ok((c, d)) => {
                            (_client, driver) = (c, d);
                            tracing::warn!(
                                "the ledger's change listener is back; changes committed while it was away were not heard"
                            );
                            break;
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "the change listener's reconnect failed")
                        }
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        });
        Ok(Self { line, stop })
    }

    /// Stop listening now.
    pub(super) fn close(&self) {
        self.stop.cancel();
        self.line.close();
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.close();
    }
}
