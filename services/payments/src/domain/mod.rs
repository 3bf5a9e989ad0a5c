//! Payments' rules: card validation, the card network's answers, a payment's authorisation
//! and its life after it, as plain types.

mod authorisation;
mod card;
mod operation;

pub use authorisation::{
    AuthorisationAnswer, AuthorisationOutcome, AuthorisationRefusal, AuthorisationRequest, RecordedRequest,
    authorisation_key, authorisation_outcome, authorised_reply, card_to_charge, decline_code,
    request_authorisation,
};
pub use card::{Brand, CardError, CardProfile, ValidCard, validate_card};
pub use operation::{
    Operation, PaymentStatus, RepeatedAuthorisation, Settled, Settlement, repeated_authorisation,
};
