//! Messaging between services. A service's [`Relay`] publishes its outbox through a
//! [`Transport`] (in-process in the embedded topology, NATS JetStream in the distributed one),
//! and a [`Subscriber`] applies each message inside a unit of work that records it in the inbox,
//! so at-least-once delivery turns into exactly-once effects. A message that keeps failing is
//! parked in the service's dead-letter table; [`Upcasters`] lift old payload versions first.

mod answer;
mod dead_letter;
mod error;
mod handler;
mod hook;
mod in_process;
mod lag;
mod nats;
mod nats_access;
mod relay;
mod subscriber;
mod transport;
mod upcast;

pub use answer::{Answer, Answering};
pub use dead_letter::{DeadLetter, MIGRATIONS, drop_dead_letter, list_dead_letters, request_retry};
pub use error::{BusError, Result};
pub use handler::{Handler, HandlerError, payload};
pub use hook::Hook;
pub use in_process::InProcessTransport;
pub use lag::{ConsumerLag, consumer_lags};
pub use nats::{NatsOptions, NatsTransport, NkeySeed, inbox_prefix};
pub use nats_access::{BusPermissions, BusUser, authorization_block};
pub use relay::{Relay, RelayOptions};
pub use subscriber::{Subscriber, SubscriberOptions};
pub use transport::{AckFuture, Consumer, ConsumerSpec, Delivery, Transport, Watch, Watched};
pub use upcast::{UpcastError, Upcasters};
