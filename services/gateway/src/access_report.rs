//! The gateway's own part of the audit trail (sign-ins, exports) and a person's access report:
//! every service's records that concern them, gathered for the export, because GDPR Art. 15
//! gives a person the right to know who received their data.

use axum::http::Method;
use serde_json::{Value, json};
use tessera_store::audit_access::{self, Access, PersonFilter};
use tessera_store::{AuditRecord, Store, StoreError};
use tessera_web::{ApiResult, Problem};

use crate::state::Gateway;

/// How a record of the gateway's is committed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Commit {
    /// Rides the store's next group commit; the caller does not wait for its sync (decision
    /// 0015). For sign-ins, which are many.
    Detached,
    /// Committed before the caller goes on: an export must find its own record in the report
    /// it carries. Exports are rare, so the wait costs nothing that matters.
    Waited,
}

/// Appends `action` on `resource` by `actor` under `role` to the gateway's trail. A waited
/// commit that fails is the caller's error: an export whose record cannot be kept is refused.
pub(crate) async fn note(
    store: &Store,
    commit: Commit,
    actor: &str,
    role: &str,
    action: &str,
    resource: String,
) -> Result<(), StoreError> {
    let mut unit = store.begin();
    unit.audit(AuditRecord {
        actor: actor.to_owned(),
        role: role.to_owned(),
        action: action.to_owned(),
        resource,
        outcome: "ok".to_owned(),
        trace_id: None,
        at: store.clock().now(),
    });
    match commit {
        Commit::Detached => {
            unit.commit_detached().await;
            Ok(())
        }
        Commit::Waited => unit.commit().await.map(|_| ()),
    }
}

/// Every record in the gateway's and the services' trails that concerns `person`, oldest
/// first. `resources` are what the export found theirs in one service (their orders, their
/// tickets), so that another service's part of one (payments' `order/<id>/payment`) counts.
pub(crate) async fn person_report(
    g: &Gateway,
    person: &str,
    resources: Vec<String>,
) -> ApiResult<Vec<Access>> {
    let mut filter = PersonFilter::new(person);
    resources.iter().for_each(|resource| filter.own(resource.clone()));
    let mut accesses = g
        .store
        .person_accesses(crate::config::SERVICE, filter)
        .await
        .map_err(|e| Problem::unavailable(&e))?;
    let body = json!({"person": person, "resources": resources});
    for service in g.services.all() {
        let reply = g.call(service, Method::POST, "/admin/audit/accesses", Some(body.clone()), &[]).await?;
        if !reply.is_success() {
            return Err(Problem::unavailable(&format!("{} answered {}", service.name(), reply.status)));
        }
        let items = reply.json().get("items").cloned().unwrap_or(Value::Null);
        let items: Vec<Access> = serde_json::from_value(items).map_err(|e| {
            Problem::unavailable(&format!(
                "{} answered an access list this gateway cannot read: {e}",
                service.name()
            ))
        })?;
        accesses.extend(items);
    }
    audit_access::sort(&mut accesses);
    Ok(accesses)
}
