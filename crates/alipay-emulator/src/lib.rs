//! A faithful offline Alipay OpenAPI v2 gateway (`gateway.do`): the common checks with Alipay's
//! codes, signed JSON answers for `alipay.trade.query`, `.refund`, `.fastpay.refund.query`,
//! `.close` and `.precreate`, cashier pages for `alipay.trade.wap.pay` / `.page.pay`, a trade state
//! machine, trade bills (`alipay.data.dataservice.bill.downloadurl.query`: GBK CSV files in a
//! zip behind a one-shot link), signed asynchronous notifications with retries, optional
//! persistence, and a control API (`/__emulator/…`) for tests: act as the buyer, move the clock
//! (orders expire as on Alipay), inspect trades and requests, inject faults.
//!
//! Use it as a library ([`Emulator::start`]) or as the `alipay-emulator` binary ([`cli`]). All
//! protocol work (keys, signatures, money, Beijing time) is `alipay-openapi`'s.
//!
//! ```no_run
//! # async fn demo(app_public_key: alipay_openapi::PublicKey) -> Result<(), Box<dyn std::error::Error>> {
//! use alipay_emulator::{AppConfig, Emulator, EmulatorConfig};
//! let config = EmulatorConfig::new(alipay_openapi::PrivateKey::generate()?)
//!     .with_app(AppConfig::new("2021000000000001", app_public_key));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let emulator = Emulator::start(config, listener).await?;
//! println!("AP_GATEWAY_URL={}", emulator.gateway_url());
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```

mod answer;
mod api;
mod bill_links;
mod bill_query;
mod bill_zip;
mod bills;
mod biz;
mod cashier;
mod checkout;
mod checks;
pub mod cli;
mod clock;
mod codes;
mod config;
mod control;
mod expiry;
mod faults;
#[doc(hidden)]
pub mod fuzzing;
mod ids;
mod in_process;
mod journal;
mod model;
mod notice;
mod notifier;
mod persist;
mod requests;
mod router;
mod server;
mod shared;
mod trades;

pub use config::{ALIPAY_NOTIFY_RETRY_SECS, AppConfig, EmulatorConfig, derived_seller_id};
pub use faults::{FaultKind, HUGE_BODY_BYTES};
pub use in_process::InProcessGateway;
pub use journal::JOURNAL_FILE;
pub use persist::{PersistError, STATE_FILE};
pub use server::{ClockHandle, Emulator, EmulatorError, RunningEmulator};
