//! The support service: tickets (open, reply, close) bound to a customer and optionally to an
//! order, and support's own replica of order summaries, built from the orders service's
//! events. It never asks the orders service: what it knows of an order arrived as messages.
//! Tickets carry attachments, kept sealed in an object store. When the customers service erases
//! a customer, support blanks what they wrote and deletes their attachments. A closed ticket's
//! messages are erased once its retention has passed (`retention`).

mod app;
pub mod domain;
pub mod facts;
pub mod http;
pub mod personal_data;
pub mod retention;
mod service;

pub use app::{
    AppError, Attachment, AttachmentStore, AttachmentStoreError, Author, Erasures, FileStream, Support,
    Ticket, TicketMessage, Upload, UploadPermit,
};
pub use domain::AttachmentLimits;
pub use service::SupportService;

pub const SERVICE: &str = "support";

/// Attachments' metadata; their bytes are in the object store, under `object_key`.
const ATTACHMENTS: &str = "
    CREATE TABLE ticket_attachments (
        id TEXT PRIMARY KEY, ticket_id TEXT NOT NULL, object_key TEXT NOT NULL, size BIGINT NOT NULL,
        sha256 TEXT NOT NULL, content_type TEXT NOT NULL, file_name TEXT NOT NULL, created_at BIGINT NOT NULL);
    CREATE INDEX ticket_attachments_ticket ON ticket_attachments (ticket_id, id);";

/// Quotas: what each ticket (`ticket:<id>`) and each customer (`customer:<id>`) holds, counted
/// as uploads reserve and release, so a check is one conditional update (see
/// `app::upload`). An upload's row is `pending` while its bytes stream. The counts start from
/// the attachments already kept.
const QUOTAS: &str = "
    ALTER TABLE ticket_attachments ADD COLUMN state TEXT NOT NULL DEFAULT 'stored';
    CREATE TABLE attachment_usage (scope TEXT PRIMARY KEY, files BIGINT NOT NULL, bytes BIGINT NOT NULL);
    INSERT INTO attachment_usage (scope, files, bytes)
        SELECT 'ticket:' || ticket_id, count(*), sum(size) FROM ticket_attachments GROUP BY ticket_id;
    INSERT INTO attachment_usage (scope, files, bytes)
        SELECT 'customer:' || t.customer_id, count(*), sum(a.size)
        FROM ticket_attachments a JOIN tickets t ON t.id = a.ticket_id GROUP BY t.customer_id;";

/// When a ticket was closed (the start of its messages' retention) and when its messages were
/// erased; the retention job's runs. Tickets closed before this migration count as closed at
/// their last update, which was their closing: a closed ticket takes no more messages.
const RETENTION: &str = "
    ALTER TABLE tickets ADD COLUMN closed_at BIGINT;
    ALTER TABLE tickets ADD COLUMN messages_erased_at BIGINT;
    UPDATE tickets SET closed_at = updated_at WHERE status = 'closed';
    CREATE INDEX tickets_closed ON tickets (closed_at) WHERE messages_erased_at IS NULL;
    CREATE TABLE retention_runs (
        job TEXT PRIMARY KEY, kept_days BIGINT NOT NULL, last_run_at BIGINT NOT NULL,
        last_count BIGINT NOT NULL, total_count BIGINT NOT NULL);";

const SCHEMA: &str = "
    CREATE TABLE tickets (
        id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, order_id TEXT, subject TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
        created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
    CREATE INDEX tickets_customer ON tickets (customer_id, id);
    CREATE INDEX tickets_status ON tickets (status, id);
    CREATE TABLE ticket_messages (
        id TEXT PRIMARY KEY, ticket_id TEXT NOT NULL, author TEXT NOT NULL, body TEXT NOT NULL, at BIGINT NOT NULL);
    CREATE INDEX ticket_messages_ticket ON ticket_messages (ticket_id, id);
    CREATE TABLE order_replicas (
        order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, status TEXT NOT NULL, reason TEXT,
        total BIGINT, currency TEXT, item_count BIGINT, source_version BIGINT NOT NULL);";

pub const MIGRATIONS: tessera_store::MigrationSet = tessera_store::MigrationSet {
    scope: "support",
    migrations: &[
        tessera_store::Migration {
            version: 1,
            name: "tickets, messages, order replicas",
            sqlite: SCHEMA,
            postgres: SCHEMA,
        },
        tessera_store::Migration {
            version: 2,
            name: "ticket attachments",
            sqlite: ATTACHMENTS,
            postgres: ATTACHMENTS,
        },
        tessera_store::Migration { version: 3, name: "attachment quotas", sqlite: QUOTAS, postgres: QUOTAS },
        tessera_store::Migration {
            version: 4,
            name: "closed tickets' messages retention",
            sqlite: RETENTION,
            postgres: RETENTION,
        },
    ],
};

pub fn migrations() -> Vec<tessera_store::MigrationSet> {
    vec![tessera_bus::MIGRATIONS, MIGRATIONS]
}
