//! The orders service: orders are event-sourced; placing one starts the place-order saga
//! (reserve stock → authorise payment → confirm → commit the reservation and capture the
//! payment), and cancelling a confirmed one starts the cancel-order saga (refund, restock).

mod app;
pub mod domain;
pub mod http;
mod service;

pub use service::OrdersService;

pub use app::sagas::{CANCEL_ORDER, PLACE_ORDER};
pub use app::{AppError, OrderHistory, OrderRecord, OrderSummary, Orders, OrdersSettings};

pub const SERVICE: &str = "orders";

const SCHEMA: &str = "
    CREATE TABLE order_summaries (
        order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, status TEXT NOT NULL, reason TEXT,
        total BIGINT, item_count BIGINT NOT NULL, updated_at BIGINT NOT NULL);
    CREATE INDEX order_summaries_customer ON order_summaries (customer_id, order_id);
    CREATE INDEX order_summaries_status ON order_summaries (status, order_id);";

pub const MIGRATIONS: tessera_store::MigrationSet = tessera_store::MigrationSet {
    scope: "orders",
    migrations: &[tessera_store::Migration {
        version: 1,
        name: "order summaries",
        sqlite: SCHEMA,
        postgres: SCHEMA,
    }],
};

pub fn migrations() -> Vec<tessera_store::MigrationSet> {
    vec![tessera_bus::MIGRATIONS, tessera_saga::MIGRATIONS, MIGRATIONS]
}
