//! Card validation. The full number and the CVC exist only in this function's arguments:
//! what comes out (`ValidCard`) keeps the brand, the last four digits, the expiry and the
//! simulated network's behaviour profile, nothing from which the number could be rebuilt.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Brand {
    Visa,
    Mastercard,
    Amex,
    Other,
}

impl fmt::Display for Brand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Brand::Visa => "visa",
            Brand::Mastercard => "mastercard",
            Brand::Amex => "amex",
            Brand::Other => "other",
        })
    }
}

/// How the simulated card network treats a card (API.md's test numbers); any other valid
/// number is approved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardProfile {
    Approve,
    Decline,
    InsufficientFunds,
    /// A processing error the first times, then approved: exercises retries.
    Transient,
    /// Answers after the network's configured delay: exercises payment timeouts.
    Slow,
}

impl CardProfile {
    pub fn as_str(self) -> &'static str {
        match self {
            CardProfile::Approve => "approve",
            CardProfile::Decline => "decline",
            CardProfile::InsufficientFunds => "insufficient_funds",
            CardProfile::Transient => "transient",
            CardProfile::Slow => "slow",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Approve, Self::Decline, Self::InsufficientFunds, Self::Transient, Self::Slow]
            .into_iter()
            .find(|p| p.as_str() == text)
    }

    fn of(number: &str) -> Self {
        match number {
            "4000000000000002" => CardProfile::Decline,
            "4000000000009995" => CardProfile::InsufficientFunds,
            "4000000000000119" => CardProfile::Transient,
            "4000000000003220" => CardProfile::Slow,
            _ => CardProfile::Approve,
        }
    }
}

/// A validated card, reduced to what may be stored.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ValidCard {
    pub brand: Brand,
    last4: [u8; 4],
    pub exp_month: u32,
    pub exp_year: u32,
    pub profile: CardProfile,
}

impl ValidCard {
    pub fn last4(&self) -> String {
        self.last4.iter().map(|d| char::from(b'0' + d)).collect()
    }
}

/// Only what may be shown: the brand and last four digits.
impl fmt::Debug for ValidCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ValidCard({} •••• {}, {:02}/{})", self.brand, self.last4(), self.exp_month, self.exp_year)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CardError {
    #[error("the card number must be 13 to 19 digits")]
    NumberFormat,
    #[error("the card number fails its check digit")]
    CheckDigit,
    #[error("the expiry month must be 1 to 12")]
    ExpiryMonth,
    #[error("the expiry year must be YY or YYYY")]
    ExpiryYear,
    #[error("the card expired at the end of {month:02}/{year}")]
    Expired { month: u32, year: u32 },
    #[error("the CVC must be 3 or 4 digits")]
    Cvc,
}

impl CardError {
    pub fn code(&self) -> &'static str {
        match self {
            CardError::NumberFormat | CardError::CheckDigit => "invalid_card_number",
            CardError::ExpiryMonth | CardError::ExpiryYear => "invalid_expiry",
            CardError::Expired { .. } => "card_expired",
            CardError::Cvc => "invalid_cvc",
        }
    }

    /// The request field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            CardError::NumberFormat | CardError::CheckDigit => "card_number",
            CardError::ExpiryMonth | CardError::Expired { .. } => "exp_month",
            CardError::ExpiryYear => "exp_year",
            CardError::Cvc => "cvc",
        }
    }
}

fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn brand_of(number: &str) -> Brand {
    let prefix2: u32 = number.get(..2).and_then(|p| p.parse().ok()).unwrap_or(0);
    let prefix4: u32 = number.get(..4).and_then(|p| p.parse().ok()).unwrap_or(0);
    if number.starts_with('4') {
        Brand::Visa
    } else if (51..=55).contains(&prefix2) || (2221..=2720).contains(&prefix4) {
        Brand::Mastercard
    } else if prefix2 == 34 || prefix2 == 37 {
        Brand::Amex
    } else {
        Brand::Other
    }
}

/// Validates a card as of (`current_year`, `current_month`). Spaces and dashes in the number
/// are ignored; a card is valid through the end of its expiry month.
pub fn validate_card(
    number: &str,
    exp_month: u32,
    exp_year: u32,
    cvc: &str,
    (current_year, current_month): (u32, u32),
) -> Result<ValidCard, CardError> {
    let compact: String = number.chars().filter(|c| *c != ' ' && *c != '-').collect();
    if !(13..=19).contains(&compact.len()) || !compact.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CardError::NumberFormat);
    }
    let digits: Vec<u8> = compact.bytes().map(|b| b - b'0').collect();
    if !luhn_valid(&digits) {
        return Err(CardError::CheckDigit);
    }
    if !(1..=12).contains(&exp_month) {
        return Err(CardError::ExpiryMonth);
    }
    if exp_year > 9999 {
        return Err(CardError::ExpiryYear);
    }
    // Two-digit years are read as 20xx.
    let exp_year = if exp_year < 100 { 2000 + exp_year } else { exp_year };
    if (exp_year, exp_month) < (current_year, current_month) {
        return Err(CardError::Expired { month: exp_month, year: exp_year });
    }
    if !(3..=4).contains(&cvc.len()) || !cvc.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CardError::Cvc);
    }
    let mut last4 = [0; 4];
    last4.copy_from_slice(&digits[digits.len() - 4..]);
    Ok(ValidCard {
        brand: brand_of(&compact),
        last4,
        exp_month,
        exp_year,
        profile: CardProfile::of(&compact),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: (u32, u32) = (2026, 11);

    #[test]
    fn the_test_cards_are_valid_and_map_to_their_profiles() {
        for (number, profile) in [
            ("4242424242424242", CardProfile::Approve),
            ("4000000000000002", CardProfile::Decline),
            ("4000000000009995", CardProfile::InsufficientFunds),
            ("4000000000000119", CardProfile::Transient),
            ("4000000000003220", CardProfile::Slow),
        ] {
            let card = validate_card(number, 12, 2030, "123", NOW).expect(number);
            assert_eq!((card.profile, card.brand), (profile, Brand::Visa));
        }
        let card = validate_card("4242 4242 4242 4242", 1, 30, "1234", NOW).expect("spaced");
        assert_eq!((card.last4(), card.exp_year), ("4242".to_owned(), 2030));
    }

    #[test]
    fn brands_follow_the_number_prefix() {
        assert_eq!(
            validate_card("5555555555554444", 1, 2030, "123", NOW).expect("mc").brand,
            Brand::Mastercard
        );
        assert_eq!(
            validate_card("2223003122003222", 1, 2030, "123", NOW).expect("mc").brand,
            Brand::Mastercard
        );
        assert_eq!(validate_card("378282246310005", 1, 2030, "1234", NOW).expect("amex").brand, Brand::Amex);
    }

    #[test]
    fn bad_cards_are_refused_with_a_code_and_a_field() {
        let cases = [
            (validate_card("4242424242424241", 1, 2030, "123", NOW), "invalid_card_number"),
            (validate_card("4242", 1, 2030, "123", NOW), "invalid_card_number"),
            (validate_card("4242abcd42424242", 1, 2030, "123", NOW), "invalid_card_number"),
            (validate_card("4242424242424242", 13, 2030, "123", NOW), "invalid_expiry"),
            (validate_card("4242424242424242", 12, 2_147_483_648, "123", NOW), "invalid_expiry"),
            (validate_card("4242424242424242", 10, 2026, "123", NOW), "card_expired"),
            (validate_card("4242424242424242", 11, 2026, "12", NOW), "invalid_cvc"),
        ];
        for (result, code) in cases {
            assert_eq!(result.map_err(|e| e.code()), Err(code));
        }
        assert!(
            validate_card("4242424242424242", 11, 2026, "123", NOW).is_ok(),
            "valid through its expiry month"
        );
    }

    #[test]
    fn a_validated_card_cannot_show_its_number() {
        let card = validate_card("4242424242424242", 12, 2030, "987", NOW).expect("card");
        let shown = format!("{card:?}");
        assert!(!shown.contains("424242424242") && !shown.contains("987"), "{shown}");
        assert!(shown.contains("4242"));
    }
}
