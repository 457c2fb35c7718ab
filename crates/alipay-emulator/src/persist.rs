//! The state on disk, in `<state_dir>`: a snapshot, `alipay-emulator-state.json`, holding the
//! whole state, and a journal beside it ([`crate::journal`]) holding every change since. A change
//! appends one line to the journal and flushes it; the snapshot is rewritten only at compaction
//! (through a temporary file and a rename, so a crash leaves the old or the new snapshot, never
//! half), which folds the journal in and empties it.
//!
//! Compaction runs when the journal outgrows the snapshot (and a floor, so a small state is not
//! rewritten every few changes): each rewrite of S bytes follows at least S bytes of appended
//! lines, so its cost per change stays proportional to the change, and loading reads at most
//! about twice the snapshot. It also runs on load, when a journal holds anything (a torn last
//! line must be cut off before the next append would continue it, and a start then begins with
//! an empty journal, for the price loading already paid), and on a clean shutdown (so after a
//! stop the snapshot alone is the state, for whoever reads or edits it by hand).
//!
//! A crash between the snapshot's rename and the journal's truncation leaves a journal whose
//! changes the snapshot already holds; replaying it is harmless, because each order's and
//! notification's last line carries the value the snapshot has, and the last line carries the
//! snapshot's `seq` and clock offset.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::journal::{self, JOURNAL_FILE, Journal};
use crate::model::{Store, Touched};
use crate::shared::lock;

/// The snapshot's name inside the state directory.
pub const STATE_FILE: &str = "alipay-emulator-state.json";

/// The snapshot's layout version; a file of another version is refused, not guessed at.
const FORMAT_VERSION: u32 = 1;

/// The journal is folded into the snapshot once it is larger than the snapshot and than this.
const JOURNAL_FLOOR_BYTES: u64 = 1 << 20;

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("cannot create the state directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the state file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the state file {path} is not valid emulator state ({reason}); move it away to start empty"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot write the state file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Envelope {
    format: u32,
    #[serde(flatten)]
    store: Store,
}

#[derive(serde::Serialize)]
struct EnvelopeRef<'a> {
    format: u32,
    #[serde(flatten)]
    store: &'a Store,
}

/// Where the state lives, with the open journal.
#[derive(Debug)]
pub(crate) struct StateFile {
    dir: PathBuf,
    path: PathBuf,
    tmp: PathBuf,
    journal_path: PathBuf,
    /// Taken while the store's lock is held, so lines are in the order of the changes.
    journal: Mutex<Recorder>,
}

#[derive(Debug)]
struct Recorder {
    journal: Journal,
    snapshot_len: u64,
    /// `seq` and the offset as last recorded: a change that touched nothing else and left them
    /// as they were writes no line.
    recorded: (u64, i64),
    /// A record failed in a way that may have left the journal unusable: the next one rewrites
    /// the snapshot instead.
    broken: bool,
}

impl StateFile {
    /// Create the directory if needed, load the state (snapshot, then journal) and make the
    /// journal ready for the next change; the state is empty when there are no files yet.
    pub(crate) fn open(dir: &Path) -> Result<(Self, Store), PersistError> {
        std::fs::create_dir_all(dir).map_err(|source| PersistError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let journal_path = dir.join(JOURNAL_FILE);
        let mut store = load_snapshot(&path)?;
        let mut snapshot_len = std::fs::metadata(&path).map_or(0, |m| m.len());
        let journal_bytes = match std::fs::read(&journal_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(PersistError::Read {
                    path: journal_path,
                    source,
                });
            }
        };
        if !journal_bytes.is_empty() {
            let replayed = journal::replay(&mut store, &journal_bytes, &journal_path)?;
            tracing::info!(
                "replayed {} change(s) from {}",
                replayed.lines,
                journal_path.display()
            );
            // Fold the journal in before truncating it (`Journal::open` to length 0 below).
            snapshot_len = write_snapshot(&path, &tmp, dir, &store)?;
        }
        let journal = Journal::open(&journal_path, 0)?;
        let recorded = (store.seq, store.clock_offset_seconds);
        let file = Self {
            dir: dir.to_path_buf(),
            path,
            tmp,
            journal_path,
            journal: Mutex::new(Recorder {
                journal,
                snapshot_len,
                recorded,
                broken: false,
            }),
        };
        Ok((file, store))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Record a change: one journal line with what it touched, flushed to disk; then a
    /// compaction if the journal has outgrown the snapshot. Call with the store's lock held.
    pub(crate) fn record(&self, store: &Store, touched: &Touched) -> Result<(), PersistError> {
        let mut recorder = lock(&self.journal);
        if recorder.broken {
            return self.compact_locked(&mut recorder, store);
        }
        if touched.is_empty() && recorder.recorded == (store.seq, store.clock_offset_seconds) {
            return Ok(());
        }
        let line = journal::entry_line(store, touched).map_err(|e| PersistError::Write {
            path: self.journal_path.clone(),
            source: std::io::Error::other(e),
        })?;
        recorder.journal.append(&line)?;
        recorder.recorded = (store.seq, store.clock_offset_seconds);
        if recorder.journal.len() > recorder.snapshot_len.max(JOURNAL_FLOOR_BYTES) {
            // The change is on disk already; a failed compaction only leaves a longer journal.
            self.compact_locked(&mut recorder, store)?;
        }
        Ok(())
    }

    /// Write the whole state as the snapshot and empty the journal. Call with the store's lock
    /// held.
    pub(crate) fn compact(&self, store: &Store) -> Result<(), PersistError> {
        self.compact_locked(&mut lock(&self.journal), store)
    }

    fn compact_locked(&self, recorder: &mut Recorder, store: &Store) -> Result<(), PersistError> {
        // Until both steps succeed, the next record compacts again rather than trusting the
        // journal.
        recorder.broken = true;
        recorder.snapshot_len = write_snapshot(&self.path, &self.tmp, &self.dir, store)?;
        recorder.journal.truncate()?;
        recorder.recorded = (store.seq, store.clock_offset_seconds);
        recorder.broken = false;
        Ok(())
    }
}

/// The snapshot, or an empty state when there is none yet.
fn load_snapshot(path: &Path) -> Result<Store, PersistError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Store::default()),
        Err(source) => {
            return Err(PersistError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let corrupt = |reason: String| PersistError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let envelope: Envelope = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
    if envelope.format != FORMAT_VERSION {
        return Err(corrupt(format!(
            "format {} but this emulator reads format {FORMAT_VERSION}",
            envelope.format
        )));
    }
    Ok(envelope.store)
}

/// Write the whole state: temporary file, flush to disk, rename over the old file, flush the
/// directory (the rename must be on disk before the journal it replaces is emptied). Returns
/// the snapshot's length.
fn write_snapshot(path: &Path, tmp: &Path, dir: &Path, store: &Store) -> Result<u64, PersistError> {
    let write_err = |source| PersistError::Write {
        path: path.to_path_buf(),
        source,
    };
    // Compact: only this code reads it, and a rewrite holds the store's lock.
    let json = serde_json::to_vec(&EnvelopeRef {
        format: FORMAT_VERSION,
        store,
    })
    .map_err(|e| write_err(std::io::Error::other(e)))?;
    let mut file = std::fs::File::create(tmp).map_err(write_err)?;
    file.write_all(&json).map_err(write_err)?;
    file.sync_all().map_err(write_err)?;
    drop(file);
    std::fs::rename(tmp, path).map_err(write_err)?;
    journal::sync_dir(dir).map_err(write_err)?;
    Ok(json.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DeliveryState, Notification, Order, Product};

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "alipay-emulator-persist-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn order(no: &str) -> Order {
        Order {
            app_id: "2021000000000001".into(),
            out_trade_no: no.into(),
            product: Product::Wap,
            total_fen: 100,
            subject: "测试订单".into(),
            body: None,
            passback_params: None,
            notify_url: Some("http://127.0.0.1:1/notify".into()),
            return_url: None,
            sign_type: alipay_openapi::SignType::Rsa2,
            token: format!("token-{no}"),
            created_at: "2026-11-25 10:00:00".into(),
            expire_at: None,
            agent: None,
            trade: None,
        }
    }

    fn notification(id: u64, no: &str) -> Notification {
        Notification {
            id,
            app_id: "2021000000000001".into(),
            out_trade_no: no.into(),
            notify_id: format!("notify-{id}"),
            url: "http://127.0.0.1:1/notify".into(),
            trade_status: "TRADE_SUCCESS".into(),
            sign_type: alipay_openapi::SignType::Rsa2,
            fields: vec![("k".into(), "v".into())],
            state: DeliveryState::Pending,
            next_attempt_ms: 0,
            attempts: Vec::new(),
            created_at: "2026-11-25 10:00:00".into(),
        }
    }

    /// What `Shared::mutate` does: change, then record what was touched.
    fn change(file: &StateFile, store: &mut Store, f: impl FnOnce(&mut Store)) {
        f(store);
        let touched = store.take_touched();
        file.record(store, &touched).unwrap();
    }

    /// A few changes of every kind: new orders, a changed order, notifications queued and
    /// updated, the clock moved.
    fn some_changes(file: &StateFile, store: &mut Store, prefix: &str, n: usize) {
        for i in 0..n {
            let no = format!("{prefix}{i}");
            change(file, store, |s| s.put_order(order(&no)));
            change(file, store, |s| {
                s.order_mut("2021000000000001", &no).unwrap().total_fen += 1;
                let id = s.next_seq();
                s.push_notification(notification(id, &no));
            });
            change(file, store, |s| {
                let id = s.seq;
                s.notification_mut(id).unwrap().state = DeliveryState::Delivered;
                s.clock_offset_seconds += 1;
            });
        }
    }

    fn journal_len(dir: &Path) -> u64 {
        std::fs::metadata(dir.join(JOURNAL_FILE)).map_or(0, |m| m.len())
    }

    #[test]
    fn round_trips_and_refuses_garbage() {
        let dir = temp_dir("roundtrip");
        let (file, mut store) = StateFile::open(&dir).unwrap();
        assert_eq!(store, Store::default());
        change(&file, &mut store, |s| s.seq = 42);
        file.compact(&store).unwrap();
        drop(file);
        assert_eq!(StateFile::open(&dir).unwrap().1.seq, 42);
        assert!(!dir.join(format!("{STATE_FILE}.tmp")).exists());

        std::fs::write(dir.join(STATE_FILE), "{not json").unwrap();
        let err = StateFile::open(&dir).unwrap_err();
        assert!(matches!(err, PersistError::Corrupt { .. }), "{err}");
        std::fs::write(
            dir.join(STATE_FILE),
            r#"{"format":9,"orders":{},"notifications":[],"seq":0}"#,
        )
        .unwrap();
        let err = StateFile::open(&dir).unwrap_err();
        assert!(err.to_string().contains("format 9"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn many_changes_survive_a_restart_from_the_journal_alone() {
        let dir = temp_dir("journal-only");
        let (file, mut store) = StateFile::open(&dir).unwrap();
        some_changes(&file, &mut store, "J", 50);
        // Nothing compacted: the snapshot was never written, every change is a journal line.
        drop(file);
        assert!(!dir.join(STATE_FILE).exists());
        let text = std::fs::read_to_string(dir.join(JOURNAL_FILE)).unwrap();
        assert_eq!(text.lines().count(), 150);
        let (_file, loaded) = StateFile::open(&dir).unwrap();
        assert_eq!(loaded, store);
        assert_eq!(loaded.all_orders().count(), 50);
        assert_eq!(loaded.clock_offset_seconds, 50);
        // Loading folded the journal in.
        assert_eq!(journal_len(&dir), 0);
        assert!(dir.join(STATE_FILE).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn changes_before_and_after_a_compaction_survive() {
        let dir = temp_dir("compacted");
        let (file, mut store) = StateFile::open(&dir).unwrap();
        // Enough to pass the floor: compactions happen on their own along the way.
        let mut rounds = 0;
        while !dir.join(STATE_FILE).exists() {
            some_changes(&file, &mut store, &format!("C{rounds}_"), 100);
            rounds += 1;
            assert!(rounds < 100, "the journal never compacted");
        }
        assert!(journal_len(&dir) <= JOURNAL_FLOOR_BYTES);
        some_changes(&file, &mut store, "AFTER_", 10);
        assert!(journal_len(&dir) > 0);
        drop(file);
        let (file, loaded) = StateFile::open(&dir).unwrap();
        assert_eq!(loaded, store);
        // And again after an explicit compaction (a clean shutdown).
        file.compact(&loaded).unwrap();
        assert_eq!(journal_len(&dir), 0);
        drop(file);
        assert_eq!(StateFile::open(&dir).unwrap().1, store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_everything_before_it_kept() {
        let dir = temp_dir("torn");
        let (file, mut store) = StateFile::open(&dir).unwrap();
        some_changes(&file, &mut store, "T", 3);
        let kept = store.clone();
        // The next change's line, cut inside its multi-byte subject, as a crash mid-append leaves it.
        let mut next = store.clone();
        next.put_order(order("TORN"));
        let touched = next.take_touched();
        let line = journal::entry_line(&next, &touched).unwrap();
        let cut = line.windows(3).position(|w| w == "测".as_bytes()).unwrap() + 1;
        drop(file);
        let mut journal = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join(JOURNAL_FILE))
            .unwrap();
        journal.write_all(&line[..cut]).unwrap();
        drop(journal);

        let (file, mut loaded) = StateFile::open(&dir).unwrap();
        assert_eq!(loaded, kept);
        assert!(loaded.order("2021000000000001", "TORN").is_none());
        // The torn bytes are gone, so the next change's line starts clean.
        change(&file, &mut loaded, |s| s.put_order(order("NEXT")));
        drop(file);
        let (_file, again) = StateFile::open(&dir).unwrap();
        assert!(again.order("2021000000000001", "NEXT").is_some());
        assert_eq!(again.all_orders().count(), 4);

        // A whole last line that does not parse (zeros a power loss left) is torn too.
        drop(_file);
        std::fs::write(dir.join(JOURNAL_FILE), b"\0\0\0\0\n").unwrap();
        assert_eq!(StateFile::open(&dir).unwrap().1, again);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_bad_line_before_the_last_is_refused() {
        let dir = temp_dir("corrupt-journal");
        let (file, mut store) = StateFile::open(&dir).unwrap();
        some_changes(&file, &mut store, "B", 1);
        drop(file);
        let text = std::fs::read_to_string(dir.join(JOURNAL_FILE)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let broken = format!("{}\n{{\"orders\":[}}\n{}\n", lines[0], lines[1]);
        std::fs::write(dir.join(JOURNAL_FILE), broken).unwrap();
        let err = StateFile::open(&dir).unwrap_err();
        assert!(matches!(err, PersistError::Corrupt { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(JOURNAL_FILE) && text.contains("line 2") && text.contains("move it away"),
            "{text}"
        );
        // Refused, not repaired: the journal is left as it was.
        assert!(journal_len(&dir) > 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn replaying_a_journal_already_in_the_snapshot_changes_nothing() {
        let dir = temp_dir("replay-twice");
        let (file, mut store) = StateFile::open(&dir).unwrap();
        some_changes(&file, &mut store, "R", 20);
        let journal_before = std::fs::read(dir.join(JOURNAL_FILE)).unwrap();
        // A crash between the snapshot's rename and the journal's truncation.
        file.compact(&store).unwrap();
        drop(file);
        std::fs::write(dir.join(JOURNAL_FILE), &journal_before).unwrap();
        let (_file, loaded) = StateFile::open(&dir).unwrap();
        assert_eq!(loaded, store);
        assert_eq!(loaded.notifications().count(), 20);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_old_state_file_without_a_journal_loads() {
        let dir = temp_dir("legacy");
        std::fs::create_dir_all(&dir).unwrap();
        let mut old = Store::default();
        old.put_order(order("OLD"));
        old.seq = 7;
        // Written as this emulator used to: pretty JSON, no journal beside it.
        let json = serde_json::to_vec_pretty(&EnvelopeRef {
            format: FORMAT_VERSION,
            store: &old,
        })
        .unwrap();
        std::fs::write(dir.join(STATE_FILE), json).unwrap();
        let (file, mut loaded) = StateFile::open(&dir).unwrap();
        assert_eq!(loaded, old);
        change(&file, &mut loaded, |s| {
            s.order_mut("2021000000000001", "OLD").unwrap().subject = "改".into();
        });
        drop(file);
        let (_file, again) = StateFile::open(&dir).unwrap();
        assert_eq!(
            again.order("2021000000000001", "OLD").unwrap().subject,
            "改"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_change_that_touched_nothing_writes_no_line() {
        let dir = temp_dir("no-op");
        let (file, mut store) = StateFile::open(&dir).unwrap();
        change(&file, &mut store, |_| {});
        assert_eq!(journal_len(&dir), 0);
        change(&file, &mut store, |s| s.clock_offset_seconds = 5);
        assert!(journal_len(&dir) > 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
