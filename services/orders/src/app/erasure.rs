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
use tessera_bus::{Answer, HandlerError};
use tessera_contracts::Message;
use tessera_contracts::customers::CustomerErased;
use tessera_kernel::Envelope;
use tessera_store::UnitOfWork;
use tessera_web::token::Actor;

use crate::Orders;

/// Orders' answer to `CustomerErased`, subscribed to the customers service's messages as
/// `tessera_bus::Answering::new(Erasures::new(..))`: every other message is acknowledged and
/// ignored. It is a handler of its own, apart from the one for inventory's and payments'
/// replies, so the two never see each other's messages.
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
impl Answer for Erasures {
    const REQUEST: &'static str = CustomerErased::NAME;
    type Request = CustomerErased;

    async fn answer(
        &self,
        erased: CustomerErased,
        message: &Envelope,
        unit: &mut UnitOfWork,
    ) -> Result<Envelope, HandlerError> {
        let inner = &self.orders.inner;
        // Done by the system, on the customers service's word.
        let actor = Actor::system(&message.source);
        let resource = format!("customer/{}", erased.customer_id);
        unit.audit(actor.audit("customer.erase", resource, "ok", inner.clock.now().wall()));
        tracing::info!(erasure_id = %erased.erasure_id, "erasure acknowledged; orders hold nothing personal");
        Ok(erased.done_by(crate::SERVICE).answering(message).build(&*inner.ids, inner.clock.now())?)
    }
}
