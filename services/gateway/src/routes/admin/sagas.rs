//! `/api/v1/admin/sagas`: the sagas orders runs, running and finished, found by state, type and
//! an order's or a customer's id, each with its steps' durations. The gateway checks the shape
//! of each parameter and passes it on; orders knows which states and types exist.

use axum::extract::State;
use axum::http::Method;
use axum::response::Response;
use tessera_web::{ApiResult, Path, Problem, page_limit};

use crate::access::{Caller, require};
use crate::auth::Role;
use crate::forward::{pass_on, uuid};
use crate::state::Gateway;

const STATES: [&str; 6] = ["running", "compensating", "completed", "compensated", "failed", "stuck"];
const MAX_Q: usize = 64;
const MAX_CURSOR: usize = 200;

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SagaQuery {
    /// running, compensating, completed, compensated, failed (a step failed: compensating or
    /// compensated) or stuck (retried over and over: it needs an operator). Default: all.
    #[param(pattern = "^(running|compensating|completed|compensated|failed|stuck)$")]
    state: Option<String>,
    /// The saga's type: place_order or cancel_order.
    #[serde(rename = "type")]
    #[param(pattern = "^[a-z][a-z0-9_]{0,63}$")]
    saga: Option<String>,
    /// An order's id or a customer's, matched exactly.
    #[param(max_length = 64)]
    q: Option<String>,
    /// 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(max_length = 200)]
    cursor: Option<String>,
}

fn saga_type(text: &str) -> bool {
    let mut bytes = text.bytes();
    text.len() <= 64
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The query orders is asked, or the 422 naming the first parameter out of shape.
fn orders_query(query: SagaQuery) -> ApiResult<String> {
    let SagaQuery { state, saga, q, limit, cursor } = query;
    if state.as_deref().is_some_and(|s| !STATES.contains(&s)) {
        return Err(Problem::invalid_field("state", format!("must be one of {}", STATES.join(", "))));
    }
    if saga.as_deref().is_some_and(|t| !saga_type(t)) {
        return Err(Problem::invalid_field("type", "must be a saga type such as place_order"));
    }
    if q.as_ref().is_some_and(|q| q.chars().count() > MAX_Q) {
        return Err(Problem::invalid_field("q", format!("must be at most {MAX_Q} characters")));
    }
    if cursor.as_ref().is_some_and(|c| c.chars().count() > MAX_CURSOR) {
        return Err(Problem::invalid_field("cursor", "not a cursor of this list"));
    }
    let limit = limit.map(|l| page_limit(Some(l))).transpose()?;
    let pairs: Vec<(&str, String)> = [
        ("state", state),
        ("type", saga),
        ("q", q),
        ("limit", limit.map(|l| l.to_string())),
        ("cursor", cursor),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|v| (name, v)))
    .collect();
    let encoded = serde_urlencoded::to_string(&pairs).map_err(|e| Problem::internal(&e))?;
    Ok(if encoded.is_empty() { "/admin/sagas".to_owned() } else { format!("/admin/sagas?{encoded}") })
}

/// `GET /admin/sagas`: sagas newest first, a page at a time (`{items, next_cursor}`).
#[utoipa::path(get, path = "/api/v1/admin/sagas", tag = "admin", params(SagaQuery),
    responses((status = 200, description = "`{items: [{saga, id, status, step, reason, stuck, started_at, updated_at, duration_ms, steps: [{name, kind, started_at, ended_at, duration_ms, outcome, attempts}]}], next_cursor}`, newest first", body = Object)))]
pub(crate) async fn list(
    State(g): State<Gateway>,
    caller: Caller,
    tessera_web::Query(query): tessera_web::Query<SagaQuery>,
) -> ApiResult<Response> {
    require(&caller, &[Role::Admin])?;
    let path = orders_query(query)?;
    g.call(&g.services.orders, Method::GET, &path, None, &[]).await.map(pass_on)
}

/// `GET /admin/sagas/{id}`: every saga of one order (placing it, cancelling it), each with its
/// steps' durations.
#[utoipa::path(get, path = "/api/v1/admin/sagas/{id}", tag = "admin",
    params(("id" = Uuid, Path, description = "the saga's id: its order's")),
    responses((status = 200, description = "`{items: [...]}` as in the list, in the order they started", body = Object),
        (status = 404, body = Problem)))]
pub(crate) async fn with_id(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
) -> ApiResult<Response> {
    require(&caller, &[Role::Admin])?;
    let id = uuid(&text, "saga")?;
    g.call(&g.services.orders, Method::GET, &format!("/admin/sagas/{id}"), None, &[]).await.map(pass_on)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(state: Option<&str>, saga: Option<&str>, q: Option<&str>, limit: Option<u32>) -> SagaQuery {
        SagaQuery {
            state: state.map(str::to_owned),
            saga: saga.map(str::to_owned),
            q: q.map(str::to_owned),
            limit,
            cursor: None,
        }
    }

    fn refused(query: SagaQuery) -> String {
        let problem = orders_query(query).expect_err("refused");
        problem.errors.first().map(|e| e.field.clone()).unwrap_or_default()
    }

    #[test]
    fn parameters_out_of_shape_are_named_and_the_rest_is_passed_on_encoded() {
        assert_eq!(refused(query(Some("lost"), None, None, None)), "state");
        assert_eq!(refused(query(None, Some("Place-Order"), None, None)), "type");
        assert_eq!(refused(query(None, None, Some(&"1".repeat(65)), None)), "q");
        assert_eq!(refused(query(None, None, None, Some(0))), "limit");
        assert_eq!(refused(query(None, None, None, Some(201))), "limit");
        let long_cursor = SagaQuery { cursor: Some("a".repeat(201)), ..query(None, None, None, None) };
        assert_eq!(refused(long_cursor), "cursor");
        assert_eq!(orders_query(query(None, None, None, None)).expect("all"), "/admin/sagas");
        assert_eq!(
            orders_query(query(Some("failed"), Some("place_order"), Some("a b&c"), Some(10))).expect("some"),
            "/admin/sagas?state=failed&type=place_order&q=a+b%26c&limit=10"
        );
    }
}
