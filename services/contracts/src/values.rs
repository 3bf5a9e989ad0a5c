//! Value types shared by several services' messages. Each parses, not validates: once you
//! hold a `Sku` or a `Quantity`, it is valid.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValueError {
    #[error("a sku is 3 to 32 characters of A-Z, 0-9 and '-'; got {0:?}")]
    Sku(String),
    #[error("a quantity is 1 to 1000; got {0}")]
    Quantity(i64),
    #[error("a currency is three capital letters (ISO 4217); got {0:?}")]
    Currency(String),
    #[error("an amount is not negative; got {0}")]
    Amount(i64),
}

/// A product's stock-keeping unit: `[A-Z0-9-]{3,32}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct Sku(String);

impl Sku {
    pub fn parse(text: impl Into<String>) -> Result<Self, ValueError> {
        let text = text.into();
        let valid = (3..=32).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
        if valid { Ok(Self(text)) } else { Err(ValueError::Sku(text)) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Sku {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Sku> for String {
    fn from(sku: Sku) -> Self {
        sku.0
    }
}

/// How many units of one sku a line orders: 1 to 1000.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "i64", into = "i64")]
pub struct Quantity(u32);

impl Quantity {
    pub const MAX: u32 = 1000;

    pub fn new(value: i64) -> Result<Self, ValueError> {
        match u32::try_from(value) {
            Ok(v) if (1..=Self::MAX).contains(&v) => Ok(Self(v)),
            _ => Err(ValueError::Quantity(value)),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<i64> for Quantity {
    type Error = ValueError;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Quantity> for i64 {
    fn from(q: Quantity) -> Self {
        i64::from(q.0)
    }
}

/// An ISO 4217 code.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    pub fn parse(text: impl Into<String>) -> Result<Self, ValueError> {
        let text = text.into();
        if text.len() == 3 && text.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(text))
        } else {
            Err(ValueError::Currency(text))
        }
    }

    pub fn eur() -> Self {
        Self("EUR".to_owned())
    }
}

impl TryFrom<String> for Currency {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> Self {
        c.0
    }
}

/// An amount in minor units (cents) with its currency: `{"amount": 1999, "currency": "EUR"}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Money {
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    #[serde(deserialize_with = "whole_number")]
    #[schemars(with = "i64")]
    pub amount: i64,
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[A-Z]{3}$"))]
    pub currency: Currency,
}

impl Money {
    pub fn new(amount: i64, currency: Currency) -> Result<Self, ValueError> {
        if amount < 0 { Err(ValueError::Amount(amount)) } else { Ok(Self { amount, currency }) }
    }

    pub fn eur(amount: i64) -> Result<Self, ValueError> {
        Self::new(amount, Currency::eur())
    }
}

/// One line of an order.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLine {
    pub sku: Sku,
    pub quantity: Quantity,
}

/// Personal data about `subject`: the privacy layer encrypts every field of this type with the
/// subject's key. On the wire it is the plain value for now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Personal<T>(pub T);

/// An integer as JSON may write it: `3`, or `3.0` (JSON Schema's `integer` admits both, and so
/// do client generators); a fraction or a number out of range is refused.
pub fn whole_number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    struct Whole;
    impl serde::de::Visitor<'_> for Whole {
        type Value = i64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an integer")
        }

        fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<i64, E> {
            Ok(value)
        }

        fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<i64, E> {
            i64::try_from(value).map_err(|_| E::custom("an integer out of range"))
        }

        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
        fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<i64, E> {
            // Within ±2^53 every whole f64 is exact; beyond it `3.0` may stand for another number.
            const EXACT: f64 = 9_007_199_254_740_992.0;
            if value.fract() == 0.0 && value.abs() <= EXACT {
                Ok(value as i64)
            } else {
                Err(E::invalid_type(serde::de::Unexpected::Float(value), &self))
            }
        }
    }
    let value = deserializer.deserialize_any(Whole)?;
    T::try_from(value).map_err(|_| serde::de::Error::custom(format!("{value} is out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_parse_or_say_why_not() {
        assert!(Sku::parse("SKU-0001").is_ok());
        for bad in ["ab", "sku-1", "A B C", &"X".repeat(33)] {
            assert_eq!(Sku::parse(bad), Err(ValueError::Sku(bad.to_owned())));
        }
        assert!(serde_json::from_str::<Sku>("\"lower\"").is_err());
    }

    #[test]
    fn quantities_are_between_one_and_a_thousand() {
        assert_eq!(Quantity::new(1).map(Quantity::get), Ok(1));
        assert_eq!(Quantity::new(1000).map(Quantity::get), Ok(1000));
        for bad in [0, -1, 1001, i64::MAX] {
            assert_eq!(Quantity::new(bad), Err(ValueError::Quantity(bad)));
        }
        assert!(serde_json::from_str::<OrderLine>(r#"{"sku":"ABC","quantity":0}"#).is_err());
        assert!(
            serde_json::from_str::<OrderLine>(r#"{"sku":"ABC","quantity":1,"extra":1}"#).is_err(),
            "unknown fields are refused"
        );
    }

    #[test]
    fn money_is_minor_units_with_a_currency() {
        let money = Money::eur(1999).expect("money");
        assert_eq!(
            serde_json::to_value(&money).expect("json"),
            serde_json::json!({"amount": 1999, "currency": "EUR"})
        );
        assert_eq!(Money::eur(-1), Err(ValueError::Amount(-1)));
        assert!(Currency::parse("eur").is_err());
    }

    #[test]
    fn an_amount_may_be_written_as_a_whole_float_but_not_a_fraction() {
        let money: Money = serde_json::from_str(r#"{"amount": 325.0, "currency": "EUR"}"#).expect("325.0");
        assert_eq!(money.amount, 325);
        for refused in [
            r#"{"amount": 325.5, "currency": "EUR"}"#,
            r#"{"amount": 1e300, "currency": "EUR"}"#,
            r#"{"amount": "3", "currency": "EUR"}"#,
        ] {
            assert!(serde_json::from_str::<Money>(refused).is_err(), "{refused}");
        }
    }
}
