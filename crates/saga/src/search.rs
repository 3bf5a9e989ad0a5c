//! Finding sagas for operators: every saga in a store, running or finished, of any type,
//! newest first, by state, by type, and by the id of what it works on (its own id, or an id in
//! its data such as its customer's), a page at a time behind an opaque keyset cursor.

use std::fmt;
use std::str::FromStr;

use tessera_store::{BackendKind, SqlValue, Statement, Store};

use crate::engine::{Result, SagaSummary, summary};

const COLUMNS: &str = "saga_id, saga, state, started_at, updated_at";

/// Which sagas a search keeps, by where they stand. Maps onto the engine's statuses, plus the
/// two views operators ask for: `failed` (a step failed: undoing or undone) and `stuck`
/// (flagged, whatever the status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateFilter {
    Running,
    Compensating,
    Completed,
    Compensated,
    Failed,
    Stuck,
}

impl StateFilter {
    pub const ALL: [StateFilter; 6] = [
        StateFilter::Running,
        StateFilter::Compensating,
        StateFilter::Completed,
        StateFilter::Compensated,
        StateFilter::Failed,
        StateFilter::Stuck,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StateFilter::Running => "running",
            StateFilter::Compensating => "compensating",
            StateFilter::Completed => "completed",
            StateFilter::Compensated => "compensated",
            StateFilter::Failed => "failed",
            StateFilter::Stuck => "stuck",
        }
    }

    /// The rows it keeps, as SQL both backends read alike (the `status` column holds the
    /// engine's `Status` as serde names it).
    fn condition(self) -> &'static str {
        match self {
            StateFilter::Running => "status = 'running'",
            StateFilter::Compensating => "status = 'compensating'",
            StateFilter::Completed => "status = 'completed'",
            StateFilter::Compensated => "status = 'compensated'",
            StateFilter::Failed => "status IN ('compensating', 'compensated')",
            StateFilter::Stuck => "stuck IS NOT NULL",
        }
    }
}

impl fmt::Display for StateFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a saga state: running, compensating, completed, compensated, failed or stuck")]
pub struct UnknownState(pub String);

impl FromStr for StateFilter {
    type Err = UnknownState;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        StateFilter::ALL
            .into_iter()
            .find(|state| state.name() == text)
            .ok_or_else(|| UnknownState(text.to_owned()))
    }
}

/// Where a page ended: the next page holds the sagas started before it (ties broken by id and
/// type, so no saga is skipped or shown twice however many start in the same microsecond).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SagaCursor {
    started_at: i64,
    saga_id: String,
    saga: String,
}

impl SagaCursor {
    /// The cursor of a page whose last saga is `last`.
    pub fn after(last: &SagaSummary) -> Self {
        Self {
            started_at: i64::try_from(last.started_at.as_micros()).unwrap_or(i64::MAX),
            saga_id: last.id.clone(),
            saga: last.saga.clone(),
        }
    }
}

/// Opaque to clients: hex of a JSON triple, so any saga id or type survives a query string.
impl fmt::Display for SagaCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::json!([self.started_at, self.saga, self.saga_id]).to_string();
        json.bytes().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a cursor of this list")]
pub struct BadCursor;

impl FromStr for SagaCursor {
    type Err = BadCursor;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if !text.len().is_multiple_of(2) || !text.is_ascii() {
            return Err(BadCursor);
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&text[at..at + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| BadCursor)?;
        let (started_at, saga, saga_id): (i64, String, String) =
            serde_json::from_slice(&bytes).map_err(|_| BadCursor)?;
        Ok(Self { started_at, saga_id, saga })
    }
}

/// What to look for. The default lists every saga, newest first, 50 at a time.
#[derive(Clone, Debug)]
pub struct SagaSearch<'a> {
    pub state: Option<StateFilter>,
    /// Only sagas of this type (its definition's name).
    pub saga: Option<&'a str>,
    /// Exactly the saga's id, or the value of one of `data_keys` in its data.
    pub q: Option<&'a str>,
    /// Top-level keys of the sagas' data that `q` matches too: the ids a saga works on besides
    /// its own (the orchestrator knows them; a customer's id, say).
    pub data_keys: &'a [&'a str],
    pub after: Option<SagaCursor>,
    pub limit: usize,
}

impl Default for SagaSearch<'_> {
    fn default() -> Self {
        Self { state: None, saga: None, q: None, data_keys: &[], after: None, limit: 50 }
    }
}

/// A page of a search, and where the next one starts if there is more.
#[derive(Clone, Debug, PartialEq)]
pub struct SagaPage {
    pub items: Vec<SagaSummary>,
    pub next: Option<SagaCursor>,
}

/// A value of the saga's data under `key` (bound as `parameter`), as text, in the backend's
/// dialect. The state column is text on both backends: PostgreSQL reads it as jsonb.
fn data_value(kind: BackendKind, parameter: &str) -> String {
    match kind {
        BackendKind::Sqlite => format!("json_extract(state, '$.data.\"' || {parameter} || '\"')"),
        BackendKind::Postgres => format!("(state::jsonb -> 'data' ->> {parameter})"),
    }
}

/// The query for `search` with up to `rows` rows: newest first, after its cursor.
fn search_statement(kind: BackendKind, search: &SagaSearch<'_>, rows: usize) -> Statement {
    let mut values: Vec<SqlValue> = Vec::new();
    let mut parameter = |value: SqlValue| {
        values.push(value);
        format!("${}", values.len())
    };
    let mut sql = format!("SELECT {COLUMNS} FROM tessera_sagas WHERE 1 = 1");
    if let Some(state) = search.state {
        sql += &format!(" AND {}", state.condition());
    }
    if let Some(saga) = search.saga {
        sql += &format!(" AND saga = {}", parameter(saga.into()));
    }
    if let Some(q) = search.q {
        let q = parameter(q.into());
        let mut matches = vec![format!("saga_id = {q}")];
        for key in search.data_keys {
            let key = parameter((*key).into());
            matches.push(format!("{} = {q}", data_value(kind, &key)));
        }
        sql += &format!(" AND ({})", matches.join(" OR "));
    }
    if let Some(after) = &search.after {
        let started_at = parameter(after.started_at.into());
        let saga_id = parameter(after.saga_id.as_str().into());
        let saga = parameter(after.saga.as_str().into());
        sql += &format!(" AND (started_at, saga_id, saga) < ({started_at}, {saga_id}, {saga})");
    }
    let limit = parameter(i64::try_from(rows).unwrap_or(i64::MAX).into());
    sql += &format!(" ORDER BY started_at DESC, saga_id DESC, saga DESC LIMIT {limit}");
    values.into_iter().fold(Statement::new(sql), Statement::bind)
}

/// One page of the sagas `search` finds, newest first.
pub async fn search(store: &Store, search: &SagaSearch<'_>) -> Result<SagaPage> {
    let limit = search.limit.max(1);
    let rows = store.query(search_statement(store.kind(), search, limit + 1)).await?;
    let mut items = rows.iter().map(summary).collect::<Result<Vec<_>>>()?;
    let more = items.len() > limit;
    items.truncate(limit);
    let next = if more { items.last().map(SagaCursor::after) } else { None };
    Ok(SagaPage { items, next })
}

/// Every saga with id `saga_id`, whatever its type (placing and cancelling one order, say),
/// in the order they started.
pub async fn with_id(store: &Store, saga_id: &str) -> Result<Vec<SagaSummary>> {
    let statement = Statement::new(format!(
        "SELECT {COLUMNS} FROM tessera_sagas WHERE saga_id = $1 ORDER BY started_at, saga"
    ))
    .bind(saga_id);
    store.query(statement).await?.iter().map(summary).collect()
}

#[cfg(test)]
mod tests {
    use tessera_kernel::Timestamp;

    use super::*;
    use crate::decide::Status;

    #[test]
    fn states_read_back_from_their_names_and_nothing_else() {
        for state in StateFilter::ALL {
            assert_eq!(state.name().parse(), Ok(state));
        }
        assert_eq!("lost".parse::<StateFilter>(), Err(UnknownState("lost".into())));
        assert!("Running".parse::<StateFilter>().is_err(), "names are exact");
    }

    #[test]
    fn a_cursor_survives_its_text_and_garbage_is_refused() {
        let last = SagaSummary {
            id: "0190d1c3-7a00-7000-8000-000000000001".into(),
            saga: "place_order".into(),
            status: Status::Completed,
            step: 3,
            reason: None,
            stuck: None,
            started_at: Timestamp::from_micros(1_712_345_678_901_234),
            updated_at: Timestamp::from_micros(1_712_345_679_000_000),
            timings: Vec::new(),
        };
        let cursor = SagaCursor::after(&last);
        let text = cursor.to_string();
        assert!(text.bytes().all(|b| b.is_ascii_hexdigit()) && text.len() <= 200, "{text}");
        assert_eq!(text.parse(), Ok(cursor));
        for garbage in ["", "zz", "abc", "7b7d", "5b315d", "ünï"] {
            assert_eq!(garbage.parse::<SagaCursor>(), Err(BadCursor), "{garbage:?}");
        }
    }
}
