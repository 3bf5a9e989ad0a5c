//! Messages owned by the payments service. No message ever carries a card number or CVC:
//! cards travel as tokens.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Money, message};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuthorisePayment {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub payment_token: String,
    pub amount: Money,
}
message!(AuthorisePayment, "payments.AuthorisePayment", 1, Command);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VoidPayment {
    pub order_id: Uuid,
}
message!(VoidPayment, "payments.VoidPayment", 1, Command);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CapturePayment {
    pub order_id: Uuid,
    pub amount: Money,
}
message!(CapturePayment, "payments.CapturePayment", 1, Command);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RefundPayment {
    pub order_id: Uuid,
    pub amount: Money,
}
message!(RefundPayment, "payments.RefundPayment", 1, Command);

/// The payment an authorisation made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuthorisedPayment {
    pub payment_id: Uuid,
    pub last4: String,
}

/// The data of a successful `AuthorisePayment` saga reply (merged into the saga's data).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuthorisePaymentReply {
    pub payment: AuthorisedPayment,
}

/// Why a card was refused; the reason an order is rejected with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeclineReason {
    CardDeclined,
    InsufficientFunds,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentAuthorised {
    pub order_id: Uuid,
    pub payment_id: Uuid,
    pub amount: Money,
    pub last4: String,
}
message!(PaymentAuthorised, "payments.PaymentAuthorised", 1, Event);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentDeclined {
    pub order_id: Uuid,
    pub reason: DeclineReason,
}
message!(PaymentDeclined, "payments.PaymentDeclined", 1, Event);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentCaptured {
    pub order_id: Uuid,
    pub payment_id: Uuid,
    pub amount: Money,
}
message!(PaymentCaptured, "payments.PaymentCaptured", 1, Event);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentRefunded {
    pub order_id: Uuid,
    pub payment_id: Uuid,
    pub amount: Money,
}
message!(PaymentRefunded, "payments.PaymentRefunded", 1, Event);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::round_trip;

    #[test]
    fn payment_messages_round_trip() {
        let (order_id, id) = (Uuid::now_v7(), Uuid::now_v7());
        let amount = Money::eur(4200).expect("money");
        round_trip(&AuthorisePayment {
            order_id,
            customer_id: id,
            payment_token: "tok_1".into(),
            amount: amount.clone(),
        });
        round_trip(&VoidPayment { order_id });
        round_trip(&CapturePayment { order_id, amount: amount.clone() });
        round_trip(&RefundPayment { order_id, amount: amount.clone() });
        round_trip(&PaymentAuthorised {
            order_id,
            payment_id: id,
            amount: amount.clone(),
            last4: "4242".into(),
        });
        round_trip(&PaymentDeclined { order_id, reason: DeclineReason::InsufficientFunds });
        round_trip(&PaymentCaptured { order_id, payment_id: id, amount: amount.clone() });
        round_trip(&PaymentRefunded { order_id, payment_id: id, amount });
        assert_eq!(serde_json::to_value(DeclineReason::CardDeclined).expect("json"), "card_declined");
    }
}
