//! Support's glue: tickets in its own tables, and the handler that keeps the order-summary
//! replica from the orders service's events (exactly once per message through the
//! subscriber's inbox, and convergent under duplicates and reordering through the merge).
//! `erasure` takes the customers service's erasures; `attachments` keeps tickets' files;
//! `retention` sweeps closed tickets' messages once they are due.

mod attachments;
mod download;
mod erasure;
mod retention;
mod upload;

use std::sync::Arc;
use tessera_web::token::Actor;

use async_trait::async_trait;
use tessera_bus::{Handler, HandlerError};
use tessera_contracts::orders::{OrderCancelled, OrderConfirmed, OrderPlaced, OrderRejected};
use tessera_contracts::support::{TicketClosed, TicketOpened};
use tessera_contracts::{Currency, EnvelopeBuilder, Message, Money, Personal, envelope};
use tessera_kernel::personal::PersonalField;
use tessera_kernel::{Clock, Envelope, HybridClock, IdGen, SubjectId, Timestamp};
use tessera_store::{Row, SqlValue, Statement, Store, StoreError, UnitOfWork};
use uuid::Uuid;

pub use attachments::{Attachment, AttachmentStore, AttachmentStoreError};
pub use download::FileStream;
pub use erasure::Erasures;
use upload::UploadSlots;
pub use upload::{Upload, UploadPermit};

use crate::domain::{
    AttachmentError, AttachmentLimits, OrderReplica, QuotaExceeded, ReplicaUpdate, TicketError, TicketStatus,
    check_message, check_subject,
};
use crate::personal_data;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Ticket(#[from] TicketError),
    #[error("no ticket {0}")]
    UnknownTicket(Uuid),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored data cannot be read: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Vault(tessera_vault::VaultError),
    #[error(transparent)]
    Attachment(AttachmentError),
    #[error("no attachment {0}")]
    UnknownAttachment(Uuid),
    #[error("the attachments' object store failed: {0}")]
    Objects(object_store::Error),
    #[error(transparent)]
    Quota(QuotaExceeded),
    #[error("as many uploads as this process takes at once are under way")]
    Busy,
}

impl From<tessera_vault::VaultError> for AppError {
    fn from(error: tessera_vault::VaultError) -> Self {
        match error {
            tessera_vault::VaultError::Store(error) => AppError::Store(error),
            other => AppError::Vault(other),
        }
    }
}

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Author {
    Customer,
    Support,
}

impl Author {
    pub fn as_str(self) -> &'static str {
        match self {
            Author::Customer => "customer",
            Author::Support => "support",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub order_id: Option<Uuid>,
    pub subject: String,
    pub status: TicketStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketMessage {
    pub id: Uuid,
    pub author: String,
    pub body: String,
    pub at: Timestamp,
}

/// Ticket subjects, messages and attachments are what customers write about themselves: they
/// are stored and announced sealed with the customer's data key, so an erasure (shredding that
/// key) leaves nothing of them that opens, in the tables, the outbox, the object store or a
/// backup.
#[derive(Clone, Debug)]
pub struct Support {
    store: Store,
    vault: Arc<dyn tessera_vault::Sealer>,
    attachments: AttachmentStore,
    limits: AttachmentLimits,
    uploads: UploadSlots,
    ids: Arc<dyn IdGen>,
    clock: Arc<HybridClock>,
    retention: crate::retention::RetentionSettings,
}

fn corrupt(error: impl std::fmt::Display) -> AppError {
    AppError::Corrupt(error.to_string())
}

fn micros(at: Timestamp) -> i64 {
    i64::try_from(at.as_micros()).unwrap_or(i64::MAX)
}

fn timestamp(row: &Row, column: &str) -> Result<Timestamp, AppError> {
    Ok(Timestamp::from_micros(u64::try_from(row.int(column)?).map_err(corrupt)?))
}

const TICKET_COLUMNS: &str = "id, customer_id, order_id, subject, status, created_at, updated_at";

fn ticket_from_row(row: &Row) -> Result<Ticket, AppError> {
    Ok(Ticket {
        id: row.text("id")?.parse().map_err(corrupt)?,
        customer_id: row.text("customer_id")?.parse().map_err(corrupt)?,
        order_id: row.opt_text("order_id")?.map(str::parse).transpose().map_err(corrupt)?,
        subject: row.text("subject")?.to_owned(),
        status: TicketStatus::parse(row.text("status")?).ok_or_else(|| corrupt("unknown ticket status"))?,
        created_at: timestamp(row, "created_at")?,
        updated_at: timestamp(row, "updated_at")?,
    })
}

const REPLICA_COLUMNS: &str =
    "order_id, customer_id, status, reason, total, currency, item_count, source_version";

fn replica_from_row(row: &Row) -> Result<OrderReplica, AppError> {
    let total = match (row.get("total")?, row.opt_text("currency")?) {
        (SqlValue::Int(amount), Some(currency)) => {
            Some(Money::new(*amount, Currency::parse(currency).map_err(corrupt)?).map_err(corrupt)?)
        }
        _ => None,
    };
    Ok(OrderReplica {
        order_id: row.text("order_id")?.parse().map_err(corrupt)?,
        customer_id: row.text("customer_id")?.parse().map_err(corrupt)?,
        status: row.text("status")?.to_owned(),
        reason: row.opt_text("reason")?.map(str::to_owned),
        total,
        item_count: match row.get("item_count")? {
            SqlValue::Int(n) => Some(*n),
            _ => None,
        },
        source_version: u64::try_from(row.int("source_version")?).map_err(corrupt)?,
    })
}

/// What an order event means for the replica; `None` for events it does not track.
fn update_from(message: &Envelope) -> Result<Option<ReplicaUpdate>, serde_json::Error> {
    let payload = message.payload.clone();
    let update = match message.name.as_str() {
        OrderPlaced::NAME => {
            let e: OrderPlaced = serde_json::from_value(payload)?;
            let items = e.lines.iter().map(|l| i64::from(l.quantity.get())).sum();
            ReplicaUpdate {
                order_id: e.order_id,
                customer_id: e.customer_id,
                status: "pending".into(),
                reason: None,
                total: None,
                item_count: Some(items),
                source_version: e.version,
            }
        }
        OrderConfirmed::NAME => {
            let e: OrderConfirmed = serde_json::from_value(payload)?;
            let items = e.lines.iter().map(|l| i64::from(l.quantity.get())).sum();
            ReplicaUpdate {
                order_id: e.order_id,
                customer_id: e.customer_id,
                status: "confirmed".into(),
                reason: None,
                total: Some(e.total),
                item_count: Some(items),
                source_version: e.version,
            }
        }
        OrderRejected::NAME => {
            let e: OrderRejected = serde_json::from_value(payload)?;
            let reason = serde_json::to_value(e.reason)?.as_str().map(str::to_owned);
            ReplicaUpdate {
                order_id: e.order_id,
                customer_id: e.customer_id,
                status: "rejected".into(),
                reason,
                total: None,
                item_count: None,
                source_version: e.version,
            }
        }
        OrderCancelled::NAME => {
            let e: OrderCancelled = serde_json::from_value(payload)?;
            ReplicaUpdate {
                order_id: e.order_id,
                customer_id: e.customer_id,
                status: "cancelled".into(),
                reason: None,
                total: Some(e.refunded),
                item_count: None,
                source_version: e.version,
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(update))
}

impl Support {
    pub fn new(
        store: Store,
        vault: Arc<dyn tessera_vault::Sealer>,
        attachments: AttachmentStore,
        ids: Arc<dyn IdGen>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let limits = AttachmentLimits::default();
        let uploads = UploadSlots::new(&limits);
        Self {
            store,
            vault,
            attachments,
            limits,
            uploads,
            ids,
            clock: Arc::new(HybridClock::new(clock)),
            retention: crate::retention::RetentionSettings::default(),
        }
    }

    /// With `limits` on attachments instead of the defaults.
    pub fn with_attachment_limits(mut self, limits: AttachmentLimits) -> Self {
        self.uploads = UploadSlots::new(&limits);
        self.limits = limits;
        self
    }

    /// `text` of the declared `field` sealed with the customer's key (refused if the field is
    /// not declared sealed: the data map says what happens here).
    async fn seal(&self, field: &PersonalField, customer: Uuid, text: &str) -> Result<String, AppError> {
        Ok(self.vault.seal_field(field, &customer.to_string(), text).await?)
    }

    /// A stored text opened: `[erased]` once the customer's key is shredded; text written
    /// before sealing (or blanked by an erasure) as it is.
    async fn open_text(&self, customer: Uuid, text: &str) -> Result<String, AppError> {
        let opened = self.vault.open(&customer.to_string(), text).await?;
        Ok(opened.unwrap_or_else(|| tessera_vault::ERASED.to_owned()))
    }

    async fn opened(&self, mut ticket: Ticket) -> Result<Ticket, AppError> {
        ticket.subject = self.open_text(ticket.customer_id, &ticket.subject).await?;
        Ok(ticket)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn now(&self) -> i64 {
        micros(self.clock.now().wall())
    }

    /// `message` in its envelope, stamped with this service's ids and clock.
    fn build<M: Message>(&self, envelope: EnvelopeBuilder<'_, M>) -> Result<Envelope, AppError> {
        envelope.build(&*self.ids, self.clock.now()).map_err(corrupt)
    }

    /// Opens a ticket with its first message.
    pub async fn open(
        &self,
        customer_id: Uuid,
        order_id: Option<Uuid>,
        subject: &str,
        message: &str,
        actor: &Actor,
    ) -> Result<Uuid, AppError> {
        check_subject(subject)?;
        check_message(message)?;
        let id = Uuid::now_v7();
        let now = self.now();
        let sealed_subject = self.seal(&personal_data::TICKET_SUBJECT, customer_id, subject.trim()).await?;
        let sealed_message = self.seal(&personal_data::TICKET_MESSAGE, customer_id, message).await?;
        let mut unit = self.store.begin();
        unit.execute(
            Statement::new(format!(
                "INSERT INTO tickets ({TICKET_COLUMNS}) VALUES ($1, $2, $3, $4, 'open', $5, $5)"
            ))
            .bind(id.to_string())
            .bind(customer_id.to_string())
            .bind(order_id.map(|o| o.to_string()))
            .bind(sealed_subject.as_str())
            .bind(now),
        );
        self.add_message(&mut unit, id, Author::Customer, &sealed_message, now);
        let opened = TicketOpened { ticket_id: id, customer_id, order_id, subject: Personal(sealed_subject) };
        unit.send(&self.build(envelope(&opened, crate::SERVICE, id).about(SubjectId::from(customer_id)))?)?;
        unit.audit(actor.audit("ticket.open", format!("ticket/{id}"), "ok", self.clock.now().wall()));
        unit.commit().await?;
        Ok(id)
    }

    /// `sealed_body` is already sealed with the ticket's customer's key.
    fn add_message(&self, unit: &mut UnitOfWork, ticket: Uuid, author: Author, sealed_body: &str, now: i64) {
        // Only while the ticket is open: the guard sits in the insert itself.
        unit.execute(
            Statement::new(
                "INSERT INTO ticket_messages (id, ticket_id, author, body, at)
                 SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM tickets WHERE id = $2 AND status = 'open')",
            )
            .bind(Uuid::now_v7().to_string())
            .bind(ticket.to_string())
            .bind(author.as_str())
            .bind(sealed_body)
            .bind(now)
            .expect_rows(1, "ticket_closed"),
        );
        unit.execute(
            Statement::new("UPDATE tickets SET updated_at = $2 WHERE id = $1")
                .bind(ticket.to_string())
                .bind(now),
        );
    }

    /// Adds a message to an open ticket.
    pub async fn reply(
        &self,
        ticket: Uuid,
        author: Author,
        body: &str,
        actor: &Actor,
    ) -> Result<(), AppError> {
        check_message(body)?;
        let found = self.ticket(ticket).await?.ok_or(AppError::UnknownTicket(ticket))?;
        let sealed = self.seal(&personal_data::TICKET_MESSAGE, found.customer_id, body).await?;
        let mut unit = self.store.begin();
        self.add_message(&mut unit, ticket, author, &sealed, self.now());
        unit.audit(actor.audit("ticket.reply", format!("ticket/{ticket}"), "ok", self.clock.now().wall()));
        match unit.commit().await {
            Ok(_) => Ok(()),
            Err(StoreError::Rejected { .. }) => Err(TicketError::Closed.into()),
            Err(error) => Err(error.into()),
        }
    }

    /// Notes on the audit trail that `actor` read a ticket's texts (personal data).
    pub async fn audit_read(&self, ticket: Uuid, actor: &Actor) -> Result<(), AppError> {
        let mut unit = self.store.begin();
        unit.audit(actor.audit("ticket.read", format!("ticket/{ticket}"), "ok", self.clock.now().wall()));
        unit.commit().await?;
        Ok(())
    }

    /// Closes an open ticket.
    pub async fn close(&self, ticket: Uuid, actor: &Actor) -> Result<(), AppError> {
        let found = self.ticket(ticket).await?.ok_or(AppError::UnknownTicket(ticket))?;
        let mut unit = self.store.begin();
        unit.execute(
            Statement::new(
                "UPDATE tickets SET status = 'closed', updated_at = $2, closed_at = $2
                 WHERE id = $1 AND status = 'open'",
            )
            .bind(ticket.to_string())
            .bind(self.now())
            .expect_rows(1, "ticket_closed"),
        );
        let closed = TicketClosed { ticket_id: ticket, customer_id: found.customer_id };
        let closed = envelope(&closed, crate::SERVICE, ticket).about(SubjectId::from(found.customer_id));
        unit.send(&self.build(closed)?)?;
        unit.audit(actor.audit("ticket.close", format!("ticket/{ticket}"), "ok", self.clock.now().wall()));
        match unit.commit().await {
            Ok(_) => Ok(()),
            Err(StoreError::Rejected { .. }) => Err(TicketError::Closed.into()),
            Err(error) => Err(error.into()),
        }
    }

    pub async fn ticket(&self, id: Uuid) -> Result<Option<Ticket>, AppError> {
        let rows = self
            .store
            .query(
                Statement::new(format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE id = $1"))
                    .bind(id.to_string()),
            )
            .await?;
        match rows.first().map(ticket_from_row).transpose()? {
            Some(ticket) => Ok(Some(self.opened(ticket).await?)),
            None => Ok(None),
        }
    }

    pub async fn messages(&self, ticket: Uuid) -> Result<Vec<TicketMessage>, AppError> {
        let rows = self
            .store
            .query(
                Statement::new(
                    "SELECT m.id, m.author, m.body, m.at, t.customer_id FROM ticket_messages m
                     JOIN tickets t ON t.id = m.ticket_id WHERE m.ticket_id = $1 ORDER BY m.id",
                )
                .bind(ticket.to_string()),
            )
            .await?;
        let mut messages = Vec::with_capacity(rows.len());
        for row in &rows {
            let customer: Uuid = row.text("customer_id")?.parse().map_err(corrupt)?;
            messages.push(TicketMessage {
                id: row.text("id")?.parse().map_err(corrupt)?,
                author: row.text("author")?.to_owned(),
                body: self.open_text(customer, row.text("body")?).await?,
                at: timestamp(row, "at")?,
            });
        }
        Ok(messages)
    }

    /// Tickets, newest first, optionally of one customer and one status, older than `before`.
    pub async fn tickets(
        &self,
        customer: Option<Uuid>,
        status: Option<TicketStatus>,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Ticket>, AppError> {
        let rows = self
            .store
            .query(
                Statement::new(format!(
                    "SELECT {TICKET_COLUMNS} FROM tickets
                     WHERE ($1 = '' OR customer_id = $1) AND ($2 = '' OR status = $2) AND ($3 = '' OR id < $3)
                     ORDER BY id DESC LIMIT $4"
                ))
                .bind(customer.map(|c| c.to_string()).unwrap_or_default())
                .bind(status.map(TicketStatus::as_str).unwrap_or_default())
                .bind(before.map(|b| b.to_string()).unwrap_or_default())
                .bind(i64::from(limit)),
            )
            .await?;
        let mut tickets = Vec::with_capacity(rows.len());
        for row in &rows {
            tickets.push(self.opened(ticket_from_row(row)?).await?);
        }
        Ok(tickets)
    }

    /// Support's copy of an order's summary, if it has heard of the order.
    pub async fn replica(&self, order_id: Uuid) -> Result<Option<OrderReplica>, AppError> {
        let rows = self
            .store
            .query(
                Statement::new(format!("SELECT {REPLICA_COLUMNS} FROM order_replicas WHERE order_id = $1"))
                    .bind(order_id.to_string()),
            )
            .await?;
        rows.first().map(replica_from_row).transpose()
    }

    /// Every replica, in order id order (for comparisons and rebuild checks).
    pub async fn replicas(&self) -> Result<Vec<OrderReplica>, AppError> {
        let rows = self
            .store
            .query(Statement::new(format!("SELECT {REPLICA_COLUMNS} FROM order_replicas ORDER BY order_id")))
            .await?;
        rows.iter().map(replica_from_row).collect()
    }
}

#[async_trait]
impl Handler for Support {
    /// Only the orders' public events, which the replica follows.
    fn wants(&self, message: &Envelope) -> bool {
        matches!(
            message.name.as_str(),
            OrderPlaced::NAME | OrderConfirmed::NAME | OrderRejected::NAME | OrderCancelled::NAME
        )
    }

    /// The merge of `OrderReplica::merge`, done by the database in the upsert itself, so two
    /// messages about one order applied at the same moment (a dead-letter retry beside the
    /// lanes, say) cannot overwrite each other's knowledge.
    async fn handle(&self, message: &Envelope, unit: &mut UnitOfWork) -> Result<(), HandlerError> {
        let Some(update) =
            update_from(message).map_err(|e| HandlerError::malformed(format!("{}: {e}", message.name)))?
        else {
            return Ok(());
        };
        let incoming = OrderReplica::from_update(update);
        let newer = "(excluded.source_version > order_replicas.source_version
                      OR (excluded.source_version = order_replicas.source_version AND excluded.status > order_replicas.status))";
        unit.execute(
            Statement::new(format!(
                "INSERT INTO order_replicas ({REPLICA_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (order_id) DO UPDATE SET
                   status = CASE WHEN {newer} THEN excluded.status ELSE order_replicas.status END,
                   reason = CASE WHEN {newer} THEN excluded.reason ELSE order_replicas.reason END,
                   source_version = CASE WHEN {newer} THEN excluded.source_version ELSE order_replicas.source_version END,
                   total = COALESCE(order_replicas.total, excluded.total),
                   currency = COALESCE(order_replicas.currency, excluded.currency),
                   item_count = COALESCE(order_replicas.item_count, excluded.item_count)"
            ))
            .bind(incoming.order_id.to_string())
            .bind(incoming.customer_id.to_string())
            .bind(incoming.status.as_str())
            .bind(incoming.reason.clone())
            .bind(incoming.total.as_ref().map(|t| t.amount))
            .bind(incoming.total.as_ref().map(|t| String::from(t.currency.clone())))
            .bind(incoming.item_count)
            .bind(i64::try_from(incoming.source_version).unwrap_or(i64::MAX)),
        );
        Ok(())
    }
}
