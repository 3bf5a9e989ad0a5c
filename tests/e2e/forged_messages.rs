//! Forged messages inside the cluster. Whoever reaches NATS without a service's credentials
//! cannot connect; with one service's credentials they can publish only as that service, and
//! read, create or delete nothing of the streams it does not consume. A message a service
//! publishes on its own stream while naming another as its source is parked by every consumer,
//! never applied.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use serde_json::Value;

/// The run's bus: where it is, the CA its certificate is under, the folder `tessera nats auth`
/// wrote the seeds to, and the namespace.
pub struct Bus {
    pub url: String,
    pub ca: PathBuf,
    pub credentials: PathBuf,
    pub namespace: String,
}

impl Bus {
    fn seed(&self, user: &str) -> String {
        std::fs::read_to_string(self.credentials.join(format!("{user}.nk")))
            .expect("a seed")
            .trim()
            .to_owned()
    }

    fn stream(&self, source: &str) -> String {
        format!("{}_{source}", self.namespace).to_ascii_uppercase()
    }

    /// A connection as `user` (`None`: without credentials), and the server's errors it heard.
    async fn connect(
        &self,
        user: Option<&str>,
    ) -> Result<(async_nats::Client, Arc<Mutex<Vec<String>>>), String> {
        let heard = Arc::new(Mutex::new(Vec::new()));
        let errors = heard.clone();
        let mut options = async_nats::ConnectOptions::new()
            .add_root_certificates(self.ca.clone())
            .require_tls(true)
            .connection_timeout(Duration::from_secs(5))
            .event_callback(move |event| {
                if let async_nats::Event::ServerError(error) = event {
                    errors.lock().expect("errors").push(error.to_string());
                }
                async {}
            });
        if let Some(user) = user {
            options = options.nkey(self.seed(user));
        }
        let client = options.connect(self.url.as_str()).await.map_err(|e| e.to_string())?;
        Ok((client, heard))
    }

    /// Every message of the run's streams, as text, by stream: what consumers could ever read.
    pub async fn messages(&self) -> Vec<(String, String)> {
        let (client, _) = self.connect(Some("operator")).await.expect("the operator connects");
        let jetstream = jetstream::new(client);
        let mut texts = Vec::new();
        for source in ["inventory", "orders", "payments", "customers", "support", "gateway"] {
            let name = self.stream(source);
            let Ok(mut stream) = jetstream.get_stream(&name).await else { continue };
            let state = stream.info().await.expect("info").state.clone();
            let mut text = String::new();
            for sequence in state.first_sequence..=state.last_sequence {
                if let Ok(message) = stream.get_raw_message(sequence).await {
                    // In a fixed order, so that two reads of one message read the same.
                    let mut headers: Vec<String> =
                        message.headers.iter().map(|(name, values)| format!("{name}: {values:?}")).collect();
                    headers.sort_unstable();
                    text.push_str(&headers.join("; "));
                    text.push_str(&String::from_utf8_lossy(&message.payload));
                    text.push('\n');
                }
            }
            texts.push((name, text));
        }
        texts
    }

    /// The newest message on `source`'s stream that `wanted` picks, as JSON.
    async fn newest(&self, source: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let (client, _) = self.connect(Some("operator")).await.expect("the operator connects");
        let mut stream = jetstream::new(client).get_stream(self.stream(source)).await.expect("the stream");
        let last = stream.info().await.expect("info").state.last_sequence;
        for sequence in (1..=last).rev() {
            let Ok(message) = stream.get_raw_message(sequence).await else { continue };
            let envelope: Value = serde_json::from_slice(&message.payload).expect("an envelope");
            if wanted(&envelope) {
                return envelope;
            }
        }
        panic!("no such message on {source}'s stream");
    }
}

/// `envelope` as a fresh message: a new id, so that no inbox has seen it.
fn fresh(mut envelope: Value) -> Value {
    envelope["id"] = Value::String(uuid::Uuid::now_v7().to_string());
    envelope
}

/// Publishes `envelope` on `subject` as `user` and answers whether the server refused it
/// (a permissions violation reported on the connection).
async fn publish_as(bus: &Bus, user: &str, subject: String, envelope: &Value) -> bool {
    let (client, heard) = bus.connect(Some(user)).await.expect("a service's key connects");
    let payload = serde_json::to_vec(envelope).expect("json");
    let _ = client.publish(subject, payload.into()).await;
    let _ = client.flush().await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        if heard.lock().expect("errors").iter().any(|e| e.to_lowercase().contains("permissions violation")) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Runs every forgery against `bus`, aimed at `customer_id`. `snapshot` reads every table of
/// every store: the rows naming the victim must read the same afterwards, and the streams must
/// hold no forgery but the spoof on the stream of the service that published it.
pub fn forge(bus: &Bus, customer_id: &str, snapshot: &dyn Fn() -> Vec<(String, String)>) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let ns = &bus.namespace;
    let stores_before = rows_naming(snapshot(), customer_id);
    let streams_before = runtime.block_on(bus.messages());

    // No credentials: no connection, with TLS or without.
    let Err(refused) = runtime.block_on(bus.connect(None)) else {
        panic!("a connection without a key is refused");
    };
    assert!(refused.to_lowercase().contains("authorization"), "{refused}");
    assert!(
        runtime.block_on(async_nats::connect(bus.url.as_str())).is_err(),
        "a plain connection is refused"
    );

    // Erasing the victim for good, by publishing as customers with another service's key.
    let erased = serde_json::json!({
        "id": uuid::Uuid::now_v7().to_string(), "name": "customers.CustomerErased", "version": 1,
        "kind": "event", "source": "customers", "key": customer_id,
        "correlation_id": uuid::Uuid::now_v7().to_string(),
        "payload": {"customer_id": customer_id, "erasure_id": uuid::Uuid::now_v7().to_string()},
    });
    let forged_erasure = {
        let mut envelope = runtime.block_on(bus.newest("orders", |e| e["kind"] == "event"));
        // The envelope's shape (and clock) is a real one's; its content is the forgery's.
        for field in ["id", "name", "kind", "source", "key", "correlation_id", "payload", "version"] {
            envelope[field] = erased[field].clone();
        }
        if let Some(fields) = envelope.as_object_mut() {
            for field in ["subject", "causation_id", "target", "traceparent"] {
                fields.remove(field);
            }
        }
        envelope
    };
    for user in ["support", "payments"] {
        let subject = format!("{ns}.customers.customers.CustomerErased");
        let refused = runtime.block_on(publish_as(bus, user, subject, &forged_erasure));
        assert!(refused, "{user} may not publish as customers");
    }
    // A saga reply that sets the amount to charge, published as inventory with payments' key.
    let mut reply = fresh(runtime.block_on(
        bus.newest("inventory", |e| e["kind"] == "reply" && e["payload"]["data"]["reserved"].is_object()),
    ));
    reply["payload"]["data"]["reserved"]["total"]["amount"] = Value::from(1);
    let subject = format!("{ns}.inventory.{}", reply["name"].as_str().expect("a name"));
    let refused = runtime.block_on(publish_as(bus, "payments", subject, &reply));
    assert!(refused, "payments may not publish as inventory");

    // Reading a stream one does not consume, and deleting or emptying one, are refused too.
    for (user, subject) in [
        ("inventory", format!("$JS.API.CONSUMER.CREATE.{}.snoop", bus.stream("customers"))),
        ("support", format!("$JS.API.CONSUMER.INFO.{}.payments__orders", bus.stream("orders"))),
        ("support", format!("$JS.API.STREAM.DELETE.{}", bus.stream("orders"))),
        ("orders", format!("$JS.API.STREAM.PURGE.{}", bus.stream("payments"))),
    ] {
        let refused = runtime.block_on(publish_as(bus, user, subject.clone(), &Value::Null));
        assert!(refused, "{user}: {subject}");
    }

    // Support publishes on its own stream a message that says it comes from customers: the
    // server lets it through (its own subject); customers' consumer parks it unapplied.
    let spoof = fresh(forged_erasure.clone());
    let spoof_id = spoof["id"].as_str().expect("id").to_owned();
    let refused = runtime.block_on(publish_as(
        bus,
        "support",
        format!("{ns}.support.customers.CustomerErased"),
        &spoof,
    ));
    assert!(!refused, "support publishes on its own subjects");
    let started = Instant::now();
    loop {
        let parked = snapshot()
            .into_iter()
            .any(|(table, rows)| table.contains("dead_letter") && rows.contains(&spoof_id));
        if parked {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the spoof is parked as a dead letter");
        std::thread::sleep(Duration::from_millis(250));
    }

    assert_eq!(rows_naming(snapshot(), customer_id), stores_before, "the victim's rows are as they were");
    // Streams only grow, with what the services themselves published meanwhile: no forgery is
    // among it but the spoof on support's own stream.
    let forged = [&forged_erasure["id"], &reply["id"]].map(|id| id.as_str().unwrap_or_default().to_owned());
    let streams_after = runtime.block_on(bus.messages());
    assert_eq!(streams_before.len(), streams_after.len(), "no stream was deleted");
    for ((name, before), (_, after)) in streams_before.iter().zip(&streams_after) {
        let added = after.strip_prefix(before.as_str()).unwrap_or_else(|| panic!("{name} lost messages"));
        for id in &forged {
            assert!(!added.contains(id.as_str()), "{name} holds the forged message {id}");
        }
        assert_eq!(added.contains(&spoof_id), name.ends_with("_SUPPORT"), "{name}: the spoof");
    }
}

/// The rows of every table (outbox and dead letters aside) that name `customer_id`.
fn rows_naming(texts: Vec<(String, String)>, customer_id: &str) -> Vec<String> {
    texts
        .into_iter()
        .filter(|(table, _)| !table.contains("dead_letter") && !table.contains("tessera_outbox"))
        .flat_map(|(table, rows)| {
            rows.lines()
                .filter(|row| row.contains(customer_id))
                .map(|row| format!("{table}: {row}"))
                .collect::<Vec<_>>()
        })
        .collect()
}
