//! Which audit records concern one person: the ones they made themselves, and every record on
//! their profile (`customer/<id>`) or on a resource they created (their orders, tickets,
//! cards). A part of one of their resources is theirs too (`ticket/1/attachment/2` of
//! `ticket/1`, `order/7/payment` of `order/7`), so support reading a customer's ticket shows
//! as support's read of that customer's data.
//!
//! Resources are named by the service that keeps them, and one service may hold a part of a
//! resource another created (payments keeps `order/7/payment`). So a service answering for
//! itself learns what the person created from its own trail and takes the rest from the
//! caller ([`PersonFilter::own`]); a reader of every trail learns from all of them first.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use tessera_kernel::Timestamp;

use crate::StoredAuditRecord;

/// One read or change of the person's data, as an access report lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// The service whose trail holds the record.
    pub service: String,
    /// The record's place in that service's chain, to find it again.
    pub index: u64,
    pub at: Timestamp,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub resource: String,
    pub outcome: String,
}

impl Access {
    pub fn new(service: &str, stored: &StoredAuditRecord) -> Self {
        let record = &stored.record;
        Self {
            service: service.to_owned(),
            index: stored.index,
            at: record.at,
            actor: record.actor.clone(),
            role: record.role.clone(),
            action: record.action.clone(),
            resource: record.resource.clone(),
            outcome: record.outcome.clone(),
        }
    }
}

/// Decides which records concern one person. Show it every record with [`learn`] first (it
/// notes what the person created), then ask [`touches`].
///
/// [`learn`]: PersonFilter::learn
/// [`touches`]: PersonFilter::touches
#[derive(Clone, Debug)]
pub struct PersonFilter {
    person: String,
    theirs: BTreeSet<String>,
}

impl PersonFilter {
    pub fn new(person: &str) -> Self {
        Self { person: person.to_owned(), theirs: BTreeSet::from([format!("customer/{person}")]) }
    }

    pub fn person(&self) -> &str {
        &self.person
    }

    /// Counts `resource` as the person's, known from elsewhere (another service's trail).
    pub fn own(&mut self, resource: impl Into<String>) {
        self.theirs.insert(resource.into());
    }

    /// Notes the resource of a record the person made: it is theirs.
    pub fn learn(&mut self, stored: &StoredAuditRecord) {
        if stored.record.actor == self.person {
            self.theirs.insert(stored.record.resource.clone());
        }
    }

    pub fn touches(&self, stored: &StoredAuditRecord) -> bool {
        let record = &stored.record;
        record.actor == self.person || self.is_theirs(&record.resource)
    }

    fn is_theirs(&self, resource: &str) -> bool {
        self.theirs.iter().any(|own| {
            resource.strip_prefix(own.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }
}

/// Every record of `trails` (each service's chain) that concerns `person`, oldest first.
pub fn person_report(trails: &[(String, Vec<StoredAuditRecord>)], person: &str) -> Vec<Access> {
    let mut filter = PersonFilter::new(person);
    for (_, trail) in trails {
        trail.iter().for_each(|record| filter.learn(record));
    }
    let mut accesses: Vec<Access> = trails
        .iter()
        .flat_map(|(service, trail)| trail.iter().map(move |r| (service, r)))
        .filter(|(_, r)| filter.touches(r))
        .map(|(service, r)| Access::new(service, r))
        .collect();
    sort(&mut accesses);
    accesses
}

/// Oldest first; records of one instant by service and then by their place in its chain.
pub fn sort(accesses: &mut [Access]) {
    accesses.sort_by(|a, b| (a.at, &a.service, a.index).cmp(&(b.at, &b.service, b.index)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuditRecord;

    fn record(
        index: u64,
        at: u64,
        actor: &str,
        role: &str,
        action: &str,
        resource: &str,
    ) -> StoredAuditRecord {
        StoredAuditRecord {
            index,
            record: AuditRecord {
                actor: actor.into(),
                role: role.into(),
                action: action.into(),
                resource: resource.into(),
                outcome: "ok".into(),
                trace_id: None,
                at: Timestamp::from_micros(at),
            },
            hash: [0; 32],
        }
    }

    fn seen(accesses: Vec<Access>) -> Vec<(String, String, String, String)> {
        accesses.into_iter().map(|a| (a.service, a.actor, a.role, a.action)).collect()
    }

    fn owned(rows: &[(&str, &str, &str, &str)]) -> Vec<(String, String, String, String)> {
        rows.iter().map(|(s, a, r, x)| ((*s).into(), (*a).into(), (*r).into(), (*x).into())).collect()
    }

    #[test]
    fn support_reading_a_customers_ticket_is_in_the_customers_report_and_strangers_are_not() {
        let trails = vec![
            (
                "customers".to_owned(),
                vec![
                    record(0, 1, "ada", "customer", "customer.register", "customer/ada"),
                    record(1, 5, "sam", "support", "customer.read", "customer/ada"),
                    record(2, 6, "bob", "customer", "customer.read", "customer/bob"),
                ],
            ),
            (
                "support".to_owned(),
                vec![
                    record(0, 2, "ada", "customer", "ticket.open", "ticket/t1"),
                    record(1, 3, "sam", "support", "ticket.read", "ticket/t1"),
                    record(2, 4, "sam", "support", "ticket.read", "ticket/t10"),
                    record(3, 7, "sam", "support", "attachment.read", "ticket/t1/attachment/a1"),
                ],
            ),
        ];
        let expected = [
            ("customers", "ada", "customer", "customer.register"),
            ("support", "ada", "customer", "ticket.open"),
            ("support", "sam", "support", "ticket.read"),
            ("customers", "sam", "support", "customer.read"),
            ("support", "sam", "support", "attachment.read"),
        ];
        assert_eq!(seen(person_report(&trails, "ada")), owned(&expected));
    }

    #[test]
    fn a_part_another_service_keeps_is_found_when_the_owner_is_known_from_elsewhere() {
        let payments = [
            record(0, 1, "sam", "support", "payment.read", "order/o1/payment"),
            record(1, 2, "sam", "support", "payment.read", "order/o10/payment"),
            record(2, 3, "sam", "support", "payment.read", "order/o1x"),
        ];
        let mut alone = PersonFilter::new("ada");
        payments.iter().for_each(|r| alone.learn(r));
        assert!(payments.iter().all(|r| !alone.touches(r)), "payments' trail alone does not say whose o1 is");
        alone.own("order/o1");
        let touched: Vec<u64> = payments.iter().filter(|r| alone.touches(r)).map(|r| r.index).collect();
        assert_eq!(touched, [0]);
        alone.own("order/o1/payment/refund");
        assert!(alone.touches(&record(3, 4, "sam", "support", "payment.read", "order/o1/payment/x")));
    }
}
