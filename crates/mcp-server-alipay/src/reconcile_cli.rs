//! `mcp-server-alipay reconcile --date YYYY-MM-DD [--json]`: the day's bill reconciled against the
//! ledger, for cron. The same work as `reconcile-alipay-bill`, on the same configuration and data
//! dir (beside a running server too: the ledger is shared, and in local mode the running embedded
//! gateway, whose clock says which days have a bill). Exit status 0: the bill and the ledger
//! agree; 1: discrepancies (listed), or the bill's summary disagrees with its rows; 2: no
//! reconciliation (bad configuration or date, no bill, a failure on the way).

use std::process::ExitCode;

use crate::config::Config;
use crate::domain::AppScope;
use crate::service::bills;
use crate::service::{NoProgress, Services};
use crate::tools::bill::{BillOutput, text};

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("mcp-server-alipay reconcile: {message}");
    ExitCode::from(2)
}

pub async fn run(date: &str, json: bool) -> ExitCode {
    let canonical = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .is_ok_and(|d| d.format("%Y-%m-%d").to_string() == date);
    if !canonical {
        return fail(format!(
            "--date {date:?} is not a date yyyy-MM-dd (Beijing time), e.g. 2026-11-30"
        ));
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if let Some(warning) = crate::logging::init(&config) {
        eprintln!("mcp-server-alipay: {warning}");
    }
    let (client, local) = match crate::app::connect(&config, None).await {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let scope = AppScope {
        env: config.env,
        app_id: client.config().merchant.app_id.clone(),
    };
    let ledger = match crate::app::open_ledger(&config, &scope).await {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let svc = Services {
        client,
        ledger,
        guard: config.guard.clone(),
        timeout: config.timeout,
        order_ttl_minutes: config.order_ttl_minutes,
        agent_id: scope.app_id.clone(),
        clock: crate::app::gateway_clock(local.as_ref()),
        waits: Default::default(),
        approvals: None,
    };
    let result = bills::reconcile_day(&svc, date, &NoProgress).await;
    drop(svc);
    if let Some(local) = local {
        local.shutdown().await;
    }
    let report = match result {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let out = BillOutput::of(&report);
    // stdout-ok: a CLI command's report, not the MCP channel.
    if json {
        match serde_json::to_string_pretty(&out) {
            Ok(j) => println!("{j}"), // stdout-ok
            Err(e) => return fail(e),
        }
    } else {
        println!("{}", text(&report, &out)); // stdout-ok
    }
    let agrees = report.summary_agrees != Some(false);
    if report.discrepancies.is_empty() && report.unrecorded.is_empty() && agrees {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
