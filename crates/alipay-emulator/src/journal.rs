//! The journal: `<state_dir>/alipay-emulator-journal.jsonl`, beside the snapshot
//! ([`crate::persist`]). Each change appends one compact JSON line holding what it touched (the
//! touched orders and notifications in full, `seq` and the clock offset wholesale) and is
//! flushed to disk (`sync_data`) before the request that made it is answered, so a change costs
//! the size of the change, not the size of the state.
//!
//! Loading is the snapshot, then every line in order: an order is put under its own key, a
//! notification replaces the one with its id (or is added), `seq` and the offset are set. A line
//! is written whole or, if the process dies mid-append, torn; only the last line can be torn (a
//! torn line was never flushed, so its request was never answered) and it is dropped. A bad line
//! before the last is not a crash's doing and is refused.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::model::{Notification, Order, Store, Touched};
use crate::persist::PersistError;

/// The journal's name inside the state directory.
pub const JOURNAL_FILE: &str = "alipay-emulator-journal.jsonl";

/// One change, as written.
#[derive(serde::Serialize)]
struct EntryRef<'a> {
    orders: Vec<&'a Order>,
    notifications: Vec<&'a Notification>,
    seq: u64,
    clock_offset_seconds: i64,
}

/// One change, as read back.
#[derive(serde::Deserialize)]
struct Entry {
    orders: Vec<Order>,
    notifications: Vec<Notification>,
    seq: u64,
    clock_offset_seconds: i64,
}

/// The line (with its newline) recording what `touched` names, as it stands in `store` now.
pub(crate) fn entry_line(store: &Store, touched: &Touched) -> Result<Vec<u8>, serde_json::Error> {
    let entry = EntryRef {
        // Orders are never removed, so a touched key always names an order.
        orders: touched
            .orders
            .iter()
            .filter_map(|(app_id, out_trade_no)| store.order(app_id, out_trade_no))
            .collect(),
        notifications: touched
            .notifications
            .iter()
            .filter_map(|id| store.notification(*id))
            .collect(),
        seq: store.seq,
        clock_offset_seconds: store.clock_offset_seconds,
    };
    let mut line = serde_json::to_vec(&entry)?;
    line.push(b'\n');
    Ok(line)
}

/// What [`replay`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Replayed {
    /// Lines applied.
    pub lines: usize,
    /// Whether a torn last line was dropped.
    pub dropped_torn: bool,
}

/// Apply the journal's bytes to `store`, in order. Applying a journal whose changes the store
/// already holds changes nothing: each order's and notification's last line carries the value
/// it has now, and the last line carries the current `seq` and offset.
pub(crate) fn replay(
    store: &mut Store,
    bytes: &[u8],
    path: &Path,
) -> Result<Replayed, PersistError> {
    let mut replayed = Replayed {
        lines: 0,
        dropped_torn: false,
    };
    // `split` yields a last, empty piece after a final newline; any other last piece is a line
    // whose newline never reached the disk.
    let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let unterminated = lines.pop().filter(|tail| !tail.is_empty());
    let whole = lines.len();
    lines.extend(unterminated);
    for (index, line) in lines.iter().enumerate() {
        let is_last = index + 1 == lines.len();
        let parsed = if index < whole {
            serde_json::from_slice::<Entry>(line).map_err(|e| e.to_string())
        } else {
            Err("the line has no end".to_string())
        };
        match parsed {
            Ok(entry) => {
                for order in entry.orders {
                    store.put_order(order);
                }
                for notification in entry.notifications {
                    store.put_notification(notification);
                }
                store.seq = entry.seq;
                store.clock_offset_seconds = entry.clock_offset_seconds;
                replayed.lines += 1;
            }
            // Only the last line can have been torn by a crash.
            Err(reason) if is_last => {
                tracing::warn!(
                    "{}: dropped a torn last line {} (a change cut short by a crash, never answered): {reason}",
                    path.display(),
                    index + 1
                );
                replayed.dropped_torn = true;
                break;
            }
            Err(reason) => {
                return Err(PersistError::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!("line {}: {reason}", index + 1),
                });
            }
        }
    }
    // Replaying is loading, not a change to record.
    store.take_touched();
    Ok(replayed)
}

/// The open journal, appended to after every change.
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    file: File,
    /// The length of its whole lines: after a failed append the file is cut back to it.
    len: u64,
}

impl Journal {
    /// Open (or create) the journal at `path`, of which the first `len` bytes are whole lines
    /// to keep; anything after them is cut off.
    pub(crate) fn open(path: &Path, len: u64) -> Result<Self, PersistError> {
        let existed = path.exists();
        let write_err = |source| PersistError::Write {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(write_err)?;
        if file.metadata().map_err(write_err)?.len() != len {
            file.set_len(len).map_err(write_err)?;
            file.sync_all().map_err(write_err)?;
        }
        if !existed && let Some(dir) = path.parent() {
            // The new file's name must be on disk before a line in it is counted as kept.
            sync_dir(dir).map_err(write_err)?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            len,
        })
    }

    /// Bytes of whole lines.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Append one line and flush it to disk. On failure the file is cut back to its whole lines
    /// (best effort) so the next append does not continue a torn one.
    pub(crate) fn append(&mut self, line: &[u8]) -> Result<(), PersistError> {
        let written = (&self.file)
            .write_all(line)
            .and_then(|()| self.file.sync_data());
        if let Err(source) = written {
            if let Err(e) = self.file.set_len(self.len) {
                tracing::error!(
                    "cannot cut {} back after a failed append: {e}",
                    self.path.display()
                );
            }
            return Err(PersistError::Write {
                path: self.path.clone(),
                source,
            });
        }
        self.len += line.len() as u64;
        Ok(())
    }

    /// Empty the journal (its changes are in a snapshot now).
    pub(crate) fn truncate(&mut self) -> Result<(), PersistError> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.sync_all())
            .map_err(|source| PersistError::Write {
                path: self.path.clone(),
                source,
            })?;
        self.len = 0;
        Ok(())
    }
}

/// Flush a directory's entries (a created or renamed file's name) to disk. Only Unix can open a
/// directory for this; elsewhere a rename is as durable as the platform makes it.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}
