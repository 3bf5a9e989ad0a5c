//! An order's life, event-sourced. `decide` checks a command against the current state and
//! returns the events it causes (or why not); `evolve` applies one event. The stream of events
//! is the record; the state is a fold over it.

use serde::{Deserialize, Serialize};
use tessera_contracts::inventory::PricedLine;
use tessera_contracts::orders::RejectionReason;
use tessera_contracts::{Money, OrderLine};
use uuid::Uuid;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Not placed yet (an empty stream).
    #[default]
    New,
    Pending,
    Confirmed,
    Rejected,
    /// Confirmed, and being refunded and restocked.
    Cancelling,
    Cancelled,
}

impl OrderStatus {
    /// The status as orders keeps it (`cancelling` included), for operators' reports.
    pub fn name(self) -> &'static str {
        match self {
            OrderStatus::New => "new",
            OrderStatus::Pending => "pending",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Rejected => "rejected",
            OrderStatus::Cancelling => "cancelling",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    /// The status API.md shows (`cancelling` is still `confirmed` to a client).
    pub fn public(self) -> &'static str {
        match self {
            OrderStatus::New | OrderStatus::Pending => "pending",
            OrderStatus::Confirmed | OrderStatus::Cancelling => "confirmed",
            OrderStatus::Rejected => "rejected",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrderEvent {
    Placed {
        order_id: Uuid,
        customer_id: Uuid,
        lines: Vec<OrderLine>,
        payment_token: String,
        /// The market the sale is in (ISO 3166-1 alpha-2), for the sales analytics; absent in
        /// orders placed before it was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        country: Option<String>,
    },
    StockReserved {
        lines: Vec<PricedLine>,
        total: Money,
    },
    PaymentAuthorised {
        payment_id: Uuid,
        last4: String,
    },
    Confirmed,
    Rejected {
        reason: RejectionReason,
    },
    CancelRequested,
    Cancelled {
        refunded: Money,
    },
}

impl OrderEvent {
    /// The stored event name.
    pub fn name(&self) -> &'static str {
        match self {
            OrderEvent::Placed { .. } => "orders.Placed",
            OrderEvent::StockReserved { .. } => "orders.StockReserved",
            OrderEvent::PaymentAuthorised { .. } => "orders.PaymentAuthorised",
            OrderEvent::Confirmed => "orders.Confirmed",
            OrderEvent::Rejected { .. } => "orders.Rejected",
            OrderEvent::CancelRequested => "orders.CancelRequested",
            OrderEvent::Cancelled { .. } => "orders.Cancelled",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderCommand {
    Place {
        order_id: Uuid,
        customer_id: Uuid,
        lines: Vec<OrderLine>,
        payment_token: String,
        country: Option<String>,
    },
    RecordReservation {
        lines: Vec<PricedLine>,
        total: Money,
    },
    RecordAuthorisation {
        payment_id: Uuid,
        last4: String,
    },
    Reject {
        reason: RejectionReason,
    },
    RequestCancel,
    CompleteCancel,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OrderError {
    #[error("the order exists already")]
    AlreadyPlaced,
    #[error("there is no such order")]
    NotPlaced,
    #[error("an order needs at least one line")]
    NoLines,
    #[error("the order is {0:?}, not pending")]
    NotPending(OrderStatus),
    #[error("only a confirmed order can be cancelled; this one is {0:?}")]
    NotCancellable(OrderStatus),
    #[error("the order is not being cancelled")]
    NotCancelling,
}

impl OrderError {
    pub fn code(&self) -> &'static str {
        match self {
            OrderError::AlreadyPlaced => "order_exists",
            OrderError::NotPlaced => "order_not_found",
            OrderError::NoLines => "no_lines",
            OrderError::NotPending(_) => "order_not_pending",
            OrderError::NotCancellable(_) => "order_not_cancellable",
            OrderError::NotCancelling => "order_not_cancelling",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: Option<Uuid>,
    pub customer_id: Option<Uuid>,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
    pub payment_token: String,
    pub priced: Vec<PricedLine>,
    pub total: Option<Money>,
    pub payment_id: Option<Uuid>,
    pub last4: Option<String>,
    pub reason: Option<RejectionReason>,
}

impl Order {
    pub fn decide(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        use OrderStatus::{Cancelling, Confirmed, New, Pending};
        match (self.status, command) {
            (New, OrderCommand::Place { order_id, customer_id, lines, payment_token, country }) => {
                if lines.is_empty() {
                    return Err(OrderError::NoLines);
                }
                Ok(vec![OrderEvent::Placed { order_id, customer_id, lines, payment_token, country }])
            }
            (_, OrderCommand::Place { .. }) => Err(OrderError::AlreadyPlaced),
            (New, _) => Err(OrderError::NotPlaced),
            (Pending, OrderCommand::RecordReservation { lines, total }) => {
                Ok(vec![OrderEvent::StockReserved { lines, total }])
            }
            // Authorised means every check passed: the order is confirmed in the same breath.
            (Pending, OrderCommand::RecordAuthorisation { payment_id, last4 }) => {
                Ok(vec![OrderEvent::PaymentAuthorised { payment_id, last4 }, OrderEvent::Confirmed])
            }
            (Pending, OrderCommand::Reject { reason }) => Ok(vec![OrderEvent::Rejected { reason }]),
            (
                status,
                OrderCommand::RecordReservation { .. }
                | OrderCommand::RecordAuthorisation { .. }
                | OrderCommand::Reject { .. },
            ) => Err(OrderError::NotPending(status)),
            (Confirmed, OrderCommand::RequestCancel) => Ok(vec![OrderEvent::CancelRequested]),
            (status, OrderCommand::RequestCancel) => Err(OrderError::NotCancellable(status)),
            (Cancelling, OrderCommand::CompleteCancel) => {
                let refunded = self
                    .total
                    .clone()
                    .unwrap_or_else(|| Money { amount: 0, currency: tessera_contracts::Currency::eur() });
                Ok(vec![OrderEvent::Cancelled { refunded }])
            }
            (_, OrderCommand::CompleteCancel) => Err(OrderError::NotCancelling),
        }
    }

    #[must_use]
    pub fn evolve(self, event: &OrderEvent) -> Order {
        match event.clone() {
            OrderEvent::Placed { order_id, customer_id, lines, payment_token, .. } => Order {
                id: Some(order_id),
                customer_id: Some(customer_id),
                status: OrderStatus::Pending,
                lines,
                payment_token,
                ..self
            },
            OrderEvent::StockReserved { lines, total } => Order { priced: lines, total: Some(total), ..self },
            OrderEvent::PaymentAuthorised { payment_id, last4 } => {
                Order { payment_id: Some(payment_id), last4: Some(last4), ..self }
            }
            OrderEvent::Confirmed => Order { status: OrderStatus::Confirmed, ..self },
            OrderEvent::Rejected { reason } => {
                Order { status: OrderStatus::Rejected, reason: Some(reason), ..self }
            }
            OrderEvent::CancelRequested => Order { status: OrderStatus::Cancelling, ..self },
            OrderEvent::Cancelled { .. } => Order { status: OrderStatus::Cancelled, ..self },
        }
    }
}

impl tessera_store::Aggregate for Order {
    type Event = OrderEvent;

    /// Bump when `Order`'s fields change meaning or shape: snapshots of another version are
    /// ignored and the order's stream is folded from its first event.
    const SNAPSHOT_VERSION: u32 = 1;

    fn evolve(self, event: &OrderEvent) -> Self {
        Order::evolve(self, event)
    }
}

#[cfg(test)]
mod tests {
    use tessera_contracts::{Quantity, Sku};
    use tessera_testkit::decide::Decide;

    use super::*;

    fn line() -> OrderLine {
        OrderLine { sku: Sku::parse("MUG-1").expect("sku"), quantity: Quantity::new(2).expect("qty") }
    }

    fn placed() -> OrderEvent {
        OrderEvent::Placed {
            order_id: Uuid::nil(),
            customer_id: Uuid::nil(),
            lines: vec![line()],
            payment_token: "tok".into(),
            country: Some("GB".into()),
        }
    }

    fn reserved() -> OrderEvent {
        let priced = PricedLine {
            sku: Sku::parse("MUG-1").expect("sku"),
            name: "Mug".into(),
            quantity: Quantity::new(2).expect("qty"),
            unit_price: Money::eur(900).expect("money"),
        };
        OrderEvent::StockReserved { lines: vec![priced], total: Money::eur(1800).expect("money") }
    }

    fn authorised() -> OrderEvent {
        OrderEvent::PaymentAuthorised { payment_id: Uuid::nil(), last4: "4242".into() }
    }

    impl Decide for Order {
        type Command = OrderCommand;
        type Error = OrderError;

        fn decide(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
            Order::decide(self, command)
        }
    }

    #[test]
    fn placing_a_new_order_makes_it_pending() {
        let OrderEvent::Placed { order_id, customer_id, lines, payment_token, country } = placed() else {
            unreachable!()
        };
        let order = Order::given([])
            .when(OrderCommand::Place { order_id, customer_id, lines, payment_token, country })
            .then_events(vec![placed()]);
        assert_eq!(order.status.public(), "pending");
    }

    #[test]
    fn an_order_without_lines_or_placed_twice_is_refused() {
        let place = |lines| OrderCommand::Place {
            order_id: Uuid::nil(),
            customer_id: Uuid::nil(),
            lines,
            payment_token: "t".into(),
            country: None,
        };
        Order::given([]).when(place(vec![])).then_error(OrderError::NoLines);
        Order::given([placed()]).when(place(vec![line()])).then_error(OrderError::AlreadyPlaced);
    }

    #[test]
    fn reservation_then_authorisation_confirms_the_order() {
        let OrderEvent::StockReserved { lines, total } = reserved() else { unreachable!() };
        let order = Order::given([placed()])
            .when(OrderCommand::RecordReservation { lines, total })
            .then_events(vec![reserved()]);
        assert_eq!(order.total, Some(Money::eur(1800).expect("money")));
        let order = Order::given([placed(), reserved()])
            .when(OrderCommand::RecordAuthorisation { payment_id: Uuid::nil(), last4: "4242".into() })
            .then_events(vec![authorised(), OrderEvent::Confirmed]);
        assert_eq!(order.status, OrderStatus::Confirmed);
        assert_eq!(order.last4.as_deref(), Some("4242"));
    }

    #[test]
    fn out_of_stock_declined_and_timed_out_orders_are_rejected_with_their_reason() {
        for reason in
            [RejectionReason::OutOfStock, RejectionReason::PaymentDeclined, RejectionReason::PaymentTimeout]
        {
            let order = Order::given([placed(), reserved()])
                .when(OrderCommand::Reject { reason })
                .then_events(vec![OrderEvent::Rejected { reason }]);
            assert_eq!((order.status.public(), order.reason), ("rejected", Some(reason)));
        }
    }

    #[test]
    fn a_decided_order_takes_no_more_saga_outcomes() {
        Order::given([placed(), reserved(), authorised(), OrderEvent::Confirmed])
            .when(OrderCommand::Reject { reason: RejectionReason::PaymentTimeout })
            .then_error(OrderError::NotPending(OrderStatus::Confirmed));
        Order::given([placed(), OrderEvent::Rejected { reason: RejectionReason::OutOfStock }])
            .when(OrderCommand::RecordAuthorisation { payment_id: Uuid::nil(), last4: "1".into() })
            .then_error(OrderError::NotPending(OrderStatus::Rejected));
        Order::given([]).when(OrderCommand::RequestCancel).then_error(OrderError::NotPlaced);
    }

    #[test]
    fn only_a_confirmed_order_is_cancelled_and_refunded_in_full() {
        let confirmed = [placed(), reserved(), authorised(), OrderEvent::Confirmed];
        let order = Order::given(confirmed.clone())
            .when(OrderCommand::RequestCancel)
            .then_events(vec![OrderEvent::CancelRequested]);
        assert_eq!(order.status.public(), "confirmed", "still confirmed to clients while it is refunded");
        let mut cancelling = confirmed.to_vec();
        cancelling.push(OrderEvent::CancelRequested);
        let order = Order::given(cancelling.clone())
            .when(OrderCommand::CompleteCancel)
            .then_events(vec![OrderEvent::Cancelled { refunded: Money::eur(1800).expect("money") }]);
        assert_eq!(order.status.public(), "cancelled");
        Order::given([placed()])
            .when(OrderCommand::RequestCancel)
            .then_error(OrderError::NotCancellable(OrderStatus::Pending));
        cancelling.push(OrderEvent::Cancelled { refunded: Money::eur(1800).expect("money") });
        Order::given(cancelling)
            .when(OrderCommand::RequestCancel)
            .then_error(OrderError::NotCancellable(OrderStatus::Cancelled));
        Order::given(confirmed).when(OrderCommand::CompleteCancel).then_error(OrderError::NotCancelling);
    }
}
