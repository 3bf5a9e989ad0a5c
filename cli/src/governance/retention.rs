//! `tessera governance retention`: per service, each declared retention, the job that carries
//! it out, what is due now and what was done. The retentions come from the same declarations
//! as the data map; what is due and done is read from each store (the jobs keep no state
//! elsewhere: their timers are the stored data).

use std::time::Duration;

use serde::Serialize;
use tessera_kernel::Timestamp;
use tessera_kernel::personal::{PLATFORM, PersonalField, Retention};
use tessera_store::{Statement, Store};

/// One declared retention in one store, and how it is carried out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RetentionLine {
    pub service: String,
    pub field: String,
    /// What the declaration (or, for a setting, the last run) says.
    pub retention: String,
    /// What carries it out.
    pub job: String,
    /// Rows or records due now and not yet gone; `None` where no clock ends the data.
    pub due_now: Option<u64>,
    pub last_run_at: Option<Timestamp>,
    /// What the job has done, as far as it keeps count.
    pub done: String,
}

/// Sent outbox rows are pruned by each service's relay after this long
/// (`tessera_bus::RelayOptions::default().retention`).
fn outbox_retention() -> Duration {
    tessera_bus::RelayOptions::default().retention
}

fn micros(at: Timestamp) -> i64 {
    i64::try_from(at.as_micros()).unwrap_or(i64::MAX)
}

async fn count(store: &Store, sql: &str, cutoff: Timestamp) -> Option<u64> {
    let rows = store.query(Statement::new(sql).bind(micros(cutoff))).await.ok()?;
    rows.first()?.int("n").ok().and_then(|n| u64::try_from(n).ok())
}

fn line(service: &str, field: &PersonalField, job: &str) -> RetentionLine {
    RetentionLine {
        service: service.to_owned(),
        field: field.field.to_owned(),
        retention: field.retention.to_string(),
        job: job.to_owned(),
        due_now: None,
        last_run_at: None,
        done: "-".to_owned(),
    }
}

/// The lines of `service`'s store: its own declarations, then the platform's, which every
/// store carries. Audit records older than `audit_archive_after` are due for the archive.
pub async fn lines(
    service: &str,
    store: &Store,
    declared: &[PersonalField],
    now: Timestamp,
    audit_archive_after: Duration,
) -> Vec<RetentionLine> {
    let mut lines = Vec::new();
    for field in declared.iter().filter(|f| f.service == service) {
        lines.push(own_line(service, field, store, now).await);
    }
    if service == tessera_orders::SERVICE {
        lines.push(request_keys(store, now).await);
    }
    for field in declared.iter().filter(|f| f.service == PLATFORM) {
        lines.push(platform_line(service, field, store, now, audit_archive_after).await);
    }
    lines
}

async fn own_line(service: &str, field: &PersonalField, store: &Store, now: Timestamp) -> RetentionLine {
    let mut line = line(service, field, "");
    match (service, field.retention) {
        (tessera_support::SERVICE, _)
            if field.field == tessera_support::personal_data::TICKET_MESSAGE.field =>
        {
            line.job = "support's retention sweep (hourly): erases, audited".to_owned();
            match tessera_support::retention::status(store, None, now).await {
                Ok(status) => {
                    line.retention = status.applied;
                    line.due_now = Some(status.due_messages);
                    line.last_run_at = status.last_run_at;
                    line.done = format!(
                        "{} message(s) erased, {} by the last run{}",
                        status.total_erased,
                        status.last_erased,
                        status
                            .next_due_at
                            .map(|at| format!("; next due {}", at.to_rfc3339()))
                            .unwrap_or_default()
                    );
                }
                Err(error) => line.done = format!("cannot read: {error}"),
            }
        }
        (tessera_gateway::SERVICE, Retention::Days { .. }) => {
            // Nothing sweeps it: the table is no longer written (decision 0004), and its old
            // rows go with the table.
            line.job = "none: no longer written".to_owned();
            line.due_now = count(
                store,
                "SELECT COUNT(*) AS n FROM gateway_idempotency WHERE created_at <= $1",
                now.saturating_sub(field.retention.period().unwrap_or_default()),
            )
            .await;
        }
        (_, Retention::Days { .. }) => line.job = "NO JOB".to_owned(),
        (_, Retention::UntilErasure) => line.job = "the person's erasure".to_owned(),
        (_, Retention::WithRecord(_)) => line.job = "kept with its record".to_owned(),
    }
    line
}

async fn request_keys(store: &Store, now: Timestamp) -> RetentionLine {
    let lifetime = tessera_orders::domain::KEY_LIFETIME;
    RetentionLine {
        service: tessera_orders::SERVICE.to_owned(),
        field: "idempotency key of a placement".to_owned(),
        retention: format!("{} day(s) after the request", lifetime.as_secs() / 86_400),
        job: "orders' timer loop (hourly): prunes".to_owned(),
        due_now: count(
            store,
            "SELECT COUNT(*) AS n FROM order_requests WHERE kept_at <= $1",
            now.saturating_sub(lifetime),
        )
        .await,
        last_run_at: None,
        done: "pruned as it goes; not counted".to_owned(),
    }
}

async fn platform_line(
    service: &str,
    field: &PersonalField,
    store: &Store,
    now: Timestamp,
    audit_archive_after: Duration,
) -> RetentionLine {
    if field.field == tessera_store::personal_data::MESSAGE_SUBJECT.field {
        let mut line = line(service, field, "the relay (every minute): prunes sent outbox rows");
        line.due_now = count(
            store,
            "SELECT COUNT(*) AS n FROM tessera_outbox WHERE sent_at IS NOT NULL AND sent_at < $1",
            now.saturating_sub(outbox_retention()),
        )
        .await;
        line.done = "pruned as it goes; not counted".to_owned();
        return line;
    }
    if field.field == tessera_store::personal_data::AUDIT_PARTIES.field {
        return audit_line(service, field, store, now, audit_archive_after).await;
    }
    line(service, field, "kept with its record")
}

/// The audit chain is never cut: old segments are archived whole, an anchor left behind.
async fn audit_line(
    service: &str,
    field: &PersonalField,
    store: &Store,
    now: Timestamp,
    archive_after: Duration,
) -> RetentionLine {
    let mut line = line(
        service,
        field,
        &format!("audit archive (hourly): segments older than {} day(s)", archive_after.as_secs() / 86_400),
    );
    line.due_now = count(
        store,
        "SELECT COUNT(*) AS n FROM tessera_audit WHERE at < $1",
        now.saturating_sub(archive_after),
    )
    .await;
    match store.audit_anchors().await {
        Ok(anchors) => {
            let archived: u64 =
                anchors.iter().map(|a| a.last_index.saturating_sub(a.first_index).saturating_add(1)).sum();
            line.last_run_at = anchors.last().map(|a| a.archived_at);
            line.done = match anchors.last() {
                Some(newest) => format!(
                    "{archived} record(s) archived in {} segment(s); the chain verifies from index {}",
                    anchors.len(),
                    newest.last_index
                ),
                None => "nothing archived yet".to_owned(),
            };
        }
        Err(error) => line.done = format!("cannot read the anchors: {error}"),
    }
    line
}

/// A table for a terminal.
pub fn table(lines: &[RetentionLine]) -> String {
    let mut out = format!(
        "{:<10} {:<32} {:<44} {:>8}  {:<27}  job · done\n",
        "service", "field", "retention", "due now", "last run"
    );
    for l in lines {
        out.push_str(&format!(
            "{:<10} {:<32} {:<44} {:>8}  {:<27}  {} · {}\n",
            l.service,
            truncate(&l.field, 32),
            truncate(&l.retention, 44),
            l.due_now.map_or("-".to_owned(), |n| n.to_string()),
            l.last_run_at.map_or("-".to_owned(), Timestamp::to_rfc3339),
            l.job,
            l.done
        ));
    }
    out
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_cut_to_their_column_and_counts_absent_show_a_dash() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        let printed = table(&[RetentionLine {
            service: "support".into(),
            field: "ticket message".into(),
            retention: "90 day(s) after the ticket is closed".into(),
            job: "sweep".into(),
            due_now: None,
            last_run_at: None,
            done: "-".into(),
        }]);
        assert_eq!(printed.lines().count(), 2);
        assert!(printed.contains("support") && printed.contains("       -  -"), "{printed}");
    }
}
