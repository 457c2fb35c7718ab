//! Slow-client load ("slowloris"): keeps `--connections` TCP connections to a running
//! `mcp-server-alipay serve --http …` that each send half a request head and then one more byte
//! every `--trickle-ms`, never the blank line that would end it. When the server closes one, it is
//! counted and another takes its place, for `--seconds`.
//!
//! ```sh
//! cargo run --release -p mcp-server-alipay --example slowclients -- \
//!     --addr 127.0.0.1:8080 --connections 3000 --seconds 30
//! ```
//!
//! Meanwhile, once a second, a fresh connection sends a whole `GET /healthz` and the time to its
//! answer is recorded: what a new genuine client waits while the attack holds the connections.
//! The last lines are `slow_opened=… slow_closed_by_server=… still_open=… close_after_s_p50=…
//! close_after_s_max=… fresh_probes=… fresh_wait_ms_p50=… fresh_wait_ms_max=… fresh_failed=…`,
//! after a `closed_per_second=…` timeline (closes in each second since the start).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

#[derive(Parser, Clone)]
#[command(about = "Slow HTTP clients against mcp-server-alipay")]
struct Args {
    /// host:port of the server.
    #[arg(long)]
    addr: String,
    /// Slow connections kept open (reopened when the server closes one).
    #[arg(long, default_value_t = 3000)]
    connections: usize,
    /// How long to keep the attack up.
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// One more header byte every this many milliseconds.
    #[arg(long, default_value_t = 1000)]
    trickle_ms: u64,
}

const HALF_HEAD: &[u8] =
    b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Slow: ";

#[derive(Default)]
struct Tally {
    opened: u64,
    connect_failed: u64,
    /// Seconds from the TCP connect to the server's close (EOF or reset), and when it came.
    closes: Vec<(f64, f64)>,
    fresh_ms: Vec<f64>,
    fresh_failed: u64,
}

/// One slow connection: `Some(seconds until closed by the server)`, `None` if still open at `end`.
async fn slow(addr: &str, trickle: Duration, end: Instant) -> Result<Option<f64>, ()> {
    let Ok(Ok(mut tcp)) =
        tokio::time::timeout(Duration::from_secs(30), TcpStream::connect(addr)).await
    else {
        return Err(());
    };
    let connected = Instant::now();
    if tcp.write_all(HALF_HEAD).await.is_err() {
        return Ok(Some(0.0));
    }
    let mut buf = [0u8; 1024];
    let mut tick = tokio::time::interval_at((connected + trickle).into(), trickle);
    loop {
        tokio::select! {
            read = tcp.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Ok(Some(connected.elapsed().as_secs_f64())),
                Ok(_) => {} // an error answer; the close follows
            },
            _ = tick.tick() => {
                if tcp.write_all(b"x").await.is_err() {
                    return Ok(Some(connected.elapsed().as_secs_f64()));
                }
            }
            () = tokio::time::sleep_until(end.into()) => return Ok(None),
        }
    }
}

/// A whole `GET /healthz` on a fresh connection: milliseconds to the answer's first bytes.
async fn fresh(addr: &str) -> Option<f64> {
    let t0 = Instant::now();
    let probe = async {
        let mut tcp = TcpStream::connect(addr).await.ok()?;
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut buf = [0u8; 64];
        let n = tcp.read(&mut buf).await.ok()?;
        buf[..n].starts_with(b"HTTP/1.1 200").then_some(())
    };
    tokio::time::timeout(Duration::from_secs(60), probe)
        .await
        .ok()
        .flatten()
        .map(|()| t0.elapsed().as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.seconds);
    let trickle = Duration::from_millis(args.trickle_ms);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut still_open = 0u64;
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let (addr, tally) = (args.addr.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                tally.lock().unwrap().opened += 1;
                match slow(&addr, trickle, end).await {
                    Err(()) => {
                        tally.lock().unwrap().connect_failed += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Ok(Some(after)) => {
                        let at = start.elapsed().as_secs_f64();
                        tally.lock().unwrap().closes.push((after, at));
                    }
                    Ok(None) => return true,
                }
            }
            false
        }));
    }
    let probes = {
        let (addr, tally) = (args.addr.clone(), tally.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            while Instant::now() + Duration::from_secs(1) < end {
                let wait = fresh(&addr).await;
                {
                    let mut t = tally.lock().unwrap();
                    match wait {
                        Some(ms) => t.fresh_ms.push(ms),
                        None => t.fresh_failed += 1,
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    for task in tasks {
        if task.await.unwrap_or(false) {
            still_open += 1;
        }
    }
    let _ = probes.await;
    let mut t = std::mem::take(&mut *tally.lock().unwrap());
    let seconds = args.seconds.ceil() as usize;
    let mut per_second = vec![0u64; seconds + 1];
    for &(_, at) in &t.closes {
        per_second[(at as usize).min(seconds)] += 1;
    }
    let mut after: Vec<f64> = t.closes.iter().map(|c| c.0).collect();
    after.sort_by(f64::total_cmp);
    t.fresh_ms.sort_by(f64::total_cmp);
    let pct = |v: &[f64], p: f64| -> f64 {
        if v.is_empty() {
            return 0.0;
        }
        v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
    };
    println!(
        "closed_per_second={}",
        per_second
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    println!(
        "slow_opened={} connect_failed={} slow_closed_by_server={} still_open={} close_after_s_min={:.1} close_after_s_p50={:.1} close_after_s_max={:.1}",
        t.opened,
        t.connect_failed,
        t.closes.len(),
        still_open,
        after.first().copied().unwrap_or(0.0),
        pct(&after, 0.5),
        after.last().copied().unwrap_or(0.0),
    );
    println!(
        "fresh_probes={} fresh_wait_ms_p50={:.1} fresh_wait_ms_max={:.1} fresh_failed={}",
        t.fresh_ms.len(),
        pct(&t.fresh_ms, 0.5),
        t.fresh_ms.last().copied().unwrap_or(0.0),
        t.fresh_failed
    );
}
