//! MCP Apps (the `io.modelcontextprotocol/ui` extension): the server's views and which tools name
//! them. A host that declared the extension sees every create tool pointing at the checkout view
//! (`_meta.ui.resourceUri`), the app-only tools (`_meta.ui.visibility: ["app"]`) and the `ui://`
//! resources; a host that did not sees exactly what it saw before this module existed. The HTML is
//! one self-contained file (no external script, style or font), so it needs no CSP domains.

pub mod grants;

use rmcp::model::{ClientCapabilities, JsonObject, MetaObject, Resource};
use serde_json::{Value, json};

use crate::tools::ToolKind;

/// The extension's identifier in `capabilities.extensions`.
pub const EXTENSION_ID: &str = "io.modelcontextprotocol/ui";
/// The MIME type of an MCP Apps view.
pub const MIME_TYPE: &str = "text/html;profile=mcp-app";
/// The checkout card: QR code, amount, title, order number, time left, live status.
pub const CHECKOUT_URI: &str = "ui://alipay/checkout";
/// The refund approval card (`AP_REFUND_CONFIRM=true`).
pub const REFUND_APPROVAL_URI: &str = "ui://alipay/refund-approval";

/// The one HTML file behind both views: it shows the card its tool result asks for.
const VIEW_HTML: &str = include_str!("view.html");

/// The host renders MCP Apps: it declared the extension, with our MIME type (or no list at all,
/// which the spec requires but early hosts left out).
pub fn host_renders(capabilities: Option<&ClientCapabilities>) -> bool {
    let Some(settings) = capabilities
        .and_then(|c| c.extensions.as_ref())
        .and_then(|e| e.get(EXTENSION_ID))
    else {
        return false;
    };
    match settings.get("mimeTypes") {
        None => true,
        Some(Value::Array(types)) => types.iter().any(|t| t == MIME_TYPE),
        Some(_) => false,
    }
}

/// The view a tool belongs to, if any: the one a model tool's results are shown in, or the one an
/// app-only tool serves.
pub fn view_of(kind: ToolKind, refund_confirm: bool) -> Option<&'static str> {
    match kind {
        ToolKind::MobilePay
        | ToolKind::WebPagePay
        | ToolKind::QrPay
        | ToolKind::AgentPay
        | ToolKind::CheckoutStatus => Some(CHECKOUT_URI),
        ToolKind::RefundPay | ToolKind::RefundDecision if refund_confirm => {
            Some(REFUND_APPROVAL_URI)
        }
        _ => None,
    }
}

/// `_meta` of a tool shown in `uri`: the nested key of the spec, and the flat key older hosts read
/// (the SDK's `registerAppTool` still writes both).
pub fn tool_meta(uri: &str) -> MetaObject {
    meta(json!({ "ui": { "resourceUri": uri }, "ui/resourceUri": uri }))
}

/// `_meta` of an app-only tool: hosts must not list it to the model. Advisory: every app-only
/// tool is safe (read-only) or checks a grant the model never sees (`grants`).
pub fn app_only_meta(uri: &str) -> MetaObject {
    meta(json!({ "ui": { "resourceUri": uri, "visibility": ["app"] }, "ui/resourceUri": uri }))
}

fn meta(value: Value) -> MetaObject {
    match value {
        Value::Object(map) => MetaObject(map),
        _ => MetaObject(JsonObject::new()),
    }
}

/// The `ui://` resources, for `resources/list` (to hosts that render them).
pub fn resources(refund_confirm: bool) -> Vec<Resource> {
    let mut list = vec![
        Resource::new(CHECKOUT_URI, "checkout")
            .with_description("The checkout card shown with a created order: QR code, amount, title, order number, time left and live status")
            .with_mime_type(MIME_TYPE),
    ];
    if refund_confirm {
        list.push(
            Resource::new(REFUND_APPROVAL_URI, "refund approval")
                .with_description(
                    "The card where a person approves or denies a refund awaiting approval",
                )
                .with_mime_type(MIME_TYPE),
        );
    }
    list
}

/// The HTML of a view, if `uri` names one.
pub fn read(uri: &str) -> Option<&'static str> {
    matches!(uri, CHECKOUT_URI | REFUND_APPROVAL_URI).then_some(VIEW_HTML)
}

/// `_meta` of a view's contents: a border, and no CSP domains because it loads nothing.
pub fn resource_meta() -> MetaObject {
    meta(json!({ "ui": { "prefersBorder": true } }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(settings: Value) -> ClientCapabilities {
        serde_json::from_value(json!({ "extensions": { EXTENSION_ID: settings } })).unwrap()
    }

    #[test]
    fn renders_only_when_the_extension_names_our_mime_type() {
        assert!(!host_renders(None));
        assert!(!host_renders(Some(&ClientCapabilities::default())));
        assert!(host_renders(Some(&caps(
            json!({ "mimeTypes": [MIME_TYPE] })
        ))));
        assert!(host_renders(Some(&caps(json!({})))));
        assert!(!host_renders(Some(&caps(
            json!({ "mimeTypes": ["text/uri-list"] })
        ))));
    }

    #[test]
    fn the_view_is_self_contained_and_sets_no_markup_from_data() {
        let html = VIEW_HTML.to_ascii_lowercase();
        for banned in [
            "src=\"http",
            "src='http",
            "href=\"http",
            "<link",
            "@import",
            "url(",
            "innerhtml",
            "outerhtml",
            "insertadjacenthtml",
            "document.write",
            "eval(",
            "new function",
        ] {
            assert!(!html.contains(banned), "the view contains {banned:?}");
        }
        assert!(html.starts_with("<!doctype html>"));
    }
}
