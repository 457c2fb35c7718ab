//! The download links `alipay.data.dataservice.bill.downloadurl.query` hands out
//! (`/bill/{token}`): like Alipay's pre-signed URLs they serve once and die 30 s after they were
//! issued, on the emulator's clock. They live in memory only (a link outlives no restart on
//! Alipay either), at most [`MAX_LINKS`] at a time: the oldest is forgotten first.

use std::collections::VecDeque;

use chrono::{DateTime, FixedOffset, TimeDelta};

/// How long a link works after it is issued (Alipay: "获取连接后30秒后未下载，链接地址失效").
pub(crate) const LIFETIME_SECONDS: i64 = 30;

/// Links kept at once.
pub(crate) const MAX_LINKS: usize = 64;

/// What a link serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Download {
    /// The zip's name for Content-Disposition.
    pub file_name: String,
    pub zip: Vec<u8>,
}

/// Why a link serves nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Never issued, or forgotten.
    Unknown,
    Used,
    Expired,
}

impl Refused {
    /// The 404's plain-text body.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Unknown => "unknown bill link (never issued, or expired and forgotten)\n",
            Self::Used => {
                "this bill link was already used: a link serves once; ask for a new one\n"
            }
            Self::Expired => {
                "this bill link expired: a link works for 30 s after it is issued; ask for a new one\n"
            }
        }
    }
}

struct Link {
    token: String,
    issued_at: DateTime<FixedOffset>,
    /// `None` once downloaded: kept until it expires, so a second try says why it fails.
    download: Option<Download>,
}

impl Link {
    fn expired(&self, now: &DateTime<FixedOffset>) -> bool {
        *now - self.issued_at > TimeDelta::seconds(LIFETIME_SECONDS)
    }
}

/// The links handed out.
#[derive(Default)]
pub(crate) struct BillLinks {
    links: VecDeque<Link>,
}

impl BillLinks {
    /// Remember `token` for `download`, issued `now`. Expired links are dropped first (their
    /// zips are dead weight), then the oldest while there are too many.
    pub(crate) fn issue(&mut self, token: String, now: DateTime<FixedOffset>, download: Download) {
        self.links.retain(|l| !l.expired(&now));
        while self.links.len() >= MAX_LINKS {
            self.links.pop_front();
        }
        self.links.push_back(Link {
            token,
            issued_at: now,
            download: Some(download),
        });
    }

    /// The download, once.
    pub(crate) fn take(
        &mut self,
        token: &str,
        now: &DateTime<FixedOffset>,
    ) -> Result<Download, Refused> {
        let link = self.find(token, now)?;
        link.download.take().ok_or(Refused::Used)
    }

    /// The download, without using the link up (a `HEAD`).
    pub(crate) fn peek(
        &mut self,
        token: &str,
        now: &DateTime<FixedOffset>,
    ) -> Result<Download, Refused> {
        let link = self.find(token, now)?;
        link.download.clone().ok_or(Refused::Used)
    }

    fn find(&mut self, token: &str, now: &DateTime<FixedOffset>) -> Result<&mut Link, Refused> {
        let link = self
            .links
            .iter_mut()
            .find(|l| l.token == token)
            .ok_or(Refused::Unknown)?;
        if link.expired(now) {
            // Free the zip at once; the link stays, to say why, until the next issue prunes it.
            link.download = None;
            return Err(Refused::Expired);
        }
        Ok(link)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alipay_openapi::time::parse_timestamp;

    fn at(text: &str) -> DateTime<FixedOffset> {
        parse_timestamp(text).unwrap()
    }

    fn download() -> Download {
        Download {
            file_name: "b.csv.zip".into(),
            zip: vec![1, 2, 3],
        }
    }

    #[test]
    fn a_link_serves_once_within_30_seconds() {
        let mut links = BillLinks::default();
        let t0 = at("2026-11-26 10:00:00");
        links.issue("a".into(), t0, download());
        links.issue("b".into(), t0, download());
        links.issue("c".into(), t0, download());
        assert_eq!(links.peek("a", &t0), Ok(download()));
        assert_eq!(links.take("a", &at("2026-11-26 10:00:30")), Ok(download()));
        assert_eq!(
            links.take("a", &at("2026-11-26 10:00:30")),
            Err(Refused::Used)
        );
        assert_eq!(
            links.take("b", &at("2026-11-26 10:00:31")),
            Err(Refused::Expired)
        );
        assert_eq!(
            links.take("b", &at("2026-11-26 10:00:31")),
            Err(Refused::Expired)
        );
        assert_eq!(links.take("zzz", &t0), Err(Refused::Unknown));
        // A new issue forgets the expired ones.
        links.issue("d".into(), at("2026-11-26 10:01:00"), download());
        assert_eq!(
            links.take("c", &at("2026-11-26 10:01:00")),
            Err(Refused::Unknown)
        );
        assert!(Refused::Expired.reason().contains("30 s"));
    }

    #[test]
    fn the_oldest_is_forgotten_past_the_bound() {
        let mut links = BillLinks::default();
        let now = at("2026-11-26 10:00:00");
        for i in 0..=MAX_LINKS {
            links.issue(format!("t{i}"), now, download());
        }
        assert_eq!(links.links.len(), MAX_LINKS);
        assert_eq!(links.take("t0", &now), Err(Refused::Unknown));
        assert_eq!(links.take(&format!("t{MAX_LINKS}"), &now), Ok(download()));
        assert_eq!(links.take("t1", &now), Ok(download()));
    }
}
