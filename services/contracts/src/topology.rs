//! Who hears whom on the bus: for each process that connects to it, the sources whose streams
//! it consumes and the ones it only watches. The bus's credentials and permissions are made
//! from this table (`tessera nats auth`), so a service can read only what it declares here,
//! and publish only as itself. A test in the binary holds every service's subscriptions to it.

/// One bus user: a service, or the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusListener {
    /// The service's name, which is also its source on the bus and its user name.
    pub service: &'static str,
    /// Sources it reads through durable consumers.
    pub consumes: &'static [&'static str],
    /// Sources it follows without a consumer (a plain subscription: wake-ups, never state).
    pub watches: &'static [&'static str],
}

/// Every process that connects to the bus in the distributed topology.
pub const BUS_LISTENERS: [BusListener; 6] = [
    BusListener { service: "inventory", consumes: &["orders"], watches: &[] },
    BusListener { service: "orders", consumes: &["inventory", "payments", "customers"], watches: &[] },
    BusListener { service: "payments", consumes: &["orders", "customers"], watches: &[] },
    BusListener { service: "customers", consumes: &super::customers::ERASURE_PARTICIPANTS, watches: &[] },
    BusListener { service: "support", consumes: &["orders", "customers"], watches: &[] },
    // The catalogue cache's invalidation, and the clients waiting for their orders.
    BusListener { service: "gateway", consumes: &["inventory"], watches: &["orders"] },
];

/// The table's row for `service`.
pub fn bus_listener(service: &str) -> Option<&'static BusListener> {
    BUS_LISTENERS.iter().find(|listener| listener.service == service)
}
