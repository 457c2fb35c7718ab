//! Local mode: no merchant account. The emulator runs in-process on `127.0.0.1:AP_LOCAL_PORT`, with
//! an app key pair and a platform key pair created once in `AP_DATA_DIR/local/` and reused, and its
//! trades persisted there too, so links survive a restart.

use std::path::Path;

use alipay_emulator::{AppConfig, Emulator, EmulatorConfig, RunningEmulator};
use alipay_openapi::{PrivateKey, PublicKey};

/// The app id the embedded gateway knows us by (unless `AP_APP_ID` names another).
pub const LOCAL_APP_ID: &str = "9021000000000001";

pub struct LocalGateway {
    pub app_id: String,
    pub app_key: PrivateKey,
    pub alipay_public_key: PublicKey,
    running: RunningEmulator,
}

impl LocalGateway {
    pub fn gateway_url(&self) -> String {
        self.running.gateway_url()
    }

    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }
}

/// Start the embedded gateway and say so on stderr (one line).
pub async fn start(config: &crate::config::Config) -> Result<LocalGateway, String> {
    let dir = config.data_dir.join("local");
    create_private_dir(&dir)
        .map_err(|e| format!("AP_DATA_DIR: cannot create {}: {e}", dir.display()))?;
    let app_key = load_or_create_key(
        &dir.join("app-private-key.txt"),
        &dir.join("app-public-key.txt"),
    )?;
    let platform_key = load_or_create_key(
        &dir.join("alipay-private-key.txt"),
        &dir.join("alipay-public-key.txt"),
    )?;
    let app_id = config
        .local_app_id
        .clone()
        .unwrap_or_else(|| LOCAL_APP_ID.to_string());

    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", config.local_port)).await {
        Ok(l) => l,
        Err(e) if config.local_port != 0 => {
            tracing::warn!(port = config.local_port, error = %e, "AP_LOCAL_PORT is taken; using a free port");
            tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?
        }
        Err(e) => return Err(format!("cannot listen on 127.0.0.1: {e}")),
    };
    let mut emulator_config = EmulatorConfig::new(platform_key.clone());
    emulator_config
        .apps
        .push(AppConfig::new(app_id.clone(), app_key.public_key().clone()));
    emulator_config.state_dir = Some(dir.clone());
    let running = Emulator::start(emulator_config, listener)
        .await
        .map_err(|e| format!("cannot start the embedded Alipay gateway: {e}"))?;
    eprintln!(
        "mcp-server-alipay: local mode, no real money: payments go to the embedded Alipay gateway at {} (its cashier opens from every payment link){}; keys and trades in {}",
        running.gateway_url(),
        config
            .notify_url
            .as_deref()
            .map(|u| format!(", payment notifications to {u}"))
            .unwrap_or_default(),
        dir.display()
    );
    Ok(LocalGateway {
        app_id,
        app_key,
        alipay_public_key: platform_key.public_key().clone(),
        running,
    })
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

/// Write a file only its owner can read, created that way (never briefly world-readable).
pub fn write_secret(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|_| file.write_all(b"\n"))
        .and_then(|_| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
