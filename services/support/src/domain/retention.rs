//! How long a closed ticket's messages are kept: the period its declaration states
//! ([`crate::personal_data::TICKET_MESSAGE`]) unless a setting says otherwise, so the data map
//! and the job that erases cannot tell two stories. The due moment is derived from the
//! ticket's stored `closed_at`, so no timer needs keeping: whatever was due and not done is
//! found again by the next sweep, after any restart.

use std::time::Duration;

use tessera_kernel::Timestamp;

use crate::personal_data::TICKET_MESSAGE;

/// Ninety days, should the declaration ever stop giving a period: a declared retention of
/// "until erasure" would otherwise switch the job off without anyone saying so.
const FALLBACK: Duration = Duration::from_secs(90 * 86_400);

/// How long after its ticket is closed a message is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageRetention {
    keep_for: Duration,
}

impl MessageRetention {
    /// What the data map declares for ticket messages.
    pub fn declared() -> Self {
        Self { keep_for: TICKET_MESSAGE.retention.period().unwrap_or(FALLBACK) }
    }

    pub fn days(days: u32) -> Self {
        Self { keep_for: Duration::from_secs(u64::from(days) * 86_400) }
    }

    pub fn keep_for(self) -> Duration {
        self.keep_for
    }

    /// Whole days kept, for settings and reports.
    pub fn in_days(self) -> u64 {
        self.keep_for.as_secs() / 86_400
    }

    /// When the messages of a ticket closed at `closed_at` are due to go.
    pub fn due_at(self, closed_at: Timestamp) -> Timestamp {
        closed_at.saturating_add(self.keep_for)
    }

    /// Tickets closed at or before this instant have messages due by `now`.
    pub fn closed_by(self, now: Timestamp) -> Timestamp {
        now.saturating_sub(self.keep_for)
    }

    /// Whether a ticket closed at `closed_at` (`None`: still open) has messages due by `now`.
    pub fn is_due(self, closed_at: Option<Timestamp>, now: Timestamp) -> bool {
        closed_at.is_some_and(|closed| self.due_at(closed) <= now)
    }
}

impl Default for MessageRetention {
    fn default() -> Self {
        Self::declared()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn the_default_is_what_the_data_map_declares() {
        assert_eq!(MessageRetention::default(), MessageRetention::days(90));
        assert_eq!(MessageRetention::declared().in_days(), 90);
    }

    #[test]
    fn a_closed_tickets_messages_are_due_once_the_period_has_passed_and_an_open_ones_never() {
        let retention = MessageRetention::days(90);
        let closed = Timestamp::from_micros(1_000_000);
        let day = |n: u32| closed.saturating_add(DAY * n);
        assert!(!retention.is_due(Some(closed), day(89)));
        assert!(retention.is_due(Some(closed), day(90)));
        assert!(retention.is_due(Some(closed), day(400)));
        assert!(!retention.is_due(None, day(4000)));
        assert_eq!(retention.closed_by(day(90)), closed);
    }
}
