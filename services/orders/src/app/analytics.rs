//! Sales analytics: units, revenue, orders and buyers per day, product and market, counted from
//! the orders' events. The buyer and the order appear only as keyed pseudonyms (HMAC with keys
//! the vault holds), never as a customer id, an order id or anything about the person, so the
//! table can be shared with analysts; and since the pseudonyms are stable, a rebuild from the
//! event store gives the same table. It is an asynchronous projection: the runner applies
//! events a moment after they commit and rebuilds it like any read model.

use std::sync::Arc;
use tessera_projection::Projection;
use tessera_store::{RecordedEvent, Statement, Store, UnitOfWork};

use tessera_vault::Sealer;
use uuid::Uuid;

use crate::domain::OrderEvent;

pub const TABLE: &str = "analytics_sales";
pub const NAME: &str = "analytics_sales";

/// The market of orders placed before it was recorded.
const UNKNOWN_COUNTRY: &str = "ZZ";

pub(crate) fn create(table: &str, index_prefix: &str) -> Vec<String> {
    vec![
        format!(
            "CREATE TABLE {table} (
                order_key TEXT NOT NULL, sku TEXT NOT NULL, buyer TEXT NOT NULL, country TEXT NOT NULL,
                day TEXT NOT NULL, quantity BIGINT NOT NULL, unit_price BIGINT, currency TEXT,
                status TEXT NOT NULL, PRIMARY KEY (order_key, sku))"
        ),
        format!("CREATE INDEX {index_prefix}_day ON {table} (status, day)"),
    ]
}

/// One line of an order as the analytics see it, keyed by pseudonyms.
#[derive(Clone, Debug)]
pub struct SalesAnalytics {
    vault: Arc<dyn Sealer>,
}

impl SalesAnalytics {
    pub fn new(vault: Arc<dyn Sealer>) -> Self {
        Self { vault }
    }

    /// Every statement `event` (of the order `order_id`, recorded on `day`) makes; applying
    /// them again changes nothing, as a rebuild's catch-up needs.
    fn statements(&self, table: &str, order_id: Uuid, event: &OrderEvent, day: &str) -> Vec<Statement> {
        let order_key = self.vault.pseudonym(&format!("order:{order_id}"));
        match event {
            OrderEvent::Placed { customer_id, lines, country, .. } => {
                let buyer = self.vault.pseudonym(&format!("customer:{customer_id}"));
                let country = country.clone().unwrap_or_else(|| UNKNOWN_COUNTRY.to_owned());
                lines
                    .iter()
                    .map(|line| {
                        Statement::new(format!(
                            "INSERT INTO {table} (order_key, sku, buyer, country, day, quantity, status)
                             VALUES ($1, $2, $3, $4, $5, $6, 'pending') ON CONFLICT (order_key, sku) DO NOTHING"
                        ))
                        .bind(order_key.as_str())
                        .bind(line.sku.as_str())
                        .bind(buyer.as_str())
                        .bind(country.as_str())
                        .bind(day)
                        .bind(i64::from(line.quantity.get()))
                    })
                    .collect()
            }
            OrderEvent::StockReserved { lines, .. } => lines
                .iter()
                .map(|line| {
                    Statement::new(format!(
                        "UPDATE {table} SET unit_price = $3, currency = $4 WHERE order_key = $1 AND sku = $2"
                    ))
                    .bind(order_key.as_str())
                    .bind(line.sku.as_str())
                    .bind(line.unit_price.amount)
                    .bind(String::from(line.unit_price.currency.clone()))
                })
                .collect(),
            // A sale counts on the day it is confirmed.
            OrderEvent::Confirmed => vec![
                Statement::new(format!(
                    "UPDATE {table} SET status = 'sold', day = $2 WHERE order_key = $1 AND status = 'pending'"
                ))
                .bind(order_key.as_str())
                .bind(day),
            ],
            OrderEvent::Rejected { .. } => vec![
                Statement::new(format!("DELETE FROM {table} WHERE order_key = $1")).bind(order_key.as_str()),
            ],
            OrderEvent::Cancelled { .. } => vec![
                Statement::new(format!("UPDATE {table} SET status = 'cancelled' WHERE order_key = $1"))
                    .bind(order_key.as_str()),
            ],
            OrderEvent::PaymentAuthorised { .. } | OrderEvent::CancelRequested => Vec::new(),
        }
    }
}

impl Projection for SalesAnalytics {
    fn name(&self) -> &'static str {
        NAME
    }

    fn table(&self) -> &'static str {
        TABLE
    }

    fn create(&self, table: &str, index_prefix: &str) -> Vec<String> {
        create(table, index_prefix)
    }

    fn apply(
        &self,
        event: &RecordedEvent,
        table: &str,
        unit: &mut UnitOfWork,
    ) -> tessera_projection::Result<()> {
        let Some((order_id, decoded)) = super::summaries::order_event(NAME, event)? else { return Ok(()) };
        let stamp = event.recorded_at.to_rfc3339();
        let day = stamp.get(..10).unwrap_or("1970-01-01");
        for statement in self.statements(table, order_id, &decoded, day) {
            unit.execute(statement);
        }
        Ok(())
    }
}

/// One row of the report: what sold on a day, of a product, in a market.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SalesRow {
    pub day: String,
    pub sku: String,
    pub country: String,
    pub currency: String,
    pub units: i64,
    /// Minor units of `currency`.
    pub revenue: i64,
    pub orders: i64,
    /// Distinct buyers (counted by pseudonym).
    pub buyers: i64,
}

/// Sold lines (not cancelled), by day, product and market, between `from` and `to`
/// (inclusive, `YYYY-MM-DD`).
pub async fn sales(store: &Store, from: &str, to: &str) -> Result<Vec<SalesRow>, tessera_store::StoreError> {
    let rows = store
        .query(
            Statement::new(format!(
                "SELECT day, sku, country, currency, SUM(quantity) AS units, SUM(quantity * unit_price) AS revenue,
                        COUNT(DISTINCT order_key) AS orders, COUNT(DISTINCT buyer) AS buyers
                 FROM {TABLE} WHERE status = 'sold' AND day >= $1 AND day <= $2 AND currency IS NOT NULL
                 GROUP BY day, sku, country, currency ORDER BY day, sku, country, currency"
            ))
            .bind(from)
            .bind(to),
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(SalesRow {
                day: row.text("day")?.to_owned(),
                sku: row.text("sku")?.to_owned(),
                country: row.text("country")?.to_owned(),
                currency: row.text("currency")?.to_owned(),
                units: row.int("units")?,
                revenue: row.int("revenue")?,
                orders: row.int("orders")?,
                buyers: row.int("buyers")?,
            })
        })
        .collect()
}
