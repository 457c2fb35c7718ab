//! Shared helpers of the integration tests: an emulator on a free loopback port with the test
//! vector keys, the `alipay-openapi` client pointed at it, hand-made signed requests, the control
//! API, and a tiny notification receiver.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alipay_emulator::{AppConfig, Emulator, EmulatorConfig, RunningEmulator};
use alipay_openapi::{
    AlipayClient, Amount, AmountStyle, ClientConfig, Merchant, PayKind, PayOrder, PrivateKey,
    PublicKey, SignType,
};
use serde_json::Value;

pub(crate) const APP_ID: &str = "2021000000000001";

pub(crate) fn keys_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/alipay-vectors/keys"
    ))
}

fn key_text(name: &str) -> String {
    std::fs::read_to_string(keys_dir().join(name)).expect("test key")
}

pub(crate) fn app_private() -> PrivateKey {
    PrivateKey::load("app private", &key_text("app-private-pkcs8.pem")).unwrap()
}

pub(crate) fn app_public() -> PublicKey {
    PublicKey::load("app public", &key_text("app-public-spki.b64")).unwrap()
}

pub(crate) fn platform_key() -> PrivateKey {
    PrivateKey::load("platform", &key_text("alipay-private-pkcs8.pem")).unwrap()
}

/// A config with the vector app registered and a fast retry schedule.
pub(crate) fn config() -> EmulatorConfig {
    let mut config =
        EmulatorConfig::new(platform_key()).with_app(AppConfig::new(APP_ID, app_public()));
    config.notify_retry = vec![Duration::from_millis(50), Duration::from_millis(50)];
    config
}

pub(crate) struct Env {
    pub emu: RunningEmulator,
    pub http: reqwest::Client,
    pub client: AlipayClient,
}

pub(crate) async fn start() -> Env {
    start_with(config()).await
}

pub(crate) async fn start_with(config: EmulatorConfig) -> Env {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emu = Emulator::start(config, listener).await.unwrap();
    let client = client_for(&emu, SignType::Rsa2, Duration::from_secs(5));
    Env {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        client,
        emu,
    }
}

pub(crate) fn client_for(
    emu: &RunningEmulator,
    sign_type: SignType,
    timeout: Duration,
) -> AlipayClient {
    let merchant = Merchant {
        app_id: APP_ID.into(),
        private_key: app_private(),
        sign_type,
        app_auth_token: None,
    };
    let mut config = ClientConfig::new(merchant, emu.alipay_public_key(), emu.gateway_url());
    config.timeout = timeout;
    AlipayClient::new(config).unwrap()
}

/// The same client, reaching the gateway in process (`RunningEmulator::in_process`).
pub(crate) fn in_process_client_for(emu: &RunningEmulator, timeout: Duration) -> AlipayClient {
    let http = client_for(emu, SignType::Rsa2, timeout);
    AlipayClient::with_transport(http.config().clone(), Arc::new(emu.in_process()))
}

pub(crate) fn order(kind: PayKind, out_trade_no: &str, yuan: &str, subject: &str) -> PayOrder {
    PayOrder {
        kind,
        out_trade_no: out_trade_no.into(),
        total_amount: Amount::from_yuan_str(yuan).unwrap(),
        subject: subject.into(),
        body: None,
        timeout_express: None,
        query_options: None,
        amount_style: AmountStyle::Number,
        time_expire: None,
    }
}

/// Common parameters + `biz_content`, signed with the app key.
pub(crate) fn signed_params(
    method: &str,
    biz: &str,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = [
        ("method", method),
        ("app_id", APP_ID),
        ("charset", "utf-8"),
        ("version", "1.0"),
        ("sign_type", "RSA2"),
        ("timestamp", &alipay_openapi::time::timestamp_now()),
        ("biz_content", biz),
    ]
    .iter()
    .chain(extra.iter())
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    sign_params(&mut params);
    params
}

/// Add `sign` over the parameters as they are.
pub(crate) fn sign_params(params: &mut Vec<(String, String)>) {
    let content =
        alipay_openapi::sign_content(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let sign = app_private().sign(SignType::Rsa2, &content).unwrap();
    params.push(("sign".into(), sign));
}

/// Set (or add) one parameter and sign again.
pub(crate) fn with_param(
    mut params: Vec<(String, String)>,
    key: &str,
    value: &str,
) -> Vec<(String, String)> {
    params.retain(|(k, _)| k != "sign");
    match params.iter_mut().find(|(k, _)| k == key) {
        Some(p) => p.1 = value.to_string(),
        None => params.push((key.to_string(), value.to_string())),
    }
    sign_params(&mut params);
    params
}

pub(crate) fn form(params: &[(String, String)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k, v);
    }
    ser.finish()
}

/// A raw gateway answer.
pub(crate) struct Raw {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Env {
    pub(crate) fn base(&self) -> String {
        self.emu.base_url()
    }

    /// POST the parameters as a form body.
    pub(crate) async fn post_form(&self, params: &[(String, String)]) -> Raw {
        let response = self
            .http
            .post(self.emu.gateway_url())
            .header(
                "content-type",
                "application/x-www-form-urlencoded;charset=utf-8",
            )
            .body(form(params))
            .send()
            .await
            .unwrap();
        raw(response).await
    }

    /// GET a URL (a payment link, a cashier page).
    pub(crate) async fn get(&self, url: &str) -> Raw {
        raw(self.http.get(url).send().await.unwrap()).await
    }

    pub(crate) async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base()));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub(crate) async fn act(&self, out_trade_no: &str, action: &str) -> (u16, Value) {
        self.control(
            reqwest::Method::POST,
            &format!("/__emulator/apps/{APP_ID}/trades/{out_trade_no}/{action}"),
            None,
        )
        .await
    }

    pub(crate) async fn trade(&self, out_trade_no: &str) -> Value {
        let (status, v) = self
            .control(
                reqwest::Method::GET,
                &format!("/__emulator/apps/{APP_ID}/trades/{out_trade_no}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{v}");
        v
    }

    pub(crate) async fn fault(&self, spec: Value) {
        let (status, v) = self
            .control(reqwest::Method::POST, "/__emulator/faults", Some(spec))
            .await;
        assert_eq!(status, 200, "{v}");
    }

    pub(crate) async fn requests(&self) -> Vec<Value> {
        let (_, v) = self
            .control(reqwest::Method::GET, "/__emulator/requests", None)
            .await;
        v["requests"].as_array().cloned().unwrap_or_default()
    }

    /// A signed link, opened (the buyer reaches the cashier): the trade is `WAIT_BUYER_PAY`.
    pub(crate) async fn open_link(&self, kind: PayKind, out_trade_no: &str, yuan: &str) -> String {
        let url = self
            .client
            .payment_link(&order(kind, out_trade_no, yuan, "测试订单"))
            .unwrap();
        let page = self.get(&url).await;
        assert_eq!(page.status, 200);
        assert!(!page.body.contains("错误代码"), "{}", page.body);
        page.body
    }

    /// An order opened and paid through the control API.
    pub(crate) async fn paid(&self, kind: PayKind, out_trade_no: &str, yuan: &str) {
        self.open_link(kind, out_trade_no, yuan).await;
        let (status, v) = self.act(out_trade_no, "pay").await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["trade_status"], "TRADE_SUCCESS");
    }
}

async fn raw(response: reqwest::Response) -> Raw {
    Raw {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

/// Poll `check` until it returns `Some`, failing after `limit` (a deadline, not a timing assertion).
pub(crate) async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One notification as the receiver got it.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub content_type: String,
    pub body: Vec<u8>,
}

/// A local notify_url: answers from a script (status, body), then `200 success` for ever.
pub(crate) struct Receiver {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
}

pub(crate) async fn receiver(script: &[(u16, &str)]) -> Receiver {
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};

    type Shared = (
        Arc<Mutex<Vec<Received>>>,
        Arc<Mutex<VecDeque<(u16, String)>>>,
    );
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let answers: Arc<Mutex<VecDeque<(u16, String)>>> = Arc::new(Mutex::new(
        script.iter().map(|(s, b)| (*s, b.to_string())).collect(),
    ));
    async fn handle(
        State((received, answers)): State<Shared>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, String) {
        received.lock().unwrap().push(Received {
            content_type: headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
            body: body.to_vec(),
        });
        let (status, text) = answers
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or((200, "success".into()));
        (StatusCode::from_u16(status).unwrap(), text)
    }
    let app = axum::Router::new()
        .route("/notify", axum::routing::post(handle))
        .with_state((received.clone(), answers));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver { url, received }
}

impl Receiver {
    pub(crate) fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    pub(crate) fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// A client that puts `notify_url` (and optionally `return_url`) on its links.
pub(crate) fn client_with_urls(
    emu: &RunningEmulator,
    notify_url: Option<&str>,
    return_url: Option<&str>,
) -> AlipayClient {
    let merchant = Merchant {
        app_id: APP_ID.into(),
        private_key: app_private(),
        sign_type: SignType::Rsa2,
        app_auth_token: None,
    };
    let mut config = ClientConfig::new(merchant, emu.alipay_public_key(), emu.gateway_url());
    config.notify_url = notify_url.map(str::to_string);
    config.return_url = return_url.map(str::to_string);
    AlipayClient::new(config).unwrap()
}
