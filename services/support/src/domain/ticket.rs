//! Tickets: what a subject and a message may be, and what a closed ticket refuses.

use serde::{Deserialize, Serialize};

pub const MAX_SUBJECT: usize = 200;
pub const MAX_MESSAGE: usize = 5000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    Open,
    Closed,
}

impl TicketStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Open => "open",
            TicketStatus::Closed => "closed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "open" => Some(TicketStatus::Open),
            "closed" => Some(TicketStatus::Closed),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TicketError {
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} must be at most {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("the ticket is closed")]
    Closed,
}

impl TicketError {
    pub fn code(&self) -> &'static str {
        match self {
            TicketError::Empty { .. } | TicketError::TooLong { .. } => "validation_failed",
            TicketError::Closed => "ticket_closed",
        }
    }
}

fn check(field: &'static str, text: &str, max: usize) -> Result<(), TicketError> {
    if text.trim().is_empty() {
        Err(TicketError::Empty { field })
    } else if text.chars().count() > max {
        Err(TicketError::TooLong { field, max })
    } else {
        Ok(())
    }
}

pub fn check_subject(subject: &str) -> Result<(), TicketError> {
    check("subject", subject, MAX_SUBJECT)
}

pub fn check_message(message: &str) -> Result<(), TicketError> {
    check("message", message, MAX_MESSAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_bounded_and_not_blank() {
        assert_eq!(check_subject("  "), Err(TicketError::Empty { field: "subject" }));
        assert!(check_subject(&"x".repeat(MAX_SUBJECT)).is_ok());
        assert_eq!(
            check_subject(&"x".repeat(MAX_SUBJECT + 1)),
            Err(TicketError::TooLong { field: "subject", max: MAX_SUBJECT })
        );
        assert!(check_message("Where is my order?").is_ok());
        assert_eq!(TicketStatus::parse("closed"), Some(TicketStatus::Closed));
        assert_eq!(TicketStatus::parse("lost"), None);
    }
}
