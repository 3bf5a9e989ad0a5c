//! Inventory's rules, as pure functions over plain values: no I/O, no async.

mod reservation;
mod stock;

pub use reservation::{
    Move, MovePlan, Reservation, ReservationState, ReserveDecision, ReserveRefusal, ReservedLine, Stocked,
    priced, reserved_change,
};
pub use stock::{InventoryError, StockLevel, plan_reservation};
