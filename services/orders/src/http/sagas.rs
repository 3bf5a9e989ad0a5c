//! Operators' view of the sagas orders runs (admins only; the gateway exposes it under
//! `/api/v1/admin/sagas`): every saga, running or finished, newest first, found by state, type
//! and an order's or customer's id, each with how long it and each of its steps took.

// utoipa's path macro writes fully qualified paths into the code it generates.
#![allow(unused_qualifications)]

use std::time::Duration;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use tessera_kernel::Timestamp;
use tessera_saga::{SagaCursor, SagaSearch, SagaSummary, StateFilter, StepTiming};
use tessera_web::access::{ADMIN, Access};
use tessera_web::{ApiResult, Json, Path, Problem, Query, page_limit};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::Orders;
use crate::{CANCEL_ORDER, PLACE_ORDER};

/// The longest id `q` may be: order and customer ids are UUIDs.
const MAX_Q: usize = 64;

pub(super) fn router() -> OpenApiRouter<Orders> {
    OpenApiRouter::new().routes(routes!(search_sagas)).routes(routes!(sagas_with_id))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SagaQuery {
    /// running, compensating, completed, compensated, failed (a step failed: compensating or
    /// compensated) or stuck (a compensation or a step past the point of no return keeps failing).
    #[param(pattern = "^(running|compensating|completed|compensated|failed|stuck)$")]
    pub state: Option<String>,
    /// The saga's type: place_order or cancel_order.
    #[serde(rename = "type")]
    #[param(pattern = "^(place_order|cancel_order)$")]
    pub saga: Option<String>,
    /// An order's id (the saga's own) or a customer's, matched exactly.
    #[param(max_length = 64)]
    pub q: Option<String>,
    /// 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(max_length = 200)]
    pub cursor: Option<String>,
}

/// One step's command or compensation, from its first send to its end.
#[derive(Debug, Serialize, ToSchema)]
pub struct SagaStepView {
    /// The step's name in the saga's definition.
    pub name: String,
    /// forward (the step's command) or compensation (undoing it).
    pub kind: String,
    pub started_at: String,
    /// Absent while it waits for its reply.
    pub ended_at: Option<String>,
    /// Milliseconds (with microseconds), once it ended.
    pub duration_ms: Option<f64>,
    /// succeeded, failed, timed_out or compensated; absent while it waits.
    pub outcome: Option<String>,
    /// How often its command was sent: more than once when it was retried.
    pub attempts: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SagaView {
    /// The saga's type: place_order or cancel_order.
    pub saga: String,
    /// The saga's id: its order's.
    pub id: String,
    /// running, compensating, completed or compensated.
    pub status: String,
    /// The step it is at (or ended at), from 0.
    pub step: usize,
    /// Why it is compensating or compensated.
    pub reason: Option<String>,
    /// Why it cannot make progress on its own, while it is stuck.
    pub stuck: Option<String>,
    pub started_at: String,
    pub updated_at: String,
    /// Milliseconds from its start to its end, once it is completed or compensated.
    pub duration_ms: Option<f64>,
    /// Its steps and compensations in the order they started (none for sagas started before
    /// steps were timed).
    pub steps: Vec<SagaStepView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SagaPageView {
    pub items: Vec<SagaView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SagaList {
    pub items: Vec<SagaView>,
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn name_of<T: Serialize>(value: T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

pub(super) fn step_view(timing: StepTiming) -> SagaStepView {
    let at = |micros| Timestamp::from_micros(micros).to_rfc3339();
    SagaStepView {
        duration_ms: timing.duration().map(millis),
        kind: name_of(timing.kind),
        started_at: at(timing.started_at),
        ended_at: timing.ended_at.map(at),
        outcome: timing.outcome.map(name_of),
        attempts: timing.attempts,
        name: timing.name,
    }
}

impl From<SagaSummary> for SagaView {
    fn from(saga: SagaSummary) -> Self {
        let finished = saga.status.is_terminal();
        Self {
            status: name_of(saga.status),
            duration_ms: finished.then(|| millis(saga.updated_at.since(saga.started_at))),
            started_at: saga.started_at.to_rfc3339(),
            updated_at: saga.updated_at.to_rfc3339(),
            steps: saga.timings.into_iter().map(step_view).collect(),
            saga: saga.saga,
            id: saga.id,
            step: saga.step,
            reason: saga.reason,
            stuck: saga.stuck,
        }
    }
}

/// The search a query asks for, or the 422 naming its first bad parameter.
fn search(query: &SagaQuery) -> ApiResult<SagaSearch<'_>> {
    let state = query
        .state
        .as_deref()
        .map(str::parse::<StateFilter>)
        .transpose()
        .map_err(|e| Problem::invalid_field("state", e.to_string()))?;
    let saga = match query.saga.as_deref() {
        None => None,
        Some(saga @ (PLACE_ORDER | CANCEL_ORDER)) => Some(saga),
        Some(_) => return Err(Problem::invalid_field("type", "must be place_order or cancel_order")),
    };
    // An empty search box searches for nothing in particular.
    let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    if q.is_some_and(|q| q.chars().count() > MAX_Q) {
        return Err(Problem::invalid_field("q", format!("must be at most {MAX_Q} characters")));
    }
    let after = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(cursor) => {
            Some(cursor.parse::<SagaCursor>().map_err(|e| Problem::invalid_field("cursor", e.to_string()))?)
        }
    };
    let limit = page_limit(query.limit)? as usize;
    Ok(SagaSearch { state, saga, q, after, limit, ..SagaSearch::default() })
}

/// Sagas, running and finished, newest first: by state, by type, by an order's or a
/// customer's id; each with its steps' durations.
#[utoipa::path(get, path = "/admin/sagas", tag = "orders", params(SagaQuery),
    responses((status = 200, body = SagaPageView), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn search_sagas(
    State(orders): State<Orders>,
    access: Access,
    Query(query): Query<SagaQuery>,
) -> ApiResult<Json<SagaPageView>> {
    access.require(&[ADMIN])?;
    let page = orders.search_sagas(search(&query)?).await?;
    Ok(Json(SagaPageView {
        items: page.items.into_iter().map(SagaView::from).collect(),
        next_cursor: page.next.map(|cursor| cursor.to_string()),
    }))
}

/// Every saga with this id (an order's: placing it, cancelling it), in the order they started.
#[utoipa::path(get, path = "/admin/sagas/{saga_id}", tag = "orders",
    params(("saga_id" = String, Path, description = "the saga's id: its order's")),
    responses((status = 200, body = SagaList), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn sagas_with_id(
    State(orders): State<Orders>,
    access: Access,
    Path(saga_id): Path<String>,
) -> ApiResult<Json<SagaList>> {
    access.require(&[ADMIN])?;
    let sagas = orders.sagas_with_id(&saga_id).await?;
    if sagas.is_empty() {
        return Err(Problem::not_found("no saga has this id"));
    }
    Ok(Json(SagaList { items: sagas.into_iter().map(SagaView::from).collect() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(state: Option<&str>, saga: Option<&str>, q: Option<&str>, cursor: Option<&str>) -> SagaQuery {
        SagaQuery {
            state: state.map(str::to_owned),
            saga: saga.map(str::to_owned),
            q: q.map(str::to_owned),
            limit: None,
            cursor: cursor.map(str::to_owned),
        }
    }

    fn bad_field(query: &SagaQuery) -> String {
        let problem = search(query).expect_err("refused");
        problem.errors.first().map(|e| e.field.clone()).unwrap_or_default()
    }

    #[test]
    fn each_bad_parameter_is_named_and_blank_ones_mean_no_filter() {
        assert_eq!(bad_field(&query(Some("lost"), None, None, None)), "state");
        assert_eq!(bad_field(&query(None, Some("ship_order"), None, None)), "type");
        assert_eq!(bad_field(&query(None, None, Some(&"x".repeat(65)), None)), "q");
        assert_eq!(bad_field(&query(None, None, None, Some("not-a-cursor"))), "cursor");
        let blank = query(Some("failed"), Some(PLACE_ORDER), Some("  "), Some(""));
        let search = search(&blank).expect("a search");
        assert_eq!(
            (search.state, search.saga, search.q, search.after),
            (Some(StateFilter::Failed), Some(PLACE_ORDER), None, None)
        );
        assert_eq!(search.limit, 50);
    }
}
