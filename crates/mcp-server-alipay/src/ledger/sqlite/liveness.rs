//! What SQLite cannot say across processes, said with files beside it: which server processes are
//! alive (each holds an exclusive lock on its own file in the instances directory for as long as it
//! runs; the operating system releases it when the process dies, even by `kill -9`), and the
//! per-order refund lock within this process.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::domain::OutTradeNo;
use crate::ledger::{InstanceId, LedgerError, LedgerErrorKind, OrderLock};

/// This process, registered: its lock is held until the handle is dropped.
pub(super) struct Instance {
    id: InstanceId,
    path: PathBuf,
    _lock: File,
}

fn lock_path(dir: &Path, token: &str) -> PathBuf {
    dir.join(format!("{token}.lock"))
}

impl Instance {
    /// Register this process in `dir` (created if need be).
    pub(super) fn register(dir: &Path) -> Result<Self, LedgerError> {
        let unavailable = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
            LedgerError::new(
                LedgerErrorKind::Unavailable,
                format!("AP_DATA_DIR: cannot {what} {}: {e}", path.display()),
            )
        };
        std::fs::create_dir_all(dir).map_err(|e| unavailable("create", dir, &e))?;
        let token = format!("{:016x}", rand::random::<u64>());
        let path = lock_path(dir, &token);
        let file = File::create(&path).map_err(|e| unavailable("create", &path, &e))?;
        file.try_lock()
            .map_err(|e| unavailable("lock", &path, &e))?;
        Ok(Self {
            id: InstanceId(token),
            path,
            _lock: file,
        })
    }

    pub(super) fn id(&self) -> &InstanceId {
        &self.id
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // The lock itself goes when the file is closed, right after.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether the process that registered `token` in `dir` still runs. A token without a lock file,
/// or whose lock can be taken, belongs to a dead process (whose file is then removed).
pub(super) fn is_alive(dir: &Path, token: &str) -> bool {
    // Tokens are ours (hex); anything else never names a file.
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    let path = lock_path(dir, token);
    let Ok(file) = File::options().write(true).open(&path) else {
        return false;
    };
    match file.try_lock() {
        Ok(()) => {
            let _ = std::fs::remove_file(&path);
            false
        }
        Err(_) => true,
    }
}

/// One refund decision per order at a time within this process. Across processes sharing the
/// file there is no such lock, and none is needed for the money rules: SQLite serialises every
/// writer, and `begin_refund` checks and records in one IMMEDIATE transaction, so that check is
/// the cross-process lock.
#[derive(Default)]
pub(super) struct OrderLocks(Mutex<HashMap<OutTradeNo, Arc<tokio::sync::Mutex<()>>>>);

impl OrderLocks {
    pub(super) async fn lock(&self, out_trade_no: &OutTradeNo) -> OrderLock {
        let lock = {
            let mut locks = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            // Forget locks nobody holds or waits for, so the map stays small.
            locks.retain(|_, l| Arc::strong_count(l) > 1);
            locks.entry(out_trade_no.clone()).or_default().clone()
        };
        OrderLock::new(lock.lock_owned().await)
    }
}
