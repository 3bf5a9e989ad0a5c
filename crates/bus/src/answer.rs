//! A request answered from the unit of work that records it. The subscriber applies a message
//! in a unit that also records it in the inbox; a service that answers a request writes its own
//! changes and its answer into that same unit, so the three commit together, once: the answer
//! is never sent for changes that were lost, nor sent twice for one request.
//!
//! [`Answering`] holds what every such handler does alike (pick the request out by name, read
//! its payload, send the answer); an [`Answer`] holds what is the service's own (what it
//! changes, what it answers).

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use tessera_kernel::Envelope;
use tessera_store::UnitOfWork;

use crate::handler::{Handler, HandlerError, payload};

/// A service's part in one kind of request: what it changes, and the answer it sends.
#[async_trait]
pub trait Answer: Send + Sync + 'static {
    /// The name of the request answered; every other message is acknowledged unread.
    const REQUEST: &'static str;

    /// The request's payload.
    type Request: DeserializeOwned + Send;

    /// Writes this service's changes for `request` into `unit` and returns the answer, to be
    /// sent from the same unit. `message` is the request's envelope: the answer's cause.
    async fn answer(
        &self,
        request: Self::Request,
        message: &Envelope,
        unit: &mut UnitOfWork,
    ) -> Result<Envelope, HandlerError>;
}

/// The [`Handler`] of an [`Answer`]: subscribe with `Answering::new(answer)`.
#[derive(Clone, Debug)]
pub struct Answering<A> {
    answer: A,
}

impl<A: Answer> Answering<A> {
    pub fn new(answer: A) -> Self {
        Self { answer }
    }
}

#[async_trait]
impl<A: Answer> Handler for Answering<A> {
    fn wants(&self, message: &Envelope) -> bool {
        message.name == A::REQUEST
    }

    async fn handle(&self, message: &Envelope, unit: &mut UnitOfWork) -> Result<(), HandlerError> {
        if message.name != A::REQUEST {
            return Ok(());
        }
        // A payload that does not parse is malformed, not skipped: parked for an operator, so
        // a request is never answered on a message nobody read.
        let request = payload::<A::Request>(message)?;
        let answer = self.answer.answer(request, message, unit).await?;
        unit.send(&answer)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use tessera_kernel::{HlcTimestamp, MessageKind, UuidV7Gen};
    use tessera_store::{SqliteOptions, Store, StoreConfig};
    use tessera_testkit::TempDataDir;

    use super::*;

    #[derive(Deserialize)]
    struct Ping {
        n: u32,
    }

    /// Answers `test.Ping { n }` with `test.Pong { n + 1 }`.
    struct Pong;

    #[async_trait]
    impl Answer for Pong {
        const REQUEST: &'static str = "test.Ping";
        type Request = Ping;

        async fn answer(
            &self,
            ping: Ping,
            message: &Envelope,
            _unit: &mut UnitOfWork,
        ) -> Result<Envelope, HandlerError> {
            let pong = serde_json::json!({ "n": ping.n + 1 });
            Ok(message_named("test.Pong", pong).caused_by(message))
        }
    }

    fn message_named(name: &str, payload: serde_json::Value) -> Envelope {
        Envelope::new(&UuidV7Gen, MessageKind::Event, name, "test", "k", HlcTimestamp::default(), payload)
    }

    #[tokio::test]
    async fn a_request_is_answered_from_its_unit_and_other_or_unreadable_messages_are_not() {
        let dir = TempDataDir::new();
        let config = StoreConfig::Sqlite { path: dir.file("answer.db"), options: SqliteOptions::default() };
        let store = Store::open(&config, &[]).await.expect("a store");
        let handler = Answering::new(Pong);

        let ping = message_named("test.Ping", serde_json::json!({ "n": 1 }));
        let other = message_named("test.Other", serde_json::json!({ "n": 1 }));
        let unreadable = message_named("test.Ping", serde_json::json!({ "n": "one" }));
        assert!(handler.wants(&ping) && !handler.wants(&other));

        let mut unit = store.begin();
        handler.handle(&ping, &mut unit).await.expect("answered");
        handler.handle(&other, &mut unit).await.expect("ignored");
        let refused = handler.handle(&unreadable, &mut unit).await.expect_err("not answered");
        assert!(refused.is_malformed(), "{refused}");
        unit.commit().await.expect("commit");

        let sent = store.outbox_unsent(0, 100).await.expect("the outbox");
        let answers: Vec<_> = sent.iter().map(|m| &m.envelope).collect();
        assert_eq!(answers.len(), 1, "one answer, to the readable request only");
        assert_eq!((answers[0].name.as_str(), answers[0].causation_id), ("test.Pong", Some(ping.id)));
        assert_eq!(answers[0].payload["n"], 2);
    }
}
