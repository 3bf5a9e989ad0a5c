//! Customers' HTTP routes: registration, the profile, and the credential check the gateway
//! uses to issue tokens. Handlers parse, call `Customers`, and map the outcome; every error
//! leaves as a problem with a stable code. Each route applies the shared access rules to its
//! caller (`tessera_web::access`): a customer reaches only their own profile, and registration
//! and the credential check answer only the gateway's own identity (the credential check is
//! no password oracle for anyone else on the network).
//!
//! Request types that hold a password have no derived `Debug`, and no answer ever echoes one.

// utoipa's path macro writes fully qualified paths into the code it generates.
#![allow(unused_qualifications)]

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use tessera_contracts::customers::Address;
use tessera_web::access::Access;
use tessera_web::token::Actor;
use tessera_web::{ApiResult, ETag, FieldError, IfMatch, Json, Path, Problem, stale, store_problem};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::{AppError, Customer, Customers, Erasure, ProfileChanges};
use crate::domain::{Email, Name, Password, PostalAddress, ProfileError};

/// The routes of this service, with their OpenAPI description.
pub fn router() -> OpenApiRouter<Customers> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(get_customer, update_customer, erase_customer))
        .routes(routes!(erasure_progress))
        .routes(routes!(check_credentials))
}

impl From<AppError> for Problem {
    fn from(error: AppError) -> Self {
        match error {
            AppError::Duplicate => {
                Problem::conflict("duplicate_email", "a customer with this email exists already")
            }
            AppError::NotFound(id) => Problem::not_found(format!("no customer {id}")),
            AppError::Stale { .. } => stale(),
            AppError::Store(error) => store_problem(&error),
            // A write for someone erased meanwhile: they are gone.
            AppError::Vault(tessera_vault::VaultError::Shredded) => Problem::not_found("no such customer"),
            AppError::Vault(_) => Problem::unavailable(&error),
            AppError::Busy => tessera_web::bounded::Busy.into(),
            AppError::Hashing(_) | AppError::Corrupt(_) => Problem::internal(&error),
        }
    }
}

/// The answer for any email and password that do not belong together, whichever is wrong.
fn invalid_credentials() -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "the email or the password is wrong")
}

/// A registration. Deliberately without a derived `Debug`: a stray log line cannot print the
/// password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    #[schema(example = "ada@example.com", format = Email, max_length = 254)]
    pub email: String,
    /// Not blank, no control characters.
    #[schema(
        example = "Ada Lovelace",
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// 8 to 128 characters.
    #[schema(format = Password, min_length = 8, max_length = 128)]
    pub password: String,
    pub address: Address,
}

impl std::fmt::Debug for NewCustomer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCustomer").finish_non_exhaustive()
    }
}

/// What registration answers: the new customer's id.
#[derive(Debug, Serialize, ToSchema)]
pub struct Registered {
    pub id: Uuid,
}

/// A customer's profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerView {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub address: Address,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub updated_at: String,
    /// The version the ETag names.
    pub version: i64,
}

impl From<Customer> for CustomerView {
    fn from(customer: Customer) -> Self {
        Self {
            id: customer.id,
            email: customer.email,
            name: customer.name,
            address: customer.address,
            created_at: customer.created_at.to_rfc3339(),
            updated_at: customer.updated_at.to_rfc3339(),
            version: customer.version,
        }
    }
}

/// The fields of a profile to change; absent ones keep their value. The email and the
/// password are not changed here.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerPatch {
    #[schema(
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: Option<String>,
    pub address: Option<Address>,
}

/// An email and password to check. Deliberately without a derived `Debug`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub email: String,
    #[schema(format = Password)]
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").finish_non_exhaustive()
    }
}

/// Whose credentials they are.
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialsOwner {
    pub customer_id: Uuid,
}

/// Collects the field errors of several parses.
#[derive(Debug, Default)]
struct Checks(Vec<FieldError>);

impl Checks {
    fn take<T>(&mut self, parsed: Result<T, ProfileError>) -> Option<T> {
        parsed.map_err(|error| self.0.push(field_error(&error))).ok()
    }

    fn take_address(&mut self, address: &Address) -> Option<PostalAddress> {
        PostalAddress::parse(address).map_err(|errors| self.0.extend(errors.iter().map(field_error))).ok()
    }

    /// The parsed value, or the problem naming every field that is wrong.
    fn finish<T>(self, value: Option<T>) -> ApiResult<T> {
        match value {
            Some(value) if self.0.is_empty() => Ok(value),
            _ => Err(Problem::invalid(self.0)),
        }
    }
}

fn field_error(error: &ProfileError) -> FieldError {
    FieldError::new(error.field(), error.to_string())
}

fn parse_id(text: &str) -> ApiResult<Uuid> {
    // A malformed id names no customer: the same answer as an unknown one.
    Uuid::parse_str(text).map_err(|_| Problem::not_found(format!("no customer {text}")))
}

/// Register a customer.
#[utoipa::path(post, path = "/customers", tag = "customers", request_body = NewCustomer,
    responses((status = 201, body = Registered, headers(("ETag" = String))),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn register(
    State(customers): State<Customers>,
    actor: Actor,
    access: Access,
    Json(body): Json<NewCustomer>,
) -> ApiResult<impl IntoResponse> {
    access.require_gateway()?;
    let mut checks = Checks::default();
    let email = checks.take(Email::parse(&body.email));
    let name = checks.take(Name::parse(&body.name));
    let password = checks.take(Password::parse(&body.password));
    let address = checks.take_address(&body.address);
    let (email, name, password, address) =
        checks.finish(email.zip(name).zip(password).zip(address).map(|(((e, n), p), a)| (e, n, p, a)))?;
    let id = customers.register(email, name, password, address, &actor).await?;
    Ok((StatusCode::CREATED, ETag(1), Json(Registered { id })))
}

/// A customer's profile, with its ETag.
#[utoipa::path(get, path = "/customers/{id}", tag = "customers",
    params(("id" = String, Path, description = "the customer's id")),
    responses((status = 200, body = CustomerView, headers(("ETag" = String))), (status = 404, body = Problem)))]
async fn get_customer(
    State(customers): State<Customers>,
    actor: Actor,
    access: Access,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id(&id)?;
    access.see(&id.to_string(), "customer")?;
    let customer = customers
        .read_profile(id, &actor)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no customer {id}")))?;
    Ok((ETag(customer.version), Json(CustomerView::from(customer))))
}

/// Change a customer's name or address; `If-Match` names the version read.
#[utoipa::path(patch, path = "/customers/{id}", tag = "customers", request_body = CustomerPatch,
    params(("id" = String, Path, description = "the customer's id"),
           ("If-Match" = String, Header, description = "the ETag last read")),
    responses((status = 200, body = CustomerView, headers(("ETag" = String))), (status = 404, body = Problem),
              (status = 412, body = Problem), (status = 428, body = Problem), (status = 422, body = Problem)))]
async fn update_customer(
    State(customers): State<Customers>,
    actor: Actor,
    access: Access,
    Path(id): Path<String>,
    if_match: IfMatch,
    Json(body): Json<CustomerPatch>,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id(&id)?;
    access.change_person(&id.to_string(), "change profiles")?;
    let mut checks = Checks::default();
    let name = body.name.as_deref().map(|name| checks.take(Name::parse(name)));
    let address = body.address.as_ref().map(|address| checks.take_address(address));
    let changes = checks.finish(Some(ProfileChanges { name: name.flatten(), address: address.flatten() }))?;
    let customer = customers.update(id, if_match.0, changes, &actor).await?;
    Ok((ETag(customer.version), Json(CustomerView::from(customer))))
}

/// Check an email and password; 401 `invalid_credentials` whether the email is unknown or
/// the password wrong, with the same body and after the same work.
#[utoipa::path(post, path = "/customers/credentials", tag = "customers", request_body = Credentials,
    responses((status = 200, body = CredentialsOwner), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn check_credentials(
    State(customers): State<Customers>,
    actor: Actor,
    access: Access,
    Json(body): Json<Credentials>,
) -> ApiResult<Json<CredentialsOwner>> {
    access.require_gateway()?;
    match customers.check_credentials(&body.email, &body.password, &actor).await? {
        Some(customer_id) => Ok(Json(CredentialsOwner { customer_id })),
        None => Err(invalid_credentials()),
    }
}

/// An accepted erasure.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureAccepted {
    pub erasure_id: Uuid,
}

/// Forget a customer: their data key is shredded at once (nothing sealed with it opens again,
/// anywhere), and every service drops what it derived; progress at `/customers/{id}/erasure`.
#[utoipa::path(delete, path = "/customers/{id}", tag = "customers",
    params(("id" = String, Path, description = "the customer's id")),
    responses((status = 202, body = ErasureAccepted), (status = 404, body = Problem)))]
async fn erase_customer(
    State(customers): State<Customers>,
    actor: Actor,
    access: Access,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id(&id)?;
    access.change_person(&id.to_string(), "erase a person")?;
    let erasure_id =
        customers.erase(id, &actor).await?.ok_or_else(|| Problem::not_found(format!("no customer {id}")))?;
    Ok((StatusCode::ACCEPTED, Json(ErasureAccepted { erasure_id })))
}

/// An erasure's progress, as API.md gives it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureView {
    pub erasure_id: Uuid,
    pub customer_id: Uuid,
    pub requested_at: String,
    /// `pending`, or `complete` once every service has reported done.
    pub status: &'static str,
    /// Each service's part: `pending` or `done`.
    pub services: std::collections::BTreeMap<String, &'static str>,
    /// When each service that is done reported it (RFC 3339, UTC).
    pub done_at: std::collections::BTreeMap<String, String>,
    /// Every service has reported done (the same as `status == "complete"`).
    pub complete: bool,
}

impl From<Erasure> for ErasureView {
    fn from(erasure: Erasure) -> Self {
        Self {
            erasure_id: erasure.id,
            customer_id: erasure.customer_id,
            requested_at: erasure.requested_at.to_rfc3339(),
            status: if erasure.complete() { "complete" } else { "pending" },
            complete: erasure.complete(),
            services: erasure
                .services
                .iter()
                .map(|(service, done)| (service.clone(), if done.is_some() { "done" } else { "pending" }))
                .collect(),
            done_at: erasure
                .services
                .iter()
                .filter_map(|(service, done)| done.as_ref().map(|at| (service.clone(), at.to_rfc3339())))
                .collect(),
        }
    }
}

/// How far an erasure has got, per service.
#[utoipa::path(get, path = "/customers/{id}/erasure", tag = "customers",
    params(("id" = String, Path, description = "the customer's id")),
    responses((status = 200, body = ErasureView), (status = 404, body = Problem)))]
async fn erasure_progress(
    State(customers): State<Customers>,
    access: Access,
    Path(id): Path<String>,
) -> ApiResult<Json<ErasureView>> {
    let id = parse_id(&id)?;
    access.change_person(&id.to_string(), "erase a person")?;
    let erasure =
        customers.erasure(id).await?.ok_or_else(|| Problem::not_found(format!("no erasure of {id}")))?;
    Ok(Json(ErasureView::from(erasure)))
}
