//! Folding a stream into state. The aggregate's own logic stays pure (see the services'
//! `domain/` modules); this trait only tells the store how to decode and apply its events.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::model::StreamSlice;

pub trait Aggregate: Default + Serialize + DeserializeOwned {
    type Event: DeserializeOwned;

    fn evolve(self, event: &Self::Event) -> Self;

    /// Starts from the slice's snapshot, if any, and applies the events after it.
    fn from_slice(slice: &StreamSlice) -> Result<Self> {
        let mut state = match &slice.snapshot {
            Some(snapshot) => serde_json::from_str(&snapshot.state)?,
            None => Self::default(),
        };
        for recorded in &slice.events {
            state = state.evolve(&recorded.decode::<Self::Event>()?);
        }
        Ok(state)
    }
}
