//! `tessera keys rotate`: a new signing key for the gateway's tokens, on a running system,
//! through the gateway's admin API. The new key signs at once on the replica that answers and
//! on every other within its reload interval; the old one verifies until the last token it
//! signed expires, so nobody signed in is signed out.

use axum::http::Method;
use clap::Args;

use crate::api_client::GatewayTarget;

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    action: KeysAction,
}

#[derive(Debug, clap::Subcommand)]
enum KeysAction {
    /// Sign tokens with a new key from now on.
    Rotate {
        #[command(flatten)]
        target: GatewayTarget,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: KeysArgs) -> anyhow::Result<()> {
    let KeysAction::Rotate { target, json } = args.action;
    let (client, token) = target.connect().await?;
    let rotated = client.expect(Method::POST, "/api/v1/admin/keys/rotate", Some(&token), None, None).await?;
    if json {
        println!("{rotated}");
        return Ok(());
    }
    println!("signing with {}", rotated["kid"].as_str().unwrap_or("?"));
    for kid in rotated["previous"].as_array().into_iter().flatten() {
        println!("still verifying {} until its tokens expire", kid.as_str().unwrap_or("?"));
    }
    println!(
        "every gateway replica signs with the new key within {} s",
        rotated["replicas_within_seconds"].as_u64().unwrap_or(0)
    );
    Ok(())
}
