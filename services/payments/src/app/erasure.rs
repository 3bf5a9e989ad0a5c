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
use tessera_bus::{Answer, HandlerError};
use tessera_contracts::Message;
use tessera_contracts::customers::CustomerErased;
use tessera_kernel::Envelope;
use tessera_store::{Statement, UnitOfWork};
use tessera_web::token::Actor;

use crate::Payments;

/// Payments' answer to `CustomerErased`, subscribed to the customers service's messages as
/// `tessera_bus::Answering::new(Erasures::new(..))`: every other message is acknowledged and
/// ignored.
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
impl Answer for Erasures {
    const REQUEST: &'static str = CustomerErased::NAME;
    type Request = CustomerErased;

    async fn answer(
        &self,
        erased: CustomerErased,
        message: &Envelope,
        unit: &mut UnitOfWork,
    ) -> Result<Envelope, HandlerError> {
        let payments = &self.payments;
        unit.execute(
            Statement::new("DELETE FROM payment_methods WHERE customer_id = $1")
                .bind(erased.customer_id.to_string()),
        );
        // Done by the system, on the customers service's word.
        let actor = Actor::system(&message.source);
        let resource = format!("customer/{}", erased.customer_id);
        unit.audit(actor.audit("customer.erase", resource, "ok", payments.clock.now().wall()));
        tracing::info!(erasure_id = %erased.erasure_id, "customer's payment methods deleted");
        Ok(erased.done_by(crate::SERVICE).answering(message).build(&*payments.ids, payments.clock.now())?)
    }
}
