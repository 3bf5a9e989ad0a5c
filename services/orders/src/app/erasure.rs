//! Orders' part of a customer's erasure. The customers service announces `CustomerErased`;
//! orders answers `ErasureDone` and changes nothing. An order names its customer only by id,
//! and its stream, summaries and public events hold no name, email or address: what an order
//! says (lines, prices, totals, status) is the shop's business record. The card it was paid
//! with appears as a token and its last four digits; the token dies with the customer's
//! payment methods at the payments service.
//!
//! The handler runs in the subscriber's unit of work, which also records the message in the
//! inbox: the audit record and the answer commit together, once.

use async_trait::async_trait;
use tessera_bus::{Handler, HandlerError};
use tessera_contracts::Message;
use tessera_contracts::customers::{CustomerErased, ErasureDone};
use tessera_kernel::{Envelope, MessageKind, SubjectId};
use tessera_store::UnitOfWork;
use tessera_web::token::Actor;

use crate::Orders;

/// The handler of the customers service's messages. Only `CustomerErased` concerns orders;
/// every other message is acknowledged and ignored. It is a handler of its own, apart from
/// the one for inventory's and payments' replies, so the two never see each other's messages.
#[derive(Clone, Debug)]
pub struct Erasures {
    orders: Orders,
}

impl Erasures {
    pub fn new(orders: Orders) -> Self {
        Self { orders }
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
        // for an operator, so the erasure is never reported done on a message nobody read.
        let erased: CustomerErased = serde_json::from_value(message.payload.clone())
            .map_err(|e| HandlerError::malformed(format!("{}: {e}", CustomerErased::NAME)))?;
        let inner = &self.orders.inner;
        // Done by the system, on the customers service's word.
        let actor = Actor::system(&message.source);
        let resource = format!("customer/{}", erased.customer_id);
        unit.audit(actor.audit("customer.erase", resource, "ok", inner.clock.now().wall()));
        let done = ErasureDone {
            customer_id: erased.customer_id,
            erasure_id: erased.erasure_id,
            service: crate::SERVICE.to_owned(),
        };
        let envelope = Envelope::new(
            &*inner.ids,
            MessageKind::Event,
            ErasureDone::NAME,
            crate::SERVICE,
            // Keyed by the customer: the customers service orders its progress by them.
            done.customer_id.to_string(),
            inner.clock.now(),
            serde_json::to_value(&done)?,
        )
        .with_version(ErasureDone::VERSION)
        .about(SubjectId::from(done.customer_id))
        .caused_by(message);
        unit.send(&envelope)?;
        tracing::info!(erasure_id = %erased.erasure_id, "erasure acknowledged; orders hold nothing personal");
        Ok(())
    }
}
