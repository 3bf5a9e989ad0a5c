//! One audit record and its canonical encoding: the bytes the chain hashes, which must never
//! depend on how a record happens to be serialised for transport or storage.

use serde::{Deserialize, Serialize};
use tessera_kernel::Timestamp;

/// Who did what to which resource, with what outcome, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The authenticated principal (a subject id, a staff id, `system`).
    pub actor: String,
    /// The role the actor acted under: `customer`, `support`, `admin`, `system`.
    pub role: String,
    /// What was done: `customer.read`, `order.cancel`.
    pub action: String,
    /// What it was done to: `customer/0190…`.
    pub resource: String,
    /// `ok`, `denied`, `rejected:<code>`.
    pub outcome: String,
    /// The request's trace, to find the rest of the story in the logs.
    pub trace_id: Option<String>,
    pub at: Timestamp,
}

/// Version of the encoding below; a different layout would get a different tag, so old and
/// new records can never hash alike.
const ENCODING_V1: u8 = 1;

impl AuditRecord {
    /// The canonical bytes: a version tag, then every field in a fixed order, each text
    /// length-prefixed (u64, big-endian) so that no two different records encode alike
    /// (`("ab", "c")` and `("a", "bc")` differ), the optional trace id behind a presence byte,
    /// and the instant as big-endian microseconds.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let texts = [&self.actor, &self.role, &self.action, &self.resource, &self.outcome];
        let size = 1
            + texts.iter().map(|t| 8 + t.len()).sum::<usize>()
            + 1
            + self.trace_id.as_ref().map_or(0, |t| 8 + t.len())
            + 8;
        let mut out = Vec::with_capacity(size);
        out.push(ENCODING_V1);
        for text in texts {
            put_text(&mut out, text);
        }
        match &self.trace_id {
            None => out.push(0),
            Some(trace) => {
                out.push(1);
                put_text(&mut out, trace);
            }
        }
        out.extend_from_slice(&self.at.as_micros().to_be_bytes());
        out
    }
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u64).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AuditRecord {
        AuditRecord {
            actor: "ab".into(),
            role: "c".into(),
            action: "customer.read".into(),
            resource: "customer/1".into(),
            outcome: "ok".into(),
            trace_id: None,
            at: Timestamp::from_micros(42),
        }
    }

    #[test]
    fn shifting_text_between_fields_changes_the_encoding() {
        let shifted = AuditRecord { actor: "a".into(), role: "bc".into(), ..record() };
        assert_ne!(record().canonical_bytes(), shifted.canonical_bytes());
    }

    #[test]
    fn an_absent_trace_differs_from_an_empty_one() {
        let empty = AuditRecord { trace_id: Some(String::new()), ..record() };
        assert_ne!(record().canonical_bytes(), empty.canonical_bytes());
    }

    #[test]
    fn the_encoding_is_stable() {
        // Pinned: changing it would break every chain already written.
        let bytes = record().canonical_bytes();
        assert_eq!(bytes[0], 1);
        assert_eq!(&bytes[1..9], &2u64.to_be_bytes());
        assert_eq!(&bytes[9..11], b"ab");
        assert_eq!(&bytes[bytes.len() - 9..], &[0, 0, 0, 0, 0, 0, 0, 0, 42]);
        assert_eq!(bytes.len(), 1 + (8 + 2) + (8 + 1) + (8 + 13) + (8 + 10) + (8 + 2) + 1 + 8);
    }

    #[test]
    fn a_record_round_trips_through_json() {
        let json = serde_json::to_string(&record()).expect("serialise");
        assert_eq!(serde_json::from_str::<AuditRecord>(&json).expect("parse"), record());
    }
}
