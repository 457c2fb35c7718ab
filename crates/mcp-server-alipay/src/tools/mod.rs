//! The tools. Each tool is one definition ([`ToolDef`]: name, `AP_SELECT_TOOLS` key, title,
//! description, annotations, argument fields, output type) beside its parser, its call into
//! `crate::service` and its rendering, in one file; [`TOOLS`] lists them in the reference's order.
//! Nothing here knows rmcp: `crate::mcp` turns definitions into `tools/list` and routes calls.

pub mod args;
pub mod bill;
pub mod checkout_status;
pub mod close;
pub mod create;
pub mod list;
pub mod query;
pub mod refund;
pub mod refund_decision;
pub mod refund_query;
pub mod render;
#[cfg(test)]
mod schema_check;
pub mod wait;

use std::future::Future;
use std::pin::Pin;

use schemars::JsonSchema;
use serde_json::{Map, Value};

use crate::service::Services;
use crate::service::refunds::Confirm;
use crate::service::wait::Progress;
use crate::tools::args::Field;
use crate::tools::render::ToolOutcome;

/// Every tool: the model's, in the reference's order, then the app-only ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ToolKind {
    MobilePay,
    WebPagePay,
    QueryPay,
    RefundPay,
    RefundQuery,
    ClosePay,
    QrPay,
    ListOrders,
    WaitPay,
    AgentPay,
    BillRecon,
    /// App-only (MCP Apps): what the checkout view polls.
    CheckoutStatus,
    /// App-only (MCP Apps): the refund approval view's button.
    RefundDecision,
}

/// MCP tool annotations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hints {
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
    pub open_world: bool,
}

/// What a call may need besides its arguments.
pub struct CallContext<'a> {
    pub services: &'a Services,
    /// Asks a person to approve a refund (`AP_REFUND_CONFIRM`).
    pub confirm: &'a dyn Confirm,
    /// Tells the caller a long call goes on (when it asked, with a progress token).
    pub progress: &'a dyn Progress,
    /// `wait-for-alipay-payment` is served, so answers may point the agent at it.
    pub can_wait: bool,
    /// The host renders MCP Apps views: the refund approval view's grants (`crate::apps`).
    pub views: Option<&'a crate::apps::grants::ViewGrants>,
}

/// How a call ended.
#[derive(Debug)]
pub enum ToolReply {
    Done(ToolOutcome),
    /// A person was asked (the input-required flow); the MCP layer returns the question.
    AwaitingPerson,
}

pub type CallFuture<'a> = Pin<Box<dyn Future<Output = ToolReply> + Send + 'a>>;

/// One tool, completely.
pub struct ToolDef {
    pub kind: ToolKind,
    pub name: &'static str,
    /// Its `AP_SELECT_TOOLS` key.
    pub select_key: &'static str,
    pub title: &'static str,
    /// The reference's description, word for word where it has the tool.
    pub description: &'static str,
    pub hints: Hints,
    pub fields: &'static [Field],
    /// Its argument parser, result dropped: what `schema_check` holds the input schema to.
    pub validate: fn(&Map<String, Value>) -> Result<(), args::ArgError>,
    /// The schema of its structured output, from the output type.
    pub output_schema: fn() -> Map<String, Value>,
    pub call: for<'a> fn(&'a CallContext<'a>, &'a Map<String, Value>) -> CallFuture<'a>,
}

impl ToolDef {
    pub fn input_schema(&self) -> Map<String, Value> {
        args::input_schema(self.fields)
    }
}

/// Every tool, in the reference's order.
pub const TOOLS: [&ToolDef; 11] = [
    &create::MOBILE,
    &create::WEB_PAGE,
    &query::DEF,
    &refund::DEF,
    &refund_query::DEF,
    &create::AGENT,
    &close::DEF,
    &create::QR_CODE,
    &list::DEF,
    &wait::DEF,
    &bill::DEF,
];

/// The app-only tools (MCP Apps): listed only to hosts that render views, hidden by them from the
/// model, and never selected by `AP_SELECT_TOOLS` (they follow the tools whose views use them).
pub const APP_TOOLS: [&ToolDef; 2] = [&checkout_status::DEF, &refund_decision::DEF];

/// The output schema of `T` as it serialises (draft 2020-12, every subschema inlined so clients
/// that resolve no `$ref` read it whole).
pub fn output_schema_of<T: JsonSchema>() -> Map<String, Value> {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12().for_serialize();
    settings.inline_subschemas = true;
    let schema = settings.into_generator().into_root_schema_for::<T>();
    // The schema's own value, not its `Serialize` (which re-orders keywords into a new value: a
    // third of start-up's instructions, for an order `serde_json::Map` does not keep).
    match schema.to_value() {
        Value::Object(mut map) => {
            // The wrapper type's name and doc are noise to a model.
            map.remove("title");
            map.remove("description");
            map
        }
        _ => Map::new(),
    }
}

/// Box a tool's async call.
pub fn boxed<'a>(f: impl Future<Output = ToolReply> + Send + 'a) -> CallFuture<'a> {
    Box::pin(f)
}

impl ToolKind {
    /// Every tool, in the reference's order (then ours).
    pub fn all() -> Vec<Self> {
        TOOLS.iter().map(|d| d.kind).collect()
    }

    pub fn def(self) -> &'static ToolDef {
        TOOLS
            .into_iter()
            .chain(APP_TOOLS)
            .find(|d| d.kind == self)
            .unwrap_or(TOOLS[0])
    }

    /// The MCP tool name.
    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// Tools that only read: all that `AP_READ_ONLY=true` leaves.
    pub fn is_read_only(self) -> bool {
        self.def().hints.read_only
    }

    /// Parse `AP_SELECT_TOOLS`: `all`, or a comma list of short keys or full names.
    pub fn select(spec: &str) -> Result<Vec<Self>, String> {
        if spec.trim() == "all" {
            return Ok(Self::all());
        }
        let mut chosen = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let tool = TOOLS
                .into_iter()
                .find(|t| t.select_key == item || t.name == item)
                .ok_or_else(|| {
                    format!(
                        "unknown tool {item:?}; valid: all, or a comma list of {}",
                        Self::valid_names()
                    )
                })?;
            if !chosen.contains(&tool.kind) {
                chosen.push(tool.kind);
            }
        }
        if chosen.is_empty() {
            return Err(format!(
                "selects no tool; valid: all, or a comma list of {}",
                Self::valid_names()
            ));
        }
        Ok(chosen)
    }

    fn valid_names() -> String {
        TOOLS
            .iter()
            .map(|t| format!("{} ({})", t.select_key, t.name))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_by_key_or_name_tolerating_spaces() {
        assert_eq!(ToolKind::select("all").unwrap().len(), 11);
        assert_eq!(
            ToolKind::select("agentPay").unwrap(),
            ToolKind::select("create-alipay-payment-agent").unwrap()
        );
        assert_eq!(
            ToolKind::select(" mobilePay , query-alipay-payment,,mobilePay ").unwrap(),
            vec![ToolKind::MobilePay, ToolKind::QueryPay]
        );
        let e = ToolKind::select("mobilePay,refund").unwrap_err();
        assert!(
            e.contains("\"refund\"") && e.contains("refundPay (refund-alipay-payment)"),
            "{e}"
        );
        assert!(ToolKind::select(" , ").is_err());
        assert!(
            ToolKind::select("MobilePay").is_err(),
            "keys are case-sensitive"
        );
    }

    #[test]
    fn every_kind_has_exactly_one_definition() {
        for kind in ToolKind::all() {
            assert_eq!(
                TOOLS.iter().filter(|d| d.kind == kind).count(),
                1,
                "{kind:?}"
            );
        }
        let mut names: Vec<_> = TOOLS.iter().chain(&APP_TOOLS).map(|d| d.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), TOOLS.len() + APP_TOOLS.len());
        for app in APP_TOOLS {
            assert_eq!(app.kind.def().name, app.name);
            assert!(
                ToolKind::select(app.select_key).is_err(),
                "{} is not selectable",
                app.name
            );
        }
    }
}
