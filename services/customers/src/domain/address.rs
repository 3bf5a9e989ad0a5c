//! Postal addresses: three bounded text parts and a country among the codes ISO 3166-1
//! assigns. Postal-code formats differ by country and are not checked.

use std::fmt;

use tessera_contracts::customers::Address;

use super::{ProfileError, clean_text};

/// A valid address, its text parts trimmed.
#[derive(Clone, PartialEq, Eq)]
pub struct PostalAddress(Address);

impl PostalAddress {
    pub const MAX_LINE1: usize = 200;
    pub const MAX_CITY: usize = 100;
    pub const MAX_POSTAL_CODE: usize = 20;

    /// Checks every part; on failure lists each part that is wrong, in field order.
    pub fn parse(address: &Address) -> Result<Self, Vec<ProfileError>> {
        let mut errors = Vec::new();
        let mut part = |name: &'static str, text: &str, max: usize| {
            clean_text(text, max).unwrap_or_else(|| {
                errors.push(ProfileError::AddressText { part: name, max });
                String::new()
            })
        };
        let line1 = part("line1", &address.line1, Self::MAX_LINE1);
        let city = part("city", &address.city, Self::MAX_CITY);
        let postal_code = part("postal_code", &address.postal_code, Self::MAX_POSTAL_CODE);
        if !is_country_code(&address.country) {
            errors.push(ProfileError::Country);
        }
        if errors.is_empty() {
            Ok(Self(Address { line1, city, postal_code, country: address.country.clone() }))
        } else {
            Err(errors)
        }
    }

    pub fn as_address(&self) -> &Address {
        &self.0
    }

    pub fn into_address(self) -> Address {
        self.0
    }
}

/// Personal data: only the country is shown.
impl fmt::Debug for PostalAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostalAddress(…, {})", self.0.country)
    }
}

/// Whether `code` is one of the 249 officially assigned ISO 3166-1 alpha-2 codes, in capitals.
pub fn is_country_code(code: &str) -> bool {
    code.len() == 2 && tessera_contracts::customers::COUNTRY_CODES.binary_search(&code).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(line1: &str, city: &str, postal_code: &str, country: &str) -> Address {
        Address {
            line1: line1.into(),
            city: city.into(),
            postal_code: postal_code.into(),
            country: country.into(),
        }
    }

    #[test]
    fn a_valid_address_is_kept_with_its_parts_trimmed() {
        let parsed =
            PostalAddress::parse(&address(" Hauptstraße 1 ", "Berlin ", " 10115", "DE")).expect("valid");
        assert_eq!(parsed.into_address(), address("Hauptstraße 1", "Berlin", "10115", "DE"));
    }

    #[test]
    fn every_wrong_part_is_named() {
        let errors = PostalAddress::parse(&address(" ", &"c".repeat(101), &"9".repeat(21), "de"))
            .expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(ProfileError::field).collect();
        assert_eq!(fields, ["address.line1", "address.city", "address.postal_code", "address.country"]);
        let bounds =
            PostalAddress::parse(&address(&"l".repeat(200), &"c".repeat(100), &"9".repeat(20), "GB"));
        assert!(bounds.is_ok());
    }

    #[test]
    fn countries_are_assigned_alpha_2_codes_in_capitals() {
        for good in ["DE", "GB", "US", "AX", "ZW", "SS", "BQ"] {
            assert!(is_country_code(good), "{good}");
        }
        for bad in ["", "D", "de", "De", "DEU", "UK", "XX", "EU", "ÄÖ", "1A"] {
            assert!(!is_country_code(bad), "{bad}");
        }
    }

    #[test]
    fn the_country_table_is_sorted_and_unique() {
        assert!(tessera_contracts::customers::COUNTRY_CODES.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(
            tessera_contracts::customers::COUNTRY_CODES
                .iter()
                .all(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()))
        );
    }
}
