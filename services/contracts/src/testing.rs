//! Messages as their owners send them, for the tests of a service's subscribers: a test
//! delivers these to the real subscribers (`tessera_testkit::sources`), which know nothing of
//! the shop's contracts themselves.

use tessera_kernel::{Envelope, HlcTimestamp, SubjectId, UuidV7Gen};
use uuid::Uuid;

use crate::Message;
use crate::customers::CustomerErased;

/// `payload` in the envelope its owner `source` would send, keyed by `key`.
pub fn message<M: Message>(source: &str, key: Uuid, payload: &M) -> Envelope {
    crate::envelope(payload, source, key)
        .build(&UuidV7Gen, HlcTimestamp::default())
        .expect("a contract message serialises")
}

/// The customers service's request to erase `customer_id`, with the erasure's id.
pub fn erased(customer_id: Uuid) -> (Envelope, Uuid) {
    let erasure_id = Uuid::now_v7();
    let envelope = crate::envelope(&CustomerErased { customer_id, erasure_id }, "customers", customer_id)
        .about(SubjectId::from(customer_id))
        .build(&UuidV7Gen, HlcTimestamp::default())
        .expect("a contract message serialises");
    (envelope, erasure_id)
}
