//! Messages owned by the support service.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Personal, message};

/// A customer opened a ticket, optionally about one of their orders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TicketOpened {
    pub ticket_id: Uuid,
    pub customer_id: Uuid,
    pub order_id: Option<Uuid>,
    pub subject: Personal<String>,
}
message!(TicketOpened, "support.TicketOpened", 1, Event);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TicketClosed {
    pub ticket_id: Uuid,
    pub customer_id: Uuid,
}
message!(TicketClosed, "support.TicketClosed", 1, Event);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::round_trip;

    #[test]
    fn support_messages_round_trip() {
        let (ticket_id, customer_id) = (Uuid::now_v7(), Uuid::now_v7());
        round_trip(&TicketOpened {
            ticket_id,
            customer_id,
            order_id: Some(Uuid::now_v7()),
            subject: Personal("Where is my tea?".into()),
        });
        round_trip(&TicketClosed { ticket_id, customer_id });
    }
}
