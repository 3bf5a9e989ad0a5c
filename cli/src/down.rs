//! `tessera down --purge`: the end of a distributed system's data. Drops every database of a
//! prefix (the services', the gateway's and the vault's) and every NATS stream of a
//! namespace. Stop the processes first: their connections are closed by force.

use anyhow::{Context, bail};
use clap::Args;

/// The databases a distributed system of one prefix keeps, besides nothing else.
const DATABASES: [&str; 7] = ["inventory", "orders", "payments", "customers", "support", "gateway", "vault"];

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Drop the databases and streams for good (required: there is no other way down).
    #[arg(long)]
    purge: bool,
    /// The PostgreSQL server the services used.
    #[arg(long, env = "TESSERA_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432")]
    database_url: String,
    /// Their databases' prefix (`<prefix>_<service>`).
    #[arg(long, env = "TESSERA_DATABASE_PREFIX", default_value = "tessera")]
    database_prefix: String,
    /// The NATS server they used.
    #[arg(long, env = "TESSERA_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Their subjects' and streams' prefix.
    #[arg(long, env = "TESSERA_NATS_NAMESPACE", default_value = "tessera")]
    nats_namespace: String,
    /// An nkey seed file allowed to delete streams (`operator.nk` from `tessera nats auth`),
    /// when the server checks who connects.
    #[arg(long, env = "TESSERA_NATS_NKEY_FILE", value_name = "PATH")]
    nats_nkey_file: Option<std::path::PathBuf>,
    /// Print what was dropped as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: DownArgs) -> anyhow::Result<()> {
    if !args.purge {
        bail!("`tessera down` drops every database and stream of the system: say --purge to mean it");
    }
    let mut databases = Vec::new();
    for service in DATABASES {
        let name = format!("{}_{service}", args.database_prefix);
        let url = tessera_store::database_url(&args.database_url, &name);
        tessera_store::drop_database(&url).await.with_context(|| format!("cannot drop {name}"))?;
        databases.push(name);
    }
    let mut options = async_nats::ConnectOptions::new();
    if let Some(path) = &args.nats_nkey_file {
        let seed =
            std::fs::read_to_string(path).with_context(|| format!("--nats-nkey-file {}", path.display()))?;
        options = options.nkey(seed.trim().to_owned());
    }
    let client = options.connect(&args.nats_url).await.context("cannot connect to NATS")?;
    let jetstream = async_nats::jetstream::new(client);
    let bus = tessera_bus::NatsOptions { namespace: args.nats_namespace.clone(), ..Default::default() };
    let mut streams = Vec::new();
    for source in tessera_contracts::topology::BUS_LISTENERS.iter().map(|listener| listener.service) {
        let name = bus.stream_name(source);
        match jetstream.delete_stream(&name).await {
            Ok(_) => streams.push(name),
            Err(error)
                if matches!(error.kind(), async_nats::jetstream::context::DeleteStreamErrorKind::JetStream(ref cause)
                    if cause.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND) => {}
            Err(error) => return Err(error).with_context(|| format!("cannot delete the stream {name}")),
        }
    }
    if args.json {
        println!("{}", serde_json::json!({"databases": databases, "streams": streams}));
    } else {
        println!("dropped the databases (those that were there) and {} streams", streams.len());
        for name in databases.iter().chain(&streams) {
            println!("  {name}");
        }
    }
    Ok(())
}
