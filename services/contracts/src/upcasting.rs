//! The steps that lift a message stored or sent under an old version to the next one. A change
//! that breaks compatibility is a new version of the message plus a step here from the old
//! one; the compatibility check (`tessera contracts check`) fails when a committed old version
//! has no step, or when the steps do not turn its committed sample into a message today's type
//! reads. The bus applies the same list (`tessera_bus::Upcasters::from` in the CLI's nodes).

use serde_json::Value;

/// Turns `name` at `from_version` into `from_version + 1`.
#[derive(Clone, Copy, Debug)]
pub struct Upcaster {
    pub name: &'static str,
    pub from_version: u32,
    pub step: fn(Value) -> Result<Value, String>,
}

/// Every upcaster of the shop's messages. Empty while every message is at its first version.
pub const UPCASTERS: &[Upcaster] = &[];

/// Why a payload could not be lifted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpcastError {
    #[error("no upcaster from {name} v{from_version}")]
    Missing { name: String, from_version: u32 },
    #[error("the upcaster from {name} v{from_version} failed: {reason}")]
    Failed { name: String, from_version: u32, reason: String },
}

/// `payload` of `name` at `from` lifted, step by step, to `to`.
pub fn upcast(
    upcasters: &[Upcaster],
    name: &str,
    from: u32,
    to: u32,
    mut payload: Value,
) -> Result<Value, UpcastError> {
    for version in from..to {
        let step = upcasters
            .iter()
            .find(|u| u.name == name && u.from_version == version)
            .ok_or_else(|| UpcastError::Missing { name: name.to_owned(), from_version: version })?;
        payload = (step.step)(payload).map_err(|reason| UpcastError::Failed {
            name: name.to_owned(),
            from_version: version,
            reason,
        })?;
    }
    Ok(payload)
}
