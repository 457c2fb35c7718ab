//! MCP on stdio: the default transport, for desktop clients that spawn the server. Never writes
//! anything but JSON-RPC to stdout.

use std::process::ExitCode;

use rmcp::ServiceExt as _;

use crate::app::App;
use crate::config::Config;
use crate::mcp::{AlipayMcp, Served};

/// How long a start puts off the app's start while the handshake is answered.
const START_AFTER_HANDSHAKE: std::time::Duration = std::time::Duration::from_millis(50);

/// Serve one MCP session on stdin/stdout until it ends or SIGTERM/SIGINT.
pub async fn run(config: Config) -> ExitCode {
    // Answer `initialize` and `tools/list` at once: they need only the configuration. The
    // sockets are bound first (the notify receiver's, the approval pages', and in local mode the
    // embedded gateway's), so whatever reaches them queues; the keys, the ledger, the gateway and
    // the HTTP client start after the first answers, and the calls that need them wait.
    let (served, ready) = Served::starting(&config);
    let bound = match App::bind(config, crate::app::ApprovalMount::OwnListener).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("mcp-server-alipay: {e}");
            return ExitCode::FAILURE;
        }
    };
    let start = async move {
        let app = bound.start().await;
        match &app {
            Ok(app) => tracing::info!(
                env = app.config.env.as_str(),
                tools = app.config.tools.len(),
                "serving MCP on stdio"
            ),
            Err(e) => eprintln!("mcp-server-alipay: {e}"),
        }
        ready.set(app.clone());
        app
    };
    // The app starts once a call needs it or a moment after start-up, whichever is first, not
    // beside the first answers: on two cores they compete, and the client waits for `tools/list`
    // (a start-up to it took 1 ms less in prod, 2 ms in local mode; docs/benchmarks.md).
    let starting = {
        let served = served.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = served.wanted() => {}
                () = tokio::time::sleep(START_AFTER_HANDSHAKE) => {}
            }
            start.await
        })
    };
    let start_failed = {
        let served = served.clone();
        async move {
            if served.started().await.is_ok() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::pin!(start_failed);
    let code = tokio::select! {
        result = AlipayMcp::new(served.clone()).serve(rmcp::transport::stdio()) => match result {
            Ok(running) => tokio::select! {
                _ = running.waiting() => ExitCode::SUCCESS,
                _ = crate::terminated() => ExitCode::SUCCESS,
                _ = &mut start_failed => ExitCode::FAILURE,
            },
            Err(e) => {
                if served.started().await.is_ok() {
                    eprintln!("mcp-server-alipay: MCP handshake failed: {e}");
                }
                ExitCode::FAILURE
            }
        },
        _ = &mut start_failed => ExitCode::FAILURE,
        _ = crate::terminated() => ExitCode::SUCCESS,
    };
    if let Ok(Ok(app)) = starting.await {
        app.shutdown().await;
    }
    code
}
