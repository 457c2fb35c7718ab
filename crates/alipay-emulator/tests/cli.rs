//! The `alipay-emulator` binary: one JSON line on stdout once listening, serves, stops gracefully
//! on SIGTERM; bad flags and keys give one stderr line and a non-zero exit, never a panic.

mod common;

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use alipay_openapi::{AlipayClient, ClientConfig, Merchant, PublicKey, SignType, TradeQuery};
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_alipay-emulator");

fn key(name: &str) -> String {
    keys_dir().join(name).to_string_lossy().into_owned()
}

fn spawn(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

/// The first stdout line, read on a thread so a hung child cannot hang the test for ever.
fn first_line(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        // Anything after the first line would break the one-line contract.
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest);
        assert!(rest.is_empty(), "more stdout after the JSON line: {rest}");
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            panic!("no stdout line within 30 s");
        }
    }
}

fn wait(child: &mut Child) -> (std::process::ExitStatus, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status, err);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the emulator did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn prints_one_json_line_serves_and_stops_on_sigterm() {
    let app = format!("{APP_ID}={}", key("app-public-spki.pem"));
    let mut child = spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--app",
        &app,
        "--alipay-private-key",
        &key("alipay-private-pkcs1.b64"),
        "--notify-retry-secs",
        "1,2",
    ]);
    let line = first_line(&mut child);
    assert!(
        line.starts_with(r#"{"gateway":"http://127.0.0.1:"#),
        "{line}"
    );
    assert!(line.ends_with("\"}\n"), "one line: {line:?}");
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    let object = v.as_object().unwrap();
    assert_eq!(object.len(), 2, "{line}");
    let gateway = v["gateway"].as_str().unwrap();
    assert!(gateway.starts_with("http://127.0.0.1:") && gateway.ends_with("/gateway.do"));
    let alipay_key = v["alipay_public_key"].as_str().unwrap();
    let expected = std::fs::read_to_string(key("alipay-public-spki.b64")).unwrap();
    assert_eq!(
        alipay_key,
        expected.trim(),
        "bare Base64 SPKI of the given key"
    );

    let merchant = Merchant {
        app_id: APP_ID.into(),
        private_key: app_private(),
        sign_type: SignType::Rsa2,
        app_auth_token: None,
    };
    let client = AlipayClient::new(ClientConfig::new(
        merchant,
        PublicKey::load("printed", alipay_key).unwrap(),
        gateway,
    ))
    .unwrap();
    let err = client
        .execute(&TradeQuery::by_out_trade_no("CLI_1"))
        .await
        .unwrap_err();
    assert_eq!(
        err.business().unwrap().sub_code.as_deref(),
        Some("ACQ.TRADE_NOT_EXIST")
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (status, stderr) = wait(&mut child);
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");
}

#[test]
fn generates_a_platform_key_when_none_is_given() {
    let mut child = spawn(&["--listen", "127.0.0.1:0"]);
    let line = first_line(&mut child);
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    PublicKey::load("generated", v["alipay_public_key"].as_str().unwrap()).unwrap();
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let (status, stderr) = wait(&mut child);
    assert!(status.success(), "{stderr}");
}

#[test]
fn bad_flags_and_keys_fail_with_one_clear_line() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--app".into(), "no-key".into()],
            "--app \"no-key\": expected APP_ID=APP_PUBLIC_KEY",
        ),
        (
            vec!["--app".into(), format!("{APP_ID}=bm90IGEga2V5")],
            "--app 2021000000000001: app public key",
        ),
        (
            vec![
                "--app".into(),
                format!("{APP_ID}={}", key("app-private-pkcs8.pem")),
            ],
            "a public key is needed here",
        ),
        (
            vec!["--alipay-private-key".into(), "/nonexistent/key.pem".into()],
            "--alipay-private-key",
        ),
        (vec!["--listen".into(), busy_addr], "cannot listen on"),
    ];
    for (args, expected) in cases {
        let mut args = args;
        if !args.contains(&"--listen".to_string()) {
            args.extend(["--listen".into(), "127.0.0.1:0".into()]);
        }
        let mut child = Command::new(BIN)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (status, stderr) = wait(&mut child);
        let mut stdout = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        assert!(!status.success(), "{args:?}");
        assert!(
            stdout.is_empty(),
            "{args:?}: nothing on stdout, got {stdout}"
        );
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{args:?}: one line: {stderr}"
        );
    }
    // clap's own errors for malformed values.
    let mut child = Command::new(BIN)
        .args(["--notify-retry-secs", "1,soon"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, stderr) = wait(&mut child);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("--notify-retry-secs"), "{stderr}");
    drop(busy);
}
