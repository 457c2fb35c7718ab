//! Grants of the refund approval view: what lets the view's button decide a refund, and what the
//! model never holds. A grant is 256 random bits handed out only in a tool result's `_meta` (which
//! MCP Apps hosts pass to the view and keep out of the model's context); only its SHA-256 is kept,
//! in memory, beside the approval page's token it stands for. It works once and dies with the
//! approval's link (or this process). The PIN rule of the approval page applies on top.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

/// The key of a result's `_meta` that carries a grant to the view.
pub const META_KEY: &str = "alipay/approvalGrant";
/// The key of a result's `_meta` that tells the view to ask for `AP_REFUND_PIN`.
pub const PIN_KEY: &str = "alipay/pinRequired";

struct Granted {
    /// The approval page's token (itself a capability, kept only here and in the person's link).
    page_token: String,
    until: Instant,
}

/// Open grants, by the SHA-256 of the grant.
#[derive(Default)]
pub struct ViewGrants {
    open: Mutex<HashMap<[u8; 32], Granted>>,
}

impl std::fmt::Debug for ViewGrants {
    // Never the tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ViewGrants(…)")
    }
}

fn digest(grant: &str) -> [u8; 32] {
    Sha256::digest(grant.as_bytes()).into()
}

impl ViewGrants {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Granted>> {
        // A panic elsewhere cannot leave this map half-written: take it as it is.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new grant for the approval behind `page_token`, for `ttl`.
    pub fn issue(&self, page_token: &str, ttl: Duration) -> String {
        let grant = format!(
            "{:032x}{:032x}",
            rand::random::<u128>(),
            rand::random::<u128>()
        );
        let now = Instant::now();
        let mut open = self.lock();
        open.retain(|_, g| g.until > now);
        open.insert(
            digest(&grant),
            Granted {
                page_token: page_token.to_string(),
                until: now + ttl,
            },
        );
        grant
    }

    /// The page token a grant stands for, once: a second use, an unknown or an expired grant gets
    /// nothing.
    pub fn take(&self, grant: &str) -> Option<String> {
        self.lock()
            .remove(&digest(grant))
            .filter(|g| g.until > Instant::now())
            .map(|g| g.page_token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_works_once_and_only_itself() {
        let grants = ViewGrants::default();
        let grant = grants.issue("page-token", Duration::from_secs(60));
        assert_eq!(grant.len(), 64);
        assert_eq!(grants.take("not-the-grant"), None);
        assert_eq!(grants.take(&grant).as_deref(), Some("page-token"));
        assert_eq!(grants.take(&grant), None, "a grant works once");
    }

    #[test]
    fn an_expired_grant_gets_nothing() {
        let grants = ViewGrants::default();
        let grant = grants.issue("page-token", Duration::ZERO);
        assert_eq!(grants.take(&grant), None);
    }
}
