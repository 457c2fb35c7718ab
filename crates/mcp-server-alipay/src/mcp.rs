//! The MCP face of the server (rmcp): one plain async method per tool, each handing its raw
//! arguments to the tool logic in `crate::tools`, which validates them itself so every error can
//! name the field and rule. Unselected tools are removed from the router at start-up, so they are
//! neither listed nor callable.

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine as _;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, JsonObject, ProtocolVersion, ServerCapabilities,
    ServerConfig,
};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};

use crate::app::App;
use crate::tools::outcome::ToolOutcome;
use crate::tools::{ToolKind, pay, query, refund};

/// Protocol versions we speak: 2025-03-26 through 2026-07-28.
const PROTOCOL_VERSIONS: &[ProtocolVersion] = &[
    ProtocolVersion::V_2025_03_26,
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_11_25,
    ProtocolVersion::V_2026_07_28,
];

#[derive(Clone)]
pub struct AlipayMcp {
    app: Arc<App>,
    tool_router: ToolRouter<Self>,
}

fn schema(value: serde_json::Value) -> Arc<JsonObject> {
    match value {
        serde_json::Value::Object(map) => Arc::new(map),
        _ => Arc::new(JsonObject::new()),
    }
}

#[tool_router]
impl AlipayMcp {
    pub fn new(app: Arc<App>) -> Self {
        let mut tool_router = Self::tool_router();
        for kind in ToolKind::ALL {
            if !app.config.tools.contains(&kind) {
                tool_router.remove_route(kind.name());
            }
        }
        Self { app, tool_router }
    }

    #[tool(
        name = "create-mobile-alipay-payment",
        title = "Create an Alipay payment link for phones",
        description = ToolKind::MobilePay.description(),
        input_schema = schema(ToolKind::MobilePay.input_schema()),
        output_schema = schema(ToolKind::MobilePay.output_schema()),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = true)
    )]
    async fn create_mobile_payment(&self, args: JsonObject) -> CallToolResult {
        into_result(pay::create_payment(&self.app, ToolKind::MobilePay, &args).await)
    }

    #[tool(
        name = "create-web-page-alipay-payment",
        title = "Create an Alipay payment link for desktop browsers",
        description = ToolKind::WebPagePay.description(),
        input_schema = schema(ToolKind::WebPagePay.input_schema()),
        output_schema = schema(ToolKind::WebPagePay.output_schema()),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = true)
    )]
    async fn create_web_page_payment(&self, args: JsonObject) -> CallToolResult {
        into_result(pay::create_payment(&self.app, ToolKind::WebPagePay, &args).await)
    }

    #[tool(
        name = "query-alipay-payment",
        title = "Query an Alipay payment",
        description = ToolKind::QueryPay.description(),
        input_schema = schema(ToolKind::QueryPay.input_schema()),
        output_schema = schema(ToolKind::QueryPay.output_schema()),
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = true)
    )]
    async fn query_payment(&self, args: JsonObject) -> CallToolResult {
        into_result(query::query_payment(&self.app, &args).await)
    }

    #[tool(
        name = "refund-alipay-payment",
        title = "Refund an Alipay payment",
        description = ToolKind::RefundPay.description(),
        input_schema = schema(ToolKind::RefundPay.input_schema()),
        output_schema = schema(ToolKind::RefundPay.output_schema()),
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = true)
    )]
    async fn refund_payment(&self, args: JsonObject) -> CallToolResult {
        into_result(refund::refund(&self.app, &args).await)
    }

    #[tool(
        name = "query-alipay-refund",
        title = "Query an Alipay refund",
        description = ToolKind::RefundQuery.description(),
        input_schema = schema(ToolKind::RefundQuery.input_schema()),
        output_schema = schema(ToolKind::RefundQuery.output_schema()),
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = true)
    )]
    async fn query_refund(&self, args: JsonObject) -> CallToolResult {
        into_result(refund::refund_query(&self.app, &args).await)
    }
}

/// Text first (what the reference returned), then the QR image, plus structured content.
fn into_result(outcome: ToolOutcome) -> CallToolResult {
    let mut content = vec![ContentBlock::text(outcome.text)];
    if let Some(png) = outcome.image_png {
        content.push(ContentBlock::image(
            base64::engine::general_purpose::STANDARD.encode(png),
            "image/png",
        ));
    }
    let mut result = if outcome.is_error {
        CallToolResult::error(content)
    } else {
        CallToolResult::success(content)
    };
    result.structured_content = Some(outcome.structured);
    result
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for AlipayMcp {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder().enable_tools().build();
        ServerConfig::new(capabilities)
            .with_server_info(
                Implementation::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
                    .with_title("Alipay payments (支付宝)"),
            )
            .with_instructions(self.app.instructions())
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(PROTOCOL_VERSIONS)
    }
}
