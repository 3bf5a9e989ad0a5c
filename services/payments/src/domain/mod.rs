//! Payments' rules: card validation and the card network's answers, as plain types.

mod card;

pub use card::{Brand, CardError, CardProfile, ValidCard, validate_card};
