//! Secrets stay secret: the full flow (three kinds of order, the buyer paying, the signed
//! notification, queries, refunds and their replay, a refund query, a close, the order list and
//! resources, gateway faults, a forged notification, bad arguments) with the log file on, then a
//! search of the log file, stderr, every tool result, resource and error for:
//!
//! - both private keys (the application's and the platform's) in every form: bare Base64 PKCS#8
//!   (as stored in `AP_DATA_DIR/local`), Base64 PKCS#1, PEM lines, hex, and any 24-character
//!   chunk of them;
//! - every `sign` value other than a payment link's own: requests (re-signed from the gateway's
//!   log, or recorded on the wire), gateway responses (recorded on the wire), notifications (from
//!   the gateway's delivery records), in raw and URL-encoded form and by chunks.
//!
//! A payment link necessarily carries its request signature (`sign=` in the URL the buyer opens):
//! that is the product's output, allowed in create results and the order resources that show the
//! link, nowhere else, and never in the log. The log file is mode 0600.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use alipay_openapi::{PrivateKey, SignType, SignedFields};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use rmcp::ServiceExt as _;
use rmcp::model::ReadResourceRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

/// Spawn the server with stderr going to a file.
async fn connect_capturing(env: &HashMap<String, String>, stderr: &Path) -> Client {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.env_clear().envs(env);
    let file = std::fs::File::create(stderr).unwrap();
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::from(file))
        .spawn()
        .expect("spawn");
    TestClient {
        version: rmcp::model::ProtocolVersion::V_2025_06_18,
    }
    .serve(transport)
    .await
    .expect("handshake")
}

/// The elements of a DER SEQUENCE: (tag, content).
fn der_elements(der: &[u8]) -> Vec<(u8, Vec<u8>)> {
    fn header(b: &[u8]) -> Option<(u8, usize, usize)> {
        let tag = *b.first()?;
        let first = *b.get(1)? as usize;
        if first < 0x80 {
            return Some((tag, 2, first));
        }
        let n = first & 0x7f;
        let mut len = 0usize;
        for i in 0..n {
            len = len << 8 | *b.get(2 + i)? as usize;
        }
        Some((tag, 2 + n, len))
    }
    let Some((_, start, len)) = header(der) else {
        return Vec::new();
    };
    let mut inner = &der[start..(start + len).min(der.len())];
    let mut out = Vec::new();
    while let Some((tag, h, l)) = header(inner) {
        if h + l > inner.len() {
            break;
        }
        out.push((tag, inner[h..h + l].to_vec()));
        inner = &inner[h + l..];
    }
    out
}

/// Every textual form of a private key stored as bare Base64 PKCS#8.
fn key_forms(pkcs8_b64: &str) -> Vec<String> {
    let pkcs8 = STANDARD.decode(pkcs8_b64.trim()).expect("Base64 PKCS#8");
    let elements = der_elements(&pkcs8);
    let pkcs1 = elements
        .iter()
        .find(|(tag, _)| *tag == 0x04)
        .map(|(_, c)| c.clone())
        .expect("PKCS#8 wraps PKCS#1 in an OCTET STRING");
    assert_eq!(pkcs1[0], 0x30, "PKCS#1 RSAPrivateKey");
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    // The private exponent, the primes and the CRT values, on their own (the modulus and the
    // public exponent are public).
    let private_integers = der_elements(&pkcs1)
        .into_iter()
        .skip(3)
        .filter(|(tag, _)| *tag == 0x02)
        .flat_map(|(_, c)| [STANDARD.encode(&c), hex(&c)]);
    // The whole encodings, past their first 64 characters: those are the DER headers every
    // RSA-2048 key shares (`MIIEvQIBADANBgkqhkiG9w0B…`), not secret.
    let pkcs1_b64 = STANDARD.encode(&pkcs1);
    let (pkcs8_hex, pkcs1_hex) = (hex(&pkcs8), hex(&pkcs1));
    let mut forms = vec![
        pkcs8_b64.trim()[64..].to_string(),
        pkcs1_b64[64..].to_string(),
        pkcs8_hex[128..].to_string(),
        pkcs1_hex[128..].to_string(),
    ];
    forms.extend(private_integers);
    forms
}

/// `s` and its URL-encoded form.
fn with_encodings(s: &str) -> Vec<String> {
    let encoded: String = form_urlencoded::byte_serialize(s.as_bytes()).collect();
    let percent = s
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    vec![s.to_string(), encoded, percent]
}

/// Chunks of `s`: any leak of at least `2 * step` consecutive characters contains one.
fn chunks(s: &str, step: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= 2 * step {
        return vec![s.to_string()];
    }
    (0..=chars.len() - step)
        .step_by(step)
        .map(|i| chars[i..(i + step).min(chars.len())].iter().collect())
        .collect()
}

/// Where a secret was found, if anywhere.
fn find_any<'a>(haystack: &str, needles: &'a BTreeSet<String>) -> Option<&'a String> {
    needles.iter().find(|n| haystack.contains(n.as_str()))
}

/// Everything a client of the server saw.
#[derive(Default)]
struct Seen {
    /// Create results and order resources: they carry payment links, so a link's `sign`.
    creates: Vec<String>,
    /// Every other result, resource and error.
    others: Vec<String>,
    /// The `sign` of each payment link handed out.
    link_signs: BTreeSet<String>,
}

impl Seen {
    fn record(&mut self, tool: &str, result: &rmcp::model::CallToolResult) {
        let whole = serde_json::to_string(result).unwrap();
        if tool.starts_with("create-") && !is_error(result) {
            if let Some(url) = structured(result)["url"].as_str()
                && let Some(sign) = link_param(url, "sign")
            {
                self.link_signs.insert(sign);
            }
            self.creates.push(whole);
        } else {
            self.others.push(whole);
        }
    }
}

async fn tool(
    client: &Client,
    seen: &mut Seen,
    name: &str,
    args: Value,
) -> rmcp::model::CallToolResult {
    let result = call(client, name, args).await;
    seen.record(name, &result);
    result
}

/// The flow: orders of all kinds, paid, queried, refunded (also through lost answers), a close,
/// the list and resources, faults, bad arguments, an unknown tool.
async fn flow(client: &Client, seen: &mut Seen, tag: &str) -> Gateway {
    let no = |s: &str| format!("{tag}_{s}");
    let web = tool(
        client,
        seen,
        "create-web-page-alipay-payment",
        json!({"outTradeNo":no("W"),"totalAmount":"30.00","orderTitle":"秘密 & secrets"}),
    )
    .await;
    assert!(!is_error(&web), "{}", text(&web));
    let link = link_of(&web);
    let gateway = Gateway::from_link(&link);
    gateway.open(&link).await;
    let mobile = tool(
        client,
        seen,
        "create-mobile-alipay-payment",
        json!({"outTradeNo":no("M"),"totalAmount":"5","orderTitle":"phone"}),
    )
    .await;
    gateway.open(&link_of(&mobile)).await;
    let qr = tool(
        client,
        seen,
        "create-qrcode-alipay-payment",
        json!({"outTradeNo":no("Q"),"totalAmount":"6","orderTitle":"scan"}),
    )
    .await;
    assert!(!is_error(&qr), "{}", text(&qr));
    gateway.open(structured(&qr)["url"].as_str().unwrap()).await;
    // The buyer pays two; the gateway notifies the receiver.
    gateway.pay(&no("W")).await;
    gateway.pay(&no("Q")).await;
    for n in [no("W"), no("Q")] {
        let delivered = eventually(15, || async {
            gateway.trade(&n).await["notifications"]
                .as_array()
                .is_some_and(|a| {
                    a.iter()
                        .any(|x| x["attempts"].as_array().is_some_and(|t| !t.is_empty()))
                })
        })
        .await;
        assert!(delivered, "{n}: the gateway delivered its notification");
    }
    tool(
        client,
        seen,
        "query-alipay-payment",
        json!({"outTradeNo":no("W")}),
    )
    .await;
    tool(
        client,
        seen,
        "query-alipay-payment",
        json!({"outTradeNo":no("M")}),
    )
    .await;
    let refund = json!({"outTradeNo":no("W"),"refundAmount":"10","outRequestNo":no("R1"),"refundReason":"客户要求"});
    let r = tool(client, seen, "refund-alipay-payment", refund.clone()).await;
    assert!(text(&r).starts_with("退款结果: 退款成功"), "{}", text(&r));
    tool(client, seen, "refund-alipay-payment", refund).await;
    tool(
        client,
        seen,
        "query-alipay-refund",
        json!({"outTradeNo":no("W"),"outRequestNo":no("R1")}),
    )
    .await;
    // Faults: answers that fail verification, an error answer, lost refund answers.
    gateway
        .fault(json!({"method":"alipay.trade.query","kind":"bad_sign"}))
        .await;
    tool(
        client,
        seen,
        "query-alipay-payment",
        json!({"outTradeNo":no("W")}),
    )
    .await;
    gateway
        .fault(json!({"method":"alipay.trade.fastpay.refund.query","kind":"wrong_key"}))
        .await;
    tool(
        client,
        seen,
        "query-alipay-refund",
        json!({"outTradeNo":no("W"),"outRequestNo":no("R1")}),
    )
    .await;
    gateway
        .fault(json!({"method":"alipay.trade.close","kind":"error_response"}))
        .await;
    tool(
        client,
        seen,
        "close-alipay-payment",
        json!({"outTradeNo":no("M")}),
    )
    .await;
    gateway
        .fault(json!({"method":"alipay.trade.refund","kind":"truncated"}))
        .await;
    tool(
        client,
        seen,
        "refund-alipay-payment",
        json!({"outTradeNo":no("W"),"refundAmount":"1","outRequestNo":no("R2")}),
    )
    .await;
    gateway
        // Not carried out, so no refund notification settles it behind the test's back.
        .fault(json!({"method":"alipay.trade.refund","kind":"bad_sign","times":2,"process":false}))
        .await;
    gateway
        .fault(json!({"method":"alipay.trade.fastpay.refund.query","kind":"no_sign","times":2}))
        .await;
    let unknown = tool(
        client,
        seen,
        "refund-alipay-payment",
        json!({"outTradeNo":no("W"),"refundAmount":"2","outRequestNo":no("R3")}),
    )
    .await;
    assert!(
        text(&unknown).starts_with("退款结果未知"),
        "{}",
        text(&unknown)
    );
    gateway.clear_faults().await;
    tool(
        client,
        seen,
        "refund-alipay-payment",
        json!({"outTradeNo":no("W"),"refundAmount":"2","outRequestNo":no("R3")}),
    )
    .await;
    tool(
        client,
        seen,
        "close-alipay-payment",
        json!({"outTradeNo":no("M")}),
    )
    .await;
    tool(client, seen, "list-alipay-orders", json!({})).await;
    // Bad arguments, including ones that look like keys and signatures.
    tool(
        client,
        seen,
        "query-alipay-payment",
        json!({"outTradeNo":"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC+/="}),
    )
    .await;
    tool(
        client,
        seen,
        "create-mobile-alipay-payment",
        json!({"totalAmount":"1","orderTitle":"<b>x</b>"}),
    )
    .await;
    // Resources: an order shows its payment link (the product's output, like a create result).
    for uri in [
        "alipay://orders".to_string(),
        format!("alipay://orders/{}", no("W")),
    ] {
        let r = client
            .read_resource(ReadResourceRequestParams::new(uri))
            .await
            .unwrap();
        seen.creates.push(serde_json::to_string(&r).unwrap());
    }
    let err = client
        .call_tool(rmcp::model::CallToolRequestParams::new("no-such-tool"))
        .await
        .unwrap_err();
    seen.others.push(err.to_string());
    gateway
}

/// Notification `sign` values the gateway sent: each delivery signs the stored fields plus its
/// `notify_time` (the attempt's time), so they are made again here with the platform key.
async fn notification_signs(gateway: &Gateway, platform_key: &PrivateKey) -> BTreeSet<String> {
    let mut signs = BTreeSet::new();
    for trade in gateway.trades().await {
        for n in trade["notifications"].as_array().into_iter().flatten() {
            let fields: Vec<(String, String)> = n["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p[0].as_str().unwrap().to_string(),
                        p[1].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            for attempt in n["attempts"].as_array().into_iter().flatten() {
                let at = attempt["at"].as_str().unwrap().to_string();
                let mut signed = SignedFields::from_pairs(
                    fields
                        .iter()
                        .cloned()
                        .chain([("notify_time".to_string(), at)]),
                )
                .unwrap();
                signed.sign(platform_key, SignType::Rsa2).unwrap();
                signs.insert(signed.get("sign").unwrap().to_string());
            }
        }
    }
    signs
}

fn forbidden(secrets: &BTreeSet<String>, step: usize) -> BTreeSet<String> {
    secrets
        .iter()
        .flat_map(|s| with_encodings(s))
        .flat_map(|s| chunks(&s, step))
        .collect()
}

/// Search every output; panic naming the place and the kind of secret.
fn assert_clean(
    log: &str,
    stderr: &str,
    seen: &Seen,
    keys: &BTreeSet<String>,
    signs: &BTreeSet<String>,
) {
    eprintln!(
        "secrets: searched {} bytes of log, {} of stderr, {} results for {} key forms, {} signatures, {} link signatures",
        log.len(),
        stderr.len(),
        seen.creates.len() + seen.others.len(),
        keys.len(),
        signs.len(),
        seen.link_signs.len()
    );
    let key_chunks = forbidden(keys, 24);
    let sign_chunks = forbidden(signs, 24);
    let link_chunks = forbidden(&seen.link_signs, 24);
    for (place, text) in [("log file", log), ("stderr", stderr)] {
        assert!(!text.contains("sign="), "{place} contains `sign=`");
        assert!(
            !text.contains("gateway.do?"),
            "{place} contains a signed link"
        );
        if let Some(k) = find_any(text, &key_chunks) {
            panic!("{place} contains private key material ({k})");
        }
        if let Some(s) = find_any(text, &sign_chunks) {
            panic!("{place} contains a signature ({s})");
        }
        if let Some(s) = find_any(text, &link_chunks) {
            panic!("{place} contains a payment link's signature ({s})");
        }
    }
    for (i, text) in seen.creates.iter().chain(&seen.others).enumerate() {
        if let Some(k) = find_any(text, &key_chunks) {
            panic!("tool result #{i} contains private key material ({k}): {text}");
        }
        if let Some(s) = find_any(text, &sign_chunks) {
            panic!("tool result #{i} contains a signature other than its link's ({s}): {text}");
        }
    }
    for text in &seen.others {
        if let Some(s) = find_any(text, &link_chunks) {
            panic!(
                "a result other than a create or an order resource carries a link signature ({s}): {text}"
            );
        }
    }
}

fn assert_mode_0600(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} is mode {mode:o}", path.display());
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned()
}

/// Local mode: the keys live in `AP_DATA_DIR/local`; request signatures are re-made from the
/// gateway's log of what it verified, notification signatures come from its delivery records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_or_signature_leaks_in_local_mode() {
    let dir = TempDir::new("secrets-local");
    let log_path = dir.path().join("logs/mcp.log");
    let stderr_path = dir.path().join("stderr.txt");
    let notify_port = free_port();
    let mut env = local_env(dir.path(), free_port());
    env.insert("AP_LOG_ENABLED".into(), "true".into());
    env.insert("AP_LOG_FILE".into(), log_path.display().to_string());
    env.insert(
        "AP_NOTIFY_LISTEN".into(),
        format!("127.0.0.1:{notify_port}"),
    );
    env.insert("AP_TIMEOUT_MS".into(), "1500".into());
    let client = connect_capturing(&env, &stderr_path).await;
    let mut seen = Seen::default();
    let gateway = flow(&client, &mut seen, "SL").await;

    let local = dir.path().join("data/local");
    let key_text = |f: &str| std::fs::read_to_string(local.join(f)).unwrap();
    let app_key = PrivateKey::load("app", &key_text("app-private-key.txt")).unwrap();
    let platform_key = PrivateKey::load("platform", &key_text("alipay-private-key.txt")).unwrap();

    // A forged notification (signed with the app's key) and a genuine-looking replay: refused,
    // and logged as refused.
    let mut forged = SignedFields::from_pairs(
        [
            ("notify_id", "SL_FORGED"),
            ("notify_time", "2026-11-25 10:21:06"),
            ("notify_type", "trade_status_sync"),
            ("app_id", gateway.app_id.as_str()),
            ("out_trade_no", "SL_M"),
            ("trade_status", "TRADE_SUCCESS"),
            ("total_amount", "5.00"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .unwrap();
    forged.sign(&app_key, SignType::Rsa2).unwrap();
    let answer = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{notify_port}/alipay/notify"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(forged.to_form())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(answer, "fail");

    let mut signs = notification_signs(&gateway, &platform_key).await;
    assert!(!signs.is_empty(), "the gateway sent signed notifications");
    signs.insert(forged.get("sign").unwrap().to_string());
    // Every request the gateway verified, re-signed with the app key: the request's `sign`.
    let mut request_signs = 0;
    for r in gateway.requests().await {
        let content = r["sign_content"].as_str().unwrap();
        let sign = app_key.sign(SignType::Rsa2, content).unwrap();
        if !seen.link_signs.contains(&sign) {
            signs.insert(sign);
            request_signs += 1;
        }
    }
    assert!(request_signs >= 10, "{request_signs} request signatures");
    let db = rusqlite::Connection::open(dir.path().join("data/local/ledger.db")).unwrap();
    let accepted: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM notifications WHERE verdict = 'accepted'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        accepted >= 1,
        "the genuine notification went through the receiver"
    );
    client.cancel().await.unwrap();

    let keys: BTreeSet<String> = [&app_key, &platform_key]
        .iter()
        .flat_map(|k| key_forms(&k.to_pkcs8_base64()))
        .chain(key_forms(&key_text("app-private-key.txt")))
        .collect();
    let log = read(&log_path);
    let stderr = read(&stderr_path);
    assert!(
        log.contains("order created") && log.contains("refund outcome unknown"),
        "the log is on and has the flow:\n{log}"
    );
    assert!(log.contains("notification refused"), "{log}");
    assert_clean(&log, &stderr, &seen, &keys, &signs);
    assert_mode_0600(&log_path);
    for f in ["app-private-key.txt", "alipay-private-key.txt"] {
        assert_mode_0600(&local.join(f));
    }
}

/// What a recording proxy in front of the gateway saw: every request URL and response body.
#[derive(Default)]
struct Wire {
    request_signs: BTreeSet<String>,
    response_signs: BTreeSet<String>,
}

async fn start_proxy(upstream: String, wire: Arc<Mutex<Wire>>) -> String {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, Uri};
    use axum::response::IntoResponse;
    let http = reqwest::Client::new();
    let handler = move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let (http, upstream, wire) = (http.clone(), upstream.clone(), wire.clone());
        async move {
            let path = uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
                .to_string();
            let is_gateway = uri.path() == "/gateway.do";
            if is_gateway {
                let query = uri.query().unwrap_or("");
                let form =
                    form_urlencoded::parse(query.as_bytes()).chain(form_urlencoded::parse(&body));
                for (k, v) in form {
                    if k == "sign" {
                        wire.lock().unwrap().request_signs.insert(v.into_owned());
                    }
                }
            }
            let mut request = http.request(
                Method::from_bytes(method.as_str().as_bytes()).unwrap(),
                format!("{upstream}{path}"),
            );
            if let Some(ct) = headers.get("content-type") {
                request = request.header("content-type", ct.to_str().unwrap());
            }
            let Ok(response) = request.body(body.to_vec()).send().await else {
                return axum::http::StatusCode::BAD_GATEWAY.into_response();
            };
            let status = response.status().as_u16();
            let ct = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            let Ok(body) = response.bytes().await else {
                return axum::http::StatusCode::BAD_GATEWAY.into_response();
            };
            if is_gateway
                && let Ok(Value::Object(top)) = serde_json::from_slice::<Value>(&body)
                && let Some(Value::String(sign)) = top.get("sign")
            {
                wire.lock().unwrap().response_signs.insert(sign.clone());
            }
            (
                axum::http::StatusCode::from_u16(status).unwrap(),
                [("content-type", ct)],
                body.to_vec(),
            )
                .into_response()
        }
    };
    let app = axum::Router::new().fallback(handler);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn pem(label: &str, b64: &str) -> String {
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Prod mode behind a recording proxy: the app key given as PEM in `AP_APP_KEY`, every response
/// signature seen on the wire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_or_signature_leaks_against_a_remote_gateway() {
    use alipay_emulator::{AppConfig, Emulator, EmulatorConfig};
    let dir = TempDir::new("secrets-prod");
    let app_id = "2021000000000042";
    let app_key = PrivateKey::generate().unwrap();
    let platform_key = PrivateKey::generate().unwrap();
    let config = EmulatorConfig::new(platform_key.clone())
        .with_app(AppConfig::new(app_id, app_key.public_key().clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emulator = Emulator::start(config, listener).await.unwrap();
    let wire = Arc::new(Mutex::new(Wire::default()));
    let proxy = start_proxy(emulator.base_url(), wire.clone()).await;

    let log_path: PathBuf = dir.path().join("mcp.log");
    let stderr_path = dir.path().join("stderr.txt");
    let notify_port = free_port();
    let mut env = local_env(dir.path(), free_port());
    env.insert("AP_APP_ID".into(), app_id.into());
    env.insert(
        "AP_APP_KEY".into(),
        pem("PRIVATE KEY", &app_key.to_pkcs8_base64()),
    );
    env.insert(
        "AP_PUB_KEY".into(),
        platform_key.public_key().to_spki_base64(),
    );
    env.insert("AP_GATEWAY_URL".into(), format!("{proxy}/gateway.do"));
    env.insert(
        "AP_NOTIFY_LISTEN".into(),
        format!("127.0.0.1:{notify_port}"),
    );
    env.insert(
        "AP_NOTIFY_URL".into(),
        format!("http://127.0.0.1:{notify_port}/alipay/notify"),
    );
    env.insert("AP_LOG_ENABLED".into(), "true".into());
    env.insert("AP_LOG_FILE".into(), log_path.display().to_string());
    env.insert("AP_TIMEOUT_MS".into(), "1500".into());
    let client = connect_capturing(&env, &stderr_path).await;
    let mut seen = Seen::default();
    let gateway = flow(&client, &mut seen, "SP").await;
    let mut signs = notification_signs(&gateway, &platform_key).await;
    assert!(!signs.is_empty(), "the gateway sent signed notifications");
    client.cancel().await.unwrap();
    emulator.shutdown().await;

    {
        let wire = wire.lock().unwrap();
        assert!(
            wire.response_signs.len() >= 10,
            "{} response signatures",
            wire.response_signs.len()
        );
        signs.extend(wire.response_signs.iter().cloned());
        signs.extend(wire.request_signs.difference(&seen.link_signs).cloned());
    }
    let keys: BTreeSet<String> = [&app_key, &platform_key]
        .iter()
        .flat_map(|k| key_forms(&k.to_pkcs8_base64()))
        .collect();
    let log = read(&log_path);
    let stderr = read(&stderr_path);
    assert!(
        log.contains("refund outcome unknown"),
        "the log is on and has the flow:\n{log}"
    );
    assert_clean(&log, &stderr, &seen, &keys, &signs);
    assert_mode_0600(&log_path);
}

/// The search itself finds what it looks for (so a clean verdict means something).
#[test]
fn the_search_finds_keys_and_signatures_in_every_form() {
    let key = PrivateKey::generate().unwrap();
    let b64 = key.to_pkcs8_base64();
    let keys: BTreeSet<String> = key_forms(&b64).into_iter().collect();
    let chunks = forbidden(&keys, 24);
    let pem_text = pem("PRIVATE KEY", &b64);
    let line = pem_text.lines().nth(7).unwrap();
    assert!(
        find_any(&format!("log: {line} end"), &chunks).is_some(),
        "a PEM line"
    );
    let pkcs1 = key_forms(&b64)[1].clone();
    assert!(
        find_any(&format!("x{}y", &pkcs1[100..160]), &chunks).is_some(),
        "a PKCS#1 chunk"
    );
    assert!(find_any("nothing here", &chunks).is_none());
    let sign = key.sign(SignType::Rsa2, "a=1").unwrap();
    let signs = forbidden(&BTreeSet::from([sign.clone()]), 24);
    let encoded: String = form_urlencoded::byte_serialize(sign.as_bytes()).collect();
    assert!(
        find_any(&format!("url?sign={encoded}"), &signs).is_some(),
        "URL-encoded"
    );
    assert!(find_any(&sign[200..260], &signs).is_some(), "a chunk");
}
