//! The order-summaries read model (`GET /orders`). It is written inline, in the same unit of
//! work as the order's events, so a client lists what it just placed; and it is a projection
//! of those events, so it can be rebuilt from the event store. Both paths use `statement`, so
//! they cannot disagree. Each row carries the stream version it reflects.

use tessera_projection::{Projection, ProjectionError};
use tessera_store::{RecordedEvent, Statement, UnitOfWork};
use uuid::Uuid;

use crate::domain::OrderEvent;

pub const TABLE: &str = "order_summaries";
pub const NAME: &str = "order_summaries";

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The change `event` (at `version` of the order's stream) makes to the summary in `table`.
pub(crate) fn statement(table: &str, order_id: Uuid, event: &OrderEvent, version: u64) -> Statement {
    let set = |assignments: &str| {
        // Only a newer version changes the row: applying an event again changes nothing.
        Statement::new(format!(
            "UPDATE {table} SET {assignments} version = $2 WHERE order_id = $1 AND version < $2"
        ))
        .bind(order_id.to_string())
        .bind(signed(version))
    };
    match event {
        OrderEvent::Placed { customer_id, lines, .. } => {
            let items: i64 = lines.iter().map(|l| i64::from(l.quantity.get())).sum();
            Statement::new(format!(
                "INSERT INTO {table} (order_id, customer_id, status, item_count, version) VALUES ($1, $2, 'pending', $3, $4)
                 ON CONFLICT (order_id) DO NOTHING"
            ))
            .bind(order_id.to_string())
            .bind(customer_id.to_string())
            .bind(items)
            .bind(signed(version))
        }
        OrderEvent::StockReserved { total, .. } => set("total = $3,").bind(total.amount),
        OrderEvent::Confirmed => set("status = 'confirmed',"),
        OrderEvent::Rejected { reason } => {
            let code = serde_json::to_value(reason).ok().and_then(|v| v.as_str().map(str::to_owned));
            set("status = 'rejected', reason = $3,").bind(code)
        }
        OrderEvent::Cancelled { .. } => set("status = 'cancelled',"),
        // A cancellation under way still shows as confirmed; an authorisation changes no column.
        OrderEvent::PaymentAuthorised { .. } | OrderEvent::CancelRequested => set(""),
    }
}

/// The table's shape, for the migration and for a rebuild's shadow.
pub(crate) fn create(table: &str, index_prefix: &str) -> Vec<String> {
    vec![
        format!(
            "CREATE TABLE {table} (
                order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, status TEXT NOT NULL, reason TEXT,
                total BIGINT, item_count BIGINT NOT NULL, version BIGINT NOT NULL)"
        ),
        format!("CREATE INDEX {index_prefix}_customer ON {table} (customer_id, order_id)"),
        format!("CREATE INDEX {index_prefix}_status ON {table} (status, order_id)"),
    ]
}

/// The order and the event a recorded event of an order's stream holds, for a projection
/// named `projection`; `None` for events of other streams.
pub(crate) fn order_event(
    projection: &'static str,
    event: &RecordedEvent,
) -> tessera_projection::Result<Option<(Uuid, OrderEvent)>> {
    let failed = |reason: String| ProjectionError::Apply { projection, position: event.position, reason };
    let Some(id) = event.stream.as_str().strip_prefix("order-") else { return Ok(None) };
    let order_id: Uuid = id.parse().map_err(|e: uuid::Error| failed(e.to_string()))?;
    let decoded: OrderEvent = event.decode().map_err(|e| failed(e.to_string()))?;
    Ok(Some((order_id, decoded)))
}

/// The projection the runner rebuilds.
#[derive(Clone, Copy, Debug, Default)]
pub struct OrderSummaries;

impl Projection for OrderSummaries {
    fn name(&self) -> &'static str {
        NAME
    }

    fn table(&self) -> &'static str {
        TABLE
    }

    fn create(&self, table: &str, index_prefix: &str) -> Vec<String> {
        create(table, index_prefix)
    }

    fn apply(
        &self,
        event: &RecordedEvent,
        table: &str,
        unit: &mut UnitOfWork,
    ) -> tessera_projection::Result<()> {
        let Some((order_id, decoded)) = order_event(NAME, event)? else { return Ok(()) };
        unit.execute(statement(table, order_id, &decoded, event.version));
        Ok(())
    }
}
