//! The payments service: cards become tokens (the number and CVC are never stored, logged or
//! sent on), and orders are authorised, captured, voided and refunded against the card network,
//! at most once each, whatever is retried or redelivered. When the customers service erases a
//! customer, payments deletes their stored cards.

mod app;
pub mod domain;
pub mod facts;
pub mod http;
pub mod personal_data;
mod service;

pub use service::PaymentsService;

pub use app::{
    AppError, CardNetwork, Erasures, NetworkError, NetworkSettings, Payment, PaymentMethod, Payments,
    SimulatedNetwork,
};

pub const SERVICE: &str = "payments";

const SCHEMA: &str = "
    CREATE TABLE payment_methods (
        token TEXT PRIMARY KEY, customer_id TEXT NOT NULL, brand TEXT NOT NULL, last4 TEXT NOT NULL,
        exp_month BIGINT NOT NULL, exp_year BIGINT NOT NULL, profile TEXT NOT NULL, created_at BIGINT NOT NULL);
    CREATE TABLE payments (
        order_id TEXT PRIMARY KEY, payment_id TEXT NOT NULL UNIQUE, customer_id TEXT NOT NULL, token TEXT NOT NULL,
        amount BIGINT NOT NULL CHECK (amount >= 0), currency TEXT NOT NULL, last4 TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('authorising', 'authorised', 'declined', 'voided', 'captured', 'refunded')),
        reason TEXT, authorisation TEXT, request TEXT, updated_at BIGINT NOT NULL);
    CREATE INDEX payments_authorising ON payments (status) WHERE status = 'authorising';
    CREATE TABLE captures (order_id TEXT PRIMARY KEY, amount BIGINT NOT NULL, at BIGINT NOT NULL);
    CREATE TABLE refunds (order_id TEXT PRIMARY KEY, amount BIGINT NOT NULL, at BIGINT NOT NULL);
    CREATE TABLE voided_orders (order_id TEXT PRIMARY KEY);";

pub const MIGRATIONS: tessera_store::MigrationSet = tessera_store::MigrationSet {
    scope: "payments",
    migrations: &[tessera_store::Migration {
        version: 1,
        name: "payment methods, payments, captures, refunds",
        sqlite: SCHEMA,
        postgres: SCHEMA,
    }],
};

pub fn migrations() -> Vec<tessera_store::MigrationSet> {
    vec![tessera_bus::MIGRATIONS, MIGRATIONS]
}
