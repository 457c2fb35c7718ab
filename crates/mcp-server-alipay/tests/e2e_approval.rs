//! Refund approval pages, end to end (spawned binary, local mode, `AP_REFUND_CONFIRM=true`): a
//! client without elicitation gets a one-time link instead of a refund; nothing reaches the
//! gateway until a person POSTs the page's form (anti-forgery value, PIN when set); every refusal
//! sends nothing; approval sends exactly one refund, denial and expiry none, and the replayed tool
//! call says how it ended. Over stdio (the pages on their own loopback listener) and over
//! Streamable HTTP (the pages beside /mcp, without the bearer token).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::http::{HttpServer, connect_http};
use common::*;
use rmcp::model::{CallToolResult, ProtocolVersion};
use rmcp::service::{RoleClient, RunningService};
use serde_json::{Value, json};

const ORDER: &str = "AP_1";

fn env_with(dir: &TempDir, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env = local_env(dir.path(), free_port());
    env.insert(
        "AP_NOTIFY_LISTEN".into(),
        format!("127.0.0.1:{}", free_port()),
    );
    env.insert("AP_REFUND_CONFIRM".into(), "true".into());
    // Tests run at once: never the shared default port.
    env.insert("AP_APPROVAL_LISTEN".into(), "127.0.0.1:0".into());
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    env
}

/// A stdio server with a client that cannot ask (no elicitation), and order `AP_1` paid 30.00.
struct Setup {
    dir: TempDir,
    env: HashMap<String, String>,
    client: EventSession,
    gateway: Gateway,
}

impl Setup {
    async fn start(tag: &str, extra: &[(&str, &str)]) -> Self {
        let dir = TempDir::new(tag);
        let env = env_with(&dir, extra);
        let (client, _updates, _questions) =
            connect_events(&env, ProtocolVersion::V_2025_06_18, Elicit::Unsupported).await;
        let gateway = paid_order(&client, ORDER, "30.00").await;
        Self {
            dir,
            env,
            client,
            gateway,
        }
    }

    /// Stop the server, wait until its ports are free, and start it again on the same data.
    async fn restart(self) -> Self {
        let Self {
            dir,
            env,
            client,
            gateway,
        } = self;
        client.cancel().await.unwrap();
        let ports: Vec<String> = ["AP_LOCAL_PORT", "AP_APPROVAL_LISTEN"]
            .iter()
            .map(|k| {
                let v = &env[*k];
                if v.contains(':') {
                    v.clone()
                } else {
                    format!("127.0.0.1:{v}")
                }
            })
            .collect();
        let free = eventually(20, || async {
            ports
                .iter()
                .all(|p| std::net::TcpListener::bind(p.as_str()).is_ok())
        })
        .await;
        assert!(free, "the old server let go of {ports:?}");
        let (client, _updates, _questions) =
            connect_events(&env, ProtocolVersion::V_2025_06_18, Elicit::Unsupported).await;
        Self {
            dir,
            env,
            client,
            gateway,
        }
    }

    async fn refund(&self, amount: &str, request_no: &str) -> CallToolResult {
        refund_call(&self.client, amount, request_no, None).await
    }

    /// Refund and expect a link: the link.
    async fn offered(&self, amount: &str, request_no: &str) -> String {
        approval_url(&self.refund(amount, request_no).await)
    }

    async fn sent(&self) -> usize {
        self.gateway.count_method("alipay.trade.refund").await
    }

    async fn refund_fee(&self) -> Value {
        self.gateway.trade(ORDER).await["refund_fee"].clone()
    }

    fn db(&self) -> Db {
        Db::open(self.dir.path())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    async fn stop(self) {
        self.client.cancel().await.unwrap();
    }
}

async fn refund_call<H: rmcp::ClientHandler>(
    client: &RunningService<RoleClient, H>,
    amount: &str,
    request_no: &str,
    reason: Option<&str>,
) -> CallToolResult {
    let mut args = json!({"outTradeNo": ORDER, "refundAmount": amount, "outRequestNo": request_no});
    if let Some(reason) = reason {
        args["refundReason"] = json!(reason);
    }
    call(client, "refund-alipay-payment", args).await
}

/// The link of an `awaitingApproval` answer (asserting that is what it is).
fn approval_url(result: &CallToolResult) -> String {
    assert!(!is_error(result), "{}", text(result));
    let out = structured(result);
    assert_eq!(out["status"], "awaitingApproval", "{out}");
    let url = out["approvalUrl"]
        .as_str()
        .expect("approvalUrl")
        .to_string();
    assert!(
        text(result).contains(&url),
        "the text carries the link too: {}",
        text(result)
    );
    url
}

/// The token at the end of a link.
fn token_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

/// A refusal by a guardrail, by rule name, with `words` in its text.
fn refused_by(result: &CallToolResult, rule: &str, words: &[&str]) {
    assert!(is_error(result), "{}", text(result));
    let t = text(result);
    assert!(t.contains(&format!("Refused by guardrail {rule}")), "{t}");
    for w in words {
        assert!(t.contains(w), "{w:?} in {t}");
    }
    assert_eq!(structured(result)["error"]["rule"], rule, "{t}");
}

/// A page's answer.
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get(url: &str) -> Reply {
    let r = browser().get(url).send().await.unwrap();
    Reply {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.text().await.unwrap(),
    }
}

async fn post(url: &str, form: &str) -> Reply {
    let r = browser()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string())
        .send()
        .await
        .unwrap();
    Reply {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.text().await.unwrap(),
    }
}

/// The hidden anti-forgery value of an open page.
fn csrf_of(page: &Reply) -> String {
    assert_eq!(page.status, 200, "{page:?}");
    let marker = "name=\"csrf\" value=\"";
    let start = page.body.find(marker).expect("a csrf field") + marker.len();
    let end = page.body[start..].find('"').unwrap() + start;
    page.body[start..end].to_string()
}

/// GET the page and POST `decision` with its csrf (and `extra`, e.g. `&pin=…`).
async fn decide(url: &str, decision: &str, extra: &str) -> Reply {
    let csrf = csrf_of(&get(url).await);
    post(url, &format!("decision={decision}&csrf={csrf}{extra}")).await
}

const APPROVED: &str = "Approved: Alipay confirmed the refund.";

/// The ledger file, read (and, for expiry, written) beside the running server.
struct Db(rusqlite::Connection);

impl Db {
    fn open(dir: &std::path::Path) -> Self {
        let conn = rusqlite::Connection::open(dir.join("data/local/ledger.db")).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        Self(conn)
    }

    /// `(state, detail)` of a refund, if recorded.
    fn refund(&self, request_no: &str) -> Option<(String, Option<String>)> {
        self.0
            .query_row(
                "SELECT state, detail FROM refunds WHERE out_request_no = ?1",
                [request_no],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ok()
    }

    fn state(&self, request_no: &str) -> String {
        self.refund(request_no)
            .unwrap_or_else(|| panic!("refund {request_no} is not in the ledger"))
            .0
    }

    /// Statuses of a refund's approvals, oldest first.
    fn approvals(&self, request_no: &str) -> Vec<String> {
        let mut stmt = self
            .0
            .prepare("SELECT status FROM approvals WHERE out_request_no = ?1 ORDER BY rowid")
            .unwrap();
        stmt.query_map([request_no], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// `decision | outcome | arguments` of every audit row, oldest first.
    fn audit(&self) -> Vec<String> {
        let mut stmt = self
            .0
            .prepare(
                "SELECT decision || ' | ' || outcome || ' | ' || arguments FROM audit ORDER BY id",
            )
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn count(&self, sql: &str) -> i64 {
        self.0.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// Move a refund's open approval's expiry to `at` (Beijing `yyyy-MM-dd HH:mm:ss`).
    fn expire_at(&self, request_no: &str, at: &str) {
        let n = self
            .0
            .execute(
                "UPDATE approvals SET expires_at = ?2 WHERE out_request_no = ?1 AND status = 'open'",
                [request_no, at],
            )
            .unwrap();
        assert_eq!(n, 1, "one open approval for {request_no}");
    }

    /// Every text cell of the file, for "the secret is nowhere" checks.
    fn dump(&self) -> String {
        let mut out = String::new();
        for table in ["refunds", "approvals", "audit", "orders"] {
            let mut stmt = self.0.prepare(&format!("SELECT * FROM {table}")).unwrap();
            let n = stmt.column_count();
            let mut rows = stmt.query([]).unwrap();
            while let Some(row) = rows.next().unwrap() {
                for i in 0..n {
                    if let Ok(Some(s)) = row.get::<_, Option<String>>(i) {
                        out.push_str(&s);
                        out.push('\n');
                    }
                }
            }
        }
        out
    }
}

/// Beijing time `minutes` from now (negative: ago), as the ledger writes it.
fn beijing_in(minutes: i64) -> String {
    let beijing = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    (chrono::Utc::now() + chrono::TimeDelta::minutes(minutes))
        .with_timezone(&beijing)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

// 1 ------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_client_without_elicitation_gets_a_link_and_the_refund_waits_counted_but_unsent() {
    let s = Setup::start("appr-offer", &[]).await;
    let before = beijing_in(0);
    let result = s.refund("12.5", "AP_R1").await;
    let url = approval_url(&result);
    let out = structured(&result);
    assert!(
        url.starts_with("http://127.0.0.1:") && url.contains("/approve/"),
        "{url}"
    );
    let token = token_of(&url);
    assert_eq!(token.len(), 64, "256 random bits in hex: {url}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{url}");
    assert_eq!(out["paidAmount"], "30.00", "{out}");
    assert_eq!(out["alreadyRefunded"], "0.00", "{out}");
    assert_eq!(out["refundAmount"], "12.50", "{out}");
    assert_eq!(out["outRequestNo"], "AP_R1", "{out}");
    assert_eq!(out["confirmed"], false, "{out}");
    assert!(
        out.get("refundResult").is_none(),
        "not a refund result: {out}"
    );
    let expires = out["approvalExpiresAt"].as_str().unwrap();
    assert_eq!(expires.len(), 19, "{out}");
    // Default AP_REFUND_APPROVAL_TTL_MINUTES: 15, in Beijing time.
    assert!(
        expires > beijing_in(14).as_str() && expires <= beijing_in(16).as_str(),
        "expires {expires}, asked at {before} (Beijing)"
    );
    assert!(
        text(&result).starts_with("退款等待审批"),
        "{}",
        text(&result)
    );

    assert_eq!(s.sent().await, 0, "nothing reached the gateway");
    assert_eq!(s.refund_fee().await, "0.00", "no money moved");
    let db = s.db();
    assert_eq!(db.refund("AP_R1"), Some(("awaiting_approval".into(), None)));
    assert_eq!(db.approvals("AP_R1"), ["open"]);
    assert!(
        !db.dump().contains(token),
        "the ledger keeps only a hash of the token"
    );
    assert!(!s.log().contains(token), "the log never carries the token");
    assert!(
        db.audit()
            .iter()
            .any(|a| a.starts_with("allowed | awaiting approval |") && a.contains("AP_R1")),
        "{:?}",
        db.audit()
    );

    // It counts against the refundable amount while it waits: 17.50 left, not 17.51.
    refused_by(
        &s.refund("17.51", "AP_R2").await,
        "refundable amount",
        &["17.51"],
    );
    assert_eq!(db.refund("AP_R2"), None, "a refusal records no refund");
    let rest = s.refund("17.50", "AP_R3").await;
    assert_eq!(
        structured(&rest)["alreadyRefunded"],
        "12.50",
        "{}",
        text(&rest)
    );
    approval_url(&rest);
    refused_by(&s.refund("0.01", "AP_R4").await, "refundable amount", &[]);
    assert_eq!(s.sent().await, 0, "still nothing sent");
    s.stop().await;
}

// 2 ------------------------------------------------------------------------------------------

#[tokio::test]
async fn opening_the_link_shows_the_figures_and_changes_nothing_however_often() {
    let s = Setup::start("appr-view", &[]).await;
    // 5.00 refunded first, through its own page.
    let first = s.offered("5", "AP_R0").await;
    assert_eq!(decide(&first, "approve", "").await.status, 200);
    assert_eq!(s.refund_fee().await, "5.00");

    let reason = "退货 a<3 & b>2";
    let result = refund_call(&s.client, "12.5", "AP_R1", Some(reason)).await;
    assert_eq!(
        structured(&result)["alreadyRefunded"],
        "5.00",
        "{}",
        text(&result)
    );
    let url = approval_url(&result);
    let sent = s.sent().await;
    let page = get(&url).await;
    assert_eq!(page.status, 200, "{page:?}");
    for (name, value) in [
        ("content-type", "text/html; charset=utf-8"),
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
    ] {
        assert_eq!(page.headers[name], value, "{name}");
    }
    for shown in [
        "<td>已付款 Paid (Alipay, now)</td><td>30.00 元</td>",
        "<td>已退款 Already refunded</td><td>5.00 元</td>",
        "<td><b>本次退款 This refund</b></td><td><b>12.50 元</b></td>",
        "<td>商户订单号 Order</td><td>AP_1</td>",
        "<td>退款请求号 Refund number</td><td>AP_R1</td>",
        "<td>退款原因 Reason</td><td>退货 a&lt;3 &amp; b&gt;2</td>",
        "name=\"decision\" value=\"approve\"",
        "name=\"decision\" value=\"deny\"",
    ] {
        assert!(page.body.contains(shown), "{shown:?} in {}", page.body);
    }
    assert!(
        !page.body.contains("name=\"pin\""),
        "no PIN field without AP_REFUND_PIN"
    );
    let trade_no = s.gateway.trade(ORDER).await["trade_no"].clone();
    assert!(
        page.body.contains(&format!(
            "<td>支付宝交易号 Alipay trade</td><td>{}</td>",
            trade_no.as_str().unwrap()
        )),
        "{}",
        page.body
    );

    // Again, and again: the same page, the same form, nothing consumed or sent.
    let again = get(&url).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(csrf_of(&again), csrf_of(&page));
    assert_eq!(get(&url).await.status, 200);
    assert_eq!(s.sent().await, sent, "a GET sends no refund");
    assert_eq!(s.refund_fee().await, "5.00");
    let db = s.db();
    assert_eq!(db.state("AP_R1"), "awaiting_approval");
    assert_eq!(db.approvals("AP_R1"), ["open"]);

    // Links that are not one.
    let base = &url[..url.rfind('/').unwrap()];
    for bad in [
        "nope",
        &"0".repeat(64),
        &"g".repeat(64),
        &token_of(&url)[..63],
    ] {
        let r = get(&format!("{base}/{bad}")).await;
        assert_eq!(r.status, 410, "{bad}: {r:?}");
        assert!(r.body.contains("not valid"), "{r:?}");
    }
    // The page still works afterwards, and decides.
    assert!(decide(&url, "approve", "").await.body.contains(APPROVED));
    assert_eq!(s.refund_fee().await, "17.50");
    s.stop().await;
}

// 3 ------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_post_without_the_right_form_or_after_a_decision_sends_nothing() {
    let s = Setup::start("appr-refuse", &[]).await;
    let url = s.offered("12.5", "AP_R1").await;
    let csrf = csrf_of(&get(&url).await);
    let wrong = if csrf.starts_with('0') { "1" } else { "0" }.repeat(csrf.len());
    for (form, status, says) in [
        ("decision=approve".to_string(), 403, "anti-forgery"),
        ("decision=approve&csrf=".to_string(), 403, "anti-forgery"),
        (
            format!("decision=approve&csrf={wrong}"),
            403,
            "anti-forgery",
        ),
        (
            format!("decision=approve&csrf={}", &csrf[1..]),
            403,
            "anti-forgery",
        ),
        (
            format!("decision=approve&decision=approve&csrf={csrf}"),
            400,
            "twice",
        ),
        (
            format!("decision=approve&csrf={csrf}&csrf={csrf}"),
            400,
            "twice",
        ),
        (
            format!("decision=deny&csrf={csrf}&decision=approve"),
            400,
            "twice",
        ),
        (
            format!("decision=approve&csrf={csrf}&pin=1&pin=2"),
            400,
            "twice",
        ),
        (format!("decision=yes&csrf={csrf}"), 403, "approve or deny"),
        (format!("csrf={csrf}"), 403, "approve or deny"),
        (String::new(), 403, "anti-forgery"),
    ] {
        let r = post(&url, &form).await;
        assert_eq!(r.status, status, "{form}: {r:?}");
        assert!(r.body.contains(says), "{form}: {r:?}");
        assert_eq!(s.sent().await, 0, "{form}: nothing sent");
        let db = s.db();
        assert_eq!(db.state("AP_R1"), "awaiting_approval", "{form}");
        assert_eq!(db.approvals("AP_R1"), ["open"], "{form}: not consumed");
    }
    assert_eq!(get(&url).await.status, 200, "the link still works");

    // Decided once: a second POST, either way, does nothing.
    let approved = post(&url, &format!("decision=approve&csrf={csrf}")).await;
    assert!(approved.body.contains(APPROVED), "{approved:?}");
    assert_eq!(s.sent().await, 1);
    for decision in ["approve", "deny"] {
        let r = post(&url, &format!("decision={decision}&csrf={csrf}")).await;
        assert_eq!(r.status, 403, "{decision}: {r:?}");
        assert!(r.body.contains("already approved"), "{r:?}");
    }
    let closed = get(&url).await;
    assert_eq!(closed.status, 410, "{closed:?}");
    assert!(closed.body.contains("already approved"), "{closed:?}");
    assert!(!closed.body.contains("csrf"), "no form on a closed page");
    assert_eq!(s.sent().await, 1, "exactly one refund");
    assert_eq!(s.refund_fee().await, "12.50");
    assert_eq!(s.db().state("AP_R1"), "succeeded");
    s.stop().await;
}

#[tokio::test]
async fn an_expired_link_refuses_the_post_and_the_refund_settles_as_not_approved() {
    let s = Setup::start("appr-expire", &[]).await;
    let url = s.offered("12.5", "AP_R1").await;
    let csrf = csrf_of(&get(&url).await);
    // A minute ahead in Beijing time is still open (the expiry is read as Beijing time).
    s.db().expire_at("AP_R1", &beijing_in(1));
    assert_eq!(get(&url).await.status, 200, "not expired yet");
    // A minute ago: expired.
    s.db().expire_at("AP_R1", &beijing_in(-1));
    let r = post(&url, &format!("decision=approve&csrf={csrf}")).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("expired"), "{r:?}");
    assert_eq!(s.sent().await, 0, "nothing sent");
    let db = s.db();
    assert_eq!(
        db.refund("AP_R1"),
        Some((
            "failed".into(),
            Some("approval: not decided before its link expired".into())
        ))
    );
    assert_eq!(db.approvals("AP_R1"), ["expired"]);
    assert!(
        db.audit()
            .iter()
            .any(|a| a.starts_with("refused: AP_REFUND_CONFIRM: approval expired | not sent |")),
        "{:?}",
        db.audit()
    );
    assert_eq!(get(&url).await.status, 410);

    // The replayed call says it was not approved, and asks for a new number.
    let replay = s.refund("12.5", "AP_R1").await;
    refused_by(
        &replay,
        "AP_REFUND_CONFIRM",
        &["not approved", "expired", "new outRequestNo"],
    );
    assert_eq!(s.sent().await, 0);
    // It no longer counts: the whole 30.00 may be asked for again.
    let again = s.refund("30", "AP_R2").await;
    assert_eq!(
        structured(&again)["alreadyRefunded"],
        "0.00",
        "{}",
        text(&again)
    );
    approval_url(&again);
    s.stop().await;
}

#[tokio::test]
async fn an_approval_nobody_opens_expires_by_itself_and_stops_counting() {
    let s = Setup::start("appr-sweep", &[]).await;
    let url = s.offered("30", "AP_R1").await;
    s.db().expire_at("AP_R1", &beijing_in(-1));
    // The sweep runs every 30 s; nobody opens the page.
    let settled = eventually(45, || async { s.db().state("AP_R1") == "failed" }).await;
    assert!(settled, "swept: {:?}", s.db().refund("AP_R1"));
    assert_eq!(s.db().approvals("AP_R1"), ["expired"]);
    assert_eq!(s.sent().await, 0);
    assert_eq!(get(&url).await.status, 410);
    approval_url(&s.refund("30", "AP_R2").await);
    s.stop().await;
}

// 4 ------------------------------------------------------------------------------------------

#[tokio::test]
async fn with_a_pin_a_wrong_one_closes_the_link_and_the_right_one_approves_a_fresh_request() {
    let s = Setup::start("appr-pin", &[("AP_REFUND_PIN", "2468")]).await;
    let url = s.offered("12.5", "AP_R1").await;
    let page = get(&url).await;
    assert!(
        page.body.contains("type=\"password\" name=\"pin\""),
        "{}",
        page.body
    );
    let csrf = csrf_of(&page);
    let wrong = post(&url, &format!("decision=approve&csrf={csrf}&pin=1357")).await;
    assert_eq!(wrong.status, 403, "{wrong:?}");
    assert!(wrong.body.contains("PIN is wrong"), "{wrong:?}");
    // One try per link: the right PIN now is refused too.
    let late = post(&url, &format!("decision=approve&csrf={csrf}&pin=2468")).await;
    assert_eq!(late.status, 403, "{late:?}");
    assert!(!late.body.contains(APPROVED), "{late:?}");
    assert_eq!(get(&url).await.status, 410);
    assert_eq!(s.sent().await, 0, "nothing sent");
    let db = s.db();
    assert_eq!(db.state("AP_R1"), "failed");
    assert!(
        db.audit()
            .iter()
            .any(|a| a.starts_with("refused: AP_REFUND_CONFIRM: wrong PIN | not sent |")),
        "{:?}",
        db.audit()
    );
    refused_by(
        &s.refund("12.5", "AP_R1").await,
        "AP_REFUND_CONFIRM",
        &["not approved"],
    );

    // No PIN at all is a wrong one.
    let bare = s.offered("1", "AP_R2").await;
    let r = decide(&bare, "approve", "").await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(s.db().state("AP_R2"), "failed");

    // A fresh request: the right PIN approves it.
    let fresh = s.offered("12.5", "AP_R3").await;
    let ok = decide(&fresh, "approve", "&pin=2468").await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert!(ok.body.contains(APPROVED), "{ok:?}");
    assert_eq!(s.sent().await, 1);
    assert_eq!(s.refund_fee().await, "12.50");
    assert_eq!(s.db().state("AP_R3"), "succeeded");
    assert!(!s.db().dump().contains("2468"), "the PIN is in no row");
    assert!(!s.log().contains("2468"), "nor in the log");
    s.stop().await;
}

// 5 ------------------------------------------------------------------------------------------

#[tokio::test]
async fn approving_sends_exactly_one_refund_and_the_replayed_call_reports_it() {
    let s = Setup::start("appr-approve", &[]).await;
    let url = s.offered("12.5", "AP_R1").await;
    let r = decide(&url, "approve", "").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains(APPROVED), "{r:?}");
    assert_eq!(s.sent().await, 1, "exactly one refund at the gateway");
    assert_eq!(s.refund_fee().await, "12.50");
    let sent: Vec<Value> = s
        .gateway
        .requests()
        .await
        .into_iter()
        .filter(|r| r["method"] == "alipay.trade.refund")
        .collect();
    assert!(
        sent[0].to_string().contains("AP_R1"),
        "sent with its recorded outRequestNo: {}",
        sent[0]
    );
    assert_eq!(s.db().state("AP_R1"), "succeeded");

    let replay = s.refund("12.5", "AP_R1").await;
    assert!(!is_error(&replay), "{}", text(&replay));
    assert!(
        text(&replay).starts_with("退款结果: 重复请求退款幂等成功"),
        "{}",
        text(&replay)
    );
    assert_eq!(structured(&replay)["refundResult"], "REFUND_ALREADY_DONE");
    assert_eq!(structured(&replay)["confirmed"], true);
    let queried = call(
        &s.client,
        "query-alipay-refund",
        json!({"outTradeNo": ORDER, "outRequestNo": "AP_R1"}),
    )
    .await;
    assert!(
        text(&queried).contains("退款状态: REFUND_SUCCESS"),
        "{}",
        text(&queried)
    );
    assert_eq!(structured(&queried)["refundStatus"], "REFUND_SUCCESS");
    assert_eq!(s.sent().await, 1, "replays send nothing");
    let audit = s.db().audit();
    assert!(
        audit
            .iter()
            .any(|a| a.starts_with("allowed | succeeded |") && a.contains("approval page")),
        "{audit:?}"
    );
    assert!(
        audit
            .iter()
            .any(|a| a.starts_with("replayed | succeeded |")),
        "{audit:?}"
    );
    s.stop().await;
}

// 6 ------------------------------------------------------------------------------------------

#[tokio::test]
async fn denying_sends_nothing_and_the_replayed_call_is_refused_as_not_approved() {
    let s = Setup::start("appr-deny", &[]).await;
    let url = s.offered("12.5", "AP_R1").await;
    let r = decide(&url, "deny", "").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("Denied"), "{r:?}");
    assert_eq!(s.sent().await, 0);
    assert_eq!(s.refund_fee().await, "0.00");
    let db = s.db();
    assert_eq!(
        db.refund("AP_R1"),
        Some(("failed".into(), Some("approval: denied by a person".into())))
    );
    assert_eq!(db.approvals("AP_R1"), ["denied"]);
    let denied: Vec<String> = db
        .audit()
        .into_iter()
        .filter(|a| a.starts_with("refused: AP_REFUND_CONFIRM: denied by a person | not sent |"))
        .collect();
    assert_eq!(denied.len(), 1, "{:?}", db.audit());
    assert!(
        denied[0].contains("AP_R1") && denied[0].contains("approval page"),
        "{denied:?}"
    );
    assert_eq!(
        db.count(
            "SELECT COUNT(*) FROM audit WHERE decision = 'refused: AP_REFUND_CONFIRM: denied by a person'"
        ),
        1
    );

    let replay = s.refund("12.5", "AP_R1").await;
    refused_by(&replay, "AP_REFUND_CONFIRM", &["not approved", "denied"]);
    assert_eq!(s.sent().await, 0);
    assert_eq!(
        s.db().approvals("AP_R1"),
        ["denied"],
        "no new link for a denied refund"
    );
    // Denied, it no longer counts against what may be refunded.
    approval_url(&s.refund("30", "AP_R2").await);
    s.stop().await;
}

// 7 ------------------------------------------------------------------------------------------

#[tokio::test]
async fn asking_again_while_it_waits_gives_a_new_link_and_the_old_one_stops_working() {
    let s = Setup::start("appr-again", &[]).await;
    let old = s.offered("12.5", "AP_R1").await;
    let old_csrf = csrf_of(&get(&old).await);
    let again = s.refund("12.5", "AP_R1").await;
    let new = approval_url(&again);
    assert_ne!(new, old);
    assert_eq!(
        structured(&again)["alreadyRefunded"],
        "0.00",
        "it does not count itself"
    );
    assert_eq!(get(&old).await.status, 410, "the old link is closed");
    let r = post(&old, &format!("decision=approve&csrf={old_csrf}")).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(s.sent().await, 0);
    assert_eq!(s.db().approvals("AP_R1"), ["replaced", "open"]);
    assert_eq!(s.db().state("AP_R1"), "awaiting_approval");
    // The same number with another amount is a conflict, and changes nothing.
    let conflict = s.refund("12.49", "AP_R1").await;
    assert!(is_error(&conflict), "{}", text(&conflict));
    assert_eq!(
        structured(&conflict)["existingRefund"]["state"],
        "awaiting_approval"
    );
    assert_eq!(s.db().approvals("AP_R1"), ["replaced", "open"]);

    let new_csrf = csrf_of(&get(&new).await);
    assert_ne!(new_csrf, old_csrf, "each link has its own form");
    let r = post(&new, &format!("decision=approve&csrf={old_csrf}")).await;
    assert_eq!(
        r.status, 403,
        "the old form does not fit the new link: {r:?}"
    );
    let r = post(&new, &format!("decision=approve&csrf={new_csrf}")).await;
    assert!(r.body.contains(APPROVED), "{r:?}");
    assert_eq!(s.sent().await, 1);
    assert_eq!(s.refund_fee().await, "12.50");
    assert_eq!(s.db().approvals("AP_R1"), ["replaced", "approved"]);
    s.stop().await;
}

// More of the flow ------------------------------------------------------------------------------

#[tokio::test]
async fn approving_after_the_figures_changed_sends_nothing_and_says_so() {
    let s = Setup::start("appr-figures", &[]).await;
    // AP_R1 is offered with nothing else refunded; AP_R2 (5.00) is offered after it and counts.
    let first = s.offered("12.5", "AP_R1").await;
    let second = s.refund("5", "AP_R2").await;
    assert_eq!(structured(&second)["alreadyRefunded"], "12.50");
    let second = approval_url(&second);
    // AP_R2 is approved first, so AP_R1's "already refunded" is no longer what it was offered with.
    assert!(decide(&second, "approve", "").await.body.contains(APPROVED));
    assert_eq!(s.sent().await, 1);
    let r = decide(&first, "approve", "").await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("figures changed"), "{r:?}");
    assert_eq!(s.sent().await, 1, "nothing more sent");
    assert_eq!(s.refund_fee().await, "5.00");
    assert_eq!(
        s.db().refund("AP_R1"),
        Some((
            "failed".into(),
            Some("approval: the figures changed before it was approved".into())
        ))
    );
    refused_by(
        &s.refund("12.5", "AP_R1").await,
        "AP_REFUND_CONFIRM",
        &["not approved", "figures changed"],
    );
    s.stop().await;
}

#[tokio::test]
async fn alipay_failing_the_trade_query_is_reported_as_such_not_as_a_limit() {
    let s = Setup::start("appr-queryfail", &[]).await;
    let url = s.offered("12.5", "AP_R1").await;
    let fault = json!({"method": "alipay.trade.query", "kind": "http_500", "times": 1});
    // Opening the page while Alipay does not answer: try again; the link stays open.
    s.gateway.fault(fault.clone()).await;
    let page = get(&url).await;
    assert_ne!(page.status, 200, "{page:?}");
    assert!(page.body.contains("reload the page"), "{page:?}");
    assert_eq!(s.db().approvals("AP_R1"), ["open"]);
    let csrf = csrf_of(&get(&url).await);

    // Approving while Alipay does not answer: nothing is sent, and nobody is told a limit
    // refused it (no limit did: the figures could not be fetched).
    s.gateway.fault(fault).await;
    let r = post(&url, &format!("decision=approve&csrf={csrf}")).await;
    assert!(!r.body.contains(APPROVED), "{r:?}");
    assert_eq!(s.sent().await, 0, "nothing sent without fresh figures");
    assert_eq!(s.refund_fee().await, "0.00");
    assert!(
        !r.body.contains("limit refuses"),
        "the page blames a limit for Alipay's failure: {r:?}"
    );
    let replay = s.refund("12.5", "AP_R1").await;
    assert_eq!(s.sent().await, 0);
    assert!(
        !text(&replay).contains("a guardrail refused it"),
        "the refund is recorded as refused by a guardrail after a failed trade query (ledger: {:?}): {}",
        s.db().refund("AP_R1"),
        text(&replay)
    );
    s.stop().await;
}

#[tokio::test]
async fn approvals_posted_at_once_send_one_refund() {
    let s = Setup::start("appr-race", &[]).await;
    let url = s.offered("12.5", "AP_R1").await;
    let csrf = csrf_of(&get(&url).await);
    let form = format!("decision=approve&csrf={csrf}");
    let replies = futures_join(
        (0..6)
            .map(|_| {
                let (url, form) = (url.clone(), form.clone());
                tokio::spawn(async move { post(&url, &form).await })
            })
            .collect(),
    )
    .await;
    let approved = replies.iter().filter(|r| r.body.contains(APPROVED)).count();
    assert_eq!(approved, 1, "{replies:?}");
    assert!(
        replies
            .iter()
            .filter(|r| !r.body.contains(APPROVED))
            .all(|r| r.status == 403),
        "{replies:?}"
    );
    assert_eq!(s.sent().await, 1, "exactly one refund");
    assert_eq!(s.refund_fee().await, "12.50");
    s.stop().await;
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<Reply>>) -> Vec<Reply> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_link_outlives_a_restart_of_the_server_on_the_same_port() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let s = Setup::start("appr-restart", &[("AP_APPROVAL_LISTEN", &listen)]).await;
    let url = s.offered("12.5", "AP_R1").await;
    assert!(url.starts_with(&format!("http://{listen}/")), "{url}");
    let s = s.restart().await;
    assert_eq!(
        s.db().state("AP_R1"),
        "awaiting_approval",
        "a restart settles nothing"
    );
    let r = decide(&url, "approve", "").await;
    assert!(r.body.contains(APPROVED), "{r:?}");
    assert_eq!(s.sent().await, 1);
    assert_eq!(s.refund_fee().await, "12.50");
    s.stop().await;
}

#[tokio::test]
async fn a_2026_07_28_client_without_elicitation_gets_a_link_too() {
    let dir = TempDir::new("appr-modern");
    let env = env_with(&dir, &[]);
    let (client, _updates, _questions) =
        connect_events(&env, ProtocolVersion::V_2026_07_28, Elicit::Unsupported).await;
    let gateway = paid_order(&client, ORDER, "30.00").await;
    let url = approval_url(&refund_call(&client, "12.5", "AP_R1", None).await);
    assert_eq!(gateway.count_method("alipay.trade.refund").await, 0);
    assert!(decide(&url, "approve", "").await.body.contains(APPROVED));
    assert_eq!(gateway.trade(ORDER).await["refund_fee"], "12.50");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn links_start_with_the_configured_base_url_and_a_taken_port_falls_back_to_a_free_one() {
    // The port is held by someone else: the pages move to a free one.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let s = Setup::start(
        "appr-port",
        &[("AP_APPROVAL_LISTEN", &format!("127.0.0.1:{port}"))],
    )
    .await;
    let url = s.offered("12.5", "AP_R1").await;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(
        !url.starts_with(&format!("http://127.0.0.1:{port}/")),
        "not the taken port: {url}"
    );
    assert!(decide(&url, "approve", "").await.body.contains(APPROVED));
    s.stop().await;
    drop(taken);

    // Behind a proxy: the links start with AP_APPROVAL_BASE_URL; the pages stay on the listener.
    let port = free_port();
    let s = Setup::start(
        "appr-base",
        &[
            ("AP_APPROVAL_LISTEN", &format!("127.0.0.1:{port}")),
            ("AP_APPROVAL_BASE_URL", "https://pay.example.test/ops/"),
        ],
    )
    .await;
    let url = s.offered("12.5", "AP_R1").await;
    let token = token_of(&url).to_string();
    assert_eq!(url, format!("https://pay.example.test/ops/approve/{token}"));
    let local = format!("http://127.0.0.1:{port}/approve/{token}");
    assert!(decide(&local, "approve", "").await.body.contains(APPROVED));
    assert_eq!(s.sent().await, 1);
    s.stop().await;
}

#[tokio::test]
async fn with_approval_pages_off_a_client_without_elicitation_is_refused_and_nothing_is_recorded() {
    let s = Setup::start("appr-off", &[("AP_APPROVAL_LISTEN", "off")]).await;
    let r = s.refund("12.5", "AP_R1").await;
    refused_by(&r, "AP_REFUND_CONFIRM", &["AP_APPROVAL_LISTEN=off"]);
    assert_eq!(s.sent().await, 0);
    assert_eq!(s.db().refund("AP_R1"), None);
    s.stop().await;
}

// 8 ------------------------------------------------------------------------------------------

const TOKEN: &str = "e2e-approval-token-0123456789abcdef";

/// `serve --http 127.0.0.1:PORT` in local mode with `AP_REFUND_CONFIRM=true`, its approval pages
/// beside /mcp; and its data dir.
async fn http_server(tag: &str) -> (HttpServer, TempDir) {
    let dir = TempDir::new(tag);
    let mut env = env_with(&dir, &[]);
    env.remove("AP_APPROVAL_LISTEN");
    env.insert("AP_HTTP_TOKEN".into(), TOKEN.into());
    (HttpServer::spawn(&env).await, dir)
}

#[tokio::test]
async fn over_streamable_http_the_page_is_beside_mcp_without_the_bearer_token_and_approves() {
    let (server, dir) = http_server("appr-http").await;
    let client = connect_http(&server.url, TOKEN, ProtocolVersion::V_2025_06_18).await;
    let gateway = paid_order(&client, ORDER, "30.00").await;
    let result = refund_call(&client, "12.5", "AP_R1", None).await;
    let url = approval_url(&result);
    assert!(
        url.starts_with(&format!("{}/approve/", server.base)),
        "on the same host:port as /mcp: {url} vs {}",
        server.base
    );
    assert_eq!(gateway.count_method("alipay.trade.refund").await, 0);
    // /mcp wants the token; the page does not.
    let mcp = browser()
        .post(format!("{}/mcp", server.base))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        mcp.status().as_u16(),
        401,
        "/mcp still needs the bearer token"
    );
    let page = get(&url).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.body
            .contains("<td>已付款 Paid (Alipay, now)</td><td>30.00 元</td>")
    );
    let csrf = csrf_of(&page);
    let r = post(&url, &format!("decision=approve&csrf={csrf}")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains(APPROVED), "{r:?}");
    assert_eq!(gateway.count_method("alipay.trade.refund").await, 1);
    assert_eq!(gateway.trade(ORDER).await["refund_fee"], "12.50");
    let replay = refund_call(&client, "12.5", "AP_R1", None).await;
    assert!(
        text(&replay).starts_with("退款结果: 重复请求退款幂等成功"),
        "{}",
        text(&replay)
    );
    assert_eq!(Db::open(dir.path()).state("AP_R1"), "succeeded");

    // A stateless 2026-07-28 client is offered a link on the same listener too.
    let modern = connect_http(&server.url, TOKEN, ProtocolVersion::V_2026_07_28).await;
    let url = approval_url(&refund_call(&modern, "5", "AP_R2", None).await);
    assert!(
        url.starts_with(&format!("{}/approve/", server.base)),
        "{url}"
    );
    assert!(decide(&url, "approve", "").await.body.contains(APPROVED));
    assert_eq!(gateway.count_method("alipay.trade.refund").await, 2);
    assert_eq!(gateway.trade(ORDER).await["refund_fee"], "17.50");
    modern.cancel().await.unwrap();
    client.cancel().await.unwrap();
}
