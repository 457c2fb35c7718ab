//! `mcp-server-alipay`: the MCP server (stdio, or Streamable HTTP with `serve --http`), plus
//! `emulator`, `doctor` and `keygen`. This file only parses the command line and wires; everything
//! else is in the library (`lib.rs`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mcp_server_alipay::{config, doctor, http, keygen, logging, stdio};

/// mimalloc, not glibc's malloc: a create (QR image, PNG, base64, JSON) costs 6% less CPU with it
/// (3 interleaved runs); a query is the same within noise; idle RSS is 0.5 MB more
/// (docs/benchmarks.md). Built without transparent huge pages, which kept 10 MB of heap resident.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Reconcile a past day's Alipay trade bill against the ledger (for cron): exit status 1 when
    /// there are discrepancies, 2 when there is no reconciliation.
    Reconcile(ReconcileArgs),
}

#[derive(clap::Args)]
struct ReconcileArgs {
    /// The Beijing day, yyyy-MM-dd (a past day: bills are T+1).
    #[arg(long, value_name = "YYYY-MM-DD")]
    date: String,
    /// Print the report as JSON (as the tool's structured output) instead of text.
    #[arg(long)]
    json: bool,
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
    let code = match cli
        .command
        .unwrap_or_else(|| Command::Serve(ServeArgs::default()))
    {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Emulator(args) => runtime.block_on(alipay_emulator::cli::run(args)),
        Command::Doctor => runtime.block_on(doctor::run()),
        Command::Keygen(args) => keygen::run(&args),
        Command::Reconcile(args) => {
            runtime.block_on(mcp_server_alipay::reconcile_cli::run(&args.date, args.json))
        }
    };
    // Stdin is read by a blocking read nothing can cancel: a server that stops while its client
    // still holds stdin open (SIGTERM, or an app that failed to start after the handshake) would
    // wait in the runtime's drop for a line that never comes. What the server awaits on its way
    // out (the app's shutdown) is done by now; the rest gets a moment.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
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
    match args.http.or(config.http.listen) {
        Some(addr) => http::run(config, addr).await,
        None => stdio::run(config).await,
    }
}
