//! Support's rules, without I/O: ticket text limits and lifecycle, what an attachment may be
//! and how much of them, the merge that keeps the order-summary replica convergent, and how
//! long closed tickets' messages are kept.

mod attachment;
mod quota;
mod replica;
mod retention;
mod ticket;

pub use attachment::{AttachmentError, ContentType, MAX_ATTACHMENT_BYTES, MAX_FILE_NAME, Sniffer, file_name};
pub use quota::{AttachmentLimits, LimitsError, QuotaExceeded};
pub use replica::{OrderReplica, ReplicaUpdate, fold};
pub use retention::MessageRetention;
pub use ticket::{TicketError, TicketStatus, check_message, check_subject};
