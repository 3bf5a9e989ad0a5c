//! The password policy: length only (8 to 128 characters), as NIST SP 800-63B advises; no
//! composition rules. A `Password` is never printed, compared or stored: only hashed.

use std::fmt;

use super::ProfileError;

pub struct Password(String);

impl Password {
    pub const MIN_LEN: usize = 8;
    /// Long enough for any passphrase, short enough that hashing cannot be made expensive.
    pub const MAX_LEN: usize = 128;

    /// Takes the password as typed: not trimmed, since spaces may be part of it.
    pub fn parse(text: &str) -> Result<Self, ProfileError> {
        let length = text.chars().count();
        if (Self::MIN_LEN..=Self::MAX_LEN).contains(&length) {
            Ok(Self(text.to_owned()))
        } else {
            Err(ProfileError::Password)
        }
    }

    /// The bytes to hash.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(••••••••)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_8_to_128_characters_kept_as_typed() {
        assert_eq!(
            Password::parse(" spaced out ").map(|p| p.expose().to_vec()),
            Ok(b" spaced out ".to_vec())
        );
        assert!(Password::parse(&"ü".repeat(8)).is_ok(), "characters are counted, not bytes");
        assert!(Password::parse(&"x".repeat(128)).is_ok());
        for bad in ["", "short", "1234567", &"x".repeat(129)] {
            assert!(matches!(Password::parse(bad), Err(ProfileError::Password)), "{bad:?}");
        }
    }

    #[test]
    fn a_password_never_prints() {
        let password = Password::parse("correct horse battery staple").expect("valid");
        assert!(!format!("{password:?}").contains("horse"));
    }
}
