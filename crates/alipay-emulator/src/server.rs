//! Starting and stopping an emulator: routes, the HTTP server, the notifier.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use alipay_openapi::PublicKey;
use axum::Router;
use axum::response::Html;
use axum::routing::{get, post};
use tokio::task::JoinHandle;

use crate::config::{EmulatorConfig, is_alipay_user_id};
use crate::in_process::InProcessGateway;
use crate::persist::{PersistError, StateFile};
use crate::shared::Shared;
use crate::{checkout, control, expiry, notifier, router};

/// How long `shutdown` waits for open connections before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why an emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("invalid app {app_id:?}: {reason}")]
    InvalidApp { app_id: String, reason: String },
    #[error(transparent)]
    State(#[from] PersistError),
    #[error("cannot read the listener's address: {0}")]
    Listener(std::io::Error),
}

/// The emulator; see [`Emulator::start`].
pub struct Emulator;

/// A started emulator. Dropping it stops it too (without waiting); prefer [`RunningEmulator::shutdown`].
pub struct RunningEmulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Option<JoinHandle<()>>,
    notifier: Option<JoinHandle<()>>,
    sweeper: Option<JoinHandle<()>>,
    in_process: InProcessGateway,
}

impl Emulator {
    /// Serve on `listener` until shutdown. State is loaded from `config.state_dir` when set.
    pub async fn start(
        config: EmulatorConfig,
        listener: tokio::net::TcpListener,
    ) -> Result<RunningEmulator, EmulatorError> {
        let apps = validate_apps(&config)?;
        let addr = listener.local_addr().map_err(EmulatorError::Listener)?;
        let (store, state_file) = match &config.state_dir {
            Some(dir) => {
                let (file, store) = StateFile::open(dir)?;
                tracing::info!("state kept in {}", file.path().display());
                (store, Some(file))
            }
            None => (Default::default(), None),
        };
        let shared = Arc::new(Shared::new(
            config.platform_key,
            apps,
            config.notify_retry,
            config.timestamp_skew,
            config.notify_timeout,
            base_url(addr),
            store,
            state_file,
        ));
        let app = routes(shared.clone());
        let in_process = InProcessGateway::new(app.clone(), shared.base_url.clone());
        let stop = shared.shutdown.clone();
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned());
            if let Err(e) = serve.await {
                tracing::error!("the emulator's HTTP server stopped: {e}");
            }
        });
        let notifier = tokio::spawn(notifier::run(shared.clone()));
        let sweeper = tokio::spawn(expiry::run(shared.clone()));
        tracing::info!("alipay-emulator listening on {}", shared.base_url);
        Ok(RunningEmulator {
            addr,
            shared,
            server: Some(server),
            notifier: Some(notifier),
            sweeper: Some(sweeper),
            in_process,
        })
    }
}

fn validate_apps(
    config: &EmulatorConfig,
) -> Result<HashMap<String, crate::config::AppConfig>, EmulatorError> {
    let mut apps = HashMap::new();
    for app in &config.apps {
        let invalid = |reason: &str| EmulatorError::InvalidApp {
            app_id: app.app_id.clone(),
            reason: reason.to_string(),
        };
        if app.app_id.is_empty() || app.app_id.len() > 32 {
            return Err(invalid("the app id must be 1 to 32 characters"));
        }
        if !app.app_id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid("the app id must be printable ASCII without spaces"));
        }
        if !is_alipay_user_id(&app.seller_id) {
            return Err(invalid("seller_id must be 2088 followed by 12 digits"));
        }
        if apps.insert(app.app_id.clone(), app.clone()).is_some() {
            return Err(invalid("registered twice"));
        }
    }
    Ok(apps)
}

/// The URL clients use: a wildcard bind is reached through loopback.
fn base_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/gateway.do",
            get(router::gateway_do).post(router::gateway_do),
        )
        .route("/qr/{token}", get(checkout::qr))
        .route("/qr/{token}/pic.png", get(checkout::qr_image))
        .route("/cashier/{token}/pay", post(checkout::pay))
        .route("/bill/{token}", get(router::bill_download))
        .route("/__emulator/keys", get(control::keys))
        .route(
            "/__emulator/clock",
            get(control::clock).post(control::move_clock),
        )
        .route("/__emulator/apps", get(control::apps))
        .route(
            "/__emulator/requests",
            get(control::requests).delete(control::clear_requests),
        )
        .route(
            "/__emulator/faults",
            get(control::faults)
                .post(control::add_fault)
                .delete(control::clear_faults),
        )
        .route(
            "/__emulator/apps/{app_id}/trades",
            get(control::list_trades),
        )
        .route(
            "/__emulator/apps/{app_id}/trades/{out_trade_no}",
            get(control::trade),
        )
        .route(
            "/__emulator/apps/{app_id}/trades/{out_trade_no}/{action}",
            post(control::act),
        )
        .route("/", get(index))
        .with_state(shared)
}

async fn index() -> Html<&'static str> {
    Html(concat!(
        "<!DOCTYPE html><meta charset=\"utf-8\"><title>alipay-emulator</title>",
        "<h1>alipay-emulator</h1><p>An offline Alipay OpenAPI v2 gateway. ",
        "Point an SDK at <code>/gateway.do</code>; the control API is under <code>/__emulator/</code> ",
        "(<a href=\"/__emulator/keys\">keys</a>, <a href=\"/__emulator/apps\">apps</a>, ",
        "<a href=\"/__emulator/requests\">requests</a>, <a href=\"/__emulator/faults\">faults</a>, ",
        "<a href=\"/__emulator/clock\">clock</a>).</p>"
    ))
}

/// The running gateway's clock, for a process that embeds it (the clock tests move with
/// `POST /__emulator/clock`), read without a request.
#[derive(Clone)]
pub struct ClockHandle(Arc<Shared>);

impl ClockHandle {
    /// The gateway's now, in Beijing time.
    pub fn now(&self) -> chrono::DateTime<chrono::FixedOffset> {
        self.0.clock.now()
    }
}

impl RunningEmulator {
    /// Its clock, readable in process.
    pub fn clock(&self) -> ClockHandle {
        ClockHandle(self.shared.clone())
    }

    /// The gateway for this process's own client: the same routes, no socket (see
    /// [`InProcessGateway`]).
    pub fn in_process(&self) -> InProcessGateway {
        self.in_process.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// `http://127.0.0.1:PORT/gateway.do`.
    pub fn gateway_url(&self) -> String {
        format!("{}/gateway.do", self.shared.base_url)
    }

    /// The platform ("Alipay") public key merchants verify answers and notifications with.
    pub fn alipay_public_key(&self) -> PublicKey {
        self.shared.platform_key.public_key().clone()
    }

    /// Stop accepting, release held answers, let open requests finish (at most 10 s), stop the
    /// notifier and the expiry sweep, then fold the journal into the snapshot. Pending
    /// notifications stay in the state and resume on the next start.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.cancel();
        if let Some(server) = self.server.take() {
            let abort = server.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, server).await.is_err() {
                tracing::warn!("open connections did not finish in time; closing them");
                abort.abort();
            }
        }
        if let Some(notifier) = self.notifier.take() {
            let _ = notifier.await;
        }
        if let Some(sweeper) = self.sweeper.take() {
            let _ = sweeper.await;
        }
        self.shared.compact();
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_binds_are_reached_through_loopback() {
        assert_eq!(
            base_url("0.0.0.0:8765".parse().unwrap()),
            "http://127.0.0.1:8765"
        );
        assert_eq!(base_url("[::]:80".parse().unwrap()), "http://[::1]:80");
        assert_eq!(
            base_url("127.0.0.2:1".parse().unwrap()),
            "http://127.0.0.2:1"
        );
    }
}
