//! Every key form of `testdata/alipay-vectors/keys/` loads; bad keys are typed errors that name the
//! key and the problem, and never echo key material.

use std::path::{Path, PathBuf};

use alipay_openapi::{KeyProblem, PrivateKey, PublicKey, SignType};

fn keys_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/alipay-vectors/keys");
    assert!(dir.is_dir(), "vector keys missing at {}", dir.display());
    dir
}

fn read(name: &str) -> String {
    std::fs::read_to_string(keys_dir().join(name)).unwrap()
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

#[test]
fn every_private_form_loads_and_matches_every_public_form() {
    for pair in ["app", "alipay"] {
        let publics: Vec<PublicKey> = ["public-pkcs1.pem", "public-spki.b64", "public-spki.pem"]
            .iter()
            .map(|f| PublicKey::load("public", &read(&format!("{pair}-{f}"))).unwrap())
            .collect();
        assert!(publics.windows(2).all(|w| w[0] == w[1]));
        for form in [
            "private-pkcs1.b64",
            "private-pkcs1.pem",
            "private-pkcs8.b64",
            "private-pkcs8.pem",
        ] {
            let text = read(&format!("{pair}-{form}"));
            let key =
                PrivateKey::load("private", &text).unwrap_or_else(|e| panic!("{pair}-{form}: {e}"));
            assert_eq!(key.bits(), 2048);
            assert_eq!(key.public_key(), &publics[0], "{pair}-{form}");
            // Line breaks anywhere, surrounding blanks, CRLF: all the same key.
            let wrapped: String = text
                .chars()
                .filter(|c| !c.is_whitespace() || *c == '\n')
                .collect();
            let crlf = format!("\r\n  {}\r\n", wrapped.replace('\n', "\r\n"));
            assert_eq!(
                PrivateKey::load("private", &crlf).unwrap().public_key(),
                &publics[0]
            );
            // A path to a file holding the key.
            let path = keys_dir().join(format!("{pair}-{form}"));
            assert_eq!(
                PrivateKey::load("private", path.to_str().unwrap())
                    .unwrap()
                    .public_key(),
                &publics[0]
            );
            // Signs and verifies with both algorithms.
            for t in [SignType::Rsa2, SignType::Rsa] {
                let sig = key.sign(t, "a=1&b=中").unwrap();
                assert_eq!(sig.len(), 344);
                publics[0].verify(t, "a=1&b=中", &sig).unwrap();
                assert!(publics[0].verify(t, "a=1&b=中 ", &sig).is_err());
            }
        }
        // Bare Base64 with line breaks every 64 characters.
        let b64 = read(&format!("{pair}-public-spki.b64"));
        let broken: String = b64
            .trim()
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap().to_string() + "\n")
            .collect();
        assert_eq!(PublicKey::load("public", &broken).unwrap(), publics[0]);
        assert_eq!(publics[0].to_spki_base64(), b64.trim());
        assert_eq!(
            PublicKey::load("public", &publics[0].to_spki_pem()).unwrap(),
            publics[0]
        );
    }
}

fn problem_of_private(text: &str) -> KeyProblem {
    let err = PrivateKey::load("AP_APP_KEY", text).unwrap_err();
    assert!(err.to_string().starts_with("AP_APP_KEY: "), "{err}");
    err.problem
}

fn problem_of_public(text: &str) -> KeyProblem {
    let err = PublicKey::load("AP_PUB_KEY", text).unwrap_err();
    assert!(err.to_string().starts_with("AP_PUB_KEY: "), "{err}");
    err.problem
}

#[test]
fn bad_keys_are_typed_errors_naming_the_problem() {
    assert_eq!(problem_of_private(""), KeyProblem::Empty);
    assert_eq!(problem_of_private("   \n"), KeyProblem::Empty);
    let b64 = read("app-private-pkcs8.b64");
    let b64 = b64.trim();
    // Truncated at a Base64 boundary (valid Base64, truncated DER) and in the middle of a quantum.
    assert_eq!(problem_of_private(&b64[..800]), KeyProblem::NotAKey);
    assert!(matches!(
        problem_of_private(&b64[..801]),
        KeyProblem::Base64(_)
    ));
    assert_eq!(problem_of_private("not a key at all"), KeyProblem::NotAKey);
    assert!(matches!(
        problem_of_private("not-a-key!"),
        KeyProblem::Base64(_)
    ));
    assert!(matches!(
        problem_of_private("/no/such/file.pem"),
        KeyProblem::Base64(_)
    ));
    assert_eq!(
        problem_of_private(&read("app-public-spki.b64")),
        KeyProblem::PublicWherePrivateExpected
    );
    assert_eq!(
        problem_of_private(&read("app-public-pkcs1.pem")),
        KeyProblem::PublicWherePrivateExpected
    );
    assert_eq!(
        problem_of_public(&read("alipay-private-pkcs8.b64")),
        KeyProblem::PrivateWherePublicExpected
    );
    assert_eq!(
        problem_of_public(&read("alipay-private-pkcs1.pem")),
        KeyProblem::PrivateWherePublicExpected
    );
    assert!(
        matches!(problem_of_private(&fixture("ec-p256-pkcs8.pem")), KeyProblem::NotRsa(oid) if oid == "1.2.840.10045.2.1")
    );
    assert!(matches!(
        problem_of_public(&fixture("ec-p256-spki.pem")),
        KeyProblem::NotRsa(_)
    ));
    assert_eq!(
        problem_of_private(&fixture("rsa1024-pkcs8.pem")),
        KeyProblem::TooShort(1024)
    );
    let pem = read("app-private-pkcs8.pem");
    assert!(matches!(
        problem_of_private(pem.lines().take(5).collect::<Vec<_>>().join("\n").as_str()),
        KeyProblem::Pem(_)
    ));
    let encrypted = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----";
    assert_eq!(problem_of_private(encrypted), KeyProblem::Encrypted);
}

#[test]
fn keys_never_show_their_material() {
    let text = read("app-private-pkcs8.b64");
    let key = PrivateKey::load("k", &text).unwrap();
    let debug = format!("{key:?} {:?}", key.public_key());
    assert!(!debug.contains(&text.trim()[40..80]), "{debug}");
    assert!(
        !debug.contains(&key.public_key().to_spki_base64()[40..80]),
        "{debug}"
    );
    // Errors carry no key text either, even for a key one character short.
    let err = PrivateKey::load("k", &text.trim()[..text.trim().len() - 1])
        .unwrap_err()
        .to_string();
    assert!(!err.contains(&text.trim()[40..80]), "{err}");
}

#[test]
fn generated_keys_round_trip_through_the_console_forms() {
    let key = PrivateKey::generate().unwrap();
    let again = PrivateKey::load("k", &key.to_pkcs8_base64()).unwrap();
    assert_eq!(again.public_key(), key.public_key());
    let public = PublicKey::load("p", &key.public_key().to_spki_base64()).unwrap();
    let sig = again.sign(SignType::Rsa2, "x").unwrap();
    public.verify(SignType::Rsa2, "x", &sig).unwrap();
}

/// A server reads its key's form at start-up and loads the key (aws-lc's arithmetic check) on the
/// first call: the form is refused at once, numbers that do not agree only at the load.
#[test]
fn a_key_read_in_form_loads_later_and_its_numbers_are_checked_then() {
    use alipay_openapi::PrivateKeyDer;
    use base64::Engine as _;
    use rsa::pkcs1::der::Decode as _;

    let text = read("app-private-pkcs8.b64");
    let read_key = PrivateKeyDer::read("AP_APP_KEY", &text).unwrap();
    assert_eq!(read_key.bits(), 2048);
    let debug = format!("{read_key:?}");
    assert_eq!(debug, "PrivateKeyDer(RSA-2048, redacted)");
    let loaded = read_key.load().unwrap();
    assert_eq!(
        loaded.public_key(),
        PrivateKey::load("k", &text).unwrap().public_key()
    );
    for (bad, problem) in [
        (
            read("app-public-spki.b64"),
            KeyProblem::PublicWherePrivateExpected,
        ),
        (fixture("rsa1024-pkcs8.pem"), KeyProblem::TooShort(1024)),
        (text.trim()[..800].to_string(), KeyProblem::NotAKey),
    ] {
        let err = PrivateKeyDer::read("AP_APP_KEY", &bad).unwrap_err();
        assert_eq!(err.problem, problem, "{err}");
    }

    // A PKCS#1 key with one bit of its modulus flipped: well-formed DER of 2048 bits, but n is no
    // longer p × q.
    let mut der = base64::engine::general_purpose::STANDARD
        .decode(read("app-private-pkcs1.b64").trim())
        .unwrap();
    let modulus = rsa::pkcs1::RsaPrivateKeyRef::from_der(&der)
        .unwrap()
        .modulus
        .as_bytes()
        .to_vec();
    let at = der
        .windows(modulus.len())
        .position(|w| w == modulus)
        .unwrap();
    der[at + 100] ^= 1;
    let tampered = base64::engine::general_purpose::STANDARD.encode(&der);
    let read_key = PrivateKeyDer::read("AP_APP_KEY", &tampered).unwrap();
    assert_eq!(read_key.bits(), 2048);
    let err = read_key.load().unwrap_err();
    assert!(matches!(err.problem, KeyProblem::Invalid(_)), "{err}");
    assert!(err.to_string().starts_with("AP_APP_KEY: "), "{err}");
}
