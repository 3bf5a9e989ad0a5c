//! Support's part of a customer's erasure. The customers service announces `CustomerErased`;
//! support blanks what the person wrote (each ticket's subject and every message of their
//! tickets become `[erased]`), deletes their attachments (objects and rows) and answers
//! `ErasureDone`. The tickets themselves (ids, status,
//! order links, times) stay: they are support's business record, no longer about anyone.
//!
//! The handler runs in the subscriber's unit of work, which also records the message in the
//! inbox: the redaction, the audit record and the answer commit together, once.

use async_trait::async_trait;
use tessera_bus::{Answer, HandlerError};
use tessera_contracts::Message;
use tessera_contracts::customers::CustomerErased;
use tessera_kernel::Envelope;
use tessera_store::{Statement, UnitOfWork};
use tessera_vault::ERASED;
use tessera_web::token::Actor;

use crate::Support;

/// Support's answer to `CustomerErased`, subscribed to the customers service's messages as
/// `tessera_bus::Answering::new(Erasures::new(..))`: every other message is acknowledged and
/// ignored.
#[derive(Clone, Debug)]
pub struct Erasures {
    support: Support,
}

impl Erasures {
    pub fn new(support: Support) -> Self {
        Self { support }
    }
}

#[async_trait]
impl Answer for Erasures {
    const REQUEST: &'static str = CustomerErased::NAME;
    type Request = CustomerErased;

    async fn answer(
        &self,
        erased: CustomerErased,
        message: &Envelope,
        unit: &mut UnitOfWork,
    ) -> Result<Envelope, HandlerError> {
        let support = &self.support;
        let customer = erased.customer_id.to_string();
        // The key is already shredded in the vault; this process may still hold it in its
        // cache (the distributed topology: another process shredded it).
        support.vault.evict(&customer);
        // The objects go now, before the unit commits; their rows go with the unit. A failure
        // here retries the whole message, and deleting what is already gone is fine.
        support.erase_attachments(erased.customer_id, unit).await.map_err(|e| {
            HandlerError::Transient(format!("cannot delete the customer's attachments: {e}").into())
        })?;
        unit.execute(
            Statement::new(
                "UPDATE ticket_messages SET body = $2
                 WHERE ticket_id IN (SELECT id FROM tickets WHERE customer_id = $1)",
            )
            .bind(customer.as_str())
            .bind(ERASED),
        );
        unit.execute(
            Statement::new("UPDATE tickets SET subject = $2 WHERE customer_id = $1")
                .bind(customer.as_str())
                .bind(ERASED),
        );
        // Done by the system, on the customers service's word.
        let actor = Actor::system(&message.source);
        let resource = format!("customer/{}", erased.customer_id);
        unit.audit(actor.audit("customer.erase", resource, "ok", support.clock.now().wall()));
        tracing::info!(erasure_id = %erased.erasure_id, "customer's tickets erased");
        Ok(erased.done_by(crate::SERVICE).answering(message).build(&*support.ids, support.clock.now())?)
    }
}
