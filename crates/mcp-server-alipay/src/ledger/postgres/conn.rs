//! Connections: the configuration every connection gets (timeouts, keepalives, the schema), TLS,
//! the pools, transactions, and the dedicated connections (lease, listener) whose socket a
//! synchronous `Drop` can close.

use std::future::poll_fn;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use rustls::{ClientConfig, RootCertStore};
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, Client, Config, IsolationLevel, Notification, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PostgresOptions;
use super::rows::{Fail, Res, Tx, sql_error};
use crate::ledger::{LedgerError, LedgerErrorKind};

/// How long a statement waits for a lock (a row, an advisory lock) before it gives up: as long as
/// SQLite's busy timeout.
const LOCK_TIMEOUT_MS: u32 = 5_000;
/// No ledger statement takes long; one that does is stuck.
const STATEMENT_TIMEOUT_MS: u32 = 30_000;
/// A transaction left open by a stuck process does not hold its locks for ever.
const IDLE_IN_TRANSACTION_MS: u32 = 60_000;
/// A dead peer across a network is noticed after about idle + interval × retries.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_RETRIES: u32 = 3;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const APPLICATION_NAME: &str = "mcp-server-alipay";

/// The longest PostgreSQL identifier, in bytes.
const MAX_IDENTIFIER: usize = 63;

/// A connection as tokio-postgres drives it.
pub(super) type PgConnection =
    tokio_postgres::Connection<Socket, <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream>;

fn refused(message: impl Into<String>) -> LedgerError {
    LedgerError::new(LedgerErrorKind::Refused, message)
}

/// A schema name this server will put in `search_path`: a plain lower-case identifier.
pub(super) fn check_schema(name: &str) -> Result<(), LedgerError> {
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain && name.len() <= MAX_IDENTIFIER {
        Ok(())
    } else {
        Err(refused(format!(
            "the ledger's PostgreSQL schema {name:?} is not a plain name (a-z, 0-9 and _, not starting with a digit, at most {MAX_IDENTIFIER} bytes)"
        )))
    }
}

/// Roots from a PEM file, or the platform's verifier.
fn tls(options: &PostgresOptions, mode: SslMode) -> Result<MakeRustlsConnect, LedgerError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| refused(format!("PostgreSQL TLS: {e}")))?;
    let config = match (&options.ca_file, mode) {
        (Some(path), _) => {
            let unreadable = |e: &dyn std::fmt::Display| {
                refused(format!(
                    "PostgreSQL TLS: cannot read the CA certificates in {}: {e}",
                    path.display()
                ))
            };
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))? {
                let cert = cert.map_err(|e| unreadable(&e))?;
                roots.add(cert).map_err(|e| unreadable(&e))?;
            }
            if roots.is_empty() {
                return Err(unreadable(&"no certificate in it"));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        // Never used: no TLS is asked for.
        (None, SslMode::Disable) => builder
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth(),
        (None, _) => {
            use rustls_platform_verifier::BuilderVerifierExt as _;
            builder
                .with_platform_verifier()
                .map_err(|e| refused(format!("PostgreSQL TLS: the platform's roots: {e}")))?
                .with_no_client_auth()
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

/// How to open connections to the ledger's database.
#[derive(Clone)]
pub(super) struct Connector {
    config: Config,
    tls: MakeRustlsConnect,
    /// Connections for ordinary calls, per handle.
    pool_size: usize,
}

impl Connector {
    pub(super) fn new(options: &PostgresOptions) -> Result<Self, LedgerError> {
        let mut config: Config = options.url.parse().map_err(|e| {
            refused(format!(
                "the PostgreSQL connection string is not one (libpq key=value or postgres:// URL): {}",
                super::rows::with_cause(&e)
            ))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // Unless the connection string says otherwise (tokio-postgres's defaults are these).
        if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
            config.keepalives_idle(KEEPALIVE_IDLE);
        }
        if config.get_keepalives_interval().is_none() {
            config.keepalives_interval(KEEPALIVE_INTERVAL);
        }
        if config.get_keepalives_retries().is_none() {
            config.keepalives_retries(KEEPALIVE_RETRIES);
        }
        if config.get_application_name().is_none() {
            config.application_name(APPLICATION_NAME);
        }
        // Session settings in the startup packet: they hold for the connection's life (a pooled
        // connection is never `RESET`).
        // The server's keepalives too: a host that dies without closing its sockets loses its
        // lease and its order locks in about a minute, not after the kernel's two hours.
        // Custom plans only: a statement is prepared once per pooled connection, and the generic
        // plan PostgreSQL settles on after five runs is kept for the connection's life. Made while
        // the ledger was new and its tables a page long, that plan reads the whole table (0.7 ms a
        // lookup at 10,000 orders, against 0.02 ms planned for its values each time).
        let mut settings = format!(
            "-c lock_timeout={LOCK_TIMEOUT_MS} -c statement_timeout={STATEMENT_TIMEOUT_MS} -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS} -c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3 -c plan_cache_mode=force_custom_plan"
        );
        if let Some(schema) = &options.schema {
            check_schema(schema)?;
            settings.push_str(&format!(" -c search_path={schema}"));
        }
        let settings = match config.get_options() {
            Some(theirs) if !theirs.trim().is_empty() => format!("{theirs} {settings}"),
            _ => settings,
        };
        config.options(settings);
        let tls = tls(options, config.get_ssl_mode())?;
        let pool_size = match options.pool_size {
            0 => super::DEFAULT_POOL_SIZE,
            n => n,
        };
        Ok(Self {
            config,
            tls,
            pool_size,
        })
    }

    /// A pool of connections for ordinary calls, or (`locks`) for order locks.
    pub(super) fn pool(&self, locks: bool) -> Result<Pool, LedgerError> {
        let manager = Manager::from_config(
            self.config.clone(),
            self.tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let (size, wait) = if locks {
            // A separate pool, so that holders never starve the calls they make while they hold;
            // a lock's waiter already waits for the holder, and as long for a connection.
            ((self.pool_size / 2).max(2), None)
        } else {
            (self.pool_size, Some(Duration::from_secs(10)))
        };
        Pool::builder(manager)
            .max_size(size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(wait)
            .create_timeout(Some(CONNECT_TIMEOUT + Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| {
                LedgerError::new(
                    LedgerErrorKind::Unavailable,
                    format!("PostgreSQL pool: {e}"),
                )
            })
    }

    /// A connection of its own (not pooled), named `role` for `pg_stat_activity`, driven by a task
    /// that passes its notifications to `heard`; its socket sits in `line`.
    pub(super) async fn dedicated(
        &self,
        role: &str,
        line: &Line,
        heard: impl FnMut(Notification) + Send + 'static,
    ) -> Result<(Client, tokio::task::JoinHandle<()>), LedgerError> {
        let mut config = self.config.clone();
        let name = format!(
            "{} {role}",
            config.get_application_name().unwrap_or(APPLICATION_NAME)
        );
        config.application_name(name);
        let (client, connection) = config
            .connect(self.tls.clone())
            .await
            .map_err(|e| sql_error(&e))?;
        if !line.install(connection) {
            return Err(LedgerError::new(
                LedgerErrorKind::Unavailable,
                "the ledger is closed",
            ));
        }
        let driver = tokio::spawn(line.clone().drive(heard));
        Ok((client, driver))
    }

    /// A plain client with its connection driven by a task: for tests and tools.
    #[cfg(test)]
    pub(super) async fn plain(&self) -> Result<Client, LedgerError> {
        let (client, connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| sql_error(&e))?;
        tokio::spawn(connection);
        Ok(client)
    }
}

/// A dedicated connection's socket, shared by the task that drives it and the handle, whose
/// `Drop` closes it at once (so the server releases its session locks without waiting for a
/// task to run).
#[derive(Clone, Default)]
pub(super) struct Line(Arc<Mutex<LineState>>);

#[derive(Default)]
struct LineState {
    connection: Option<PgConnection>,
    closed: bool,
}

impl Line {
    /// Put a new connection on the line; false (and it is closed) once the line is.
    fn install(&self, connection: PgConnection) -> bool {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if state.closed {
            return false;
        }
        state.connection = Some(connection);
        true
    }

    /// Close the socket now, and every later connection put on the line.
    pub(super) fn close(&self) {
        let connection = {
            let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            state.closed = true;
            state.connection.take()
        };
        drop(connection);
    }

    /// Drop the current connection (its socket closes), leaving the line open for the next.
    pub(super) fn cut(&self) {
        let connection = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .connection
            .take();
        drop(connection);
    }

    /// Drive the connection until it ends (closed, lost, or an error), passing on notifications.
    async fn drive(self, mut heard: impl FnMut(Notification)) {
        loop {
            let message = poll_fn(|cx| {
                let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
                match state.connection.as_mut() {
                    Some(connection) => connection.poll_message(cx),
                    None => Poll::Ready(None),
                }
            })
            .await;
            match message {
                Some(Ok(AsyncMessage::Notification(n))) => heard(n),
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "a dedicated PostgreSQL connection ended");
                    break;
                }
                None => break,
            }
        }
        // Terminal: drop the socket (poll_message may not be called again).
        drop(
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .connection
                .take(),
        );
    }
}

/// Begin a transaction at READ COMMITTED (`read_only` for calls that only read).
pub(super) async fn begin(client: &mut Object, read_only: bool) -> Res<Tx<'_>> {
    Ok(client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .read_only(read_only)
        .start()
        .await?)
}

/// The error of a write that committed on its own: one the server did not answer (the
/// connection died) may or may not have committed; one the server gave (a constraint) did not.
pub(super) fn write_error(fail: Fail) -> LedgerError {
    match fail {
        Fail::Sql(e) if e.as_db_error().is_none() => LedgerError::new(
            LedgerErrorKind::CommitOutcomeUnknown,
            format!(
                "PostgreSQL: the connection was lost during a write ({}); whether it committed is not known",
                super::rows::with_cause(&e)
            ),
        ),
        other => other.into_ledger(),
    }
}

/// Commit. A write whose COMMIT got no answer (the connection died) may or may not have
/// committed; a refusal by the server (a constraint, a serialization failure) rolled back.
pub(super) async fn commit(tx: Tx<'_>, wrote: bool) -> Result<(), LedgerError> {
    tx.commit().await.map_err(|e| {
        if wrote && e.as_db_error().is_none() {
            LedgerError::new(
                LedgerErrorKind::CommitOutcomeUnknown,
                format!(
                    "PostgreSQL: the connection was lost while committing ({e}); whether it committed is not known"
                ),
            )
        } else {
            Fail::Sql(e).into_ledger()
        }
    })
}
