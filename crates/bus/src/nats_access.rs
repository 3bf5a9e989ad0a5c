//! What each service may do on NATS, made from the names the transport itself uses, so that
//! the server's permissions and the client's subjects cannot drift apart.
//!
//! A service publishes only on its own subjects and manages only its own stream. For each
//! source it consumes it may look up that stream, create and read its own durable consumer,
//! and acknowledge that consumer's messages; nothing else of the stream. It receives replies
//! only on its own inbox prefix ([`crate::inbox_prefix`]), so it cannot read another service's
//! deliveries. Deleting or purging a stream, or reading a consumer it does not own, is
//! refused by the server.

use crate::nats::{NatsOptions, consumer_name_of, inbox_prefix};

/// Subjects a user may publish to and subscribe to (NATS wildcards allowed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusPermissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

/// One user of the server's `authorization` block.
#[derive(Clone, Debug)]
pub struct BusUser {
    /// A comment naming the user in the configuration.
    pub name: String,
    /// The user's public nkey (`U…`).
    pub nkey: String,
    /// `None`: an operator's user, allowed everything (tools, tests, migrations).
    pub permissions: Option<BusPermissions>,
}

impl NatsOptions {
    /// What `service` may do, when it consumes `consumes` and watches `watches`.
    pub fn permissions(&self, service: &str, consumes: &[&str], watches: &[&str]) -> BusPermissions {
        let api = "$JS.API";
        let own = self.stream_name(service);
        let mut publish = vec![
            format!("{}.{service}.>", self.namespace),
            format!("{api}.INFO"),
            format!("{api}.STREAM.CREATE.{own}"),
            format!("{api}.STREAM.UPDATE.{own}"),
            format!("{api}.STREAM.INFO.{own}"),
        ];
        for source in consumes {
            let stream = self.stream_name(source);
            let consumer = consumer_name_of(service, source);
            publish.extend([
                format!("{api}.STREAM.INFO.{stream}"),
                format!("{api}.CONSUMER.CREATE.{stream}.{consumer}"),
                format!("{api}.CONSUMER.CREATE.{stream}.{consumer}.>"),
                format!("{api}.CONSUMER.DURABLE.CREATE.{stream}.{consumer}"),
                format!("{api}.CONSUMER.INFO.{stream}.{consumer}"),
                format!("{api}.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
                format!("$JS.ACK.{stream}.{consumer}.>"),
            ]);
        }
        let mut subscribe = vec![format!("{}.>", inbox_prefix(service))];
        subscribe.extend(watches.iter().map(|source| format!("{}.{source}.>", self.namespace)));
        BusPermissions { publish, subscribe }
    }
}

/// The server's `authorization { users = [...] }` block for `users`, to include from its
/// configuration file.
pub fn authorization_block(users: &[BusUser]) -> String {
    let quoted = |subjects: &[String]| {
        subjects.iter().map(|subject| format!("\"{subject}\"")).collect::<Vec<_>>().join(", ")
    };
    let mut text = String::from("authorization {\n  users = [\n");
    for user in users {
        text.push_str(&format!("    # {}\n", user.name));
        match &user.permissions {
            None => text.push_str(&format!("    {{ nkey: \"{}\" }}\n", user.nkey)),
            Some(permissions) => text.push_str(&format!(
                "    {{ nkey: \"{}\", permissions: {{\n        publish: {{ allow: [{}] }}\n        \
                 subscribe: {{ allow: [{}] }}\n    }} }}\n",
                user.nkey,
                quoted(&permissions.publish),
                quoted(&permissions.subscribe),
            )),
        }
    }
    text.push_str("  ]\n}\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_publishes_only_as_itself_and_reads_only_its_own_consumers() {
        let options = NatsOptions { namespace: "shop".to_owned(), ..NatsOptions::default() };
        let permissions = options.permissions("payments", &["orders"], &[]);
        assert!(permissions.publish.contains(&"shop.payments.>".to_owned()));
        assert!(!permissions.publish.iter().any(|subject| subject.starts_with("shop.orders")));
        assert!(
            permissions
                .publish
                .contains(&"$JS.API.CONSUMER.MSG.NEXT.SHOP_ORDERS.payments__orders".to_owned())
        );
        assert!(
            !permissions
                .publish
                .iter()
                .any(|subject| subject.contains("DELETE") || subject.contains("PURGE"))
        );
        assert!(!permissions.publish.iter().any(|subject| subject.contains("STREAM.CREATE.SHOP_ORDERS")));
        assert_eq!(permissions.subscribe, vec!["_INBOX_payments.>".to_owned()]);
    }

    #[test]
    fn the_block_names_every_user_and_leaves_the_operator_unrestricted() {
        let options = NatsOptions::default();
        let block = authorization_block(&[
            BusUser { name: "operator".into(), nkey: "UOPERATOR".into(), permissions: None },
            BusUser {
                name: "gateway".into(),
                nkey: "UGATEWAY".into(),
                permissions: Some(options.permissions("gateway", &["inventory"], &["orders"])),
            },
        ]);
        assert!(block.contains("{ nkey: \"UOPERATOR\" }"), "{block}");
        assert!(
            block.contains("subscribe: { allow: [\"_INBOX_gateway.>\", \"tessera.orders.>\"] }"),
            "{block}"
        );
    }
}
