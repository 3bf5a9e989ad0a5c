//! Each service announces the head of its audit chain (`platform.AuditHead`, the index and
//! hash of its newest record) through its outbox whenever it has moved, so the head leaves the
//! service's database: on NATS it is kept in the service's stream, where cutting the chain
//! short in the database cannot reach it. The gateway witnesses heads too (see its audit
//! module) and hands the newest back when a chain is verified.

use std::time::Duration;

use serde_json::json;
use tessera_kernel::{Envelope, HlcTimestamp, MessageKind, UuidV7Gen};
use tessera_store::Store;
use tokio::sync::watch;

/// The message's name; no service acts on it, so every subscriber passes it by.
pub const AUDIT_HEAD: &str = "platform.AuditHead";

/// Until `stopped`, every `every`: if the chain's head moved, one `platform.AuditHead` message
/// committed to the outbox.
pub(crate) async fn publish_heads(
    service: &'static str,
    store: Store,
    every: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let mut published: Option<u64> = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stopped.changed() => return,
        }
        if *stopped.borrow() {
            return;
        }
        let head = match store.audit_head().await {
            Ok(Some(head)) if published != Some(head.0) => head,
            Ok(_) => continue,
            Err(error) => {
                tracing::warn!(service, %error, "cannot read the audit head");
                continue;
            }
        };
        let (index, hash) = head;
        let envelope = Envelope::new(
            &UuidV7Gen,
            MessageKind::Event,
            AUDIT_HEAD,
            service,
            service.to_owned(),
            HlcTimestamp::new(store.clock().now(), 0),
            json!({"service": service, "index": index, "hash": tessera_store::hash_to_hex(&hash)}),
        );
        let mut unit = store.begin();
        let committed = match unit.send(&envelope) {
            Ok(_) => unit.commit().await.map(|_| ()),
            Err(error) => Err(error),
        };
        match committed {
            Ok(()) => published = Some(index),
            Err(error) => tracing::warn!(service, %error, "cannot announce the audit head"),
        }
    }
}
