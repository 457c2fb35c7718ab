//! Configuration end to end: tool selection, start-up errors, a restart that keeps keys and
//! trades, and a stdout that carries nothing but JSON-RPC.

mod common;

use std::io::{BufRead as _, Write as _};
use std::process::{Command, Stdio};

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn select_tools_filters_what_is_listed_and_callable() {
    let dir = TempDir::new("select");
    let mut env = local_env(dir.path(), free_port());
    env.insert(
        "AP_SELECT_TOOLS".into(),
        " mobilePay , query-alipay-payment ".into(),
    );
    let client = connect(&env).await;
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["create-mobile-alipay-payment", "query-alipay-payment"]
    );
    let refused = client
        .call_tool(
            rmcp::model::CallToolRequestParams::new("refund-alipay-payment").with_arguments(
                json!({"outTradeNo":"A","refundAmount":"1","outRequestNo":"R"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await;
    assert!(refused.is_err(), "an unselected tool cannot be called");
    client.cancel().await.unwrap();
}

fn start_up_error(env: &[(&str, &str)]) -> (i32, String) {
    let dir = TempDir::new("badenv");
    let output = Command::new(BIN)
        .env_clear()
        .envs(local_env(dir.path(), 0))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.stdout.is_empty(), "nothing on stdout");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn invalid_configuration_stops_start_up_with_one_line_naming_the_variable() {
    for (env, var, hint) in [
        (
            vec![("AP_SELECT_TOOLS", "mobilePay,refund")],
            "AP_SELECT_TOOLS",
            "refundPay",
        ),
        (
            vec![("AP_ENCRYPTION_ALGO", "SHA1")],
            "AP_ENCRYPTION_ALGO",
            "RSA2",
        ),
        (
            vec![("AP_CURRENT_ENV", "staging")],
            "AP_CURRENT_ENV",
            "sandbox",
        ),
        (
            vec![("AP_APP_ID", "2021000000000001")],
            "AP_APP_KEY",
            "private key",
        ),
        (
            vec![
                ("AP_APP_ID", "2021000000000001"),
                ("AP_APP_KEY", "MIIEvQIBAD"),
                ("AP_PUB_KEY", "MIIB"),
            ],
            "AP_APP_KEY",
            "",
        ),
        (
            vec![("AP_TIMEOUT_MS", "soon")],
            "AP_TIMEOUT_MS",
            "milliseconds",
        ),
    ] {
        let (code, stderr) = start_up_error(&env);
        assert_ne!(code, 0, "{env:?}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains(var) && stderr.contains(hint),
            "{env:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// A prod key of the right form whose numbers disagree passes the configuration, so the
/// handshake is answered at once; the server stops when its app starts (the key is loaded then),
/// with one line naming `AP_APP_KEY`, even though its client is still connected.
#[test]
fn a_prod_key_whose_numbers_disagree_stops_the_server_after_the_handshake() {
    use base64::Engine as _;
    let keys = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/alipay-vectors/keys/"
    );
    let text = std::fs::read_to_string(format!("{keys}app-private-pkcs1.b64")).unwrap();
    let mut der = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap();
    // SEQUENCE, version 0, then the modulus: INTEGER of 257 bytes (a zero, then n).
    assert_eq!(der[4..12], [2, 1, 0, 2, 0x82, 1, 1, 0]);
    der[12 + 100] ^= 1;
    let tampered = base64::engine::general_purpose::STANDARD.encode(&der);
    let dir = TempDir::new("badkey");
    let mut env = local_env(dir.path(), 0);
    env.insert("AP_APP_ID".into(), "2021000000000001".into());
    env.insert("AP_APP_KEY".into(), tampered);
    env.insert("AP_PUB_KEY".into(), format!("{keys}alipay-public-spki.b64"));
    let mut server = raw::Raw::start(&env);
    assert_eq!(
        server.initialized["result"]["serverInfo"]["name"],
        "mcp-server-alipay"
    );
    let status = server
        .exit_within(std::time::Duration::from_secs(20))
        .expect("the server kept running with a key it cannot load");
    assert!(!status.success(), "{status}");
    let stderr = server.stderr();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("AP_APP_KEY") && stderr.contains("invalid"),
        "{stderr}"
    );
    assert!(!stderr.contains(&text.trim()[40..80]), "{stderr}");
}

#[tokio::test]
async fn local_mode_restart_keeps_keys_and_trades() {
    let dir = TempDir::new("restart");
    let env = local_env(dir.path(), free_port());
    let client = connect(&env).await;
    let created = call(
        &client,
        "create-web-page-alipay-payment",
        json!({"outTradeNo":"RS_1","totalAmount":"5.00","orderTitle":"restart"}),
    )
    .await;
    let link = link_of(&created);
    let gateway = Gateway::from_link(&link);
    gateway.open(&link).await;
    gateway.pay("RS_1").await;
    client.cancel().await.unwrap();
    let key_file = dir.path().join("data/local/app-private-key.txt");
    let key_before = std::fs::read_to_string(&key_file).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    let client = connect(&env).await;
    let again = call(
        &client,
        "query-alipay-payment",
        json!({"outTradeNo":"RS_1"}),
    )
    .await;
    assert!(
        text(&again).starts_with("交易状态: TRADE_SUCCESS, 交易金额: 5.00"),
        "{}",
        text(&again)
    );
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        key_before,
        "keys are created once"
    );
    // A link made before the restart still reaches the same gateway and verifies (same keys, same
    // port): Alipay's answer for a paid order is its "already paid" page, not a signature error.
    let reopened = gateway.open(&link).await;
    assert!(reopened.contains("ACQ.TRADE_HAS_SUCCESS"), "{reopened}");
    client.cancel().await.unwrap();
}

/// Drive the server by hand and check every byte it writes to stdout is a JSON-RPC message.
#[test]
fn stdout_carries_only_json_rpc() {
    let dir = TempDir::new("stdout");
    let mut child = Command::new(BIN)
        .env_clear()
        .envs(local_env(dir.path(), free_port()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let requests = [
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}),
        json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"create-web-page-alipay-payment","arguments":{"outTradeNo":"SO_1","totalAmount":1,"orderTitle":"t"}}}),
        json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"query-alipay-payment","arguments":{"outTradeNo":"SO_1"}}}),
        json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"query-alipay-payment","arguments":{"outTradeNo":"bad no"}}}),
    ];
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map(Result::unwrap)
            .collect::<Vec<String>>()
    });
    let mut lines_seen = Vec::new();
    for r in &requests {
        writeln!(stdin, "{r}").unwrap();
        stdin.flush().unwrap();
    }
    // Give the server time to answer, then close stdin: it must exit on its own.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    lines_seen.extend(reader.join().unwrap());
    let mut ids = Vec::new();
    for line in &lines_seen {
        let msg: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON on stdout ({e}): {line}"));
        assert_eq!(msg["jsonrpc"], "2.0", "{line}");
        if let Some(id) = msg.get("id") {
            ids.push(id.as_i64().unwrap());
        }
    }
    ids.sort();
    assert_eq!(ids, [1, 2, 3, 4, 5], "every request answered");
    let init: Value = serde_json::from_str(&lines_seen[0]).unwrap();
    assert_eq!(init["result"]["protocolVersion"], "2025-03-26");
    assert_eq!(init["result"]["serverInfo"]["name"], "mcp-server-alipay");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("local mode, no real money"), "{stderr}");
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(log.contains("SO_1"), "tool calls are logged");
    assert!(!log.contains("sign="), "signed links are never logged");
}

/// Two servers on one data dir (a desktop app and an editor, say): the second uses the first's
/// gateway instead of running another one over the same state file.
#[tokio::test]
async fn two_servers_on_one_data_dir_share_one_gateway() {
    let dir = TempDir::new("shared");
    let mut env = local_env(dir.path(), free_port());
    env.insert("AP_NOTIFY_LISTEN".into(), "127.0.0.1:0".into());
    let first = connect(&env).await;
    let mut second_env = env.clone();
    second_env.insert("AP_LOCAL_PORT".into(), "0".into());
    let second = connect(&second_env).await;
    let a = call(
        &first,
        "create-web-page-alipay-payment",
        json!({"outTradeNo":"SH_1","totalAmount":"1.00","orderTitle":"t"}),
    )
    .await;
    let b = call(
        &second,
        "create-web-page-alipay-payment",
        json!({"outTradeNo":"SH_2","totalAmount":"2.00","orderTitle":"t"}),
    )
    .await;
    let (link_a, link_b) = (link_of(&a), link_of(&b));
    assert_eq!(gateway_base(&link_a), gateway_base(&link_b), "one gateway");
    let gateway = Gateway::from_link(&link_b);
    gateway.open(&link_b).await;
    gateway.pay("SH_2").await;
    for client in [&first, &second] {
        let q = call(client, "query-alipay-payment", json!({"outTradeNo":"SH_2"})).await;
        assert!(
            text(&q).starts_with("交易状态: TRADE_SUCCESS, 交易金额: 2.00"),
            "{}",
            text(&q)
        );
    }
    second.cancel().await.unwrap();
    first.cancel().await.unwrap();
    // The owner persisted the order the buyer opened through the second server's link.
    let state =
        std::fs::read_to_string(dir.path().join("data/local/alipay-emulator-state.json")).unwrap();
    assert!(state.contains("SH_2"), "{state}");
}
