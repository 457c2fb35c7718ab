//! Load generator: real rmcp MCP clients over Streamable HTTP against a running
//! `mcp-server-alipay serve --http …` in local mode (the embedded gateway answers).
//!
//! ```sh
//! cargo run --release -p mcp-server-alipay --example loadgen -- \
//!     --url http://127.0.0.1:8080/mcp --token T --clients 32 --seconds 10 --tool query-alipay-payment
//! ```
//!
//! Every client is its own MCP client with its own HTTP connection pool (2026-07-28, stateless, by
//! default; `--protocol 2025-06-18` for sessions; `--keep-alive` to reuse connections). Setup, before the clock starts:
//! - `query-alipay-payment`: each client creates its own order, the buyer opens the link and pays
//!   (the embedded gateway's control API), and the client checks one query says `TRADE_SUCCESS`;
//!   then it queries that paid order again and again: the realistic case (an agent checking whether
//!   the buyer paid), and every query is a signed `alipay.trade.query` the gateway verifies, answers
//!   and signs, and the server verifies. Nothing is cached anywhere.
//! - `create-*-alipay-payment`: every call creates a new order with a fresh number (a ledger insert,
//!   a signed link, and for the web page a QR PNG; for the QR tool a signed precreate round trip).
//!
//! - `wait-for-alipay-payment`: each client creates an unpaid order and waits for it over the whole
//!   run (one call, the server polls the gateway every 3 s meanwhile); the last line adds the
//!   polls made in the measured window and the server's CPU per poll, to set against a query's.
//!
//! A call counts as an error when the transport fails, the result is `isError`, or (query) the
//! text is not the paid status. Then `--warmup` seconds unrecorded, `--seconds` recorded; the last
//! line is exactly `calls_per_s=<f> p50_ms=<f> p99_ms=<f> errors=<n>`.

use std::time::{Duration, Instant};

use clap::Parser;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
    ProtocolVersion,
};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt as _, ServiceExt as _};
use serde_json::{Value, json};

#[derive(Parser, Clone)]
#[command(about = "MCP load generator for mcp-server-alipay over Streamable HTTP")]
struct Args {
    /// The MCP endpoint, e.g. http://127.0.0.1:8080/mcp; given again for each instance of a
    /// fleet, the clients are spread over them in turn.
    #[arg(long, required = true)]
    url: Vec<String>,
    /// The server's bearer token (AP_HTTP_TOKEN, or the one it printed).
    #[arg(long)]
    token: String,
    /// Concurrent MCP clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Unmeasured seconds of load before the measurement.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// query-alipay-payment, create-web-page-alipay-payment, create-mobile-alipay-payment or
    /// create-qrcode-alipay-payment.
    #[arg(long, default_value = "query-alipay-payment")]
    tool: String,
    /// 2026-07-28 (stateless) or a legacy version with a session (2025-06-18, 2025-11-25, …).
    #[arg(long, default_value = "2026-07-28")]
    protocol: String,
    /// The server's process id (same machine): also report its CPU time per call; given again
    /// for each instance (and any other process the calls keep busy), their sum.
    #[arg(long)]
    server_pid: Vec<u32>,
    /// Create this file once every client is set up (the warm-up starts): lets a script start
    /// something else, such as an attack, only then (`scripts/bench-slow-clients.sh`).
    #[arg(long)]
    ready_file: Option<std::path::PathBuf>,
    /// Keep each client's HTTP connections open between calls, as clients on Node's `fetch`
    /// (the TypeScript SDK) do; without it, rmcp's default client opens a connection per call.
    #[arg(long)]
    keep_alive: bool,
    /// Instead of a load: create this many orders and pay each (as the query's setup does), with
    /// `--clients` at a time, then exit; a day's bill with that many rows
    /// (`scripts/bench-reconcile.sh`).
    #[arg(long, default_value_t = 0)]
    paid_orders: usize,
}

#[derive(Clone)]
struct LoadClient {
    version: ProtocolVersion,
}

impl ClientHandler for LoadClient {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("mcp-server-alipay-loadgen", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(self.version.clone())
    }
}

type Client = RunningService<RoleClient, LoadClient>;

async fn connect(args: &Args, url: &str, version: &ProtocolVersion) -> Result<Client, String> {
    let config =
        StreamableHttpClientTransportConfig::with_uri(url.to_string()).auth_header(&args.token);
    let transport = if args.keep_alive {
        StreamableHttpClientTransport::with_client(reqwest::Client::new(), config)
    } else {
        StreamableHttpClientTransport::from_config(config)
    };
    let handler = LoadClient {
        version: version.clone(),
    };
    if *version >= ProtocolVersion::V_2026_07_28 {
        handler
            .serve_with_lifecycle(
                transport,
                ClientLifecycleMode::Discover {
                    preferred_versions: vec![version.clone()],
                },
            )
            .await
            .map_err(|e| format!("connect (2026-07-28): {e}"))
    } else {
        handler
            .serve(transport)
            .await
            .map_err(|e| format!("connect (initialize): {e}"))
    }
}

async fn call(client: &Client, tool: &str, args: Value) -> Result<CallToolResult, String> {
    let Value::Object(map) = args else {
        unreachable!("arguments are objects")
    };
    client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(map))
        .await
        .map_err(|e| e.to_string())
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// An order just created: its payment link, the embedded gateway's base URL and the app id.
struct Created {
    url: String,
    base: String,
    app_id: String,
}

/// Create an unpaid order.
async fn created_order(client: &Client, no: &str) -> Result<Created, String> {
    let created = call(
        client,
        "create-mobile-alipay-payment",
        json!({"outTradeNo": no, "totalAmount": "0.01", "orderTitle": "loadgen"}),
    )
    .await?;
    let url = created
        .structured_content
        .as_ref()
        .and_then(|s| s["url"].as_str())
        .ok_or_else(|| format!("create {no}: no link: {}", text(&created)))?
        .to_string();
    let base = url[..url
        .find("/gateway.do")
        .ok_or("the link is not a gateway link")?]
        .to_string();
    let app_id = url
        .split_once('?')
        .and_then(|(_, q)| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "app_id")
                .map(|(_, v)| v.into_owned())
        })
        .ok_or("no app_id in the link")?;
    Ok(Created { url, base, app_id })
}

/// Create an order, open its link as a buyer would, pay it on the embedded gateway, check it.
async fn paid_order(client: &Client, http: &reqwest::Client, no: &str) -> Result<(), String> {
    let Created { url, base, app_id } = created_order(client, no).await?;
    let opened = http.get(&url).send().await.map_err(|e| e.to_string())?;
    if !opened.status().is_success() {
        return Err(format!("open {no}: {}", opened.status()));
    }
    let paid = http
        .post(format!("{base}/__emulator/apps/{app_id}/trades/{no}/pay"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !paid.status().is_success() {
        return Err(format!(
            "pay {no}: {} (is the server in local mode?)",
            paid.status()
        ));
    }
    let q = call(client, "query-alipay-payment", json!({"outTradeNo": no})).await?;
    if !text(&q).starts_with("交易状态: TRADE_SUCCESS") {
        return Err(format!("query {no} after paying: {}", text(&q)));
    }
    Ok(())
}

/// `--paid-orders N`: N paid orders, `--clients` at a time, each client its own run of numbers.
async fn pay_orders(
    args: &Args,
    version: &ProtocolVersion,
    run: &str,
    http: &reqwest::Client,
) -> std::process::ExitCode {
    let t0 = Instant::now();
    let clients = args.clients.clamp(1, args.paid_orders);
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let (args, version, run, http) =
                (args.clone(), version.clone(), run.to_string(), http.clone());
            tokio::spawn(async move {
                let url = &args.url[i % args.url.len()];
                let client = connect(&args, url, &version).await?;
                let mut n = i;
                while n < args.paid_orders {
                    paid_order(&client, &http, &format!("LG{run}P{n}")).await?;
                    n += clients;
                }
                let _ = client.cancel().await;
                Ok::<_, String>(())
            })
        })
        .collect();
    for task in tasks {
        if let Err(e) = task.await.map_err(|e| e.to_string()).and_then(|r| r) {
            eprintln!("loadgen: paying orders: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    println!(
        "paid_orders={} seconds={seconds:.1} orders_per_s={:.0}",
        args.paid_orders,
        args.paid_orders as f64 / seconds
    );
    std::process::ExitCode::SUCCESS
}

/// The id of the embedded gateway's last logged request (ids count up from 1, never reused).
async fn last_request_id(http: &reqwest::Client, base: &str) -> Option<u64> {
    let log: Value = http
        .get(format!("{base}/__emulator/requests"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    log["requests"]
        .as_array()?
        .iter()
        .filter_map(|r| r["id"].as_u64())
        .max()
        .or(Some(0))
}

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
}

// The load generator shares the machine's cores with the server it measures, so it keeps its own
// cost low: one thread drives every client (no wake-ups handed between threads, which also spares
// the server's threads the interrupts), and the server's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let version = ProtocolVersion::KNOWN_VERSIONS
        .iter()
        .find(|v| v.as_str() == args.protocol)
        .cloned();
    let Some(version) = version else {
        eprintln!("loadgen: unknown --protocol {}", args.protocol);
        return std::process::ExitCode::from(2);
    };
    let tool = args.tool.clone();
    if !matches!(
        tool.as_str(),
        "query-alipay-payment"
            | "create-web-page-alipay-payment"
            | "create-mobile-alipay-payment"
            | "create-qrcode-alipay-payment"
            | "wait-for-alipay-payment"
    ) {
        eprintln!("loadgen: unsupported --tool {tool}");
        return std::process::ExitCode::from(2);
    }
    let run = format!(
        "{:X}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
    );
    let http = reqwest::Client::new();

    if args.paid_orders > 0 {
        return pay_orders(&args, &version, &run, &http).await;
    }
    let waiting = tool == "wait-for-alipay-payment";
    // One wait a client, from the start to just past the end (the tool allows at most 50 s).
    let wait_seconds = (args.warmup + args.seconds + 0.1).ceil() as u64 + 1;
    if waiting && wait_seconds > 50 {
        eprintln!("loadgen: a wait lasts --warmup + --seconds + 2 s, at most 50 s");
        return std::process::ExitCode::from(2);
    }
    let mut gateway = None;

    // Connect every client and set up what it needs, before the clock starts.
    let mut clients = Vec::new();
    for i in 0..args.clients {
        let url = &args.url[i % args.url.len()];
        let client = match connect(&args, url, &version).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("loadgen: client {i}: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        let order = format!("LG{run}Q{i}");
        let setup = match tool.as_str() {
            "query-alipay-payment" => paid_order(&client, &http, &order).await,
            "wait-for-alipay-payment" => created_order(&client, &order).await.map(|created| {
                gateway.get_or_insert(created.base);
            }),
            _ => Ok(()),
        };
        if let Err(e) = setup {
            eprintln!("loadgen: setup: {e}");
            return std::process::ExitCode::FAILURE;
        }
        clients.push((client, order));
    }

    if let Some(path) = &args.ready_file
        && let Err(e) = std::fs::write(path, b"")
    {
        eprintln!("loadgen: --ready-file {}: {e}", path.display());
        return std::process::ExitCode::FAILURE;
    }
    let start = Instant::now() + Duration::from_millis(100);
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.seconds);
    // CPU seconds used during the measured window: (this load generator, the server).
    let server_stat: Vec<String> = args
        .server_pid
        .iter()
        .map(|pid| format!("/proc/{pid}/stat"))
        .collect();
    let window_cpu = tokio::spawn(async move {
        let read = |paths: &Vec<String>| {
            (!paths.is_empty())
                .then(|| paths.iter().map(|p| cpu_seconds(p)).sum::<Option<f64>>())
                .flatten()
        };
        tokio::time::sleep_until(measure_from.into()).await;
        let (me, server) = (cpu_seconds("/proc/self/stat"), read(&server_stat));
        tokio::time::sleep_until(end.into()).await;
        let me = me.zip(cpu_seconds("/proc/self/stat")).map(|(a, b)| b - a);
        let server = server.zip(read(&server_stat)).map(|(a, b)| b - a);
        (me, server)
    });
    // The gateway requests (the waits' polls) made during the measured window.
    let polls = gateway.map(|base| {
        let http = http.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(measure_from.into()).await;
            let first = last_request_id(&http, &base).await;
            tokio::time::sleep_until(end.into()).await;
            Some(last_request_id(&http, &base).await? - first?)
        })
    });
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, (client, order))| {
            let tool = tool.clone();
            let run = run.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(start.into()).await;
                let mut tally = Tally::default();
                let mut seq = 0u64;
                while Instant::now() < end {
                    seq += 1;
                    let arguments = if tool == "query-alipay-payment" {
                        json!({"outTradeNo": order})
                    } else if waiting {
                        json!({"outTradeNo": order, "timeoutSeconds": wait_seconds})
                    } else {
                        json!({"outTradeNo": format!("LG{run}C{i}N{seq}"), "totalAmount": "0.01", "orderTitle": "loadgen"})
                    };
                    let t0 = Instant::now();
                    let outcome = call(&client, &tool, arguments).await;
                    let done = Instant::now();
                    // A wait spans the window: its CPU is what counts, not its calls.
                    if !waiting && (t0 < measure_from || done > end) {
                        continue;
                    }
                    let problem = match &outcome {
                        Err(e) => Some(e.clone()),
                        Ok(r) if r.is_error == Some(true) => Some(text(r)),
                        Ok(r)
                            if tool == "query-alipay-payment"
                                && !text(r).starts_with("交易状态: TRADE_SUCCESS") =>
                        {
                            Some(text(r))
                        }
                        Ok(r) if waiting && !text(r).starts_with("支付结果: 尚未支付") => {
                            Some(text(r))
                        }
                        Ok(_) => None,
                    };
                    tally.latencies.push(done - t0);
                    if let Some(p) = problem {
                        tally.errors += 1;
                        tally.first_error.get_or_insert(p);
                    }
                }
                let _ = client.cancel().await;
                tally
            })
        })
        .collect();
    let mut all = Tally::default();
    for task in tasks {
        match task.await {
            Ok(t) => {
                all.latencies.extend(t.latencies);
                all.errors += t.errors;
                if all.first_error.is_none() {
                    all.first_error = t.first_error;
                }
            }
            Err(e) => {
                eprintln!("loadgen: a client task failed: {e}");
                all.errors += 1;
            }
        }
    }
    let (cpu, server_cpu) = window_cpu.await.unwrap_or((None, None));
    let polls = match polls {
        Some(task) => task.await.ok().flatten(),
        None => None,
    };
    let window = end.duration_since(measure_from).as_secs_f64();
    all.latencies.sort();
    let pct = |p: f64| -> f64 {
        if all.latencies.is_empty() {
            return 0.0;
        }
        let rank = ((p * all.latencies.len() as f64).ceil() as usize).clamp(1, all.latencies.len());
        all.latencies[rank - 1].as_secs_f64() * 1000.0
    };
    if let Some(e) = &all.first_error {
        eprintln!("loadgen: first error: {e}");
    }
    let calls = all.latencies.len();
    println!(
        "tool={} protocol={} keep_alive={} instances={} clients={} seconds={} calls={} loadgen_cpu_cores={}{}",
        tool,
        version.as_str(),
        args.keep_alive,
        args.url.len(),
        args.clients,
        args.seconds,
        calls,
        cpu.map(|c| format!("{:.2}", c / window))
            .unwrap_or_else(|| "?".into()),
        server_cpu
            .map(|c| format!(
                " server_cpu_cores={:.2} server_cpu_ms_per_call={:.3}",
                c / window,
                c * 1000.0 / calls.max(1) as f64
            ))
            .unwrap_or_default()
    );
    println!(
        "calls_per_s={:.1} p50_ms={:.2} p99_ms={:.2} errors={}",
        all.latencies.len() as f64 / window,
        pct(0.50),
        pct(0.99),
        all.errors
    );
    if waiting {
        println!(
            "waiters={} polls={} server_cpu_ms_per_poll={}",
            args.clients,
            polls.map_or_else(|| "?".into(), |p| p.to_string()),
            server_cpu
                .zip(polls)
                .map(|(c, p)| format!("{:.3}", c * 1000.0 / p.max(1) as f64))
                .unwrap_or_else(|| "?".into()),
        );
    }
    std::process::ExitCode::SUCCESS
}

/// User + system CPU seconds from a `/proc/PID/stat` (clock ticks of 1/100 s).
fn cpu_seconds(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}
