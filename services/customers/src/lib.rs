//! The customers service: who shops here. Customers register with an email (unique, compared
//! case-insensitively), a name, a postal address and a password; they read and change their
//! profile under optimistic concurrency (ETag / If-Match); and the gateway asks it whether an
//! email and password belong together. Passwords are stored only as argon2id hashes, and a
//! check takes as long for an unknown email as for a wrong password.
//!
//! Every change is announced as an event (`customers.CustomerRegistered`,
//! `customers.CustomerUpdated`) committed with the change itself; its personal fields are
//! marked for the privacy layer.

mod app;
pub mod domain;
pub mod http;
pub mod personal_data;
mod service;

pub use service::CustomersService;

pub use app::{AppError, Customer, Customers, Erasure, ProfileChanges};

/// The service's name: its store file, its message names' owner, its relay's name.
pub const SERVICE: &str = "customers";

/// Written once for both dialects: no autoincrement columns, only portable types. `email` is
/// the address as given; `email_key`, its lower-case form, is what makes an address unique.
const SCHEMA: &str = "
    CREATE TABLE customers (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL, email_key TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        line1 TEXT NOT NULL, city TEXT NOT NULL, postal_code TEXT NOT NULL, country TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
        version BIGINT NOT NULL CHECK (version >= 1));";

/// From version 2 every personal column holds a value sealed with the customer's data key
/// (`sealed = 1`; older rows are sealed at start-up) and `email_key` is a keyed hash. An erased
/// customer's row stays, blanked, as the owner of their orders and payments.
const ERASURE_SCHEMA: &str = "
    ALTER TABLE customers ADD COLUMN sealed BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE customers ADD COLUMN erased_at BIGINT;
    CREATE TABLE erasures (
        id TEXT PRIMARY KEY, customer_id TEXT NOT NULL UNIQUE, requested_at BIGINT NOT NULL);
    CREATE TABLE erasure_progress (
        erasure_id TEXT NOT NULL, service TEXT NOT NULL, done_at BIGINT NOT NULL,
        PRIMARY KEY (erasure_id, service));";

pub const MIGRATIONS: tessera_store::MigrationSet = tessera_store::MigrationSet {
    scope: "customers",
    migrations: &[
        tessera_store::Migration { version: 1, name: "customers", sqlite: SCHEMA, postgres: SCHEMA },
        tessera_store::Migration {
            version: 2,
            name: "sealed personal fields, erasures",
            sqlite: ERASURE_SCHEMA,
            postgres: ERASURE_SCHEMA,
        },
    ],
};

/// Every migration set the customers store needs, in order.
pub fn migrations() -> Vec<tessera_store::MigrationSet> {
    vec![tessera_bus::MIGRATIONS, MIGRATIONS]
}
