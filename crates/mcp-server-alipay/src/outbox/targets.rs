//! Where events go, from the environment only: `AP_NOTIFY_FORWARD_URL`, `AP_WEBHOOK_URL` (with
//! `AP_WEBHOOK_SECRET`), `AP_DINGTALK_WEBHOOK` (+ `AP_DINGTALK_SECRET`), `AP_WECOM_WEBHOOK`,
//! `AP_FEISHU_WEBHOOK` (+ `AP_FEISHU_SECRET`), and the retry schedule (`AP_DELIVERY_RETRY`,
//! `AP_DELIVERY_GIVE_UP`). Each value is checked at start-up; a bad one stops the server with one
//! line naming the variable. A URL or secret is never shown: a robot's URL is its credential.

use std::time::Duration;

use crate::config::{ConfigError, Secret};
use crate::domain::outbox::{RetryPolicy, TargetKind};

/// The shortest secret taken: a guessable one would let anyone forge our events.
pub const MIN_SECRET_CHARS: usize = 16;
const MAX_URL_CHARS: usize = 2048;

/// One place events are delivered to.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: TargetKind,
    /// Never logged or shown (robots carry their token in it).
    pub url: url::Url,
    /// The signing secret (the webhook's, DingTalk's or Feishu's), when set.
    pub secret: Option<Secret>,
}

impl Target {
    /// What a log line or `doctor` may show of it: the kind and the host, never the path or query.
    pub fn describe(&self) -> String {
        format!(
            "{} ({}://{})",
            self.kind.as_str(),
            self.url.scheme(),
            self.url.host_str().unwrap_or("?")
        )
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Every configured target and the retry schedule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboxConfig {
    pub targets: Vec<Target>,
    pub retry: RetryPolicy,
}

impl OutboxConfig {
    pub fn kinds(&self) -> Vec<TargetKind> {
        self.targets.iter().map(|t| t.kind).collect()
    }

    pub fn target(&self, kind: TargetKind) -> Option<&Target> {
        self.targets.iter().find(|t| t.kind == kind)
    }
}

fn err(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        message: message.into(),
    }
}

fn parse_url(var: &'static str, text: &str) -> Result<url::Url, ConfigError> {
    if text.chars().count() > MAX_URL_CHARS {
        return Err(err(var, format!("longer than {MAX_URL_CHARS} characters")));
    }
    // The value is not echoed: a robot's URL is its credential.
    let url = url::Url::parse(text).map_err(|e| err(var, format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(err(var, "must be an http:// or https:// URL with a host"));
    }
    Ok(url)
}

fn parse_secret(var: &'static str, text: String) -> Result<Secret, ConfigError> {
    if text.chars().count() < MIN_SECRET_CHARS {
        return Err(err(
            var,
            format!("too short: at least {MIN_SECRET_CHARS} characters"),
        ));
    }
    if text.len() > 512 || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err(
            var,
            "must be at most 512 characters, without spaces or control characters",
        ));
    }
    Ok(Secret::new(text))
}

/// `15s`, `1m`, `5m`, `2h`: a whole number of seconds, minutes or hours.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// Read the outbox's variables.
pub fn from_vars(get: &dyn Fn(&str) -> Option<String>) -> Result<OutboxConfig, ConfigError> {
    let mut targets = Vec::new();
    let mut add = |kind: TargetKind,
                   secret_var: Option<&'static str>,
                   secret_required: bool|
     -> Result<(), ConfigError> {
        let var = kind.variable();
        let secret = match secret_var {
            Some(sv) => get(sv).map(|s| parse_secret(sv, s)).transpose()?,
            None => None,
        };
        match get(var) {
            Some(text) => {
                let url = parse_url(var, &text)?;
                if secret_required && secret.is_none() {
                    return Err(err(
                        secret_var.unwrap_or(var),
                        format!(
                            "required with {var}: the secret the receiver verifies each event's signature with (at least {MIN_SECRET_CHARS} characters, e.g. `openssl rand -hex 32`)"
                        ),
                    ));
                }
                targets.push(Target { kind, url, secret });
            }
            None if secret.is_some() => {
                let sv = secret_var.unwrap_or(var);
                return Err(err(sv, format!("is set, but {var} is not")));
            }
            None => {}
        }
        Ok(())
    };
    add(TargetKind::Forward, None, false)?;
    add(TargetKind::Webhook, Some("AP_WEBHOOK_SECRET"), true)?;
    add(TargetKind::DingTalk, Some("AP_DINGTALK_SECRET"), false)?;
    add(TargetKind::WeCom, None, false)?;
    add(TargetKind::Feishu, Some("AP_FEISHU_SECRET"), false)?;

    let mut retry = RetryPolicy::default();
    if let Some(text) = get("AP_DELIVERY_RETRY") {
        let delays: Option<Vec<Duration>> =
            text.split(',').map(|d| parse_duration(d.trim())).collect();
        retry.delays = delays.filter(|d| !d.is_empty() && d.len() <= 32).ok_or_else(|| {
            err(
                "AP_DELIVERY_RETRY",
                format!("{text:?} is not a list of waits such as 15s,1m,5m,30m,2h,6h (the last repeats)"),
            )
        })?;
    }
    if let Some(text) = get("AP_DELIVERY_GIVE_UP") {
        retry.give_up_after = parse_duration(&text)
            .filter(|d| *d <= Duration::from_secs(7 * 24 * 3600))
            .ok_or_else(|| {
                err(
                    "AP_DELIVERY_GIVE_UP",
                    format!("{text:?} is not a duration such as 24h (at most 168h)"),
                )
            })?;
    }
    Ok(OutboxConfig { targets, retry })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<OutboxConfig, ConfigError> {
        let vars: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_vars(&|name| vars.get(name).cloned())
    }

    const SECRET: &str = "whsec_0123456789abcdef";

    #[test]
    fn nothing_set_is_no_target() {
        let c = read(&[]).unwrap();
        assert!(c.targets.is_empty());
        assert_eq!(c.retry, RetryPolicy::default());
    }

    #[test]
    fn every_target_is_read() {
        let c = read(&[
            (
                "AP_NOTIFY_FORWARD_URL",
                "https://shop.example.com/alipay/notify",
            ),
            ("AP_WEBHOOK_URL", "https://shop.example.com/hooks/alipay"),
            ("AP_WEBHOOK_SECRET", SECRET),
            (
                "AP_DINGTALK_WEBHOOK",
                "https://oapi.dingtalk.com/robot/send?access_token=abc",
            ),
            ("AP_DINGTALK_SECRET", "SEC0123456789abcdef0123456789"),
            (
                "AP_WECOM_WEBHOOK",
                "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
            ),
            (
                "AP_FEISHU_WEBHOOK",
                "https://open.feishu.cn/open-apis/bot/v2/hook/x",
            ),
            ("AP_DELIVERY_RETRY", "1s, 2s"),
            ("AP_DELIVERY_GIVE_UP", "1h"),
        ])
        .unwrap();
        assert_eq!(c.kinds(), TargetKind::ALL.to_vec());
        assert_eq!(
            c.retry.delays,
            [Duration::from_secs(1), Duration::from_secs(2)]
        );
        assert_eq!(c.retry.give_up_after, Duration::from_secs(3600));
        // Neither the token in a robot's URL nor a secret is ever shown.
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("access_token") && !shown.contains("abc"),
            "{shown}"
        );
        assert!(
            !shown.contains(SECRET) && !shown.contains("SEC0123"),
            "{shown}"
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        let var = |pairs: &[(&str, &str)]| read(pairs).unwrap_err().var;
        assert_eq!(
            var(&[("AP_NOTIFY_FORWARD_URL", "ftp://x/notify")]),
            "AP_NOTIFY_FORWARD_URL"
        );
        assert_eq!(
            var(&[("AP_WECOM_WEBHOOK", "not a url")]),
            "AP_WECOM_WEBHOOK"
        );
        assert_eq!(
            var(&[("AP_WEBHOOK_URL", "https://x/h")]),
            "AP_WEBHOOK_SECRET"
        );
        assert_eq!(
            var(&[
                ("AP_WEBHOOK_URL", "https://x/h"),
                ("AP_WEBHOOK_SECRET", "short")
            ]),
            "AP_WEBHOOK_SECRET"
        );
        assert_eq!(var(&[("AP_FEISHU_SECRET", SECRET)]), "AP_FEISHU_SECRET");
        assert_eq!(
            var(&[("AP_DELIVERY_RETRY", "15s,soon")]),
            "AP_DELIVERY_RETRY"
        );
        assert_eq!(var(&[("AP_DELIVERY_GIVE_UP", "0s")]), "AP_DELIVERY_GIVE_UP");
        assert_eq!(
            var(&[("AP_DELIVERY_GIVE_UP", "200h")]),
            "AP_DELIVERY_GIVE_UP"
        );
        // The message never repeats a URL or a secret.
        let e = read(&[("AP_DINGTALK_WEBHOOK", "robot/send?access_token=abc")]).unwrap_err();
        assert!(!e.to_string().contains("access_token"), "{e}");
        let e = read(&[
            ("AP_WEBHOOK_URL", "https://x/h"),
            ("AP_WEBHOOK_SECRET", "tooshort123"),
        ])
        .unwrap_err();
        assert!(!e.to_string().contains("tooshort123"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s"), Some(Duration::from_secs(15)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        for bad in ["", "s", "15", "1.5m", "-1s", "0m", "1d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
