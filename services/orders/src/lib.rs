//! The orders service: orders are event-sourced; placing one starts the place-order saga
//! (reserve stock → authorise payment → confirm → commit the reservation and capture the
//! payment), and cancelling a confirmed one starts the cancel-order saga (refund, restock).

mod app;
pub mod domain;
pub mod facts;
pub mod http;
pub mod personal_data;
mod service;

pub use service::OrdersService;

pub use app::analytics::{SalesAnalytics, SalesRow};
pub use app::sagas::{CANCEL_ORDER, PLACE_ORDER, cancel_order, place_order};
pub use app::summaries::OrderSummaries;
pub use app::{
    AppError, Erasures, OrderHistory, OrderRecord, OrderSummary, Orders, OrdersSettings, Placement,
    RequestKey,
};

pub const SERVICE: &str = "orders";

const SCHEMA: &str = "
    CREATE TABLE order_summaries (
        order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, status TEXT NOT NULL, reason TEXT,
        total BIGINT, item_count BIGINT NOT NULL, updated_at BIGINT NOT NULL);
    CREATE INDEX order_summaries_customer ON order_summaries (customer_id, order_id);
    CREATE INDEX order_summaries_status ON order_summaries (status, order_id);";

/// Version 2 reshapes the summaries (the stream version they reflect instead of a time) and
/// asks the projection runner to rebuild them from the event store: a read model migrates by
/// being rebuilt.
const SUMMARIES_BY_VERSION: &str = "
    DROP TABLE order_summaries;
    CREATE TABLE order_summaries (
        order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, status TEXT NOT NULL, reason TEXT,
        total BIGINT, item_count BIGINT NOT NULL, version BIGINT NOT NULL);
    CREATE INDEX order_summaries_customer ON order_summaries (customer_id, order_id);
    CREATE INDEX order_summaries_status ON order_summaries (status, order_id);
    INSERT INTO tessera_projections (name, mode, position, rebuild_requested, rebuilds, updated_at)
    VALUES ('order_summaries', 'inline', 0, 1, 0, 0);";

/// Idempotency of placement: one order per (customer, request key).
const REQUEST_KEYS: &str = "
    CREATE TABLE order_requests (
        customer_id TEXT NOT NULL, request_key TEXT NOT NULL, order_id TEXT NOT NULL,
        PRIMARY KEY (customer_id, request_key));";

/// A key's record keeps the first request's body hash (another body under the key is refused)
/// and its time (a key answers for a day). Earlier records get the migration's time: without a
/// hash they replay whatever the body, for a day.
const REQUEST_KEY_HASHES_SQLITE: &str = "
    ALTER TABLE order_requests ADD COLUMN body_hash TEXT;
    ALTER TABLE order_requests ADD COLUMN kept_at BIGINT;
    UPDATE order_requests SET kept_at = CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER);";
const REQUEST_KEY_HASHES_POSTGRES: &str = "
    ALTER TABLE order_requests ADD COLUMN body_hash TEXT;
    ALTER TABLE order_requests ADD COLUMN kept_at BIGINT;
    UPDATE order_requests SET kept_at = (extract(epoch FROM clock_timestamp()) * 1000000)::bigint;";

/// The sales analytics' table (kept by an asynchronous projection, which starts from the
/// first event, so past orders are counted too); the same shape as `analytics::create`.
const ANALYTICS: &str = "
    CREATE TABLE analytics_sales (
        order_key TEXT NOT NULL, sku TEXT NOT NULL, buyer TEXT NOT NULL, country TEXT NOT NULL,
        day TEXT NOT NULL, quantity BIGINT NOT NULL, unit_price BIGINT, currency TEXT,
        status TEXT NOT NULL, PRIMARY KEY (order_key, sku));
    CREATE INDEX analytics_sales_day ON analytics_sales (status, day);";

pub const MIGRATIONS: tessera_store::MigrationSet = tessera_store::MigrationSet {
    scope: "orders",
    migrations: &[
        tessera_store::Migration { version: 1, name: "order summaries", sqlite: SCHEMA, postgres: SCHEMA },
        tessera_store::Migration {
            version: 2,
            name: "order summaries by stream version, rebuilt",
            sqlite: SUMMARIES_BY_VERSION,
            postgres: SUMMARIES_BY_VERSION,
        },
        tessera_store::Migration {
            version: 3,
            name: "request keys",
            sqlite: REQUEST_KEYS,
            postgres: REQUEST_KEYS,
        },
        tessera_store::Migration {
            version: 4,
            name: "sales analytics",
            sqlite: ANALYTICS,
            postgres: ANALYTICS,
        },
        tessera_store::Migration {
            version: 5,
            name: "request keys with their body hash and time",
            sqlite: REQUEST_KEY_HASHES_SQLITE,
            postgres: REQUEST_KEY_HASHES_POSTGRES,
        },
    ],
};

pub fn migrations() -> Vec<tessera_store::MigrationSet> {
    vec![tessera_bus::MIGRATIONS, tessera_saga::MIGRATIONS, tessera_projection::MIGRATIONS, MIGRATIONS]
}
