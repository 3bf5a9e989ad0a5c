//! The simulated stores' facts, in the very types the services expose from their real
//! stores (`tessera_orders::facts` and the rest), so the world is judged by the same checker
//! as `tessera verify` (`tessera-invariants`). This module only translates; it states no rule.

use tessera_invariants::{Facts, NetworkFacts, PipelineFacts};
use tessera_inventory::facts::{InventoryFacts, ProductFact, ReservationFact};
use tessera_kernel::Timestamp;
use tessera_orders::facts::{OrderFold, OrdersFacts, SagaFact};
use tessera_payments::facts::{MoneyMoved, PaymentFact, PaymentsFacts};
use tessera_store::{InboxFact, OutboxEnvelope, OutboxFact};

use crate::message::Service;
use crate::orders::TimerStatus;
use crate::store::Store;
use crate::world::World;

/// The simulation judges a world that stopped: every fact is stamped at the epoch, and the
/// checker's cutoff ([`SETTLED`]) lies after it, so nothing counts as in flight.
const AT: Timestamp = Timestamp::EPOCH;
pub const SETTLED: Timestamp = Timestamp::from_micros(1);

fn orders(world: &World<'_>) -> OrdersFacts {
    let state = &world.orders.state;
    let orders = state
        .streams
        .values()
        .filter_map(|events| {
            let mut fold = OrderFold::default();
            for event in events {
                fold.apply(event, AT);
            }
            fold.finish()
        })
        .collect();
    let sagas = state
        .sagas
        .iter()
        .map(|((saga, id), saga_state)| SagaFact {
            saga: (*saga).to_owned(),
            saga_id: id.clone(),
            status: saga_state.status,
            step: Some(saga_state.step),
            stuck: saga_state.stuck.clone(),
            started_at: AT,
        })
        .collect();
    OrdersFacts { orders, sagas, summaries: Vec::new() }
}

fn inventory(world: &World<'_>) -> InventoryFacts {
    let state = &world.inventory.state;
    InventoryFacts {
        products: state
            .products
            .iter()
            .map(|(sku, product)| ProductFact { sku: sku.as_str().to_owned(), level: product.level })
            .collect(),
        // The simulation adjusts no stock after the start.
        adjusted: world.initial_stock.iter().map(|(sku, units)| (sku.as_str().to_owned(), *units)).collect(),
        reservations: state
            .reservations
            .iter()
            .flat_map(|(order_id, reservation)| {
                reservation.lines.iter().map(move |line| ReservationFact {
                    order_id: order_id.to_string(),
                    sku: line.sku.as_str().to_owned(),
                    quantity: line.quantity,
                    state: line.state,
                })
            })
            .collect(),
    }
}

fn payments(world: &World<'_>) -> PaymentsFacts {
    let state = &world.payments.state;
    let moved = |amounts: &std::collections::BTreeMap<uuid::Uuid, i64>| {
        amounts.iter().map(|(id, amount)| MoneyMoved { order_id: id.to_string(), amount: *amount }).collect()
    };
    PaymentsFacts {
        payments: state
            .payments
            .iter()
            .map(|(id, payment)| PaymentFact { order_id: id.to_string(), status: payment.status.to_owned() })
            .collect(),
        captures: moved(&state.captures),
        refunds: moved(&state.refunds),
    }
}

/// The card network keys its operations `capture-<order>` and `refund-<order>`.
fn network(world: &World<'_>) -> NetworkFacts {
    let by_order = |operations: &std::collections::BTreeMap<String, i64>, prefix: &str| {
        operations
            .iter()
            .filter_map(|(key, amount)| Some((key.strip_prefix(prefix)?.to_owned(), *amount)))
            .collect()
    };
    NetworkFacts {
        captured: by_order(&world.network.captured, "capture-"),
        refunded: by_order(&world.network.refunded, "refund-"),
    }
}

fn pipeline<S>(service: Service, store: &Store<S>) -> PipelineFacts {
    PipelineFacts {
        service: service.name().to_owned(),
        outbox: store
            .outbox
            .iter()
            .map(|row| OutboxFact {
                message_id: row.message.id.to_string(),
                name: row.message.name.clone(),
                created_at: AT,
                sent: row.sent,
                envelope: Some(OutboxEnvelope {
                    name: Some(row.message.name.clone()),
                    target: row.message.target.map(|t| t.name().to_owned()),
                }),
            })
            .collect(),
        inbox: store
            .inbox
            .iter()
            .map(|(id, times)| InboxFact { message_id: id.to_string(), times_applied: *times })
            .collect(),
        dead_letters: Vec::new(),
    }
}

/// Everything the checker needs, from a world that stopped.
pub fn facts(world: &World<'_>) -> Facts {
    Facts {
        orders: orders(world),
        inventory: inventory(world),
        payments: payments(world),
        read_models: None,
        pipelines: vec![
            pipeline(Service::Orders, &world.orders),
            pipeline(Service::Inventory, &world.inventory),
            pipeline(Service::Payments, &world.payments),
        ],
        audits: Vec::new(),
        network: Some(network(world)),
        pending_timers: world
            .orders
            .state
            .timers
            .values()
            .filter(|t| t.status == TimerStatus::Pending)
            .map(|t| t.saga_id.clone())
            .collect(),
    }
}
