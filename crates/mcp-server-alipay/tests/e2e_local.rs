//! End to end, local mode: the real binary over stdio, a real MCP client, the embedded gateway.
//! Create both kinds of link, open and pay, query, refund partially, repeat the refund, query the
//! refund, refund the rest, and check the trade closed — the flow an agent runs for a buyer.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn pay_query_refund_flow_on_the_embedded_gateway() {
    let dir = TempDir::new("flow");
    let client = connect(&local_env(dir.path(), free_port())).await;

    let info = client.peer_info().unwrap();
    let server = info.server_info.as_ref().unwrap();
    assert_eq!(server.name, "mcp-server-alipay");
    assert_eq!(server.version, env!("CARGO_PKG_VERSION"));
    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "close-alipay-payment",
            "create-alipay-payment-agent",
            "create-mobile-alipay-payment",
            "create-qrcode-alipay-payment",
            "create-web-page-alipay-payment",
            "list-alipay-orders",
            "query-alipay-payment",
            "query-alipay-refund",
            "reconcile-alipay-bill",
            "refund-alipay-payment",
            "wait-for-alipay-payment"
        ]
    );
    let wait_tool = tools
        .iter()
        .find(|t| t.name == "wait-for-alipay-payment")
        .unwrap();
    let wait_hints = wait_tool.annotations.as_ref().unwrap();
    assert_eq!(wait_hints.read_only_hint, Some(true));
    assert_eq!(wait_hints.idempotent_hint, Some(true));
    let refund_tool = tools
        .iter()
        .find(|t| t.name == "refund-alipay-payment")
        .unwrap();
    let hints = refund_tool.annotations.as_ref().unwrap();
    assert_eq!(hints.destructive_hint, Some(true));
    assert!(refund_tool.output_schema.is_some());
    assert_eq!(
        refund_tool.input_schema["additionalProperties"],
        json!(false)
    );

    // A phone link: the reference's text, and the link in structured output.
    let mobile = call(
        &client,
        "create-mobile-alipay-payment",
        json!({"outTradeNo":"E2E_M1","totalAmount":0.01,"orderTitle":"夏日诗歌创作服务"}),
    )
    .await;
    assert!(!is_error(&mobile), "{}", text(&mobile));
    assert!(
        text(&mobile).starts_with("支付链接: [点击完成支付](http://127.0.0.1:"),
        "{}",
        text(&mobile)
    );
    let mobile_link = link_of(&mobile);
    assert_eq!(structured(&mobile)["url"], json!(mobile_link));
    assert_eq!(structured(&mobile)["totalAmount"], json!("0.01"));
    assert_eq!(
        link_param(&mobile_link, "method").as_deref(),
        Some("alipay.trade.wap.pay")
    );
    let biz: serde_json::Value =
        serde_json::from_str(&link_param(&mobile_link, "biz_content").unwrap()).unwrap();
    assert_eq!(biz["product_code"], "QUICK_WAP_WAY");
    assert_eq!(
        biz["total_amount"],
        json!(0.01),
        "a JSON number, as the reference sends it"
    );
    assert!(link_param(&mobile_link, "sign").is_some());

    // A desktop link, with its QR image.
    let web = call(
        &client,
        "create-web-page-alipay-payment",
        json!({"outTradeNo":"E2E_W1","totalAmount":"88.8","orderTitle":"定製插畫 & 貓咪 🎨"}),
    )
    .await;
    assert!(
        text(&web).starts_with("网页支付链接: [点击完成支付](http://"),
        "{}",
        text(&web)
    );
    let image = web
        .content
        .iter()
        .find_map(|c| c.as_image())
        .expect("QR image content");
    assert_eq!(image.mime_type, "image/png");
    let link = link_of(&web);
    let gateway = Gateway::from_link(&link);

    // Before the buyer opens the link Alipay has no trade: said as such, not an error.
    let before = call(
        &client,
        "query-alipay-payment",
        json!({"outTradeNo":"E2E_W1"}),
    )
    .await;
    assert!(!is_error(&before), "{}", text(&before));
    assert_eq!(structured(&before)["awaitingBuyer"], json!(true));
    assert!(
        text(&before).contains("ACQ.TRADE_NOT_EXIST"),
        "{}",
        text(&before)
    );

    // The buyer opens the link (the cashier page shows the order) and pays.
    let page = gateway.open(&link).await;
    assert!(page.contains("88.80"), "the cashier shows the amount");
    gateway.pay("E2E_W1").await;
    let paid = call(
        &client,
        "query-alipay-payment",
        json!({"outTradeNo":"E2E_W1"}),
    )
    .await;
    let paid_text = text(&paid);
    assert!(
        paid_text.starts_with("交易状态: TRADE_SUCCESS, 交易金额: 88.80, 支付宝交易号: "),
        "{paid_text}"
    );
    let trade_no = structured(&paid)["tradeNo"].as_str().unwrap().to_string();
    assert_eq!(trade_no.len(), 28);
    assert_eq!(structured(&paid)["paid"], json!(true));

    // Partial refund, then the identical call again: idempotent, no second refund.
    let refund_args = json!({"outTradeNo":"E2E_W1","refundAmount":"10","outRequestNo":"E2E_R1","refundReason":"客戶取消部分需求"});
    let r1 = call(&client, "refund-alipay-payment", refund_args.clone()).await;
    assert_eq!(
        text(&r1),
        format!("退款结果: 退款成功, 退款交易: {trade_no}")
    );
    let r1_again = call(&client, "refund-alipay-payment", refund_args).await;
    assert_eq!(
        text(&r1_again),
        format!("退款结果: 重复请求退款幂等成功, 退款交易: {trade_no}")
    );
    let trade = gateway.trade("E2E_W1").await;
    assert_eq!(
        trade["refund_fee"],
        json!("10.00"),
        "the gateway refunded once: {trade}"
    );
    assert_eq!(trade["refunds"].as_array().unwrap().len(), 1, "{trade}");

    let rq = call(
        &client,
        "query-alipay-refund",
        json!({"outRequestNo":"E2E_R1","outTradeNo":"E2E_W1"}),
    )
    .await;
    assert_eq!(
        text(&rq),
        format!("查询到退款成功, 退款交易: {trade_no}, 退款金额: 10.00, 退款状态: REFUND_SUCCESS")
    );
    let none = call(
        &client,
        "query-alipay-refund",
        json!({"outRequestNo":"E2E_NOPE","outTradeNo":"E2E_W1"}),
    )
    .await;
    assert!(
        text(&none).starts_with("未查询到退款成功. 退款状态: "),
        "{}",
        text(&none)
    );

    // A refund above what remains is refused before anything is sent, with the figures from Alipay.
    let too_much = call(
        &client,
        "refund-alipay-payment",
        json!({"outTradeNo":"E2E_W1","refundAmount":"78.81","outRequestNo":"E2E_R2"}),
    )
    .await;
    assert!(is_error(&too_much));
    assert!(
        text(&too_much).contains("paid 88.80, already refunded 10.00, remaining 78.80"),
        "{}",
        text(&too_much)
    );

    // The rest closes the trade.
    let rest = call(
        &client,
        "refund-alipay-payment",
        json!({"outTradeNo":"E2E_W1","refundAmount":78.8,"outRequestNo":"E2E_R3"}),
    )
    .await;
    assert_eq!(
        text(&rest),
        format!("退款结果: 退款成功, 退款交易: {trade_no}")
    );
    let closed = call(
        &client,
        "query-alipay-payment",
        json!({"outTradeNo":"E2E_W1"}),
    )
    .await;
    assert!(
        text(&closed).starts_with("交易状态: TRADE_CLOSED, 交易金额: 88.80"),
        "{}",
        text(&closed)
    );

    // Refunding an unpaid order: Alipay says the trade does not exist.
    let unpaid = call(
        &client,
        "refund-alipay-payment",
        json!({"outTradeNo":"E2E_M1","refundAmount":"0.01","outRequestNo":"E2E_R4"}),
    )
    .await;
    assert!(is_error(&unpaid));
    assert!(
        text(&unpaid).starts_with("退款执行失败. 错误信息: "),
        "{}",
        text(&unpaid)
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn bad_arguments_are_tool_errors_and_nothing_reaches_the_gateway() {
    let dir = TempDir::new("badargs");
    let client = connect(&local_env(dir.path(), free_port())).await;
    let ok = call(
        &client,
        "create-mobile-alipay-payment",
        json!({"outTradeNo":"BA_1","totalAmount":1,"orderTitle":"t"}),
    )
    .await;
    let gateway = Gateway::from_link(&link_of(&ok));
    let before = gateway.request_count().await;
    let long = "X".repeat(65);
    let cases = [
        (
            "create-mobile-alipay-payment",
            json!({"outTradeNo":"A","totalAmount":0.001,"orderTitle":"t"}),
            "totalAmount",
        ),
        (
            "create-mobile-alipay-payment",
            json!({"outTradeNo":"A","totalAmount":-1,"orderTitle":"t"}),
            "totalAmount",
        ),
        (
            "create-web-page-alipay-payment",
            json!({"outTradeNo":"A","totalAmount":"abc","orderTitle":"t"}),
            "totalAmount",
        ),
        (
            "create-web-page-alipay-payment",
            json!({"outTradeNo":"A","totalAmount":1e9,"orderTitle":"t"}),
            "totalAmount",
        ),
        (
            "create-mobile-alipay-payment",
            json!({"outTradeNo":long,"totalAmount":1,"orderTitle":"t"}),
            "outTradeNo",
        ),
        (
            "create-mobile-alipay-payment",
            json!({"outTradeNo":"A","totalAmount":1,"orderTitle":"t","currency":"USD"}),
            "currency",
        ),
        ("query-alipay-payment", json!({}), "outTradeNo"),
        (
            "query-alipay-payment",
            json!({"outTradeNo":long}),
            "outTradeNo",
        ),
        (
            "refund-alipay-payment",
            json!({"outTradeNo":"A","refundAmount":"0.001","outRequestNo":"R"}),
            "refundAmount",
        ),
        (
            "refund-alipay-payment",
            json!({"outTradeNo":"A","refundAmount":"1","outRequestNo":long}),
            "outRequestNo",
        ),
        (
            "refund-alipay-payment",
            json!({"outTradeNo":"A","refundAmount":"1"}),
            "outRequestNo",
        ),
        (
            "query-alipay-refund",
            json!({"outTradeNo":"A"}),
            "outRequestNo",
        ),
        (
            "query-alipay-refund",
            json!({"outTradeNo":"A","outRequestNo":"R","x":1}),
            "x",
        ),
    ];
    for (tool, args, field) in cases {
        let result = call(&client, tool, args.clone()).await;
        assert!(is_error(&result), "{tool} {args}: {}", text(&result));
        let message = text(&result);
        assert!(
            message.contains(&format!("{field}: ")),
            "{tool} {args}: {message}"
        );
        assert!(
            message.starts_with(&format!("Invalid arguments for tool {tool}: ")),
            "{message}"
        );
        assert_eq!(structured(&result)["error"]["field"], json!(field));
    }
    assert_eq!(
        gateway.request_count().await,
        before,
        "no bad call may reach the gateway"
    );
    // The server keeps serving.
    let after = call(
        &client,
        "query-alipay-payment",
        json!({"outTradeNo":"BA_1"}),
    )
    .await;
    assert!(!is_error(&after));
    // An unknown tool is a protocol error, as with the reference.
    let unknown = client
        .call_tool(rmcp::model::CallToolRequestParams::new("no-such-tool"))
        .await
        .unwrap_err();
    assert!(unknown.to_string().contains("not found"), "{unknown}");
    client.cancel().await.unwrap();
}
