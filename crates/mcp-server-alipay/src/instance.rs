//! Which server processes are alive. Each holds an exclusive lock on its own file in
//! `AP_DATA_DIR/instances/` for as long as it runs; the operating system releases it when the
//! process dies, even by `kill -9`. A refund records the process sending it, so a server starting
//! beside a live one settles only the refunds a dead process left behind.

use std::fs::File;
use std::path::{Path, PathBuf};

pub struct Instance {
    token: String,
    path: PathBuf,
    _lock: File,
}

fn lock_path(data_dir: &Path, token: &str) -> PathBuf {
    data_dir.join("instances").join(format!("{token}.lock"))
}

impl Instance {
    /// Register this process.
    pub fn register(data_dir: &Path) -> Result<Self, String> {
        let dir = data_dir.join("instances");
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("AP_DATA_DIR: cannot create {}: {e}", dir.display()))?;
        let token = format!("{:016x}", rand::random::<u64>());
        let path = lock_path(data_dir, &token);
        let file = File::create(&path)
            .map_err(|e| format!("AP_DATA_DIR: cannot create {}: {e}", path.display()))?;
        file.try_lock()
            .map_err(|e| format!("AP_DATA_DIR: cannot lock {}: {e}", path.display()))?;
        Ok(Self {
            token,
            path,
            _lock: file,
        })
    }

    pub fn token(&self) -> &str {
        &self.token
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether the process that registered `token` still runs. A token without a lock file, or whose
/// lock can be taken, belongs to a dead process (whose file is then removed).
pub fn is_alive(data_dir: &Path, token: &str) -> bool {
    // Tokens are ours (hex); anything else never names a file.
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    let path = lock_path(data_dir, token);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_instance_is_alive_until_dropped() {
        let dir = std::env::temp_dir().join(format!("instance-test-{}", std::process::id()));
        let me = Instance::register(&dir).unwrap();
        assert!(is_alive(&dir, me.token()));
        let token = me.token().to_string();
        drop(me);
        assert!(!is_alive(&dir, &token));
        assert!(!is_alive(&dir, "../../etc/passwd"));
        assert!(!is_alive(&dir, "deadbeef"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
