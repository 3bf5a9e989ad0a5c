//! Why a field of a profile is refused. The messages never quote the value: it is personal
//! data (or a password) and problems end up in logs.

/// A field a client sent that breaks a rule, with the field's JSON path.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProfileError {
    #[error("must be an email address like name@example.com, at most {max} characters", max = crate::domain::Email::MAX_LEN)]
    Email,
    #[error("must be 1 to {max} characters and not blank", max = crate::domain::Name::MAX_LEN)]
    Name,
    #[error("must be {min} to {max} characters", min = crate::domain::Password::MIN_LEN, max = crate::domain::Password::MAX_LEN)]
    Password,
    /// One text part of an address (`line1`, `city`, `postal_code`).
    #[error("must be 1 to {max} characters and not blank")]
    AddressText { part: &'static str, max: usize },
    #[error("must be an ISO 3166-1 alpha-2 country code in capitals, like DE")]
    Country,
}

impl ProfileError {
    /// The request field the error is about, as a JSON path (`address.country`).
    pub fn field(&self) -> &'static str {
        match self {
            ProfileError::Email => "email",
            ProfileError::Name => "name",
            ProfileError::Password => "password",
            ProfileError::AddressText { part: "line1", .. } => "address.line1",
            ProfileError::AddressText { part: "city", .. } => "address.city",
            ProfileError::AddressText { part: "postal_code", .. } => "address.postal_code",
            ProfileError::AddressText { .. } => "address",
            ProfileError::Country => "address.country",
        }
    }
}
