//! A node: some services in one process, their relays, subscribers and workers started in the
//! right order, their routes served under `/api/v1` next to `/health`, `/ready` and
//! `/openapi.json`, and a shutdown that stops every loop and waits for it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tessera_bus::{Relay, RelayOptions, Subscriber, SubscriberOptions, Transport, Upcasters};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::service::Service;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("two services are named {0}")]
    DuplicateService(&'static str),
}

#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub subscriber: SubscriberOptions,
    pub relay: RelayOptions,
    /// How often each service announces its audit chain's head, if it moved.
    pub audit_head_every: Duration,
    /// How often the gauges read from each store (backlogs, lags) are sampled.
    pub gauges_every: Duration,
    /// Lifts old versions of messages before any subscriber's handler sees them (the
    /// contracts' upcasters, which `tessera contracts check` verifies).
    pub upcasters: Arc<Upcasters>,
    /// Where old segments of each service's audit chain are archived; `None`: kept in place.
    pub audit_archive: Option<crate::audit_archive::AuditArchive>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            subscriber: SubscriberOptions::default(),
            relay: RelayOptions::default(),
            audit_head_every: Duration::from_secs(30),
            gauges_every: Duration::from_secs(5),
            upcasters: Arc::new(Upcasters::new()),
            audit_archive: None,
        }
    }
}

/// How long a failed relay or subscriber loop waits before it starts again.
const RESTART_DELAY: Duration = Duration::from_secs(1);

pub struct Node {
    services: Vec<Arc<dyn Service>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    router: Router,
    openapi: OpenApi,
    service_routers: Vec<(&'static str, Router)>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.services.iter().map(|s| s.name()).collect();
        f.debug_struct("Node").field("services", &names).field("tasks", &self.tasks.len()).finish()
    }
}

impl Node {
    /// Starts every service's subscribers (first, so that their queues exist before anything is
    /// published), then relays, then workers.
    pub fn start(
        services: Vec<Arc<dyn Service>>,
        transport: Arc<dyn Transport>,
        options: NodeOptions,
    ) -> Result<Self, NodeError> {
        for (index, service) in services.iter().enumerate() {
            if services[..index].iter().any(|other| other.name() == service.name()) {
                return Err(NodeError::DuplicateService(service.name()));
            }
        }
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        for service in &services {
            for subscription in service.subscriptions() {
                let make = {
                    let service = service.clone();
                    let transport = transport.clone();
                    let upcasters = options.upcasters.clone();
                    let options = options.subscriber.clone();
                    move || {
                        Subscriber::new(
                            service.name(),
                            subscription.source,
                            service.store().clone(),
                            transport.clone(),
                            subscription.handler.clone(),
                            upcasters.clone(),
                            options.clone(),
                        )
                    }
                };
                let first = make();
                let name = format!("subscriber {}<-{}", service.name(), subscription.source);
                tasks.push(tokio::spawn(supervise(name, stopped.clone(), first, make, Subscriber::run)));
            }
        }
        for service in &services {
            let make = {
                let service = service.clone();
                let transport = transport.clone();
                let options = options.relay.clone();
                move || {
                    Relay::new(service.name(), service.store().clone(), transport.clone(), options.clone())
                }
            };
            let first = make();
            let name = format!("relay {}", service.name());
            tasks.push(tokio::spawn(supervise(name, stopped.clone(), first, make, Relay::run)));
        }
        for service in &services {
            tasks.extend(service.tasks(stopped.clone()).into_iter().map(tokio::spawn));
            tasks.push(tokio::spawn(crate::audit_head::publish_heads(
                service.name(),
                service.store().clone(),
                options.audit_head_every,
                stopped.clone(),
            )));
            if let Some(archive) = &options.audit_archive {
                tasks.push(tokio::spawn(crate::audit_archive::archive_until(
                    service.name(),
                    service.store().clone(),
                    archive.clone(),
                    stopped.clone(),
                )));
            }
            tasks.push(tokio::spawn(crate::gauges::sample_until(
                service.name(),
                service.store().clone(),
                options.gauges_every,
                stopped.clone(),
            )));
        }
        let (router, openapi) = routes(&services);
        let service_routers = services
            .iter()
            .map(|service| {
                let (router, _) = service.routes().split_for_parts();
                let router = router.merge(crate::admin::routes(service.name(), service.store().clone()));
                (service.name(), tessera_web::metered(tessera_web::standard_layers(router), service.name()))
            })
            .collect();
        Ok(Self { services, stop, tasks, router, openapi, service_routers })
    }

    /// Every route of this node's services under `/api/v1`, and the infrastructure routes.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// One service's own routes (not under `/api/v1`, no infrastructure routes): what a
    /// gateway in this process calls.
    pub fn service_router(&self, name: &str) -> Option<Router> {
        self.service_routers.iter().find(|(service, _)| *service == name).map(|(_, router)| router.clone())
    }

    pub fn openapi(&self) -> &OpenApi {
        &self.openapi
    }

    /// The readiness of every store of this node.
    pub fn readiness(&self) -> StoreReadiness {
        StoreReadiness(self.services.iter().map(|s| (s.name(), s.store().clone())).collect())
    }

    pub fn services(&self) -> &[Arc<dyn Service>] {
        &self.services
    }

    /// Asks every loop to stop and waits up to `grace` for them. Units of work in flight
    /// finish; what a relay has not published yet stays in its outbox for the next start.
    /// Returns whether everything stopped in time.
    pub async fn shutdown(self, grace: Duration) -> bool {
        let _ = self.stop.send(true);
        let all = futures_join_all(self.tasks);
        tokio::time::timeout(grace, all).await.is_ok()
    }
}

async fn futures_join_all(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        if let Err(error) = task.await
            && error.is_panic()
        {
            tracing::error!(%error, "a background task panicked");
        }
    }
}

/// Runs a relay or subscriber until `stop`; when its loop fails, logs and starts a fresh one.
async fn supervise<T, F, Fut, E>(
    name: String,
    mut stop: watch::Receiver<bool>,
    first: T,
    make: impl Fn() -> T + Send + 'static,
    run: F,
) where
    T: Send + 'static,
    F: Fn(T, watch::Receiver<bool>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    let mut next = Some(first);
    while !*stop.borrow() {
        let runner = next.take().unwrap_or_else(&make);
        // A panic is treated like an error: logged, and the loop started again.
        let outcome =
            futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(run(runner, stop.clone())))
                .await;
        let failure = match outcome {
            Ok(Ok(())) => break,
            Ok(Err(error)) => error.to_string(),
            Err(_) => "panicked".to_owned(),
        };
        tracing::error!(task = %name, error = %failure, "stopped with an error; starting again");
        tokio::select! {
            () = tokio::time::sleep(RESTART_DELAY) => {}
            _ = stop.changed() => {}
        }
    }
}

fn routes(services: &[Arc<dyn Service>]) -> (Router, OpenApi) {
    let mut api = OpenApiRouter::new();
    for service in services {
        api = api.merge(service.routes());
    }
    let info = utoipa::openapi::InfoBuilder::new()
        .title("Tessera")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some("The Tessera shop's services: products, payments and orders."))
        .build();
    let root = OpenApiRouter::with_openapi(utoipa::openapi::OpenApiBuilder::new().info(info).build());
    let (api, openapi) = root.nest("/api/v1", api).split_for_parts();
    let document = Arc::new(openapi.clone());
    let stores: Vec<_> = services.iter().map(|s| (s.name(), s.store().clone())).collect();
    let router = api
        .route("/health", get(tessera_web::health))
        .route(
            "/ready",
            get(move || {
                let stores = StoreReadiness(stores.clone());
                async move { tessera_web::ready(&stores).await }
            }),
        )
        .route("/openapi.json", get(move || async move { axum::Json(document.as_ref().clone()) }));
    (tessera_web::standard_layers(router), openapi)
}

/// Every store answers within a second (its migrations ran when it opened).
#[derive(Clone, Debug)]
pub struct StoreReadiness(pub Vec<(&'static str, tessera_store::Store)>);

impl tessera_web::Readiness for StoreReadiness {
    fn check(&self) -> std::pin::Pin<Box<dyn Future<Output = Result<(), Vec<String>>> + Send + '_>> {
        Box::pin(async move {
            let mut failing = Vec::new();
            for (name, store) in &self.0 {
                let answered = tokio::time::timeout(Duration::from_secs(1), store.head_position()).await;
                if !matches!(answered, Ok(Ok(_))) {
                    failing.push((*name).to_owned());
                }
            }
            if failing.is_empty() { Ok(()) } else { Err(failing) }
        })
    }
}
