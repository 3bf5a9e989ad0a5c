//! The token signing keys at rest: sealed by the vault, so that a copy of the gateway's
//! database signs nothing; keys an earlier release stored in clear are sealed at the next start,
//! and tokens they signed still verify.

use std::sync::Arc;

use axum::Router;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tessera_gateway::{
    Gateway, GatewayConfig, InProcess, Role, ServiceClient, Services, SigningKey, TokenSettings,
};
use tessera_kernel::Timestamp;
use tessera_runtime::{Storage, open_store};
use tessera_store::{Statement, Store};
use tessera_testkit::TempDataDir;

fn nobody(name: &'static str) -> Arc<dyn ServiceClient> {
    Arc::new(InProcess::new(name, Router::new()))
}

fn services() -> Services {
    Services {
        inventory: nobody("inventory"),
        orders: nobody("orders"),
        payments: nobody("payments"),
        customers: nobody("customers"),
        support: nobody("support"),
    }
}

async fn gateway(store: &Store, sealer: Option<Arc<dyn tessera_vault::Sealer>>) -> Result<Gateway, String> {
    let config = GatewayConfig { key_sealer: sealer, staff: Vec::new(), ..GatewayConfig::default() };
    Gateway::new(services(), store.clone(), config, TokenSettings::default()).await.map_err(|e| e.to_string())
}

async fn stored_keys(store: &Store) -> Vec<String> {
    let rows = store.query(Statement::new("SELECT pkcs8 FROM gateway_keys")).await.expect("rows");
    rows.iter().map(|row| row.text("pkcs8").expect("pkcs8").to_owned()).collect()
}

fn in_clear(stored: &str) -> bool {
    STANDARD.decode(stored).is_ok_and(|der| SigningKey::from_pkcs8(&der).is_ok())
}

fn now() -> Timestamp {
    Timestamp::from_system_time(std::time::SystemTime::now())
}

#[tokio::test]
async fn keys_in_clear_are_sealed_at_the_next_start_and_their_tokens_still_verify() {
    let data = TempDataDir::new();
    let storage = Storage::Files(data.path().to_path_buf());
    let store = open_store(&storage, "gateway", &[tessera_gateway::MIGRATIONS]).await.expect("store");

    // An earlier release: no vault, the key in clear.
    let before = gateway(&store, None).await.expect("a gateway without a vault");
    let token = before.keys().issue("c-1", Role::Customer, now()).expect("a token");
    let kid = before.keys().current_kid();
    assert!(stored_keys(&store).await.iter().all(|k| in_clear(k)), "stored in clear before");

    // This release: the vault seals it, and the same key goes on signing and verifying.
    let vault = tessera_testkit::temporary_vault().await;
    let after = gateway(&store, Some(vault.clone())).await.expect("a gateway with the vault");
    let stored = stored_keys(&store).await;
    assert_eq!(stored.len(), 1);
    assert!(!in_clear(&stored[0]), "the key is sealed now: {}", stored[0]);
    assert_eq!(after.keys().current_kid(), kid);
    assert_eq!(after.keys().verify(&token, now()).expect("verifies").sub, "c-1");

    // Another replica opens the same sealed key.
    let replica = gateway(&store, Some(vault)).await.expect("a replica");
    assert!(stored_keys(&store).await.iter().all(|k| !in_clear(k)));
    assert_eq!(replica.keys().current_kid(), kid, "every replica loads the same key");

    // Without the vault a sealed key opens nothing, and the gateway says why.
    let Err(refused) = gateway(&store, None).await else { panic!("no vault, no key") };
    assert!(refused.contains("sealed"), "{refused}");
}
