//! `tessera seed`: the demo catalogue, added through the gateway's API as a member of staff,
//! so that a distributed system started by hand has something to sell (`tessera up` adds the
//! same products itself). Products already there are left as they are.

use axum::http::Method;
use clap::Args;
use serde_json::json;

use crate::api_client::GatewayTarget;

#[derive(Debug, Args)]
pub struct SeedArgs {
    #[command(flatten)]
    target: GatewayTarget,
    /// Print what was added as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: SeedArgs) -> anyhow::Result<()> {
    let (client, token) = args.target.connect().await?;
    let mut added = Vec::new();
    let mut present = Vec::new();
    for (sku, name, description, price, stock) in crate::up::DEMO_CATALOGUE {
        let product = json!({"sku": sku, "name": name, "description": description,
            "price": {"amount": price, "currency": "EUR"}, "stock": stock});
        let (status, answer) =
            client.call(Method::POST, "/api/v1/products", Some(&token), Some(product), None).await?;
        match status {
            201 => added.push(sku),
            409 => present.push(sku),
            _ => anyhow::bail!("adding {sku} answered {status}: {answer}"),
        }
    }
    if args.json {
        println!("{}", json!({"added": added, "already_there": present}));
    } else {
        println!("added {} products, {} were there already", added.len(), present.len());
    }
    Ok(())
}
