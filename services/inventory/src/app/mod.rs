//! The glue between inventory's rules and its store: product administration, and the
//! handler for the commands the order sagas send.

mod reservations;

use std::collections::BTreeMap;
use std::sync::Arc;
use tessera_web::token::Actor;

use tessera_contracts::inventory::{ProductCreated, ProductUpdated, StockChanged};
use tessera_contracts::{Currency, EnvelopeBuilder, Message, Money, Sku, envelope};
use tessera_kernel::{Envelope, HybridClock, IdGen};
use tessera_store::{Row, Statement, Store, StoreError, UnitOfWork};

use crate::domain::{InventoryError, StockLevel};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Domain(#[from] InventoryError),
    #[error("a product with sku {0} exists already")]
    Duplicate(Sku),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored data cannot be read: {0}")]
    Corrupt(String),
    #[error("the product is at version {current}, not the one named")]
    Stale { current: i64 },
    #[error("prices of this product are in {expected}")]
    Currency { expected: String },
}

/// The fields of a product an administrator may change; `None` keeps the current value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProductChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub price: Option<Money>,
}

/// A product as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Product {
    pub sku: Sku,
    pub name: String,
    pub description: String,
    pub price: Money,
    pub level: StockLevel,
    pub version: i64,
}

#[derive(Clone, Debug)]
pub struct Inventory {
    store: Store,
    ids: Arc<dyn IdGen>,
    clock: Arc<HybridClock>,
}

const PRODUCT_COLUMNS: &str = "sku, name, description, price, currency, available, reserved, sold, version";

fn product_from_row(row: &Row) -> Result<Product, AppError> {
    let corrupt = |e: &dyn std::fmt::Display| AppError::Corrupt(e.to_string());
    Ok(Product {
        sku: Sku::parse(row.text("sku")?).map_err(|e| corrupt(&e))?,
        name: row.text("name")?.to_owned(),
        description: row.text("description")?.to_owned(),
        price: Money::new(
            row.int("price")?,
            Currency::parse(row.text("currency")?).map_err(|e| corrupt(&e))?,
        )
        .map_err(|e| corrupt(&e))?,
        level: StockLevel {
            available: row.int("available")?,
            reserved: row.int("reserved")?,
            sold: row.int("sold")?,
        },
        version: row.int("version")?,
    })
}

impl Inventory {
    pub fn new(store: Store, ids: Arc<dyn IdGen>, clock: Arc<HybridClock>) -> Self {
        Self { store, ids, clock }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// `message` in its envelope, stamped with this service's ids and clock.
    fn build<M: Message>(&self, envelope: EnvelopeBuilder<'_, M>) -> Result<Envelope, AppError> {
        envelope.build(&*self.ids, self.clock.now()).map_err(|e| AppError::Corrupt(e.to_string()))
    }

    pub(crate) fn stock_changed(
        &self,
        unit: &mut UnitOfWork,
        cause: Option<&Envelope>,
        change: StockChanged,
    ) -> Result<(), AppError> {
        // Keyed by sku, so consumers see one product's changes in order; likewise below.
        unit.send(&self.build(envelope(&change, crate::SERVICE, change.sku.as_str()).caused_by(cause))?)?;
        Ok(())
    }

    /// Adds a product with its initial stock (recorded as the first adjustment).
    pub async fn create_product(
        &self,
        sku: &Sku,
        name: &str,
        description: &str,
        price: &Money,
        stock: i64,
        actor: &Actor,
    ) -> Result<(), AppError> {
        StockLevel::default().adjust(sku, stock)?;
        let mut unit = self.store.begin();
        unit.execute(
            Statement::new(format!(
                "INSERT INTO products ({PRODUCT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, 0, 0, 1)"
            ))
            .bind(sku.as_str())
            .bind(name)
            .bind(description)
            .bind(price.amount)
            .bind(String::from(price.currency.clone()))
            .bind(stock),
        );
        self.record_adjustment(&mut unit, sku, stock, "initial stock");
        let created = ProductCreated {
            sku: sku.clone(),
            name: name.to_owned(),
            price: price.clone(),
            available: stock,
        };
        unit.send(&self.build(envelope(&created, crate::SERVICE, sku.as_str()))?)?;
        unit.audit(actor.audit("product.create", format!("product/{sku}"), "ok", self.clock.now().wall()));
        match unit.commit().await {
            Ok(_) => Ok(()),
            Err(StoreError::Constraint(_)) => Err(AppError::Duplicate(sku.clone())),
            Err(error) => Err(error.into()),
        }
    }

    /// Adds `delta` (negative to remove) to the available stock; returns the new level.
    pub async fn adjust_stock(
        &self,
        sku: &Sku,
        delta: i64,
        reason: &str,
        actor: &Actor,
    ) -> Result<StockLevel, AppError> {
        let product = self.product(sku).await?.ok_or_else(|| InventoryError::UnknownSku(sku.clone()))?;
        product.level.adjust(sku, delta)?;
        let mut unit = self.store.begin();
        unit.execute(
            Statement::new(
                "UPDATE products SET available = available + $2, version = version + 1
                 WHERE sku = $1 AND available + $2 >= 0",
            )
            .bind(sku.as_str())
            .bind(delta)
            .expect_rows(1, "stock_below_zero"),
        );
        self.record_adjustment(&mut unit, sku, delta, reason);
        let change = StockChanged {
            sku: sku.clone(),
            cause: "adjustment".into(),
            order_id: None,
            available_delta: delta,
            reserved_delta: 0,
            sold_delta: 0,
        };
        self.stock_changed(&mut unit, None, change)?;
        unit.audit(actor.audit(
            "product.adjust_stock",
            format!("product/{sku}"),
            "ok",
            self.clock.now().wall(),
        ));
        match unit.commit().await {
            Ok(_) => {}
            // Someone reserved in between: judge again on fresh numbers.
            Err(StoreError::Rejected { .. }) => {
                let now = self.product(sku).await?.map(|p| p.level).unwrap_or_default();
                return Err(
                    InventoryError::BelowZero { sku: sku.clone(), available: now.available, delta }.into()
                );
            }
            Err(error) => return Err(error.into()),
        }
        Ok(self.product(sku).await?.map(|p| p.level).unwrap_or_default())
    }

    fn record_adjustment(&self, unit: &mut UnitOfWork, sku: &Sku, delta: i64, reason: &str) {
        let at = i64::try_from(self.clock.now().wall().as_micros()).unwrap_or(i64::MAX);
        unit.execute(
            Statement::new(
                "INSERT INTO adjustments (id, sku, delta, reason, at) VALUES ($5, $1, $2, $3, $4)",
            )
            .bind(sku.as_str())
            .bind(delta)
            .bind(reason)
            .bind(at)
            .bind(tessera_kernel::MessageId::generate(&*self.ids).to_string()),
        );
    }

    pub async fn product(&self, sku: &Sku) -> Result<Option<Product>, AppError> {
        let rows = self
            .store
            .query(
                Statement::new(format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE sku = $1"))
                    .bind(sku.as_str()),
            )
            .await?;
        rows.first().map(product_from_row).transpose()
    }

    /// Changes a product's description fields if it is still at `expected_version` (`None`:
    /// whatever version it is at). The version guard is in the UPDATE itself, so two writers
    /// that read the same version cannot both succeed.
    pub async fn update_product(
        &self,
        sku: &Sku,
        expected_version: Option<i64>,
        changes: ProductChanges,
        actor: &Actor,
    ) -> Result<Product, AppError> {
        let current = self.product(sku).await?.ok_or_else(|| InventoryError::UnknownSku(sku.clone()))?;
        let version = expected_version.unwrap_or(current.version);
        if version != current.version {
            return Err(AppError::Stale { current: current.version });
        }
        if let Some(price) = &changes.price
            && price.currency != current.price.currency
        {
            return Err(AppError::Currency { expected: current.price.currency.clone().into() });
        }
        let updated = Product {
            name: changes.name.unwrap_or(current.name),
            description: changes.description.unwrap_or(current.description),
            price: changes.price.unwrap_or(current.price),
            version: version + 1,
            ..current
        };
        let mut unit = self.store.begin();
        unit.execute(
            Statement::new(
                "UPDATE products SET name = $2, description = $3, price = $4, version = $5
                 WHERE sku = $1 AND version = $6",
            )
            .bind(sku.as_str())
            .bind(updated.name.as_str())
            .bind(updated.description.as_str())
            .bind(updated.price.amount)
            .bind(updated.version)
            .bind(version)
            .expect_rows(1, "stale_version"),
        );
        let event = ProductUpdated {
            sku: sku.clone(),
            name: updated.name.clone(),
            description: updated.description.clone(),
            price: updated.price.clone(),
            version: updated.version,
        };
        unit.send(&self.build(envelope(&event, crate::SERVICE, sku.as_str()))?)?;
        unit.audit(actor.audit("product.update", format!("product/{sku}"), "ok", self.clock.now().wall()));
        match unit.commit().await {
            Ok(_) => Ok(updated),
            Err(StoreError::Rejected { .. }) => {
                let now = self.product(sku).await?.map_or(0, |p| p.version);
                Err(AppError::Stale { current: now })
            }
            Err(error) => Err(error.into()),
        }
    }

    /// One page of products in sku order, starting after `after`.
    pub async fn products_page(&self, after: Option<&Sku>, limit: u32) -> Result<Vec<Product>, AppError> {
        let rows = self
            .store
            .query(
                Statement::new(format!(
                    "SELECT {PRODUCT_COLUMNS} FROM products WHERE sku > $1 ORDER BY sku LIMIT $2"
                ))
                .bind(after.map_or("", Sku::as_str))
                .bind(i64::from(limit)),
            )
            .await?;
        rows.iter().map(product_from_row).collect()
    }

    pub async fn products(&self) -> Result<Vec<Product>, AppError> {
        let rows = self
            .store
            .query(Statement::new(format!("SELECT {PRODUCT_COLUMNS} FROM products ORDER BY sku")))
            .await?;
        rows.iter().map(product_from_row).collect()
    }

    /// Per sku: the sum of every adjustment (initial stock included) next to the current level.
    /// Equal for every sku, always: stock is conserved.
    pub async fn conservation(&self) -> Result<BTreeMap<Sku, (i64, StockLevel)>, AppError> {
        let adjustments = self
            .store
            .query(Statement::new(
                "SELECT sku, CAST(sum(delta) AS BIGINT) AS total FROM adjustments GROUP BY sku",
            ))
            .await?;
        let mut totals = BTreeMap::new();
        for row in adjustments {
            let sku = Sku::parse(row.text("sku")?).map_err(|e| AppError::Corrupt(e.to_string()))?;
            totals.insert(sku, (row.int("total")?, StockLevel::default()));
        }
        for product in self.products().await? {
            totals.entry(product.sku).or_insert((0, StockLevel::default())).1 = product.level;
        }
        Ok(totals)
    }
}
