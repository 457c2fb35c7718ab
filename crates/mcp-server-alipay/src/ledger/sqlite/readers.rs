//! Point reads on the async worker itself.
//!
//! Reading one order by its key from a WAL reader takes microseconds of CPU and never waits for a
//! writer (WAL readers see the last commit without taking a lock a writer holds). Sending it to
//! the blocking pool costs more than the read: a thread woken to run it and the caller's worker
//! woken with the answer. A query of a paid order makes two such reads, so they run in place, on
//! connections of their own that only read.
//!
//! Each connection serves one call at a time. When every one is busy, or SQLite says the file is
//! busy (recovery after another process's crash), the read is not done here: the caller runs it
//! on the blocking pool with the writer's connection and the full busy timeout, as any other call.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, ErrorCode};

use super::rows::{Fail, Res};
use crate::domain::AppScope;
use crate::ledger::LedgerError;

pub(super) struct Readers {
    conns: Box<[Mutex<Connection>]>,
}

impl Readers {
    /// `count` read-only connections to the (already migrated) ledger at `path`.
    pub(super) fn open(path: &Path, count: usize) -> Res<Self> {
        let conns = (0..count.max(1))
            .map(|_| {
                let conn = Connection::open(path)?;
                // Fail at once rather than block a worker: the caller falls back to the pool.
                conn.busy_timeout(std::time::Duration::ZERO)?;
                conn.pragma_update(None, "query_only", "ON")?;
                Ok(Mutex::new(conn))
            })
            .collect::<Res<Vec<_>>>()?;
        Ok(Self {
            conns: conns.into_boxed_slice(),
        })
    }

    /// `read` on a free reader, or `None` when it must run on the blocking pool instead.
    pub(super) fn try_read<T>(
        &self,
        scope: &AppScope,
        read: impl FnOnce(&Connection, &AppScope) -> Res<T>,
    ) -> Option<Result<T, LedgerError>> {
        // A poisoned reader (a panic mid-read) is skipped like a busy one.
        let conn = self.conns.iter().find_map(|c| c.try_lock().ok())?;
        match read(&conn, scope) {
            Err(Fail::Sql(e)) if is_busy(&e) => None,
            result => Some(result.map_err(Fail::into_ledger)),
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}
