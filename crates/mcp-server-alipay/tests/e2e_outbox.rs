//! The outbox end to end: the real binary in local mode, the embedded gateway paying, and local
//! receivers standing in for the merchant's notify handler, a webhook consumer and the DingTalk,
//! WeCom and Feishu robots. Signatures are checked independently of our code: the forwarded form
//! with `openssl` and the gateway's public key, the HMACs with Python's standard library.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use base64::Engine as _;
use common::raw::Raw;
use common::*;
use serde_json::{Value, json};

const WEBHOOK_SECRET: &str = "whsec_test_0123456789abcdef";
const DINGTALK_SECRET: &str = "SEC0123456789abcdef0123456789abcdef";
const FEISHU_SECRET: &str = "WYDI1R5kaqfQpTxMUBzMbfwBJcZgw4e6";

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Got {
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> String {
        self.headers[name].to_str().unwrap().to_string()
    }
}

#[derive(Clone, Default)]
struct Receivers {
    got: Arc<Mutex<Vec<Got>>>,
    /// Paths whose first request is answered HTTP 500.
    fail_first: Arc<Mutex<Vec<String>>>,
    /// Where `/alipay-proxy` passes the gateway's notifications on (our notify receiver).
    notify_receiver: String,
}

impl Receivers {
    fn of(&self, path: &str) -> Vec<Got> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.path == path)
            .cloned()
            .collect()
    }
}

async fn receive(
    State(r): State<Receivers>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let path = uri.path().to_string();
    let got = Got {
        path: path.clone(),
        query: uri.query().unwrap_or("").to_string(),
        headers: headers.clone(),
        body: body.to_vec(),
    };
    let first = !r.got.lock().unwrap().iter().any(|g| g.path == path);
    r.got.lock().unwrap().push(got);
    if first && r.fail_first.lock().unwrap().contains(&path) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "down for a moment").into_response();
    }
    match path.as_str() {
        // Between the gateway and our receiver: the exact form and our receiver's answer kept.
        "/alipay-proxy" => {
            let answer = reqwest::Client::new()
                .post(&r.notify_receiver)
                .header("content-type", headers["content-type"].clone())
                .body(body.to_vec())
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            r.got.lock().unwrap().push(Got {
                path: "/alipay-proxy/answer".into(),
                query: String::new(),
                headers: HeaderMap::new(),
                body: answer.clone().into_bytes(),
            });
            answer.into_response()
        }
        "/merchant/notify" => "success".into_response(),
        "/hook" => StatusCode::NO_CONTENT.into_response(),
        "/robot/send" | "/cgi-bin/webhook/send" => {
            axum::Json(json!({"errcode": 0, "errmsg": "ok"})).into_response()
        }
        "/open-apis/bot/v2/hook/x" => {
            axum::Json(json!({"code": 0, "msg": "success", "data": {}})).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn serve(receivers: Receivers, listener: tokio::net::TcpListener) {
    let app = axum::Router::new().fallback(receive).with_state(receivers);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
}

/// A local-mode server whose gateway notifies through `proxy` and whose events go to `targets`.
fn server_env(
    dir: &TempDir,
    notify_port: u16,
    proxy: SocketAddr,
    targets: SocketAddr,
) -> HashMap<String, String> {
    let mut env = local_env(dir.path(), free_port());
    let t = |path: &str| format!("http://{targets}{path}");
    for (k, v) in [
        ("AP_NOTIFY_LISTEN", format!("127.0.0.1:{notify_port}")),
        ("AP_NOTIFY_URL", format!("http://{proxy}/alipay-proxy")),
        ("AP_NOTIFY_FORWARD_URL", t("/merchant/notify")),
        ("AP_WEBHOOK_URL", t("/hook")),
        ("AP_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
        (
            "AP_DINGTALK_WEBHOOK",
            t("/robot/send?access_token=robot-token"),
        ),
        ("AP_DINGTALK_SECRET", DINGTALK_SECRET.into()),
        ("AP_WECOM_WEBHOOK", t("/cgi-bin/webhook/send?key=wecom-key")),
        ("AP_FEISHU_WEBHOOK", t("/open-apis/bot/v2/hook/x")),
        ("AP_FEISHU_SECRET", FEISHU_SECRET.into()),
        ("AP_DELIVERY_RETRY", "1s".into()),
    ] {
        env.insert(k.into(), v);
    }
    env
}

/// Python's hmac, hashlib and base64 recompute a signature; panics unless it matches.
fn python_verifies(kind: &str, secret: &str, timestamp: &str, message: &str, expected: &str) {
    let script = r#"
import base64, hashlib, hmac, json, sys
a = json.load(sys.stdin)
k, s, t, m = a["kind"], a["secret"], a["timestamp"], a["message"]
if k == "webhook":
    got = hmac.new(s.encode(), f"{t}.{m}".encode(), hashlib.sha256).hexdigest()
elif k == "dingtalk":
    got = base64.b64encode(hmac.new(s.encode(), f"{t}\n{s}".encode(), hashlib.sha256).digest()).decode()
else:
    got = base64.b64encode(hmac.new(f"{t}\n{s}".encode(), b"", hashlib.sha256).digest()).decode()
sys.exit(0 if hmac.compare_digest(got, a["expected"]) else 1)
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let input = json!({"kind": kind, "secret": secret, "timestamp": timestamp, "message": message, "expected": expected});
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "{kind} signature does not verify"
    );
}

/// `openssl` verifies an Alipay form's RSA2 signature with the gateway's public key.
fn openssl_verifies(form: &[u8], public_key_pem: &str, dir: &TempDir) {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(form)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let sign = pairs.iter().find(|(k, _)| k == "sign").unwrap().1.clone();
    pairs.retain(|(k, v)| k != "sign" && k != "sign_type" && !v.is_empty());
    pairs.sort();
    let content: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let (content_file, sig_file, key_file) = (
        dir.path().join("content"),
        dir.path().join("sig"),
        dir.path().join("alipay.pem"),
    );
    std::fs::write(&content_file, content.join("&")).unwrap();
    std::fs::write(
        &sig_file,
        base64::engine::general_purpose::STANDARD
            .decode(sign)
            .unwrap(),
    )
    .unwrap();
    std::fs::write(&key_file, public_key_pem).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&key_file)
        .arg("-signature")
        .arg(&sig_file)
        .arg(&content_file)
        .output()
        .expect("openssl");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Verified OK");
}

fn query_param(query: &str, name: &str) -> String {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no {name} in {query}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_order_reaches_every_target_once_signed_and_verbatim() {
    let dir = TempDir::new("outbox-all");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let notify_port = free_port();
    let receivers = Receivers {
        notify_receiver: format!("http://127.0.0.1:{notify_port}/alipay/notify"),
        ..Default::default()
    };
    // The webhook consumer is down for the first attempt: it gets the retry, same event.
    receivers.fail_first.lock().unwrap().push("/hook".into());
    serve(receivers.clone(), listener).await;
    let client = connect(&server_env(&dir, notify_port, addr, addr)).await;

    let gateway = paid_order(&client, "OUTBOX1", "12.30").await;
    let expected = [
        ("/merchant/notify", 1),
        ("/hook", 2),
        ("/robot/send", 1),
        ("/cgi-bin/webhook/send", 1),
        ("/open-apis/bot/v2/hook/x", 1),
    ];
    let all_there = eventually(30, || async {
        expected
            .iter()
            .all(|(path, n)| receivers.of(path).len() >= *n)
    })
    .await;
    assert!(all_there, "{:#?}", receivers.got.lock().unwrap());
    // Nothing more comes: each target answered, so none hears it twice.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for (path, n) in expected {
        assert_eq!(receivers.of(path).len(), n, "{path}");
    }

    // The forward is the gateway's form, byte for byte, and verifies with Alipay's public key.
    let sent = &receivers.of("/alipay-proxy")[0];
    assert_eq!(receivers.of("/alipay-proxy/answer")[0].body, b"success");
    let forwarded = &receivers.of("/merchant/notify")[0];
    assert_eq!(forwarded.body, sent.body);
    assert_eq!(
        forwarded.header("content-type"),
        sent.header("content-type")
    );
    let keys: Value = reqwest::get(format!("{}/__emulator/keys", gateway.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    openssl_verifies(
        &forwarded.body,
        keys["alipay_public_key_pem"].as_str().unwrap(),
        &dir,
    );

    // The webhook: our event, signed; the retry carries the same event and the same body.
    let hooks = receivers.of("/hook");
    assert_eq!(hooks[0].body, hooks[1].body);
    let event = hooks[1].json();
    assert_eq!(event["type"], "payment.succeeded");
    assert!(event["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(event["data"]["outTradeNo"], "OUTBOX1");
    assert_eq!(event["data"]["totalAmount"], "12.30");
    assert_eq!(event["data"]["tradeStatus"], "TRADE_SUCCESS");
    assert!(event["data"]["tradeNo"].is_string());
    for hook in &hooks {
        assert_eq!(
            hook.header("alipay-mcp-event-id"),
            event["id"].as_str().unwrap()
        );
        let signature = hook.header("alipay-mcp-signature");
        let (t, v1) = signature
            .strip_prefix("t=")
            .and_then(|s| s.split_once(",v1="))
            .unwrap();
        python_verifies(
            "webhook",
            WEBHOOK_SECRET,
            t,
            std::str::from_utf8(&hook.body).unwrap(),
            v1,
        );
    }

    // The robots: each platform's message shape, and its signature.
    let ding = &receivers.of("/robot/send")[0];
    assert_eq!(query_param(&ding.query, "access_token"), "robot-token");
    python_verifies(
        "dingtalk",
        DINGTALK_SECRET,
        &query_param(&ding.query, "timestamp"),
        "",
        &query_param(&ding.query, "sign"),
    );
    let ding = ding.json();
    assert_eq!(ding["msgtype"], "text");
    let message = ding["text"]["content"].as_str().unwrap();
    assert!(
        message.contains("收款成功") && message.contains("¥12.30") && message.contains("OUTBOX1"),
        "{message}"
    );
    let wecom = receivers.of("/cgi-bin/webhook/send")[0].json();
    assert_eq!(wecom["msgtype"], "text");
    assert_eq!(wecom["text"]["content"].as_str().unwrap(), message);
    let feishu = receivers.of("/open-apis/bot/v2/hook/x")[0].json();
    assert_eq!(feishu["msg_type"], "text");
    assert_eq!(feishu["content"]["text"].as_str().unwrap(), message);
    python_verifies(
        "feishu",
        FEISHU_SECRET,
        feishu["timestamp"].as_str().unwrap(),
        "",
        feishu["sign"].as_str().unwrap(),
    );

    // The order's resource shows each delivery.
    let resource = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(
            "alipay://orders/OUTBOX1",
        ))
        .await
        .unwrap();
    let rmcp::model::ResourceContents::TextResourceContents { text, .. } = &resource.contents[0]
    else {
        panic!("text resource");
    };
    let detail: Value = serde_json::from_str(text).unwrap();
    let deliveries = detail["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 5, "{deliveries:#?}");
    assert!(
        deliveries.iter().all(|d| d["state"] == "delivered"),
        "{deliveries:#?}"
    );
    let webhook = deliveries
        .iter()
        .find(|d| d["target"] == "webhook")
        .unwrap();
    assert_eq!(webhook["attempts"], 2);
    assert_eq!(webhook["eventId"], event["id"]);
    assert_eq!(webhook["lastError"], "HTTP 500");
    client.cancel().await.unwrap();
}

fn ledger_deliveries(dir: &TempDir) -> Vec<(String, String, String, i64)> {
    let db = rusqlite::Connection::open(dir.path().join("data/local/ledger.db")).unwrap();
    let mut stmt = db
        .prepare("SELECT event_id, target, state, attempts FROM deliveries ORDER BY target")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_pending_at_a_kill_are_made_after_the_restart() {
    let dir = TempDir::new("outbox-kill");
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    let notify_port = free_port();
    let receivers = Receivers {
        notify_receiver: format!("http://127.0.0.1:{notify_port}/alipay/notify"),
        ..Default::default()
    };
    serve(receivers.clone(), proxy).await;
    // Every target is down: nothing listens on their port yet.
    let targets: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let env = server_env(&dir, notify_port, proxy_addr, targets);

    let mut server = Raw::start(&env);
    let id = server.tool(
        "create-web-page-alipay-payment",
        json!({"outTradeNo": "OUTBOX2", "totalAmount": "5.00", "orderTitle": "kill test"}),
    );
    let created = server.wait(id, Duration::from_secs(30)).expect("created");
    let text = created["result"]["content"][0]["text"].as_str().unwrap();
    let start = text.find("](").unwrap() + 2;
    let link = &text[start..start + text[start..].find(')').unwrap()];
    let gateway = Gateway::from_link(link);
    gateway.open(link).await;
    gateway.pay("OUTBOX2").await;

    // Alipay hears `success` at once, though every target is down.
    assert!(
        eventually(10, || async {
            !receivers.of("/alipay-proxy/answer").is_empty()
        })
        .await
    );
    assert_eq!(receivers.of("/alipay-proxy/answer")[0].body, b"success");
    // Every target has failed at least once; then the server is killed.
    assert!(
        eventually(20, || async {
            let d = ledger_deliveries(&dir);
            d.len() == 5
                && d.iter()
                    .all(|(_, _, state, attempts)| state == "pending" && *attempts >= 1)
        })
        .await,
        "{:?}",
        ledger_deliveries(&dir)
    );
    // `doctor` says which targets are failing, naming the variable and never a URL's secret part.
    let doctor = std::process::Command::new(BIN)
        .arg("doctor")
        .env_clear()
        .envs(&env)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(!doctor.status.success(), "{report}");
    for target in ["forward", "webhook", "dingtalk", "wecom", "feishu"] {
        assert!(
            report.contains(&format!("[FAIL] {target} (http://127.0.0.1) is failing")),
            "{target}: {report}"
        );
    }
    assert!(report.contains("check AP_WEBHOOK_URL"), "{report}");
    for secret in [
        "robot-token",
        "wecom-key",
        WEBHOOK_SECRET,
        DINGTALK_SECRET,
        FEISHU_SECRET,
    ] {
        assert!(!report.contains(secret), "{report}");
    }
    server.kill();
    let before = ledger_deliveries(&dir);

    // The targets come up; the restarted server delivers what was pending, each once.
    serve(
        receivers.clone(),
        tokio::net::TcpListener::bind(targets).await.unwrap(),
    )
    .await;
    let server = Raw::start(&env);
    let paths = [
        "/merchant/notify",
        "/hook",
        "/robot/send",
        "/cgi-bin/webhook/send",
        "/open-apis/bot/v2/hook/x",
    ];
    assert!(
        eventually(45, || async {
            paths.iter().all(|p| !receivers.of(p).is_empty())
        })
        .await,
        "{:?}",
        ledger_deliveries(&dir)
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for p in paths {
        assert_eq!(receivers.of(p).len(), 1, "{p}");
    }
    let hook = receivers.of("/hook")[0].json();
    let webhook_event = before.iter().find(|(_, t, _, _)| t == "webhook").unwrap();
    assert_eq!(
        hook["id"],
        webhook_event.0.as_str(),
        "the event recorded before the kill"
    );
    assert!(
        ledger_deliveries(&dir)
            .iter()
            .all(|(_, _, state, _)| state == "delivered")
    );
    server.kill();
}

#[test]
fn bad_outbox_configuration_stops_start_up_with_one_line() {
    let dir = TempDir::new("outbox-config");
    for (var, value, missing) in [
        (
            "AP_WEBHOOK_URL",
            "https://shop.example.com/hook",
            "AP_WEBHOOK_SECRET",
        ),
        (
            "AP_DINGTALK_WEBHOOK",
            "ftp://oapi.dingtalk.com/robot/send?access_token=secret-token",
            "AP_DINGTALK_WEBHOOK",
        ),
    ] {
        let mut env = local_env(dir.path(), free_port());
        env.insert(var.into(), value.into());
        let out = std::process::Command::new(BIN)
            .env_clear()
            .envs(&env)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(out.stdout.is_empty(), "nothing on stdout");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(missing), "{stderr}");
        assert!(
            !stderr.contains("secret-token"),
            "a robot's URL is never shown: {stderr}"
        );
    }
}
