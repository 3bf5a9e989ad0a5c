//! Inventory's HTTP routes: the product catalogue and stock adjustments. Handlers parse,
//! call `Inventory`, and map the outcome; every error leaves as a problem with a stable code.
//! Each route applies the shared access rules (`tessera_web::access`) to the token it is
//! shown: any caller the gateway vouches for reads the catalogue, only admins change it.

// utoipa's path macro writes fully qualified paths into the code it generates.
#![allow(unused_qualifications)]

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use tessera_contracts::{Money, Sku};
use tessera_web::access::{ADMIN, Access};
use tessera_web::token::Actor;
use tessera_web::{
    ApiResult, ETag, FieldError, IfMatch, Json, Path, Problem, Query, page_limit, stale, store_problem,
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::{AppError, Inventory, Product, ProductChanges};
use crate::domain::InventoryError;

/// The most units one product can hold or one adjustment can move.
const MAX_STOCK: i64 = 1_000_000_000;
const MAX_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 4000;
const MAX_REASON: usize = 500;
/// The largest price, in minor units: ten million of the major unit.
const MAX_PRICE: i64 = 1_000_000_000;

/// The routes of this service, with their OpenAPI description.
pub fn router() -> OpenApiRouter<Inventory> {
    OpenApiRouter::new()
        .routes(routes!(list_products, create_product))
        .routes(routes!(get_product, update_product))
        .routes(routes!(adjust_stock))
}

impl From<AppError> for Problem {
    fn from(error: AppError) -> Self {
        match error {
            AppError::Domain(InventoryError::UnknownSku(sku)) => {
                Problem::not_found(format!("no product {sku}"))
            }
            AppError::Domain(error @ InventoryError::BelowZero { .. }) => {
                Problem::conflict(error.code(), error.to_string())
            }
            AppError::Domain(error) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, error.code(), error.to_string())
            }
            AppError::Duplicate(sku) => {
                Problem::conflict("duplicate_sku", format!("a product with sku {sku} exists already"))
            }
            AppError::Stale { .. } => stale(),
            AppError::Currency { expected } => {
                Problem::invalid_field("price.currency", format!("prices of this product are in {expected}"))
            }
            AppError::Store(error) => store_problem(&error),
            AppError::Corrupt(_) => Problem::internal(&error),
        }
    }
}

/// A product in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductItem {
    #[schema(value_type = String, example = "TEA-001")]
    pub sku: Sku,
    pub name: String,
    pub price: Money,
    pub available: i64,
}

/// A page of products, in sku order.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductPage {
    pub items: Vec<ProductItem>,
    /// Pass as `?cursor=` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

/// One product with its stock.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductView {
    #[schema(value_type = String, example = "TEA-001")]
    pub sku: Sku,
    pub name: String,
    pub description: String,
    pub price: Money,
    pub available: i64,
    pub reserved: i64,
}

impl From<&Product> for ProductView {
    fn from(product: &Product) -> Self {
        Self {
            sku: product.sku.clone(),
            name: product.name.clone(),
            description: product.description.clone(),
            price: product.price.clone(),
            available: product.level.available,
            reserved: product.level.reserved,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    #[schema(value_type = String, pattern = "^[A-Z0-9-]{3,32}$", example = "TEA-001")]
    pub sku: Sku,
    /// Not blank.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 4000)]
    pub description: Option<String>,
    #[schema(schema_with = product_price_schema)]
    pub price: Money,
    /// Units in stock at creation.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    #[serde(deserialize_with = "tessera_contracts::whole_number")]
    pub stock: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<String>,
    #[schema(max_length = 4000)]
    pub description: Option<String>,
    #[schema(schema_with = product_price_schema)]
    pub price: Option<Money>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockAdjustment {
    /// Units to add (positive) or remove (negative); not zero.
    #[schema(schema_with = stock_delta_schema)]
    #[serde(deserialize_with = "tessera_contracts::whole_number")]
    pub delta: i64,
    /// Not blank.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    pub reason: String,
}

/// A product's price in the document: a `Money` of at most the catalogue's limit.
fn product_price_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::Object)
        .property(
            "amount",
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::Type::Integer)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64)))
                .minimum(Some(0))
                .maximum(Some(MAX_PRICE)),
        )
        .property(
            "currency",
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::Type::String)
                .pattern(Some("^[A-Z]{3}$")),
        )
        .required("amount")
        .required("currency")
        .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(false)))
        .description(Some("Minor units (cents) and an ISO 4217 code."))
        .build()
}

/// A stock change's `delta` in the document: from 1 to the limit, or from minus the limit to -1.
fn stock_delta_schema() -> utoipa::openapi::schema::Schema {
    let range = |low: i64, high: i64| {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::Integer)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64)))
            .minimum(Some(low))
            .maximum(Some(high))
    };
    utoipa::openapi::schema::OneOfBuilder::new()
        .item(range(1, MAX_STOCK))
        .item(range(-MAX_STOCK, -1))
        .description(Some("Units to add (positive) or remove (negative); not zero."))
        .build()
        .into()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StockAvailable {
    pub available: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (a sku).
    #[param(pattern = "^([A-Z0-9-]{3,32})?$")]
    pub cursor: Option<String>,
}

fn check_text(errors: &mut Vec<FieldError>, field: &str, value: &str, max: usize, required: bool) {
    if required && value.trim().is_empty() {
        errors.push(FieldError::new(field, "must not be empty"));
    } else if value.chars().count() > max {
        errors.push(FieldError::new(field, format!("must be at most {max} characters")));
    }
}

fn check_price(errors: &mut Vec<FieldError>, price: &Money) {
    if !(0..=MAX_PRICE).contains(&price.amount) {
        errors.push(FieldError::new("price.amount", format!("must be between 0 and {MAX_PRICE}")));
    }
}

fn ensure_valid(errors: Vec<FieldError>) -> ApiResult<()> {
    if errors.is_empty() { Ok(()) } else { Err(Problem::invalid(errors)) }
}

fn parse_sku(text: &str) -> ApiResult<Sku> {
    // A malformed sku names no product: the same answer as an unknown one.
    Sku::parse(text).map_err(|_| Problem::not_found(format!("no product {text}")))
}

/// List products.
#[utoipa::path(get, path = "/products", tag = "products", params(PageQuery),
    responses((status = 200, body = ProductPage), (status = 422, body = Problem)))]
async fn list_products(
    State(inventory): State<Inventory>,
    Query(query): Query<PageQuery>,
) -> ApiResult<Json<ProductPage>> {
    let limit = page_limit(query.limit)?;
    let after = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(cursor) => Some(
            Sku::parse(cursor).map_err(|_| Problem::invalid_field("cursor", "not a cursor of this list"))?,
        ),
    };
    let mut products = inventory.products_page(after.as_ref(), limit + 1).await?;
    let more = products.len() > limit as usize;
    products.truncate(limit as usize);
    let next_cursor = if more { products.last().map(|p| p.sku.to_string()) } else { None };
    let items = products
        .into_iter()
        .map(|p| ProductItem { sku: p.sku, name: p.name, price: p.price, available: p.level.available })
        .collect();
    Ok(Json(ProductPage { items, next_cursor }))
}

/// Add a product with its initial stock.
#[utoipa::path(post, path = "/products", tag = "products", request_body = NewProduct,
    responses((status = 201, body = ProductView), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_product(
    State(inventory): State<Inventory>,
    actor: Actor,
    access: Access,
    Json(body): Json<NewProduct>,
) -> ApiResult<impl IntoResponse> {
    access.require(&[ADMIN])?;
    let mut errors = Vec::new();
    check_text(&mut errors, "name", &body.name, MAX_NAME, true);
    check_text(
        &mut errors,
        "description",
        body.description.as_deref().unwrap_or_default(),
        MAX_DESCRIPTION,
        false,
    );
    check_price(&mut errors, &body.price);
    if !(0..=MAX_STOCK).contains(&body.stock) {
        errors.push(FieldError::new("stock", format!("must be between 0 and {MAX_STOCK}")));
    }
    ensure_valid(errors)?;
    let description = body.description.unwrap_or_default();
    inventory
        .create_product(&body.sku, body.name.trim(), &description, &body.price, body.stock, &actor)
        .await?;
    let product =
        inventory.product(&body.sku).await?.ok_or_else(|| Problem::internal(&"created product vanished"))?;
    Ok((StatusCode::CREATED, ETag(product.version), Json(ProductView::from(&product))))
}

/// One product, with its ETag.
#[utoipa::path(get, path = "/products/{sku}", tag = "products",
    params(("sku" = String, Path, description = "the product's sku")),
    responses((status = 200, body = ProductView, headers(("ETag" = String))), (status = 404, body = Problem)))]
async fn get_product(
    State(inventory): State<Inventory>,
    Path(sku): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let sku = parse_sku(&sku)?;
    let product =
        inventory.product(&sku).await?.ok_or_else(|| Problem::not_found(format!("no product {sku}")))?;
    Ok((ETag(product.version), Json(ProductView::from(&product))))
}

/// Change a product's name, description or price; `If-Match` names the version read.
#[utoipa::path(patch, path = "/products/{sku}", tag = "products", request_body = ProductPatch,
    params(("sku" = String, Path, description = "the product's sku"),
           ("If-Match" = String, Header, description = "the ETag last read")),
    responses((status = 200, body = ProductView), (status = 404, body = Problem), (status = 412, body = Problem),
              (status = 428, body = Problem), (status = 422, body = Problem)))]
async fn update_product(
    State(inventory): State<Inventory>,
    actor: Actor,
    access: Access,
    Path(sku): Path<String>,
    if_match: IfMatch,
    Json(body): Json<ProductPatch>,
) -> ApiResult<impl IntoResponse> {
    access.require(&[ADMIN])?;
    let sku = parse_sku(&sku)?;
    let mut errors = Vec::new();
    if let Some(name) = &body.name {
        check_text(&mut errors, "name", name, MAX_NAME, true);
    }
    if let Some(description) = &body.description {
        check_text(&mut errors, "description", description, MAX_DESCRIPTION, false);
    }
    if let Some(price) = &body.price {
        check_price(&mut errors, price);
    }
    ensure_valid(errors)?;
    let changes = ProductChanges {
        name: body.name.map(|n| n.trim().to_owned()),
        description: body.description,
        price: body.price,
    };
    let product = inventory.update_product(&sku, if_match.0, changes, &actor).await?;
    Ok((ETag(product.version), Json(ProductView::from(&product))))
}

/// Add or remove stock, with a reason; never below zero.
#[utoipa::path(post, path = "/products/{sku}/stock", tag = "products", request_body = StockAdjustment,
    params(("sku" = String, Path, description = "the product's sku")),
    responses((status = 200, body = StockAvailable), (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
async fn adjust_stock(
    State(inventory): State<Inventory>,
    actor: Actor,
    access: Access,
    Path(sku): Path<String>,
    Json(body): Json<StockAdjustment>,
) -> ApiResult<Json<StockAvailable>> {
    access.require(&[ADMIN])?;
    let sku = parse_sku(&sku)?;
    let mut errors = Vec::new();
    if body.delta == 0 || body.delta.abs() > MAX_STOCK {
        errors.push(FieldError::new(
            "delta",
            format!("must be non-zero and between -{MAX_STOCK} and {MAX_STOCK}"),
        ));
    }
    check_text(&mut errors, "reason", &body.reason, MAX_REASON, true);
    ensure_valid(errors)?;
    let level = inventory.adjust_stock(&sku, body.delta, body.reason.trim(), &actor).await?;
    Ok(Json(StockAvailable { available: level.available }))
}
