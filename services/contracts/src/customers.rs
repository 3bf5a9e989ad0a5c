//! Messages owned by the customers service. Every field about the person is [`Personal`], so
//! the privacy layer can find it; no message ever carries a password or its hash.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tessera_kernel::{Envelope, SubjectId};
use uuid::Uuid;

use crate::envelope::{EnvelopeBuilder, envelope};
use crate::{Personal, message};

/// A postal address, as customers give it and as their events carry it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 200,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub line1: String,
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 100,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub city: String,
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 20,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, e.g. `DE`.
    #[cfg_attr(feature = "openapi", schema(schema_with = country_code_schema))]
    pub country: String,
}

/// An address's `country`: the officially assigned ISO 3166-1 alpha-2 codes, sorted (for the binary search).
pub const COUNTRY_CODES: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ", //
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS", "BT",
    "BV", "BW", "BY", "BZ", //
    "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN", "CO", "CR", "CU", "CV", "CW", "CX",
    "CY", "CZ", //
    "DE", "DJ", "DK", "DM", "DO", "DZ", //
    "EC", "EE", "EG", "EH", "ER", "ES", "ET", //
    "FI", "FJ", "FK", "FM", "FO", "FR", //
    "GA", "GB", "GD", "GE", "GF", "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU",
    "GW", "GY", //
    "HK", "HM", "HN", "HR", "HT", "HU", //
    "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", //
    "JE", "JM", "JO", "JP", //
    "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", //
    "LA", "LB", "LC", "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", //
    "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK", "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT",
    "MU", "MV", "MW", "MX", "MY", "MZ", //
    "NA", "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", //
    "OM", //
    "PA", "PE", "PF", "PG", "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", //
    "QA", //
    "RE", "RO", "RS", "RU", "RW", //
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS", "ST",
    "SV", "SX", "SY", "SZ", //
    "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO", "TR", "TT", "TV", "TW", "TZ", //
    "UA", "UG", "UM", "US", "UY", "UZ", //
    "VA", "VC", "VE", "VG", "VI", "VN", "VU", //
    "WF", "WS", //
    "YE", "YT", //
    "ZA", "ZM", "ZW",
];

/// The document's `country`: one of [`COUNTRY_CODES`], so that what a client generator
/// accepts is what the service accepts.
#[cfg(feature = "openapi")]
fn country_code_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(COUNTRY_CODES))
        .build()
}

/// Someone registered as a customer; `version` is the profile's first version (1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CustomerErased {
    pub customer_id: Uuid,
    pub erasure_id: Uuid,
}
message!(CustomerErased, "customers.CustomerErased", 1, Event);

/// A service finished its part of an erasure. Each service that holds anything about customers
/// (orders, payments, support) publishes it from its own outbox; customers keeps the progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErasureDone {
    pub customer_id: Uuid,
    pub erasure_id: Uuid,
    /// The service that finished: `orders`, `payments` or `support`.
    pub service: String,
}
message!(ErasureDone, "privacy.ErasureDone", 1, Event);

impl CustomerErased {
    /// `service`'s answer to this erasure: its part is done.
    pub fn done_by(&self, service: &str) -> ErasureDone {
        ErasureDone {
            customer_id: self.customer_id,
            erasure_id: self.erasure_id,
            service: service.to_owned(),
        }
    }
}

impl ErasureDone {
    /// This answer in its envelope, sent by the service that finished and caused by `request`,
    /// the `CustomerErased` it answers. Keyed by the customer, since the customers service
    /// orders its progress by them, and about them.
    pub fn answering<'a>(&'a self, request: &'a Envelope) -> EnvelopeBuilder<'a, Self> {
        envelope(self, &self.service, self.customer_id)
            .about(SubjectId::from(self.customer_id))
            .caused_by(Some(request))
    }
}

/// The services whose [`ErasureDone`] an erasure waits for, besides customers itself.
pub const ERASURE_PARTICIPANTS: [&str; 3] = ["orders", "payments", "support"];

/// The personal fields of a customer's profile, declared here, beside the messages that carry
/// them, because two services act on the declarations: customers seals what they say is
/// sealed, and the gateway masks for support what they say is masked.
pub mod profile {
    use tessera_kernel::personal::{DataClass, Location, Mask, PersonalField, Protection, Retention};

    /// The route that answers a profile, where support sees it masked.
    pub const ROUTE: &str = "GET /customers/{id}";
    const PURPOSE: &str = "delivering orders and reaching the customer about them";

    pub const EMAIL: PersonalField = PersonalField {
        service: "customers",
        field: "email",
        class: DataClass::Contact,
        protection: &[Protection::Sealed, Protection::MaskedForSupport(Mask::Email)],
        retention: Retention::UntilErasure,
        purpose: "signing in, and reaching the customer about their orders",
        locations: &[
            Location::Column { table: "customers", column: "email" },
            Location::Message { name: "customers.CustomerRegistered", field: "email" },
            Location::Response { route: ROUTE, field: "email" },
        ],
    };

    pub const NAME: PersonalField = PersonalField {
        service: "customers",
        field: "name",
        class: DataClass::Identifier,
        protection: &[Protection::Sealed],
        retention: Retention::UntilErasure,
        purpose: PURPOSE,
        locations: &[
            Location::Column { table: "customers", column: "name" },
            Location::Message { name: "customers.CustomerRegistered", field: "name" },
            Location::Message { name: "customers.CustomerUpdated", field: "name" },
            Location::Response { route: ROUTE, field: "name" },
        ],
    };

    /// One part of the postal address: sealed, and masked for support as `protection` says.
    macro_rules! address_part {
        ($field:literal, $column:literal, $protection:expr) => {
            PersonalField {
                service: "customers",
                field: $field,
                class: DataClass::Address,
                protection: $protection,
                retention: Retention::UntilErasure,
                purpose: PURPOSE,
                locations: &[
                    Location::Column { table: "customers", column: $column },
                    Location::Message {
                        name: "customers.CustomerRegistered",
                        field: concat!("address.", $column),
                    },
                    Location::Message {
                        name: "customers.CustomerUpdated",
                        field: concat!("address.", $column),
                    },
                    Location::Response { route: ROUTE, field: concat!("address.", $column) },
                ],
            }
        };
    }

    const MASKED: &[Protection] = &[Protection::Sealed, Protection::MaskedForSupport(Mask::Hidden)];
    pub const ADDRESS_LINE1: PersonalField = address_part!("address line", "line1", MASKED);
    pub const CITY: PersonalField = address_part!("city", "city", MASKED);
    pub const POSTAL_CODE: PersonalField = address_part!("postal code", "postal_code", MASKED);
    /// Support sees the country: it tells them which market's rules apply.
    pub const COUNTRY: PersonalField = address_part!("country", "country", &[Protection::Sealed]);

    /// Every declared field of a profile.
    pub const FIELDS: [PersonalField; 6] = [EMAIL, NAME, ADDRESS_LINE1, CITY, POSTAL_CODE, COUNTRY];
}

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
    fn an_erasure_is_answered_by_the_service_keyed_by_and_about_the_customer() {
        use tessera_kernel::{HlcTimestamp, MessageKind, UuidV7Gen};

        use crate::message::Message;

        let erased = CustomerErased { customer_id: Uuid::now_v7(), erasure_id: Uuid::now_v7() };
        let request = envelope(&erased, "customers", erased.customer_id)
            .build(&UuidV7Gen, HlcTimestamp::default())
            .expect("an envelope");
        let done = erased.done_by("support");
        assert_eq!(
            (done.customer_id, done.erasure_id, done.service.as_str()),
            (erased.customer_id, erased.erasure_id, "support")
        );
        let answer =
            done.answering(&request).build(&UuidV7Gen, HlcTimestamp::default()).expect("an envelope");
        assert_eq!(
            (answer.name.as_str(), answer.kind, answer.source.as_str()),
            (ErasureDone::NAME, MessageKind::Event, "support")
        );
        assert_eq!(answer.key, erased.customer_id.to_string());
        assert_eq!(answer.subject, Some(SubjectId::from(erased.customer_id)));
        assert_eq!((answer.causation_id, answer.correlation_id), (Some(request.id), request.correlation_id));
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
