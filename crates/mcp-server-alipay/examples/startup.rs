//! Stdio start-up benchmark: from spawning `mcp-server-alipay` to the `tools/list` answer on its
//! stdout, the median of `--runs` starts, and the idle resident memory (`VmRSS` from /proc) after.
//!
//! ```sh
//! cargo build --release -p mcp-server-alipay --bin mcp-server-alipay --example startup
//! target/release/examples/startup --mode local --runs 20
//! target/release/examples/startup --mode prod --runs 20 --keys testdata/alipay-vectors/keys
//! ```
//!
//! The client writes what a desktop client writes at once: `initialize`, `notifications/initialized`
//! and `tools/list` (`--protocol 2026-07-28`: one `tools/list` carrying its version in `_meta`, no
//! handshake). Local mode keeps one data dir across the runs, so the keys and the gateway's state
//! exist after the first start, as on a user's machine; that first start (which also generates
//! the RSA keys) is reported on its own. Prod mode uses the vector test keys and a gateway URL that
//! points nowhere (listing tools needs no network).

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// local (embedded gateway, ledger, notify receiver) or prod (keys from --keys).
    #[arg(long, default_value = "local")]
    mode: String,
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// 2025-06-18 (initialize, initialized, tools/list) or 2026-07-28 (tools/list alone).
    #[arg(long, default_value = "2025-06-18")]
    protocol: String,
    /// The server binary (default: beside this example's directory).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// The vector keys directory (prod mode).
    #[arg(long, default_value = "testdata/alipay-vectors/keys")]
    keys: PathBuf,
    /// How long the server idles after answering before its RSS is read.
    #[arg(long, default_value_t = 500)]
    idle_ms: u64,
}

struct Sample {
    to_tools: Duration,
    rss_kb: u64,
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    let bin = match &args.bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .parent()
            .and_then(|p| p.parent())
            .ok_or("no parent directory")?
            .join("mcp-server-alipay"),
    };
    let dir = std::env::temp_dir().join(format!("mcp-alipay-startup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut env: Vec<(String, String)> = vec![
        ("HOME".into(), dir.display().to_string()),
        ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
        ("AP_DATA_DIR".into(), dir.join("data").display().to_string()),
        (
            "AP_LOG_FILE".into(),
            dir.join("server.log").display().to_string(),
        ),
    ];
    match args.mode.as_str() {
        "local" => {
            env.push(("AP_LOCAL_PORT".into(), "0".into()));
            env.push(("AP_NOTIFY_LISTEN".into(), "127.0.0.1:0".into()));
        }
        "prod" => {
            let key = |name: &str| args.keys.join(name).display().to_string();
            env.push(("AP_APP_ID".into(), "2021000000000001".into()));
            env.push(("AP_APP_KEY".into(), key("app-private-pkcs8.pem")));
            env.push(("AP_PUB_KEY".into(), key("alipay-public-spki.pem")));
            env.push((
                "AP_GATEWAY_URL".into(),
                "http://127.0.0.1:9/gateway.do".into(),
            ));
        }
        other => return Err(format!("unknown --mode {other}")),
    }
    let modern = args.protocol == "2026-07-28";
    let input = if modern {
        concat!(
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#,
            "\n"
        )
        .to_string()
    } else {
        format!(
            concat!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"{}","capabilities":{{}},"clientInfo":{{"name":"startup-bench","version":"0"}}}}}}"#,
                "\n",
                r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#,
                "\n",
                r#"{{"jsonrpc":"2.0","id":2,"method":"tools/list"}}"#,
                "\n"
            ),
            args.protocol
        )
    };

    let first = if args.mode == "local" {
        Some(run_once(&bin, &env, &input, args.idle_ms)?)
    } else {
        None
    };
    let mut samples = Vec::new();
    for _ in 0..args.runs {
        samples.push(run_once(&bin, &env, &input, args.idle_ms)?);
    }
    let _ = std::fs::remove_dir_all(&dir);

    let mut times: Vec<f64> = samples
        .iter()
        .map(|s| s.to_tools.as_secs_f64() * 1000.0)
        .collect();
    times.sort_by(f64::total_cmp);
    let mut rss: Vec<u64> = samples.iter().map(|s| s.rss_kb).collect();
    rss.sort();
    if let Some(f) = first {
        println!(
            "first start (creates the local keys): {:.1} ms, {:.1} MB",
            f.to_tools.as_secs_f64() * 1000.0,
            f.rss_kb as f64 / 1024.0
        );
    }
    println!(
        "mode={} protocol={} runs={} min_ms={:.2} max_ms={:.2}",
        args.mode,
        args.protocol,
        args.runs,
        times[0],
        times[times.len() - 1]
    );
    println!(
        "startup_median_ms={:.2} idle_rss_median_mb={:.1}",
        median(&times),
        rss[rss.len() / 2] as f64 / 1024.0
    );
    Ok(())
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn run_once(
    bin: &PathBuf,
    env: &[(String, String)],
    input: &str,
    idle_ms: u64,
) -> Result<Sample, String> {
    let started = Instant::now();
    let mut child = Command::new(bin)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    stdin
        .write_all(input.as_bytes())
        .map_err(|e| e.to_string())?;
    stdin.flush().map_err(|e| e.to_string())?;
    let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    let to_tools = loop {
        line.clear();
        if stdout.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("the server closed stdout before answering tools/list".into());
        }
        if line.contains(r#""id":2"#) {
            if !line.contains("query-alipay-payment") {
                return Err(format!("unexpected tools/list answer: {line}"));
            }
            break started.elapsed();
        }
    };
    std::thread::sleep(Duration::from_millis(idle_ms));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .map_err(|e| e.to_string())?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("no VmRSS")?;
    drop(stdin); // EOF: the server shuts down
    let _ = child.wait();
    Ok(Sample { to_tools, rss_kb })
}
