//! Upcasting: old payload versions lifted, step by step, to the current one before any
//! handler sees them, so handlers only know the latest schema.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde_json::Value;
use tessera_kernel::Envelope;

type Step = Box<dyn Fn(Value) -> Result<Value, String> + Send + Sync>;

#[derive(Default)]
pub struct Upcasters {
    steps: HashMap<(String, u32), Step>,
}

impl fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upcasters").field("steps", &self.steps.keys().collect::<Vec<_>>()).finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cannot upcast {name} v{version}: {reason}")]
pub struct UpcastError {
    pub name: String,
    pub version: u32,
    pub reason: String,
}

impl Upcasters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the step that turns `name` at `from_version` into `from_version + 1`.
    #[must_use]
    pub fn with(
        mut self,
        name: impl Into<String>,
        from_version: u32,
        step: impl Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Self {
        self.steps.insert((name.into(), from_version), Box::new(step));
        self
    }

    /// Like [`Upcasters::upcast`], without copying an envelope no step applies to, which is
    /// nearly every one.
    pub fn upcast_ref<'a>(&self, envelope: &'a Envelope) -> Result<Cow<'a, Envelope>, UpcastError> {
        let applies =
            self.steps.keys().any(|(name, version)| *name == envelope.name && *version == envelope.version);
        if applies { self.upcast(envelope.clone()).map(Cow::Owned) } else { Ok(Cow::Borrowed(envelope)) }
    }

    /// Applies every registered step from the envelope's version on.
    pub fn upcast(&self, mut envelope: Envelope) -> Result<Envelope, UpcastError> {
        while let Some(step) = self.steps.get(&(envelope.name.clone(), envelope.version)) {
            envelope.payload = step(std::mem::take(&mut envelope.payload)).map_err(|reason| UpcastError {
                name: envelope.name.clone(),
                version: envelope.version,
                reason,
            })?;
            envelope.version += 1;
        }
        Ok(envelope)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tessera_kernel::{DeterministicIdGen, HlcTimestamp, MessageKind};

    use super::*;

    fn placed(version: u32, payload: Value) -> Envelope {
        Envelope::new(
            &DeterministicIdGen::new(),
            MessageKind::Event,
            "orders.OrderPlaced",
            "orders",
            "o-1",
            HlcTimestamp::default(),
            payload,
        )
        .with_version(version)
    }

    fn upcasters() -> Upcasters {
        Upcasters::new()
            .with("orders.OrderPlaced", 1, |mut v| {
                // v2 holds money as minor units with a currency.
                let cents = v["total"].as_f64().ok_or("total is not a number")? * 100.0;
                v["total"] = json!({"amount": cents.round() as i64, "currency": "EUR"});
                Ok(v)
            })
            .with("orders.OrderPlaced", 2, |mut v| {
                v["channel"] = json!("web");
                Ok(v)
            })
    }

    #[test]
    fn a_v1_payload_is_lifted_through_every_step_to_the_current_version() {
        let lifted = upcasters().upcast(placed(1, json!({"total": 19.99}))).expect("upcast");
        assert_eq!(lifted.version, 3);
        assert_eq!(lifted.payload, json!({"total": {"amount": 1999, "currency": "EUR"}, "channel": "web"}));
    }

    #[test]
    fn a_current_payload_is_left_alone() {
        let current = placed(3, json!({"x": 1}));
        assert_eq!(upcasters().upcast(current.clone()).expect("upcast"), current);
    }

    #[test]
    fn by_reference_a_current_payload_is_not_copied_and_an_old_one_is_lifted() {
        let upcasters = upcasters();
        let current = placed(3, json!({"x": 1}));
        assert!(matches!(upcasters.upcast_ref(&current), Ok(Cow::Borrowed(_))));
        let old = placed(2, json!({"total": {"amount": 5, "currency": "EUR"}}));
        let lifted = upcasters.upcast_ref(&old).expect("upcast");
        assert!(matches!(lifted, Cow::Owned(_)));
        assert_eq!((lifted.version, &lifted.payload["channel"]), (3, &json!("web")));
        assert!(upcasters.upcast_ref(&placed(1, json!({"total": "lots"}))).is_err());
    }

    #[test]
    fn a_failing_step_names_the_message_and_version() {
        let error = upcasters().upcast(placed(1, json!({"total": "lots"}))).expect_err("bad payload");
        assert_eq!((error.name.as_str(), error.version), ("orders.OrderPlaced", 1));
    }
}
