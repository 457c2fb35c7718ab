//! Configuration from the environment: the reference server's `AP_*` variables plus ours. Every
//! value is checked at start-up; a bad one stops the server with one line naming the variable and
//! what would be valid. Keys are parsed here, once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use alipay_openapi::{Amount, PrivateKeyDer, PublicKey, SignType};

use crate::tools::ToolKind;

pub use crate::domain::Env;

/// `AP_ORDER_TTL_MINUTES` when unset: long enough to pay, short enough that a link handed to a
/// stranger does not stay payable for Alipay's default of 15 days.
pub const DEFAULT_ORDER_TTL_MINUTES: u32 = 30;
/// Alipay's longest `time_expire`: 15 days.
pub const MAX_ORDER_TTL_MINUTES: u32 = 21_600;

/// Credentials of a real Alipay application (prod or sandbox).
#[derive(Clone, Debug)]
pub struct Credentials {
    pub app_id: String,
    /// Checked in form; loaded (its numbers checked) when the app starts, after the handshake.
    pub app_key: PrivateKeyDer,
    pub alipay_public_key: PublicKey,
}

/// Everything the server needs, validated.
#[derive(Clone, Debug)]
pub struct Config {
    pub env: Env,
    /// `None` in local mode (keys live in the data dir).
    pub credentials: Option<Credentials>,
    /// `AP_APP_ID` in local mode, if the user set one.
    pub local_app_id: Option<String>,
    pub sign_type: SignType,
    pub return_url: Option<String>,
    pub notify_url: Option<String>,
    pub app_auth_token: Option<Secret>,
    pub gateway_url: Option<String>,
    pub timeout: Duration,
    pub tools: Vec<ToolKind>,
    pub log_enabled: bool,
    pub log_file: PathBuf,
    pub data_dir: PathBuf,
    pub local_port: u16,
    /// `AP_ORDER_TTL_MINUTES`: how long every order stays payable (`time_expire`); a create may
    /// ask for less, never more.
    pub order_ttl_minutes: u32,
    /// `AP_AGENT_ID`: the `agent_id` of 智易收 orders (`None`: the app id).
    pub agent_id: Option<String>,
    /// `AP_REFUND_PIN`, `AP_REFUND_APPROVAL_TTL_MINUTES`, `AP_APPROVAL_LISTEN`,
    /// `AP_APPROVAL_BASE_URL`: refund approval pages.
    pub approval: ApprovalConfig,
    /// `AP_NOTIFY_LISTEN`: where the notify receiver listens (local mode: on by default).
    pub notify_listen: Option<std::net::SocketAddr>,
    pub guard: Guardrails,
    /// `AP_HTTP_*`: the Streamable HTTP transport.
    pub http: HttpSettings,
    /// `AP_NOTIFY_FORWARD_URL`, `AP_WEBHOOK_*`, the robots, `AP_DELIVERY_*`: where verified events
    /// are delivered.
    pub outbox: crate::outbox::targets::OutboxConfig,
    /// `AP_DATABASE_URL` (and `AP_DATABASE_CA_FILE`): the ledger on PostgreSQL, shared by any
    /// number of instances; `None`: SQLite in `AP_DATA_DIR`.
    pub database: Option<DatabaseConfig>,
    /// `AP_RECONCILE_INTERVAL_SECONDS`: how often this process settles refunds a dead one (sharing
    /// the ledger) left unsettled.
    pub reconcile_every: Duration,
}

/// How often refunds left unsettled are looked for, unless `AP_RECONCILE_INTERVAL_SECONDS` says.
pub const DEFAULT_RECONCILE_EVERY: Duration = Duration::from_secs(60);

/// A PostgreSQL ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host/db?sslmode=require`, or libpq's `host=… user=… dbname=…`;
    /// it may hold a password, so it is never shown.
    pub url: Secret,
    /// `AP_DATABASE_CA_FILE`: PEM roots that verify the server's certificate (TLS).
    pub ca_file: Option<PathBuf>,
    /// `AP_DATABASE_POOL_SIZE`: connections for calls, per instance (order locks get half as many
    /// more, and the lease and the listener one each).
    pub pool_size: usize,
}

/// `AP_DATABASE_URL` and `AP_DATABASE_CA_FILE`. The URL is never echoed: it may hold a password.
fn database(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<DatabaseConfig>, ConfigError> {
    let ca_file = get("AP_DATABASE_CA_FILE").map(PathBuf::from);
    let Some(url) = get("AP_DATABASE_URL") else {
        for name in ["AP_DATABASE_CA_FILE", "AP_DATABASE_POOL_SIZE"] {
            if get(name).is_some() {
                return Err(err(name, "is set, but AP_DATABASE_URL is not"));
            }
        }
        return Ok(None);
    };
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let valid = if is_url {
        url::Url::parse(&url)
            .is_ok_and(|u| u.host_str().is_some_and(|h| !h.is_empty()) || url.contains("host="))
    } else {
        // libpq's key=value form: `host=/run/postgresql user=mcp dbname=ledger`.
        url.split_whitespace().all(|kv| kv.contains('=')) && url.contains("host=")
    };
    if !valid {
        return Err(err(
            "AP_DATABASE_URL",
            "not a PostgreSQL connection string: use postgres://user:password@host:5432/dbname (add ?sslmode=require for TLS) or libpq's host=… user=… dbname=…",
        ));
    }
    if let Some(path) = &ca_file
        && !path.is_file()
    {
        return Err(err(
            "AP_DATABASE_CA_FILE",
            format!(
                "{} is not a readable file of PEM certificates",
                path.display()
            ),
        ));
    }
    let pool_size = match get("AP_DATABASE_POOL_SIZE") {
        None => crate::ledger::DEFAULT_POOL_SIZE,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (2..=1000).contains(n))
            .ok_or_else(|| {
                err(
                    "AP_DATABASE_POOL_SIZE",
                    format!("{v:?} is not a number of connections between 2 and 1000"),
                )
            })?,
    };
    Ok(Some(DatabaseConfig {
        url: Secret::new(url),
        ca_file,
        pool_size,
    }))
}

/// A credential from the environment: usable, but never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// Refund approval pages, for clients that cannot ask a person (`AP_REFUND_CONFIRM=true`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalConfig {
    /// `AP_REFUND_PIN`: approval needs it when set.
    pub pin: Option<Secret>,
    /// `AP_REFUND_APPROVAL_TTL_MINUTES` (default 15).
    pub ttl_minutes: u32,
    /// `AP_APPROVAL_LISTEN`: where stdio mode serves the pages (`None`: off).
    pub listen: Option<std::net::SocketAddr>,
    /// `AP_APPROVAL_BASE_URL`: what the links start with, behind a proxy.
    pub base_url: Option<String>,
}

/// The Streamable HTTP transport (`serve --http ADDR` or `AP_HTTP_LISTEN`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpSettings {
    /// `AP_HTTP_LISTEN`: serve MCP over HTTP on this address instead of stdio.
    pub listen: Option<std::net::SocketAddr>,
    /// `AP_HTTP_TOKEN`: the bearer token; `None` means one is generated at start-up.
    pub token: Option<Secret>,
    /// `AP_HTTP_ALLOWED_ORIGINS`: browser origins allowed to call (`scheme://host[:port]`, or `null`).
    pub allowed_origins: Vec<String>,
    /// `AP_HTTP_ALLOWED_HOSTS`: `Host` names (or `host:port`) accepted; `None` is loopback names
    /// plus the listen address; `Some(empty)` (`*`) accepts any `Host`.
    pub allowed_hosts: Option<Vec<String>>,
    /// `AP_HTTP_MAX_BODY_BYTES`: the largest request body.
    pub max_body_bytes: usize,
    /// `AP_HTTP_TIMEOUT_MS`: how long a request may take to be answered (and the drain on SIGTERM).
    pub timeout: Duration,
    /// `AP_HTTP_MAX_CONCURRENT`: requests served at once; more wait (up to the timeout), then 503.
    pub max_concurrent: usize,
    /// `AP_HTTP_HEADER_TIMEOUT_MS`: how long a request's head (request line and headers) may take
    /// to arrive, from the accept or from its first byte on a kept-alive connection; else closed.
    pub header_timeout: Duration,
    /// `AP_HTTP_IDLE_TIMEOUT_MS`: how long a kept-alive connection may wait for its next request
    /// with nothing in flight; else closed (a request in flight, a stream included, is never cut).
    pub idle_timeout: Duration,
    /// `AP_HTTP_MAX_CONNECTIONS`: connections open at once; more wait to be accepted. `None`: 1024,
    /// or half the open-file limit (`ulimit -n`) when that is lower, decided at start-up.
    pub max_connections: Option<usize>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            listen: None,
            token: None,
            allowed_origins: Vec::new(),
            allowed_hosts: None,
            max_body_bytes: 1024 * 1024,
            timeout: Duration::from_secs(30),
            max_concurrent: 256,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: None,
        }
    }
}

/// Limits the model cannot change: they come from the environment only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Guardrails {
    /// `AP_MAX_PAYMENT_AMOUNT`: the largest single order.
    pub max_payment: Option<Amount>,
    /// `AP_MAX_REFUND_AMOUNT`: the largest single refund.
    pub max_refund: Option<Amount>,
    /// `AP_DAILY_REFUND_LIMIT`: the sum of refunds per Beijing day.
    pub daily_refund_limit: Option<Amount>,
    /// `AP_READ_ONLY`: only the query and list tools exist.
    pub read_only: bool,
    /// `AP_REFUND_CONFIRM`: every refund asks the human first.
    pub refund_confirm: bool,
}

/// A configuration error: one line, naming the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

fn err(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        message: message.into(),
    }
}

impl Config {
    /// Read the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Read a given environment (tests).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        // Whitespace around a value is a copy-paste accident, never meaning.
        let get = |name: &str| {
            vars.get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let app_id = get("AP_APP_ID");
        let env = match get("AP_CURRENT_ENV").as_deref() {
            None if app_id.is_some() => Env::Prod,
            None => Env::Local,
            Some("prod") | Some("production") => Env::Prod,
            Some("sandbox") => Env::Sandbox,
            Some("local") => Env::Local,
            Some(other) => {
                return Err(err(
                    "AP_CURRENT_ENV",
                    format!("unknown environment {other:?}; valid: prod, sandbox, local"),
                ));
            }
        };
        let sign_type = match get("AP_ENCRYPTION_ALGO").as_deref() {
            None | Some("RSA2") => SignType::Rsa2,
            Some("RSA") => SignType::Rsa,
            Some(other) => {
                return Err(err(
                    "AP_ENCRYPTION_ALGO",
                    format!(
                        "unknown algorithm {other:?}; valid: RSA2 (SHA256withRSA, recommended) or RSA (SHA1withRSA)"
                    ),
                ));
            }
        };
        let credentials = match env {
            Env::Local => None,
            Env::Prod | Env::Sandbox => {
                let which = env.as_str();
                let app_id = app_id.clone().ok_or_else(|| {
                    err("AP_APP_ID", format!("required for AP_CURRENT_ENV={which} (unset AP_CURRENT_ENV and AP_APP_ID to run locally without an account)"))
                })?;
                if !app_id.bytes().all(|b| b.is_ascii_digit()) || app_id.len() > 32 {
                    return Err(err(
                        "AP_APP_ID",
                        format!(
                            "{app_id:?} is not an Alipay APPID (digits only, e.g. 2021000000000001)"
                        ),
                    ));
                }
                let app_key_text = get("AP_APP_KEY").ok_or_else(|| {
                    err("AP_APP_KEY", "required: the application private key (bare Base64 or PEM, or a file path)")
                })?;
                let pub_key_text = get("AP_PUB_KEY").ok_or_else(|| {
                    err("AP_PUB_KEY", "required: the Alipay public key from the open platform console (not your app's public key)")
                })?;
                let app_key = PrivateKeyDer::read("application private key", &app_key_text)
                    .map_err(|e| err("AP_APP_KEY", e.problem.to_string()))?;
                let alipay_public_key = PublicKey::load("Alipay public key", &pub_key_text)
                    .map_err(|e| err("AP_PUB_KEY", e.problem.to_string()))?;
                Some(Credentials {
                    app_id,
                    app_key,
                    alipay_public_key,
                })
            }
        };
        let url = |name: &'static str| -> Result<Option<String>, ConfigError> {
            match get(name) {
                None => Ok(None),
                Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
                    if u.len() > 256 {
                        Err(err(name, "longer than Alipay's 256-character limit"))
                    } else if u.contains(char::is_whitespace) {
                        Err(err(name, "must not contain spaces"))
                    } else {
                        Ok(Some(u))
                    }
                }
                Some(u) => Err(err(name, format!("{u:?} is not an http(s) URL"))),
            }
        };
        let timeout_ms = match get("AP_TIMEOUT_MS") {
            None => 5000,
            Some(v) => match v.parse::<u64>() {
                Ok(ms) if (100..=120_000).contains(&ms) => ms,
                _ => {
                    return Err(err(
                        "AP_TIMEOUT_MS",
                        format!("{v:?} is not a number of milliseconds between 100 and 120000"),
                    ));
                }
            },
        };
        let log_enabled = match get("AP_LOG_ENABLED").as_deref() {
            None => true,
            Some(v) => parse_bool(v)
                .ok_or_else(|| err("AP_LOG_ENABLED", format!("{v:?} is not true or false")))?,
        };
        let home = get("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let order_ttl_minutes = match get("AP_ORDER_TTL_MINUTES") {
            None => DEFAULT_ORDER_TTL_MINUTES,
            Some(v) => match v.parse::<u32>() {
                Ok(m) if (1..=MAX_ORDER_TTL_MINUTES).contains(&m) => m,
                _ => {
                    return Err(err(
                        "AP_ORDER_TTL_MINUTES",
                        format!(
                            "{v:?} is not a number of minutes between 1 and {MAX_ORDER_TTL_MINUTES} (15 days, Alipay's longest)"
                        ),
                    ));
                }
            },
        };
        let agent_id = get("AP_AGENT_ID")
            .map(|id| {
                if id.chars().count() > 64 || id.chars().any(|c| c.is_control() || c.is_whitespace()) {
                    Err(err(
                        "AP_AGENT_ID",
                        "must be at most 64 characters, without spaces or control characters (the agent ID the agent platform assigned, or your own)",
                    ))
                } else {
                    Ok(id)
                }
            })
            .transpose()?;
        let approval = ApprovalConfig {
            pin: get("AP_REFUND_PIN")
                .map(|pin| {
                    if (4..=64).contains(&pin.chars().count()) && !pin.chars().any(char::is_control)
                    {
                        Ok(Secret::new(pin))
                    } else {
                        Err(err(
                            "AP_REFUND_PIN",
                            "must be 4 to 64 characters without control characters",
                        ))
                    }
                })
                .transpose()?,
            ttl_minutes: match get("AP_REFUND_APPROVAL_TTL_MINUTES") {
                None => 15,
                Some(v) => match v.parse::<u32>() {
                    Ok(m) if (1..=1440).contains(&m) => m,
                    _ => {
                        return Err(err(
                            "AP_REFUND_APPROVAL_TTL_MINUTES",
                            format!("{v:?} is not a number of minutes between 1 and 1440"),
                        ));
                    }
                },
            },
            listen: match get("AP_APPROVAL_LISTEN") {
                None => Some(std::net::SocketAddr::from(([127, 0, 0, 1], 8767))),
                Some(v) if matches!(v.as_str(), "off" | "false" | "0") => None,
                Some(v) => Some(v.parse().map_err(|_| {
                    err(
                        "AP_APPROVAL_LISTEN",
                        format!("{v:?} is not an address such as 127.0.0.1:8767 (or off)"),
                    )
                })?),
            },
            base_url: url("AP_APPROVAL_BASE_URL")?,
        };
        let local_port = match get("AP_LOCAL_PORT") {
            None => 8765,
            Some(v) => v.parse::<u16>().map_err(|_| {
                err(
                    "AP_LOCAL_PORT",
                    format!("{v:?} is not a port number (0-65535; 0 picks a free port)"),
                )
            })?,
        };
        let mut tools = ToolKind::select(get("AP_SELECT_TOOLS").as_deref().unwrap_or("all"))
            .map_err(|m| err("AP_SELECT_TOOLS", m))?;
        let flag = |name: &'static str| -> Result<bool, ConfigError> {
            match get(name) {
                None => Ok(false),
                Some(v) => {
                    parse_bool(&v).ok_or_else(|| err(name, format!("{v:?} is not true or false")))
                }
            }
        };
        let limit = |name: &'static str| -> Result<Option<Amount>, ConfigError> {
            get(name)
                .map(|v| {
                    Amount::from_yuan_str(&v)
                        .map_err(|e| err(name, format!("{e} (a yuan amount such as 500 or 99.50)")))
                })
                .transpose()
        };
        let guard = Guardrails {
            max_payment: limit("AP_MAX_PAYMENT_AMOUNT")?,
            max_refund: limit("AP_MAX_REFUND_AMOUNT")?,
            daily_refund_limit: limit("AP_DAILY_REFUND_LIMIT")?,
            read_only: flag("AP_READ_ONLY")?,
            refund_confirm: flag("AP_REFUND_CONFIRM")?,
        };
        if guard.read_only {
            tools.retain(|t| t.is_read_only());
            if tools.is_empty() {
                return Err(err(
                    "AP_SELECT_TOOLS",
                    "selects no read-only tool, and AP_READ_ONLY=true allows only queryPay, refundQuery, listOrders, waitPay and billRecon",
                ));
            }
        }
        let notify_listen = match get("AP_NOTIFY_LISTEN") {
            None if env == Env::Local => Some(std::net::SocketAddr::from(([127, 0, 0, 1], 8766))),
            None => None,
            Some(v) if matches!(v.as_str(), "off" | "false" | "0") => None,
            Some(v) => Some(v.parse().map_err(|_| {
                err(
                    "AP_NOTIFY_LISTEN",
                    format!("{v:?} is not an address such as 127.0.0.1:8766 (or off)"),
                )
            })?),
        };
        let http = http_settings(&get)?;
        let outbox = crate::outbox::targets::from_vars(&get)?;
        let database = database(&get)?;
        let reconcile_every = match get("AP_RECONCILE_INTERVAL_SECONDS") {
            None => DEFAULT_RECONCILE_EVERY,
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=86_400).contains(n))
                .map(Duration::from_secs)
                .ok_or_else(|| {
                    err(
                        "AP_RECONCILE_INTERVAL_SECONDS",
                        format!("{v:?} is not a number of seconds between 1 and 86400"),
                    )
                })?,
        };
        Ok(Self {
            env,
            local_app_id: if env == Env::Local { app_id } else { None },
            credentials,
            sign_type,
            return_url: url("AP_RETURN_URL")?,
            notify_url: url("AP_NOTIFY_URL")?,
            app_auth_token: get("AP_INVOKE_AUTH_TOKEN").map(Secret::new),
            gateway_url: url("AP_GATEWAY_URL")?,
            timeout: Duration::from_millis(timeout_ms),
            tools,
            log_enabled,
            log_file: get("AP_LOG_FILE")
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join("mcp-server-alipay.log")),
            data_dir: get("AP_DATA_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(".mcp-server-alipay")),
            local_port,
            order_ttl_minutes,
            agent_id,
            approval,
            notify_listen,
            guard,
            http,
            outbox,
            database,
            reconcile_every,
        })
    }

    /// Where this environment keeps its own state in `AP_DATA_DIR`: the ledger, and in local mode
    /// the keys and the embedded gateway's trades. Prod uses the top level.
    pub fn env_dir(&self) -> PathBuf {
        match self.env {
            Env::Prod => self.data_dir.clone(),
            Env::Sandbox => self.data_dir.join("sandbox"),
            Env::Local => self.data_dir.join("local"),
        }
    }

    /// The gateway of a real environment (`AP_GATEWAY_URL` overrides).
    pub fn remote_gateway(&self) -> String {
        match (&self.gateway_url, self.env) {
            (Some(url), _) => url.clone(),
            (None, Env::Sandbox) => alipay_openapi::SANDBOX_GATEWAY.to_string(),
            (None, _) => alipay_openapi::PROD_GATEWAY.to_string(),
        }
    }
}

/// The `AP_HTTP_*` variables.
fn http_settings(get: &dyn Fn(&str) -> Option<String>) -> Result<HttpSettings, ConfigError> {
    let defaults = HttpSettings::default();
    let listen = get("AP_HTTP_LISTEN")
        .map(|v| {
            v.parse::<std::net::SocketAddr>().map_err(|_| {
                err(
                    "AP_HTTP_LISTEN",
                    format!("{v:?} is not an address such as 127.0.0.1:8080 or [::1]:8080"),
                )
            })
        })
        .transpose()?;
    let token = get("AP_HTTP_TOKEN")
        .map(|t| check_token(&t).map(|()| Secret::new(t)))
        .transpose()
        .map_err(|m| err("AP_HTTP_TOKEN", m))?;
    let allowed_origins = match get("AP_HTTP_ALLOWED_ORIGINS") {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|o| normalize_origin(o).ok_or_else(|| {
                err(
                    "AP_HTTP_ALLOWED_ORIGINS",
                    format!("{o:?} is not an origin such as https://app.example.com or http://localhost:3000 (scheme://host[:port], no path), or null"),
                )
            }))
            .collect::<Result<_, _>>()?,
    };
    let allowed_hosts = match get("AP_HTTP_ALLOWED_HOSTS") {
        None => None,
        Some(v) if v == "*" => Some(Vec::new()),
        Some(list) => {
            let hosts: Vec<String> = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|h| {
                    check_host(h).map(|()| h.to_ascii_lowercase()).ok_or_else(|| {
                        err(
                            "AP_HTTP_ALLOWED_HOSTS",
                            format!("{h:?} is not a host name or host:port such as mcp.example.com or 10.0.0.5:8080 (or * for any)"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
            if hosts.is_empty() {
                return Err(err(
                    "AP_HTTP_ALLOWED_HOSTS",
                    "lists no host (use * to accept any Host)",
                ));
            }
            Some(hosts)
        }
    };
    let number = |name: &'static str, default: u64, min: u64, max: u64, what: &str| match get(name)
    {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(err(
                name,
                format!("{v:?} is not {what} between {min} and {max}"),
            )),
        },
    };
    let max_body_bytes = number(
        "AP_HTTP_MAX_BODY_BYTES",
        defaults.max_body_bytes as u64,
        1024,
        64 * 1024 * 1024,
        "a number of bytes",
    )? as usize;
    let timeout_ms = number(
        "AP_HTTP_TIMEOUT_MS",
        defaults.timeout.as_millis() as u64,
        100,
        600_000,
        "a number of milliseconds",
    )?;
    let max_concurrent = number(
        "AP_HTTP_MAX_CONCURRENT",
        defaults.max_concurrent as u64,
        1,
        100_000,
        "a number of requests",
    )? as usize;
    let header_timeout_ms = number(
        "AP_HTTP_HEADER_TIMEOUT_MS",
        defaults.header_timeout.as_millis() as u64,
        100,
        600_000,
        "a number of milliseconds",
    )?;
    let idle_timeout_ms = number(
        "AP_HTTP_IDLE_TIMEOUT_MS",
        defaults.idle_timeout.as_millis() as u64,
        100,
        3_600_000,
        "a number of milliseconds",
    )?;
    let max_connections = get("AP_HTTP_MAX_CONNECTIONS")
        .map(|_| {
            number(
                "AP_HTTP_MAX_CONNECTIONS",
                0,
                1,
                1_000_000,
                "a number of connections",
            )
        })
        .transpose()?
        .map(|n| n as usize);
    Ok(HttpSettings {
        listen,
        token,
        allowed_origins,
        allowed_hosts,
        max_body_bytes,
        timeout: Duration::from_millis(timeout_ms),
        max_concurrent,
        header_timeout: Duration::from_millis(header_timeout_ms),
        idle_timeout: Duration::from_millis(idle_timeout_ms),
        max_connections,
    })
}

/// A bearer token: 16 to 1024 visible ASCII characters (what an HTTP header carries unchanged).
fn check_token(token: &str) -> Result<(), String> {
    if !(16..=1024).contains(&token.len()) {
        return Err(format!(
            "must be 16 to 1024 characters long (got {}); e.g. the output of `openssl rand -hex 32`",
            token.len()
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "must be visible ASCII characters only (no spaces or control characters)".into(),
        );
    }
    Ok(())
}

/// An origin as browsers send it, lower-cased with the scheme's default port left out:
/// `https://app.example.com`, `http://localhost:3000`, or `null`.
pub fn normalize_origin(origin: &str) -> Option<String> {
    let origin = origin.trim();
    if origin == "null" {
        return Some("null".into());
    }
    let url = authority_url(origin)?;
    matches!(url.scheme(), "http" | "https").then(|| url.origin().ascii_serialization())
}

/// `scheme://authority` and nothing more (no path, query, fragment or credentials), parsed.
fn authority_url(text: &str) -> Option<url::Url> {
    let (_, authority) = text.split_once("://")?;
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    let url = url::Url::parse(text).ok()?;
    url.host_str().is_some().then_some(url)
}

/// A `Host` value we can compare: a DNS name or IP, optionally with a port.
fn check_host(authority: &str) -> Option<()> {
    authority_url(&format!("http://{authority}")).map(drop)
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/alipay-vectors/keys/"
    );

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn prod() -> Vec<(&'static str, String)> {
        vec![
            ("AP_APP_ID", "2021000000000001".to_string()),
            (
                "AP_APP_KEY",
                std::fs::read_to_string(format!("{KEYS}app-private-pkcs8.b64")).unwrap(),
            ),
            (
                "AP_PUB_KEY",
                std::fs::read_to_string(format!("{KEYS}alipay-public-spki.b64")).unwrap(),
            ),
        ]
    }

    fn with(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut v: HashMap<String, String> = prod()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        for (k, val) in extra {
            v.insert(k.to_string(), val.to_string());
        }
        Config::from_vars(&v)
    }

    #[test]
    fn defaults() {
        let local = Config::from_vars(&vars(&[("HOME", "/h")])).unwrap();
        assert_eq!(local.env, Env::Local);
        assert_eq!(local.sign_type, SignType::Rsa2);
        assert_eq!(local.timeout, Duration::from_secs(5));
        assert_eq!(local.log_file, PathBuf::from("/h/mcp-server-alipay.log"));
        assert_eq!(local.data_dir, PathBuf::from("/h/.mcp-server-alipay"));
        assert_eq!(local.local_port, 8765);
        assert_eq!(local.order_ttl_minutes, 30);
        assert_eq!(local.agent_id, None);
        assert_eq!(
            with(&[("AP_AGENT_ID", "illustrator-bot")])
                .unwrap()
                .agent_id
                .as_deref(),
            Some("illustrator-bot")
        );
        assert!(local.log_enabled);
        assert_eq!(local.tools.len(), ToolKind::all().len());
        assert_eq!(
            local.notify_listen,
            Some("127.0.0.1:8766".parse().unwrap()),
            "on by default in local mode"
        );
        assert_eq!(local.guard, Guardrails::default());
        assert_eq!(
            with(&[]).unwrap().notify_listen,
            None,
            "off by default otherwise"
        );
        let prod = with(&[]).unwrap();
        assert_eq!(prod.env, Env::Prod);
        assert_eq!(prod.remote_gateway(), alipay_openapi::PROD_GATEWAY);
        assert_eq!(
            with(&[("AP_CURRENT_ENV", "sandbox")])
                .unwrap()
                .remote_gateway(),
            alipay_openapi::SANDBOX_GATEWAY
        );
        assert_eq!(
            with(&[("AP_CURRENT_ENV", "local")]).unwrap().env,
            Env::Local
        );
    }

    #[test]
    fn guardrails_come_from_the_environment() {
        let c = with(&[
            ("AP_MAX_PAYMENT_AMOUNT", "500"),
            ("AP_MAX_REFUND_AMOUNT", "99.5"),
            ("AP_DAILY_REFUND_LIMIT", "1000"),
            ("AP_READ_ONLY", "true"),
            ("AP_REFUND_CONFIRM", "1"),
        ])
        .unwrap();
        assert_eq!(c.guard.max_payment.unwrap().fen(), 50_000);
        assert_eq!(c.guard.max_refund.unwrap().fen(), 9_950);
        assert_eq!(c.guard.daily_refund_limit.unwrap().fen(), 100_000);
        assert!(c.guard.refund_confirm);
        assert_eq!(
            c.tools,
            vec![
                ToolKind::QueryPay,
                ToolKind::RefundQuery,
                ToolKind::ListOrders,
                ToolKind::WaitPay,
                ToolKind::BillRecon
            ]
        );
    }

    #[test]
    fn a_database_url_selects_postgresql_and_is_never_shown() {
        assert_eq!(with(&[]).unwrap().database, None);
        let c = with(&[(
            "AP_DATABASE_URL",
            "postgres://mcp:s3cret-pw@db.example.com:5432/ledger?sslmode=require",
        )])
        .unwrap();
        let db = c.database.unwrap();
        assert!(db.url.expose().contains("db.example.com"));
        assert!(!format!("{db:?}").contains("s3cret-pw"));
        let c = with(&[(
            "AP_DATABASE_URL",
            "host=/tmp/pg user=postgres dbname=postgres",
        )])
        .unwrap();
        assert!(c.database.is_some());
        let var = |pairs: &[(&str, &str)]| with(pairs).unwrap_err();
        let e = var(&[("AP_DATABASE_URL", "mysql://root:s3cret-pw@db/x")]);
        assert_eq!(e.var, "AP_DATABASE_URL");
        assert!(!e.to_string().contains("s3cret-pw"), "{e}");
        assert_eq!(
            var(&[("AP_DATABASE_CA_FILE", "/etc/ssl/ca.pem")]).var,
            "AP_DATABASE_CA_FILE"
        );
        assert_eq!(
            var(&[
                ("AP_DATABASE_URL", "postgres://db/x"),
                ("AP_DATABASE_CA_FILE", "/no/such/ca.pem")
            ])
            .var,
            "AP_DATABASE_CA_FILE"
        );
        assert_eq!(with(&[]).unwrap().reconcile_every, Duration::from_secs(60));
        let every = with(&[("AP_RECONCILE_INTERVAL_SECONDS", "5")]).unwrap();
        assert_eq!(every.reconcile_every, Duration::from_secs(5));
        for bad in ["0", "86401", "1m"] {
            let e = var(&[("AP_RECONCILE_INTERVAL_SECONDS", bad)]);
            assert_eq!(e.var, "AP_RECONCILE_INTERVAL_SECONDS", "{bad}");
        }
        let url = ("AP_DATABASE_URL", "postgres://db/x");
        assert_eq!(with(&[url]).unwrap().database.unwrap().pool_size, 16);
        let sized = with(&[url, ("AP_DATABASE_POOL_SIZE", "40")]).unwrap();
        assert_eq!(sized.database.unwrap().pool_size, 40);
        for bad in ["0", "1", "1001", "lots", "-4"] {
            let e = var(&[url, ("AP_DATABASE_POOL_SIZE", bad)]);
            assert_eq!(e.var, "AP_DATABASE_POOL_SIZE", "{bad}");
            assert!(e.to_string().contains("between 2 and 1000"), "{e}");
        }
        assert_eq!(
            var(&[("AP_DATABASE_POOL_SIZE", "8")]).var,
            "AP_DATABASE_POOL_SIZE",
            "without a database"
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let var = |e: Result<Config, ConfigError>| e.unwrap_err().var;
        assert_eq!(
            var(with(&[("AP_CURRENT_ENV", "staging")])),
            "AP_CURRENT_ENV"
        );
        assert_eq!(
            var(with(&[("AP_ENCRYPTION_ALGO", "SHA1")])),
            "AP_ENCRYPTION_ALGO"
        );
        assert_eq!(
            var(with(&[("AP_APP_KEY", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC")])),
            "AP_APP_KEY"
        );
        assert_eq!(var(with(&[("AP_PUB_KEY", "garbage!")])), "AP_PUB_KEY");
        assert_eq!(var(with(&[("AP_TIMEOUT_MS", "5s")])), "AP_TIMEOUT_MS");
        assert_eq!(var(with(&[("AP_LOG_ENABLED", "maybe")])), "AP_LOG_ENABLED");
        assert_eq!(var(with(&[("AP_LOCAL_PORT", "99999")])), "AP_LOCAL_PORT");
        assert_eq!(var(with(&[("AP_AGENT_ID", "has space")])), "AP_AGENT_ID");
        assert_eq!(var(with(&[("AP_REFUND_PIN", "12")])), "AP_REFUND_PIN");
        assert_eq!(
            var(with(&[("AP_REFUND_APPROVAL_TTL_MINUTES", "0")])),
            "AP_REFUND_APPROVAL_TTL_MINUTES"
        );
        assert_eq!(
            var(with(&[("AP_APPROVAL_LISTEN", "8767")])),
            "AP_APPROVAL_LISTEN"
        );
        assert_eq!(
            var(with(&[("AP_APPROVAL_BASE_URL", "approve.example.com")])),
            "AP_APPROVAL_BASE_URL"
        );
        let pin = with(&[("AP_REFUND_PIN", "2468")]).unwrap();
        assert!(
            !format!("{pin:?}").contains("2468"),
            "Debug never shows the PIN"
        );
        for bad in ["0", "21601", "30m", "-1"] {
            assert_eq!(
                var(with(&[("AP_ORDER_TTL_MINUTES", bad)])),
                "AP_ORDER_TTL_MINUTES"
            );
        }
        assert_eq!(
            with(&[("AP_ORDER_TTL_MINUTES", "21600")])
                .unwrap()
                .order_ttl_minutes,
            21_600
        );
        assert_eq!(var(with(&[("AP_NOTIFY_URL", "ftp://x")])), "AP_NOTIFY_URL");
        assert_eq!(
            var(with(&[("AP_SELECT_TOOLS", "mobilePay,nope")])),
            "AP_SELECT_TOOLS"
        );
        assert_eq!(var(with(&[("AP_APP_ID", "abc")])), "AP_APP_ID");
        assert_eq!(
            var(with(&[("AP_MAX_REFUND_AMOUNT", "0")])),
            "AP_MAX_REFUND_AMOUNT"
        );
        assert_eq!(
            var(with(&[("AP_DAILY_REFUND_LIMIT", "1.001")])),
            "AP_DAILY_REFUND_LIMIT"
        );
        assert_eq!(var(with(&[("AP_READ_ONLY", "yes please")])), "AP_READ_ONLY");
        assert_eq!(
            var(with(&[("AP_NOTIFY_LISTEN", "8766")])),
            "AP_NOTIFY_LISTEN"
        );
        assert_eq!(
            var(with(&[
                ("AP_READ_ONLY", "true"),
                ("AP_SELECT_TOOLS", "mobilePay")
            ])),
            "AP_SELECT_TOOLS"
        );
        let only_id = Config::from_vars(&vars(&[("AP_APP_ID", "2021000000000001")]));
        assert_eq!(var(only_id), "AP_APP_KEY");
        let sandbox_no_id = Config::from_vars(&vars(&[("AP_CURRENT_ENV", "sandbox")]));
        assert_eq!(var(sandbox_no_id), "AP_APP_ID");
        // The app's own private key given as AP_PUB_KEY is named for what it is.
        let e = with(&[(
            "AP_PUB_KEY",
            &std::fs::read_to_string(format!("{KEYS}app-private-pkcs8.b64")).unwrap(),
        )])
        .unwrap_err();
        assert!(e.to_string().contains("private key"), "{e}");
    }

    #[test]
    fn http_variables() {
        let d = with(&[]).unwrap().http;
        assert_eq!(d, HttpSettings::default());
        assert_eq!(d.listen, None, "stdio unless asked");
        let c = with(&[
            ("AP_HTTP_LISTEN", "127.0.0.1:8080"),
            ("AP_HTTP_TOKEN", "0123456789abcdef0123"),
            (
                "AP_HTTP_ALLOWED_ORIGINS",
                "https://App.Example.com:443, http://localhost:3000,null",
            ),
            ("AP_HTTP_ALLOWED_HOSTS", "mcp.example.com, 10.0.0.5:8080"),
            ("AP_HTTP_MAX_BODY_BYTES", "65536"),
            ("AP_HTTP_TIMEOUT_MS", "2000"),
            ("AP_HTTP_MAX_CONCURRENT", "8"),
            ("AP_HTTP_HEADER_TIMEOUT_MS", "1500"),
            ("AP_HTTP_IDLE_TIMEOUT_MS", "120000"),
            ("AP_HTTP_MAX_CONNECTIONS", "100"),
        ])
        .unwrap()
        .http;
        assert_eq!(c.listen, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(
            c.token.as_ref().map(Secret::expose),
            Some("0123456789abcdef0123")
        );
        assert!(
            !format!("{c:?}").contains("0123456789abcdef0123"),
            "Debug never shows the token"
        );
        assert_eq!(
            c.allowed_origins,
            ["https://app.example.com", "http://localhost:3000", "null"]
        );
        assert_eq!(
            c.allowed_hosts,
            Some(vec!["mcp.example.com".into(), "10.0.0.5:8080".into()])
        );
        assert_eq!(c.max_body_bytes, 65536);
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(c.max_concurrent, 8);
        assert_eq!(c.header_timeout, Duration::from_millis(1500));
        assert_eq!(c.idle_timeout, Duration::from_secs(120));
        assert_eq!(c.max_connections, Some(100));
        assert_eq!(d.header_timeout, Duration::from_secs(10));
        assert_eq!(d.idle_timeout, Duration::from_secs(60));
        assert_eq!(
            d.max_connections, None,
            "derived from ulimit -n at start-up"
        );
        assert_eq!(
            with(&[("AP_HTTP_ALLOWED_HOSTS", "*")])
                .unwrap()
                .http
                .allowed_hosts,
            Some(vec![])
        );
        assert_eq!(
            normalize_origin("http://[::1]:80").as_deref(),
            Some("http://[::1]")
        );

        let var = |e: Result<Config, ConfigError>| e.unwrap_err().var;
        for (name, bad) in [
            ("AP_HTTP_LISTEN", "8080"),
            ("AP_HTTP_TOKEN", "short"),
            ("AP_HTTP_TOKEN", "has a space in the middle!"),
            ("AP_HTTP_ALLOWED_ORIGINS", "app.example.com"),
            ("AP_HTTP_ALLOWED_ORIGINS", "https://app.example.com/path"),
            ("AP_HTTP_ALLOWED_ORIGINS", "ftp://x"),
            ("AP_HTTP_ALLOWED_HOSTS", "exa mple.com"),
            ("AP_HTTP_ALLOWED_HOSTS", "host:99999"),
            ("AP_HTTP_ALLOWED_HOSTS", " , "),
            ("AP_HTTP_MAX_BODY_BYTES", "10"),
            ("AP_HTTP_TIMEOUT_MS", "30s"),
            ("AP_HTTP_MAX_CONCURRENT", "0"),
            ("AP_HTTP_HEADER_TIMEOUT_MS", "10s"),
            ("AP_HTTP_HEADER_TIMEOUT_MS", "50"),
            ("AP_HTTP_IDLE_TIMEOUT_MS", "3600001"),
            ("AP_HTTP_MAX_CONNECTIONS", "0"),
            ("AP_HTTP_MAX_CONNECTIONS", "many"),
        ] {
            assert_eq!(var(with(&[(name, bad)])), name, "{name}={bad}");
        }
    }
}
