//! The MCP face of the server (rmcp): one plain async method per tool, each handing its raw
//! arguments to the tool logic in `crate::tools`, which validates them itself so every error can
//! name the field and rule. Unselected tools are removed from the router at start-up, so they are
//! neither listed nor callable. Resources and subscriptions come from `crate::resources`.

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine as _;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::{InputResponses, RequestState};
use rmcp::model::{
    CallToolResponse, CallToolResult, ContentBlock, Implementation, JsonObject,
    ListResourceTemplatesResult, ListResourcesResult, PaginatedRequestParams, ProtocolVersion,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, ResourceContents,
    ServerCapabilities, ServerConfig, SubscribeRequestParams, SubscriptionFilter,
    UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, tool, tool_handler, tool_router};

use crate::app::App;
use crate::config::Config;
use crate::confirm::{Decision, confirm_refund};
use crate::resources;
use crate::tools::outcome::ToolOutcome;
use crate::tools::refund::Prepared;
use crate::tools::{ToolKind, close, list, pay, query, refund, refund_query};

/// Protocol versions we speak: 2025-03-26 through 2026-07-28.
const PROTOCOL_VERSIONS: &[ProtocolVersion] = &[
    ProtocolVersion::V_2025_03_26,
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_11_25,
    ProtocolVersion::V_2026_07_28,
];

/// The MCP handler. Cheap to make (over HTTP one is made per session and per stateless request):
/// everything lives in [`Served`], shared.
#[derive(Clone)]
pub struct AlipayMcp {
    served: Arc<Served>,
}

/// What every handler shares: what `initialize` and `tools/list` need (known from the
/// configuration at once) and the [`App`], which may still be starting.
pub struct Served {
    tool_router: ToolRouter<AlipayMcp>,
    instructions: String,
    app: tokio::sync::watch::Receiver<Option<Result<Arc<App>, String>>>,
}

/// Sets the [`App`] of a [`Served`] made with [`Served::starting`].
pub struct AppReady(tokio::sync::watch::Sender<Option<Result<Arc<App>, String>>>);

impl AppReady {
    /// The app started (`Ok`), or could not (`Err`, the line already shown on stderr).
    pub fn set(self, app: Result<Arc<App>, String>) {
        let _ = self.0.send(Some(app));
    }
}

impl Served {
    /// Serve `initialize` and `tools/list` at once while the app (ledger, embedded gateway, HTTP
    /// client) starts: calls that need it wait for it.
    pub fn starting(config: &Config) -> (Arc<Self>, AppReady) {
        let (tx, rx) = tokio::sync::watch::channel(None);
        let served = Self {
            tool_router: AlipayMcp::selected_router(&config.tools),
            instructions: crate::app::instructions(config.env),
            app: rx,
        };
        (Arc::new(served), AppReady(tx))
    }

    /// For an app that has started.
    pub fn ready(app: Arc<App>) -> Arc<Self> {
        let (served, ready) = Self::starting(&app.config);
        ready.set(Ok(app));
        served
    }

    /// Wait until the app has started (or could not).
    pub async fn started(&self) -> Result<Arc<App>, String> {
        self.app().await
    }

    /// The app, once started.
    async fn app(&self) -> Result<Arc<App>, String> {
        let mut rx = self.app.clone();
        let ready = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| "the server is shutting down".to_string())?;
        match &*ready {
            Some(Ok(app)) => Ok(app.clone()),
            Some(Err(e)) => Err(format!("the server could not start: {e}")),
            None => Err("the server is starting".into()),
        }
    }
}

/// The started app, or the tool result saying why there is none.
macro_rules! app_or_return {
    ($self:ident) => {
        match $self.served.app().await {
            Ok(app) => app,
            Err(e) => return CallToolResult::error(vec![ContentBlock::text(e)]).into(),
        }
    };
}

/// The started app, or an MCP error saying why there is none.
async fn app_or_error(served: &Served) -> Result<Arc<App>, McpError> {
    served
        .app()
        .await
        .map_err(|e| McpError::internal_error(e, None))
}

fn schema(value: serde_json::Value) -> Arc<JsonObject> {
    match value {
        serde_json::Value::Object(map) => Arc::new(map),
        _ => Arc::new(JsonObject::new()),
    }
}

#[tool_router]
impl AlipayMcp {
    pub fn new(served: Arc<Served>) -> Self {
        Self { served }
    }

    /// The router with only the selected tools (built once per process: schemas and all).
    fn selected_router(tools: &[ToolKind]) -> ToolRouter<Self> {
        let mut tool_router = Self::tool_router();
        for kind in ToolKind::ALL {
            if !tools.contains(&kind) {
                tool_router.remove_route(kind.name());
            }
        }
        tool_router
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
        let app = app_or_return!(self);
        into_result(pay::create_payment(&app, ToolKind::MobilePay, &args).await)
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
        let app = app_or_return!(self);
        into_result(pay::create_payment(&app, ToolKind::WebPagePay, &args).await)
    }

    #[tool(
        name = "create-qrcode-alipay-payment",
        title = "Create an Alipay payment QR code",
        description = ToolKind::QrPay.description(),
        input_schema = schema(ToolKind::QrPay.input_schema()),
        output_schema = schema(ToolKind::QrPay.output_schema()),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = true)
    )]
    async fn create_qrcode_payment(&self, args: JsonObject) -> CallToolResult {
        let app = app_or_return!(self);
        into_result(pay::create_payment(&app, ToolKind::QrPay, &args).await)
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
        let app = app_or_return!(self);
        into_result(query::query_payment(&app, &args).await)
    }

    #[tool(
        name = "refund-alipay-payment",
        title = "Refund an Alipay payment",
        description = ToolKind::RefundPay.description(),
        input_schema = schema(ToolKind::RefundPay.input_schema()),
        output_schema = schema(ToolKind::RefundPay.output_schema()),
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = true)
    )]
    async fn refund_payment(
        &self,
        args: JsonObject,
        ctx: RequestContext<RoleServer>,
        RequestState(state): RequestState,
        InputResponses(responses): InputResponses,
    ) -> CallToolResponse {
        let app = app_or_return!(self);
        // One refund at a time per order: the remaining-amount check and the send stay together.
        let order = args
            .get("outTradeNo")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let guard = app.refund_lock(&order).await;
        let plan = match refund::prepare(&app, &args).await {
            Prepared::Done(outcome) => return into_result(outcome).into(),
            Prepared::Ready(plan) => *plan,
        };
        if !app.config.guard.refund_confirm {
            return into_result(refund::execute(&app, plan).await).into();
        }
        // A person may take minutes: other refunds of the order need not wait for them.
        drop(guard);
        let refused_by_person = || {
            let tool = ToolKind::RefundPay.name();
            crate::tools::guard::audit(&app, tool, &args, "refused: AP_REFUND_CONFIRM", "not sent");
        };
        match confirm_refund(&app.confirmations, &plan, &ctx, state, responses).await {
            Decision::Approved => {}
            Decision::Refused(outcome) => {
                refused_by_person();
                return into_result(outcome).into();
            }
            Decision::Ask(input) => return CallToolResponse::InputRequired(input),
        }
        // Approved: check again, with fresh figures, and send only what the person saw.
        let _guard = app.refund_lock(&order).await;
        let fresh = match refund::prepare(&app, &args).await {
            Prepared::Done(outcome) => return into_result(outcome).into(),
            Prepared::Ready(fresh) => *fresh,
        };
        if fresh.figures() != plan.figures() {
            refused_by_person();
            return into_result(crate::tools::guard::refusal(
                "AP_REFUND_CONFIRM",
                format!(
                    "the order's figures changed while the person was deciding (paid {}, already refunded {} when asked; now {} and {}); call again to ask with the new figures",
                    plan.paid, plan.already_refunded, fresh.paid, fresh.already_refunded
                ),
                None,
            ))
            .into();
        }
        into_result(refund::execute(&app, fresh).await).into()
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
        let app = app_or_return!(self);
        into_result(refund_query::refund_query(&app, &args).await)
    }

    #[tool(
        name = "close-alipay-payment",
        title = "Close an unpaid Alipay payment",
        description = ToolKind::ClosePay.description(),
        input_schema = schema(ToolKind::ClosePay.input_schema()),
        output_schema = schema(ToolKind::ClosePay.output_schema()),
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = true)
    )]
    async fn close_payment(&self, args: JsonObject) -> CallToolResult {
        let app = app_or_return!(self);
        into_result(close::close(&app, &args).await)
    }

    #[tool(
        name = "list-alipay-orders",
        title = "List recent Alipay orders",
        description = ToolKind::ListOrders.description(),
        input_schema = schema(ToolKind::ListOrders.input_schema()),
        output_schema = schema(ToolKind::ListOrders.output_schema()),
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn list_orders(&self, args: JsonObject) -> CallToolResult {
        let app = app_or_return!(self);
        into_result(list::list(&app, &args).await)
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

/// The session a legacy subscription belongs to: the HTTP session id, or the one stdio session.
fn session_key(ctx: &RequestContext<RoleServer>) -> String {
    ctx.extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.headers.get("mcp-session-id"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("stdio")
        .to_string()
}

#[tool_handler(router = self.served.tool_router)]
impl ServerHandler for AlipayMcp {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_resources_subscribe()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(
                Implementation::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
                    .with_title("Alipay payments (支付宝)"),
            )
            .with_instructions(self.served.instructions.clone())
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(PROTOCOL_VERSIONS)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let app = app_or_error(&self.served).await?;
        Ok(ListResourcesResult::with_all_items(resources::list(&app)))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let app = app_or_error(&self.served).await?;
        let text = resources::read(&app, &request.uri)?;
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, request.uri.clone()).with_mime_type("application/json"),
        ])
        .into())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let key = session_key(&ctx);
        app_or_error(&self.served)
            .await?
            .subscriptions
            .subscribe(&request.uri, key, ctx.peer);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        app_or_error(&self.served)
            .await?
            .subscriptions
            .unsubscribe(&request.uri, &session_key(&ctx));
        Ok(())
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(requested.supported_by(&self.get_info().capabilities))
    }

    async fn listen(&self, ctx: SubscriptionContext) -> Result<(), McpError> {
        let app = app_or_error(&self.served).await?;
        let _open = app.listen_stream();
        let id = app.subscriptions.add_stream(ctx.sink().clone());
        ctx.cancelled().await;
        app.subscriptions.remove_stream(id);
        Ok(())
    }
}
