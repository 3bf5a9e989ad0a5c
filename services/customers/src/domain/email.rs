//! Email addresses: a plausible `local@domain.tld`, not a full RFC 5322 parser. Whether the
//! mailbox exists is for a confirmation mail to find out, not for a parser.

use std::fmt;

use super::ProfileError;

/// An email address as given (trimmed), with its key for uniqueness: the whole address in
/// lower case, so `Ada@Example.com` and `ada@example.com` are one customer.
#[derive(Clone, PartialEq, Eq)]
pub struct Email {
    address: String,
    key: String,
}

impl Email {
    /// The longest address SMTP can carry (RFC 5321's path limit less the angle brackets).
    pub const MAX_LEN: usize = 254;
    const MAX_LOCAL_LEN: usize = 64;

    pub fn parse(text: &str) -> Result<Self, ProfileError> {
        let address = text.trim();
        if address.chars().count() > Self::MAX_LEN || !plausible(address) {
            return Err(ProfileError::Email);
        }
        Ok(Self { address: address.to_owned(), key: address.to_lowercase() })
    }

    /// The address as the customer wrote it (trimmed).
    pub fn as_str(&self) -> &str {
        &self.address
    }

    /// The normalised form two addresses are compared by.
    pub fn key(&self) -> &str {
        &self.key
    }
}

fn plausible(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else { return false };
    valid_local(local) && valid_domain(domain)
}

fn valid_local(local: &str) -> bool {
    !local.is_empty()
        && local.chars().count() <= Email::MAX_LOCAL_LEN
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| !c.is_whitespace() && !c.is_control() && !"@<>()[]\\,;:\"".contains(c))
}

/// At least two labels of letters, digits and inner hyphens; the last (the TLD) of two or more
/// letters.
fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |label: &&str| {
        (1..=63).contains(&label.len())
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    labels.len() >= 2
        && labels.iter().all(label_ok)
        && labels.last().is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()))
}

/// Personal data: only the domain is shown.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let domain = self.address.split_once('@').map_or("", |(_, domain)| domain);
        write!(f, "Email(…@{domain})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_keyed_in_lower_case() {
        let email = Email::parse("  Ada.Lovelace+shop@Example.CO.uk \n").expect("valid");
        assert_eq!(email.as_str(), "Ada.Lovelace+shop@Example.CO.uk");
        assert_eq!(email.key(), "ada.lovelace+shop@example.co.uk");
        assert_eq!(Email::parse("ADA@EXAMPLE.COM").map(|e| e.key().to_owned()), Ok("ada@example.com".into()));
    }

    #[test]
    fn implausible_addresses_are_refused() {
        for bad in [
            "",
            "   ",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@example.c",
            "ada@example.123",
            "ada@@example.com",
            "a@b@example.com",
            "ada lovelace@example.com",
            "ada@exa mple.com",
            ".ada@example.com",
            "ada.@example.com",
            "a..da@example.com",
            "ada@-example.com",
            "ada@example-.com",
            "ada@example..com",
            "ada@.example.com",
            "ada@example.com.",
            "<ada@example.com>",
        ] {
            assert_eq!(Email::parse(bad), Err(ProfileError::Email), "{bad:?}");
        }
    }

    #[test]
    fn an_address_is_at_most_254_characters_and_its_local_part_64() {
        let domain = format!("{}.{}.{}.com", "d".repeat(63), "e".repeat(63), "f".repeat(63));
        let longest = format!("{}@{domain}", "a".repeat(Email::MAX_LEN - domain.len() - 1));
        assert_eq!(longest.len(), 254);
        assert!(Email::parse(&longest).is_ok());
        let too_long = format!("a{longest}");
        assert_eq!(Email::parse(&too_long), Err(ProfileError::Email));
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(64))).is_ok());
        assert_eq!(Email::parse(&format!("{}@example.com", "a".repeat(65))), Err(ProfileError::Email));
    }

    #[test]
    fn debug_output_hides_the_mailbox() {
        let email = Email::parse("ada@example.com").expect("valid");
        assert_eq!(format!("{email:?}"), "Email(…@example.com)");
    }
}
