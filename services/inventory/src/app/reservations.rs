//! The commands the order sagas send to inventory, each applied in the subscriber's unit of
//! work (next to its inbox record) and answered with a saga reply in the same unit.

use std::collections::BTreeMap;

use async_trait::async_trait;
use tessera_bus::{Handler, HandlerError};
use tessera_contracts::inventory::{
    CommitReservation, ReleaseStock, ReserveStock, ReserveStockReply, Restock,
};
use tessera_contracts::{Currency, Message, Money, Sku};
use tessera_kernel::Envelope;
use tessera_saga::SagaEngine;
use tessera_store::{Statement, UnitOfWork};
use uuid::Uuid;

use super::{AppError, Inventory};
use crate::domain::{
    Move, Reservation, ReservationState, ReserveDecision, ReservedLine, StockLevel, Stocked, reserved_change,
};

/// The update of `products` for `quantity` ($2) units of a sku ($1) that `step` moves; the
/// WHERE clause refuses to take units that are not there.
fn update(step: Move) -> &'static str {
    match step {
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

    /// Everything stored about `order_id`'s reservation, for the domain to judge.
    async fn reservation(&self, unit: &UnitOfWork, order_id: Uuid) -> Result<Reservation, AppError> {
        let corrupt = |e: &dyn std::fmt::Display| AppError::Corrupt(e.to_string());
        let closed = unit
            .query(
                Statement::new("SELECT 1 AS x FROM released_orders WHERE order_id = $1")
                    .bind(order_id.to_string()),
            )
            .await?;
        let rows = unit
            .query(
                Statement::new(
                    "SELECT sku, name, quantity, unit_price, currency, state FROM reservations
                     WHERE order_id = $1 ORDER BY sku",
                )
                .bind(order_id.to_string()),
            )
            .await?;
        let mut lines = Vec::with_capacity(rows.len());
        for row in rows {
            let currency = Currency::parse(row.text("currency")?).map_err(|e| corrupt(&e))?;
            let state = row.text("state")?;
            lines.push(ReservedLine {
                sku: Sku::parse(row.text("sku")?).map_err(|e| corrupt(&e))?,
                name: row.text("name")?.to_owned(),
                quantity: row.int("quantity")?,
                unit_price: Money::new(row.int("unit_price")?, currency).map_err(|e| corrupt(&e))?,
                state: ReservationState::parse(state)
                    .ok_or_else(|| AppError::Corrupt(format!("unknown reservation state {state}")))?,
            });
        }
        Ok(Reservation { closed: !closed.is_empty(), lines })
    }

    /// Closes `order_id`'s reservation for good: a later `ReserveStock` for it is refused.
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
        let reservation = self.reservation(unit, command.order_id).await?;
        let mut stock = BTreeMap::new();
        for line in &command.lines {
            if let Some(product) = self.product(&line.sku).await? {
                let stocked = Stocked { name: product.name, price: product.price, level: product.level };
                stock.insert(line.sku.clone(), stocked);
            }
        }
        let (lines, reserved) = match reservation.reserve(&command.lines, &stock)? {
            ReserveDecision::Refuse(refusal) => {
                if refusal.closes() {
                    Self::close(unit, command.order_id);
                }
                self.reply(unit, message, Err(refusal.code().to_owned()))?;
                return Ok(());
            }
            ReserveDecision::AlreadyHeld(reserved) => {
                let reply = serde_json::to_value(ReserveStockReply { reserved })?;
                self.reply(unit, message, Ok(Some(reply)))?;
                return Ok(());
            }
            ReserveDecision::Hold { lines, reserved } => (lines, reserved),
        };
        for line in lines {
            // If another order took the units since the read, this matches nothing, the unit
            // rolls back, and the message is retried against fresh numbers.
            unit.execute(
                Statement::new(
                    "UPDATE products SET available = available - $2, reserved = reserved + $2, version = version + 1
                     WHERE sku = $1 AND available >= $2",
                )
                .bind(line.sku.as_str())
                .bind(line.quantity)
                .expect_rows(1, "out_of_stock"),
            );
            unit.execute(
                Statement::new(
                    "INSERT INTO reservations (order_id, sku, name, quantity, unit_price, currency, state)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(command.order_id.to_string())
                .bind(line.sku.as_str())
                .bind(line.name.as_str())
                .bind(line.quantity)
                .bind(line.unit_price.amount)
                .bind(String::from(line.unit_price.currency.clone()))
                .bind(line.state.as_str()),
            );
            let change = reserved_change(line.sku, command.order_id, line.quantity);
            self.stock_changed(unit, Some(message), change)?;
        }
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
        let plan = self.reservation(unit, order_id).await?.plan_move(step);
        if plan.close {
            Self::close(unit, order_id);
        }
        for line in plan.lines {
            // The rules first: a stored level that cannot take the move is a bug to report.
            let level = self.product(&line.sku).await?.map(|p| p.level).unwrap_or(StockLevel::default());
            step.apply(level, &line.sku, line.quantity)?;
            unit.execute(
                Statement::new(update(step))
                    .bind(line.sku.as_str())
                    .bind(line.quantity)
                    .expect_rows(1, "stock_not_there"),
            );
            unit.execute(
                Statement::new(
                    "UPDATE reservations SET state = $3 WHERE order_id = $1 AND sku = $2 AND state = $4",
                )
                .bind(order_id.to_string())
                .bind(line.sku.as_str())
                .bind(step.target_state().as_str())
                .bind(step.source_state().as_str())
                .expect_rows(1, "reservation_moved"),
            );
            self.stock_changed(unit, Some(message), step.change(line.sku, order_id, line.quantity))?;
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
