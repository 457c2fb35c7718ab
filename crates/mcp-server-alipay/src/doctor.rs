//! `mcp-server-alipay doctor`: check the configuration the way a new user needs, one line per
//! check, each failure with its fix. Exit status 1 when anything failed.

use alipay_openapi::{Error, TradeQuery};

use crate::config::{Config, Env};
use crate::tools::render::{advice, alipay_message};

struct Report {
    failed: bool,
}

impl Report {
    fn ok(&mut self, what: &str) {
        println!("[ok]   {what}"); // stdout-ok: doctor is a CLI command, not the MCP channel
    }

    fn fail(&mut self, what: &str, fix: &str) {
        self.failed = true;
        println!("[FAIL] {what}\n       fix: {fix}"); // stdout-ok
    }
}

/// How deliveries to each configured target have gone, from the ledger (read only: nothing is
/// sent, so a running server's deliveries are not disturbed).
async fn outbox(config: &Config, scope: &crate::domain::AppScope, report: &mut Report) {
    let ledger = match crate::app::open_ledger(config, scope).await {
        Ok(l) => l,
        Err(e) => {
            report.fail(&e, "check AP_DATA_DIR");
            return;
        }
    };
    let health = match ledger.delivery_health().await {
        Ok(h) => h,
        Err(e) => {
            report.fail(&format!("cannot read the outbox: {e}"), "check AP_DATA_DIR");
            return;
        }
    };
    for target in &config.outbox.targets {
        let name = target.describe();
        let Some(h) = health.iter().find(|h| h.target == target.kind) else {
            report.ok(&format!("{name}: configured, nothing delivered yet"));
            continue;
        };
        let counts = format!(
            "{} delivered, {} pending, {} given up",
            h.delivered, h.pending, h.failed
        );
        // Failing: the latest attempt failed (later than the latest delivery), or one was given up.
        let failing_now = match (&h.last_error_at, &h.last_delivered_at) {
            (Some(error), Some(ok)) => error > ok,
            (Some(_), None) => true,
            _ => false,
        };
        if failing_now || h.failed > 0 {
            report.fail(
                &format!(
                    "{name} is failing: {counts}; last error {} at {}",
                    h.last_error.as_deref().unwrap_or("?"),
                    h.last_error_at.as_deref().unwrap_or("?")
                ),
                &format!(
                    "check {}{} and that the receiver answers as its platform says success looks (see docs/notifications.md); pending deliveries are retried on their own",
                    target.kind.variable(),
                    if target.secret.is_some() { " and its secret" } else { "" }
                ),
            );
        } else {
            report.ok(&format!("{name}: {counts}"));
        }
    }
}

pub async fn run() -> std::process::ExitCode {
    let mut report = Report { failed: false };
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            report.fail(
                &e.to_string(),
                "set the variable as the line says, then run doctor again",
            );
            return std::process::ExitCode::FAILURE;
        }
    };
    report.ok(&format!(
        "configuration: AP_CURRENT_ENV={}, sign type {}, {} tool(s) selected",
        config.env.as_str(),
        config.sign_type,
        config.tools.len()
    ));
    if let Some(creds) = &config.credentials {
        // The configuration checked the key's form; loading it checks its numbers.
        let app_key = match creds.app_key.load() {
            Ok(key) => key,
            Err(e) => {
                report.fail(
                    &format!("AP_APP_KEY: {}", e.problem),
                    "give the application private key you generated (应用私钥), whole and unedited",
                );
                return std::process::ExitCode::FAILURE;
            }
        };
        report.ok(&format!(
            "AP_APP_KEY parses: application private key, RSA-{}",
            app_key.bits()
        ));
        report.ok(&format!(
            "AP_PUB_KEY parses: public key, RSA-{}",
            creds.alipay_public_key.bits()
        ));
        if app_key.public_key() == &creds.alipay_public_key {
            report.fail(
                "AP_PUB_KEY is your application's own public key (derived from AP_APP_KEY), not the Alipay public key",
                "in the Alipay open platform console, under 接口加签方式, copy the 支付宝公钥 (Alipay public key), not the 应用公钥, into AP_PUB_KEY",
            );
        } else {
            report.ok("AP_PUB_KEY is not the application's own public key");
        }
    } else {
        report.ok("local mode: keys are created and kept in AP_DATA_DIR/local");
    }

    // Only the client (and, in local mode, the embedded gateway): no ledger, no notify receiver,
    // nothing that could collide with a server already running on this configuration.
    let (client, local) = match crate::app::connect(&config, None).await {
        Ok(c) => c,
        Err(e) => {
            report.fail(
                &e,
                "see the message; in local mode check AP_DATA_DIR and AP_LOCAL_PORT",
            );
            return std::process::ExitCode::FAILURE;
        }
    };
    let gateway = client.config().gateway_url.clone();
    let probe =
        TradeQuery::by_out_trade_no(format!("doctor{}", chrono::Utc::now().timestamp_millis()));
    let verified = format!("{gateway} answered a signed alipay.trade.query for a made-up order");
    match client.execute(&probe).await {
        Ok(_) => report.ok(&format!("{verified} (10000), and its signature verifies with AP_PUB_KEY")),
        Err(Error::Business(g)) if g.sub_code.as_deref() == Some("ACQ.TRADE_NOT_EXIST") => {
            report.ok(&format!("{verified} (ACQ.TRADE_NOT_EXIST), and its signature verifies with AP_PUB_KEY"))
        }
        Err(Error::Business(g)) => {
            report.fail(&format!("{gateway} refused the signed request: {}", alipay_message(&g)), advice(&g))
        }
        Err(Error::Response(e)) => report.fail(
            &format!("{gateway} answered, but {e}"),
            if config.env == Env::Local {
                "delete AP_DATA_DIR/local to recreate the local keys"
            } else {
                "copy the 支付宝公钥 (Alipay public key) of this app from the console into AP_PUB_KEY; check AP_CURRENT_ENV (sandbox and prod keys differ)"
            },
        ),
        Err(e) => report.fail(
            &format!("cannot complete a request to {gateway}: {e}"),
            "check the network, AP_CURRENT_ENV and AP_GATEWAY_URL",
        ),
    }
    if !config.outbox.targets.is_empty() {
        let scope = crate::domain::AppScope {
            env: config.env,
            app_id: client.config().merchant.app_id.clone(),
        };
        outbox(&config, &scope, &mut report).await;
    }
    if let Some(local) = local {
        local.shutdown().await;
    }
    if report.failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
