//! The writer's connection on a thread of its own, taking calls in order from a queue.
//!
//! SQLite has one writer at a time anyway. On tokio's blocking pool every concurrent call would
//! park its own thread on the connection's lock and each release would wake the next: under load,
//! most of a create's kernel time. Here one thread drains the queue without sleeping while calls
//! keep coming, and is woken only when the queue was empty.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

use rusqlite::Connection;

use super::rows::{Fail, Res};
use crate::domain::AppScope;
use crate::ledger::{LedgerError, LedgerErrorKind};

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Move `conn` to its own thread. Dropping the `Writer` lets the thread finish the calls
    /// already queued, then close the connection (which checkpoints the WAL, when it is the last).
    pub(super) fn start(mut conn: Connection) -> Res<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("ledger-sqlite".into())
            .spawn(move || {
                while let Ok(job) = queue.recv() {
                    // A panic rolls its transaction back (the transaction's drop) and drops the
                    // call's answer channel, so its caller hears of it; the next call goes on.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut conn)));
                }
            })
            .map_err(|e| {
                super::rows::fail(
                    LedgerErrorKind::Unavailable,
                    format!("cannot start the ledger's thread: {e}"),
                )
            })?;
        Ok(Self { jobs })
    }

    /// Run `f` on the connection, after the calls queued before it.
    pub(super) async fn call<T: Send + 'static>(
        &self,
        scope: AppScope,
        f: impl FnOnce(&mut Connection, &AppScope) -> Res<T> + Send + 'static,
    ) -> Result<T, LedgerError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = answer.send(f(conn, &scope).map_err(Fail::into_ledger));
        });
        self.jobs
            .send(job)
            .map_err(|_| LedgerError::new(LedgerErrorKind::Unavailable, "the ledger is closed"))?;
        answered.await.map_err(|_| {
            LedgerError::new(
                LedgerErrorKind::CommitOutcomeUnknown,
                "a ledger call ended before it answered; whether it committed is not known",
            )
        })?
    }
}
