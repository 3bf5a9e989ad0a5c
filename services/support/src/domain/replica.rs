//! Support's copy of order summaries. It is fed by order events that may arrive twice or out
//! of order; `merge` makes the result depend only on the set of events seen:
//!
//! - status and reason come from the event with the highest source version (the order
//!   stream's version after the change): last writer wins, by the writer's own clock;
//! - facts that never change once known (customer, item count, total) are kept from
//!   whichever event carried them.
//!
//! Merge is commutative, associative and idempotent, so any permutation with duplicates of the
//! same events yields the same replica.

use serde::{Deserialize, Serialize};
use tessera_contracts::Money;
use uuid::Uuid;

/// What one order event tells the replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaUpdate {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    /// pending, confirmed, rejected or cancelled.
    pub status: String,
    pub reason: Option<String>,
    pub total: Option<Money>,
    pub item_count: Option<i64>,
    pub source_version: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderReplica {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub status: String,
    pub reason: Option<String>,
    pub total: Option<Money>,
    pub item_count: Option<i64>,
    pub source_version: u64,
}

impl OrderReplica {
    pub fn from_update(update: ReplicaUpdate) -> Self {
        Self {
            order_id: update.order_id,
            customer_id: update.customer_id,
            status: update.status,
            reason: update.reason,
            total: update.total,
            item_count: update.item_count,
            source_version: update.source_version,
        }
    }

    /// The replica after also seeing `update`.
    #[must_use]
    pub fn merge(self, update: ReplicaUpdate) -> Self {
        // Equal versions are the same change seen twice; the tie-break on status only makes
        // the rule total (an order's stream never gives one version two statuses).
        let newer = (update.source_version, &update.status) > (self.source_version, &self.status);
        let (status, reason, source_version) = if newer {
            (update.status, update.reason, update.source_version)
        } else {
            (self.status, self.reason, self.source_version)
        };
        Self {
            order_id: self.order_id,
            customer_id: self.customer_id,
            status,
            reason,
            total: self.total.or(update.total),
            item_count: self.item_count.or(update.item_count),
            source_version,
        }
    }
}

/// Folds updates into a replica (none when there are none).
pub fn fold(updates: impl IntoIterator<Item = ReplicaUpdate>) -> Option<OrderReplica> {
    updates.into_iter().fold(None, |replica, update| match replica {
        None => Some(OrderReplica::from_update(update)),
        Some(replica) => Some(replica.merge(update)),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn order_life(order_id: Uuid, customer_id: Uuid, cancelled: bool) -> Vec<ReplicaUpdate> {
        let base = ReplicaUpdate {
            order_id,
            customer_id,
            status: "pending".into(),
            reason: None,
            total: None,
            item_count: Some(3),
            source_version: 1,
        };
        let mut life = vec![
            base.clone(),
            ReplicaUpdate {
                status: "confirmed".into(),
                total: Some(Money::eur(2550).expect("money")),
                item_count: Some(3),
                source_version: 4,
                ..base.clone()
            },
        ];
        if cancelled {
            life.push(ReplicaUpdate {
                status: "cancelled".into(),
                total: Some(Money::eur(2550).expect("money")),
                item_count: None,
                source_version: 6,
                ..base
            });
        }
        life
    }

    fn rejected_life(order_id: Uuid, customer_id: Uuid) -> Vec<ReplicaUpdate> {
        vec![
            ReplicaUpdate {
                order_id,
                customer_id,
                status: "pending".into(),
                reason: None,
                total: None,
                item_count: Some(1),
                source_version: 1,
            },
            ReplicaUpdate {
                order_id,
                customer_id,
                status: "rejected".into(),
                reason: Some("out_of_stock".into()),
                total: None,
                item_count: None,
                source_version: 2,
            },
        ]
    }

    #[test]
    fn the_latest_status_wins_and_known_facts_stay() {
        let (order, customer) = (Uuid::now_v7(), Uuid::now_v7());
        let mut life = rejected_life(order, customer);
        life.reverse();
        let replica = fold(life).expect("replica");
        assert_eq!(replica.status, "rejected");
        assert_eq!(replica.reason.as_deref(), Some("out_of_stock"));
        assert_eq!(replica.item_count, Some(1), "learned from the older event that arrived last");
    }

    proptest! {
        /// Any permutation, with duplicates, of one order's events yields the same replica.
        #[test]
        fn any_permutation_with_duplicates_converges(
            kind in 0..3u8,
            order in prop::collection::vec(0..16usize, 1..24),
        ) {
            let (order_id, customer_id) = (Uuid::from_u128(7), Uuid::from_u128(9));
            let life = match kind {
                0 => order_life(order_id, customer_id, false),
                1 => order_life(order_id, customer_id, true),
                _ => rejected_life(order_id, customer_id),
            };
            let expected = fold(life.clone());
            // Every event at least once, then an arbitrary sequence of repeats.
            let mut seen: Vec<ReplicaUpdate> = life.clone();
            seen.extend(order.iter().map(|i| life[i % life.len()].clone()));
            // A permutation driven by the same random indices.
            for (i, j) in order.iter().enumerate() {
                let len = seen.len();
                seen.swap(i % len, j % len);
            }
            prop_assert_eq!(fold(seen), expected);
        }
    }
}
