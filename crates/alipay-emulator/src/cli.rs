//! The `alipay-emulator` command line, shared with `mcp-server-alipay emulator`:
//!
//! ```text
//! alipay-emulator [--listen 127.0.0.1:8765] [--app APP_ID=APP_PUBLIC_KEY]... [--alipay-private-key KEY]
//!                 [--state-dir DIR] [--notify-retry-secs 240,600,600,3600,7200,21600,54000]
//! ```
//!
//! Once listening it prints one JSON line on stdout (the only stdout output) and serves until
//! SIGINT or SIGTERM. Logs go to stderr.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use alipay_openapi::{PrivateKey, PublicKey};

use crate::config::{ALIPAY_NOTIFY_RETRY_SECS, AppConfig, EmulatorConfig};
use crate::server::Emulator;

/// The key file kept in `--state-dir` when no `--alipay-private-key` is given, so the platform
/// key (and the public key merchants configured) survives a restart like the trades do.
pub const GENERATED_KEY_FILE: &str = "alipay-private-key.b64";

/// Flags of the emulator.
#[derive(Clone, Debug, clap::Args)]
pub struct EmulatorArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8765")]
    pub listen: SocketAddr,

    /// Register an app: its id and its public key (bare Base64, PEM, or a file path). Repeatable.
    #[arg(long = "app", value_name = "APP_ID=APP_PUBLIC_KEY")]
    pub apps: Vec<String>,

    /// The platform ("Alipay") private key (bare Base64, PEM, or a file path). Without it a key
    /// pair is generated (and kept in --state-dir when that is given).
    #[arg(long, value_name = "KEY")]
    pub alipay_private_key: Option<String>,

    /// Keep orders, trades, refunds and pending notifications in this directory across restarts.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Waits in seconds between notification deliveries that were not answered `success`.
    #[arg(
        long,
        value_name = "SECS,...",
        value_delimiter = ',',
        default_values_t = ALIPAY_NOTIFY_RETRY_SECS
    )]
    pub notify_retry_secs: Vec<u64>,

    /// Refuse request timestamps further than this many seconds from now (default: layout check only).
    #[arg(long, value_name = "SECS")]
    pub timestamp_skew_secs: Option<u64>,
}

/// Why the command cannot start: one line for stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("--app {0:?}: expected APP_ID=APP_PUBLIC_KEY")]
    AppFormat(String),
    #[error("--app {app_id}: {source}")]
    AppKey {
        app_id: String,
        source: alipay_openapi::KeyError,
    },
    #[error("--alipay-private-key: {0}")]
    PlatformKey(alipay_openapi::KeyError),
    #[error("{0}")]
    GeneratedKey(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Start(#[from] crate::server::EmulatorError),
}

/// Build the configuration the flags describe (keys loaded and checked).
pub fn config_from_args(args: &EmulatorArgs) -> Result<EmulatorConfig, CliError> {
    let platform_key = platform_key(args)?;
    let mut config = EmulatorConfig::new(platform_key);
    for spec in &args.apps {
        let (app_id, key) = spec
            .split_once('=')
            .filter(|(id, key)| !id.trim().is_empty() && !key.trim().is_empty())
            .ok_or_else(|| CliError::AppFormat(spec.clone()))?;
        let app_id = app_id.trim();
        let public_key =
            PublicKey::load("app public key", key).map_err(|source| CliError::AppKey {
                app_id: app_id.to_string(),
                source,
            })?;
        config.apps.push(AppConfig::new(app_id, public_key));
    }
    config.state_dir = args.state_dir.clone();
    config.notify_retry = args
        .notify_retry_secs
        .iter()
        .map(|s| Duration::from_secs(*s))
        .collect();
    config.timestamp_skew = args.timestamp_skew_secs.map(Duration::from_secs);
    Ok(config)
}

fn platform_key(args: &EmulatorArgs) -> Result<PrivateKey, CliError> {
    if let Some(text) = &args.alipay_private_key {
        return PrivateKey::load("Alipay private key", text).map_err(CliError::PlatformKey);
    }
    match &args.state_dir {
        Some(dir) => load_or_create_key(dir),
        None => PrivateKey::generate()
            .map_err(|e| CliError::GeneratedKey(format!("cannot generate a key pair: {e}"))),
    }
}

fn load_or_create_key(dir: &Path) -> Result<PrivateKey, CliError> {
    let path = dir.join(GENERATED_KEY_FILE);
    if path.is_file() {
        return PrivateKey::load("Alipay private key", &path.to_string_lossy()).map_err(|e| {
            CliError::GeneratedKey(format!(
                "{}: {e} (delete it to generate a new key)",
                path.display()
            ))
        });
    }
    let key = PrivateKey::generate()
        .map_err(|e| CliError::GeneratedKey(format!("cannot generate a key pair: {e}")))?;
    let fail =
        |e: std::io::Error| CliError::GeneratedKey(format!("cannot write {}: {e}", path.display()));
    std::fs::create_dir_all(dir).map_err(fail)?;
    write_private(&path, &key.to_pkcs8_base64()).map_err(fail)?;
    Ok(key)
}

/// A private key file readable by its owner only.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Run the emulator until SIGINT or SIGTERM. Logging goes to stderr (set up here unless the
/// embedding program already did).
pub async fn run(args: EmulatorArgs) -> ExitCode {
    init_logging();
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("alipay-emulator: {e}");
            ExitCode::from(2)
        }
    }
}

async fn serve(args: EmulatorArgs) -> Result<(), CliError> {
    let config = config_from_args(&args)?;
    let no_apps = config.apps.is_empty();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| CliError::Listen {
            addr: args.listen,
            source,
        })?;
    let running = Emulator::start(config, listener).await?;
    if no_apps {
        tracing::warn!("no --app given: every request will be answered isv.invalid-app-id");
    }
    // Written by hand to keep the documented key order (gateway first).
    let line = format!(
        "{{\"gateway\":{},\"alipay_public_key\":{}}}",
        serde_json::Value::from(running.gateway_url()),
        serde_json::Value::from(running.alipay_public_key().to_spki_base64()),
    );
    // The handlers are installed before the line goes out: a caller may signal the moment it
    // reads it, and a signal before the handlers would kill the process instead of stopping it.
    let stop = shutdown_signal();
    println!("{line}"); // stdout-ok: the one machine-readable line callers wait for
    stop.await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

/// Install the SIGINT and SIGTERM handlers now and return the wait for either. (`ctrl_c()`
/// installs its handler only when first polled, too late for the line above.)
fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn init_logging() {
    // `RUST_LOG` as a single level (error, warn, info, debug, trace); info by default.
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.trim().parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    // An embedding program may have installed its own subscriber already; keep it.
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: EmulatorArgs,
    }

    fn parse(argv: &[&str]) -> Result<EmulatorArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("alipay-emulator").chain(argv.iter().copied()))
            .map(|c| c.args)
    }

    const APP_KEY: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/alipay-vectors/keys/app-public-spki.b64"
    );

    #[test]
    fn defaults_and_lists() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.listen.to_string(), "127.0.0.1:8765");
        assert_eq!(a.notify_retry_secs, ALIPAY_NOTIFY_RETRY_SECS.to_vec());
        let a = parse(&["--notify-retry-secs", "0,1,2", "--listen", "127.0.0.1:0"]).unwrap();
        assert_eq!(a.notify_retry_secs, vec![0, 1, 2]);
        assert!(parse(&["--notify-retry-secs", "1,x"]).is_err());
        assert!(parse(&["--listen", "nowhere"]).is_err());
    }

    #[test]
    fn apps_take_keys_in_every_form_and_bad_ones_are_named() {
        let key_b64 = std::fs::read_to_string(APP_KEY).unwrap();
        let spec = format!("2021000000000001={}", key_b64.trim());
        let path_spec = format!("2021000000000002={APP_KEY}");
        let a = parse(&[
            "--app",
            &spec,
            "--app",
            &path_spec,
            "--alipay-private-key",
            APP_KEY
                .replace("app-public-spki.b64", "alipay-private-pkcs1.pem")
                .as_str(),
        ])
        .unwrap();
        let config = config_from_args(&a).unwrap();
        assert_eq!(config.apps.len(), 2);
        assert_eq!(config.apps[0].app_id, "2021000000000001");

        let bad = parse(&["--app", "no-equals-sign"]).unwrap();
        let err = config_from_args(&bad).unwrap_err().to_string();
        assert!(err.contains("APP_ID=APP_PUBLIC_KEY"), "{err}");
        let bad = parse(&["--app", "2021=bm90IGEga2V5"]).unwrap();
        let err = config_from_args(&bad).unwrap_err().to_string();
        assert!(err.starts_with("--app 2021: app public key:"), "{err}");
        let bad = parse(&["--alipay-private-key", APP_KEY]).unwrap();
        let err = config_from_args(&bad).unwrap_err().to_string();
        assert!(
            err.contains("--alipay-private-key") && err.contains("public key"),
            "{err}"
        );
    }

    #[test]
    fn generated_key_is_kept_in_the_state_dir() {
        let dir = std::env::temp_dir().join(format!("alipay-emulator-cli-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = parse(&["--state-dir", dir.to_str().unwrap()]).unwrap();
        let first = platform_key(&a).unwrap();
        let second = platform_key(&a).unwrap();
        assert_eq!(first.public_key(), second.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join(GENERATED_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
