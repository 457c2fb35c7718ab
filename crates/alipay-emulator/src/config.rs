//! What an emulator is started with: the platform ("Alipay") key, the registered apps, where state
//! lives, the notification retry schedule and the timestamp tolerance.

use std::path::PathBuf;
use std::time::Duration;

use alipay_openapi::{PrivateKey, PublicKey, SignType};

/// Alipay's documented retry intervals after a failed notification: 4m, 10m, 10m, 1h, 2h, 6h, 15h
/// (eight deliveries within about 25 hours).
pub const ALIPAY_NOTIFY_RETRY_SECS: [u64; 7] = [240, 600, 600, 3600, 7200, 21600, 54000];

/// How the emulator runs.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Alipay's private key: signs every response, notification and return_url query.
    pub platform_key: PrivateKey,
    /// The registered applications.
    pub apps: Vec<AppConfig>,
    /// `None`: state in memory only. `Some(dir)`: orders, trades, refunds and pending
    /// notifications are kept in `dir` (the snapshot `alipay-emulator-state.json` and the journal
    /// `alipay-emulator-journal.jsonl`, see `persist.rs`) and survive a restart, a crash too.
    pub state_dir: Option<PathBuf>,
    /// Waits between deliveries of a notification that was not answered `success`. The first
    /// delivery is immediate; after the last wait's delivery fails the emulator gives up.
    pub notify_retry: Vec<Duration>,
    /// `None`: the `timestamp` parameter is checked for its layout only (Alipay's tolerance is
    /// not documented). `Some(d)`: a timestamp further than `d` from now is refused too.
    pub timestamp_skew: Option<Duration>,
    /// Timeout of one notification delivery.
    pub notify_timeout: Duration,
}

impl EmulatorConfig {
    /// In memory, no apps, Alipay's retry schedule, layout-only timestamp check.
    pub fn new(platform_key: PrivateKey) -> Self {
        Self {
            platform_key,
            apps: Vec::new(),
            state_dir: None,
            notify_retry: ALIPAY_NOTIFY_RETRY_SECS
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            timestamp_skew: None,
            notify_timeout: Duration::from_secs(10),
        }
    }

    /// Register an app (builder style).
    pub fn with_app(mut self, app: AppConfig) -> Self {
        self.apps.push(app);
        self
    }
}

/// A registered application.
#[derive(Clone, Debug)]
pub struct AppConfig {
    pub app_id: String,
    /// The application's public key: verifies the app's requests.
    pub public_key: PublicKey,
    /// The merchant's Alipay user id (`2088` + 12 digits), reported as `seller_id`.
    pub seller_id: String,
    /// `seller_email` in notifications, when set.
    pub seller_email: Option<String>,
    /// `None`: both `RSA2` and `RSA` requests verify. `Some(t)`: the app's key is configured for
    /// `t` only and the other algorithm is refused (`isv.missing-signature-config`).
    pub sign_type: Option<SignType>,
    /// Methods this app has no contract for (answered `40006 isv.insufficient-isv-permissions`).
    pub disabled_methods: Vec<String>,
}

impl AppConfig {
    /// An app with a `seller_id` derived from its id (stable across restarts).
    pub fn new(app_id: impl Into<String>, public_key: PublicKey) -> Self {
        let app_id = app_id.into();
        let seller_id = derived_seller_id(&app_id);
        Self {
            app_id,
            public_key,
            seller_id,
            seller_email: None,
            sign_type: None,
            disabled_methods: Vec::new(),
        }
    }
}

/// `2088` + 12 digits from an FNV-1a hash of the app id: the same app always gets the same seller.
pub fn derived_seller_id(app_id: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in app_id.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("2088{:012}", hash % 1_000_000_000_000)
}

/// `2088` followed by 12 digits.
pub(crate) fn is_alipay_user_id(id: &str) -> bool {
    id.len() == 16 && id.starts_with("2088") && id.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_seller_ids_are_stable_and_well_formed() {
        let a = derived_seller_id("2021000000000001");
        assert_eq!(a, derived_seller_id("2021000000000001"));
        assert_ne!(a, derived_seller_id("2021000000000002"));
        assert!(is_alipay_user_id(&a), "{a}");
        assert!(!is_alipay_user_id("2088123"));
        assert!(!is_alipay_user_id("3088123456789012"));
    }
}
