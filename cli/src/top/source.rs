//! Where `tessera top` reads the system's metrics. `up` is one process whose `/metrics` holds
//! every service's figures, each labelled with its service, so that one page is the whole
//! system (and, for a neighbour on the same host, open). A distributed gateway's `/metrics` holds
//! only the gateway's own: the services' figures are in their own processes, whose `/metrics`
//! answers only their own host. So for anything short of the whole system, `top` signs in as
//! staff and reads `/api/v1/admin/metrics`, where the gateway gathers every process's page.

use std::collections::BTreeSet;

use anyhow::{Context, bail};
use reqwest::StatusCode;
use serde_json::Value;

use super::overview::{Health, Reading, Sample, parse};
use crate::api_client::GatewayTarget;

/// How the readings are taken.
#[derive(Debug)]
enum Way {
    /// `<url>/metrics`: the whole system, from one process.
    Whole,
    /// The gateway's `/api/v1/admin/metrics`, as a member of staff.
    Gateway { token: tokio::sync::Mutex<String> },
    /// `<url>/metrics` of one process of a larger system, because the gateway could not be
    /// asked: what it shows is that process's alone, and `note` says why.
    OneProcess { note: String },
}

#[derive(Debug)]
pub struct Source {
    http: reqwest::Client,
    target: GatewayTarget,
    way: Way,
    /// Every service of the system: a row each, whether or not it has figures yet.
    services: BTreeSet<String>,
}

impl Source {
    /// Finds how to read the system at `target.url`, and gives the first reading.
    pub async fn connect(target: GatewayTarget) -> anyhow::Result<(Self, Reading)> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .context("cannot make the HTTP client")?;
        let services: BTreeSet<String> =
            crate::registry::names().chain([tessera_gateway::SERVICE]).map(str::to_owned).collect();
        let mut source = Self { http, target, way: Way::Whole, services };
        let page = source.metrics_page().await;
        if let Ok(reading) = &page {
            let seen = reading.services();
            if crate::registry::names().all(|name| seen.contains(name)) {
                let reading = source.whole(reading.clone());
                return Ok((source, reading));
            }
        }
        let gateway = match source.sign_in().await {
            Ok(token) => {
                source.way = Way::Gateway { token: tokio::sync::Mutex::new(token) };
                source.read().await
            }
            Err(error) => Err(error),
        };
        match (gateway, page) {
            (Ok(reading), _) => Ok((source, reading)),
            (Err(gateway), Ok(reading)) => {
                let note = format!(
                    "{}/metrics is one process's; the gateway's view of every service: {gateway:#}",
                    source.base()
                );
                source.way = Way::OneProcess { note };
                Ok((source, reading))
            }
            (Err(gateway), Err(page)) => {
                bail!("cannot read {}: {page:#}; nor through the gateway: {gateway:#}", source.base())
            }
        }
    }

    fn base(&self) -> &str {
        self.target.url.trim_end_matches('/')
    }

    /// What the readings come from, for the screen's title.
    pub fn describe(&self) -> String {
        match &self.way {
            Way::Whole => format!("{}/metrics", self.base()),
            Way::Gateway { .. } => format!("{}/api/v1/admin/metrics", self.base()),
            Way::OneProcess { .. } => format!("{}/metrics (one process)", self.base()),
        }
    }

    /// Why the readings cover less than the whole system, if they do.
    pub fn note(&self) -> Option<&str> {
        match &self.way {
            Way::OneProcess { note } => Some(note),
            _ => None,
        }
    }

    pub async fn read(&self) -> anyhow::Result<Reading> {
        match &self.way {
            Way::Whole => Ok(self.whole(self.metrics_page().await?)),
            Way::OneProcess { .. } => self.metrics_page().await,
            Way::Gateway { token } => {
                let mut token = token.lock().await;
                let mut answer = self.admin_metrics(&token).await?;
                // Tokens expire (15 minutes): a watch that signed in with a password signs in
                // again; one given a token has no way to.
                if answer.status() == StatusCode::UNAUTHORIZED && self.target.token.is_none() {
                    *token = self.sign_in().await?;
                    answer = self.admin_metrics(&token).await?;
                }
                let status = answer.status();
                let body = json(answer).await;
                if !status.is_success() {
                    let detail = body["detail"].as_str().map_or_else(|| body.to_string(), str::to_owned);
                    bail!("{}/api/v1/admin/metrics answered {status}: {detail}", self.base());
                }
                self.gathered(&body)
            }
        }
    }

    async fn metrics_page(&self) -> anyhow::Result<Reading> {
        let url = format!("{}/metrics", self.base());
        let response = self.http.get(&url).send().await.with_context(|| format!("cannot reach {url}"))?;
        if !response.status().is_success() {
            bail!("{url} answered {}", response.status());
        }
        let text = response.text().await.with_context(|| format!("reading {url}"))?;
        Ok(Reading { samples: parse(&text).with_context(|| url.clone())?, ..Reading::default() })
    }

    fn whole(&self, mut reading: Reading) -> Reading {
        reading.expected.clone_from(&self.services);
        reading
    }

    async fn admin_metrics(&self, token: &str) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}/api/v1/admin/metrics", self.base());
        self.http.get(&url).bearer_auth(token).send().await.with_context(|| format!("cannot reach {url}"))
    }

    /// The gateway's answer: each process's page, of which only its own service's figures
    /// count (embedded, every page is the whole process's).
    fn gathered(&self, body: &Value) -> anyhow::Result<Reading> {
        let processes = body["services"].as_array().context("the gateway's answer lists no services")?;
        let mut reading = self.whole(Reading::default());
        for process in processes {
            let service = process["service"].as_str().context("a process without its service's name")?;
            let health = match process["health"].as_str() {
                Some("up") => Health::Up,
                Some("failing") => Health::Failing,
                Some("down") => Health::Down,
                _ => Health::Unknown,
            };
            if let Some(text) = process["metrics"].as_str() {
                let samples = parse(text).with_context(|| format!("{service}'s metrics"))?;
                reading.samples.extend(samples.into_iter().filter(|s: &Sample| s.service() == Some(service)));
            }
            reading.health.insert(service.to_owned(), health);
        }
        Ok(reading)
    }

    async fn sign_in(&self) -> anyhow::Result<String> {
        if let Some(token) = &self.target.token {
            return Ok(token.clone());
        }
        let url = format!("{}/api/v1/auth/token", self.base());
        let credentials = serde_json::json!({"email": self.target.email, "password": self.target.password});
        let response = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(credentials.to_string())
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let body = json(response).await;
        match body["access_token"].as_str() {
            Some(token) if status.is_success() => Ok(token.to_owned()),
            _ => bail!(
                "cannot sign in as {} ({url} answered {status}): give --token, or --email and --password",
                self.target.email
            ),
        }
    }
}

/// The answer's JSON body; `null` when it has none.
async fn json(response: reqwest::Response) -> Value {
    let bytes = response.bytes().await.unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}
