//! A day's trade bill, checked against the ledger: ask Alipay where the bill is
//! (`alipay.data.dataservice.bill.downloadurl.query`), download it at once (the URL dies in about
//! 30 s), parse it (`alipay_openapi::bill`), compare it with the ledger's facts for the day
//! (`crate::domain::bill`), and record the states the bill proves (paid, refunded) with source
//! `bill`. Bills are T+1: "today" is read on the gateway's clock, so local mode's moved clock and
//! Alipay agree on which days have a bill.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use alipay_openapi::bill::{BillError, BillLimits, BillSummary, TradeBill, parse_trade_bill_zip};
use alipay_openapi::{BillDownloadUrlQuery, Error, GatewayError, TradeStatus};

use crate::domain::bill::{self, Discrepancy, LedgerOrder, LedgerRefund, Settle, Totals};
use crate::domain::{OutRequestNo, OutTradeNo, RefundState, StatusSource};
use crate::ledger::{LedgerError, OrderRecord, RefundOutcome, RefundRecord, StatusUpdate};
use crate::service::{Progress, Services};

/// How long the download may take (its URL lives about 30 s).
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30);
const STEPS: f64 = 4.0;

/// What reconciling a day found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillReport {
    /// `yyyy-MM-dd`.
    pub date: String,
    /// The bill's account (`2088…`).
    pub account: Option<String>,
    /// Alipay said the day had no business.
    pub empty: bool,
    pub totals: Totals,
    pub discrepancies: Vec<Discrepancy>,
    /// What the bill proved and the ledger now records (source `bill`).
    pub settled: Vec<Settle>,
    /// Whether the summary file's 合计 agrees with the detail rows (`None`: no summary file).
    pub summary_agrees: Option<bool>,
    /// States the bill proved that could not be recorded (the ledger failed); said, not hidden.
    pub unrecorded: Vec<String>,
}

/// Why there is no report.
#[derive(Debug)]
pub enum BillFailure {
    /// Not a past Beijing day on the gateway's clock: bills are T+1.
    NotYet {
        date: String,
        today: String,
    },
    /// Alipay has no bill for the day (`isp.bill_not_exist`), e.g. not generated yet.
    NoBill(Box<GatewayError>),
    /// The gateway call failed.
    Gateway(Error),
    /// Alipay answered without a download URL, or one this server will not fetch.
    BadAnswer(String),
    Download(String),
    Parse(BillError),
    Ledger(LedgerError),
}

impl std::fmt::Display for BillFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotYet { date, today } => write!(
                f,
                "the bill of {date} does not exist yet: bills are T+1 (a day's bill is ready from the next day, usually by 09:00); today is {today} (Beijing time)"
            ),
            Self::NoBill(g) => write!(
                f,
                "Alipay has no bill for this day: {}",
                g.sub_msg.as_deref().unwrap_or(&g.msg)
            ),
            Self::Gateway(e) => write!(f, "{e}"),
            Self::BadAnswer(m) | Self::Download(m) => f.write_str(m),
            Self::Parse(e) => write!(f, "the bill cannot be read: {e}"),
            Self::Ledger(e) => write!(f, "{e}"),
        }
    }
}

/// Whether `date` (`yyyy-MM-dd`) is before the gateway's today.
async fn check_past(svc: &Services, date: &str) -> Result<(), BillFailure> {
    let today = svc.clock.now().await.format("%Y-%m-%d").to_string();
    if date >= today.as_str() {
        return Err(BillFailure::NotYet {
            date: date.to_string(),
            today,
        });
    }
    Ok(())
}

/// Alipay's own download hosts, or the gateway's own origin (scheme, host and port: the emulator
/// serves its bills itself).
fn may_fetch(url: &url::Url, gateway: &str) -> bool {
    let host = url.host_str().unwrap_or("");
    let same_origin = url::Url::parse(gateway).is_ok_and(|g| g.origin() == url.origin());
    matches!(url.scheme(), "http" | "https")
        && (same_origin
            || [".alipay.com", ".alipaydev.com"]
                .iter()
                .any(|suffix| host.ends_with(suffix)))
}

async fn download(svc: &Services, url: &str, limit: usize) -> Result<Vec<u8>, BillFailure> {
    let parsed = url::Url::parse(url).map_err(|e| {
        BillFailure::BadAnswer(format!("the bill's download URL is not a URL: {e}"))
    })?;
    let gateway = &svc.client.config().gateway_url;
    if !may_fetch(&parsed, gateway) {
        return Err(BillFailure::BadAnswer(format!(
            "the bill's download URL is on {}, which is neither Alipay's nor the gateway's host: not fetched",
            parsed.host_str().unwrap_or("no host")
        )));
    }
    let http = reqwest::Client::builder()
        .timeout(DOWNLOAD_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| BillFailure::Download(e.to_string()))?;
    // The URL is a credential (pre-signed): errors never repeat it.
    let failed = |e: reqwest::Error| {
        BillFailure::Download(format!("downloading the bill failed: {}", e.without_url()))
    };
    let mut response = http.get(parsed).send().await.map_err(failed)?;
    if !response.status().is_success() {
        return Err(BillFailure::Download(format!(
            "downloading the bill failed: HTTP {} (the URL lives about 30 s; ask again)",
            response.status().as_u16()
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        if body.len() + chunk.len() > limit {
            return Err(BillFailure::Download(format!(
                "the bill is larger than {limit} bytes: refused"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Fetch and parse the day's trade bill; `(bill, empty)`.
pub async fn fetch(
    svc: &Services,
    date: &str,
    progress: &dyn Progress,
) -> Result<(TradeBill, bool), BillFailure> {
    check_past(svc, date).await?;
    progress
        .report(0.0, STEPS, format!("asking Alipay for the bill of {date}"))
        .await;
    let answer = match svc.client.execute(&BillDownloadUrlQuery::trade(date)).await {
        Ok(a) => a,
        Err(Error::Business(g)) if g.sub_code.as_deref() == Some("isp.bill_not_exist") => {
            return Err(BillFailure::NoBill(g));
        }
        Err(e) => return Err(BillFailure::Gateway(e)),
    };
    let empty = answer.is_empty_day();
    let Some(url) = answer
        .bill_download_url
        .as_deref()
        .filter(|u| !u.is_empty())
    else {
        if empty {
            return Ok((TradeBill::default(), true));
        }
        return Err(BillFailure::BadAnswer(
            "Alipay answered without a bill_download_url".into(),
        ));
    };
    progress
        .report(1.0, STEPS, "downloading the bill".into())
        .await;
    let limits = BillLimits::default();
    let zip = download(svc, url, limits.max_zip_bytes).await?;
    progress
        .report(
            2.0,
            STEPS,
            format!("reading the bill ({} bytes)", zip.len()),
        )
        .await;
    let bill = tokio::task::spawn_blocking(move || parse_trade_bill_zip(&zip, &limits))
        .await
        .map_err(|e| BillFailure::Download(format!("reading the bill stopped: {e}")))?
        .map_err(BillFailure::Parse)?;
    Ok((bill, empty))
}

fn is_paid(order: &OrderRecord) -> bool {
    match order.trade_status {
        Some(TradeStatus::TradeSuccess | TradeStatus::TradeFinished) => true,
        // Closed after a refund: it was paid.
        Some(TradeStatus::TradeClosed) => order.refunded_amount.fen() > 0,
        _ => false,
    }
}

/// The ledger's facts for the day: every order and refund the bill names, and every payment and
/// refund the ledger says happened that day.
async fn ledger_facts(
    svc: &Services,
    date: &str,
    bill: &TradeBill,
) -> Result<(Vec<LedgerOrder>, Vec<LedgerRefund>), LedgerError> {
    let paid_on_day: BTreeSet<String> = svc
        .ledger
        .paid_on(date)
        .await?
        .into_iter()
        .map(|o| o.out_trade_no.to_string())
        .collect();
    let named: BTreeSet<&str> = bill.rows.iter().map(|r| r.out_trade_no.as_str()).collect();
    let mut orders: HashMap<String, OrderRecord> = HashMap::new();
    let mut refunds: HashMap<(String, String), RefundRecord> = HashMap::new();
    for no in named
        .iter()
        .copied()
        .chain(paid_on_day.iter().map(String::as_str))
    {
        // A number that breaks Alipay's rule can name no order of ours.
        let Some(no) = OutTradeNo::parse(no) else {
            continue;
        };
        if orders.contains_key(no.as_str()) {
            continue;
        }
        if let Some(order) = svc.ledger.order(&no).await? {
            for r in svc.ledger.refunds(&no).await? {
                refunds.insert((no.to_string(), r.out_request_no.to_string()), r);
            }
            orders.insert(no.to_string(), order);
        }
    }
    let on_day: BTreeSet<(String, String)> = svc
        .ledger
        .refunds_succeeded_on(date)
        .await?
        .into_iter()
        .map(|r| {
            let key = (r.out_trade_no.to_string(), r.out_request_no.to_string());
            refunds.entry(key.clone()).or_insert(r);
            key
        })
        .collect();
    let orders = orders
        .into_values()
        .map(|o| LedgerOrder {
            paid: is_paid(&o),
            closed_unpaid: o.trade_status == Some(TradeStatus::TradeClosed)
                && o.refunded_amount.fen() == 0,
            paid_on_day: paid_on_day.contains(o.out_trade_no.as_str()),
            total_fen: o.total_amount.fen(),
            out_trade_no: o.out_trade_no.to_string(),
        })
        .collect();
    let refunds = refunds
        .into_iter()
        .map(|(key, r)| LedgerRefund {
            on_day: on_day.contains(&key),
            out_trade_no: key.0,
            out_request_no: key.1,
            amount_fen: r.refund_amount.fen(),
            state: r.state,
        })
        .collect();
    Ok((orders, refunds))
}

/// Record one state the bill proved; `Err` says what could not be recorded.
async fn record(svc: &Services, date: &str, settle: &Settle) -> Result<bool, String> {
    match settle {
        Settle::Paid {
            out_trade_no,
            trade_no,
            paid_at,
        } => {
            let no = OutTradeNo::parse(out_trade_no).ok_or("no order number")?;
            let known = svc.ledger.order(&no).await.map_err(|e| e.to_string())?;
            // Only an order the ledger has as unpaid is moved: a closed one is for a person.
            let unpaid = known
                .is_some_and(|o| matches!(o.trade_status, None | Some(TradeStatus::WaitBuyerPay)));
            if !unpaid {
                return Ok(false);
            }
            let update = StatusUpdate {
                trade_status: TradeStatus::TradeSuccess,
                trade_no: Some(trade_no.clone()),
                refunded: None,
                source: StatusSource::Bill,
                seen_at: None,
                paid_at: Some(paid_at.clone()),
            };
            svc.ledger
                .update_status(&no, &update)
                .await
                .map_err(|e| e.to_string())
        }
        Settle::Refunded {
            out_trade_no,
            out_request_no,
            finished_at,
        } => {
            let no = OutTradeNo::parse(out_trade_no).ok_or("no order number")?;
            let req = OutRequestNo::parse(out_request_no).ok_or("no refund number")?;
            let outcome = RefundOutcome {
                state: RefundState::Succeeded,
                trade_no: None,
                total_refunded: None,
                detail: Some(format!("confirmed by the bill of {date}")),
                succeeded_at: Some(finished_at.clone()),
            };
            let held = svc
                .ledger
                .finish_refund(&no, &req, &outcome, None)
                .await
                .map_err(|e| e.to_string())?;
            Ok(held == Some(RefundState::Succeeded))
        }
    }
}

fn summary_agrees(summary: &BillSummary, totals: &Totals) -> bool {
    summary.payment_count == totals.payments
        && summary.refund_count == totals.refunds
        && summary.order_amount_fen == totals.gross_fen - totals.refunds_fen
        && summary.fee_fen == -totals.fees_fen
        && summary.net_fen == totals.net_fen
}

/// Reconcile the day `date` (`yyyy-MM-dd`, Beijing).
pub async fn reconcile_day(
    svc: &Services,
    date: &str,
    progress: &dyn Progress,
) -> Result<BillReport, BillFailure> {
    let (bill, empty) = fetch(svc, date, progress).await?;
    progress
        .report(
            3.0,
            STEPS,
            format!("comparing {} rows with the ledger", bill.rows.len()),
        )
        .await;
    let (orders, refunds) = ledger_facts(svc, date, &bill)
        .await
        .map_err(BillFailure::Ledger)?;
    let found = bill::reconcile(&bill.rows, &orders, &refunds);
    let mut settled = Vec::new();
    let mut unrecorded = Vec::new();
    for s in found.settle {
        match record(svc, date, &s).await {
            Ok(true) => settled.push(s),
            Ok(false) => {}
            Err(e) => unrecorded.push(format!("{s:?}: {e}")),
        }
    }
    tracing::info!(
        date,
        rows = bill.rows.len(),
        discrepancies = found.discrepancies.len(),
        settled = settled.len(),
        "bill reconciled"
    );
    progress.report(STEPS, STEPS, "done".into()).await;
    Ok(BillReport {
        date: date.to_string(),
        account: bill.account,
        empty,
        summary_agrees: bill
            .summary
            .as_ref()
            .map(|s| summary_agrees(s, &found.totals)),
        totals: found.totals,
        discrepancies: found.discrepancies,
        settled,
        unrecorded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bills_are_fetched_only_from_alipay_or_the_gateway() {
        let ok = |u: &str, g: &str| may_fetch(&url::Url::parse(u).unwrap(), g);
        assert!(ok(
            "http://dwbillcenter.alipay.com/downloadBillFile.resource?x=1",
            "https://openapi.alipay.com/gateway.do"
        ));
        assert!(ok(
            "https://dwbillcenter.alipaydev.com/d",
            "https://openapi-sandbox.dl.alipaydev.com/gateway.do"
        ));
        assert!(ok(
            "http://127.0.0.1:8765/bill/abc",
            "http://127.0.0.1:8765/gateway.do"
        ));
        assert!(!ok(
            "http://169.254.169.254/latest",
            "https://openapi.alipay.com/gateway.do"
        ));
        assert!(!ok(
            "http://evilalipay.com/x",
            "https://openapi.alipay.com/gateway.do"
        ));
        assert!(!ok(
            "file:///etc/passwd",
            "http://127.0.0.1:8765/gateway.do"
        ));
        assert!(!ok(
            "http://127.0.0.2:8765/bill/abc",
            "http://127.0.0.1:8765/gateway.do"
        ));
        assert!(!ok(
            "http://127.0.0.1:6379/bill/abc",
            "http://127.0.0.1:8765/gateway.do"
        ));
        assert!(!ok(
            "https://127.0.0.1:8765/bill/abc",
            "http://127.0.0.1:8765/gateway.do"
        ));
    }
}
