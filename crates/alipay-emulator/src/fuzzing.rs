//! A way into `/gateway.do` without a socket, for the fuzz targets in `fuzz/`: the very handler the
//! HTTP server routes to (parameter merging, the common checks, the JSON APIs and their trade
//! rules, the cashier of the page APIs, the request log), on an in-memory store with no notifier
//! and no faults. Nothing here changes how the emulator behaves; it only calls it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use alipay_openapi::PrivateKey;
use axum::body::{Bytes, to_bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};

use crate::config::AppConfig;
use crate::router;
use crate::shared::Shared;

/// An emulator without a listener: requests go straight to the `/gateway.do` handler.
pub struct GatewayHarness {
    shared: Arc<Shared>,
    runtime: tokio::runtime::Runtime,
}

impl GatewayHarness {
    /// One registered app, state in memory only.
    pub fn new(platform_key: PrivateKey, app: AppConfig) -> std::io::Result<Self> {
        let mut apps = HashMap::new();
        apps.insert(app.app_id.clone(), app);
        let shared = Shared::new(
            platform_key,
            apps,
            Vec::new(),
            None,
            Duration::from_secs(1),
            "http://127.0.0.1:9".to_string(),
            Default::default(),
            None,
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Self {
            shared: Arc::new(shared),
            runtime,
        })
    }

    /// Send one request: `GET` or `POST`, the raw query string, the body and its content type.
    /// Returns the HTTP status and the body of the answer.
    pub fn call(
        &self,
        post: bool,
        query: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        let mut headers = HeaderMap::new();
        if let Some(ct) = content_type.and_then(|t| HeaderValue::from_str(t).ok()) {
            headers.insert(header::CONTENT_TYPE, ct);
        }
        let method = if post { Method::POST } else { Method::GET };
        let shared = self.shared.clone();
        let query = query.map(str::to_string);
        let body = Bytes::copy_from_slice(body);
        self.runtime.block_on(async move {
            let response =
                router::gateway_do(State(shared), method, RawQuery(query), headers, body).await;
            let status = response.status().as_u16();
            let bytes = to_bytes(response.into_body(), usize::MAX)
                .await
                .map(|b| b.to_vec())
                .unwrap_or_default();
            (status, bytes)
        })
    }
}
