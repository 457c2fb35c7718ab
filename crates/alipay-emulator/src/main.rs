//! `alipay-emulator`: an offline Alipay gateway. See `alipay_emulator::cli` for the flags.

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "alipay-emulator",
    version,
    about = "A faithful offline Alipay OpenAPI v2 gateway: signed answers, cashier pages, notifications, a control API"
)]
struct Cli {
    #[command(flatten)]
    args: alipay_emulator::cli::EmulatorArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    // clap prints its own errors and help; its exit code for bad flags is 2.
    let cli = Cli::parse();
    alipay_emulator::cli::run(cli.args).await
}
