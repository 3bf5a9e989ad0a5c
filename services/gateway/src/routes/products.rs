//! The catalogue (inventory's products): reads through the gateway's cache, changes by admins,
//! each change emptying the cached entries it affects.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::Value;
use tessera_web::{ApiResult, Json, Path};

use crate::access::{Caller, MaybeCaller, require};
use crate::auth::Role;
use crate::catalogue::{CacheKey, groups_for};
use crate::forward::{if_match, pass_on, sku, unavailable, with_query};
use crate::state::Gateway;

pub(super) fn router() -> Router<Gateway> {
    Router::new()
        .route("/products", get(list_products).post(create_product))
        .route("/products/{sku}", get(get_product).patch(update_product))
        .route("/products/{sku}/stock", post(adjust_stock))
}

impl Gateway {
    /// After a change made through this gateway, its caller reads it back at once: the entries
    /// are emptied now, not only when inventory's event arrives.
    pub(crate) async fn saw_product_change(&self, changed: bool, sku: &str) {
        if let Some(catalogue) = &self.catalogue
            && changed
        {
            catalogue.invalidate(groups_for(sku)).await;
        }
    }
}

async fn list_products(
    State(g): State<Gateway>,
    _caller: MaybeCaller,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let query = query.unwrap_or_default();
    match list_page(&query) {
        Some(page) => g
            .catalogue_read(
                with_query("/products", Some(&page)),
                CacheKey::list(&page),
                g.config.call_timeout,
            )
            .await
            .map(pass_on)
            .map_err(|e| unavailable(&e)),
        // Anything but a plain page is inventory's to answer (or refuse), uncached.
        None => {
            g.forward(&g.services.inventory, Method::GET, &with_query("/products", Some(&query)), None, &[])
                .await
        }
    }
}

/// A list query in one canonical form (`cursor`, then `limit` as a number), so that one page
/// is one cache entry however a client spells it; `None` for any other query.
fn list_page(query: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).ok()?;
    let (mut limit, mut cursor) = (None, None);
    for (name, value) in pairs {
        match name.as_str() {
            "limit" if limit.is_none() => limit = Some(value.parse::<u32>().ok()?.to_string()),
            "cursor" if cursor.is_none() => cursor = Some(value),
            _ => return None,
        }
    }
    let canonical: Vec<(&str, String)> = [("cursor", cursor), ("limit", limit)]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect();
    serde_urlencoded::to_string(canonical).ok()
}

async fn get_product(
    State(g): State<Gateway>,
    _caller: MaybeCaller,
    Path(text): Path<String>,
) -> ApiResult<Response> {
    let sku = sku(&text)?;
    g.catalogue_read(format!("/products/{sku}"), CacheKey::product(sku.as_str()), g.config.call_timeout)
        .await
        .map(pass_on)
        .map_err(|e| unavailable(&e))
}

async fn create_product(
    State(g): State<Gateway>,
    caller: Caller,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    require(&caller, &[Role::Admin])?;
    let sku = body.get("sku").and_then(Value::as_str).map(str::to_owned);
    let answer = g.forward(&g.services.inventory, Method::POST, "/products", Some(body), &[]).await?;
    if let Some(sku) = sku {
        g.saw_product_change(answer.status().is_success(), &sku).await;
    }
    Ok(answer)
}

async fn update_product(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    require(&caller, &[Role::Admin])?;
    let sku = sku(&text)?;
    let answer = g
        .forward(
            &g.services.inventory,
            Method::PATCH,
            &format!("/products/{sku}"),
            Some(body),
            &if_match(&headers),
        )
        .await?;
    g.saw_product_change(answer.status().is_success(), sku.as_str()).await;
    Ok(answer)
}

async fn adjust_stock(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    require(&caller, &[Role::Admin])?;
    let sku = sku(&text)?;
    let answer = g
        .forward(&g.services.inventory, Method::POST, &format!("/products/{sku}/stock"), Some(body), &[])
        .await?;
    g.saw_product_change(answer.status().is_success(), sku.as_str()).await;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::list_page;

    #[test]
    fn one_page_is_one_cache_key_however_it_is_spelt() {
        assert_eq!(list_page("").as_deref(), Some(""));
        assert_eq!(list_page("limit=05&cursor=TEA-1").as_deref(), Some("cursor=TEA-1&limit=5"));
        assert_eq!(list_page("cursor=TEA%2D1&limit=5").as_deref(), Some("cursor=TEA-1&limit=5"));
        // Anything else is forwarded as it is, uncached.
        for other in ["limit=x", "limit=1&limit=2", "color=red", "cursor=a&extra=1"] {
            assert_eq!(list_page(other), None, "{other}");
        }
    }
}
