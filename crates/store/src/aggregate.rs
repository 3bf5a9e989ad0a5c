//! Folding a stream into state. The aggregate's own logic stays pure (see the services'
//! `domain/` modules); this trait only tells the store how to decode and apply its events,
//! and how its snapshots are written and read.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::{RecordedEvent, Snapshot, StreamSlice};

pub trait Aggregate: Default + Serialize + DeserializeOwned {
    type Event: DeserializeOwned;

    /// The schema version of the state a snapshot holds. Bump it when the state's type
    /// changes so that an older snapshot no longer reads as the same thing: older snapshots
    /// are then ignored and the stream is folded from its start (events are upcast, snapshots
    /// are only a cache and are never migrated).
    const SNAPSHOT_VERSION: u32 = 1;

    fn evolve(self, event: &Self::Event) -> Self;

    /// The state as a snapshot records it, stamped with [`Aggregate::SNAPSHOT_VERSION`].
    fn to_snapshot(&self) -> Result<String> {
        Ok(serde_json::to_string(&Stamped { snapshot_version: Self::SNAPSHOT_VERSION, state: self })?)
    }

    /// The snapshot's state, if it was written under today's [`Aggregate::SNAPSHOT_VERSION`];
    /// `None` for another version, or a snapshot written before versions were stamped.
    fn from_snapshot(snapshot: &Snapshot) -> Result<Option<Self>> {
        let stored: Stamped<serde_json::Value> = match serde_json::from_str(&snapshot.state) {
            Ok(stored) => stored,
            Err(_) => return Ok(None),
        };
        if stored.snapshot_version != Self::SNAPSHOT_VERSION {
            return Ok(None);
        }
        Ok(Some(serde_json::from_value(stored.state)?))
    }

    /// Starts from the slice's snapshot, if any, and applies the events after it. `None` when
    /// the snapshot is of another version: the caller folds the whole stream instead.
    fn from_slice(slice: &StreamSlice) -> Result<Option<Self>> {
        let state = match &slice.snapshot {
            Some(snapshot) => match Self::from_snapshot(snapshot)? {
                Some(state) => state,
                None => return Ok(None),
            },
            None => Self::default(),
        };
        Self::fold(state, &slice.events).map(Some)
    }

    /// The state after every event of a stream read from its start.
    fn from_events(events: &[RecordedEvent]) -> Result<Self> {
        Self::fold(Self::default(), events)
    }

    fn fold(mut state: Self, events: &[RecordedEvent]) -> Result<Self> {
        for recorded in events {
            state = state.evolve(&recorded.decode::<Self::Event>()?);
        }
        Ok(state)
    }
}

/// A snapshot as stored: the state and the version of its shape.
#[derive(Serialize, Deserialize)]
struct Stamped<S> {
    snapshot_version: u32,
    state: S,
}
