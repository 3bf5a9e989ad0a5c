//! How much a ticket and a customer may attach, and how many uploads this process streams at
//! once. The store enforces the quotas (see `app::attachments`); here are the limits, what is
//! reserved for an upload before its bytes arrive, and the reasons for a refusal.

use super::attachment::MAX_ATTACHMENT_BYTES;

const MIB: u64 = 1024 * 1024;

/// The limits on attachments; [`AttachmentLimits::default`] is what a deployment gets unless
/// its configuration says otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttachmentLimits {
    /// Files one ticket holds at most.
    pub files_per_ticket: u64,
    /// Bytes one ticket's files hold at most.
    pub bytes_per_ticket: u64,
    /// Bytes all of one customer's tickets' files hold at most.
    pub bytes_per_customer: u64,
    /// Uploads this process streams at once; one more is answered 503 with `Retry-After`.
    pub concurrent_uploads: usize,
}

impl Default for AttachmentLimits {
    fn default() -> Self {
        Self {
            files_per_ticket: 20,
            bytes_per_ticket: 50 * MIB,
            bytes_per_customer: 200 * MIB,
            concurrent_uploads: 16,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitsError {
    #[error("{0} must be at least 1")]
    Zero(&'static str),
}

impl AttachmentLimits {
    /// Refuses limits under which nothing could ever be attached.
    pub fn validate(&self) -> Result<(), LimitsError> {
        for (name, value) in [
            ("files_per_ticket", self.files_per_ticket),
            ("bytes_per_ticket", self.bytes_per_ticket),
            ("bytes_per_customer", self.bytes_per_customer),
            ("concurrent_uploads", self.concurrent_uploads as u64),
        ] {
            if value == 0 {
                return Err(LimitsError::Zero(name));
            }
        }
        Ok(())
    }

    /// The bytes to reserve for an upload before it streams: its declared length (the whole
    /// body's, so a little more than the file), or the largest file if it declared none. The
    /// reservation is what the quotas are checked against, so two uploads that together do
    /// not fit cannot both start; when the file is in, the reservation shrinks to its size.
    pub fn reservation(declared_body_length: Option<u64>) -> u64 {
        let largest = MAX_ATTACHMENT_BYTES as u64;
        declared_body_length.map_or(largest, |length| length.min(largest))
    }
}

/// Why an upload was refused before its bytes were taken.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuotaExceeded {
    #[error("a ticket holds at most {0} files")]
    TicketFiles(u64),
    #[error("a ticket's files hold at most {} MiB together", .0 / MIB)]
    TicketBytes(u64),
    #[error("a customer's files hold at most {} MiB together", .0 / MIB)]
    CustomerBytes(u64),
}

impl QuotaExceeded {
    /// The stable code a client sees.
    pub fn code(self) -> &'static str {
        match self {
            Self::TicketFiles(_) => "ticket_file_quota_exceeded",
            Self::TicketBytes(_) => "ticket_byte_quota_exceeded",
            Self::CustomerBytes(_) => "customer_byte_quota_exceeded",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservation_is_the_declared_length_up_to_the_largest_file() {
        assert_eq!(AttachmentLimits::reservation(Some(1234)), 1234);
        assert_eq!(AttachmentLimits::reservation(None), MAX_ATTACHMENT_BYTES as u64);
        assert_eq!(AttachmentLimits::reservation(Some(u64::MAX)), MAX_ATTACHMENT_BYTES as u64);
    }

    #[test]
    fn limits_of_zero_are_refused_and_the_defaults_pass() {
        assert_eq!(AttachmentLimits::default().validate(), Ok(()));
        let none = AttachmentLimits { concurrent_uploads: 0, ..AttachmentLimits::default() };
        assert_eq!(none.validate(), Err(LimitsError::Zero("concurrent_uploads")));
        assert_eq!(
            QuotaExceeded::CustomerBytes(200 * MIB).to_string(),
            "a customer's files hold at most 200 MiB together"
        );
    }
}
