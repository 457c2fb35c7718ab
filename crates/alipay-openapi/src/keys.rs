//! RSA keys in every form Alipay users hand us: PKCS#8 or PKCS#1 private keys, SPKI or PKCS#1 public
//! keys, PEM or bare Base64 (with or without line breaks), or a path to a file holding any of these.
//!
//! The form is found by parsing the DER, never by looking at a prefix (`MIIEv…` is PKCS#8 and
//! `MIIEp…` may be either). Keys are parsed once; the parsed objects are cheap to clone and never
//! print their material in `Debug` or in an error.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, KeyPair as _, ParsedPublicKey, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs1::der::Decode as _;

use crate::error::{KeyError, KeyProblem, SignError};

/// `1.2.840.113549.1.1.1`, rsaEncryption.
const RSA_ENCRYPTION_OID: &str = "1.2.840.113549.1.1.1";
/// Alipay issues 2048-bit keys; RSA2 (SHA256withRSA) requires at least that.
pub const MIN_RSA_BITS: usize = 2048;
/// The largest key aws-lc loads for signing.
const MAX_RSA_BITS: usize = 8192;
/// Inputs longer than this are never taken for a file path.
const MAX_PATH_LEN: usize = 4096;

/// An application (merchant) or platform private key, ready to sign.
#[derive(Clone)]
pub struct PrivateKey {
    inner: Arc<PrivateInner>,
}

struct PrivateInner {
    bits: usize,
    /// aws-lc key: every RSA2 signature (the hot path).
    lc: RsaKeyPair,
    /// PKCS#8 DER, kept to build the pure-Rust key the first time a legacy SHA1 signature is asked for.
    pkcs8: Vec<u8>,
    legacy: OnceLock<rsa::pkcs1v15::SigningKey<sha1::Sha1>>,
    public: PublicKey,
}

/// A public key, ready to verify RSA2 and RSA signatures.
#[derive(Clone)]
pub struct PublicKey {
    inner: Arc<PublicInner>,
}

struct PublicInner {
    bits: usize,
    spki_der: Vec<u8>,
    sha256: ParsedPublicKey,
    sha1: ParsedPublicKey,
}

/// A private key read and checked in form (PKCS#8 or PKCS#1 DER of an RSA private key of 2048 to
/// 8192 bits) but not yet loaded. Loading checks the key's arithmetic (aws-lc's `RSA_check_key`,
/// about 2.6M instructions, most of a server's start-up), so a server checks the form as it reads
/// its configuration and loads the key when a call first needs it.
#[derive(Clone)]
pub struct PrivateKeyDer {
    label: Arc<str>,
    der: Arc<[u8]>,
    bits: usize,
}

impl PrivateKeyDer {
    /// Read a private key from text (PEM or bare Base64 of PKCS#8 or PKCS#1 DER) or a file path,
    /// and check its form. `label` names the key in errors, here and when it is loaded.
    pub fn read(label: &str, input: &str) -> Result<Self, KeyError> {
        let err = |problem| KeyError::new(label, problem);
        let der = decode_key_text(label, input)?;
        match classify_private(&der) {
            PrivateForm::Pkcs1 | PrivateForm::Pkcs8Rsa => {}
            PrivateForm::Pkcs8Other(oid) => return Err(err(KeyProblem::NotRsa(oid))),
            PrivateForm::NotPrivate => return Err(err(not_private(&der))),
        }
        let Some(rsa) = rsa_private_key(&der) else {
            return Err(err(KeyProblem::Invalid(
                "the PKCS#8 key holds no RSA private key".into(),
            )));
        };
        let bits = rsa.modulus.as_bytes().len() * 8;
        if bits < MIN_RSA_BITS {
            return Err(err(KeyProblem::TooShort(bits)));
        }
        if bits > MAX_RSA_BITS {
            return Err(err(KeyProblem::Invalid(format!(
                "the RSA key has {bits} bits; at most {MAX_RSA_BITS} are supported"
            ))));
        }
        Ok(Self {
            label: label.into(),
            der: der.into(),
            bits,
        })
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// Load the key, ready to sign; a key whose numbers do not agree is refused here.
    pub fn load(&self) -> Result<PrivateKey, KeyError> {
        PrivateKey::from_der(&self.label, &self.der)
    }
}

impl fmt::Debug for PrivateKeyDer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKeyDer(RSA-{}, redacted)", self.bits)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(RSA-{}, redacted)", self.inner.bits)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(RSA-{})", self.inner.bits)
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.inner.spki_der == other.inner.spki_der
    }
}
impl Eq for PublicKey {}

impl PrivateKey {
    /// Load a private key from text (PEM or bare Base64 of PKCS#8 or PKCS#1 DER) or a file path.
    /// `label` names the key in errors, e.g. `"AP_APP_KEY (application private key)"`.
    pub fn load(label: &str, input: &str) -> Result<Self, KeyError> {
        PrivateKeyDer::read(label, input)?.load()
    }

    /// Load a private key from PKCS#8 or PKCS#1 DER.
    pub fn from_der(label: &str, der: &[u8]) -> Result<Self, KeyError> {
        let err = |problem| KeyError::new(label, problem);
        let lc = match classify_private(der) {
            PrivateForm::Pkcs8Rsa => RsaKeyPair::from_pkcs8(der),
            PrivateForm::Pkcs1 => RsaKeyPair::from_der(der),
            PrivateForm::Pkcs8Other(oid) => return Err(err(KeyProblem::NotRsa(oid))),
            PrivateForm::NotPrivate => return Err(err(not_private(der))),
        }
        .map_err(|e| err(reject_reason(der, &e.to_string())))?;
        let bits = lc.public_modulus_len() * 8;
        if bits < MIN_RSA_BITS {
            return Err(err(KeyProblem::TooShort(bits)));
        }
        let pkcs8 = lc
            .as_der()
            .map_err(|_| err(KeyProblem::Invalid("cannot re-encode".into())))?
            .as_ref()
            .to_vec();
        let public_der = lc.public_key().as_ref().to_vec();
        let public = PublicKey::from_der(label, &public_der)?;
        Ok(Self {
            inner: Arc::new(PrivateInner {
                bits,
                lc,
                pkcs8,
                legacy: OnceLock::new(),
                public,
            }),
        })
    }

    /// A fresh RSA-2048 key pair (platform keys of the emulator, `keygen`).
    pub fn generate() -> Result<Self, KeyError> {
        let label = "generated key";
        let lc = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| {
            KeyError::new(label, KeyProblem::Invalid("key generation failed".into()))
        })?;
        let der = lc
            .as_der()
            .map_err(|_| KeyError::new(label, KeyProblem::Invalid("cannot encode".into())))?;
        Self::from_der(label, der.as_ref())
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        self.inner.bits
    }

    /// The matching public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.inner.public
    }

    /// PKCS#8 DER as bare Base64, the form Alipay's console takes. Only for writing key files.
    pub fn to_pkcs8_base64(&self) -> String {
        STANDARD.encode(&self.inner.pkcs8)
    }

    /// SHA256withRSA (RSA2), through aws-lc.
    pub(crate) fn sign_sha256(&self, content: &[u8]) -> Result<Vec<u8>, SignError> {
        let lc = &self.inner.lc;
        let mut sig = vec![0u8; lc.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        lc.sign(&signature::RSA_PKCS1_SHA256, &rng, content, &mut sig)
            .map_err(|_| SignError::Backend("aws-lc RSA signing failed"))?;
        Ok(sig)
    }

    /// SHA1withRSA (legacy `RSA`), which aws-lc does not offer, through the pure-Rust `rsa` crate.
    /// The pure-Rust key is built once, on first use.
    pub(crate) fn sign_sha1(&self, content: &[u8]) -> Result<Vec<u8>, SignError> {
        use rsa::pkcs8::DecodePrivateKey as _;
        use rsa::signature::{SignatureEncoding as _, Signer as _};
        let key = match self.inner.legacy.get() {
            Some(key) => key,
            None => {
                let key = rsa::PrivateKey::from_pkcs8_der(&self.inner.pkcs8)
                    .map_err(|_| SignError::Backend("cannot load the key for SHA1withRSA"))?;
                let _ = self
                    .inner
                    .legacy
                    .set(rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(key));
                self.inner
                    .legacy
                    .get()
                    .ok_or(SignError::Backend("cannot load the key for SHA1withRSA"))?
            }
        };
        key.try_sign(content)
            .map(|s| s.to_vec())
            .map_err(|_| SignError::Backend("SHA1withRSA signing failed"))
    }
}

impl PublicKey {
    /// Load a public key from text (PEM or bare Base64 of SPKI or PKCS#1 DER) or a file path.
    /// `label` names the key in errors, e.g. `"AP_PUB_KEY (Alipay public key)"`.
    pub fn load(label: &str, input: &str) -> Result<Self, KeyError> {
        let der = decode_key_text(label, input)?;
        Self::from_der(label, &der)
    }

    /// Load a public key from SPKI or PKCS#1 `RSAPublicKey` DER.
    pub fn from_der(label: &str, der: &[u8]) -> Result<Self, KeyError> {
        let err = |problem| KeyError::new(label, problem);
        let pkcs1 = match classify_public(der) {
            Some(PublicForm::Rsa(pkcs1)) => pkcs1,
            Some(PublicForm::Other(oid)) => return Err(err(KeyProblem::NotRsa(oid))),
            None => {
                return Err(err(if classify_private(der).is_private() {
                    KeyProblem::PrivateWherePublicExpected
                } else {
                    KeyProblem::NotAKey
                }));
            }
        };
        let modulus_bits = rsa::pkcs1::RsaPublicKeyRef::from_der(&pkcs1)
            .map(|k| k.modulus.as_bytes().len() * 8)
            .unwrap_or(0);
        if modulus_bits < MIN_RSA_BITS {
            return Err(err(KeyProblem::TooShort(modulus_bits)));
        }
        let sha256 = ParsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &pkcs1)
            .map_err(|e| err(KeyProblem::Invalid(e.to_string())))?;
        let sha1 = ParsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            &pkcs1,
        )
        .map_err(|e| err(KeyProblem::Invalid(e.to_string())))?;
        let spki_der = aws_lc_rs::rsa::PublicKey::from_der(&pkcs1)
            .map_err(|e| err(KeyProblem::Invalid(e.to_string())))?
            .as_der()
            .map_err(|_| err(KeyProblem::Invalid("cannot encode the public key".into())))?
            .as_ref()
            .to_vec();
        Ok(Self {
            inner: Arc::new(PublicInner {
                bits: modulus_bits,
                spki_der,
                sha256,
                sha1,
            }),
        })
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        self.inner.bits
    }

    /// SubjectPublicKeyInfo DER as bare Base64: the form Alipay's console shows and `AP_PUB_KEY` takes.
    pub fn to_spki_base64(&self) -> String {
        STANDARD.encode(&self.inner.spki_der)
    }

    /// SubjectPublicKeyInfo as PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn to_spki_pem(&self) -> String {
        let b64 = self.to_spki_base64();
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }

    pub(crate) fn verify_sha256(&self, content: &[u8], sig: &[u8]) -> bool {
        self.inner.sha256.verify_sig(content, sig).is_ok()
    }

    pub(crate) fn verify_sha1(&self, content: &[u8], sig: &[u8]) -> bool {
        self.inner.sha1.verify_sig(content, sig).is_ok()
    }
}

/// Turn user text into DER: PEM, bare Base64 (whitespace anywhere is ignored), or a path to a file
/// holding either.
fn decode_key_text(label: &str, input: &str) -> Result<Vec<u8>, KeyError> {
    let err = |problem| KeyError::new(label, problem);
    let text = input.trim();
    if text.is_empty() {
        return Err(err(KeyProblem::Empty));
    }
    if !text.contains("-----BEGIN") && text.len() < MAX_PATH_LEN && !text.contains('\n') {
        let path = Path::new(text);
        if path.is_file() {
            let contents = std::fs::read_to_string(path).map_err(|e| {
                err(KeyProblem::File(format!(
                    "cannot read {}: {}",
                    path.display(),
                    e.kind()
                )))
            })?;
            let contents = contents.trim();
            if contents.is_empty() {
                return Err(err(KeyProblem::File(format!(
                    "{} is empty",
                    path.display()
                ))));
            }
            return decode_armoured_or_bare(contents).map_err(err);
        }
    }
    decode_armoured_or_bare(text).map_err(err)
}

fn decode_armoured_or_bare(text: &str) -> Result<Vec<u8>, KeyProblem> {
    let body: String = if text.contains("-----BEGIN") {
        let mut lines = text
            .lines()
            .map(str::trim)
            .skip_while(|l| !l.starts_with("-----BEGIN"));
        lines.next();
        let mut body = String::new();
        let mut ended = false;
        for line in lines {
            if line.starts_with("-----END") {
                ended = true;
                break;
            }
            // PEM headers such as `Proc-Type:` mean an encrypted key, which we cannot use.
            if line.contains(':') {
                return Err(KeyProblem::Encrypted);
            }
            body.push_str(line);
        }
        if !ended {
            return Err(KeyProblem::Pem("no -----END line".into()));
        }
        body
    } else {
        text.chars().filter(|c| !c.is_whitespace()).collect()
    };
    if body.is_empty() {
        return Err(KeyProblem::Empty);
    }
    if let Some(bad) = body
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')))
    {
        return Err(KeyProblem::Base64(format!(
            "unexpected character {bad:?}; expected PEM, bare Base64 or a path to an existing file"
        )));
    }
    STANDARD.decode(body.as_bytes()).map_err(|e| {
        KeyProblem::Base64(format!("{e} (is the key truncated or missing characters?)"))
    })
}

enum PrivateForm {
    Pkcs8Rsa,
    Pkcs8Other(String),
    Pkcs1,
    NotPrivate,
}

impl PrivateForm {
    fn is_private(&self) -> bool {
        !matches!(self, Self::NotPrivate)
    }
}

fn classify_private(der: &[u8]) -> PrivateForm {
    if let Ok(info) = rsa::pkcs8::PrivateKeyInfoRef::from_der(der) {
        let oid = info.algorithm.oid.to_string();
        return if oid == RSA_ENCRYPTION_OID {
            PrivateForm::Pkcs8Rsa
        } else {
            PrivateForm::Pkcs8Other(oid)
        };
    }
    if rsa::pkcs1::RsaPrivateKeyRef::from_der(der).is_ok() {
        return PrivateForm::Pkcs1;
    }
    PrivateForm::NotPrivate
}

enum PublicForm {
    /// PKCS#1 `RSAPublicKey` DER.
    Rsa(Vec<u8>),
    Other(String),
}

fn classify_public(der: &[u8]) -> Option<PublicForm> {
    if let Ok(spki) = rsa::pkcs8::spki::SubjectPublicKeyInfoRef::from_der(der) {
        let oid = spki.algorithm.oid.to_string();
        if oid != RSA_ENCRYPTION_OID {
            return Some(PublicForm::Other(oid));
        }
        return spki
            .subject_public_key
            .as_bytes()
            .map(|b| PublicForm::Rsa(b.to_vec()));
    }
    if rsa::pkcs1::RsaPublicKeyRef::from_der(der).is_ok() {
        return Some(PublicForm::Rsa(der.to_vec()));
    }
    None
}

/// The RSA private key in PKCS#1 DER, or inside PKCS#8 DER, parsed for its structure only.
fn rsa_private_key(der: &[u8]) -> Option<rsa::pkcs1::RsaPrivateKeyRef<'_>> {
    rsa::pkcs1::RsaPrivateKeyRef::from_der(der)
        .ok()
        .or_else(|| {
            let info = rsa::pkcs8::PrivateKeyInfoRef::from_der(der).ok()?;
            rsa::pkcs1::RsaPrivateKeyRef::from_der(info.private_key.as_bytes()).ok()
        })
}

/// Why DER that is no private key was refused.
fn not_private(der: &[u8]) -> KeyProblem {
    if classify_public(der).is_some() {
        KeyProblem::PublicWherePrivateExpected
    } else {
        KeyProblem::NotAKey
    }
}

/// Explain why aws-lc rejected a structurally valid key.
fn reject_reason(der: &[u8], lc_reason: &str) -> KeyProblem {
    let bits = rsa_private_key(der).map(|k| k.modulus.as_bytes().len() * 8);
    match bits {
        Some(bits) if bits < MIN_RSA_BITS => KeyProblem::TooShort(bits),
        _ => KeyProblem::Invalid(lc_reason.to_string()),
    }
}
