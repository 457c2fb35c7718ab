//! Logs: a file (`AP_LOG_FILE`, mode 0600) when `AP_LOG_ENABLED`, and warnings on stderr. Never
//! stdout (the JSON-RPC channel in stdio mode). Callers never log keys, signatures or signed URLs.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;
use std::sync::Mutex;

use chrono::{Datelike as _, Timelike as _};
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
        // RFC 3339 with milliseconds, `2026-12-01T15:01:02.345+08:00`, written directly: chrono's
        // `format` would parse its format string again for every line.
        let t = alipay_openapi::time::beijing_now();
        write!(
            w,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+08:00",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.timestamp_subsec_millis().min(999)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every log line starts with this instant: RFC 3339, milliseconds, Beijing's offset, and now.
    #[test]
    fn log_lines_are_stamped_with_beijing_time_to_the_millisecond() {
        let before = alipay_openapi::time::beijing_now();
        let mut stamp = String::new();
        BeijingTimer
            .format_time(&mut Writer::new(&mut stamp))
            .unwrap();
        let after = alipay_openapi::time::beijing_now();
        assert_eq!(
            stamp.len(),
            "2026-12-01T15:01:02.345+08:00".len(),
            "{stamp}"
        );
        assert!(stamp.ends_with("+08:00"), "{stamp}");
        let at = chrono::DateTime::parse_from_rfc3339(&stamp).unwrap();
        let millis = |t: chrono::DateTime<chrono::FixedOffset>| t.timestamp_millis();
        assert!(
            millis(before) <= millis(at) && millis(at) <= millis(after),
            "{stamp}"
        );
    }
}
