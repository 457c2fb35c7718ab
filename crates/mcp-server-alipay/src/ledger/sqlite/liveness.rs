//! What SQLite cannot say across processes, said with files beside it: which server processes are
//! alive (each holds an exclusive lock on its own file in the instances directory for as long as it
//! runs; the operating system releases it when the process dies, even by `kill -9`), and the
//! per-order refund lock across every process sharing the data dir.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::domain::OutTradeNo;
use crate::ledger::{InstanceId, LedgerError, LedgerErrorKind, OrderLock, order_lock_timed_out};

/// The longest pause between tries of an order lock another process holds.
const MAX_POLL: Duration = Duration::from_millis(100);

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

/// How many lock files the order locks are spread over: orders that share one wait for each
/// other briefly, which is harmless; a file per order would pile up forever.
const ORDER_LOCK_STRIPES: u64 = 64;

/// One refund decision per order at a time, in this process (a tokio mutex, so waiters cost no
/// thread) and across processes sharing the data dir (an exclusive lock on one of
/// [`ORDER_LOCK_STRIPES`] files, taken on the blocking pool; the operating system releases it when
/// a holder dies). The money rules do not depend on it — SQLite serialises writers and
/// `begin_refund` checks and records in one IMMEDIATE transaction — but two servers must not send
/// one number at once, nor change a plan's figures while its approval is being checked.
pub(super) struct OrderLocks {
    dir: PathBuf,
    in_process: Mutex<HashMap<OutTradeNo, Arc<tokio::sync::Mutex<()>>>>,
    /// How long a waiter waits for another holder.
    pub(super) wait: Duration,
}

/// FNV-1a: stable across processes and releases (the std hasher is neither).
fn stripe(out_trade_no: &OutTradeNo) -> u64 {
    let hash = out_trade_no
        .as_str()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    hash % ORDER_LOCK_STRIPES
}

impl OrderLocks {
    pub(super) fn new(dir: PathBuf, wait: Duration) -> Self {
        Self {
            dir,
            in_process: Mutex::default(),
            wait,
        }
    }

    pub(super) async fn lock(&self, out_trade_no: &OutTradeNo) -> Result<OrderLock, LedgerError> {
        let local = {
            let mut locks = self
                .in_process
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // Forget locks nobody holds or waits for, so the map stays small.
            locks.retain(|_, l| Arc::strong_count(l) > 1);
            locks.entry(out_trade_no.clone()).or_default().clone()
        };
        let deadline = Instant::now() + self.wait;
        let local = tokio::time::timeout(self.wait, local.lock_owned())
            .await
            .map_err(|_| order_lock_timed_out(out_trade_no, self.wait))?;
        let path = self.dir.join(format!("{:02}.lock", stripe(out_trade_no)));
        let dir = self.dir.clone();
        // Tried, not waited for in the kernel: a blocking `flock` could not be given up.
        let file = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            let mut pause = Duration::from_millis(5);
            loop {
                match file.try_lock() {
                    Ok(()) => return Ok(Some(file)),
                    Err(std::fs::TryLockError::WouldBlock) => {}
                    Err(std::fs::TryLockError::Error(e)) => return Err(e),
                }
                let now = Instant::now();
                if now >= deadline {
                    return Ok(None);
                }
                // The last try comes at the deadline.
                std::thread::sleep(pause.min(deadline - now));
                pause = (pause * 2).min(MAX_POLL);
            }
        })
        .await
        .map_err(|e| LedgerError::new(LedgerErrorKind::Unavailable, format!("order lock: {e}")))?
        .map_err(|e| {
            LedgerError::new(
                LedgerErrorKind::Unavailable,
                format!(
                    "AP_DATA_DIR: cannot take the order lock in {}: {e}",
                    self.dir.display()
                ),
            )
        })?
        .ok_or_else(|| order_lock_timed_out(out_trade_no, self.wait))?;
        Ok(OrderLock::new((local, file)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripes_are_stable_and_spread() {
        let no = |s: &str| OutTradeNo::parse(s).unwrap();
        assert_eq!(
            stripe(&no("ILLUSTRATION_0001")),
            stripe(&no("ILLUSTRATION_0001"))
        );
        let used: std::collections::HashSet<u64> =
            (0..1000).map(|i| stripe(&no(&format!("MCP{i}")))).collect();
        assert!(used.len() > 50, "{}", used.len());
        assert!(used.iter().all(|s| *s < ORDER_LOCK_STRIPES));
    }
}
