//! The running server's shared state: configuration, the Alipay client (pointed at Alipay or at the
//! embedded gateway) and what it remembers about the orders it created.

use std::collections::HashSet;
use std::sync::Mutex;

use alipay_openapi::{AlipayClient, ClientConfig, Merchant};

use crate::config::{Config, Env};
use crate::local::{self, LocalGateway};

pub struct App {
    pub config: Config,
    pub client: AlipayClient,
    local: Option<LocalGateway>,
    /// Orders this process created links for (a `TRADE_NOT_EXIST` on them means "not opened yet").
    known_orders: Mutex<HashSet<String>>,
}

impl App {
    /// Build the client; in local mode start the embedded gateway first.
    pub async fn start(config: Config) -> Result<Self, String> {
        let (merchant, alipay_public_key, gateway_url, local) = match &config.credentials {
            Some(creds) => (
                Merchant {
                    app_id: creds.app_id.clone(),
                    private_key: creds.app_key.clone(),
                    sign_type: config.sign_type,
                    app_auth_token: config.app_auth_token.clone(),
                },
                creds.alipay_public_key.clone(),
                config.remote_gateway(),
                None,
            ),
            None => {
                let gateway = local::start(&config).await?;
                (
                    Merchant {
                        app_id: gateway.app_id.clone(),
                        private_key: gateway.app_key.clone(),
                        sign_type: config.sign_type,
                        app_auth_token: None,
                    },
                    gateway.alipay_public_key.clone(),
                    gateway.gateway_url(),
                    Some(gateway),
                )
            }
        };
        let mut client_config = ClientConfig::new(merchant, alipay_public_key, gateway_url);
        client_config.notify_url = config.notify_url.clone();
        client_config.return_url = config.return_url.clone();
        client_config.timeout = config.timeout;
        client_config.connect_timeout = config.timeout.min(std::time::Duration::from_secs(3));
        let client = AlipayClient::new(client_config)
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            config,
            client,
            local,
            known_orders: Mutex::new(HashSet::new()),
        })
    }

    pub fn remember_order(&self, out_trade_no: &str) {
        if let Ok(mut known) = self.known_orders.lock() {
            known.insert(out_trade_no.to_string());
        }
    }

    pub fn knows_order(&self, out_trade_no: &str) -> bool {
        self.known_orders
            .lock()
            .map(|k| k.contains(out_trade_no))
            .unwrap_or(false)
    }

    /// What the model is told at initialisation.
    pub fn instructions(&self) -> String {
        let mut text = String::from(
            "Alipay (支付宝) payments. Create a payment link (create-mobile-alipay-payment for phones, \
             create-web-page-alipay-payment for desktop browsers), give it to the buyer, then check with \
             query-alipay-payment: TRADE_SUCCESS means paid. Refund with refund-alipay-payment; a retried \
             refund must reuse its outRequestNo. Amounts are yuan with at most two decimals.",
        );
        if self.config.env == Env::Local {
            text.push_str(" This server runs in LOCAL mode on an embedded Alipay gateway: no real money moves; links open a test cashier where anyone can click pay.");
        }
        text
    }

    /// Stop the embedded gateway (flushes its state).
    pub async fn shutdown(self) {
        if let Some(local) = self.local {
            local.shutdown().await;
        }
    }
}
