//! Payments' part of a customer's erasure. The customers service announces `CustomerErased`;
//! payments deletes the customer's stored payment methods (token, brand, last four digits,
//! expiry, test profile), so that no token of theirs can be charged or looked up again, and
//! answers `ErasureDone`.
//!
//! Payments, captures and refunds stay: they are the money's record, keyed by order. No
//! foreign key points at `payment_methods`; the one reader that joins it, the authorisation
//! worker, declines a request whose card is gone (see `authorise_recorded`) instead of
//! waiting for it forever.
//!
//! The handler runs in the subscriber's unit of work, which also records the message in the
//! inbox: the deletion, the audit record and the answer commit together, once.

use async_trait::async_trait;
use tessera_bus::{Handler, HandlerError};
use tessera_contracts::Message;
use tessera_contracts::customers::{CustomerErased, ErasureDone};
use tessera_kernel::{Envelope, MessageKind, SubjectId};
use tessera_store::{Statement, UnitOfWork};
use tessera_web::token::Actor;

use crate::Payments;

/// The handler of the customers service's messages. Only `CustomerErased` concerns payments;
/// every other message is acknowledged and ignored.
#[derive(Clone, Debug)]
pub struct Erasures {
    payments: Payments,
}

impl Erasures {
    pub fn new(payments: Payments) -> Self {
        Self { payments }
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
        // for an operator, never silently acknowledged with the person's cards still here.
        let erased: CustomerErased = serde_json::from_value(message.payload.clone())
            .map_err(|e| HandlerError::malformed(format!("{}: {e}", CustomerErased::NAME)))?;
        unit.execute(
            Statement::new("DELETE FROM payment_methods WHERE customer_id = $1")
                .bind(erased.customer_id.to_string()),
        );
        // Done by the system, on the customers service's word.
        let actor = Actor::system(&message.source);
        let resource = format!("customer/{}", erased.customer_id);
        unit.audit(actor.audit("customer.erase", resource, "ok", self.payments.clock.now().wall()));
        let done = ErasureDone {
            customer_id: erased.customer_id,
            erasure_id: erased.erasure_id,
            service: crate::SERVICE.to_owned(),
        };
        unit.send(&self.payments.erasure_done(message, &done)?)?;
        tracing::info!(erasure_id = %erased.erasure_id, "customer's payment methods deleted");
        Ok(())
    }
}

impl Payments {
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
