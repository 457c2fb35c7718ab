//! Logs: a file (`AP_LOG_FILE`, mode 0600) when `AP_LOG_ENABLED`, and warnings on stderr. Never
//! stdout (the JSON-RPC channel in stdio mode). Callers never log keys, signatures or signed URLs.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::Config;

/// Log timestamps in Beijing time, like every other time this server shows.
struct BeijingTimer;

impl FormatTime for BeijingTimer {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        write!(
            w,
            "{}",
            alipay_openapi::time::beijing_now().format("%Y-%m-%dT%H:%M:%S%.3f%:z")
        )
    }
}

/// Open (or create) the log file readable by its owner only.
pub fn open_log_file(path: &Path) -> io::Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    // A file created earlier with looser permissions is tightened too.
    #[cfg(unix)]
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(file)
}

/// What the log file keeps: our own events from INFO up; the MCP library's from WARN up, since at
/// INFO it logs three lines for every Streamable HTTP request (each one a session of its own),
/// one with the client's whole `initialize` parameters.
fn file_filter() -> Targets {
    Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("rmcp", LevelFilter::WARN)
}

/// Install the subscriber. Returns a warning to show when the log file could not be opened.
pub fn init(config: &Config) -> Option<String> {
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(io::stderr)
        .with_ansi(false)
        .with_target(false)
        .with_timer(BeijingTimer)
        .with_filter(LevelFilter::WARN);
    let (file_layer, warning) = if config.log_enabled {
        match open_log_file(&config.log_file) {
            Ok(file) => (
                Some(
                    tracing_subscriber::fmt::layer()
                        .with_writer(Mutex::new(file))
                        .with_ansi(false)
                        .with_target(false)
                        .with_timer(BeijingTimer)
                        .with_filter(file_filter()),
                ),
                None,
            ),
            Err(e) => (
                None,
                Some(format!(
                    "cannot open log file {}: {e}; logging to stderr only",
                    config.log_file.display()
                )),
            ),
        }
    } else {
        (None, None)
    };
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file_layer)
        .try_init();
    warning
}
