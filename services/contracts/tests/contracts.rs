//! The contracts against their committed schemas, and the compatibility rules against test
//! copies of a contract type, each copy breaking one rule.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tessera_contracts::Kind;
use tessera_contracts::catalogue::{Contract, contracts};
use tessera_contracts::compat::{Break, Rule, compare, conforms};
use tessera_contracts::schemas::{Problem, SCHEMAS_DIR, check, write};
use tessera_contracts::upcasting::{UPCASTERS, Upcaster};
use uuid::Uuid;

fn schema<T: JsonSchema>() -> Value {
    schemars::schema_for!(T).to_value()
}

fn today(name: &str) -> Contract {
    contracts().into_iter().find(|c| c.name == name).expect("in the catalogue")
}

#[test]
fn todays_types_honour_every_committed_schema() {
    let findings = check(SCHEMAS_DIR.as_ref(), &contracts(), UPCASTERS).expect("schemas readable");
    let listed: Vec<String> = findings.iter().map(ToString::to_string).collect();
    assert!(
        listed.is_empty(),
        "run `tessera contracts check --write` after a compatible change:\n{}",
        listed.join("\n")
    );
}

#[test]
fn every_declared_message_is_in_the_catalogue() {
    let sources = [
        include_str!("../src/customers.rs"),
        include_str!("../src/inventory.rs"),
        include_str!("../src/orders.rs"),
        include_str!("../src/payments.rs"),
        include_str!("../src/support.rs"),
    ];
    let catalogue: Vec<&str> = contracts().iter().map(|c| c.name).collect();
    let mut declared = 0;
    for line in sources.iter().flat_map(|s| s.lines()).filter(|l| l.starts_with("message!(")) {
        let name = line.split('"').nth(1).expect("message!(Type, \"name\", ..)");
        assert!(catalogue.contains(&name), "{name} is declared but not in the catalogue");
        declared += 1;
    }
    assert!(declared >= 20, "found only {declared} message! declarations");
}

#[test]
fn every_sample_is_read_by_its_type_and_fits_its_schema() {
    for contract in contracts() {
        let sample = contract.sample();
        contract.accepts(sample.clone()).unwrap_or_else(|e| panic!("{}: {e}", contract.name));
        conforms(&contract.schema(), &sample).unwrap_or_else(|e| panic!("{}: {e}", contract.name));
    }
}

#[test]
fn the_conformance_model_refuses_what_the_type_refuses() {
    let schema = today("orders.OrderRejected").schema();
    let good = today("orders.OrderRejected").sample();
    assert_eq!(conforms(&schema, &good), Ok(()));
    let mut unknown_reason = good.clone();
    unknown_reason["reason"] = json!("stolen");
    assert!(conforms(&schema, &unknown_reason).is_err());
    let mut missing = good.clone();
    missing.as_object_mut().expect("object").remove("customer_id");
    assert_eq!(conforms(&schema, &missing), Err("`customer_id` is missing".into()));
    let mut negative = good;
    negative["version"] = json!(-1);
    assert!(conforms(&schema, &negative).is_err(), "version is a u64");
}

/// Copies of `orders.OrderRejected`, each changed in one way.
mod copies {
    use super::*;

    #[derive(Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum RejectionReason {
        OutOfStock,
        PaymentDeclined,
        PaymentTimeout,
        InventoryTimeout,
    }

    #[derive(Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum ReasonWithoutTimeout {
        OutOfStock,
        PaymentDeclined,
        PaymentTimeout,
    }

    #[derive(Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum ReasonWithFraud {
        OutOfStock,
        PaymentDeclined,
        PaymentTimeout,
        InventoryTimeout,
        FraudSuspected,
    }

    #[derive(Serialize, Deserialize, JsonSchema)]
    pub struct Faithful {
        pub order_id: Uuid,
        pub customer_id: Uuid,
        pub reason: RejectionReason,
        #[serde(default)]
        pub version: u64,
    }

    #[derive(Serialize, Deserialize, JsonSchema)]
    pub struct Renamed {
        pub order_id: Uuid,
        pub customer: Uuid,
        pub reason: RejectionReason,
        #[serde(default)]
        pub version: u64,
    }

    #[derive(Serialize, Deserialize, JsonSchema)]
    pub struct Retyped {
        pub order_id: Uuid,
        pub customer_id: Uuid,
        pub reason: RejectionReason,
        #[serde(default)]
        pub version: i64,
    }

    #[derive(Serialize, Deserialize, JsonSchema)]
    pub struct NewRequired {
        pub order_id: Uuid,
        pub customer_id: Uuid,
        pub reason: RejectionReason,
        #[serde(default)]
        pub version: u64,
        pub channel: String,
    }

    #[derive(Serialize, Deserialize, JsonSchema)]
    pub struct NewDefaulted {
        pub order_id: Uuid,
        pub customer_id: Uuid,
        pub reason: RejectionReason,
        #[serde(default)]
        pub version: u64,
        #[serde(default)]
        pub channel: String,
    }

    #[derive(Serialize, Deserialize, JsonSchema)]
    pub struct ValueRemoved {
        pub order_id: Uuid,
        pub customer_id: Uuid,
        pub reason: ReasonWithoutTimeout,
        #[serde(default)]
        pub version: u64,
    }

    #[derive(Serialize, Deserialize, JsonSchema)]
    pub struct ValueAdded {
        pub order_id: Uuid,
        pub customer_id: Uuid,
        pub reason: ReasonWithFraud,
        #[serde(default)]
        pub version: u64,
    }
}

fn breaks_of<T: JsonSchema>() -> Vec<Break> {
    compare(&today("orders.OrderRejected").schema(), &schema::<T>())
}

#[test]
fn a_faithful_copy_breaks_nothing_and_an_optional_field_is_compatible() {
    assert_eq!(breaks_of::<copies::Faithful>(), []);
    assert_eq!(breaks_of::<copies::NewDefaulted>(), []);
}

#[test]
fn a_renamed_field_is_caught_as_removed() {
    let breaks = breaks_of::<copies::Renamed>();
    assert!(breaks.contains(&Break { field: "customer_id".into(), rule: Rule::FieldRemoved }), "{breaks:?}");
    let shown = breaks.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    assert!(shown.contains("`customer_id`: field removed or renamed"), "{shown}");
}

#[test]
fn a_changed_type_is_caught_naming_both_types() {
    let breaks = breaks_of::<copies::Retyped>();
    assert_eq!(
        breaks,
        [Break {
            field: "version".into(),
            rule: Rule::TypeChanged { was: "integer (uint64)".into(), now: "integer (int64)".into() }
        }]
    );
}

#[test]
fn a_new_required_field_without_a_default_is_caught() {
    assert_eq!(
        breaks_of::<copies::NewRequired>(),
        [Break { field: "channel".into(), rule: Rule::RequiredWithoutDefault }]
    );
}

#[test]
fn a_removed_enum_value_is_caught() {
    assert_eq!(
        breaks_of::<copies::ValueRemoved>(),
        [Break {
            field: "reason".into(),
            rule: Rule::EnumValueRemoved { value: "\"inventory_timeout\"".into() }
        }]
    );
}

#[test]
fn an_added_enum_value_is_caught() {
    let breaks = breaks_of::<copies::ValueAdded>();
    assert_eq!(
        breaks,
        [Break {
            field: "reason".into(),
            rule: Rule::EnumValueAdded { value: "\"fraud_suspected\"".into() }
        }]
    );
    assert!(breaks[0].to_string().contains("old consumers cannot read"), "{}", breaks[0]);
}

#[test]
fn a_field_added_to_a_nested_type_that_refuses_unknown_fields_is_caught() {
    #[derive(Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Address {
        line1: String,
        city: String,
        postal_code: String,
        country: String,
        #[serde(default)]
        floor: Option<u8>,
    }
    #[derive(Serialize, Deserialize, JsonSchema)]
    struct CustomerUpdated {
        customer_id: Uuid,
        name: String,
        address: Address,
        version: i64,
    }
    assert_eq!(
        compare(&today("customers.CustomerUpdated").schema(), &schema::<CustomerUpdated>()),
        [Break { field: "address.floor".into(), rule: Rule::FieldAddedToClosedType }]
    );
}

/// A message at version 2 whose v1 held `total` as a float of euros.
#[derive(Serialize, Deserialize, JsonSchema)]
struct Invoice {
    invoice_id: Uuid,
    total: tessera_contracts::Money,
}

#[derive(Serialize, Deserialize, JsonSchema)]
struct InvoiceV1 {
    invoice_id: Uuid,
    total: f64,
}

fn invoice(version: u32) -> Contract {
    if version == 1 {
        Contract::new::<InvoiceV1>(
            "test.Invoice",
            1,
            Kind::Event,
            || json!({"invoice_id": Uuid::nil(), "total": 19.99}),
        )
    } else {
        Contract::new::<Invoice>(
            "test.Invoice",
            2,
            Kind::Event,
            || json!({"invoice_id": Uuid::nil(), "total": {"amount": 1999, "currency": "EUR"}}),
        )
    }
}

fn to_minor_units(mut v: Value) -> Result<Value, String> {
    let euros = v["total"].as_f64().ok_or("total is not a number")?;
    v["total"] = json!({"amount": (euros * 100.0).round() as i64, "currency": "EUR"});
    Ok(v)
}

fn forgets_the_currency(mut v: Value) -> Result<Value, String> {
    v["total"] = json!({"amount": 1999});
    Ok(v)
}

#[test]
fn a_new_version_needs_an_upcaster_that_lifts_the_old_sample_into_a_valid_new_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), &[invoice(1)]).expect("v1 committed");
    // Changing the type in place is refused: it breaks v1.
    let in_place = Contract::new::<Invoice>("test.Invoice", 1, Kind::Event, || json!({}));
    let refused = write(dir.path(), &[in_place]).expect_err("breaks v1");
    assert!(refused.to_string().contains("`total`: type changed"), "{refused}");
    write(dir.path(), &[invoice(2)]).expect("v2 committed");

    let problems = |upcasters: &[Upcaster]| -> Vec<Problem> {
        check(dir.path(), &[invoice(2)], upcasters)
            .expect("readable")
            .into_iter()
            .map(|f| f.problem)
            .collect()
    };
    assert_eq!(problems(&[]), [Problem::NoUpcaster { from_version: 1 }]);
    let wrong = [Upcaster { name: "test.Invoice", from_version: 1, step: forgets_the_currency }];
    assert!(
        matches!(&problems(&wrong)[..], [Problem::UpcastRejected { from_version: 1, reason }] if reason.contains("currency")),
        "{:?}",
        problems(&wrong)
    );
    let right = [Upcaster { name: "test.Invoice", from_version: 1, step: to_minor_units }];
    assert_eq!(problems(&right), []);
}

#[test]
fn a_breaking_change_to_a_committed_version_fails_the_check_naming_the_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), &[today("orders.OrderRejected")]).expect("committed");
    let changed = Contract::new::<copies::ValueRemoved>(
        "orders.OrderRejected",
        1,
        Kind::Event,
        || json!({"order_id": Uuid::nil(), "customer_id": Uuid::nil(), "reason": "out_of_stock"}),
    );
    let findings = check(dir.path(), &[changed], &[]).expect("readable");
    let shown: Vec<String> = findings.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "orders.OrderRejected v1: `reason`: enum value \"inventory_timeout\" removed (new code cannot replay old messages holding it)"
        ]
    );
}
