//! The access report of one person, from the hash-chained audit trails of every service: who
//! read or changed their data, when, under which role, in which service and through which
//! action. A person's data is their profile (`customer/<id>`) and every resource they created
//! (their orders, tickets, cards), found in the same trails, so that support reading a
//! customer's ticket shows as support's read of that customer's data.

use std::collections::BTreeSet;

use serde::Serialize;
use tessera_kernel::Timestamp;
use tessera_store::StoredAuditRecord;

/// One read or change of the person's data.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct Access {
    pub service: String,
    /// The record's place in its service's chain, to find it again.
    pub index: u64,
    pub at: Timestamp,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub resource: String,
    pub outcome: String,
}

/// Every record of `trails` (each service's chain) that touches `customer`'s data, oldest
/// first.
pub fn report(trails: &[(String, Vec<StoredAuditRecord>)], customer: &str) -> Vec<Access> {
    let profile = format!("customer/{customer}");
    let mut theirs: BTreeSet<&str> = BTreeSet::from([profile.as_str()]);
    for (_, trail) in trails {
        theirs
            .extend(trail.iter().filter(|r| r.record.actor == customer).map(|r| r.record.resource.as_str()));
    }
    // A part of one of their resources is theirs too (`ticket/1/attachment/2` of `ticket/1`).
    let touches = |resource: &str| {
        theirs.iter().any(|own| {
            resource == *own || resource.strip_prefix(own).is_some_and(|rest| rest.starts_with('/'))
        })
    };
    let mut accesses: Vec<Access> = trails
        .iter()
        .flat_map(|(service, trail)| trail.iter().map(move |r| (service, r)))
        .filter(|(_, r)| r.record.actor == customer || touches(&r.record.resource))
        .map(|(service, r)| Access {
            service: service.clone(),
            index: r.index,
            at: r.record.at,
            actor: r.record.actor.clone(),
            role: r.record.role.clone(),
            action: r.record.action.clone(),
            resource: r.record.resource.clone(),
            outcome: r.record.outcome.clone(),
        })
        .collect();
    accesses.sort_by(|a, b| (a.at, &a.service, a.index).cmp(&(b.at, &b.service, b.index)));
    accesses
}

#[cfg(test)]
mod tests {
    use tessera_store::AuditRecord;

    use super::*;

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
        let seen: Vec<(String, String, String, String)> =
            report(&trails, "ada").into_iter().map(|a| (a.service, a.actor, a.role, a.action)).collect();
        let expected = [
            ("customers", "ada", "customer", "customer.register"),
            ("support", "ada", "customer", "ticket.open"),
            ("support", "sam", "support", "ticket.read"),
            ("customers", "sam", "support", "customer.read"),
            ("support", "sam", "support", "attachment.read"),
        ];
        let expected: Vec<(String, String, String, String)> = expected
            .iter()
            .map(|(s, a, r, x)| ((*s).to_owned(), (*a).to_owned(), (*r).to_owned(), (*x).to_owned()))
            .collect();
        assert_eq!(seen, expected);
    }
}
