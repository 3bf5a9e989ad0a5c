//! The Order aggregate (pure decide and evolve functions over its events), the data and steps
//! of the sagas that drive it, and what their moves mean for it.

mod order;
mod reaction;
mod request_key;
mod sagas;

pub use order::{Order, OrderCommand, OrderError, OrderEvent, OrderStatus};
pub use reaction::{PublicOutcome, ReactionError, Recorded, reaction, record, rejection_reason};
pub use request_key::{KEY_LIFETIME, KeptRequest, RequestNext, next_for_request};
pub use sagas::{
    CANCEL_ORDER, CancelOrderData, CancelOrderStep, Charged, OrderSaga, PLACE_ORDER, PlaceOrderData,
    PlaceOrderStep,
};
