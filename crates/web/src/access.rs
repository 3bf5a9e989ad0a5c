//! Who may do what: the one set of role and ownership rules that the gateway applies at the
//! edge and every service applies again to the token it is shown, so that a token stolen on
//! the inside network reaches no more than its holder could through the gateway.
//!
//! Roles are the names tokens carry: `customer`, `support`, `admin`, and `service` (the
//! gateway's own identity, acting on nobody's behalf). A customer reaches only their own
//! objects; staff (support and admin) reach every customer's; the gateway's identity reaches
//! what it asks for, since it has applied the rules for its caller already.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;

use crate::Problem;
use crate::token::VerifiedCaller;

pub const CUSTOMER: &str = "customer";
pub const SUPPORT: &str = "support";
pub const ADMIN: &str = "admin";
/// The gateway's own identity.
pub const SERVICE: &str = "service";
/// The subject of the gateway's own identity.
pub const GATEWAY: &str = "gateway";

/// Support or admin.
pub fn is_staff(role: &str) -> bool {
    matches!(role, SUPPORT | ADMIN)
}

/// Whether `role`:`subject` may see or change objects owned by the customer `owner`.
pub fn may_see(role: &str, subject: &str, owner: &str) -> bool {
    is_staff(role) || role == SERVICE || (role == CUSTOMER && subject == owner)
}

/// Whether `role`:`subject` may change or erase the person `owner`, or export their data:
/// the person themself or an admin; support may read a profile, never change it.
pub fn may_change_person(role: &str, subject: &str, owner: &str) -> bool {
    matches!(role, ADMIN | SERVICE) || (role == CUSTOMER && subject == owner)
}

/// Why a caller may not change the person `owner`: support learns it is forbidden, anyone
/// else that there is no such person (they may not learn the id exists).
pub fn refuse_person_change(role: &str, what: &str) -> Problem {
    if role == SUPPORT {
        forbidden(&format!("support may not {what}"))
    } else {
        Problem::not_found("no such customer")
    }
}

/// The customer filter of a list: a customer's is forced to their own id (another id is
/// refused), anybody else's is what they asked for.
pub fn own_list_filter(role: &str, subject: &str, asked: Option<&str>) -> Result<Option<String>, Problem> {
    match (role, asked) {
        (CUSTOMER, Some(id)) if id != subject => Err(forbidden("a customer lists only their own")),
        (CUSTOMER, _) => Ok(Some(subject.to_owned())),
        (_, asked) => Ok(asked.map(str::to_owned)),
    }
}

/// 403: a valid caller without the right role.
pub fn forbidden(detail: &str) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "forbidden", detail)
}

/// A service's view of who is calling it.
///
/// Over the network the caller is the verified token's (see [`crate::token::ServiceAuth`]);
/// every rule applies. A call from the gateway in the same process (the embedded topology)
/// crosses no network and has been checked at the edge already, so no rule is applied twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    InProcess,
    Token(VerifiedCaller),
}

impl Access {
    /// Whether this caller may see objects owned by `owner`.
    pub fn may_see(&self, owner: &str) -> bool {
        match self {
            Self::InProcess => true,
            Self::Token(caller) => may_see(&caller.role, &caller.sub, owner),
        }
    }

    /// An object owned by `owner`, or 404 as if it did not exist (a caller who may not see it
    /// does not learn that it exists).
    pub fn see(&self, owner: &str, what: &str) -> Result<(), Problem> {
        if self.may_see(owner) { Ok(()) } else { Err(Problem::not_found(format!("no such {what}"))) }
    }

    /// Acting for `owner`: creating something in their name.
    pub fn act_for(&self, owner: &str) -> Result<(), Problem> {
        if self.may_see(owner) { Ok(()) } else { Err(forbidden("the body names another customer")) }
    }

    /// Changing, erasing or exporting the person `owner` (see [`may_change_person`]); `what`
    /// names the act for support's refusal, e.g. "erase a person".
    pub fn change_person(&self, owner: &str, what: &str) -> Result<(), Problem> {
        match self {
            Self::InProcess => Ok(()),
            Self::Token(caller) if may_change_person(&caller.role, &caller.sub, owner) => Ok(()),
            Self::Token(caller) => Err(refuse_person_change(&caller.role, what)),
        }
    }

    /// Refuses callers whose role is not among `roles`.
    pub fn require(&self, roles: &[&str]) -> Result<(), Problem> {
        match self {
            Self::InProcess => Ok(()),
            Self::Token(caller) if roles.contains(&caller.role.as_str()) => Ok(()),
            Self::Token(_) => Err(forbidden(&format!("this needs the role {}", roles.join(" or ")))),
        }
    }

    /// Only the gateway's own identity (sign-in's credential check, registration).
    pub fn require_gateway(&self) -> Result<(), Problem> {
        match self {
            Self::InProcess => Ok(()),
            Self::Token(caller) if caller.role == SERVICE && caller.sub == GATEWAY => Ok(()),
            Self::Token(_) => Err(forbidden("only the gateway may call this")),
        }
    }

    /// The customer filter of a list (see [`own_list_filter`]).
    pub fn list_filter(&self, asked: Option<&str>) -> Result<Option<String>, Problem> {
        match self {
            Self::InProcess => Ok(asked.map(str::to_owned)),
            Self::Token(caller) => own_list_filter(&caller.role, &caller.sub, asked),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Access {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<VerifiedCaller>().cloned().map_or(Self::InProcess, Self::Token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(role: &str, sub: &str) -> Access {
        Access::Token(VerifiedCaller { sub: sub.into(), role: role.into() })
    }

    #[test]
    fn a_customer_sees_only_their_own_and_staff_and_the_gateway_see_all() {
        assert!(token(CUSTOMER, "a").may_see("a"));
        assert!(!token(CUSTOMER, "a").may_see("b"));
        assert!(token(SUPPORT, "s@x").may_see("b"));
        assert!(token(ADMIN, "root@x").may_see("b"));
        assert!(token(SERVICE, GATEWAY).may_see("b"));
        assert!(!token("stranger", "b").may_see("b"), "an unknown role is nobody");
        assert_eq!(token(CUSTOMER, "a").see("b", "order").map_err(|p| p.status), Err(StatusCode::NOT_FOUND));
    }

    #[test]
    fn only_the_person_or_an_admin_changes_a_person_and_support_hears_why() {
        assert!(token(CUSTOMER, "a").change_person("a", "erase a person").is_ok());
        assert!(token(ADMIN, "r").change_person("a", "erase a person").is_ok());
        let support = token(SUPPORT, "s").change_person("a", "erase a person").expect_err("support");
        assert_eq!(support.status, StatusCode::FORBIDDEN);
        let other = token(CUSTOMER, "b").change_person("a", "erase a person").expect_err("another");
        assert_eq!(other.status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn only_the_gateway_identity_passes_the_gateway_check() {
        assert!(token(SERVICE, GATEWAY).require_gateway().is_ok());
        assert!(token(ADMIN, GATEWAY).require_gateway().is_err());
        assert!(token(SERVICE, "orders").require_gateway().is_err());
        assert!(token(CUSTOMER, "a").require_gateway().is_err());
    }

    #[test]
    fn a_customer_list_is_forced_to_their_own_id() {
        assert_eq!(token(CUSTOMER, "a").list_filter(None).expect("own"), Some("a".into()));
        assert!(token(CUSTOMER, "a").list_filter(Some("b")).is_err());
        assert_eq!(token(SUPPORT, "s").list_filter(None).expect("all"), None);
        assert_eq!(token(ADMIN, "r").list_filter(Some("b")).expect("b"), Some("b".into()));
    }

    #[test]
    fn roles_are_required_over_the_network_only() {
        assert!(token(CUSTOMER, "a").require(&[ADMIN]).is_err());
        assert!(token(ADMIN, "r").require(&[ADMIN]).is_ok());
        assert!(Access::InProcess.require(&[ADMIN]).is_ok());
    }
}
