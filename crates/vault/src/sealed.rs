//! What callers hold: a sealed value in a compact text form that fits a JSON string field,
//! and the outcome of opening one, where "erased" is an answer rather than an error.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::crypto::OVERHEAD;
use crate::error::VaultError;

const PREFIX: &str = "v1.";

/// What to show in place of an erased subject's data.
pub const ERASED: &str = "[erased]";

/// A value sealed for one subject: `v1.<base64url(nonce ‖ ciphertext ‖ tag)>`. The version
/// prefix leaves room for another algorithm without guessing at old values.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    bytes: Vec<u8>,
}

impl Sealed {
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        Self { bytes }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The binary form, for objects: `v1.` then `nonce ‖ ciphertext ‖ tag` as they are.
    pub fn to_binary(&self) -> Vec<u8> {
        let mut binary = Vec::with_capacity(PREFIX.len() + self.bytes.len());
        binary.extend_from_slice(PREFIX.as_bytes());
        binary.extend_from_slice(&self.bytes);
        binary
    }

    /// Reads the binary form of [`to_binary`](Self::to_binary).
    pub fn from_binary(binary: &[u8]) -> Result<Self, VaultError> {
        let bytes = binary
            .strip_prefix(PREFIX.as_bytes())
            .ok_or_else(|| VaultError::Malformed(format!("expected the `{PREFIX}` prefix")))?;
        if bytes.len() < OVERHEAD {
            return Err(VaultError::Malformed(format!("{} bytes is too short", bytes.len())));
        }
        Ok(Self { bytes: bytes.to_vec() })
    }
}

impl fmt::Display for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", URL_SAFE_NO_PAD.encode(&self.bytes))
    }
}

/// Ciphertext is not secret, but its length is all a log needs.
impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} bytes)", self.bytes.len())
    }
}

impl FromStr for Sealed {
    type Err = VaultError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let body = text
            .strip_prefix(PREFIX)
            .ok_or_else(|| VaultError::Malformed(format!("expected the `{PREFIX}` prefix")))?;
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|e| VaultError::Malformed(e.to_string()))?;
        if bytes.len() < OVERHEAD {
            return Err(VaultError::Malformed(format!("{} bytes is too short", bytes.len())));
        }
        Ok(Self { bytes })
    }
}

impl Serialize for Sealed {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Sealed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The outcome of opening a sealed value. `Erased` is what every replay of an erased
/// subject's data meets; it is not an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decrypted<T = Vec<u8>> {
    Plain(T),
    /// The subject's key was shredded (or never existed here): the data is gone for good.
    Erased,
}

impl<T> Decrypted<T> {
    pub fn is_erased(&self) -> bool {
        matches!(self, Decrypted::Erased)
    }

    pub fn into_option(self) -> Option<T> {
        match self {
            Decrypted::Plain(value) => Some(value),
            Decrypted::Erased => None,
        }
    }
}

impl Decrypted<String> {
    /// The text, or [`ERASED`] in its place.
    pub fn or_erased_marker(self) -> String {
        self.into_option().unwrap_or_else(|| ERASED.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_form_round_trips_and_refuses_what_it_did_not_make() {
        let sealed = Sealed::new(vec![7; OVERHEAD + 3]);
        let binary = sealed.to_binary();
        assert!(binary.starts_with(b"v1."));
        assert_eq!(Sealed::from_binary(&binary).expect("binary"), sealed);
        assert!(Sealed::from_binary(&binary[3..]).is_err(), "no prefix");
        assert!(Sealed::from_binary(b"v1.short").is_err(), "too short");
    }

    #[test]
    fn the_text_form_round_trips_and_is_url_safe() {
        let sealed = Sealed::new((0..=255).collect());
        let text = sealed.to_string();
        assert!(text.starts_with("v1."));
        assert!(text[3..].chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{text}");
        assert_eq!(text.parse::<Sealed>().expect("parse"), sealed);
    }

    #[test]
    fn malformed_text_is_refused() {
        for text in ["", "v2.AAAA", "v1.!!!", "v1.AAAA"] {
            assert!(matches!(text.parse::<Sealed>(), Err(VaultError::Malformed(_))), "{text}");
        }
    }

    #[test]
    fn erased_text_shows_the_marker() {
        assert_eq!(Decrypted::<String>::Erased.or_erased_marker(), "[erased]");
        assert_eq!(Decrypted::Plain("x".to_owned()).or_erased_marker(), "x");
    }
}
