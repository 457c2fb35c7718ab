//! The subcommands a new user runs: `doctor` (one line per check, a fix for each failure, exit
//! status), `keygen` (console-ready key files, private key mode 0600) and `emulator`.

mod common;

use std::process::{Command, Stdio};

use common::*;

const KEYS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/alipay-vectors/keys/"
);

fn run(args: &[&str], env: &[(&str, String)], dir: &TempDir) -> (i32, String, String) {
    let output = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(local_env(dir.path(), 0))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn key(name: &str) -> String {
    std::fs::read_to_string(format!("{KEYS}{name}")).unwrap()
}

#[test]
fn doctor_passes_in_local_mode() {
    let dir = TempDir::new("doctor-local");
    let (code, out, err) = run(&["doctor"], &[("AP_NOTIFY_LISTEN", "off".into())], &dir);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.lines().all(|l| l.starts_with("[ok]")), "{out}");
    assert!(out.contains("signature verifies"), "{out}");
}

/// A real emulator as "Alipay", the vector keys as the merchant's.
fn emulator(dir: &TempDir) -> (std::process::Child, String, String) {
    let mut child = Command::new(BIN)
        .args([
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--app",
            &format!("2021000000000001={KEYS}app-public-spki.b64"),
        ])
        .args([
            "--alipay-private-key",
            &format!("{KEYS}alipay-private-pkcs8.pem"),
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let json: serde_json::Value = serde_json::from_str(&line).expect("one JSON line on stdout");
    (
        child,
        json["gateway"].as_str().unwrap().to_string(),
        json["alipay_public_key"].as_str().unwrap().to_string(),
    )
}

#[test]
fn doctor_checks_a_merchant_configuration_and_names_the_fix() {
    let dir = TempDir::new("doctor-prod");
    let (mut gateway, url, alipay_public) = emulator(&dir);
    assert_eq!(alipay_public, key("alipay-public-spki.b64").trim());
    let base = |pub_key: String| {
        vec![
            ("AP_APP_ID", "2021000000000001".to_string()),
            ("AP_APP_KEY", key("app-private-pkcs1.b64")),
            ("AP_PUB_KEY", pub_key),
            ("AP_GATEWAY_URL", url.clone()),
        ]
    };
    let (code, out, _) = run(&["doctor"], &base(key("alipay-public-spki.pem")), &dir);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("[ok]")).count(),
        5,
        "{out}"
    );

    // The commonest mistake: the app's own public key as AP_PUB_KEY.
    let (code, out, _) = run(&["doctor"], &base(key("app-public-spki.b64")), &dir);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[FAIL] AP_PUB_KEY is your application's own public key"),
        "{out}"
    );
    assert!(out.contains("fix: ") && out.contains("支付宝公钥"), "{out}");

    // An app key that does not match the public key registered at the gateway.
    let mut wrong_app = base(key("alipay-public-spki.b64"));
    wrong_app[1].1 = key("alipay-private-pkcs8.b64");
    let (code, out, _) = run(&["doctor"], &wrong_app, &dir);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("isv.invalid-signature") && out.contains("fix: "),
        "{out}"
    );

    // Nothing listening.
    let mut nowhere = base(key("alipay-public-spki.b64"));
    nowhere[3].1 = format!("http://127.0.0.1:{}/gateway.do", free_port());
    let (code, out, _) = run(&["doctor"], &nowhere, &dir);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[FAIL] cannot complete a request") && out.contains("fix: check the network"),
        "{out}"
    );

    // A bad key is one failed check, not a crash.
    let (code, out, err) = run(&["doctor"], &base("MIIBIjANBgkq".into()), &dir);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[FAIL] AP_PUB_KEY: "), "{out}");
    assert!(!err.contains("panicked"), "{err}");
    gateway.kill().unwrap();
    gateway.wait().unwrap();
}

#[test]
fn keygen_writes_console_ready_keys_and_never_overwrites_by_accident() {
    let dir = TempDir::new("keygen");
    let out_dir = dir.path().join("keys");
    let out_arg = out_dir.to_str().unwrap();
    let (code, out, err) = run(&["keygen", "--out", out_arg], &[], &dir);
    assert_eq!(code, 0, "{err}");
    let private = std::fs::read_to_string(out_dir.join("app-private-key.txt")).unwrap();
    let public = std::fs::read_to_string(out_dir.join("app-public-key.txt")).unwrap();
    assert!(
        !out.contains(private.trim()) && !err.contains(private.trim()),
        "the private key is never printed"
    );
    let key = alipay_openapi::PrivateKey::load("generated", &private).unwrap();
    assert_eq!(key.bits(), 2048);
    assert_eq!(key.public_key().to_spki_base64(), public.trim());
    assert!(
        !private.contains("BEGIN"),
        "bare Base64, as the console takes it"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(out_dir.join("app-private-key.txt"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    let (code, _, err) = run(&["keygen", "--out", out_arg], &[], &dir);
    assert_ne!(code, 0);
    assert!(err.contains("exists") && err.contains("--force"), "{err}");
    assert_eq!(
        std::fs::read_to_string(out_dir.join("app-private-key.txt")).unwrap(),
        private,
        "untouched"
    );
    let (code, _, _) = run(&["keygen", "--out", out_arg, "--force"], &[], &dir);
    assert_eq!(code, 0);
    assert_ne!(
        std::fs::read_to_string(out_dir.join("app-private-key.txt")).unwrap(),
        private,
        "replaced on --force"
    );
}
