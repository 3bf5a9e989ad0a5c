//! `tessera orders show ID`: one order as a support engineer needs it, through the public API:
//! the composed view (status, reason, customer, lines, payment), then its story, every event
//! and the sagas that worked on it. `--json` prints both answers as one object.

use axum::http::Method;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::api_client::GatewayTarget;
use crate::sagas::print_sagas;

#[derive(Debug, Args)]
pub struct OrdersArgs {
    #[command(subcommand)]
    action: OrdersAction,
}

#[derive(Debug, Subcommand)]
enum OrdersAction {
    /// One order: its state, lines and payment, then its events and sagas.
    Show {
        /// The order's id.
        id: String,
        #[command(flatten)]
        target: GatewayTarget,
        /// One JSON object `{"order": …, "history": …}` instead of the text.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: OrdersArgs) -> anyhow::Result<()> {
    let OrdersAction::Show { id, target, json } = args.action;
    let (client, token) = target.connect().await?;
    let order = client.expect(Method::GET, &format!("/api/v1/orders/{id}"), Some(&token), None, None).await?;
    let history =
        client.expect(Method::GET, &format!("/api/v1/orders/{id}/history"), Some(&token), None, None).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&json!({"order": order, "history": history}))?);
        return Ok(());
    }
    print!("{}", describe(&order, &history));
    Ok(())
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("-")
}

fn money(value: &Value) -> String {
    match (value["amount"].as_i64(), value["currency"].as_str()) {
        (Some(amount), Some(currency)) => format!("{}.{:02} {currency}", amount / 100, amount % 100),
        _ => "-".to_owned(),
    }
}

/// The text `orders show` prints.
fn describe(order: &Value, history: &Value) -> String {
    let mut out = String::new();
    let reason = order["reason"].as_str().map(|r| format!(" ({r})")).unwrap_or_default();
    out += &format!("order     {}\n", text(&order["id"]));
    out += &format!("status    {}{reason}\n", text(&order["status"]));
    out += &format!("customer  {} {}\n", text(&order["customer"]["id"]), text(&order["customer"]["name"]));
    out += &format!("total     {}\n", money(&order["total"]));
    out += &format!("payment   {}\n", text(&order["payment"]["status"]));
    out += &format!("created   {}\nupdated   {}\n", text(&order["created_at"]), text(&order["updated_at"]));
    if let Some(degraded) = order["degraded"].as_array().filter(|d| !d.is_empty()) {
        let names: Vec<&str> = degraded.iter().filter_map(Value::as_str).collect();
        out += &format!("degraded  {} did not answer in time\n", names.join(", "));
    }
    out += "\nitems\n";
    for item in order["items"].as_array().into_iter().flatten() {
        let name = item["name"].as_str().map(|n| format!("  {n}")).unwrap_or_default();
        out += &format!("  {:>4} × {}{name}\n", item["quantity"], text(&item["sku"]));
    }
    out += "\nevents\n";
    for event in history["events"].as_array().into_iter().flatten() {
        out += &format!("  {:>3}  {}  {}\n", event["version"], text(&event["at"]), text(&event["name"]));
    }
    out += "\nsagas\n";
    out += &print_sagas(history["sagas"].as_array().map(Vec::as_slice).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_is_described_with_its_lines_events_and_sagas() {
        let order = json!({"id": "o-1", "status": "rejected", "reason": "payment_declined",
            "customer": {"id": "c-1", "name": "Ada"}, "total": {"amount": 1700, "currency": "EUR"},
            "items": [{"sku": "TEA-001", "quantity": 2}], "payment": {"status": "declined"},
            "created_at": "t0", "updated_at": "t1", "degraded": ["payments"]});
        let history = json!({"events": [{"version": 1, "at": "t0", "name": "orders.Placed"}],
            "sagas": [{"saga": "place_order", "status": "compensated", "step": 2, "reason": "payment_declined",
                "stuck": null, "started_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:01.5Z"}]});
        let text = describe(&order, &history);
        for expected in [
            "status    rejected (payment_declined)",
            "total     17.00 EUR",
            "2 × TEA-001",
            "1  t0  orders.Placed",
            "place_order",
            "compensated",
            "1.500 s",
            "degraded  payments",
        ] {
            assert!(text.contains(expected), "{expected:?} in:\n{text}");
        }
    }
}
