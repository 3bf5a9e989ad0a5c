//! The inventory service: products and their stock. Stock is reserved for an order all lines
//! or none, released, committed when the order is confirmed, and restocked when a confirmed
//! order is cancelled. It never oversells: decisions are made by the pure rules in `domain`,
//! and every write is a conditional update that refuses to go below zero, so a race is caught
//! by the database and the message is retried against fresh data.

mod app;
pub mod domain;
pub mod facts;
pub mod http;
mod service;

pub use service::InventoryService;

pub use app::{AppError, Inventory, Product, ProductChanges};

/// The service's name: its store file, its message names' owner, its relay's name.
pub const SERVICE: &str = "inventory";

/// Written once for both dialects: no autoincrement columns, only portable types.
const SCHEMA: &str = "
    CREATE TABLE products (
        sku TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL,
        price BIGINT NOT NULL, currency TEXT NOT NULL,
        available BIGINT NOT NULL CHECK (available >= 0),
        reserved BIGINT NOT NULL CHECK (reserved >= 0),
        sold BIGINT NOT NULL CHECK (sold >= 0),
        version BIGINT NOT NULL);
    CREATE TABLE reservations (
        order_id TEXT NOT NULL, sku TEXT NOT NULL, name TEXT NOT NULL, quantity BIGINT NOT NULL,
        unit_price BIGINT NOT NULL, currency TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('held', 'released', 'committed', 'restocked')),
        PRIMARY KEY (order_id, sku));
    CREATE TABLE adjustments (
        id TEXT PRIMARY KEY, sku TEXT NOT NULL, delta BIGINT NOT NULL, reason TEXT NOT NULL, at BIGINT NOT NULL);
    CREATE TABLE released_orders (order_id TEXT PRIMARY KEY);";

pub const MIGRATIONS: tessera_store::MigrationSet = tessera_store::MigrationSet {
    scope: "inventory",
    migrations: &[tessera_store::Migration {
        version: 1,
        name: "products, reservations, adjustments",
        sqlite: SCHEMA,
        postgres: SCHEMA,
    }],
};

/// Every migration set the inventory store needs, in order.
pub fn migrations() -> Vec<tessera_store::MigrationSet> {
    vec![tessera_bus::MIGRATIONS, MIGRATIONS]
}
