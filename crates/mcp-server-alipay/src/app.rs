//! The running server, wired: the configuration, the services (the Alipay client pointed at
//! Alipay or the embedded gateway, the ledger, the guardrails), the notify receiver, the resource
//! subscribers and the background jobs. One `App` serves every MCP session (stdio, or each HTTP
//! session or request).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use alipay_openapi::{AlipayClient, ClientConfig, Merchant};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Env};
use crate::confirm::PendingConfirmations;
use crate::domain::AppScope;
use crate::ledger::{Ledger, PostgresLedger, PostgresOptions, SqliteLedger};
use crate::local::{self, LocalGateway};
use crate::notify_receiver;
use crate::service::Services;
use crate::service::approvals::ApprovalSettings;
use crate::subscriptions::Subscriptions;

pub struct App {
    pub config: Config,
    pub services: Services,
    pub subscriptions: Arc<Subscriptions>,
    pub confirmations: PendingConfirmations,
    /// The refund approval view's one-time grants (MCP Apps hosts only).
    pub view_grants: crate::apps::grants::ViewGrants,
    local: Mutex<Option<LocalGateway>>,
    stop: CancellationToken,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// `subscriptions/listen` streams open now (HTTP shutdown waits for calls, not for these).
    listen_streams: AtomicUsize,
}

/// One open `subscriptions/listen` stream, counted while it lives.
pub struct ListenStream<'a>(&'a AtomicUsize);

impl Drop for ListenStream<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The notify receiver's socket, bound (cheap, and before any MCP answer: from then on Alipay's
/// notifications queue up even while the server is still starting), where refund approval
/// pages are served, and, in local mode, the claim on the embedded gateway (its listener bound).
pub struct BoundApp {
    config: Config,
    gateway: Option<local::GatewayClaim>,
    notify_listener: Option<tokio::net::TcpListener>,
    approval_listener: Option<tokio::net::TcpListener>,
    /// What approval links start with (`None`: no approval pages).
    approval_base: Option<String>,
}

/// Where refund approval pages are served, when `AP_REFUND_CONFIRM` is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApprovalMount {
    /// On a loopback listener of their own (`AP_APPROVAL_LISTEN`): stdio mode.
    OwnListener,
    /// On the Streamable HTTP listener at this address.
    Http(SocketAddr),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl App {
    /// Bind, then start. Any failure is one line for stderr.
    pub async fn start(config: Config, mount: ApprovalMount) -> Result<Arc<Self>, String> {
        Self::bind(config, mount).await?.start().await
    }

    /// Bind the notify receiver (and the approval pages' listener, in stdio mode), and claim the
    /// embedded gateway in local mode.
    pub async fn bind(config: Config, mount: ApprovalMount) -> Result<BoundApp, String> {
        let gateway = match config.credentials {
            None => Some(local::claim(&config).await?),
            Some(_) => None,
        };
        let notify_listener = match config.notify_listen {
            None => None,
            Some(addr) => Some(bind_notify(addr, config.env == Env::Local).await?),
        };
        let (approval_listener, served_at) = match (config.guard.refund_confirm, mount) {
            (false, _) => (None, None),
            (true, ApprovalMount::Http(addr)) => (None, Some(addr)),
            (true, ApprovalMount::OwnListener) => match config.approval.listen {
                None => (None, None),
                Some(addr) => {
                    let listener = bind_local(addr, "AP_APPROVAL_LISTEN").await?;
                    let at = listener.local_addr().ok();
                    (Some(listener), at)
                }
            },
        };
        let approval_base = served_at.map(|addr| {
            config
                .approval
                .base_url
                .clone()
                .unwrap_or_else(|| format!("http://{addr}"))
        });
        Ok(BoundApp {
            config,
            gateway,
            notify_listener,
            approval_listener,
            approval_base,
        })
    }
}

impl BoundApp {
    /// Open the ledger, start the embedded gateway (local mode) and the notify receiver, build the
    /// client, start the background jobs. Any failure is one line for stderr.
    pub async fn start(self) -> Result<Arc<App>, String> {
        let Self {
            mut config,
            gateway,
            notify_listener,
            approval_listener,
            approval_base,
        } = self;
        let notify_addr = notify_listener.as_ref().and_then(|l| l.local_addr().ok());
        if let (Some(addr), Env::Local, None) = (notify_addr, config.env, &config.notify_url) {
            // Local mode: the embedded gateway notifies our own receiver.
            config.notify_url = Some(notify_receiver::notify_url(addr));
        }

        let (client, local) = connect(&config, gateway).await?;
        let clock = gateway_clock(local.as_ref());
        let scope = AppScope {
            env: config.env,
            app_id: client.config().merchant.app_id.clone(),
        };
        let ledger = open_ledger(&config, &scope).await?;
        let services = Services {
            client,
            ledger,
            guard: config.guard.clone(),
            timeout: config.timeout,
            order_ttl_minutes: config.order_ttl_minutes,
            agent_id: config
                .agent_id
                .clone()
                .unwrap_or_else(|| scope.app_id.clone()),
            clock,
            waits: Default::default(),
            approvals: approval_base.map(|base_url| ApprovalSettings {
                base_url,
                ttl_minutes: config.approval.ttl_minutes,
                pin: config.approval.pin.clone(),
            }),
        };
        let app = Arc::new(App {
            config,
            services,
            subscriptions: Arc::new(Subscriptions::default()),
            confirmations: PendingConfirmations::default(),
            view_grants: Default::default(),
            local: Mutex::new(local),
            stop: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
            listen_streams: AtomicUsize::new(0),
        });
        if let Some(listener) = notify_listener {
            let stop = app.stop.clone();
            let task = tokio::spawn(notify_receiver::serve(
                listener,
                app.services.clone(),
                async move { stop.cancelled().await },
            ));
            app.track(task);
            tracing::info!(addr = ?notify_addr, "notify receiver listening");
        }
        if let Some(listener) = approval_listener {
            let stop = app.stop.clone();
            let at = listener.local_addr().ok();
            app.track(tokio::spawn(crate::approval_page::serve(
                listener,
                app.services.clone(),
                async move { stop.cancelled().await },
            )));
            tracing::info!(addr = ?at, "refund approval pages listening");
        }
        if app.services.approvals.is_some() {
            // Approvals nobody decided in time settle as not sent (and stop counting against
            // the limits), whether or not anyone opens their page again.
            let services = app.services.clone();
            app.track(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                    crate::service::approvals::sweep(&services).await;
                }
            }));
        }
        app.track(tokio::spawn(forward_changes(
            app.services.ledger.clone(),
            app.subscriptions.clone(),
        )));
        if !app.config.outbox.targets.is_empty() {
            app.track(tokio::spawn(crate::outbox::run(
                app.services.ledger.clone(),
                Arc::new(app.config.outbox.clone()),
            )));
        }
        let tells_expiries = app.config.outbox.kinds().into_iter().any(|t| {
            crate::domain::outbox::receives(t, crate::domain::outbox::EventKind::OrderExpired)
        });
        if tells_expiries {
            // Links nobody opened expire with no word from Alipay: ask, and tell their end.
            let services = app.services.clone();
            app.track(tokio::spawn(async move {
                let mut sweeper = crate::service::expiry::Sweeper::default();
                loop {
                    tokio::time::sleep(crate::service::expiry::SWEEP_EVERY).await;
                    sweeper.sweep(&services).await;
                }
            }));
        }
        let (services, every) = (app.services.clone(), app.config.reconcile_every);
        app.track(tokio::spawn(async move {
            use crate::service::reconcile::{Reconciled, reconcile};
            let done = reconcile(&services).await;
            tracing::info!(?done, "start-up reconciliation");
            // Then periodically: another process sharing the ledger may die with refunds unsettled.
            loop {
                tokio::time::sleep(every).await;
                let done = reconcile(&services).await;
                if done != Reconciled::default() {
                    tracing::info!(?done, "periodic reconciliation");
                }
            }
        }));
        Ok(app)
    }
}

/// Tell the subscribers of an order's resource that it changed, as the ledger commits changes.
async fn forward_changes(ledger: Arc<dyn Ledger>, subscriptions: Arc<Subscriptions>) {
    let mut changes = ledger.changes();
    loop {
        match changes.recv().await {
            Ok(change) => {
                let uri = crate::resources::order_uri(&change.out_trade_no);
                // A slow client must not hold up the next change.
                let subscriptions = subscriptions.clone();
                tokio::spawn(async move {
                    let sent = subscriptions.resource_updated(&uri).await;
                    tracing::info!(%uri, subscribers = sent, "resource updated");
                });
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "resource updates lagged behind the ledger");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

impl App {
    /// Count a `subscriptions/listen` stream for as long as the returned guard lives.
    pub fn listen_stream(&self) -> ListenStream<'_> {
        self.listen_streams.fetch_add(1, Ordering::SeqCst);
        ListenStream(&self.listen_streams)
    }

    pub fn listen_streams(&self) -> usize {
        self.listen_streams.load(Ordering::SeqCst)
    }

    fn track(&self, task: tokio::task::JoinHandle<()>) {
        lock(&self.tasks).push(task);
    }

    /// Stop the receiver and background tasks, then the embedded gateway (flushing its state).
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        let local = lock(&self.local).take();
        if let Some(local) = local {
            local.shutdown().await;
        }
    }
}

/// What the model is told at initialisation (known from the configuration alone).
pub fn instructions(env: Env, tools: &[crate::tools::ToolKind]) -> String {
    let mut text = String::from(
        "Alipay (支付宝) payments. Create a payment link (create-mobile-alipay-payment for phones, \
         create-web-page-alipay-payment for desktop browsers, create-qrcode-alipay-payment for a QR code) \
         and give it to the buyer. ",
    );
    if tools.contains(&crate::tools::ToolKind::WaitPay) {
        text.push_str(
            "Then call wait-for-alipay-payment with its outTradeNo: it returns the moment the buyer pays \
             (or after up to 50 s with the status; call it again until the order expires). ",
        );
    }
    text.push_str(
        "query-alipay-payment and the resource alipay://orders/{outTradeNo} (subscribe to hear of changes) \
         say where it stands: TRADE_SUCCESS means paid. Refund with refund-alipay-payment; a retried refund \
         must reuse its outRequestNo. Amounts are yuan with at most two decimals. Leave outTradeNo out to \
         have the server mint a unique order number. Every order expires (expiresInMinutes, at most the \
         operator's AP_ORDER_TTL_MINUTES).",
    );
    if env == Env::Local {
        text.push_str(" This server runs in LOCAL mode on an embedded Alipay gateway: no real money moves; links open a test cashier where anyone can click pay.");
    }
    text
}

/// The clock that expires orders and says which days have a bill: the embedded gateway's in local
/// mode (tests move it; read in process when this process runs it, over its control API when
/// another does), else real Beijing time.
pub fn gateway_clock(local: Option<&LocalGateway>) -> Arc<dyn crate::service::GatewayClock> {
    match local {
        Some(gateway) => match gateway.clock() {
            Some(clock) => Arc::new(crate::service::EmbeddedClock(clock)),
            None => Arc::new(crate::service::EmulatorClock::new(
                gateway.gateway_url().trim_end_matches("/gateway.do"),
            )),
        },
        None => Arc::new(crate::service::SystemClock),
    }
}

/// The ledger of `scope`, delivering events to the configured targets: on PostgreSQL with
/// `AP_DATABASE_URL` (shared by any number of instances), else SQLite, one file per environment
/// (local mode's lives with its keys). Each row knows its app and environment, so apps sharing a
/// store never see each other's orders.
pub async fn open_ledger(config: &Config, scope: &AppScope) -> Result<Arc<dyn Ledger>, String> {
    let targets = config.outbox.kinds();
    if let Some(db) = &config.database {
        let options = PostgresOptions {
            url: db.url.expose().to_string(),
            ca_file: db.ca_file.clone(),
            schema: None,
            pool_size: db.pool_size,
        };
        let ledger = PostgresLedger::connect(&options, scope.clone())
            .await
            .map_err(|e| format!("AP_DATABASE_URL: {e}"))?;
        return Ok(Arc::new(ledger.with_outbox(&targets)));
    }
    let path = config.env_dir().join("ledger.db");
    let ledger = SqliteLedger::open(&path, scope.clone(), &config.data_dir.join("instances"))
        .await
        .map_err(|e| format!("AP_DATA_DIR: {e} ({})", path.display()))?;
    Ok(Arc::new(ledger.with_outbox(&targets)))
}

/// The Alipay client the configuration asks for: the merchant's app at Alipay, or, in local mode,
/// our app at the embedded gateway (started here, on `claim` or a claim taken now). `doctor` and
/// `reconcile` use this alone.
pub async fn connect(
    config: &Config,
    claim: Option<local::GatewayClaim>,
) -> Result<(AlipayClient, Option<LocalGateway>), String> {
    let (merchant, alipay_public_key, gateway_url, local) = match &config.credentials {
        Some(creds) => (
            Merchant {
                app_id: creds.app_id.clone(),
                private_key: creds
                    .app_key
                    .load()
                    .map_err(|e| format!("AP_APP_KEY: {}", e.problem))?,
                sign_type: config.sign_type,
                app_auth_token: config
                    .app_auth_token
                    .as_ref()
                    .map(|t| t.expose().to_string()),
            },
            creds.alipay_public_key.clone(),
            config.remote_gateway(),
            None,
        ),
        None => {
            let claim = match claim {
                Some(claim) => claim,
                None => local::claim(config).await?,
            };
            let gateway = local::start(config, claim).await?;
            (
                Merchant {
                    app_id: gateway.app_id.clone(),
                    private_key: gateway.app_key.clone(),
                    sign_type: config.sign_type,
                    app_auth_token: None,
                },
                gateway.alipay_public_key.clone(),
                gateway.gateway_url(),
                Some(gateway),
            )
        }
    };
    let mut client_config = ClientConfig::new(merchant, alipay_public_key, gateway_url);
    client_config.notify_url = config.notify_url.clone();
    client_config.return_url = config.return_url.clone();
    client_config.timeout = config.timeout;
    client_config.connect_timeout = config.timeout.min(std::time::Duration::from_secs(3));
    let client = match local.as_ref().and_then(LocalGateway::in_process) {
        Some(gateway) => AlipayClient::with_transport(client_config, Arc::new(gateway)),
        None => AlipayClient::new(client_config)
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?,
    };
    Ok((client, local))
}

/// Bind a loopback listener of ours, falling back to a free port when the address is taken.
async fn bind_local(addr: SocketAddr, var: &str) -> Result<tokio::net::TcpListener, String> {
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(e) => {
            tracing::warn!(%addr, error = %e, "{var}: port taken; using a free port");
            tokio::net::TcpListener::bind((addr.ip(), 0))
                .await
                .map_err(|e| format!("{var}: cannot listen on {}: {e}", addr.ip()))
        }
    }
}

/// Bind the notify receiver; in local mode fall back to a free port when the default is taken.
async fn bind_notify(addr: SocketAddr, local: bool) -> Result<tokio::net::TcpListener, String> {
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(e) if local => {
            tracing::warn!(%addr, error = %e, "notify receiver port taken; using a free port");
            tokio::net::TcpListener::bind((addr.ip(), 0))
                .await
                .map_err(|e| format!("AP_NOTIFY_LISTEN: cannot listen on {}: {e}", addr.ip()))
        }
        Err(e) => Err(format!("AP_NOTIFY_LISTEN: cannot listen on {addr}: {e}")),
    }
}
