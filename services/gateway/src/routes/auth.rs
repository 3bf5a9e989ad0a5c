//! Signing in (`POST /auth/token`) and the keys that verify the tokens it issues.

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tessera_kernel::Timestamp;
use tessera_web::{ApiResult, Json, Problem};

use crate::auth::Role;
use crate::client_address::ClientAddress;
use crate::forward::pass_on_error;
use crate::passwords;
use crate::state::Gateway;
use crate::throttle;

fn now() -> Timestamp {
    Timestamp::from_system_time(std::time::SystemTime::now())
}

pub(super) fn router() -> Router<Gateway> {
    Router::new().route("/auth/token", post(issue_token))
}

/// Served outside `/api/v1`.
pub(super) fn keys_router() -> Router<Gateway> {
    Router::new().route("/.well-known/jwks.json", get(jwks))
}

/// The public keys that verify the gateway's tokens.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth", security(()),
    responses((status = 200, body = crate::schemas::Jwks)))]
pub(crate) async fn jwks(State(gateway): State<Gateway>) -> impl IntoResponse {
    axum::Json(gateway.keys.jwks(now()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Credentials {
    email: String,
    password: String,
}

/// `POST /auth/token`: the same 401 for an unknown email and a wrong password.
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth", security(()), request_body = Credentials,
    responses((status = 200, body = crate::schemas::TokenAnswer), (status = 401, body = Problem),
        (status = 429, description = "too many failed sign-ins for this account or address; `Retry-After` says how long", body = Problem),
        (status = 503, description = "too many password checks at once; `Retry-After: 1`", body = Problem)))]
pub(crate) async fn issue_token(
    State(gateway): State<Gateway>,
    ClientAddress(client): ClientAddress,
    Json(credentials): Json<Credentials>,
) -> ApiResult<Response> {
    let (account, address) = (throttle::account(&credentials.email), throttle::address(client));
    let at = now().as_micros();
    let counted = throttle::check(&gateway.store, &[&account, &address], at).await?;
    let answer = signed_in(&gateway, credentials).await;
    match &answer {
        Err(problem) if problem.status == StatusCode::UNAUTHORIZED => {
            throttle::failed(&gateway.store, &account, &address, at).await;
        }
        Ok(_) if counted => throttle::succeeded(&gateway.store, &account).await,
        Ok(_) => {}
        Err(_) => {}
    }
    answer
}

/// The token for `credentials`, or the same 401 whichever of the two is wrong.
async fn signed_in(gateway: &Gateway, credentials: Credentials) -> ApiResult<Response> {
    let refused = || {
        Problem::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "the email or the password is wrong")
    };
    let email = credentials.email.trim().to_ascii_lowercase();
    let staff = gateway.staff.iter().find(|(known, _, _)| *known == email).cloned();
    let (sub, role) = if let Some((email, hash, role)) = staff {
        let password = credentials.password;
        let matches = tessera_web::bounded::PASSWORD_HASHING
            .run(move || passwords::matches(&password, &hash))
            .await
            .map_err(Problem::from)?;
        if !matches {
            return Err(refused());
        }
        (email, role)
    } else {
        let body = json!({"email": credentials.email, "password": credentials.password});
        let reply = gateway
            .call(&gateway.services.customers, Method::POST, "/customers/credentials", Some(body), &[])
            .await?;
        // Wrong credentials (or a malformed email) are 401; a customers outage is not.
        if matches!(reply.status, StatusCode::UNAUTHORIZED | StatusCode::UNPROCESSABLE_ENTITY) {
            return Err(refused());
        }
        if !reply.is_success() {
            return pass_on_error(reply);
        }
        let id = reply.json()["customer_id"].as_str().unwrap_or_default().to_owned();
        if id.is_empty() {
            return Err(refused());
        }
        (id, Role::Customer)
    };
    let token = gateway.keys.issue(&sub, role, now()).map_err(|e| Problem::internal(&e))?;
    let account = if role == Role::Customer { format!("customer/{sub}") } else { format!("staff/{sub}") };
    let detached = crate::access_report::Commit::Detached;
    let _ =
        crate::access_report::note(&gateway.store, detached, &sub, role.as_str(), "session.create", account)
            .await;
    Ok(axum::Json(json!({
        "access_token": token, "token_type": "Bearer", "expires_in": gateway.keys.settings.ttl.as_secs(),
    }))
    .into_response())
}
