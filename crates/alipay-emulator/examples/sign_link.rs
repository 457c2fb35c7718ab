//! Development helper (not part of the emulator's CLI): print a signed payment link for a local
//! gateway, signed with the test vector app key, for scripts such as `.ci/emulator-chromium.sh`.
//!
//! ```text
//! cargo run -p alipay-emulator --example sign_link -- GATEWAY_URL APP_ID APP_PRIVATE_KEY \
//!     OUT_TRADE_NO AMOUNT SUBJECT [page|wap] [RETURN_URL] [NOTIFY_URL]
//! ```

use std::process::ExitCode;

use alipay_openapi::{
    AlipayClient, Amount, AmountStyle, ClientConfig, Merchant, PayKind, PayOrder, PrivateKey,
    SignType,
};

fn main() -> ExitCode {
    match link(&std::env::args().skip(1).collect::<Vec<_>>()) {
        Ok(url) => {
            println!("{url}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sign_link: {e}");
            ExitCode::from(2)
        }
    }
}

fn link(args: &[String]) -> Result<String, String> {
    let [
        gateway,
        app_id,
        key,
        out_trade_no,
        amount,
        subject,
        rest @ ..,
    ] = args
    else {
        return Err("usage: GATEWAY_URL APP_ID APP_PRIVATE_KEY OUT_TRADE_NO AMOUNT SUBJECT [page|wap] [RETURN_URL] [NOTIFY_URL]".into());
    };
    let kind = match rest.first().map(String::as_str) {
        None | Some("page") => PayKind::Page,
        Some("wap") => PayKind::Wap,
        Some(other) => return Err(format!("kind {other:?}: expected page or wap")),
    };
    let private_key = PrivateKey::load("app private key", key).map_err(|e| e.to_string())?;
    let merchant = Merchant {
        app_id: app_id.clone(),
        private_key: private_key.clone(),
        sign_type: SignType::Rsa2,
        app_auth_token: None,
    };
    // The link needs no Alipay public key; the app's own stands in.
    let mut config = ClientConfig::new(merchant, private_key.public_key().clone(), gateway.clone());
    config.return_url = rest.get(1).cloned().filter(|s| !s.is_empty());
    config.notify_url = rest.get(2).cloned().filter(|s| !s.is_empty());
    let client = AlipayClient::new(config).map_err(|e| e.to_string())?;
    let order = PayOrder {
        kind,
        out_trade_no: out_trade_no.clone(),
        total_amount: Amount::from_yuan_str(amount).map_err(|e| format!("AMOUNT: {e}"))?,
        subject: subject.clone(),
        body: None,
        timeout_express: None,
        query_options: None,
        amount_style: AmountStyle::Number,
        time_expire: None,
    };
    client.payment_link(&order).map_err(|e| e.to_string())
}
