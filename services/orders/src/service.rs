//! Orders as the runtime runs it: its routes, the replies and events of `inventory` and
//! `payments`, the erasures of `customers`, and the loop that fires saga timers.

use std::sync::Arc;
use std::time::Duration;

use tessera_bus::Answering;
use tessera_kernel::{Clock, IdGen};
use tessera_projection::{Mode, ProjectionRunner, RunnerOptions};
use tessera_runtime::{Service, Subscription, Task};
use tessera_store::Store;
use tokio::sync::watch;
use utoipa_axum::router::OpenApiRouter;

use crate::{Erasures, OrderSummaries, Orders, OrdersSettings, SalesAnalytics};

/// How often due saga timers are looked for: the resolution of step timeouts.
const TIMER_TICK: Duration = Duration::from_millis(100);

#[derive(Clone, Debug)]
pub struct OrdersService {
    orders: Orders,
    vault: Arc<dyn tessera_vault::Sealer>,
}

impl OrdersService {
    /// `vault` holds the keys of the sales analytics' pseudonyms.
    pub fn new(
        store: Store,
        settings: &OrdersSettings,
        vault: Arc<dyn tessera_vault::Sealer>,
        ids: Arc<dyn IdGen>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { orders: Orders::new(store, settings, ids, clock), vault }
    }

    pub fn orders(&self) -> &Orders {
        &self.orders
    }
}

impl Service for OrdersService {
    fn name(&self) -> &'static str {
        crate::SERVICE
    }

    fn store(&self) -> &Store {
        self.orders.store()
    }

    fn routes(&self) -> OpenApiRouter {
        crate::http::router().with_state(self.orders.clone())
    }

    fn subscriptions(&self) -> Vec<Subscription> {
        let handler = Arc::new(self.orders.clone());
        vec![
            Subscription { source: "inventory", handler: handler.clone() },
            Subscription { source: "payments", handler },
            // A handler of its own: the saga replies' handler never sees customers' messages.
            Subscription {
                source: "customers",
                handler: Arc::new(Answering::new(Erasures::new(self.orders.clone()))),
            },
        ]
    }

    fn tasks(&self, stop: watch::Receiver<bool>) -> Vec<Task> {
        let summaries = ProjectionRunner::new(
            self.orders.store().clone(),
            Arc::new(OrderSummaries),
            Mode::Inline,
            RunnerOptions::default(),
        );
        let analytics = ProjectionRunner::new(
            self.orders.store().clone(),
            Arc::new(SalesAnalytics::new(self.vault.clone())),
            Mode::Async,
            RunnerOptions::default(),
        );
        vec![
            Box::pin(self.orders.clone().run_timers(TIMER_TICK, stop.clone())),
            Box::pin(summaries.run(stop.clone())),
            Box::pin(report_outcomes(self.orders.store().clone(), stop.clone())),
            Box::pin(analytics.run(stop)),
        ]
    }
}

/// How often the orders by state and reason are counted for `/metrics`.
const OUTCOMES_EVERY: Duration = Duration::from_secs(5);

/// Orders by state and by the reason of a rejection, counted from the summaries (exact, and
/// the same whichever replica reports them).
async fn report_outcomes(store: Store, mut stop: watch::Receiver<bool>) {
    // Every (status, reason) given a value before: one that no longer has a row is zero.
    let mut reported = std::collections::HashSet::new();
    while !*stop.borrow() {
        let counts = tessera_store::Statement::new(
            "SELECT status, COALESCE(reason, '') AS reason, count(*) AS n FROM order_summaries GROUP BY status, reason",
        );
        if let Ok(rows) = store.query(counts).await {
            let mut now = std::collections::HashMap::new();
            for row in rows {
                if let (Ok(status), Ok(reason), Ok(count)) =
                    (row.text("status"), row.text("reason"), row.int("n"))
                {
                    now.insert((status.to_owned(), reason.to_owned()), count);
                }
            }
            reported.extend(now.keys().cloned());
            for (status, reason) in &reported {
                let count = now.get(&(status.clone(), reason.clone())).copied().unwrap_or(0);
                let labels = [("status", status.clone()), ("reason", reason.clone())];
                metrics::gauge!("tessera_orders", &labels).set(count as f64);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(OUTCOMES_EVERY) => {}
            _ = stop.changed() => {}
        }
    }
}
