//! Optimistic concurrency at the edge: a resource's version travels as a strong `ETag`; an
//! update names the version it read in `If-Match`, and the store refuses it if another write
//! came first (412).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponseParts, ResponseParts};

use crate::problem::Problem;

/// The `ETag` header for a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ETag(pub i64);

impl IntoResponseParts for ETag {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut parts: ResponseParts) -> Result<ResponseParts, Self::Error> {
        if let Ok(value) = HeaderValue::from_str(&format!("\"{}\"", self.0)) {
            parts.headers_mut().insert(header::ETAG, value);
        }
        Ok(parts)
    }
}

/// A required `If-Match`: the version the client last read, or `None` for `*` (any version).
/// Missing → 428; not one of our tags → 412 (it can never match).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IfMatch(pub Option<i64>);

impl IfMatch {
    /// Parses the header's value. A tag that names no version of ours (a weak one, or one we
    /// never made) is kept as a precondition no version meets: the write is refused with 412
    /// where the precondition is judged, after the request itself has been validated, as RFC
    /// 9110 §13.2.1 orders (a request that fails otherwise fails as it would without it).
    pub fn parse(value: &str) -> Self {
        let value = value.trim();
        if value == "*" {
            return Self(None);
        }
        // Weak tags never match for If-Match (RFC 9110 §13.1.1): only our strong tags do.
        let version = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(NO_VERSION);
        Self(Some(version))
    }

    /// True when `current` satisfies this precondition.
    pub fn matches(self, current: i64) -> bool {
        self.0.is_none_or(|version| version == current)
    }
}

/// A version no resource ever has (versions start at 1).
const NO_VERSION: i64 = -1;

/// The answer to a write that named a version which is no longer current.
pub fn stale() -> Problem {
    Problem::new(
        StatusCode::PRECONDITION_FAILED,
        "precondition_failed",
        "the resource changed since you read it; read it again and retry with its new ETag",
    )
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Err(Problem::new(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition_required",
                "send If-Match with the ETag you read",
            ));
        };
        Ok(value.to_str().map_or(Self(Some(NO_VERSION)), Self::parse))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_takes_our_strong_tags_and_the_wildcard() {
        assert_eq!(IfMatch::parse("\"7\"").0, Some(7));
        assert_eq!(IfMatch::parse("*").0, None);
        for foreign in ["W/\"7\"", "7", "\"x\""] {
            let precondition = IfMatch::parse(foreign);
            assert!((1..1000).all(|version| !precondition.matches(version)), "{foreign} matches nothing");
        }
        assert!(IfMatch(Some(3)).matches(3) && !IfMatch(Some(3)).matches(4) && IfMatch(None).matches(9));
    }
}
