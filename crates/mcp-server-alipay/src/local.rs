//! Local mode: no merchant account. The emulator runs in-process on `127.0.0.1:AP_LOCAL_PORT`, with
//! an app key pair and a platform key pair created once in `AP_DATA_DIR/local/` and reused, and its
//! trades persisted there too, so links survive a restart. This process's own calls reach it in
//! process (`alipay_emulator::InProcessGateway`: the same routes, no socket); browsers, its
//! notifications and other processes use its HTTP address.
//!
//! Several servers may share one data dir (a desktop app and an editor both configured, each
//! spawning its own server). One of them owns the gateway (an exclusive lock on
//! `local/gateway.lock`) and writes its address to `local/gateway.json`; the others use that
//! gateway rather than a second one writing the same state file.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use alipay_emulator::{AppConfig, Emulator, EmulatorConfig, RunningEmulator};
use alipay_openapi::{PrivateKey, PublicKey};

/// The app id the embedded gateway knows us by (unless `AP_APP_ID` names another).
pub const LOCAL_APP_ID: &str = "9021000000000001";

/// Where the gateway owner says it listens.
const GATEWAY_FILE: &str = "gateway.json";
const LOCK_FILE: &str = "gateway.lock";

pub struct LocalGateway {
    pub app_id: String,
    pub app_key: PrivateKey,
    pub alipay_public_key: PublicKey,
    gateway_url: String,
    /// Our own embedded gateway, or `None` when another server's is used.
    running: Option<RunningEmulator>,
    /// Held while we own the gateway.
    _lock: Option<File>,
}

impl LocalGateway {
    pub fn gateway_url(&self) -> String {
        self.gateway_url.clone()
    }

    /// How this process's client reaches the gateway when it runs here: in process, through its
    /// routes (no loopback socket). `None`: over HTTP, to another server's gateway.
    pub fn in_process(&self) -> Option<alipay_emulator::InProcessGateway> {
        self.running.as_ref().map(RunningEmulator::in_process)
    }

    /// The embedded gateway's clock, when it runs in this process.
    pub fn clock(&self) -> Option<alipay_emulator::ClockHandle> {
        self.running.as_ref().map(RunningEmulator::clock)
    }

    pub async fn shutdown(self) {
        if let Some(running) = self.running {
            running.shutdown().await;
        }
    }
}

/// This server's claim on the data dir's embedded gateway, taken before the first MCP answer: the
/// lock says whether this server owns the gateway, and the owner's listener is already bound, so
/// a browser opening a link while the keys load waits in the listen queue instead of being
/// refused. Cheap (a few system calls); the keys and the gateway's state load in [`start`].
pub struct GatewayClaim {
    dir: std::path::PathBuf,
    lock: File,
    /// The gateway's listener, when this server owns the data dir.
    listener: Option<tokio::net::TcpListener>,
}

/// Take the claim: create the data dir, try its lock, and bind the owner's listener.
pub async fn claim(config: &crate::config::Config) -> Result<GatewayClaim, String> {
    let dir = config.env_dir();
    create_private_dir(&dir)
        .map_err(|e| format!("AP_DATA_DIR: cannot create {}: {e}", dir.display()))?;
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .map_err(|e| {
            format!(
                "AP_DATA_DIR: cannot open {}: {e}",
                dir.join(LOCK_FILE).display()
            )
        })?;
    let listener = match lock.try_lock() {
        Ok(()) => {
            // An earlier owner's address, stale until ours is written once the gateway starts:
            // a server joining meanwhile must wait for ours, not probe that one.
            match std::fs::remove_file(dir.join(GATEWAY_FILE)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(format!(
                        "AP_DATA_DIR: cannot remove {}: {e}",
                        dir.join(GATEWAY_FILE).display()
                    ));
                }
            }
            Some(bind_gateway(config.local_port).await?)
        }
        Err(_) => None,
    };
    Ok(GatewayClaim {
        dir,
        lock,
        listener,
    })
}

/// Start the embedded gateway (or join the one another server on this data dir runs) and say so
/// on stderr (one line).
pub async fn start(
    config: &crate::config::Config,
    claim: GatewayClaim,
) -> Result<LocalGateway, String> {
    let GatewayClaim {
        dir,
        lock,
        listener,
    } = claim;
    let owner = listener.is_some();
    if !owner {
        // The owner creates the keys before it announces its gateway; wait for that.
        wait_for_file(&dir.join(GATEWAY_FILE)).await;
    }
    // The two keys at once: loading a key checks it (aws-lc's RSA_check_key, half of a local
    // start's instructions), and the first start generates both; two cores take half the time.
    let platform_key = {
        let (private, public) = (
            dir.join("alipay-private-key.txt"),
            dir.join("alipay-public-key.txt"),
        );
        tokio::task::spawn_blocking(move || load_or_create_key(&private, &public))
    };
    let app_key = load_or_create_key(
        &dir.join("app-private-key.txt"),
        &dir.join("app-public-key.txt"),
    )?;
    let platform_key = platform_key
        .await
        .map_err(|e| format!("loading the embedded gateway's key failed: {e}"))??;
    let app_id = config
        .local_app_id
        .clone()
        .unwrap_or_else(|| LOCAL_APP_ID.to_string());
    let alipay_public_key = platform_key.public_key().clone();

    if !owner {
        match shared_gateway(&dir, &alipay_public_key, &app_id, &app_key).await {
            Some(url) => {
                announce(
                    config,
                    &url,
                    &dir,
                    " (shared with another server on this data dir)",
                );
                return Ok(LocalGateway {
                    app_id,
                    app_key,
                    alipay_public_key,
                    gateway_url: url,
                    running: None,
                    _lock: None,
                });
            }
            None => tracing::warn!(
                "another server holds {} but its gateway does not answer for this app; starting one in memory",
                dir.join(LOCK_FILE).display()
            ),
        }
    }

    let listener = match listener {
        Some(l) => l,
        None => bind_gateway(config.local_port).await?,
    };
    let mut emulator_config = EmulatorConfig::new(platform_key.clone());
    emulator_config
        .apps
        .push(AppConfig::new(app_id.clone(), app_key.public_key().clone()));
    // Only the owner persists: two gateways must never write one state file.
    emulator_config.state_dir = owner.then(|| dir.clone());
    let running = Emulator::start(emulator_config, listener)
        .await
        .map_err(|e| format!("cannot start the embedded Alipay gateway: {e}"))?;
    let url = running.gateway_url();
    if owner {
        let note = serde_json::json!({ "gateway": url, "pid": std::process::id() }).to_string();
        if let Err(e) = std::fs::write(dir.join(GATEWAY_FILE), note) {
            tracing::warn!(error = %e, "cannot write {GATEWAY_FILE}");
        }
    }
    announce(
        config,
        &url,
        &dir,
        if owner {
            ""
        } else {
            " (in memory: another server owns this data dir)"
        },
    );
    Ok(LocalGateway {
        app_id,
        app_key,
        alipay_public_key,
        gateway_url: url,
        running: Some(running),
        _lock: owner.then_some(lock),
    })
}

/// Listen on `AP_LOCAL_PORT` on loopback, or on a free port when it is taken.
async fn bind_gateway(port: u16) -> Result<tokio::net::TcpListener, String> {
    match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => Ok(l),
        Err(e) if port != 0 => {
            tracing::warn!(port, error = %e, "AP_LOCAL_PORT is taken; using a free port");
            tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))
        }
        Err(e) => Err(format!("cannot listen on 127.0.0.1: {e}")),
    }
}

fn announce(config: &crate::config::Config, url: &str, dir: &Path, note: &str) {
    eprintln!(
        "mcp-server-alipay: local mode, no real money: payments go to the embedded Alipay gateway at {url}{note} (its cashier opens from every payment link){}; keys and trades in {}",
        config
            .notify_url
            .as_deref()
            .map(|u| format!(", payment notifications to {u}"))
            .unwrap_or_default(),
        dir.display()
    );
}

async fn wait_for_file(path: &Path) {
    for _ in 0..100 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The gateway the owner announced, if it is ours: a signed query from our app for a made-up order
/// gets an answer that verifies with our platform key (Alipay's "no such trade").
async fn shared_gateway(
    dir: &Path,
    platform: &PublicKey,
    app_id: &str,
    app_key: &PrivateKey,
) -> Option<String> {
    let note: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(GATEWAY_FILE)).ok()?).ok()?;
    let url = note.get("gateway")?.as_str()?.to_string();
    let merchant = alipay_openapi::Merchant {
        app_id: app_id.to_string(),
        private_key: app_key.clone(),
        sign_type: alipay_openapi::SignType::Rsa2,
        app_auth_token: None,
    };
    let mut config = alipay_openapi::ClientConfig::new(merchant, platform.clone(), url.clone());
    config.timeout = Duration::from_secs(2);
    let client = alipay_openapi::AlipayClient::new(config).ok()?;
    let probe = client
        .execute_raw(
            "alipay.trade.query",
            r#"{"out_trade_no":"local-gateway-probe"}"#,
            false,
        )
        .await
        .ok()?;
    let known_app = probe.code() == "10000"
        || probe.body.get("sub_code").and_then(|c| c.as_str()) == Some("ACQ.TRADE_NOT_EXIST");
    known_app.then_some(url)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    Ok(())
}

/// Read a private key file, or create the pair (private 0600, public beside it) the first time.
pub fn load_or_create_key(private_path: &Path, public_path: &Path) -> Result<PrivateKey, String> {
    if private_path.exists() {
        let text = std::fs::read_to_string(private_path)
            .map_err(|e| format!("cannot read {}: {e}", private_path.display()))?;
        return PrivateKey::load(&private_path.display().to_string(), &text)
            .map_err(|e| e.to_string());
    }
    let key = PrivateKey::generate().map_err(|e| e.to_string())?;
    write_secret(private_path, &key.to_pkcs8_base64())?;
    std::fs::write(public_path, key.public_key().to_spki_base64() + "\n")
        .map_err(|e| format!("cannot write {}: {e}", public_path.display()))?;
    Ok(key)
}

/// Write a file only its owner can read, created that way (never briefly world-readable), whole or
/// not at all: a kill mid-write (the first local start makes its keys just after the handshake)
/// must not leave a torn key that every later start refuses. Written and synced beside it, then
/// linked into place, which fails rather than replace a file already there.
pub fn write_secret(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    let cannot_create = |e: std::io::Error| format!("cannot create {}: {e}", path.display());
    // This process's own name: another one writing the same key at once keeps its file.
    let mut partial = path.as_os_str().to_owned();
    partial.push(format!(".partial-{}", std::process::id()));
    let partial = std::path::PathBuf::from(partial);
    // What an earlier process of this id left when it was killed mid-write.
    let _ = std::fs::remove_file(&partial);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&partial).map_err(cannot_create)?;
    file.write_all(text.as_bytes())
        .and_then(|_| file.write_all(b"\n"))
        .and_then(|_| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let placed = match std::fs::hard_link(&partial, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(cannot_create(e)),
        // A file system without hard links: a rename, once nothing is there.
        Err(_) if !path.exists() => std::fs::rename(&partial, path).map_err(cannot_create),
        Err(e) => Err(cannot_create(e)),
    };
    let _ = std::fs::remove_file(&partial);
    placed?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The new name survives a power cut too.
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The owner takes the lock long before it writes its address (its gateway starts after the
    /// handshake): the previous owner's address must be gone meanwhile, or a server joining then
    /// probes it and, finding nothing, runs a gateway of its own.
    #[tokio::test]
    async fn the_owner_removes_a_stale_address_and_binds_before_it_starts() {
        let dir = std::env::temp_dir().join(format!(
            "gateway-claim-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let vars = std::collections::HashMap::from([
            ("AP_DATA_DIR".to_string(), dir.display().to_string()),
            ("AP_LOCAL_PORT".to_string(), "0".to_string()),
        ]);
        let config = crate::config::Config::from_vars(&vars).unwrap();
        std::fs::create_dir_all(config.env_dir()).unwrap();
        let note = config.env_dir().join(GATEWAY_FILE);
        std::fs::write(
            &note,
            r#"{"gateway":"http://127.0.0.1:1/gateway.do","pid":1}"#,
        )
        .unwrap();
        let owner = claim(&config).await.unwrap();
        assert!(!note.exists(), "the stale address is removed");
        let addr = owner.listener.as_ref().unwrap().local_addr().unwrap();
        // Bound already: a connection waits in the queue for the gateway to start.
        tokio::net::TcpStream::connect(addr).await.unwrap();
        let joiner = claim(&config).await.unwrap();
        assert!(
            joiner.listener.is_none(),
            "a second server is not the owner"
        );
        drop((owner, joiner));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_secret_is_written_whole_owner_only_and_never_over_another() {
        let dir = std::env::temp_dir().join(format!(
            "write-secret-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("app-private-key.txt");
        // What a start killed mid-write left beside it.
        let partial = format!("app-private-key.txt.partial-{}", std::process::id());
        std::fs::write(dir.join(partial), "MIIEvQ").unwrap();
        write_secret(&path, "first").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let refused = write_secret(&path, "second").unwrap_err();
        assert!(refused.contains("cannot create"), "{refused}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first\n");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["app-private-key.txt"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
