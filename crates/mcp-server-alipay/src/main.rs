//! `mcp-server-alipay`: the MCP server (stdio, or Streamable HTTP with `serve --http`), plus
//! `emulator`, `doctor` and `keygen`.
//! This file only wires the pieces together.

mod app;
mod config;
mod confirm;
mod doctor;
mod http;
mod instance;
mod keygen;
mod ledger;
mod local;
mod logging;
mod mcp;
mod notify_receiver;
mod qr;
mod resources;
mod subscriptions;
mod tools;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rmcp::ServiceExt as _;

#[derive(Parser)]
#[command(
    name = "mcp-server-alipay",
    version,
    about = "An MCP server for Alipay payments (drop-in for @alipay/mcp-server-alipay); configured by AP_* environment variables"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MCP on stdio (the default), or over Streamable HTTP with --http.
    Serve(ServeArgs),
    /// Run the offline Alipay gateway on its own (same flags as `alipay-emulator`).
    Emulator(alipay_emulator::cli::EmulatorArgs),
    /// Check the configuration: keys, the Alipay public key, a signed round trip to the gateway.
    Doctor,
    /// Make an RSA-2048 application key pair for the Alipay console.
    Keygen(keygen::KeygenArgs),
}

#[derive(clap::Args, Default)]
struct ServeArgs {
    /// Serve MCP over Streamable HTTP at http://ADDR/mcp instead of stdio (or set AP_HTTP_LISTEN).
    #[arg(long, value_name = "ADDR")]
    http: Option<std::net::SocketAddr>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp-server-alipay: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli
        .command
        .unwrap_or_else(|| Command::Serve(ServeArgs::default()))
    {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Emulator(args) => runtime.block_on(alipay_emulator::cli::run(args)),
        Command::Doctor => runtime.block_on(doctor::run()),
        Command::Keygen(args) => keygen::run(&args),
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    let config = match config::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mcp-server-alipay: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(warning) = logging::init(&config) {
        eprintln!("mcp-server-alipay: {warning}");
    }
    if let Some(addr) = args.http.or(config.http.listen) {
        return http::run(config, addr).await;
    }
    // Prod and sandbox: answer `initialize` and `tools/list` at once, they need only the
    // configuration; the ledger and the HTTP client start beside them and the calls that need
    // them wait. Local mode: the embedded gateway is up before the first answer, since a client
    // may open a link or reach the gateway as soon as it has initialized.
    let local = config.credentials.is_none();
    let (served, ready) = mcp::Served::starting(&config);
    let bound = match app::App::bind(config).await {
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
    let starting = if local {
        let app = start.await;
        if app.is_err() {
            return ExitCode::FAILURE;
        }
        tokio::spawn(async move { app })
    } else {
        tokio::spawn(start)
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
        result = mcp::AlipayMcp::new(served.clone()).serve(rmcp::transport::stdio()) => match result {
            Ok(running) => tokio::select! {
                _ = running.waiting() => ExitCode::SUCCESS,
                _ = terminated() => ExitCode::SUCCESS,
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
        _ = terminated() => ExitCode::SUCCESS,
    };
    if let Ok(Ok(app)) = starting.await {
        app.shutdown().await;
    }
    code
}

/// SIGTERM or SIGINT.
async fn terminated() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
