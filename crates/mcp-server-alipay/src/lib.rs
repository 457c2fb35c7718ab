//! `mcp-server-alipay` as a library: everything the binary runs, reachable in process, so tests
//! and benches can drive the service without spawning it. `ARCHITECTURE.md` at the repository root
//! says which module holds what and which way data flows:
//!
//! - [`domain`]: order and refund numbers, statuses, and the money rules, as pure functions;
//! - [`ledger`]: the async storage seam (and its SQLite backend) the rules are applied through;
//! - [`service`]: the flows (create, query, refund, reconcile, notifications) over narrow deps;
//! - [`tools`]: one definition per tool, parsing its arguments and rendering its typed result;
//! - [`mcp`], [`http`], [`stdio`], [`notify_receiver`]: the transports, which route and render.
//! - [`apps`]: MCP Apps, the checkout and refund cards shown by hosts that render views.

pub mod app;
pub mod approval_page;
pub mod apps;
pub mod config;
pub mod confirm;
pub mod doctor;
pub mod domain;
pub mod http;
pub mod keygen;
pub mod ledger;
pub mod local;
pub mod logging;
pub mod mcp;
pub mod notify_receiver;
pub mod outbox;
pub mod qr;
pub mod reconcile_cli;
pub mod resources;
pub mod service;
pub mod stdio;
pub mod subscriptions;
pub mod tools;

/// SIGTERM or SIGINT.
pub async fn terminated() {
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
