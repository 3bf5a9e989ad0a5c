//! Payments' rules: card validation, the card network's answers, and a payment's life after
//! its authorisation, as plain types.

mod card;
mod operation;

pub use card::{Brand, CardError, CardProfile, ValidCard, validate_card};
pub use operation::{Operation, PaymentStatus, RepeatedAuthorisation, Settlement, repeated_authorisation};
