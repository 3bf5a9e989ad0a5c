//! End-to-end tests: the real `tessera` binary, started as a user would start it.

use std::process::Command;

fn tessera() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
}

#[test]
fn help_lists_the_subcommands() {
    let output = tessera().arg("--help").output().expect("run tessera --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for subcommand in ["up", "dlq", "bench"] {
        assert!(help.contains(subcommand), "--help lacks `{subcommand}`:\n{help}");
    }
}

#[test]
fn up_creates_the_data_folder_and_reports_the_stores_in_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let first = tessera().arg("up").arg("--data").arg(&data).output().expect("run tessera up");
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(data.is_dir(), "up creates the data folder");
    assert!(String::from_utf8_lossy(&first.stdout).contains("no service stores yet"));

    // A store file in the folder is opened and reported.
    std::fs::write(data.join("inventory.db"), b"").expect("create an empty store file");
    let second = tessera().arg("up").arg("--data").arg(&data).output().expect("run tessera up");
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    let listing = String::from_utf8_lossy(&second.stdout);
    assert!(listing.contains("inventory.db") && listing.contains("0 events"), "{listing}");
}

#[test]
fn an_unknown_subcommand_fails_with_a_usage_error() {
    let output = tessera().arg("frobnicate").output().expect("run tessera");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unrecognized subcommand"));
}

mod dlq {
    //! `tessera dlq` on a real dead letter: a subscriber whose handler always fails parks a
    //! message in the inventory store; the binary lists, retries and drops it.

    use std::sync::Arc;
    use std::time::Duration;

    use async_trait::async_trait;
    use tessera_bus::{
        Handler, HandlerError, InProcessTransport, Relay, RelayOptions, Subscriber, SubscriberOptions,
        Upcasters,
    };
    use tessera_kernel::{Envelope, HlcTimestamp, MessageKind, UuidV7Gen};
    use tessera_store::{SqliteOptions, Store, StoreConfig, UnitOfWork};

    use super::tessera;

    struct AlwaysFails;

    #[async_trait]
    impl Handler for AlwaysFails {
        async fn handle(&self, _: &Envelope, _: &mut UnitOfWork) -> Result<(), HandlerError> {
            Err("sku not found in catalogue".into())
        }
    }

    async fn park_one_message(data: &std::path::Path) -> Envelope {
        let open = |name: &str| StoreConfig::Sqlite {
            path: data.join(format!("{name}.db")),
            options: SqliteOptions::default(),
        };
        let orders = Store::open(&open("orders"), &[]).await.expect("orders store");
        let inventory =
            Store::open(&open("inventory"), &[tessera_bus::MIGRATIONS]).await.expect("inventory store");
        let transport = Arc::new(InProcessTransport::new());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let subscriber = Subscriber::new(
            "inventory",
            "orders",
            inventory.clone(),
            transport.clone(),
            Arc::new(AlwaysFails),
            Arc::new(Upcasters::new()),
            SubscriberOptions {
                max_attempts: 2,
                backoff_base: Duration::from_millis(1),
                ..SubscriberOptions::default()
            },
        );
        let subscriber = tokio::spawn(subscriber.run(stopped.clone()));
        let relay = tokio::spawn(
            Relay::new("orders", orders.clone(), transport, RelayOptions::default()).run(stopped),
        );
        let message = Envelope::new(
            &UuidV7Gen,
            MessageKind::Event,
            "orders.OrderPlaced",
            "orders",
            "order-1",
            HlcTimestamp::default(),
            serde_json::json!({"sku": "NOPE-1"}),
        );
        let mut unit = orders.begin();
        unit.send(&message).expect("send");
        unit.commit().await.expect("commit");
        for _ in 0..200 {
            if !tessera_bus::list_dead_letters(&inventory, None).await.expect("list").is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        stop.send(true).expect("stop");
        subscriber.await.expect("subscriber task").expect("subscriber");
        relay.await.expect("relay task").expect("relay");
        message
    }

    fn run(data: &std::path::Path, args: &[&str]) -> (bool, String, String) {
        let output = tessera()
            .arg("dlq")
            .args(args)
            .arg("--data")
            .arg(data)
            .arg("--service")
            .arg("inventory")
            .output()
            .expect("run tessera dlq");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dlq_lists_retries_and_drops_a_real_dead_letter() {
        let dir = tempfile::tempdir().expect("temp dir");
        let message = park_one_message(dir.path()).await;

        let (ok, stdout, stderr) = run(dir.path(), &["list", "--json"]);
        assert!(ok, "{stderr}");
        let letters: serde_json::Value = serde_json::from_str(&stdout).expect("json");
        assert_eq!(letters.as_array().map(Vec::len), Some(1));
        let letter = &letters[0];
        assert_eq!(letter["message_id"], message.id.to_string());
        assert_eq!(letter["consumer"], "inventory__orders");
        assert_eq!(letter["attempts"], 2);
        assert_eq!(letter["state"], "parked");
        assert!(letter["error"].as_str().unwrap_or_default().contains("sku not found"));
        let id = letter["id"].as_i64().expect("id").to_string();

        let (ok, stdout, _) = run(dir.path(), &["retry", &id]);
        assert!(ok && stdout.contains("queued for retry"), "{stdout}");
        let (_, stdout, _) = run(dir.path(), &["list"]);
        assert!(stdout.contains("retry") && stdout.contains(&message.id.to_string()), "{stdout}");

        let (ok, stdout, _) = run(dir.path(), &["drop", &id]);
        assert!(ok && stdout.contains("dropped"), "{stdout}");
        let (_, stdout, _) = run(dir.path(), &["list"]);
        assert!(stdout.contains("no dead letters"), "{stdout}");
        let (ok, _, stderr) = run(dir.path(), &["drop", &id]);
        assert!(!ok && stderr.contains("no dead letter"), "{stderr}");
    }

    #[test]
    fn dlq_names_a_missing_store_clearly() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (ok, _, stderr) = run(dir.path(), &["list"]);
        assert!(!ok);
        assert!(stderr.contains("no store at") && stderr.contains("inventory.db"), "{stderr}");
    }
}
