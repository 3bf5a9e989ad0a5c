//! `tessera top`: the console's overview in a terminal. It reads a running system's
//! `/metrics` every second and shows, per service, requests per second, errors, p99 latency,
//! the outbox backlog and dead letters, and each subscription's lag.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use http_body_util::BodyExt;

#[derive(Debug, Args)]
pub struct TopArgs {
    /// The system's address (embedded `up`, or one process of the distributed topology).
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "TESSERA_URL")]
    url: String,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 1.0)]
    every: f64,
    /// Print one overview (over one interval) and exit, instead of refreshing the screen.
    #[arg(long)]
    once: bool,
}

/// One scrape: every sample by name, with its labels.
#[derive(Debug, Default)]
struct Scrape {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    fn parse(text: &str) -> Self {
        let mut samples = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let (series, value) = match line.rsplit_once(' ') {
                Some((series, value)) => (series, value),
                None => continue,
            };
            let Ok(value) = value.parse::<f64>() else { continue };
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, labels(rest.trim_end_matches('}'))),
                None => (series, BTreeMap::new()),
            };
            samples.push((name.to_owned(), labels, value));
        }
        Self { samples }
    }

    /// The sum of `name`'s samples grouped by `label`, keeping samples `keep` accepts.
    fn sum_by(
        &self,
        name: &str,
        label: &str,
        keep: impl Fn(&BTreeMap<String, String>) -> bool,
    ) -> BTreeMap<String, f64> {
        let mut sums = BTreeMap::new();
        for (sample, labels, value) in &self.samples {
            if sample == name && keep(labels) {
                let key = labels.get(label).cloned().unwrap_or_default();
                *sums.entry(key).or_insert(0.0) += value;
            }
        }
        sums
    }
}

fn labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((index, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = index + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').trim().to_owned(), value);
        rest = &after[end..];
    }
    labels
}

async fn scrape(client: &Client, url: &str) -> anyhow::Result<Scrape> {
    let uri: axum::http::Uri = format!("{}/metrics", url.trim_end_matches('/')).parse().context("--url")?;
    let response = client.get(uri).await.with_context(|| format!("cannot reach {url}"))?;
    if !response.status().is_success() {
        bail!("{url}/metrics answered {}", response.status());
    }
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Scrape::parse(&String::from_utf8_lossy(&body)))
}

type Client =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, axum::body::Body>;

/// The overview between two scrapes `seconds` apart.
fn overview(before: &Scrape, after: &Scrape, seconds: f64) -> String {
    let all = |_: &BTreeMap<String, String>| true;
    let rate = |name: &str, keep: &dyn Fn(&BTreeMap<String, String>) -> bool| {
        let (then, now) = (before.sum_by(name, "service", keep), after.sum_by(name, "service", keep));
        now.into_iter()
            .map(|(service, value)| {
                let delta = (value - then.get(&service).copied().unwrap_or(0.0)).max(0.0);
                (service, delta / seconds.max(0.001))
            })
            .collect::<BTreeMap<_, _>>()
    };
    let requests = rate("tessera_http_requests_total", &all);
    let errors =
        rate("tessera_http_requests_total", &|l| l.get("status").is_some_and(|s| s.starts_with('5')));
    let backlog = after.sum_by("tessera_outbox_unsent", "service", all);
    let dead = after.sum_by("tessera_dead_letters", "service", all);
    let mut out = format!(
        "{:<12} {:>9} {:>9} {:>10} {:>8} {:>6}\n",
        "service", "req/s", "errors/s", "p99 (ms)", "outbox", "dlq"
    );
    let mut services: Vec<&String> = requests.keys().chain(backlog.keys()).collect();
    services.sort();
    services.dedup();
    for service in services {
        let p99 = p99_ms(before, after, service).map_or("-".to_owned(), |ms| format!("{ms:.1}"));
        out.push_str(&format!(
            "{:<12} {:>9.1} {:>9.1} {:>10} {:>8} {:>6}\n",
            service,
            requests.get(service).copied().unwrap_or(0.0),
            errors.get(service).copied().unwrap_or(0.0),
            p99,
            backlog.get(service).copied().unwrap_or(0.0),
            dead.get(service).copied().unwrap_or(0.0),
        ));
    }
    let lag = after.sum_by("tessera_consumer_lag_seconds", "consumer", all);
    if !lag.is_empty() {
        out.push_str(&format!("\n{:<32} {:>10}\n", "subscription", "lag (s)"));
        for (consumer, seconds) in lag {
            out.push_str(&format!("{consumer:<32} {seconds:>10.3}\n"));
        }
    }
    out
}

/// The 99th percentile of `service`'s request latency over the interval, from the buckets.
fn p99_ms(before: &Scrape, after: &Scrape, service: &str) -> Option<f64> {
    let of = |scrape: &Scrape| {
        scrape.sum_by("tessera_http_request_duration_seconds_bucket", "le", |l| {
            l.get("service").is_some_and(|s| s == service)
        })
    };
    let (then, now) = (of(before), of(after));
    let mut buckets: Vec<(f64, f64)> = now
        .iter()
        .filter_map(|(le, count)| {
            let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((bound, count - then.get(le).copied().unwrap_or(0.0)))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let wanted = total * 0.99;
    buckets
        .iter()
        .find(|(_, count)| *count >= wanted)
        .map(|(bound, _)| if bound.is_finite() { bound * 1000.0 } else { f64::INFINITY })
}

pub async fn run(args: TopArgs) -> anyhow::Result<()> {
    let client: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let every = Duration::try_from_secs_f64(args.every)
        .ok()
        .filter(|every| *every >= Duration::from_millis(100))
        .context("--every must be at least 0.1 seconds")?;
    let mut before = scrape(&client, &args.url).await?;
    let mut at = Instant::now();
    loop {
        tokio::time::sleep(every).await;
        let after = scrape(&client, &args.url).await?;
        let text = overview(&before, &after, at.elapsed().as_secs_f64());
        if args.once {
            print!("{text}");
            return Ok(());
        }
        // Clear the screen and draw again.
        print!("\x1b[2J\x1b[H{} — {}\n\n{text}", args.url, chrono_free_now());
        (before, at) = (after, Instant::now());
    }
}

fn chrono_free_now() -> String {
    tessera_kernel::Timestamp::from_system_time(std::time::SystemTime::now()).to_rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"
# TYPE tessera_http_requests_total counter
tessera_http_requests_total{service="gateway",route="/api/v1/products",method="GET",status="200"} 10
tessera_http_requests_total{service="gateway",route="/api/v1/orders",method="POST",status="503"} 0
tessera_http_request_duration_seconds_bucket{service="gateway",route="/x",method="GET",le="0.005"} 10
tessera_http_request_duration_seconds_bucket{service="gateway",route="/x",method="GET",le="0.05"} 10
tessera_http_request_duration_seconds_bucket{service="gateway",route="/x",method="GET",le="+Inf"} 10
"#;
    const AFTER: &str = r#"
tessera_http_requests_total{service="gateway",route="/api/v1/products",method="GET",status="200"} 30
tessera_http_requests_total{service="gateway",route="/api/v1/orders",method="POST",status="503"} 2
tessera_http_request_duration_seconds_bucket{service="gateway",route="/x",method="GET",le="0.005"} 20
tessera_http_request_duration_seconds_bucket{service="gateway",route="/x",method="GET",le="0.05"} 30
tessera_http_request_duration_seconds_bucket{service="gateway",route="/x",method="GET",le="+Inf"} 30
tessera_outbox_unsent{service="orders"} 4
tessera_consumer_lag_seconds{consumer="payments__orders"} 0.25
"#;

    #[test]
    fn rates_percentiles_and_gauges_from_two_scrapes() {
        let text = overview(&Scrape::parse(BEFORE), &Scrape::parse(AFTER), 2.0);
        let gateway = text.lines().find(|l| l.starts_with("gateway")).expect("gateway row");
        let cells: Vec<&str> = gateway.split_whitespace().collect();
        assert_eq!(cells[1..4], ["11.0", "1.0", "50.0"], "{text}");
        assert!(
            text.lines().any(|l| l.starts_with("orders") && l.split_whitespace().nth(4) == Some("4")),
            "{text}"
        );
        assert!(text.contains("payments__orders"), "{text}");
    }

    #[test]
    fn label_values_may_hold_commas_quotes_and_equals_signs() {
        let parsed = labels(r#"a="x,y",b="say \"hi\"",c="k=v""#);
        assert_eq!(parsed["a"], "x,y");
        assert_eq!(parsed["b"], "say \"hi\"");
        assert_eq!(parsed["c"], "k=v");
    }
}
