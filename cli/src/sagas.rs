//! `tessera sagas list|show`: the sagas a deployment runs, through its public API. `list` asks
//! `/api/v1/admin/sagas` (`--state stuck`: compensations that keep failing, with their reasons);
//! `show ORDER_ID` prints the sagas that worked on one order (placing it, cancelling it) from
//! the order's history, with how long each took.

use axum::http::Method;
use clap::{Args, Subcommand};
use serde_json::Value;
use tessera_kernel::Timestamp;

use crate::api_client::GatewayTarget;

#[derive(Debug, Args)]
pub struct SagasArgs {
    #[command(subcommand)]
    action: SagasAction,
}

#[derive(Debug, Subcommand)]
enum SagasAction {
    /// Sagas by state, across the deployment.
    List {
        /// Only sagas in this state.
        #[arg(long, default_value = "stuck")]
        state: String,
        #[command(flatten)]
        target: GatewayTarget,
        /// The answer as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The sagas of one order (its id is theirs): state, step, start, duration, reason.
    Show {
        /// The order's id.
        id: String,
        #[command(flatten)]
        target: GatewayTarget,
        /// The sagas as a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: SagasArgs) -> anyhow::Result<()> {
    match args.action {
        SagasAction::List { state, target, json } => {
            let (client, token) = target.connect().await?;
            let path = format!("/api/v1/admin/sagas?state={state}");
            let answer = client.expect(Method::GET, &path, Some(&token), None, None).await?;
            let items = answer["items"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else if items.is_empty() {
                println!("no {state} sagas");
            } else {
                println!("{:<14}  {:<36}  {:<25}  reason", "saga", "id", "updated");
                for saga in &items {
                    println!(
                        "{:<14}  {:<36}  {:<25}  {}",
                        saga["saga"].as_str().unwrap_or("-"),
                        saga["id"].as_str().unwrap_or("-"),
                        saga["updated_at"].as_str().unwrap_or("-"),
                        saga["reason"].as_str().unwrap_or("-"),
                    );
                }
            }
        }
        SagasAction::Show { id, target, json } => {
            let (client, token) = target.connect().await?;
            let path = format!("/api/v1/orders/{id}/history");
            let history = client.expect(Method::GET, &path, Some(&token), None, None).await?;
            let sagas = history["sagas"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&sagas)?);
            } else {
                print!("{}", print_sagas(&sagas));
            }
        }
    }
    Ok(())
}

/// The sagas of an order's history as a table, one line each, with how long each ran (to its
/// last change, for a saga still running).
pub fn print_sagas(sagas: &[Value]) -> String {
    if sagas.is_empty() {
        return "  none\n".to_owned();
    }
    let mut out = format!(
        "  {:<14}  {:<12}  {:>4}  {:<28}  {:>9}  reason\n",
        "saga", "status", "step", "started", "took"
    );
    for saga in sagas {
        let took = match (timestamp(&saga["started_at"]), timestamp(&saga["updated_at"])) {
            (Some(start), Some(end)) => {
                format!("{:.3} s", end.since(start).as_secs_f64())
            }
            _ => "-".to_owned(),
        };
        let reason = match (saga["stuck"].as_str(), saga["reason"].as_str()) {
            (Some(stuck), _) => format!("STUCK: {stuck}"),
            (None, Some(reason)) => reason.to_owned(),
            (None, None) => "-".to_owned(),
        };
        out += &format!(
            "  {:<14}  {:<12}  {:>4}  {:<28}  {:>9}  {reason}\n",
            saga["saga"].as_str().unwrap_or("-"),
            saga["status"].as_str().unwrap_or("-"),
            saga["step"],
            saga["started_at"].as_str().unwrap_or("-"),
            took,
        );
    }
    out
}

fn timestamp(value: &Value) -> Option<Timestamp> {
    humantime::parse_rfc3339(value.as_str()?).ok().map(Timestamp::from_system_time)
}
