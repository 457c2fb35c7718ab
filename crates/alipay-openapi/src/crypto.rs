//! Signatures: `RSA2` (SHA256withRSA) and legacy `RSA` (SHA1withRSA), both RSASSA-PKCS1-v1_5,
//! Base64 with padding and no line breaks.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::error::{SignError, SignatureError};
use crate::keys::{PrivateKey, PublicKey};

/// The `sign_type` parameter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignType {
    /// SHA256withRSA, Alipay's recommended algorithm.
    #[default]
    Rsa2,
    /// SHA1withRSA, legacy.
    Rsa,
}

impl SignType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rsa2 => "RSA2",
            Self::Rsa => "RSA",
        }
    }
}

impl fmt::Display for SignType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SignType {
    type Err = SignatureError;

    /// Exactly `RSA2` or `RSA`, as the gateway compares them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "RSA2" => Ok(Self::Rsa2),
            "RSA" => Ok(Self::Rsa),
            other => Err(SignatureError::UnknownSignType(other.to_string())),
        }
    }
}

impl PrivateKey {
    /// Sign `content` (its UTF-8 bytes) and return the Base64 signature.
    pub fn sign(&self, sign_type: SignType, content: &str) -> Result<String, SignError> {
        let raw = match sign_type {
            SignType::Rsa2 => self.sign_sha256(content.as_bytes())?,
            SignType::Rsa => self.sign_sha1(content.as_bytes())?,
        };
        Ok(STANDARD.encode(raw))
    }
}

impl PublicKey {
    /// Check a Base64 signature over `content`.
    pub fn verify(
        &self,
        sign_type: SignType,
        content: &str,
        signature_b64: &str,
    ) -> Result<(), SignatureError> {
        if signature_b64.is_empty() {
            return Err(SignatureError::Missing);
        }
        let sig = STANDARD
            .decode(signature_b64.as_bytes())
            .map_err(|_| SignatureError::NotBase64)?;
        let ok = match sign_type {
            SignType::Rsa2 => self.verify_sha256(content.as_bytes(), &sig),
            SignType::Rsa => self.verify_sha1(content.as_bytes(), &sig),
        };
        if ok {
            Ok(())
        } else {
            Err(SignatureError::Mismatch(sign_type))
        }
    }
}
