//! A customer's name: free text, as people write their names, only bounded and not blank.

use std::fmt;

use super::{ProfileError, clean_text};

#[derive(Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub const MAX_LEN: usize = 200;

    /// Trims the text; 1 to 200 characters remain, none of them a control character.
    pub fn parse(text: &str) -> Result<Self, ProfileError> {
        clean_text(text, Self::MAX_LEN).map(Self).ok_or(ProfileError::Name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Personal data: never printed.
impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Name(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Name::parse("  Ada Lovelace ").map(Name::into_string), Ok("Ada Lovelace".into()));
        assert_eq!(Name::parse("李").map(Name::into_string), Ok("李".into()));
        let longest = "é".repeat(Name::MAX_LEN);
        assert_eq!(Name::parse(&longest).map(Name::into_string), Ok(longest.clone()));
        for bad in [String::new(), "   ".into(), format!("{longest}e"), "Ada\u{0}".into(), "A\nB".into()] {
            assert_eq!(Name::parse(&bad), Err(ProfileError::Name), "{bad:?}");
        }
    }
}
