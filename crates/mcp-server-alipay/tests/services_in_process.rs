//! The refund money path, in process: `service::refunds`, `service::orders` and
//! `service::reconcile` over a real SQLite ledger and the emulator started in this test's runtime,
//! no binary spawned. Every test asserts twice: on the typed result our code returns, and on the
//! gateway's own state (the trade's `refund_fee` and refunds, and the request log of
//! `/gateway.do`), so no test can pass merely by agreeing with the code under test.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use alipay_emulator::{AppConfig, Emulator, EmulatorConfig, RunningEmulator};
use alipay_openapi::{
    AlipayClient, Amount, ClientConfig, Error, Merchant, Money, PrivateKey, SignType, TradeRefund,
    TradeStatus,
};
use async_trait::async_trait;
use mcp_server_alipay::config::Guardrails;
use mcp_server_alipay::domain::guardrail::Guardrail;
use mcp_server_alipay::domain::refund::ApprovalStep;
use mcp_server_alipay::domain::{AppScope, Env, OrderKind, OutRequestNo, OutTradeNo, RefundState};
use mcp_server_alipay::ledger::{
    AuditDecision, AuditOutcome, Ledger, NewRefund, RefundBegin, RefundLimits, SqliteLedger,
};
use mcp_server_alipay::service::orders::{self, CreateRequest, Created};
use mcp_server_alipay::service::reconcile::{Reconciled, reconcile};
use mcp_server_alipay::service::refunds::{
    self, Confirm, Decision, RefundPlan, RefundRequest, RefundResult, Refusal,
};
use mcp_server_alipay::service::{Services, SystemClock};
use serde_json::{Value, json};

const APP_ID: &str = "2021000000000042";
const REFUND: &str = "alipay.trade.refund";
const REFUND_QUERY: &str = "alipay.trade.fastpay.refund.query";

// ---------------------------------------------------------------------------------------------
// Money and numbers
// ---------------------------------------------------------------------------------------------

fn amount(yuan: &str) -> Amount {
    Amount::from_yuan_str(yuan).unwrap()
}

fn money(yuan: &str) -> Money {
    Money::from_yuan_str(yuan).unwrap()
}

fn req(no: &str) -> OutRequestNo {
    OutRequestNo::parse(no).unwrap()
}

/// RSA key generation costs real time in a debug build: one platform key and one app key for the
/// whole test binary (each test still gets its own emulator, ledger and data directory).
fn keys() -> &'static (PrivateKey, PrivateKey) {
    static KEYS: OnceLock<(PrivateKey, PrivateKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        (
            PrivateKey::generate().unwrap(),
            PrivateKey::generate().unwrap(),
        )
    })
}

// ---------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------

/// A scratch directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mcp-alipay-in-process-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One request as the gateway logged it.
#[derive(Clone, Debug)]
struct Logged {
    method: Option<String>,
    out_trade_no: Option<String>,
    out_request_no: Option<String>,
    fault: Option<String>,
}

/// An emulator, a client for it, a SQLite ledger on a temp file, and the services over them.
struct Harness {
    svc: Services,
    emulator: RunningEmulator,
    http: reqwest::Client,
    orders: AtomicUsize,
    // Last: the ledger handles above are closed before the directory goes.
    dir: TempDir,
}

impl Harness {
    async fn new(guard: Guardrails) -> Self {
        Self::with_timeout(guard, Duration::from_secs(2)).await
    }

    async fn with_timeout(guard: Guardrails, timeout: Duration) -> Self {
        let (platform_key, app_key) = keys();
        let config = EmulatorConfig::new(platform_key.clone())
            .with_app(AppConfig::new(APP_ID, app_key.public_key().clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let emulator = Emulator::start(config, listener).await.unwrap();
        let mut client = ClientConfig::new(
            Merchant {
                app_id: APP_ID.into(),
                private_key: app_key.clone(),
                sign_type: SignType::Rsa2,
                app_auth_token: None,
            },
            emulator.alipay_public_key(),
            emulator.gateway_url(),
        );
        client.timeout = timeout;
        let dir = TempDir::new();
        let svc = Services {
            client: AlipayClient::new(client).unwrap(),
            ledger: Arc::new(Self::open_at(&dir).await),
            guard,
            timeout,
            order_ttl_minutes: 30,
            agent_id: "in-process-agent".into(),
            clock: Arc::new(SystemClock),
            waits: Default::default(),
            approvals: None,
        };
        Self {
            svc,
            emulator,
            http: reqwest::Client::new(),
            orders: AtomicUsize::new(0),
            dir,
        }
    }

    async fn open_at(dir: &TempDir) -> SqliteLedger {
        let scope = AppScope {
            env: Env::Local,
            app_id: APP_ID.into(),
        };
        SqliteLedger::open(&dir.0.join("ledger.db"), scope, &dir.0.join("instances"))
            .await
            .unwrap()
    }

    /// Another handle on the same ledger file and instances directory: what a second server
    /// process sharing the data dir would open.
    async fn open_ledger(&self) -> Arc<dyn Ledger> {
        Arc::new(Self::open_at(&self.dir).await)
    }

    /// Services as that second process would have them: same client and limits, its own ledger.
    fn services_on(&self, ledger: Arc<dyn Ledger>) -> Services {
        Services {
            ledger,
            ..self.svc.clone()
        }
    }

    fn ledger(&self) -> &dyn Ledger {
        self.svc.ledger.as_ref()
    }

    // --- orders -------------------------------------------------------------------------------

    /// A new order number, recorded by `service::orders::create` (a QR code is precreated at the
    /// gateway at once; a web page link is only signed, the gateway sees it when it is opened).
    async fn order(&self, kind: OrderKind, total: &str) -> OutTradeNo {
        let n = self.orders.fetch_add(1, Ordering::Relaxed) + 1;
        let no = OutTradeNo::parse(&format!("IP_ORDER_{n}")).unwrap();
        let created = orders::create(
            &self.svc,
            &CreateRequest {
                out_trade_no: Some(no.clone()),
                kind,
                amount: amount(total),
                title: "in-process test".into(),
                expires_in_minutes: None,
            },
            &orders::ToolCall {
                tool: "create-web-page-alipay-payment",
                arguments: &serde_json::Map::new(),
            },
        )
        .await;
        let Created::New { order, .. } = created else {
            panic!("create {no}: {created:?}")
        };
        if kind != OrderKind::QrCode {
            // The buyer opens the link: only then does the gateway know the order.
            let page = self.http.get(&order.link).send().await.unwrap();
            assert!(page.status().is_success(), "open {no}: {}", page.status());
        }
        no
    }

    /// An order of `total` the buyer paid, as the gateway says.
    async fn paid_order(&self, total: &str) -> OutTradeNo {
        let no = self.order(OrderKind::QrCode, total).await;
        self.buyer("pay", &no).await;
        no
    }

    /// The buyer (or time) acts on the gateway: `scan`, `pay`, `close`, `finish`.
    async fn buyer(&self, action: &str, no: &OutTradeNo) -> Value {
        let r = self
            .http
            .post(self.control(&format!("apps/{APP_ID}/trades/{no}/{action}")))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{action} {no}: {status} {body}");
        body
    }

    // --- refunds ------------------------------------------------------------------------------

    fn request(no: &OutTradeNo, request_no: &str, yuan: &str) -> RefundRequest {
        RefundRequest {
            out_trade_no: no.clone(),
            out_request_no: req(request_no),
            amount: amount(yuan),
            reason: Some("in-process test".into()),
        }
    }

    /// `service::refunds::refund` as the tool calls it, a person approving if asked.
    async fn refund(&self, no: &OutTradeNo, request_no: &str, yuan: &str) -> RefundResult {
        self.refund_asking(no, request_no, yuan, &Person::approving())
            .await
    }

    async fn refund_asking(
        &self,
        no: &OutTradeNo,
        request_no: &str,
        yuan: &str,
        person: &dyn Confirm,
    ) -> RefundResult {
        refunds::refund(&self.svc, Self::request(no, request_no, yuan), person).await
    }

    /// The ledger's state of a refund (`None`: never recorded).
    async fn ledger_state(&self, no: &OutTradeNo, request_no: &str) -> Option<RefundState> {
        self.ledger()
            .refund(no, &req(request_no))
            .await
            .unwrap()
            .map(|r| r.state)
    }

    // --- the gateway's own account --------------------------------------------------------------

    fn control(&self, path: &str) -> String {
        format!("{}/__emulator/{path}", self.emulator.base_url())
    }

    async fn get(&self, path: &str) -> Value {
        let r = self.http.get(self.control(path)).send().await.unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// The order and trade as the gateway holds them.
    async fn gateway_trade(&self, no: &OutTradeNo) -> Value {
        self.get(&format!("apps/{APP_ID}/trades/{no}")).await
    }

    /// What the gateway has refunded on the trade, in total.
    async fn gateway_refund_fee(&self, no: &OutTradeNo) -> Money {
        let trade = self.gateway_trade(no).await;
        money(trade["refund_fee"].as_str().unwrap())
    }

    /// The refunds the gateway made on the trade: (number, amount), in order.
    async fn gateway_refunds(&self, no: &OutTradeNo) -> Vec<(String, Money)> {
        let trade = self.gateway_trade(no).await;
        trade["refunds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["out_request_no"].as_str().unwrap().to_string(),
                    money(r["refund_amount"].as_str().unwrap()),
                )
            })
            .collect()
    }

    /// Every `/gateway.do` request, oldest first.
    async fn requests(&self) -> Vec<Logged> {
        let log = self.get("requests").await;
        log["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| Logged {
                method: r["method"].as_str().map(str::to_string),
                out_trade_no: r["out_trade_no"].as_str().map(str::to_string),
                out_request_no: biz_field(r, "out_request_no"),
                fault: r["fault"].as_str().map(str::to_string),
            })
            .collect()
    }

    /// Every `alipay.trade.refund` that reached the gateway.
    async fn refund_requests(&self) -> Vec<Logged> {
        self.of_method(REFUND).await
    }

    async fn of_method(&self, method: &str) -> Vec<Logged> {
        let mut requests = self.requests().await;
        requests.retain(|r| r.method.as_deref() == Some(method));
        requests
    }

    /// How many times a refund number was sent to the gateway.
    async fn sends_of(&self, request_no: &str) -> usize {
        let sent = self.refund_requests().await;
        sent.iter()
            .filter(|r| r.out_request_no.as_deref() == Some(request_no))
            .count()
    }

    /// The next gateway answers of `method` go wrong (`POST /__emulator/faults`).
    async fn fault(&self, fault: Value) {
        let r = self
            .http
            .post(self.control("faults"))
            .json(&fault)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "fault {fault}: {}", r.status());
    }

    async fn clear_faults(&self) {
        let r = self
            .http
            .delete(self.control("faults"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
}

/// A value of `biz_content` in a logged request's sign content (our numbers need no escaping).
fn biz_field(request: &Value, name: &str) -> Option<String> {
    let content = request["sign_content"].as_str()?;
    let start = content.find(&format!("\"{name}\":\""))? + name.len() + 4;
    let end = content[start..].find('"')? + start;
    Some(content[start..end].to_string())
}

// ---------------------------------------------------------------------------------------------
// People deciding (the `Confirm` seam)
// ---------------------------------------------------------------------------------------------

/// A person who always gives the same answer, and remembers every plan shown to them.
struct Person {
    answer: Decision,
    shown: Mutex<Vec<RefundPlan>>,
}

impl Person {
    fn answering(answer: Decision) -> Self {
        Self {
            answer,
            shown: Mutex::new(Vec::new()),
        }
    }

    fn approving() -> Self {
        Self::answering(Decision::Approved)
    }

    fn shown(&self) -> Vec<RefundPlan> {
        self.shown.lock().unwrap().clone()
    }
}

#[async_trait]
impl Confirm for Person {
    fn can_ask(&self) -> bool {
        true
    }

    async fn ask(&self, plan: &RefundPlan) -> Decision {
        self.shown.lock().unwrap().push(plan.clone());
        self.answer.clone()
    }
}

/// A person who takes their time: while they decide, someone else refunds the same order (with an
/// approving person of their own), so the figures they were shown are no longer true. Then they
/// approve.
struct SlowPerson {
    meanwhile: Services,
    other: RefundRequest,
    other_result: Mutex<Option<RefundResult>>,
}

#[async_trait]
impl Confirm for SlowPerson {
    fn can_ask(&self) -> bool {
        true
    }

    async fn ask(&self, _plan: &RefundPlan) -> Decision {
        let other =
            refunds::refund(&self.meanwhile, self.other.clone(), &Person::approving()).await;
        *self.other_result.lock().unwrap() = Some(other);
        Decision::Approved
    }
}

// ---------------------------------------------------------------------------------------------
// Reading results
// ---------------------------------------------------------------------------------------------

/// The audit row of a result as the operator reads it: `refused: <rule> / not sent`, `allowed /
/// succeeded`, `replayed / succeeded`, …; `None` when nothing was decided yet.
fn audit(result: &RefundResult) -> Option<String> {
    result
        .audit()
        .map(|(decision, outcome)| format!("{decision} / {}", outcome.as_str()))
}

fn moved_now(result: &RefundResult) -> Option<bool> {
    match result {
        RefundResult::Succeeded { moved_now, .. } => Some(*moved_now),
        _ => None,
    }
}

fn guardrail(result: &RefundResult) -> &Guardrail {
    match result {
        RefundResult::Refused(Refusal::Guardrail(g)) => g,
        other => panic!("expected a guardrail refusal, got {other:?}"),
    }
}

fn no_guard() -> Guardrails {
    Guardrails::default()
}

// =============================================================================================
// 1. One number, one refund
// =============================================================================================

#[tokio::test]
async fn a_refund_number_moves_money_once_and_its_replay_or_misuse_sends_nothing() {
    let h = Harness::new(no_guard()).await;
    // A web-page order, opened and paid by the buyer, so both order kinds are covered.
    let no = h.order(OrderKind::WebPage, "10.00").await;
    h.buyer("pay", &no).await;

    let first = h.refund(&no, "R1", "3.00").await;
    assert_eq!(moved_now(&first), Some(true), "{first:?}");
    assert_eq!(
        first.audit(),
        Some((AuditDecision::Allowed, AuditOutcome::Succeeded))
    );
    assert_eq!(h.gateway_refund_fee(&no).await, money("3.00"));
    assert_eq!(h.sends_of("R1").await, 1);
    assert_eq!(
        h.ledger_state(&no, "R1").await,
        Some(RefundState::Succeeded)
    );

    // The same number again: answered from the ledger, not a single request to the gateway.
    let before = h.requests().await.len();
    let again = h.refund(&no, "R1", "3.00").await;
    let RefundResult::Replayed(record) = &again else {
        panic!("expected a replay, got {again:?}")
    };
    assert_eq!(record.refund_amount, amount("3.00"));
    assert_eq!(
        again.audit(),
        Some((AuditDecision::Replayed, AuditOutcome::Succeeded))
    );
    assert_eq!(h.requests().await.len(), before, "a replay sends nothing");

    // The same number with another amount: refused locally, still nothing sent.
    let other = h.refund(&no, "R1", "4.00").await;
    let RefundResult::Refused(Refusal::Conflict(record)) = &other else {
        panic!("expected a conflict, got {other:?}")
    };
    assert_eq!(
        record.refund_amount,
        amount("3.00"),
        "the conflict names what the number means"
    );
    assert_eq!(
        audit(&other).as_deref(),
        Some("refused: number already used / not sent")
    );
    assert_eq!(h.requests().await.len(), before, "a conflict sends nothing");
    assert_eq!(
        h.gateway_refund_fee(&no).await,
        money("3.00"),
        "refunded once"
    );
}

// =============================================================================================
// 2. Never more than was paid
// =============================================================================================

#[tokio::test]
async fn partial_refunds_reach_exactly_what_was_paid_and_not_one_fen_more() {
    let h = Harness::new(no_guard()).await;
    let no = h.paid_order("10.00").await;

    for (n, yuan) in [("P1", "3.00"), ("P2", "6.99")] {
        let r = h.refund(&no, n, yuan).await;
        assert_eq!(moved_now(&r), Some(true), "{n}: {r:?}");
    }
    assert_eq!(h.gateway_refund_fee(&no).await, money("9.99"));

    // 0.01 remains: 0.02 is one fen too many. Refused with the figures it was decided on, which
    // are the gateway's own: what the buyer paid and what it has refunded.
    let sent = h.refund_requests().await.len();
    let over = h.refund(&no, "P3", "0.02").await;
    let trade = h.gateway_trade(&no).await;
    assert_eq!(
        guardrail(&over),
        &Guardrail::Remaining {
            order: no.clone(),
            asked: amount("0.02"),
            paid: money(trade["total_amount"].as_str().unwrap()),
            refunded: money(trade["refund_fee"].as_str().unwrap()),
        }
    );
    assert_eq!(
        audit(&over).as_deref(),
        Some("refused: refundable amount / not sent")
    );
    assert_eq!(h.refund_requests().await.len(), sent, "nothing sent");
    assert_eq!(
        h.ledger_state(&no, "P3").await,
        None,
        "nothing recorded either"
    );

    // Exactly the remainder: the trade is fully refunded, and Alipay closes it.
    let last = h.refund(&no, "P3", "0.01").await;
    assert_eq!(moved_now(&last), Some(true), "{last:?}");
    let trade = h.gateway_trade(&no).await;
    assert_eq!(trade["refund_fee"], "10.00");
    assert_eq!(trade["trade_status"], "TRADE_CLOSED");

    // One fen past what was paid: the trade is no longer refundable at all.
    let sent = h.refund_requests().await.len();
    let past = h.refund(&no, "P4", "0.01").await;
    assert_eq!(
        guardrail(&past),
        &Guardrail::NotPaid {
            order: no.clone(),
            status: Some(TradeStatus::TradeClosed),
        }
    );
    assert_eq!(
        audit(&past).as_deref(),
        Some("refused: refundable amount / not sent")
    );
    assert_eq!(h.refund_requests().await.len(), sent, "nothing sent");
    assert_eq!(h.gateway_refund_fee(&no).await, money("10.00"));
}

// =============================================================================================
// 3. The configured limits, to the fen
// =============================================================================================

#[tokio::test]
async fn the_largest_single_refund_is_allowed_at_the_limit_and_refused_one_fen_over() {
    let h = Harness::new(Guardrails {
        max_refund: Some(amount("5.00")),
        ..no_guard()
    })
    .await;
    let no = h.paid_order("20.00").await;

    assert_eq!(
        moved_now(&h.refund(&no, "M1", "4.99").await),
        Some(true),
        "just under"
    );
    assert_eq!(
        moved_now(&h.refund(&no, "M2", "5.00").await),
        Some(true),
        "at the limit"
    );

    let before = h.requests().await.len();
    let over = h.refund(&no, "M3", "5.01").await;
    assert_eq!(
        guardrail(&over),
        &Guardrail::MaxRefund {
            asked: amount("5.01"),
            limit: amount("5.00"),
        }
    );
    assert_eq!(
        audit(&over).as_deref(),
        Some("refused: AP_MAX_REFUND_AMOUNT / not sent")
    );
    // Refused before even the trade query: the gateway saw nothing of it.
    assert_eq!(h.requests().await.len(), before);
    assert_eq!(h.gateway_refund_fee(&no).await, money("9.99"));
}

#[tokio::test]
async fn the_daily_refund_limit_counts_every_order_of_the_day_to_the_fen() {
    let h = Harness::new(Guardrails {
        daily_refund_limit: Some(amount("10.00")),
        ..no_guard()
    })
    .await;
    let (a, b) = (h.paid_order("8.00").await, h.paid_order("8.00").await);

    assert_eq!(
        moved_now(&h.refund(&a, "D1", "5.99").await),
        Some(true),
        "under the limit"
    );
    // 5.99 + 4.01 = 10.00: exactly the limit, on another order.
    assert_eq!(
        moved_now(&h.refund(&b, "D2", "4.01").await),
        Some(true),
        "at the limit"
    );

    let sent = h.refund_requests().await.len();
    let over = h.refund(&b, "D3", "0.01").await;
    assert_eq!(
        guardrail(&over),
        &Guardrail::Daily {
            asked: amount("0.01"),
            used: money("10.00"),
            limit: money("10.00"),
        }
    );
    assert_eq!(
        audit(&over).as_deref(),
        Some("refused: AP_DAILY_REFUND_LIMIT / not sent")
    );
    assert_eq!(h.refund_requests().await.len(), sent, "nothing sent");
    let refunded = h.gateway_refund_fee(&a).await.fen() + h.gateway_refund_fee(&b).await.fen();
    assert_eq!(
        refunded, 1_000,
        "the gateway refunded exactly the day's limit"
    );
}

#[tokio::test]
async fn an_order_the_buyer_has_not_paid_is_never_refunded() {
    let h = Harness::new(no_guard()).await;
    let no = h.order(OrderKind::QrCode, "10.00").await;
    // The buyer scanned the code but did not pay: a trade waiting for the buyer.
    h.buyer("scan", &no).await;

    let r = h.refund(&no, "U1", "1.00").await;
    assert_eq!(
        guardrail(&r),
        &Guardrail::NotPaid {
            order: no.clone(),
            status: Some(TradeStatus::WaitBuyerPay),
        }
    );
    assert_eq!(
        audit(&r).as_deref(),
        Some("refused: refundable amount / not sent")
    );
    assert!(h.refund_requests().await.is_empty(), "nothing sent");
    assert_eq!(h.gateway_trade(&no).await["trade_status"], "WAIT_BUYER_PAY");
}

// =============================================================================================
// 4. Lost answers and refusals by the gateway
// =============================================================================================

#[tokio::test]
async fn a_refund_whose_answer_is_lost_is_found_made_within_the_call_and_made_once() {
    let h = Harness::new(no_guard()).await;
    let no = h.paid_order("10.00").await;

    // The gateway makes the refund, then the connection drops halfway through its answer.
    h.fault(json!({"method": REFUND, "kind": "truncated", "times": 1}))
        .await;
    let r = h.refund(&no, "L1", "2.50").await;
    // The refund query found it: it moved money in this call, and was not sent again.
    assert_eq!(moved_now(&r), Some(true), "{r:?}");
    assert_eq!(audit(&r).as_deref(), Some("allowed / succeeded"));
    let sent = h.refund_requests().await;
    assert_eq!(
        sent.len(),
        1,
        "found by the refund query, not resent: {sent:?}"
    );
    assert_eq!(sent[0].fault.as_deref(), Some("truncated"));
    assert_eq!(h.of_method(REFUND_QUERY).await.len(), 1);
    assert_eq!(
        h.gateway_refunds(&no).await,
        vec![("L1".into(), money("2.50"))]
    );
    assert_eq!(
        h.ledger_state(&no, "L1").await,
        Some(RefundState::Succeeded)
    );
}

#[tokio::test]
async fn a_refund_whose_answer_times_out_is_found_made_within_the_call() {
    // A short client timeout; the gateway holds its answer far longer (after making the refund).
    let h = Harness::with_timeout(no_guard(), Duration::from_millis(1000)).await;
    let no = h.paid_order("10.00").await;
    h.fault(json!({"method": REFUND, "kind": "timeout", "delay_ms": 5000, "times": 1}))
        .await;
    let r = h.refund(&no, "T1", "1.00").await;
    assert_eq!(moved_now(&r), Some(true), "{r:?}");
    assert_eq!(h.sends_of("T1").await, 1);
    assert_eq!(h.gateway_refund_fee(&no).await, money("1.00"));
}

#[tokio::test]
async fn an_http_500_before_the_refund_is_made_is_resent_with_the_same_number_within_the_call() {
    let h = Harness::new(no_guard()).await;
    let no = h.paid_order("10.00").await;
    // HTTP 500 proves nothing either way (it may come from a proxy after Alipay acted): the flow
    // looks the refund up, finds nothing, and resends it with the same number.
    h.fault(json!({"method": REFUND, "kind": "http_500", "times": 1}))
        .await;
    let r = h.refund(&no, "H1", "1.00").await;
    assert_eq!(moved_now(&r), Some(true), "{r:?}");
    let sent = h.refund_requests().await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent.iter()
            .all(|s| s.out_request_no.as_deref() == Some("H1")),
        "{sent:?}"
    );
    assert_eq!(
        h.gateway_refunds(&no).await,
        vec![("H1".into(), money("1.00"))]
    );
}

#[tokio::test]
async fn a_refund_the_gateway_refuses_fails_and_the_same_number_later_succeeds() {
    let h = Harness::new(no_guard()).await;
    let no = h.paid_order("10.00").await;
    // A definite refusal (not ACQ.SYSTEM_ERROR, which may hide a refund made): nothing moved.
    h.fault(json!({
        "method": REFUND, "kind": "business", "sub_code": "ACQ.SELLER_BALANCE_NOT_ENOUGH", "times": 1
    }))
    .await;
    let r = h.refund(&no, "B1", "4.00").await;
    let RefundResult::Failed(Error::Business(e)) = &r else {
        panic!("expected Alipay's refusal, got {r:?}")
    };
    assert_eq!(e.sub_code.as_deref(), Some("ACQ.SELLER_BALANCE_NOT_ENOUGH"));
    assert_eq!(audit(&r).as_deref(), Some("allowed / failed"));
    assert_eq!(
        h.sends_of("B1").await,
        1,
        "a refusal is not resent within the call"
    );
    assert_eq!(
        h.gateway_refund_fee(&no).await,
        Money::ZERO,
        "nothing moved"
    );
    assert_eq!(h.ledger_state(&no, "B1").await, Some(RefundState::Failed));

    let again = h.refund(&no, "B1", "4.00").await;
    assert_eq!(moved_now(&again), Some(true), "{again:?}");
    assert_eq!(h.sends_of("B1").await, 2);
    assert_eq!(
        h.gateway_refunds(&no).await,
        vec![("B1".into(), money("4.00"))]
    );
}

#[tokio::test]
async fn a_refund_whose_answers_are_all_lost_is_unknown_counted_and_settled_by_the_same_number() {
    let h = Harness::new(no_guard()).await;
    let no = h.paid_order("10.00").await;
    // The refund is made, then every answer about it is lost: the first send, its lookup, the
    // resend with the same number.
    h.fault(json!({"method": REFUND, "kind": "truncated", "times": 2}))
        .await;
    h.fault(json!({"method": REFUND_QUERY, "kind": "truncated", "times": 1}))
        .await;
    let r = h.refund(&no, "X1", "6.00").await;
    assert!(
        matches!(r, RefundResult::Unknown(Error::Transport(_))),
        "{r:?}"
    );
    assert_eq!(audit(&r).as_deref(), Some("allowed / unknown"));
    assert_eq!(
        h.sends_of("X1").await,
        2,
        "first send and one resend, same number"
    );
    assert_eq!(
        h.gateway_refund_fee(&no).await,
        money("6.00"),
        "Alipay made it once"
    );
    assert_eq!(h.ledger_state(&no, "X1").await, Some(RefundState::Unknown));

    // Unknown still counts: a new refund of 5.00 would go past what was paid if X1 happened.
    let sent = h.sends_of("X2").await;
    let next = h.refund(&no, "X2", "5.00").await;
    assert!(
        matches!(
            guardrail(&next),
            Guardrail::Remaining { refunded, .. } if *refunded == money("6.00")
        ),
        "{next:?}"
    );
    assert_eq!(h.sends_of("X2").await, sent);

    // The caller retries with the same number, the gateway healthy: Alipay says it was made
    // (an identical repeat, `fund_change` N, confirmed by the refund query), not made again.
    h.clear_faults().await;
    let retry = h.refund(&no, "X1", "6.00").await;
    assert_eq!(
        moved_now(&retry),
        Some(false),
        "made by the earlier send: {retry:?}"
    );
    assert_eq!(audit(&retry).as_deref(), Some("allowed / succeeded"));
    assert_eq!(
        h.ledger_state(&no, "X1").await,
        Some(RefundState::Succeeded)
    );
    assert_eq!(
        h.gateway_refunds(&no).await,
        vec![("X1".into(), money("6.00"))]
    );
    assert!(
        h.refund_requests()
            .await
            .iter()
            .all(|s| s.out_request_no.as_deref() == Some("X1")),
        "never a new number"
    );
}

// =============================================================================================
// 5. A person approves (AP_REFUND_CONFIRM)
// =============================================================================================

fn confirming() -> Guardrails {
    Guardrails {
        refund_confirm: true,
        ..no_guard()
    }
}

#[tokio::test]
async fn an_approved_refund_is_sent_with_the_figures_the_person_saw() {
    let h = Harness::new(confirming()).await;
    let no = h.paid_order("10.00").await;
    let person = Person::approving();
    let r = h.refund_asking(&no, "C1", "2.00", &person).await;
    assert_eq!(moved_now(&r), Some(true), "{r:?}");
    let shown = person.shown();
    assert_eq!(shown.len(), 1);
    // What the person saw is what the gateway holds, not what the caller said.
    assert_eq!(
        shown[0].paid,
        money(h.gateway_trade(&no).await["total_amount"].as_str().unwrap())
    );
    assert_eq!(shown[0].already_refunded, Money::ZERO);
    assert!(
        shown[0]
            .confirmation_message()
            .contains("Remaining after it: 8.00 yuan")
    );
    assert_eq!(
        h.gateway_refunds(&no).await,
        vec![("C1".into(), money("2.00"))]
    );
}

#[tokio::test]
async fn a_refund_the_person_refuses_is_not_sent() {
    let h = Harness::new(confirming()).await;
    let no = h.paid_order("10.00").await;
    let person = Person::answering(Decision::Refused("the buyer kept the goods".into()));
    let r = h.refund_asking(&no, "C2", "2.00", &person).await;
    assert_eq!(
        guardrail(&r),
        &Guardrail::NotApproved("the buyer kept the goods".into())
    );
    assert_eq!(
        audit(&r).as_deref(),
        Some("refused: AP_REFUND_CONFIRM / not sent")
    );
    assert!(h.refund_requests().await.is_empty(), "nothing sent");
    assert_eq!(h.ledger_state(&no, "C2").await, None);
    assert_eq!(h.gateway_refund_fee(&no).await, Money::ZERO);
}

#[tokio::test]
async fn a_refund_waiting_for_the_person_is_not_sent_and_not_yet_audited() {
    let h = Harness::new(confirming()).await;
    let no = h.paid_order("10.00").await;
    let person = Person::answering(Decision::Asking);
    let r = h.refund_asking(&no, "C3", "2.00", &person).await;
    assert!(matches!(r, RefundResult::AwaitingPerson), "{r:?}");
    assert_eq!(audit(&r), None, "nothing decided yet");
    assert_eq!(person.shown().len(), 1);
    assert!(h.refund_requests().await.is_empty(), "nothing sent");
    assert_eq!(h.ledger_state(&no, "C3").await, None);
}

#[tokio::test]
async fn a_refund_whose_figures_change_while_the_person_decides_is_refused() {
    let h = Harness::new(confirming()).await;
    let no = h.paid_order("10.00").await;
    let person = SlowPerson {
        meanwhile: h.svc.clone(),
        other: Harness::request(&no, "C5", "3.00"),
        other_result: Mutex::new(None),
    };
    let r = h.refund_asking(&no, "C4", "2.00", &person).await;
    // The other refund went through while the person was deciding...
    let other = person.other_result.lock().unwrap().take().unwrap();
    assert_eq!(moved_now(&other), Some(true), "{other:?}");
    // ...so what they approved (nothing refunded yet) is no longer true: refused, not sent.
    assert_eq!(
        guardrail(&r),
        &Guardrail::FiguresChanged {
            asked_paid: money("10.00"),
            asked_refunded: Money::ZERO,
            paid: money("10.00"),
            refunded: money("3.00"),
        }
    );
    assert_eq!(
        audit(&r).as_deref(),
        Some("refused: AP_REFUND_CONFIRM / not sent")
    );
    assert_eq!(h.sends_of("C4").await, 0, "nothing sent for this number");
    assert_eq!(h.ledger_state(&no, "C4").await, None);
    assert_eq!(
        h.gateway_refunds(&no).await,
        vec![("C5".into(), money("3.00"))]
    );
}

// =============================================================================================
// 6. Two servers on one ledger file
// =============================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_ledger_file_never_refund_more_than_was_paid() {
    let h = Harness::new(no_guard()).await;
    let no = h.paid_order("10.00").await;
    // Two handles on one file, as two processes sharing a data dir: neither one's in-process
    // order lock covers the other's, only the ledger's transaction does.
    let servers = [h.svc.clone(), h.services_on(h.open_ledger().await)];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let svc = servers[i % 2].clone();
        let request = Harness::request(&no, &format!("CC{i}"), "3.00");
        tasks.spawn(async move {
            let r = refunds::refund(&svc, request.clone(), &Person::approving()).await;
            (request.out_request_no, r)
        });
    }
    let mut succeeded = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (number, r) = joined.unwrap();
        match &r {
            RefundResult::Succeeded { .. } => succeeded.push(number.to_string()),
            RefundResult::Refused(Refusal::Guardrail(Guardrail::Remaining { .. })) => {}
            other => panic!("{number}: {other:?}"),
        }
    }
    // 3 x 3.00 fit in 10.00, a fourth would not: exactly three are made, whoever sends them.
    assert_eq!(succeeded.len(), 3, "{succeeded:?}");
    let mut at_gateway: Vec<String> = h
        .gateway_refunds(&no)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    at_gateway.sort();
    succeeded.sort();
    assert_eq!(
        at_gateway, succeeded,
        "the gateway made exactly the refunds reported made"
    );
    assert_eq!(h.gateway_refund_fee(&no).await, money("9.00"));
    assert_eq!(
        h.refund_requests().await.len(),
        3,
        "no refused refund reached the gateway"
    );
    // Every success is in the ledger, as either handle reads it.
    for n in &succeeded {
        for server in &servers {
            let record = server.ledger.refund(&no, &req(n)).await.unwrap();
            assert_eq!(record.map(|r| r.state), Some(RefundState::Succeeded), "{n}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_number_sent_by_two_servers_at_once_is_made_once() {
    let h = Harness::new(no_guard()).await;
    let no = h.paid_order("10.00").await;
    let servers = [h.svc.clone(), h.services_on(h.open_ledger().await)];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let svc = servers[i % 2].clone();
        let request = Harness::request(&no, "SAME", "3.00");
        tasks.spawn(async move { refunds::refund(&svc, request, &Person::approving()).await });
    }
    let mut moved = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            RefundResult::Succeeded { moved_now, .. } => moved += usize::from(moved_now),
            // Seen in flight at the other server, or already made: nothing sent.
            RefundResult::InFlightElsewhere { .. } | RefundResult::Replayed(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(moved, 1, "exactly one call says its send moved the money");
    assert_eq!(
        h.gateway_refunds(&no).await,
        vec![("SAME".into(), money("3.00"))]
    );
    assert_eq!(
        h.ledger_state(&no, "SAME").await,
        Some(RefundState::Succeeded)
    );
}

// =============================================================================================
// 7. After a crash: reconciliation
// =============================================================================================

/// What a server records just before it sends a refund (`Ledger::begin_refund`).
async fn begin(ledger: &dyn Ledger, no: &OutTradeNo, number: &str, yuan: &str) -> RefundBegin {
    let refund = NewRefund {
        out_trade_no: no.clone(),
        out_request_no: req(number),
        amount: amount(yuan),
        reason: None,
        owner: ledger.instance().clone(),
        step: ApprovalStep::None,
    };
    let limits = RefundLimits {
        daily: None,
        day: mcp_server_alipay::domain::beijing_today(),
        paid: money("10.00"),
    };
    ledger.begin_refund(&refund, &limits).await.unwrap()
}

#[tokio::test]
async fn reconcile_settles_what_a_dead_server_sent_and_leaves_a_live_servers_refund_alone() {
    let h = Harness::new(no_guard()).await;
    let no = h.paid_order("10.00").await;

    // Another server records a refund, sends it (the gateway makes it), and dies before it can
    // record the answer.
    let dead = h.open_ledger().await;
    assert_eq!(
        begin(dead.as_ref(), &no, "DEAD_SENT", "4.00").await,
        RefundBegin::Fresh
    );
    let answer = h
        .svc
        .client
        .execute(&TradeRefund {
            out_trade_no: no.to_string(),
            refund_amount: amount("4.00"),
            out_request_no: Some("DEAD_SENT".into()),
            refund_reason: None,
        })
        .await
        .unwrap();
    assert!(answer.fund_changed());
    drop(dead);

    // A third server, alive, has just recorded a refund and is about to send it.
    let alive = h.open_ledger().await;
    assert_eq!(
        begin(alive.as_ref(), &no, "ALIVE", "1.00").await,
        RefundBegin::Fresh
    );

    let queries_before = h.of_method(REFUND_QUERY).await.len();
    let done = reconcile(&h.svc).await;
    assert_eq!(
        done,
        Reconciled {
            settled: 1,
            still_unknown: 0,
            left_to_live_senders: 1,
            not_reachable: 0,
        }
    );
    assert_eq!(
        h.ledger_state(&no, "DEAD_SENT").await,
        Some(RefundState::Succeeded)
    );
    assert_eq!(
        h.ledger_state(&no, "ALIVE").await,
        Some(RefundState::Pending)
    );
    // Settled by a lookup, never by sending again; the live server's refund not even looked up.
    let queries: Vec<Logged> = h.of_method(REFUND_QUERY).await.split_off(queries_before);
    assert_eq!(queries.len(), 1, "{queries:?}");
    assert_eq!(queries[0].out_request_no.as_deref(), Some("DEAD_SENT"));
    assert_eq!(queries[0].out_trade_no.as_deref(), Some(no.as_str()));
    assert_eq!(
        h.gateway_refunds(&no).await,
        vec![("DEAD_SENT".into(), money("4.00"))]
    );
    assert_eq!(h.sends_of("DEAD_SENT").await, 1);

    // The live server's refund is its own: this server does not send it too.
    let before = h.requests().await.len();
    let r = h.refund(&no, "ALIVE", "1.00").await;
    assert!(
        matches!(r, RefundResult::InFlightElsewhere { sent: false }),
        "{r:?}"
    );
    assert_eq!(audit(&r).as_deref(), Some("allowed / not sent"));
    assert_eq!(h.requests().await.len(), before, "nothing sent");
    drop(alive);
}

#[tokio::test]
async fn a_dead_servers_refund_that_never_reached_alipay_stays_counted_until_resent_by_its_number()
{
    let h = Harness::new(no_guard()).await;
    let no = h.paid_order("10.00").await;
    // Recorded, then the process died before sending it.
    let dead = h.open_ledger().await;
    assert_eq!(
        begin(dead.as_ref(), &no, "DEAD_UNSENT", "7.00").await,
        RefundBegin::Fresh
    );
    drop(dead);

    let done = reconcile(&h.svc).await;
    assert_eq!(
        (done.settled, done.still_unknown),
        (0, 1),
        "looked up, not settled"
    );
    // Alipay does not know it (yet): it may still arrive, so it stays unknown, and counted.
    assert_eq!(
        h.ledger_state(&no, "DEAD_UNSENT").await,
        Some(RefundState::Unknown)
    );
    assert_eq!(
        h.sends_of("DEAD_UNSENT").await,
        0,
        "reconciling never sends"
    );
    let other = h.refund(&no, "AFTER", "4.00").await;
    assert!(
        matches!(guardrail(&other), Guardrail::Remaining { refunded, .. } if *refunded == money("7.00")),
        "{other:?}"
    );

    // The caller retries with the same number: sent now, with that number, and made once.
    let r = h.refund(&no, "DEAD_UNSENT", "7.00").await;
    assert_eq!(moved_now(&r), Some(true), "{r:?}");
    assert_eq!(
        h.gateway_refunds(&no).await,
        vec![("DEAD_UNSENT".into(), money("7.00"))]
    );
    assert_eq!(
        h.ledger_state(&no, "DEAD_UNSENT").await,
        Some(RefundState::Succeeded)
    );
}

// =============================================================================================
// 8. The audit row of every result
// =============================================================================================

#[tokio::test]
async fn each_result_is_audited_as_the_operator_reads_it() {
    let h = Harness::new(Guardrails {
        max_refund: Some(amount("5.00")),
        daily_refund_limit: Some(amount("9.01")),
        ..no_guard()
    })
    .await;
    let no = h.paid_order("10.00").await;
    let unpaid = h.order(OrderKind::QrCode, "10.00").await;
    h.buyer("scan", &unpaid).await;
    let other = h.paid_order("10.00").await;

    let mut rows: Vec<(&str, Option<String>)> = Vec::new();
    rows.push(("made", audit(&h.refund(&no, "A1", "5.00").await)));
    rows.push(("same number", audit(&h.refund(&no, "A1", "5.00").await)));
    rows.push((
        "same number, other amount",
        audit(&h.refund(&no, "A1", "1.00").await),
    ));
    rows.push((
        "over the largest refund",
        audit(&h.refund(&no, "A2", "5.01").await),
    ));
    // 5.00 used of the day's 9.01; 5.00 of the order's 10.00 remain.
    rows.push((
        "over the day's budget",
        audit(&h.refund(&no, "A3", "4.02").await),
    ));
    rows.push(("made again", audit(&h.refund(&no, "A4", "4.00").await)));
    // 1.00 remains on the order, 0.01 of the day: the order's rule is checked first.
    rows.push((
        "over what remains",
        audit(&h.refund(&no, "A5", "1.01").await),
    ));
    rows.push(("not paid", audit(&h.refund(&unpaid, "A6", "1.00").await)));
    h.fault(json!({
        "method": REFUND, "kind": "business", "sub_code": "ACQ.SELLER_BALANCE_NOT_ENOUGH", "times": 1
    }))
    .await;
    rows.push((
        "refused by Alipay",
        audit(&h.refund(&other, "A7", "0.01").await),
    ));
    // The trade query that gives what was paid fails: no rule refused it, and nothing was sent.
    h.fault(json!({"method": "alipay.trade.query", "kind": "http_502", "times": 1}))
        .await;
    rows.push((
        "trade query failed",
        audit(&h.refund(&other, "A8", "0.01").await),
    ));
    let rows: Vec<String> = rows
        .into_iter()
        .map(|(what, audit)| format!("{what}: {}", audit.unwrap_or_default()))
        .collect();
    assert_eq!(
        rows,
        [
            "made: allowed / succeeded",
            "same number: replayed / succeeded",
            "same number, other amount: refused: number already used / not sent",
            "over the largest refund: refused: AP_MAX_REFUND_AMOUNT / not sent",
            "over the day's budget: refused: AP_DAILY_REFUND_LIMIT / not sent",
            "made again: allowed / succeeded",
            "over what remains: refused: refundable amount / not sent",
            "not paid: refused: refundable amount / not sent",
            "refused by Alipay: allowed / failed",
            "trade query failed: allowed / not sent",
        ]
    );
    // The gateway's account agrees with the rows: A1 and A4 made, A7 refused by Alipay, nothing
    // else sent.
    assert_eq!(h.gateway_refund_fee(&no).await, money("9.00"));
    assert_eq!(h.gateway_refund_fee(&other).await, Money::ZERO);
    let numbers: Vec<Option<String>> = h
        .refund_requests()
        .await
        .into_iter()
        .map(|r| r.out_request_no)
        .collect();
    assert_eq!(
        numbers,
        [Some("A1".into()), Some("A4".into()), Some("A7".into())]
    );
}
