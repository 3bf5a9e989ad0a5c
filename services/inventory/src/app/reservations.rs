//! The commands the order sagas send to inventory, each applied in the subscriber's unit of
//! work (next to its inbox record) and answered with a saga reply in the same unit.

use std::collections::BTreeMap;

use async_trait::async_trait;
use tessera_bus::{Handler, HandlerError};
use tessera_contracts::inventory::{
    CommitReservation, PricedLine, ReleaseStock, ReserveStock, ReserveStockReply, Reserved, Restock,
    StockChanged,
};
use tessera_contracts::{Currency, Message, Money, Quantity, Sku};
use tessera_kernel::Envelope;
use tessera_saga::SagaEngine;
use tessera_store::{Row, Statement, UnitOfWork};
use uuid::Uuid;

use super::{AppError, Inventory};
use crate::domain::{StockLevel, plan_reservation};

/// Where a reservation's units go next, and the guarded update that moves them.
#[derive(Clone, Copy, Debug)]
enum Move {
    Release,
    Commit,
    Restock,
}

impl Move {
    fn source_state(self) -> &'static str {
        match self {
            Move::Release | Move::Commit => "held",
            Move::Restock => "committed",
        }
    }

    fn target_state(self) -> &'static str {
        match self {
            Move::Release => "released",
            Move::Commit => "committed",
            Move::Restock => "restocked",
        }
    }

    /// The update of `products` for `quantity` ($2) units of a sku ($1); the WHERE clause
    /// refuses to take units that are not there.
    fn update(self) -> &'static str {
        match self {
            Move::Release => {
                "UPDATE products SET available = available + $2, reserved = reserved - $2, version = version + 1
                 WHERE sku = $1 AND reserved >= $2"
            }
            Move::Commit => {
                "UPDATE products SET reserved = reserved - $2, sold = sold + $2, version = version + 1
                 WHERE sku = $1 AND reserved >= $2"
            }
            Move::Restock => {
                "UPDATE products SET available = available + $2, sold = sold - $2, version = version + 1
                 WHERE sku = $1 AND sold >= $2"
            }
        }
    }

    fn change(self, sku: Sku, order_id: Uuid, quantity: i64) -> StockChanged {
        let (cause, available_delta, reserved_delta, sold_delta) = match self {
            Move::Release => ("released", quantity, -quantity, 0),
            Move::Commit => ("sold", 0, -quantity, quantity),
            Move::Restock => ("restocked", quantity, 0, -quantity),
        };
        StockChanged {
            sku,
            cause: cause.into(),
            order_id: Some(order_id),
            available_delta,
            reserved_delta,
            sold_delta,
        }
    }
}

fn parse<M: Message>(message: &Envelope) -> Result<M, HandlerError> {
    serde_json::from_value(message.payload.clone())
        .map_err(|e| HandlerError::malformed(format!("{} payload: {e}", M::NAME)))
}

impl Inventory {
    /// Answers a saga command in `unit` (plain commands get no reply).
    fn reply(
        &self,
        unit: &mut UnitOfWork,
        command: &Envelope,
        result: Result<Option<serde_json::Value>, String>,
    ) -> Result<(), AppError> {
        if let Some(reply) = SagaEngine::reply(command, &*self.ids, self.clock.now(), result) {
            unit.send(&reply)?;
        }
        Ok(())
    }

    async fn reservation(
        &self,
        unit: &UnitOfWork,
        order_id: Uuid,
        state: &str,
    ) -> Result<Vec<Row>, AppError> {
        Ok(unit
            .query(
                Statement::new(
                    "SELECT sku, name, quantity, unit_price, currency FROM reservations
                     WHERE order_id = $1 AND state = $2 ORDER BY sku",
                )
                .bind(order_id.to_string())
                .bind(state),
            )
            .await?)
    }

    fn priced(rows: &[Row]) -> Result<Reserved, AppError> {
        let corrupt = |e: &dyn std::fmt::Display| AppError::Corrupt(e.to_string());
        let mut lines = Vec::with_capacity(rows.len());
        let mut total = 0;
        let mut currency = Currency::eur();
        for row in rows {
            let quantity = row.int("quantity")?;
            let unit_price = row.int("unit_price")?;
            currency = Currency::parse(row.text("currency")?).map_err(|e| corrupt(&e))?;
            total += quantity * unit_price;
            lines.push(PricedLine {
                sku: Sku::parse(row.text("sku")?).map_err(|e| corrupt(&e))?,
                name: row.text("name")?.to_owned(),
                quantity: Quantity::new(quantity).map_err(|e| corrupt(&e))?,
                unit_price: Money::new(unit_price, currency.clone()).map_err(|e| corrupt(&e))?,
            });
        }
        Ok(Reserved { lines, total: Money::new(total, currency).map_err(|e| corrupt(&e))? })
    }

    /// A refused order is closed like a released one: its saga has failed and compensates
    /// nothing here, so a late copy of its command (redelivered past the inbox's memory, or
    /// retried from the dead letters once stock is back) must not hold stock for it. Found by
    /// the simulator (seed 98 with the inbox switched off).
    fn close(unit: &mut UnitOfWork, order_id: Uuid) {
        unit.execute(
            Statement::new(
                "INSERT INTO released_orders (order_id) VALUES ($1) ON CONFLICT (order_id) DO NOTHING",
            )
            .bind(order_id.to_string()),
        );
    }

    async fn reserve(&self, message: &Envelope, unit: &mut UnitOfWork) -> Result<(), HandlerError> {
        let command: ReserveStock = parse(message)?;
        // Already held for this order (the command came twice): answer as before.
        // Released before it was ever reserved (the saga gave up first), or already through:
        // never hold stock for it again.
        let closed = unit
            .query(
                Statement::new(
                    "SELECT 1 AS x FROM released_orders WHERE order_id = $1
                     UNION ALL SELECT 1 AS x FROM reservations WHERE order_id = $1 AND state <> 'held'",
                )
                .bind(command.order_id.to_string()),
            )
            .await?;
        if !closed.is_empty() {
            self.reply(unit, message, Err("reservation_closed".to_owned()))?;
            return Ok(());
        }
        let held = self.reservation(unit, command.order_id, "held").await?;
        if !held.is_empty() {
            let reply = serde_json::to_value(ReserveStockReply { reserved: Self::priced(&held)? })?;
            self.reply(unit, message, Ok(Some(reply)))?;
            return Ok(());
        }
        let mut products = BTreeMap::new();
        let mut levels = BTreeMap::new();
        for line in &command.lines {
            if let Some(product) = self.product(&line.sku).await? {
                levels.insert(line.sku.clone(), product.level);
                products.insert(line.sku.clone(), product);
            }
        }
        let plan = match plan_reservation(&levels, &command.lines) {
            Ok(plan) => plan,
            Err(refusal) => {
                Self::close(unit, command.order_id);
                self.reply(unit, message, Err(refusal.code().to_owned()))?;
                return Ok(());
            }
        };
        // Every line in one currency, checked before anything is written.
        let currencies: std::collections::HashSet<_> =
            plan.iter().map(|(sku, _)| &products[sku].price.currency).collect();
        if currencies.len() > 1 {
            Self::close(unit, command.order_id);
            self.reply(unit, message, Err("mixed_currencies".to_owned()))?;
            return Ok(());
        }
        let mut rows = Vec::with_capacity(plan.len());
        for (sku, quantity) in plan {
            let product = &products[&sku];
            // If another order took the units since the read, this matches nothing, the unit
            // rolls back, and the message is retried against fresh numbers.
            unit.execute(
                Statement::new(
                    "UPDATE products SET available = available - $2, reserved = reserved + $2, version = version + 1
                     WHERE sku = $1 AND available >= $2",
                )
                .bind(sku.as_str())
                .bind(quantity)
                .expect_rows(1, "out_of_stock"),
            );
            unit.execute(
                Statement::new(
                    "INSERT INTO reservations (order_id, sku, name, quantity, unit_price, currency, state)
                     VALUES ($1, $2, $3, $4, $5, $6, 'held')",
                )
                .bind(command.order_id.to_string())
                .bind(sku.as_str())
                .bind(product.name.as_str())
                .bind(quantity)
                .bind(product.price.amount)
                .bind(String::from(product.price.currency.clone())),
            );
            let change = StockChanged {
                sku: sku.clone(),
                cause: "reserved".into(),
                order_id: Some(command.order_id),
                available_delta: -quantity,
                reserved_delta: quantity,
                sold_delta: 0,
            };
            self.stock_changed(unit, Some(message), change)?;
            rows.push((sku, product.name.clone(), quantity, product.price.clone()));
        }
        let currency = rows.first().map_or_else(Currency::eur, |(_, _, _, price)| price.currency.clone());
        let total: i64 = rows.iter().map(|(_, _, quantity, price)| quantity * price.amount).sum();
        let reserved = Reserved {
            lines: rows
                .into_iter()
                .map(|(sku, name, quantity, unit_price)| {
                    Ok(PricedLine { sku, name, quantity: Quantity::new(quantity)?, unit_price })
                })
                .collect::<Result<_, tessera_contracts::ValueError>>()?,
            total: Money::new(total, currency)?,
        };
        self.reply(unit, message, Ok(Some(serde_json::to_value(ReserveStockReply { reserved })?)))?;
        Ok(())
    }

    async fn move_units(
        &self,
        message: &Envelope,
        unit: &mut UnitOfWork,
        order_id: Uuid,
        step: Move,
    ) -> Result<(), HandlerError> {
        // Nothing in the expected state (never reserved, or already moved): a no-op, so the
        // command is safe to repeat and to send after a timeout.
        let rows = self.reservation(unit, order_id, step.source_state()).await?;
        if rows.is_empty() && matches!(step, Move::Release) {
            // Remember the release, so that a reservation request arriving later (a dead
            // letter retried, say) is refused instead of holding stock for good.
            unit.execute(
                Statement::new(
                    "INSERT INTO released_orders (order_id) VALUES ($1) ON CONFLICT (order_id) DO NOTHING",
                )
                .bind(order_id.to_string()),
            );
        }
        for row in rows {
            let sku = Sku::parse(row.text("sku")?)?;
            let quantity = row.int("quantity")?;
            // The rules first: a stored level that cannot take the move is a bug to report.
            let level = self.product(&sku).await?.map(|p| p.level).unwrap_or(StockLevel::default());
            match step {
                Move::Release => level.release(&sku, quantity),
                Move::Commit => level.commit(&sku, quantity),
                Move::Restock => level.restock(&sku, quantity),
            }?;
            unit.execute(
                Statement::new(step.update())
                    .bind(sku.as_str())
                    .bind(quantity)
                    .expect_rows(1, "stock_not_there"),
            );
            unit.execute(
                Statement::new(
                    "UPDATE reservations SET state = $3 WHERE order_id = $1 AND sku = $2 AND state = $4",
                )
                .bind(order_id.to_string())
                .bind(sku.as_str())
                .bind(step.target_state())
                .bind(step.source_state())
                .expect_rows(1, "reservation_moved"),
            );
            self.stock_changed(unit, Some(message), step.change(sku, order_id, quantity))?;
        }
        self.reply(unit, message, Ok(None))?;
        Ok(())
    }
}

#[async_trait]
impl Handler for Inventory {
    /// Only the commands addressed to inventory; the orders source carries other services'
    /// commands and its own events too.
    fn wants(&self, message: &Envelope) -> bool {
        message.target.as_deref() == Some(crate::SERVICE)
    }

    async fn handle(&self, message: &Envelope, unit: &mut UnitOfWork) -> Result<(), HandlerError> {
        if message.target.as_deref() != Some(crate::SERVICE) {
            // The orders source also carries other services' commands and its own events.
            return Ok(());
        }
        match message.name.as_str() {
            ReserveStock::NAME => self.reserve(message, unit).await,
            ReleaseStock::NAME => {
                let command: ReleaseStock = parse(message)?;
                self.move_units(message, unit, command.order_id, Move::Release).await
            }
            CommitReservation::NAME => {
                let command: CommitReservation = parse(message)?;
                self.move_units(message, unit, command.order_id, Move::Commit).await
            }
            Restock::NAME => {
                let command: Restock = parse(message)?;
                self.move_units(message, unit, command.order_id, Move::Restock).await
            }
            other => Err(HandlerError::malformed(format!("inventory has no command {other}"))),
        }
    }
}
