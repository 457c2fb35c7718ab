//! The MCP face of the server (rmcp): `tools/list` from the tool definitions (`crate::tools`),
//! `tools/call` routed to the definition's call with its raw arguments (the tool validates them
//! itself so every error can name the field and rule), and a person's approval of a refund asked
//! through this request (`crate::confirm`). Unselected tools are neither listed nor callable.
//! Resources and subscriptions come from `crate::resources` and `crate::subscriptions`. A host
//! that declared MCP Apps (`crate::apps`) sees the tools naming their views, the app-only tools
//! and the views' resources; any other host sees none of that, not even a `_meta` key.

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;

use base64::Engine as _;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    ResourceContents, ServerCapabilities, ServerConfig, SubscribeRequestParams, SubscriptionFilter,
    Tool, ToolAnnotations, UnsubscribeRequestParams,
};
use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::{Peer, RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};

use crate::app::App;
use crate::apps;
use crate::config::Config;
use crate::confirm::ElicitConfirm;
use crate::resources;
use crate::service::wait::Progress;
use crate::tools::render::ToolOutcome;
use crate::tools::{APP_TOOLS, CallContext, TOOLS, ToolDef, ToolReply, wait};

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
    /// The selected tools, and their `tools/list` entries (built once per process).
    tools: Vec<(&'static ToolDef, Tool)>,
    /// The same entries for hosts that render MCP Apps: those with a view name it.
    viewed: Vec<Tool>,
    /// The app-only tools the selected tools' views use, with their entries (MCP Apps hosts only).
    app_tools: Vec<(&'static ToolDef, Tool)>,
    /// `AP_REFUND_CONFIRM`: the refund approval view exists.
    refund_confirm: bool,
    instructions: String,
    app: tokio::sync::watch::Receiver<Option<Result<Arc<App>, String>>>,
    /// A handler asked for the app: on stdio its start may wait for this (`stdio.rs`).
    wanted: tokio::sync::Notify,
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
        let refund_confirm = config.guard.refund_confirm;
        let tools: Vec<_> = TOOLS
            .into_iter()
            .filter(|def| config.tools.contains(&def.kind))
            .map(|def| (def, tool_of(def)))
            .collect();
        let view = |def: &ToolDef| apps::view_of(def.kind, refund_confirm);
        let viewed = tools
            .iter()
            .map(|(def, tool)| match view(def) {
                Some(uri) => tool.clone().with_meta(apps::tool_meta(uri)),
                None => tool.clone(),
            })
            .collect();
        // An app-only tool is served when a selected tool's view uses it.
        let uses = |uri: &str| tools.iter().any(|(def, _)| view(def) == Some(uri));
        let app_tools = APP_TOOLS
            .into_iter()
            .filter_map(|def| {
                let uri = view(def).filter(|uri| uses(uri))?;
                Some((def, tool_of(def).with_meta(apps::app_only_meta(uri))))
            })
            .collect();
        let served = Self {
            tools,
            viewed,
            app_tools,
            refund_confirm,
            instructions: crate::app::instructions(config.env, &config.tools),
            app: rx,
            wanted: tokio::sync::Notify::new(),
        };
        (Arc::new(served), AppReady(tx))
    }

    /// For an app that has started.
    pub fn ready(app: Arc<App>) -> Arc<Self> {
        let (served, ready) = Self::starting(&app.config);
        ready.set(Ok(app));
        served
    }

    /// Wait until the app has started (or could not), without asking for it.
    pub async fn started(&self) -> Result<Arc<App>, String> {
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

    /// Returns once a handler has asked for the app (at once if one already has).
    pub async fn wanted(&self) {
        self.wanted.notified().await;
    }

    /// A selected tool, by name (unselected tools are neither listed nor callable).
    fn tool(&self, name: &str) -> Option<&'static ToolDef> {
        self.tools
            .iter()
            .find(|(d, _)| d.name == name)
            .map(|(d, _)| *d)
    }

    /// A tool a host may call: a selected one, or (for a host that renders MCP Apps) an app-only
    /// one. Hosts without the extension know of no app-only tool, so for them it does not exist.
    fn callable(&self, name: &str, renders: bool) -> Option<&'static ToolDef> {
        self.tool(name).or_else(|| {
            renders
                .then(|| self.app_tools.iter().find(|(d, _)| d.name == name))
                .flatten()
                .map(|(d, _)| *d)
        })
    }

    /// The app, once started; asks for it to start if it has not begun.
    async fn app(&self) -> Result<Arc<App>, String> {
        self.wanted.notify_one();
        self.started().await
    }
}

/// The started app, or an MCP error saying why there is none.
async fn app_or_error(served: &Served) -> Result<Arc<App>, McpError> {
    served
        .app()
        .await
        .map_err(|e| McpError::internal_error(e, None))
}

/// Progress of a long call, as MCP progress notifications, when the request asked for them.
struct McpProgress {
    token: Option<ProgressToken>,
    peer: Peer<RoleServer>,
}

#[async_trait]
impl Progress for McpProgress {
    async fn report(&self, done: f64, total: f64, message: String) {
        let Some(token) = &self.token else {
            return;
        };
        let param = ProgressNotificationParam::new(token.clone(), done)
            .with_total(total)
            .with_message(message);
        if let Err(e) = self.peer.notify_progress(param).await {
            tracing::debug!(error = %e, "cannot send a progress notification");
        }
    }
}

/// `tools/list`'s entry for a definition.
fn tool_of(def: &ToolDef) -> Tool {
    let hints = def.hints;
    Tool::new(def.name, def.description, Arc::new(def.input_schema()))
        .with_title(def.title)
        .with_raw_output_schema(Arc::new((def.output_schema)()))
        .with_annotations(
            ToolAnnotations::new()
                .read_only(hints.read_only)
                .destructive(hints.destructive)
                .idempotent(hints.idempotent)
                .open_world(hints.open_world),
        )
}

impl AlipayMcp {
    pub fn new(served: Arc<Served>) -> Self {
        Self { served }
    }

    /// Route one call to its tool.
    async fn call(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let renders = apps::host_renders(ctx.client_capabilities().as_ref());
        // An unknown (or unselected) tool is a protocol error, as the MCP spec has it.
        let Some(def) = self.served.callable(&request.name, renders) else {
            return Err(McpError::invalid_params("tool not found", None));
        };
        let app = match self.served.app().await {
            Ok(app) => app,
            Err(e) => return Ok(CallToolResult::error(vec![ContentBlock::text(e)]).into()),
        };
        let arguments = request.arguments.unwrap_or_default();
        let progress = McpProgress {
            // rmcp moves the request's `_meta` into the context.
            token: ctx.meta.get_progress_token(),
            peer: ctx.peer.clone(),
        };
        let confirm = ElicitConfirm {
            confirmations: &app.confirmations,
            ctx: &ctx,
            state: request.request_state,
            responses: request.input_responses,
            question: Default::default(),
            in_view: renders && self.served.refund_confirm && app.services.approvals.is_some(),
        };
        let call = CallContext {
            services: &app.services,
            confirm: &confirm,
            progress: &progress,
            can_wait: self.served.tool(wait::DEF.name).is_some(),
            views: renders.then_some(&app.view_grants),
        };
        Ok(match (def.call)(&call, &arguments).await {
            ToolReply::Done(outcome) => into_result(outcome).into(),
            ToolReply::AwaitingPerson => match confirm.take_question() {
                Some(question) => CallToolResponse::InputRequired(question),
                None => CallToolResult::error(vec![ContentBlock::text(
                    "the refund's confirmation could not be asked; call again",
                )])
                .into(),
            },
        })
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
    result.meta = outcome.view_meta.map(|m| rmcp::model::MetaObject(m.0));
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

impl ServerHandler for AlipayMcp {
    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let served = &self.served;
        let tools = if apps::host_renders(ctx.client_capabilities().as_ref()) {
            let app_only = served.app_tools.iter().map(|(_, t)| t.clone());
            served.viewed.iter().cloned().chain(app_only).collect()
        } else {
            served.tools.iter().map(|(_, t)| t.clone()).collect()
        };
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.call(request, ctx).await
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.served
            .tools
            .iter()
            .chain(&self.served.app_tools)
            .find(|(d, _)| d.name == name)
            .map(|(_, t)| t.clone())
    }

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
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let app = app_or_error(&self.served).await?;
        let mut list = resources::list(&app).await;
        if apps::host_renders(ctx.client_capabilities().as_ref())
            && !self.served.app_tools.is_empty()
        {
            list.extend(apps::resources(self.served.refund_confirm));
        }
        Ok(ListResourcesResult::with_all_items(list))
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
        // A view is static HTML: readable by any host, whether or not it renders it.
        if let Some(html) = apps::read(&request.uri) {
            return Ok(ReadResourceResult::new(vec![
                ResourceContents::text(html, request.uri.clone())
                    .with_mime_type(apps::MIME_TYPE)
                    .with_meta(apps::resource_meta()),
            ])
            .into());
        }
        let app = app_or_error(&self.served).await?;
        let text = resources::read(&app, &request.uri).await?;
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
