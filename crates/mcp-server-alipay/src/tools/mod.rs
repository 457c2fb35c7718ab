//! The tools: which exist, how `AP_SELECT_TOOLS` picks them, and their logic. The MCP layer
//! (`crate::mcp`) only routes calls here; nothing in this module knows about rmcp.

pub mod args;
pub mod close;
pub mod guard;
pub mod list;
pub mod outcome;
pub mod pay;
pub mod query;
pub mod refund;
pub mod refund_query;
mod refund_report;
pub mod schema;

/// Every tool, in the reference's order.
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
}

impl ToolKind {
    pub const ALL: [ToolKind; 8] = [
        ToolKind::MobilePay,
        ToolKind::WebPagePay,
        ToolKind::QueryPay,
        ToolKind::RefundPay,
        ToolKind::RefundQuery,
        ToolKind::ClosePay,
        ToolKind::QrPay,
        ToolKind::ListOrders,
    ];

    /// The MCP tool name.
    pub fn name(self) -> &'static str {
        match self {
            ToolKind::MobilePay => "create-mobile-alipay-payment",
            ToolKind::WebPagePay => "create-web-page-alipay-payment",
            ToolKind::QueryPay => "query-alipay-payment",
            ToolKind::RefundPay => "refund-alipay-payment",
            ToolKind::RefundQuery => "query-alipay-refund",
            ToolKind::ClosePay => "close-alipay-payment",
            ToolKind::QrPay => "create-qrcode-alipay-payment",
            ToolKind::ListOrders => "list-alipay-orders",
        }
    }

    /// The `AP_SELECT_TOOLS` key.
    pub fn key(self) -> &'static str {
        match self {
            ToolKind::MobilePay => "mobilePay",
            ToolKind::WebPagePay => "webPagePay",
            ToolKind::QueryPay => "queryPay",
            ToolKind::RefundPay => "refundPay",
            ToolKind::RefundQuery => "refundQuery",
            ToolKind::ClosePay => "closePay",
            ToolKind::QrPay => "qrPay",
            ToolKind::ListOrders => "listOrders",
        }
    }

    /// Tools that only read: all that `AP_READ_ONLY=true` leaves.
    pub fn is_read_only(self) -> bool {
        matches!(
            self,
            ToolKind::QueryPay | ToolKind::RefundQuery | ToolKind::ListOrders
        )
    }

    /// Parse `AP_SELECT_TOOLS`: `all`, or a comma list of short keys or full names.
    pub fn select(spec: &str) -> Result<Vec<ToolKind>, String> {
        if spec.trim() == "all" {
            return Ok(Self::ALL.to_vec());
        }
        let mut chosen = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let tool = Self::ALL
                .into_iter()
                .find(|t| t.key() == item || t.name() == item)
                .ok_or_else(|| {
                    format!(
                        "unknown tool {item:?}; valid: all, or a comma list of {}",
                        Self::valid_names()
                    )
                })?;
            if !chosen.contains(&tool) {
                chosen.push(tool);
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
        Self::ALL
            .iter()
            .map(|t| format!("{} ({})", t.key(), t.name()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_by_key_or_name_tolerating_spaces() {
        assert_eq!(ToolKind::select("all").unwrap().len(), 8);
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
}
