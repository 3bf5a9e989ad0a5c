//! The facts orders' invariants need, read from its own store: every order folded from its
//! event stream with the aggregate's own `evolve`, the sagas the service runs, and the order
//! summaries it serves. `tessera verify` and the simulation hand them to the shared checker
//! (`tessera-invariants`); nothing else reads orders' tables.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use tessera_kernel::Timestamp;
use tessera_saga::Status;
use tessera_store::{Statement, Store};

use crate::domain::{Order, OrderEvent};

/// One order as its stream tells it.
#[derive(Clone, Debug)]
pub struct OrderFact {
    /// The id the other services key the order by.
    pub order_id: String,
    pub state: Order,
    pub placed_at: Timestamp,
    pub last_at: Timestamp,
    /// Each event kind the stream holds more than once: each happens once per order.
    pub repeated: Vec<&'static str>,
}

impl OrderFact {
    /// Nothing in the stream changed after `cutoff`: the order is no longer in flight.
    pub fn settled(&self, cutoff: Timestamp) -> bool {
        self.last_at < cutoff
    }
}

/// An order's stream being folded, one event at a time.
#[derive(Debug, Default)]
pub struct OrderFold {
    state: Order,
    placed_at: Option<Timestamp>,
    last_at: Timestamp,
    seen: BTreeSet<&'static str>,
    repeated: Vec<&'static str>,
}

impl OrderFold {
    pub fn apply(&mut self, event: &OrderEvent, at: Timestamp) {
        self.placed_at.get_or_insert(at);
        if !self.seen.insert(event.name()) {
            self.repeated.push(event.name());
        }
        self.state = std::mem::take(&mut self.state).evolve(event);
        self.last_at = at;
    }

    /// The order, unless the stream never named one.
    pub fn finish(self) -> Option<OrderFact> {
        let order_id = self.state.id?.to_string();
        Some(OrderFact {
            order_id,
            state: self.state,
            placed_at: self.placed_at.unwrap_or(self.last_at),
            last_at: self.last_at,
            repeated: self.repeated,
        })
    }
}

/// One saga instance the orders service runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SagaFact {
    pub saga: String,
    pub saga_id: String,
    pub status: Status,
    /// The step it is at, when its stored state says.
    pub step: Option<usize>,
    /// Why it cannot make progress on its own, if so.
    pub stuck: Option<String>,
    pub started_at: Timestamp,
}

/// One row of the order summaries orders serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryFact {
    pub order_id: String,
    pub status: String,
    pub total: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct OrdersFacts {
    pub orders: Vec<OrderFact>,
    pub sagas: Vec<SagaFact>,
    pub summaries: Vec<SummaryFact>,
}

#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    #[error(transparent)]
    Store(#[from] tessera_store::StoreError),
    #[error("event {version} of {stream} does not decode: {source}")]
    Event { stream: String, version: u64, source: tessera_store::StoreError },
    #[error("saga {saga} {saga_id} has the unknown status {status:?}")]
    SagaStatus { saga: String, saga_id: String, status: String },
}

fn timestamp(micros: i64) -> Timestamp {
    Timestamp::from_micros(u64::try_from(micros).unwrap_or_default())
}

/// Every order, folded from the event store with the aggregate's own `evolve`.
async fn orders(store: &Store) -> Result<Vec<OrderFact>, FactsError> {
    let mut folds: BTreeMap<String, OrderFold> = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = store.read_all(after, 1_000).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for recorded in &page {
            if !recorded.stream.as_str().starts_with("order-") {
                continue;
            }
            let event: OrderEvent = recorded.decode().map_err(|source| FactsError::Event {
                stream: recorded.stream.as_str().to_owned(),
                version: recorded.version,
                source,
            })?;
            folds.entry(recorded.stream.as_str().to_owned()).or_default().apply(&event, recorded.recorded_at);
        }
    }
    Ok(folds.into_values().filter_map(OrderFold::finish).collect())
}

async fn sagas(store: &Store) -> Result<Vec<SagaFact>, FactsError> {
    let rows = store
        .query(Statement::new("SELECT saga, saga_id, status, stuck, state, started_at FROM tessera_sagas"))
        .await?;
    rows.iter()
        .map(|row| {
            let (saga, saga_id, status) = (row.text("saga")?, row.text("saga_id")?, row.text("status")?);
            let parsed: Status = serde_json::from_value(Value::String(status.to_owned())).map_err(|_| {
                FactsError::SagaStatus {
                    saga: saga.to_owned(),
                    saga_id: saga_id.to_owned(),
                    status: status.to_owned(),
                }
            })?;
            let state: Value = serde_json::from_str(row.text("state")?).unwrap_or(Value::Null);
            Ok(SagaFact {
                saga: saga.to_owned(),
                saga_id: saga_id.to_owned(),
                status: parsed,
                step: state["step"].as_u64().and_then(|s| usize::try_from(s).ok()),
                stuck: row.opt_text("stuck")?.map(str::to_owned),
                started_at: timestamp(row.int("started_at")?),
            })
        })
        .collect()
}

async fn summaries(store: &Store) -> Result<Vec<SummaryFact>, FactsError> {
    let rows = store.query(Statement::new("SELECT order_id, status, total FROM order_summaries")).await?;
    rows.iter()
        .map(|row| {
            Ok(SummaryFact {
                order_id: row.text("order_id")?.to_owned(),
                status: row.text("status")?.to_owned(),
                total: row.opt_int("total")?,
            })
        })
        .collect()
}

/// Reads orders' facts from its store, as they are now.
pub async fn read(store: &Store) -> Result<OrdersFacts, FactsError> {
    Ok(OrdersFacts {
        orders: orders(store).await?,
        sagas: sagas(store).await?,
        summaries: summaries(store).await?,
    })
}
