//! What is cached and under which key: a service's answer, in groups per product and for
//! every list.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::backend::CacheError;
use crate::clients::Reply;

/// The group of every product list.
const LISTS: &str = "products";

/// A service's answer as kept in the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedReply {
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    pub body: String,
}

impl CachedReply {
    pub(crate) fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, CacheError> {
        serde_json::from_slice(bytes).map_err(|e| CacheError::Corrupt(e.to_string()))
    }

    pub fn from_reply(reply: &Reply) -> Self {
        let text = |name: axum::http::HeaderName| {
            reply.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
        };
        Self {
            status: reply.status.as_u16(),
            content_type: text(axum::http::header::CONTENT_TYPE),
            etag: text(axum::http::header::ETAG),
            body: String::from_utf8_lossy(&reply.body).into_owned(),
        }
    }

    pub fn into_reply(self) -> Reply {
        let mut headers = axum::http::HeaderMap::new();
        for (name, value) in
            [(axum::http::header::CONTENT_TYPE, self.content_type), (axum::http::header::ETAG, self.etag)]
        {
            if let Some(value) = value.and_then(|v| axum::http::HeaderValue::from_str(&v).ok()) {
                headers.insert(name, value);
            }
        }
        Reply {
            status: axum::http::StatusCode::from_u16(self.status)
                .unwrap_or(axum::http::StatusCode::BAD_GATEWAY),
            headers,
            body: Bytes::from(self.body),
        }
    }

    /// Answers worth keeping: a product, a list, or "no such product" (until it is created).
    pub(crate) fn cacheable(&self) -> bool {
        self.status == 200 || self.status == 404
    }
}

/// Where an entry lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub(crate) group: String,
    pub(crate) field: String,
}

impl CacheKey {
    pub fn product(sku: &str) -> Self {
        Self { group: product_group(sku), field: String::new() }
    }

    pub fn list(query: &str) -> Self {
        Self { group: LISTS.to_owned(), field: query.to_owned() }
    }
}

fn product_group(sku: &str) -> String {
    format!("product:{sku}")
}

/// The groups an event about `sku` makes stale.
pub fn groups_for(sku: &str) -> Vec<String> {
    vec![product_group(sku), LISTS.to_owned()]
}
