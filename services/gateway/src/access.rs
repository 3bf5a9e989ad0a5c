//! Who is calling: the bearer token's claims, checked on every request. A route that needs a
//! caller takes [`Caller`]; one open to anyone takes [`MaybeCaller`], which still refuses a
//! token that is present but bad (a client should learn its token is broken).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tessera_kernel::Timestamp;
use tessera_web::Problem;

use crate::auth::{Claims, Role};
use crate::state::Gateway;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub sub: String,
    pub role: Role,
}

impl Caller {
    pub fn is_staff(&self) -> bool {
        tessera_web::access::is_staff(self.role.as_str())
    }

    /// Whether this caller is the customer `customer_id`.
    pub fn is(&self, customer_id: &str) -> bool {
        self.role == Role::Customer && self.sub == customer_id
    }

    /// A customer reaches only their own objects; staff reach all: the rule every service
    /// applies again to the token the gateway mints for it.
    pub fn may_see(&self, customer_id: &str) -> bool {
        tessera_web::access::may_see(self.role.as_str(), &self.sub, customer_id)
    }
}

impl From<Claims> for Caller {
    fn from(claims: Claims) -> Self {
        Self { sub: claims.sub, role: claims.role }
    }
}

/// 401 with the challenge RFC 6750 asks for.
#[derive(Debug)]
pub struct Unauthorized(Problem);

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    }
}

fn unauthorized(detail: &str) -> Unauthorized {
    Unauthorized(Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail))
}

fn bearer(parts: &Parts) -> Result<Option<&str>, Unauthorized> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| unauthorized("the Authorization header is not text"))?;
    tessera_web::token::bearer_token(value)
        .map(Some)
        .ok_or_else(|| unauthorized("use Authorization: Bearer <token>"))
}

fn verify(gateway: &Gateway, token: &str) -> Result<Caller, Unauthorized> {
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let claims = gateway.keys.verify(token, now).map_err(|error| {
        tracing::info!(%error, "token refused");
        unauthorized("the token is missing, expired, not yet valid or not ours")
    })?;
    // The gateway's own identity is for calls to services, never for a client at the edge.
    if claims.role == Role::Service {
        tracing::warn!("a service token was presented at the edge");
        return Err(unauthorized("this token is not for clients"));
    }
    crate::delegation::verified(claims.role.as_str(), &claims.sub);
    Ok(Caller::from(claims))
}

impl FromRequestParts<Gateway> for Caller {
    type Rejection = Unauthorized;

    async fn from_request_parts(parts: &mut Parts, gateway: &Gateway) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?.ok_or_else(|| unauthorized("this route needs a bearer token"))?;
        verify(gateway, token)
    }
}

/// A caller when a token is sent; nobody when none is.
#[derive(Clone, Debug)]
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequestParts<Gateway> for MaybeCaller {
    type Rejection = Unauthorized;

    async fn from_request_parts(parts: &mut Parts, gateway: &Gateway) -> Result<Self, Self::Rejection> {
        match bearer(parts)? {
            None => Ok(Self(None)),
            Some(token) => verify(gateway, token).map(|caller| Self(Some(caller))),
        }
    }
}

/// 403: a valid caller without the right role.
pub fn forbidden(detail: &str) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "forbidden", detail)
}

/// Refuses callers whose role is not among `roles`.
pub fn require(caller: &Caller, roles: &[Role]) -> Result<(), Problem> {
    if roles.contains(&caller.role) {
        Ok(())
    } else {
        let names: Vec<_> = roles.iter().map(|r| r.as_str()).collect();
        Err(forbidden(&format!("this needs the role {}", names.join(" or "))))
    }
}
