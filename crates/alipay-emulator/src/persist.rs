//! The state file: `<state_dir>/alipay-emulator-state.json`, rewritten after every change through a
//! temporary file and a rename, so a crash leaves either the old or the new state, never half.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::model::Store;

/// The file's name inside the state directory.
pub const STATE_FILE: &str = "alipay-emulator-state.json";

/// The state file's layout version; a file of another version is refused, not guessed at.
const FORMAT_VERSION: u32 = 1;

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

/// Where the state lives.
#[derive(Clone, Debug)]
pub(crate) struct StateFile {
    path: PathBuf,
    tmp: PathBuf,
}

impl StateFile {
    /// Create the directory if needed.
    pub(crate) fn open(dir: &Path) -> Result<Self, PersistError> {
        std::fs::create_dir_all(dir).map_err(|source| PersistError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: dir.join(STATE_FILE),
            tmp: dir.join(format!("{STATE_FILE}.tmp")),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state, or an empty one when there is no file yet.
    pub(crate) fn load(&self) -> Result<Store, PersistError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Store::default()),
            Err(source) => {
                return Err(PersistError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let corrupt = |reason: String| PersistError::Corrupt {
            path: self.path.clone(),
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

    /// Write the whole state: temporary file, flush to disk, rename over the old file.
    pub(crate) fn save(&self, store: &Store) -> Result<(), PersistError> {
        let write_err = |source| PersistError::Write {
            path: self.path.clone(),
            source,
        };
        let json = serde_json::to_vec_pretty(&EnvelopeRef {
            format: FORMAT_VERSION,
            store,
        })
        .map_err(|e| write_err(std::io::Error::other(e)))?;
        let mut file = std::fs::File::create(&self.tmp).map_err(write_err)?;
        file.write_all(&json).map_err(write_err)?;
        file.sync_all().map_err(write_err)?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "alipay-emulator-persist-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn round_trips_and_refuses_garbage() {
        let dir = temp_dir("roundtrip");
        let file = StateFile::open(&dir).unwrap();
        assert_eq!(file.load().unwrap(), Store::default());
        let store = Store {
            seq: 42,
            ..Store::default()
        };
        file.save(&store).unwrap();
        assert_eq!(file.load().unwrap().seq, 42);
        assert!(!dir.join(format!("{STATE_FILE}.tmp")).exists());

        std::fs::write(file.path(), "{not json").unwrap();
        let err = file.load().unwrap_err();
        assert!(matches!(err, PersistError::Corrupt { .. }), "{err}");
        std::fs::write(
            file.path(),
            r#"{"format":9,"orders":{},"notifications":[],"seq":0}"#,
        )
        .unwrap();
        assert!(file.load().unwrap_err().to_string().contains("format 9"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
