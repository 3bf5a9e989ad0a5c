//! The bodies of the requests a client sends through the gateway to a service. One type each:
//! the gateway parses a client's body as it, sets the fields that belong to the caller (whose
//! card, whose ticket, which idempotency key, which market) and passes it on; the service
//! parses the same type. A client may leave `customer_id` out, or send its own.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::OrderLine;

/// A card to tokenise. Deliberately without a derived `Debug`: a stray log line cannot print
/// the card's number or its CVC.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCard {
    /// The customer the token will belong to (the gateway sets it from the caller's token).
    #[serde(default)]
    pub customer_id: Option<Uuid>,
    /// 13 to 19 digits that pass the Luhn check.
    #[cfg_attr(feature = "openapi", schema(example = "4242424242424242", pattern = "^[0-9]{13,19}$"))]
    pub card_number: String,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 12))]
    #[serde(deserialize_with = "crate::whole_number")]
    pub exp_month: u32,
    /// `YY` (read as 20YY) or `YYYY`.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 9999))]
    #[serde(deserialize_with = "crate::whole_number")]
    pub exp_year: u32,
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9]{3,4}$"))]
    pub cvc: String,
}

impl std::fmt::Debug for NewCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCard").field("customer_id", &self.customer_id).finish_non_exhaustive()
    }
}

/// A support ticket with its first message.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTicket {
    /// The customer opening it (the gateway sets it from the caller's token).
    #[serde(default)]
    pub customer_id: Option<Uuid>,
    #[serde(default)]
    pub order_id: Option<Uuid>,
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200, pattern = r"\S"))]
    pub subject: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 5000, pattern = r"\S"))]
    pub message: String,
}

/// Who wrote a ticket's message: the ticket's customer or support.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageAuthor {
    Customer,
    Support,
}

/// A message added to a ticket.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    /// Set by the gateway from the caller's role; a client sends only the message.
    #[serde(default)]
    pub author: Option<MessageAuthor>,
    pub message: String,
}

/// An order to place.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    /// The customer placing the order (the gateway sets it from the caller's token).
    #[serde(default)]
    pub customer_id: Option<Uuid>,
    pub items: Vec<OrderLine>,
    pub payment_token: String,
    /// The client's idempotency key: the gateway passes `Idempotency-Key` here. The same key
    /// for the same customer answers with the first order and places nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_key: Option<String>,
    /// The SHA-256 of the client's body, in hex, as the gateway received it (the gateway sets
    /// it): the same key with another body is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_hash: Option<String>,
    /// The market of the sale, ISO 3166-1 alpha-2 (the gateway sets it from the customer's
    /// address), for the sales analytics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(example = "GB"))]
    pub country: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_never_prints_its_number_or_cvc() {
        let card: NewCard = serde_json::from_value(serde_json::json!({
            "card_number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}))
        .expect("a card");
        let printed = format!("{card:?}");
        assert!(!printed.contains("4242") && !printed.contains("123"), "{printed}");
    }

    #[test]
    fn a_client_may_leave_out_what_the_gateway_sets_and_nothing_else_is_accepted() {
        let order: NewOrder = serde_json::from_value(serde_json::json!({
            "items": [{"sku": "TEA-001", "quantity": 2}], "payment_token": "tok_1"}))
        .expect("an order without customer_id");
        assert_eq!(order.customer_id, None);
        let written = serde_json::to_value(&order).expect("json");
        assert!(written.get("request_key").is_none(), "{written}");
        let unknown = serde_json::from_value::<NewTicket>(serde_json::json!({
            "subject": "s", "message": "m", "priority": "high"}));
        assert!(unknown.is_err());
        let message: NewMessage =
            serde_json::from_value(serde_json::json!({"author": "support", "message": "hi"}))
                .expect("a message");
        assert_eq!(message.author, Some(MessageAuthor::Support));
    }
}
