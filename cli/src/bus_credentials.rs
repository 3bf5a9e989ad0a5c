//! `tessera nats auth`: one NATS user per service, made from the bus table in `contracts`, so
//! that each service may publish only as itself and read only the streams it consumes.
//!
//! Writes into a folder an nkey seed per service (`<service>.nk`, mode 0600: hand each to its
//! service only, as `--nats-nkey-file`), one for operators' tools (`operator.nk`, allowed
//! everything), and `auth.conf`, the server's `authorization` block, which holds only public
//! keys. Seeds already in the folder are kept, so running it again after an upgrade refreshes
//! the permissions without new credentials; delete a seed to replace it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use tessera_bus::{BusUser, NatsOptions, authorization_block};
use tessera_contracts::topology::BUS_LISTENERS;

#[derive(Debug, Args)]
pub struct NatsArgs {
    #[command(subcommand)]
    action: NatsAction,
}

#[derive(Debug, clap::Subcommand)]
enum NatsAction {
    /// Make (or refresh) each service's NATS credentials and the server's `auth.conf`.
    Auth {
        /// The subjects' and streams' prefix the services run under (`--nats-namespace`).
        #[arg(long, default_value = "tessera")]
        namespace: String,
        /// The folder for the seeds and `auth.conf` (created, mode 0700).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// The user that operators' tools connect as.
pub const OPERATOR: &str = "operator";

pub fn run(args: NatsArgs) -> anyhow::Result<()> {
    let NatsAction::Auth { namespace, out } = args.action;
    let conf = write_credentials(&out, &namespace)?;
    println!("wrote {} and one seed per service in {}", conf.display(), out.display());
    println!("include auth.conf from the server's configuration and give each service its seed:");
    println!("  tessera serve <service> --nats-nkey-file {}/<service>.nk", out.display());
    Ok(())
}

/// Writes the seeds (keeping those already there) and `auth.conf` for `namespace` into `out`;
/// answers the path of `auth.conf`.
pub fn write_credentials(out: &Path, namespace: &str) -> anyhow::Result<PathBuf> {
    create_private_dir(out)?;
    let options = NatsOptions { namespace: namespace.to_owned(), ..NatsOptions::default() };
    let mut users =
        vec![BusUser { name: OPERATOR.to_owned(), nkey: public_key(out, OPERATOR)?, permissions: None }];
    for listener in &BUS_LISTENERS {
        users.push(BusUser {
            name: listener.service.to_owned(),
            nkey: public_key(out, listener.service)?,
            permissions: Some(options.permissions(listener.service, listener.consumes, listener.watches)),
        });
    }
    let conf = out.join("auth.conf");
    let text = format!(
        "# Made by `tessera nats auth --namespace {namespace}`: one user per service, for the\n\
         # subjects under `{namespace}`. Public keys only; the seeds stay with the services.\n{}",
        authorization_block(&users)
    );
    std::fs::write(&conf, text).with_context(|| format!("cannot write {}", conf.display()))?;
    Ok(conf)
}

/// The seed file of `user` in `dir`.
pub fn seed_file(dir: &Path, user: &str) -> PathBuf {
    dir.join(format!("{user}.nk"))
}

/// The public key of `user`, from its seed in `dir`, made first if there is none.
fn public_key(dir: &Path, user: &str) -> anyhow::Result<String> {
    let path = seed_file(dir, user);
    let pair = match std::fs::read_to_string(&path) {
        Ok(seed) => nkeys::KeyPair::from_seed(seed.trim())
            .with_context(|| format!("{} holds no nkey seed", path.display()))?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let pair = nkeys::KeyPair::new_user();
            let seed = pair.seed().context("a new nkey has a seed")?;
            write_private(&path, seed.as_bytes())?;
            pair
        }
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    Ok(pair.public_key())
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_private_and_kept_and_the_conf_names_every_service() {
        let dir = tempfile::tempdir().expect("a folder");
        let out = dir.path().join("nats");
        let conf = write_credentials(&out, "shop").expect("credentials");
        let first = std::fs::read_to_string(&conf).expect("auth.conf");
        for listener in &BUS_LISTENERS {
            let seed = seed_file(&out, listener.service);
            let mode = std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(&seed).expect("seed").permissions(),
            );
            assert_eq!(mode & 0o777, 0o600, "{}", seed.display());
            assert!(first.contains(&format!("# {}\n", listener.service)), "{first}");
            assert!(first.contains(&format!("\"shop.{}.>\"", listener.service)), "{first}");
        }
        for user in BUS_LISTENERS.iter().map(|l| l.service).chain([OPERATOR]) {
            let seed = std::fs::read_to_string(seed_file(&out, user)).expect("seed");
            assert!(seed.starts_with("SU"), "{user}: {seed}");
            assert!(!first.contains(seed.trim()), "{user}'s seed leaked into auth.conf");
        }
        write_credentials(&out, "shop").expect("again");
        assert_eq!(
            std::fs::read_to_string(&conf).expect("auth.conf"),
            first,
            "the same seeds, the same keys"
        );
    }

    /// The credentials allow each service what its subscriptions read, no more, no less: a
    /// service that starts consuming a new source without the table saying so fails here, not
    /// in production with a permissions violation.
    #[tokio::test]
    async fn the_bus_table_is_what_every_service_subscribes_to() {
        use std::sync::Arc;
        use tessera_kernel::{Clock, IdGen, SystemClock, UuidV7Gen};

        let dir = tempfile::tempdir().expect("a folder");
        let settings = crate::settings::EmbeddedSettings {
            payment_timeout: std::time::Duration::from_secs(10),
            slow_card_delay: std::time::Duration::from_secs(15),
            card_failure_rate: 0.0,
            card_latency: std::time::Duration::ZERO,
            gateway: tessera_gateway::GatewayConfig::default(),
            sealer: None,
            catalogue_cache: true,
            attachment_limits: tessera_support::AttachmentLimits::default(),
            retention: crate::settings::Retention::default(),
        };
        let ids: Arc<dyn IdGen> = Arc::new(UuidV7Gen);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let mut embedding = crate::registry::Embedding::new(dir.path(), &settings, ids, clock);
        let mut subscribed: Vec<(&str, Vec<&str>)> = Vec::new();
        for descriptor in &crate::registry::SERVICES {
            let service = (descriptor.embedded)(&mut embedding).await.expect("the service starts");
            subscribed.push((service.name(), service.subscriptions().iter().map(|s| s.source).collect()));
        }
        let gateway_store = embedding
            .open(tessera_gateway::SERVICE, tessera_gateway::migrations())
            .await
            .expect("the gateway's store");
        let catalogue = tessera_gateway::catalogue::Catalogue::new(Arc::new(
            tessera_gateway::catalogue::LocalCache::new(8, std::time::Duration::from_secs(1)),
        ));
        let invalidation = tessera_gateway::catalogue::CatalogueInvalidation::new(catalogue, gateway_store);
        subscribed.push((
            tessera_gateway::SERVICE,
            tessera_runtime::Service::subscriptions(&invalidation).iter().map(|s| s.source).collect(),
        ));
        for (service, mut sources) in subscribed {
            let listener = tessera_contracts::topology::bus_listener(service)
                .unwrap_or_else(|| panic!("{service} is missing from the bus table"));
            let mut declared = listener.consumes.to_vec();
            declared.sort_unstable();
            sources.sort_unstable();
            assert_eq!(sources, declared, "{service} subscribes to what the bus table says");
        }
    }
}
