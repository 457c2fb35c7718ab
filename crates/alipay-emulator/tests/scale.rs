//! A scale check, not a timing assertion: opens and pays many trades through the HTTP API of a
//! persisted emulator and prints the rate of each block, to show that the cost of a change does
//! not grow with the number of trades kept. Run it by hand:
//!
//! `SCALE_TRADES=10000 cargo test --release -p alipay-emulator --test scale -- --ignored --nocapture`

mod common;

use std::time::{Duration, Instant};

use alipay_openapi::PayKind;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a scale check run by hand; prints rates, asserts none"]
async fn paying_stays_as_fast_as_trades_pile_up() {
    let total: usize = std::env::var("SCALE_TRADES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let block = (total / 10).max(1);
    let dir = std::env::temp_dir().join(format!("alipay-emulator-scale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = config();
    config.state_dir = Some(dir.clone());
    config.notify_retry = vec![Duration::from_secs(3600)];
    let env = start_with(config).await;
    let mut started = Instant::now();
    for i in 1..=total {
        env.paid(PayKind::Wap, &format!("SCALE_{i}"), "1").await;
        if i % block == 0 {
            let rate = block as f64 / started.elapsed().as_secs_f64();
            println!("trades {i:>6}: {rate:>7.1} orders/s (opened and paid)");
            started = Instant::now();
        }
    }
    env.emu.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
