//! Messages owned by the customers service. Every field about the person is [`Personal`], so
//! the privacy layer can find it; no message ever carries a password or its hash.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Personal, message};

/// A postal address, as customers give it and as their events carry it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub line1: String,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, e.g. `DE`.
    pub country: String,
}

/// Someone registered as a customer; `version` is the profile's first version (1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerRegistered {
    pub customer_id: Uuid,
    pub email: Personal<String>,
    pub name: Personal<String>,
    pub address: Personal<Address>,
    pub version: i64,
}
message!(CustomerRegistered, "customers.CustomerRegistered", 1, Event);

/// A customer's profile changed; it carries the whole new profile, not the difference, so a
/// replica can take the latest version and ignore older ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerUpdated {
    pub customer_id: Uuid,
    pub name: Personal<String>,
    pub address: Personal<Address>,
    pub version: i64,
}
message!(CustomerUpdated, "customers.CustomerUpdated", 1, Event);

/// A customer asked to be forgotten. Their data key is already shredded; every service drops
/// or redacts what it holds about them (business records stay, the person shows as
/// `[erased]`) and answers with [`ErasureDone`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerErased {
    pub customer_id: Uuid,
    pub erasure_id: Uuid,
}
message!(CustomerErased, "customers.CustomerErased", 1, Event);

/// A service finished its part of an erasure. Each service that holds anything about customers
/// (orders, payments, support) publishes it from its own outbox; customers keeps the progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureDone {
    pub customer_id: Uuid,
    pub erasure_id: Uuid,
    /// The service that finished: `orders`, `payments` or `support`.
    pub service: String,
}
message!(ErasureDone, "privacy.ErasureDone", 1, Event);

/// The services whose [`ErasureDone`] an erasure waits for, besides customers itself.
pub const ERASURE_PARTICIPANTS: [&str; 3] = ["orders", "payments", "support"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::round_trip;

    fn address() -> Address {
        Address {
            line1: "Hauptstraße 1".into(),
            city: "Berlin".into(),
            postal_code: "10115".into(),
            country: "DE".into(),
        }
    }

    #[test]
    fn customers_messages_round_trip() {
        let customer_id = Uuid::now_v7();
        round_trip(&CustomerRegistered {
            customer_id,
            email: Personal("ada@example.com".into()),
            name: Personal("Ada Lovelace".into()),
            address: Personal(address()),
            version: 1,
        });
        round_trip(&CustomerUpdated {
            customer_id,
            name: Personal("Ada King".into()),
            address: Personal(address()),
            version: 2,
        });
    }

    #[test]
    fn personal_fields_are_plain_values_on_the_wire_and_addresses_refuse_unknown_fields() {
        let json = serde_json::to_value(CustomerUpdated {
            customer_id: Uuid::nil(),
            name: Personal("Ada".into()),
            address: Personal(address()),
            version: 3,
        })
        .expect("serialise");
        assert_eq!(json["name"], "Ada");
        assert_eq!(json["address"]["country"], "DE");
        let extra =
            serde_json::json!({"line1": "x", "city": "y", "postal_code": "1", "country": "DE", "floor": 2});
        assert!(serde_json::from_value::<Address>(extra).is_err());
    }
}
