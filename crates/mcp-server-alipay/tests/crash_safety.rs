//! Crash safety: `kill -9` the server at a random moment of a stream of creates, payments and
//! refunds (20 runs, a seeded RNG: set `CRASH_SEED` to replay one), restart it on the same data
//! directory and gateway port, and check that
//!
//! - every order and refund the client saw succeed is in the ledger, with its amount;
//! - after the restart's reconciliation no refund is left pending: each is settled as Alipay
//!   reports it, or, when Alipay does not know it (yet), kept as unknown — still counted against
//!   every limit — until the same call is repeated;
//! - for every order, the gateway's `refund_fee` equals the sum of the ledger's succeeded refunds
//!   (nothing refunded twice, nothing refunded unrecorded);
//! - repeating the call that was cut off (same numbers) converges without moving money twice, and
//!   leaves nothing unsettled.
//!
//! The server is driven with raw JSON-RPC over its stdio so it can be killed mid-call.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::raw::Raw;
use common::*;
use serde_json::{Value, json};

const RUNS: u64 = 20;

/// SplitMix64: small, seedable, the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A call the client made, and what it saw.
#[derive(Clone, Debug)]
enum Op {
    Create {
        no: String,
        tool: &'static str,
        fen: i64,
    },
    Refund {
        no: String,
        req: String,
        fen: i64,
    },
}

fn yuan(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

fn args_of(op: &Op) -> (&'static str, Value) {
    match op {
        Op::Create { no, tool, fen } => (
            tool,
            json!({"outTradeNo":no,"totalAmount":yuan(*fen),"orderTitle":"crash test"}),
        ),
        Op::Refund { no, req, fen } => (
            "refund-alipay-payment",
            json!({"outTradeNo":no,"refundAmount":yuan(*fen),"outRequestNo":req}),
        ),
    }
}

fn succeeded(answer: &Value) -> bool {
    answer["result"]["isError"] != json!(true) && answer["result"].is_object()
}

struct Ledger(rusqlite::Connection);

impl Ledger {
    fn open(dir: &std::path::Path) -> Self {
        Self(rusqlite::Connection::open(dir.join("data/local/ledger.db")).unwrap())
    }

    fn order_fen(&self, no: &str) -> Option<i64> {
        self.0
            .query_row(
                "SELECT amount_fen FROM orders WHERE out_trade_no = ?1",
                [no],
                |r| r.get(0),
            )
            .ok()
    }

    fn refund(&self, req: &str) -> Option<(String, i64)> {
        self.0
            .query_row(
                "SELECT state, amount_fen FROM refunds WHERE out_request_no = ?1",
                [req],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ok()
    }

    fn unsettled(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM refunds WHERE state IN ('pending','unknown')")
    }

    fn pending(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM refunds WHERE state = 'pending'")
    }

    fn count(&self, sql: &str) -> i64 {
        match self.0.query_row(sql, [], |r| r.get(0)) {
            Ok(n) => n,
            // The server opens its ledger on the first call or just after the handshake, so a
            // kill before that leaves no tables yet (and a restart creates them a moment later).
            Err(e) if e.to_string().contains("no such table") => 0,
            Err(e) => panic!("{e}"),
        }
    }

    /// Succeeded refunds per order, in fen.
    fn refunded(&self) -> HashMap<String, i64> {
        let mut stmt = self
            .0
            .prepare("SELECT out_trade_no, SUM(amount_fen) FROM refunds WHERE state = 'succeeded' GROUP BY out_trade_no")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn orders(&self) -> Vec<String> {
        let mut stmt = self.0.prepare("SELECT out_trade_no FROM orders").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}

fn fen_of(text: &Value) -> i64 {
    let t = text.as_str().unwrap_or("0.00");
    let (y, f) = t.split_once('.').unwrap_or((t, "0"));
    y.parse::<i64>().unwrap() * 100 + format!("{f:0<2}")[..2].parse::<i64>().unwrap()
}

/// One run: a stream of calls, a kill at a random moment, a restart, the checks.
async fn run(seed: u64, run: u64) {
    let mut rng = Rng(seed ^ run.wrapping_mul(0xA24B_AED4_963E_E407));
    let dir = TempDir::new(&format!("crash{run}"));
    let mut env = local_env(dir.path(), free_port());
    env.insert("AP_NOTIFY_LISTEN".into(), "off".into());
    env.insert("AP_LOG_ENABLED".into(), "false".into());
    let tag = format!("C{run}");

    let mut server = Raw::start(&env);
    let mut gateway: Option<Gateway> = None;
    let mut seen: Vec<Op> = Vec::new();
    let mut remaining: HashMap<String, i64> = HashMap::new();
    let ops = 4 + rng.below(10);
    let kill_at = rng.below(ops);
    let kill_after = Duration::from_millis(rng.below(25));
    let mut in_flight: Option<Op> = None;
    let mut n_orders = 0;
    let mut n_refunds = 0;
    for i in 0..ops {
        // A refund of a paid order when there is one and the dice say so, else a new order.
        let paid: Vec<(String, i64)> = remaining
            .iter()
            .filter(|(_, r)| **r > 0)
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let op = if !paid.is_empty() && rng.below(2) == 0 {
            let (no, left) = &paid[rng.below(paid.len() as u64) as usize];
            n_refunds += 1;
            Op::Refund {
                no: no.clone(),
                req: format!("{no}_R{n_refunds}"),
                fen: 1 + rng.below(*left as u64) as i64,
            }
        } else {
            n_orders += 1;
            let tool = [
                "create-web-page-alipay-payment",
                "create-mobile-alipay-payment",
                "create-qrcode-alipay-payment",
            ][rng.below(3) as usize];
            Op::Create {
                no: format!("{tag}_{n_orders}"),
                tool,
                fen: 100 + rng.below(9900) as i64,
            }
        };
        let (tool, args) = args_of(&op);
        let id = server.tool(tool, args);
        if i == kill_at {
            in_flight = Some(op.clone());
            if let Some(answer) = server.wait(id, kill_after) {
                if succeeded(&answer) {
                    seen.push(op.clone());
                }
                in_flight = None;
            }
            let written = server.kill();
            if written.iter().any(|m| m["id"] == id && succeeded(m)) {
                seen.push(op);
                in_flight = None;
            }
            break;
        }
        let answer = server
            .wait(id, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("seed {seed} run {run}: no answer to {op:?}"));
        if !succeeded(&answer) {
            continue;
        }
        seen.push(op.clone());
        match &op {
            Op::Create { no, fen, .. } => {
                let url = answer["result"]["structuredContent"]["url"]
                    .as_str()
                    .unwrap()
                    .to_string();
                // A link names the gateway and the app; a QR code URL only the gateway (local mode's app).
                let gw = gateway.get_or_insert_with(|| match url.find("/qr/") {
                    Some(i) => Gateway::new(&url[..i], "9021000000000001"),
                    None => Gateway::from_link(&url),
                });
                gw.open(&url).await;
                gw.pay(no).await;
                remaining.insert(no.clone(), *fen);
            }
            Op::Refund { no, fen, .. } => {
                *remaining.get_mut(no).unwrap() -= fen;
            }
        }
    }

    // Restart on the same data directory and gateway port; reconciliation settles what was cut off.
    let ledger = Ledger::open(dir.path());
    let cut_off = ledger.unsettled();
    let mut server = Raw::start(&env);
    let settled = eventually(20, || async { ledger.pending() == 0 }).await;
    assert!(
        settled,
        "seed {seed} run {run}: refunds left pending after the restart"
    );

    for op in &seen {
        match op {
            Op::Create { no, fen, .. } => {
                assert_eq!(
                    ledger.order_fen(no),
                    Some(*fen),
                    "seed {seed} run {run}: the order {no} the client saw is in the ledger"
                );
            }
            Op::Refund { req, fen, .. } => {
                assert_eq!(
                    ledger.refund(req),
                    Some(("succeeded".to_string(), *fen)),
                    "seed {seed} run {run}: the refund {req} the client saw"
                );
            }
        }
    }
    if let Some(gw) = &gateway {
        agree(gw, &ledger, seed, run).await;
    }
    eprintln!(
        "crash_safety: run {run}: killed {kill_after:?} into call {} of {ops} ({}), {} calls seen succeed, {cut_off} refund(s) left unsettled by the kill and reconciled",
        kill_at + 1,
        match &in_flight {
            Some(Op::Create { tool, .. }) => format!("{tool} cut off"),
            Some(Op::Refund { .. }) => "refund-alipay-payment cut off".to_string(),
            None => "its answer came first".to_string(),
        },
        seen.len()
    );

    // Repeat the call that was cut off: the same numbers converge, nothing moves twice.
    if let Some(op) = &in_flight {
        let (tool, args) = args_of(op);
        let id = server.tool(tool, args);
        let answer = server
            .wait(id, Duration::from_secs(30))
            .expect("an answer after the restart");
        if let Op::Refund { req, fen, .. } = op {
            let text = answer["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if succeeded(&answer) {
                assert_eq!(
                    ledger.refund(req),
                    Some(("succeeded".to_string(), *fen)),
                    "seed {seed} run {run}: {text}"
                );
                assert_eq!(
                    ledger.unsettled(),
                    0,
                    "seed {seed} run {run}: the repeat settled it"
                );
            }
        }
        if let Some(gw) = &gateway {
            agree(gw, &ledger, seed, run).await;
        }
    }
    server.kill();
}

/// The gateway and the ledger agree on every order's refunds.
async fn agree(gw: &Gateway, ledger: &Ledger, seed: u64, run: u64) {
    let refunded = ledger.refunded();
    for no in ledger.orders() {
        let trade = gw.trade(&no).await;
        let at_gateway = if trade.get("refund_fee").is_some() {
            fen_of(&trade["refund_fee"])
        } else {
            0
        };
        assert_eq!(
            refunded.get(&no).copied().unwrap_or(0),
            at_gateway,
            "seed {seed} run {run}: order {no}: ledger and gateway disagree on the refunded amount: {trade}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_loses_nothing_the_client_saw() {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash_safety: CRASH_SEED={seed}");
    let started = Instant::now();
    for r in 0..RUNS {
        run(seed, r).await;
    }
    eprintln!("crash_safety: {RUNS} runs in {:?}", started.elapsed());
}
