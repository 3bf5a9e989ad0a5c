//! Support's part of a customer's erasure. The customers service announces `CustomerErased`;
//! support blanks what the person wrote (each ticket's subject and every message of their
//! tickets become `[erased]`), deletes their attachments (objects and rows) and answers
//! `ErasureDone`. The tickets themselves (ids, status,
//! order links, times) stay: they are support's business record, no longer about anyone.
//!
//! The handler runs in the subscriber's unit of work, which also records the message in the
//! inbox: the redaction, the audit record and the answer commit together, once.

use async_trait::async_trait;
use tessera_bus::{Handler, HandlerError};
use tessera_contracts::Message;
use tessera_contracts::customers::{CustomerErased, ErasureDone};
use tessera_kernel::{Envelope, MessageKind, SubjectId};
use tessera_store::{Statement, UnitOfWork};
use tessera_vault::ERASED;
use tessera_web::token::Actor;

use crate::Support;

/// The handler of the customers service's messages. Only `CustomerErased` concerns support;
/// every other message is acknowledged and ignored.
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
impl Handler for Erasures {
    fn wants(&self, message: &Envelope) -> bool {
        message.name == CustomerErased::NAME
    }

    async fn handle(&self, message: &Envelope, unit: &mut UnitOfWork) -> Result<(), HandlerError> {
        if message.name != CustomerErased::NAME {
            return Ok(());
        }
        // A payload that does not parse is an error, not a skip: retried, then dead-lettered
        // for an operator, never silently acknowledged with the person's data still here.
        let erased: CustomerErased = serde_json::from_value(message.payload.clone())
            .map_err(|e| HandlerError::malformed(format!("{}: {e}", CustomerErased::NAME)))?;
        let customer = erased.customer_id.to_string();
        // The key is already shredded in the vault; this process may still hold it in its
        // cache (the distributed topology: another process shredded it).
        self.support.vault.evict(&customer);
        // The objects go now, before the unit commits; their rows go with the unit. A failure
        // here retries the whole message, and deleting what is already gone is fine.
        self.support.erase_attachments(erased.customer_id, unit).await.map_err(|e| {
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
        unit.audit(actor.audit("customer.erase", resource, "ok", self.support.clock.now().wall()));
        let done = ErasureDone {
            customer_id: erased.customer_id,
            erasure_id: erased.erasure_id,
            service: crate::SERVICE.to_owned(),
        };
        unit.send(&self.support.erasure_done(message, &done)?)?;
        tracing::info!(erasure_id = %erased.erasure_id, "customer's tickets erased");
        Ok(())
    }
}

impl Support {
    /// `ErasureDone`, keyed by the customer (the customers service orders its progress by
    /// them) and caused by the `CustomerErased` it answers.
    fn erasure_done(&self, cause: &Envelope, done: &ErasureDone) -> Result<Envelope, HandlerError> {
        Ok(Envelope::new(
            &*self.ids,
            MessageKind::Event,
            ErasureDone::NAME,
            crate::SERVICE,
            done.customer_id.to_string(),
            self.clock.now(),
            serde_json::to_value(done)?,
        )
        .with_version(ErasureDone::VERSION)
        .about(SubjectId::from(done.customer_id))
        .caused_by(cause))
    }
}
