//! The orders service: orders are event-sourced; placing one starts the place-order saga
//! (reserve stock → authorise payment → confirm → commit the reservation and capture the
//! payment), and cancelling a confirmed one starts the cancel-order saga (refund, restock).

pub mod domain;
