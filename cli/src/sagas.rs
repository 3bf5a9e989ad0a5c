//! `tessera sagas list|show`: the sagas a deployment runs, through its public API. `list` asks
//! `/api/v1/admin/sagas`: by state (`--state stuck`, the default without a search: compensations
//! that keep failing, with their reasons), by type, by an order's or a customer's id, a page at
//! a time; `show ID` asks `/api/v1/admin/sagas/{id}` for the sagas that worked on one order
//! (placing it, cancelling it) and prints each step and compensation with how long it took.

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
    /// Sagas across the deployment, newest first: by state, type, or an order's or customer's id.
    List {
        /// running, compensating, completed, compensated, failed, stuck or all. Default: stuck,
        /// or all with --search or --type.
        #[arg(long)]
        state: Option<String>,
        /// Only sagas of this type: place_order or cancel_order.
        #[arg(long = "type", value_name = "TYPE")]
        saga_type: Option<String>,
        /// An order's id or a customer's, matched exactly.
        #[arg(long, short = 'q', value_name = "ID")]
        search: Option<String>,
        /// At most this many (1 to 200; default 50).
        #[arg(long)]
        limit: Option<u32>,
        /// The next page: the cursor the previous page printed.
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        target: GatewayTarget,
        /// The answer (`{items, next_cursor}`) as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The sagas of one order (its id is theirs), each step with its duration and outcome.
    Show {
        /// The order's id.
        id: String,
        #[command(flatten)]
        target: GatewayTarget,
        /// The sagas as a JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// What `list` asks for, as the API's query.
#[derive(Debug, Default, PartialEq, Eq)]
struct ListQuery {
    state: Option<String>,
    saga_type: Option<String>,
    search: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

impl ListQuery {
    /// The state asked for: `stuck` when nothing narrows the list otherwise (what operators
    /// look at first, and what `list` always showed), none for `all`.
    fn state(&self) -> Option<&str> {
        match self.state.as_deref() {
            Some("all") => None,
            Some(state) => Some(state),
            None if self.search.is_none() && self.saga_type.is_none() => Some("stuck"),
            None => None,
        }
    }

    fn path(&self) -> anyhow::Result<String> {
        let limit = self.limit.map(|l| l.to_string());
        let pairs: Vec<(&str, &str)> = [
            ("state", self.state()),
            ("type", self.saga_type.as_deref()),
            ("q", self.search.as_deref()),
            ("limit", limit.as_deref()),
            ("cursor", self.cursor.as_deref()),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
        .collect();
        let query = serde_urlencoded::to_string(&pairs)?;
        Ok(if query.is_empty() {
            "/api/v1/admin/sagas".to_owned()
        } else {
            format!("/api/v1/admin/sagas?{query}")
        })
    }
}

pub async fn run(args: SagasArgs) -> anyhow::Result<()> {
    match args.action {
        SagasAction::List { state, saga_type, search, limit, cursor, target, json } => {
            let query = ListQuery { state, saga_type, search, limit, cursor };
            let (client, token) = target.connect().await?;
            let answer = client.expect(Method::GET, &query.path()?, Some(&token), None, None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                print!("{}", print_list(&answer, query.state()));
            }
        }
        SagasAction::Show { id, target, json } => {
            let (client, token) = target.connect().await?;
            let path = format!("/api/v1/admin/sagas/{id}");
            let answer = client.expect(Method::GET, &path, Some(&token), None, None).await?;
            let sagas = answer["items"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&sagas)?);
            } else {
                print!("{}", print_timings(&sagas));
            }
        }
    }
    Ok(())
}

/// Milliseconds as people read them: `840 µs`, `12.3 ms`, `4.210 s`.
fn duration(ms: &Value) -> String {
    match ms.as_f64() {
        None => "-".to_owned(),
        Some(ms) if ms < 1.0 => format!("{:.0} µs", ms * 1000.0),
        Some(ms) if ms < 1000.0 => format!("{ms:.1} ms"),
        Some(ms) => format!("{:.3} s", ms / 1000.0),
    }
}

fn why(saga: &Value) -> String {
    match (saga["stuck"].as_str(), saga["reason"].as_str()) {
        (Some(stuck), _) => format!("STUCK: {stuck}"),
        (None, Some(reason)) => reason.to_owned(),
        (None, None) => "-".to_owned(),
    }
}

/// A page of `list`: one line per saga, and how to ask for the next page.
fn print_list(answer: &Value, state: Option<&str>) -> String {
    let items = answer["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    if items.is_empty() {
        return match state {
            Some(state) => format!("no {state} sagas\n"),
            None => "no sagas\n".to_owned(),
        };
    }
    let mut out = format!(
        "{:<14}  {:<36}  {:<12}  {:<27}  {:>10}  reason\n",
        "saga", "id", "status", "started", "took"
    );
    for saga in items {
        out += &format!(
            "{:<14}  {:<36}  {:<12}  {:<27}  {:>10}  {}\n",
            saga["saga"].as_str().unwrap_or("-"),
            saga["id"].as_str().unwrap_or("-"),
            saga["status"].as_str().unwrap_or("-"),
            saga["started_at"].as_str().unwrap_or("-"),
            duration(&saga["duration_ms"]),
            why(saga),
        );
    }
    if let Some(cursor) = answer["next_cursor"].as_str() {
        out += &format!("more: --cursor {cursor}\n");
    }
    out
}

/// The sagas of `show`: each with its state and span, then each step and compensation.
fn print_timings(sagas: &[Value]) -> String {
    let mut out = String::new();
    for saga in sagas {
        out += &format!(
            "{}  {}  started {}  took {}  {}\n",
            saga["saga"].as_str().unwrap_or("-"),
            saga["status"].as_str().unwrap_or("-"),
            saga["started_at"].as_str().unwrap_or("-"),
            duration(&saga["duration_ms"]),
            why(saga),
        );
        let steps = saga["steps"].as_array().map(Vec::as_slice).unwrap_or_default();
        if steps.is_empty() {
            out += "  (no step timings: started before they were kept)\n";
            continue;
        }
        out += &format!("  {:<20}  {:<12}  {:<11}  {:>10}  attempts\n", "step", "kind", "outcome", "took");
        for step in steps {
            let compensation = step["kind"] == "compensation";
            out += &format!(
                "  {:<20}  {:<12}  {:<11}  {:>10}  {}\n",
                step["name"].as_str().unwrap_or("-"),
                if compensation { "↩ undo" } else { "forward" },
                step["outcome"].as_str().unwrap_or("waiting"),
                duration(&step["duration_ms"]),
                step["attempts"],
            );
        }
    }
    out
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
        out += &format!(
            "  {:<14}  {:<12}  {:>4}  {:<28}  {:>9}  {}\n",
            saga["saga"].as_str().unwrap_or("-"),
            saga["status"].as_str().unwrap_or("-"),
            saga["step"],
            saga["started_at"].as_str().unwrap_or("-"),
            took,
            why(saga),
        );
    }
    out
}

fn timestamp(value: &Value) -> Option<Timestamp> {
    humantime::parse_rfc3339(value.as_str()?).ok().map(Timestamp::from_system_time)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn list_shows_stuck_sagas_unless_asked_for_something_else() {
        let query = |state: Option<&str>, search: Option<&str>| ListQuery {
            state: state.map(str::to_owned),
            search: search.map(str::to_owned),
            ..ListQuery::default()
        };
        assert_eq!(query(None, None).path().expect("path"), "/api/v1/admin/sagas?state=stuck");
        assert_eq!(query(None, Some("o 1")).path().expect("path"), "/api/v1/admin/sagas?q=o+1");
        assert_eq!(query(Some("all"), None).path().expect("path"), "/api/v1/admin/sagas");
        let all = ListQuery {
            state: Some("failed".into()),
            saga_type: Some("place_order".into()),
            limit: Some(5),
            cursor: Some("7b".into()),
            ..ListQuery::default()
        };
        assert_eq!(
            all.path().expect("path"),
            "/api/v1/admin/sagas?state=failed&type=place_order&limit=5&cursor=7b"
        );
    }

    #[test]
    fn show_prints_each_step_with_its_duration_and_marks_compensations() {
        let saga = json!({"saga": "place_order", "status": "compensated", "started_at": "t0",
            "duration_ms": 1532.25, "reason": "payment_declined", "stuck": null, "steps": [
                {"name": "reserve_stock", "kind": "forward", "outcome": "succeeded", "duration_ms": 0.84, "attempts": 1},
                {"name": "authorise_payment", "kind": "forward", "outcome": "failed", "duration_ms": 12.34, "attempts": 1},
                {"name": "reserve_stock", "kind": "compensation", "outcome": "compensated", "duration_ms": 3.0, "attempts": 2},
                {"name": "capture", "kind": "forward", "outcome": null, "duration_ms": null, "attempts": 1}]});
        let text = print_timings(&[saga]);
        for expected in [
            "place_order  compensated  started t0  took 1.532 s  payment_declined",
            "reserve_stock         forward       succeeded        840 µs  1",
            "authorise_payment     forward       failed          12.3 ms  1",
            "reserve_stock         ↩ undo        compensated      3.0 ms  2",
            "capture               forward       waiting               -  1",
        ] {
            assert!(text.contains(expected), "{expected:?} in:\n{text}");
        }
        let page = json!({"items": [], "next_cursor": null});
        assert_eq!(print_list(&page, Some("stuck")), "no stuck sagas\n");
        let page = json!({"items": [{"saga": "place_order", "id": "o-1", "status": "running", "started_at": "t0",
            "duration_ms": null, "stuck": "compensation of step x failed 5 times"}], "next_cursor": "7b"});
        let text = print_list(&page, None);
        assert!(
            text.contains("STUCK: compensation of step x failed 5 times")
                && text.ends_with("more: --cursor 7b\n"),
            "{text}"
        );
    }
}
