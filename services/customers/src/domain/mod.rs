//! Customers' rules, as pure functions over plain values: no I/O, no async. Each parser takes
//! what a client sent and returns a value that is valid from then on, or a [`ProfileError`]
//! naming the field it is about.

mod address;
mod email;
mod error;
mod name;
mod password;

pub use address::{PostalAddress, is_country_code};
pub use email::Email;
pub use error::ProfileError;
pub use name::Name;
pub use password::Password;

/// The text fields' shared rule: trimmed, not blank, at most `max` characters, no control
/// characters. Returns the trimmed text or `None`.
fn clean_text(text: &str, max: usize) -> Option<String> {
    let text = text.trim();
    let valid = !text.is_empty() && text.chars().count() <= max && !text.chars().any(char::is_control);
    valid.then(|| text.to_owned())
}
