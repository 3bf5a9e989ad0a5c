//! The public API description: the services' own documents under their public paths, the
//! routes only the gateway answers (sign-in, keys, the composed order view, export, the
//! operators' routes, GraphQL), and what the edge adds to every operation (the bearer scheme,
//! `Idempotency-Key` on order placement, and the errors any call may meet: 401 for a bad token,
//! 413, 429 with Retry-After, 503/504 when a service is down or slow), each as problem+json.

use std::sync::{Arc, PoisonError, RwLock};

use serde_json::{Value, json};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(paths(
    crate::routes::auth::issue_token,
    crate::routes::auth::jwks,
    crate::routes::customers::export_customer,
    crate::routes::customers::customer_accesses,
    crate::compose::order_view,
    crate::routes::orders::events::order_events,
    crate::routes::admin::services,
    crate::routes::admin::metrics,
    crate::routes::admin::dead_letters,
    crate::routes::admin::retry,
    crate::routes::admin::drop_letter,
    crate::routes::admin::sagas::list,
    crate::routes::admin::sagas::with_id,
    crate::routes::admin::rebuild,
    crate::audit::verify,
    crate::routes::admin::sales,
    crate::routes::admin::rotate_keys,
    crate::graphql::serve,
    crate::graphql::schema_sdl,
    crate::routes::tickets::attachments::upload_attachment,
    crate::routes::tickets::attachments::list_attachments,
    crate::routes::tickets::attachments::download_attachment,
))]
struct GatewayRoutes;

/// Routes of the services the gateway does not expose.
const INTERNAL: [&str; 6] = [
    "/api/v1/customers/credentials",
    "/api/v1/payment-methods/{token}",
    "/api/v1/analytics/sales",
    "/api/v1/order-requests",
    // Orders' own saga search: the gateway documents its public one, `/api/v1/admin/sagas`.
    "/api/v1/admin/sagas",
    "/api/v1/admin/sagas/{saga_id}",
];

/// Answers any operation may give besides its own: the edge's and the transport's.
/// Operations anyone may call, signed in or not: the catalogue, registration and GraphQL (whose
/// resolvers check the caller themselves).
const OPEN_TO_ANYONE: [(&str, &str); 4] = [
    ("get", "/api/v1/products"),
    ("get", "/api/v1/products/{sku}"),
    ("post", "/api/v1/customers"),
    ("post", "/graphql"),
];

const EDGE_ERRORS: [(&str, &str); 6] = [
    ("400", "The request is malformed."),
    ("401", "The bearer token is missing (where one is needed), expired, or not ours."),
    ("413", "The body is over 1 MiB."),
    ("429", "Too many requests; see Retry-After."),
    ("503", "A service is unreachable; retry."),
    ("504", "A service did not answer in time; retry."),
];

pub(crate) fn document(services: utoipa::openapi::OpenApi) -> Value {
    let mut document = services;
    // The gateway answers GET /orders/{id} itself (the composed view).
    if let Some(item) = document.paths.paths.get_mut("/api/v1/orders/{id}") {
        item.get = None;
    }
    document.paths.paths.retain(|path, _| !INTERNAL.contains(&path.as_str()));
    // The gateway documents the attachment routes itself: who may call them, and the upload's
    // own body limit (10 MiB, not 1 MiB).
    for path in ["/api/v1/tickets/{id}/attachments", "/api/v1/tickets/{id}/attachments/{attachment_id}"] {
        document.paths.paths.remove(path);
    }
    document.merge(GatewayRoutes::openapi());
    let mut document = serde_json::to_value(&document).unwrap_or(Value::Null);
    let problem = json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}});
    document["info"]["title"] = json!("Tessera");
    document["info"]["description"] =
        json!("The shop's public API, served by the gateway. Every error is application/problem+json.");
    document["components"]["securitySchemes"]["bearer"] =
        json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT"});
    document["security"] = json!([{"bearer": []}]);
    let probe = |summary: &str| {
        json!({"get": {"tags": ["operations"], "summary": summary, "security": [{}], "responses": {
            "200": {"description": "Yes.", "content": {"application/json": {"schema": {"type": "object"}}}},
            "503": {"description": "No; the body names what is not answering.", "content": problem.clone()},
        }}})
    };
    document["paths"]["/health"] = probe("Is the process alive?");
    document["paths"]["/ready"] = probe("Are the gateway's store and the services it calls answering?");
    // The body a client sends to POST /orders: API.md's `{items, payment_token}`. The orders
    // service's own body also takes the customer, the request key and the market, which the
    // gateway sets itself from the caller.
    let order_lines = document["components"]["schemas"]["NewOrder"]["properties"]["items"].clone();
    let client_order = json!({"required": true, "content": {"application/json": {"schema": {
        "type": "object", "required": ["items", "payment_token"],
        "properties": {"items": order_lines, "payment_token": {"type": "string"}},
    }}}});
    if let Some(paths) = document["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else { continue };
            for (method, operation) in item.iter_mut() {
                if !["get", "post", "patch", "put", "delete"].contains(&method.as_str()) {
                    continue;
                }
                if OPEN_TO_ANYONE.contains(&(method.as_str(), path.as_str())) {
                    operation["security"] = json!([{}, {"bearer": []}]);
                }
                let anonymous = operation["security"] == json!([{}])
                    || operation["security"] == json!([{}, {"bearer": []}]);
                let takes_input = operation.get("requestBody").is_some()
                    || operation["parameters"].as_array().is_some_and(|p| !p.is_empty());
                let mut errors: Vec<(&str, &str)> = EDGE_ERRORS.to_vec();
                if !anonymous {
                    errors.push(("403", "The caller's role or ownership does not allow this."));
                }
                if takes_input {
                    errors.push(("422", "A field or parameter is invalid; the body names it."));
                    errors.push(("404", "No such object, or not one the caller may see."));
                }
                if operation.get("requestBody").is_some() {
                    errors.push(("415", "The body is not application/json."));
                }
                let responses = &mut operation["responses"];
                // Problems are problem+json, whatever a service's document says.
                if let Some(responses) = responses.as_object_mut() {
                    for response in responses.values_mut() {
                        if let Some(content) = response.get_mut("content")
                            && content["application/json"]["schema"]["$ref"] == "#/components/schemas/Problem"
                        {
                            *content = problem.clone();
                        }
                    }
                }
                for (status, description) in errors {
                    if responses.get(status).is_none() {
                        responses[status] = json!({"description": description, "content": problem.clone()});
                    }
                }
                if method == "post" && path == "/graphql" {
                    graphql_at_the_edge(operation);
                }
                if method == "post" && path == "/api/v1/tickets/{id}/messages" {
                    // The author is the caller's role; a client sends only the message.
                    operation["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["message"], "additionalProperties": false,
                        "properties": {"message": {"type": "string", "minLength": 1, "maxLength": 5000, "pattern": "\\S"}},
                    }}}});
                }
                if method == "post" && path == "/api/v1/orders" {
                    place_order_at_the_edge(operation, &problem);
                    operation["requestBody"] = client_order.clone();
                }
            }
        }
    }
    document
}

/// POST /graphql: one operation, or a batch of them as a JSON array (answered with an array).
fn graphql_at_the_edge(operation: &mut Value) {
    let request = json!({
        "type": "object", "required": ["query"],
        "properties": {
            "query": {"type": "string", "minLength": 1, "pattern": "\\S"},
            "variables": {"type": ["object", "null"]},
            "operationName": {"type": ["string", "null"]},
        },
    });
    let answer = json!({
        "type": "object",
        "properties": {"data": {}, "errors": {"type": "array", "items": {"type": "object"}}},
    });
    operation["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {
        "oneOf": [request.clone(), {"type": "array", "items": request, "minItems": 1, "maxItems": 10}],
    }}}});
    operation["responses"]["200"] = json!({
        "description": "`{data, errors?}`, or an array of them for a batch",
        "content": {"application/json": {"schema": {"oneOf": [answer.clone(), {"type": "array", "items": answer}]}}},
    });
}

/// POST /orders through the gateway: an `Idempotency-Key` is required, the customer is the
/// caller, and a reused key with another body is 422.
fn place_order_at_the_edge(operation: &mut Value, problem: &Value) {
    let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
    let mut parameters: Vec<Value> =
        parameters.into_iter().filter(|p| p["name"] != "Idempotency-Key").collect();
    parameters.push(json!({
        "name": "Idempotency-Key", "in": "header", "required": true,
        "description": "1 to 255 characters; the same key and body replay the first answer",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    }));
    parameters.push(json!({
        "name": "Prefer", "in": "header", "required": false,
        "description": "`wait=N` (seconds, at most 30): answer once the order settles (201 with the composed order) or after N seconds (202), RFC 7240; a retry with the same key answers with the same order (`Idempotent-Replayed: true`), waiting too",
        "schema": {"type": "string"},
    }));
    operation["parameters"] = Value::Array(parameters);
    operation["responses"]["201"] = json!({
        "description": "The client asked to wait (`Prefer: wait=N`) and the order settled in time: the composed order, as GET /orders/{id} answers it.",
        "headers": {"Preference-Applied": {"schema": {"type": "string"}, "description": "`wait=N`"}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ComposedOrder"}}},
    });
    for (status, description) in [
        ("403", "customer_id names another customer, or the caller is not a customer."),
        ("422", "The order is invalid, or the key was used with another body."),
    ] {
        if operation["responses"].get(status).is_none() {
            operation["responses"][status] = json!({"description": description, "content": problem.clone()});
        }
    }
}

/// The public document `/openapi.json` serves: the gateway's own routes and the services'
/// documents, replaced whenever the services' documents are read again (a service that was
/// down when the gateway started, or one upgraded since).
#[derive(Clone, Debug)]
pub struct PublicDocument(Arc<RwLock<Arc<Value>>>);

impl PublicDocument {
    pub fn new(services: utoipa::openapi::OpenApi) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(document(services)))))
    }

    /// Publishes the document made from `services` from now on.
    pub fn replace(&self, services: utoipa::openapi::OpenApi) {
        let next = Arc::new(document(services));
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = next;
    }

    /// The document as published now.
    pub fn current(&self) -> Arc<Value> {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}
