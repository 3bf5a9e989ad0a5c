//! What `tessera top` shows, from readings of the system's metrics: per service, requests and
//! errors per second and the p99 latency over the interval between two readings, and the outbox
//! backlog, dead letters and subscription lag at the later one.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::bail;
use serde::Serialize;

/// One series' value at a reading.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The series' name as exposed (a histogram's buckets end in `_bucket`).
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }

    /// The service whose figure this is: the `service` label, or for a subscription's figures
    /// the subscriber, which names its consumer `<subscriber>__<source>`.
    pub fn service(&self) -> Option<&str> {
        self.label("service").or_else(|| self.label("consumer")?.split_once("__").map(|(s, _)| s))
    }
}

/// Every sample of a text in Prometheus' exposition format. A family the parser cannot
/// assemble is left out rather than failing the reading: a figure missing from the screen is
/// better than no screen.
pub fn parse(text: &str) -> anyhow::Result<Vec<Sample>> {
    use prom_text_format_parser::{Type, ValueType};
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let (families, error) = prom_text_format_parser::parse_scrape(text);
    if let (true, Some(error)) = (families.is_empty(), error) {
        bail!("not Prometheus' text format: {error:?}");
    }
    let mut samples = Vec::new();
    for family in families {
        for sample in family.samples {
            let suffix = match (family.kind, sample.value.value_type) {
                (Type::Histogram, ValueType::Sample) => "_bucket",
                (_, ValueType::Sum) => "_sum",
                (_, ValueType::Count) => "_count",
                (_, ValueType::Sample) => "",
            };
            // The parser keeps Go's spelling of a float; Rust reads the same (`+Inf`, `NaN`).
            let Ok(value) = sample.value.value.as_str().parse::<f64>() else { continue };
            let labels = sample.labels.iter().map(|l| (l.key.clone(), l.value.clone())).collect();
            samples.push(Sample { name: format!("{}{suffix}", family.name), labels, value });
        }
    }
    Ok(samples)
}

/// Whether a service answered the reading.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Up,
    /// It answered with an error status.
    Failing,
    /// It did not answer.
    Down,
    /// Nothing said either way: no figures of it in what was read.
    Unknown,
}

impl Health {
    pub fn as_str(&self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Failing => "failing",
            Health::Down => "down",
            Health::Unknown => "-",
        }
    }
}

/// The system's metrics at one instant.
#[derive(Clone, Debug, Default)]
pub struct Reading {
    pub samples: Vec<Sample>,
    /// Services the source vouched for (or not), with or without figures.
    pub health: BTreeMap<String, Health>,
    /// Services that get a row even before they have a figure.
    pub expected: BTreeSet<String>,
}

impl Reading {
    /// The services with a figure in this reading.
    pub fn services(&self) -> BTreeSet<&str> {
        self.samples.iter().filter_map(Sample::service).collect()
    }

    fn series(&self, name: &str) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(move |s| s.name == name)
    }

    fn gauge(&self, name: &str, service: &str) -> Option<f64> {
        let mut values = self.series(name).filter(|s| s.label("service") == Some(service)).peekable();
        values.peek()?;
        Some(values.fold(0.0, |sum, s| sum + s.value))
    }
}

/// One row of the services table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServiceRow {
    pub service: String,
    pub health: Health,
    pub requests_per_second: Option<f64>,
    pub errors_per_second: Option<f64>,
    pub p99_ms: Option<f64>,
    pub outbox_unsent: Option<f64>,
    pub dead_letters: Option<f64>,
    /// The largest lag of the service's subscriptions.
    pub lag_seconds: Option<f64>,
}

/// One subscription: a service reading another's messages.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Subscription {
    pub consumer: String,
    pub lag_seconds: f64,
    pub pending_messages: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Overview {
    /// Seconds between the two readings the rates are taken over; none before the second.
    pub interval_seconds: Option<f64>,
    pub services: Vec<ServiceRow>,
    pub subscriptions: Vec<Subscription>,
}

const REQUESTS: &str = "tessera_http_requests_total";
const LATENCY_BUCKETS: &str = "tessera_http_request_duration_seconds_bucket";

/// The overview at `after`, with rates over the `seconds` since `before` (none without it).
pub fn overview(before: Option<&Reading>, after: &Reading, seconds: f64) -> Overview {
    let seen = after.services();
    let names: BTreeSet<&str> = after
        .expected
        .iter()
        .map(String::as_str)
        .chain(after.health.keys().map(String::as_str))
        .chain(seen.iter().copied())
        .collect();
    let lags = lags(after);
    let services = names
        .into_iter()
        .map(|service| {
            let health = match after.health.get(service) {
                Some(health) => health.clone(),
                None if seen.contains(service) => Health::Up,
                None => Health::Unknown,
            };
            // Rates need the service in both readings: a process that just came back would
            // otherwise count its whole history as this interval's.
            let rates = before.filter(|b| b.services().contains(service) && seen.contains(service));
            let rate = |keep: &dyn Fn(&Sample) -> bool| {
                rates.map(|before| increase(before, after, REQUESTS, service, keep) / seconds.max(0.001))
            };
            let lag_seconds = lags
                .iter()
                .filter(|l| l.consumer.split_once("__").is_some_and(|(s, _)| s == service))
                .map(|l| l.lag_seconds)
                .reduce(f64::max);
            ServiceRow {
                service: service.to_owned(),
                health,
                requests_per_second: rate(&|_: &Sample| true),
                errors_per_second: rate(&|s: &Sample| s.label("status").is_some_and(|c| c.starts_with('5'))),
                p99_ms: rates.and_then(|before| p99_ms(before, after, service)),
                outbox_unsent: after.gauge("tessera_outbox_unsent", service),
                dead_letters: after.gauge("tessera_dead_letters", service),
                lag_seconds,
            }
        })
        .collect();
    Overview { interval_seconds: before.map(|_| seconds), services, subscriptions: lags }
}

fn lags(reading: &Reading) -> Vec<Subscription> {
    let pending: BTreeMap<&str, f64> = reading
        .series("tessera_consumer_pending_messages")
        .filter_map(|s| Some((s.label("consumer")?, s.value)))
        .collect();
    let mut lags: Vec<Subscription> = reading
        .series("tessera_consumer_lag_seconds")
        .filter_map(|s| {
            let consumer = s.label("consumer")?;
            Some(Subscription {
                consumer: consumer.to_owned(),
                lag_seconds: s.value,
                pending_messages: pending.get(consumer).copied(),
            })
        })
        .collect();
    lags.sort_by(|a, b| a.consumer.cmp(&b.consumer));
    lags.dedup_by(|a, b| a.consumer == b.consumer);
    lags
}

/// How much `service`'s series of counter `name` that `keep` accepts grew between the readings.
/// A series new in `after` started within the interval; one that fell was reset (a restart),
/// and everything it has now came after.
fn increase(
    before: &Reading,
    after: &Reading,
    name: &str,
    service: &str,
    keep: &dyn Fn(&Sample) -> bool,
) -> f64 {
    let then: BTreeMap<&BTreeMap<String, String>, f64> = before
        .series(name)
        .filter(|s| s.label("service") == Some(service))
        .map(|s| (&s.labels, s.value))
        .collect();
    after
        .series(name)
        .filter(|s| s.label("service") == Some(service) && keep(s))
        .map(|s| match then.get(&s.labels) {
            Some(old) if *old <= s.value => s.value - old,
            _ => s.value,
        })
        // Not `sum()`: an empty one is -0.0, shown as `-0.0`.
        .fold(0.0, |sum, value| sum + value)
}

/// The 99th percentile of `service`'s request latency over the interval, as the upper bound of
/// the bucket it falls in (what the buckets can tell).
fn p99_ms(before: &Reading, after: &Reading, service: &str) -> Option<f64> {
    let by_bound = |reading: &Reading| {
        let mut counts: BTreeMap<String, f64> = BTreeMap::new();
        for sample in reading.series(LATENCY_BUCKETS).filter(|s| s.label("service") == Some(service)) {
            *counts.entry(sample.label("le").unwrap_or_default().to_owned()).or_default() += sample.value;
        }
        counts
    };
    let (then, now) = (by_bound(before), by_bound(after));
    let mut buckets: Vec<(f64, f64)> = now
        .iter()
        .filter_map(|(le, count)| {
            let bound: f64 = le.parse().ok()?;
            Some((bound, (count - then.get(le).copied().unwrap_or(0.0)).max(0.0)))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    buckets.iter().find(|(_, count)| *count >= total * 0.99).map(|(bound, _)| bound * 1000.0)
}

/// A column of the services table, by which it may be sorted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Column {
    Service,
    Health,
    Requests,
    Errors,
    P99,
    Outbox,
    Dlq,
    Lag,
}

impl Column {
    pub const ALL: [Column; 8] = [
        Column::Service,
        Column::Health,
        Column::Requests,
        Column::Errors,
        Column::P99,
        Column::Outbox,
        Column::Dlq,
        Column::Lag,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Column::Service => "service",
            Column::Health => "health",
            Column::Requests => "req/s",
            Column::Errors => "errors/s",
            Column::P99 => "p99 (ms)",
            Column::Outbox => "outbox",
            Column::Dlq => "dlq",
            Column::Lag => "lag (s)",
        }
    }

    pub fn next(self) -> Column {
        let at = Column::ALL.iter().position(|c| *c == self).unwrap_or(0);
        Column::ALL[(at + 1) % Column::ALL.len()]
    }

    /// Names read best A to Z; figures, largest first (what needs looking at).
    pub fn ascending_first(self) -> bool {
        matches!(self, Column::Service | Column::Health)
    }

    fn figure(self, row: &ServiceRow) -> Option<f64> {
        match self {
            Column::Service | Column::Health => None,
            Column::Requests => row.requests_per_second,
            Column::Errors => row.errors_per_second,
            Column::P99 => row.p99_ms,
            Column::Outbox => row.outbox_unsent,
            Column::Dlq => row.dead_letters,
            Column::Lag => row.lag_seconds,
        }
    }

    /// The cell's text: a figure with the precision that matters, `-` where there is none.
    pub fn cell(self, row: &ServiceRow) -> String {
        match self {
            Column::Service => row.service.clone(),
            Column::Health => row.health.as_str().to_owned(),
            Column::Outbox | Column::Dlq => self.figure(row).map_or("-".to_owned(), |v| format!("{v:.0}")),
            Column::Lag => self.figure(row).map_or("-".to_owned(), |v| format!("{v:.3}")),
            _ => self.figure(row).map_or("-".to_owned(), |v| format!("{v:.1}")),
        }
    }
}

/// How the services table is sorted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort {
    pub column: Column,
    pub ascending: bool,
}

impl Sort {
    pub fn by(column: Column) -> Self {
        Self { column, ascending: column.ascending_first() }
    }

    /// Sorts `rows`; rows without the figure go last either way, and ties go by name.
    pub fn apply(self, rows: &mut [ServiceRow]) {
        rows.sort_by(|a, b| {
            let order = match self.column {
                Column::Service => a.service.cmp(&b.service),
                Column::Health => a.health.as_str().cmp(b.health.as_str()),
                column => match (column.figure(a), column.figure(b)) {
                    (Some(x), Some(y)) => x.total_cmp(&y),
                    (Some(_), None) => return std::cmp::Ordering::Less,
                    (None, Some(_)) => return std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                },
            };
            let order = if self.ascending { order } else { order.reverse() };
            order.then_with(|| a.service.cmp(&b.service))
        });
    }
}

/// The overview as a plain table, for scripts and logs (`--once`).
pub fn plain(overview: &Overview) -> String {
    let widths: [usize; 8] = [12, 8, 9, 9, 10, 8, 6, 9];
    let mut out = String::new();
    for (column, width) in Column::ALL.iter().zip(widths) {
        if *column == Column::Service {
            out.push_str(&format!("{:<width$}", column.title()));
        } else {
            out.push_str(&format!(" {:>width$}", column.title()));
        }
    }
    out.push('\n');
    for row in &overview.services {
        for (column, width) in Column::ALL.iter().zip(widths) {
            if *column == Column::Service {
                out.push_str(&format!("{:<width$}", column.cell(row)));
            } else {
                out.push_str(&format!(" {:>width$}", column.cell(row)));
            }
        }
        out.push('\n');
    }
    if !overview.subscriptions.is_empty() {
        out.push_str(&format!("\n{:<32} {:>10} {:>8}\n", "subscription", "lag (s)", "pending"));
        for subscription in &overview.subscriptions {
            let pending = subscription.pending_messages.map_or("-".to_owned(), |p| format!("{p:.0}"));
            out.push_str(&format!(
                "{:<32} {:>10.3} {pending:>8}\n",
                subscription.consumer, subscription.lag_seconds
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"# TYPE tessera_http_requests_total counter
tessera_http_requests_total{service="gateway",route="/api/v1/products",method="GET",status="200"} 10
tessera_http_requests_total{service="gateway",route="/api/v1/orders/{id}",method="GET",status="200"} 5
tessera_http_requests_total{service="gateway",route="/api/v1/orders",method="POST",status="503"} 0
tessera_http_requests_total{service="orders",route="/orders/{id}",method="GET",status="200"} 7

# TYPE tessera_http_request_duration_seconds histogram
tessera_http_request_duration_seconds_bucket{service="gateway",route="/api/v1/orders/{id}",method="GET",le="0.005"} 10
tessera_http_request_duration_seconds_bucket{service="gateway",route="/api/v1/orders/{id}",method="GET",le="0.05"} 10
tessera_http_request_duration_seconds_bucket{service="gateway",route="/api/v1/orders/{id}",method="GET",le="+Inf"} 10
tessera_http_request_duration_seconds_sum{service="gateway",route="/api/v1/orders/{id}",method="GET"} 0.02
tessera_http_request_duration_seconds_count{service="gateway",route="/api/v1/orders/{id}",method="GET"} 10

# TYPE tessera_outbox_unsent gauge
tessera_outbox_unsent{service="orders"} 0
tessera_outbox_unsent{service="payments"} 0
"#;

    // Two seconds later: the gateway served 20 more, 2 of them failed with 503, and the
    // orders route with an id answered 10 more (its `{id}` must not break the label's value).
    const AFTER: &str = r#"# HELP tessera_http_requests_total requests
# TYPE tessera_http_requests_total counter
tessera_http_requests_total{service="gateway",route="/api/v1/products",method="GET",status="200"} 18
tessera_http_requests_total{service="gateway",route="/api/v1/orders/{id}",method="GET",status="200"} 15
tessera_http_requests_total{service="gateway",route="/api/v1/orders",method="POST",status="503"} 2
tessera_http_requests_total{service="orders",route="/orders/{id}",method="GET",status="200"} 7

# TYPE tessera_http_request_duration_seconds histogram
tessera_http_request_duration_seconds_bucket{service="gateway",route="/api/v1/orders/{id}",method="GET",le="0.005"} 20
tessera_http_request_duration_seconds_bucket{service="gateway",route="/api/v1/orders/{id}",method="GET",le="0.05"} 30
tessera_http_request_duration_seconds_bucket{service="gateway",route="/api/v1/orders/{id}",method="GET",le="+Inf"} 30
tessera_http_request_duration_seconds_sum{service="gateway",route="/api/v1/orders/{id}",method="GET"} 0.5
tessera_http_request_duration_seconds_count{service="gateway",route="/api/v1/orders/{id}",method="GET"} 30

# TYPE tessera_outbox_unsent gauge
tessera_outbox_unsent{service="orders"} 4
tessera_outbox_unsent{service="payments"} 0

# TYPE tessera_dead_letters gauge
tessera_dead_letters{service="payments"} 1

# TYPE tessera_consumer_lag_seconds gauge
tessera_consumer_lag_seconds{consumer="payments__orders"} 0.25
tessera_consumer_lag_seconds{consumer="orders__payments"} 2.5

# TYPE tessera_consumer_pending_messages gauge
tessera_consumer_pending_messages{consumer="payments__orders"} 3
"#;

    fn reading(text: &str) -> Reading {
        Reading { samples: parse(text).expect("parses"), ..Reading::default() }
    }

    fn row<'a>(overview: &'a Overview, service: &str) -> &'a ServiceRow {
        overview.services.iter().find(|r| r.service == service).unwrap_or_else(|| panic!("no {service} row"))
    }

    #[test]
    fn rates_percentiles_gauges_and_lag_per_service_from_two_readings() {
        let overview = overview(Some(&reading(BEFORE)), &reading(AFTER), 2.0);
        let gateway = row(&overview, "gateway");
        assert_eq!(gateway.requests_per_second, Some(10.0), "(8 + 10 + 2) / 2 s: {gateway:?}");
        assert_eq!(gateway.errors_per_second, Some(1.0), "{gateway:?}");
        assert_eq!(gateway.p99_ms, Some(50.0), "20 requests of the interval, 10 of them above 5 ms");
        assert_eq!(gateway.health, Health::Up);
        let orders = row(&overview, "orders");
        assert_eq!((orders.requests_per_second, orders.outbox_unsent), (Some(0.0), Some(4.0)));
        assert_eq!(orders.p99_ms, None, "no request in the interval, no percentile");
        assert_eq!(orders.lag_seconds, Some(2.5), "orders__payments is orders' subscription");
        let payments = row(&overview, "payments");
        assert_eq!((payments.dead_letters, payments.lag_seconds), (Some(1.0), Some(0.25)));
        assert_eq!(payments.requests_per_second, Some(0.0), "in both readings, with no request: none");
        let names: Vec<&str> = overview.services.iter().map(|r| r.service.as_str()).collect();
        assert_eq!(names, ["gateway", "orders", "payments"], "one row per service seen");
        assert_eq!(
            overview.subscriptions,
            [
                Subscription {
                    consumer: "orders__payments".into(),
                    lag_seconds: 2.5,
                    pending_messages: None
                },
                Subscription {
                    consumer: "payments__orders".into(),
                    lag_seconds: 0.25,
                    pending_messages: Some(3.0)
                },
            ]
        );
    }

    #[test]
    fn the_first_reading_gives_rows_with_gauges_but_no_rates() {
        let mut first = reading(AFTER);
        first.expected = ["support".to_owned()].into();
        first.health.insert("customers".to_owned(), Health::Down);
        let overview = overview(None, &first, 1.0);
        let names: Vec<&str> = overview.services.iter().map(|r| r.service.as_str()).collect();
        assert_eq!(names, ["customers", "gateway", "orders", "payments", "support"]);
        assert!(overview.services.iter().all(|r| r.requests_per_second.is_none() && r.p99_ms.is_none()));
        assert_eq!(row(&overview, "orders").outbox_unsent, Some(4.0));
        assert_eq!(row(&overview, "customers").health, Health::Down);
        assert_eq!(row(&overview, "support").health, Health::Unknown, "expected, but nothing said");
        assert_eq!(overview.interval_seconds, None);
    }

    #[test]
    fn a_restarted_process_counts_only_what_came_after_its_restart() {
        let before = reading(
            "# TYPE tessera_http_requests_total counter\ntessera_http_requests_total{service=\"orders\",status=\"200\"} 500\n",
        );
        let after = reading(
            "# TYPE tessera_http_requests_total counter\ntessera_http_requests_total{service=\"orders\",status=\"200\"} 3\n",
        );
        assert_eq!(row(&overview(Some(&before), &after, 1.0), "orders").requests_per_second, Some(3.0));
    }

    #[test]
    fn label_values_may_hold_commas_quotes_braces_and_equals_signs() {
        let samples = parse("# TYPE m gauge\nm{a=\"x,y\",b=\"k=v\",c=\"/o/{id}\",service=\"orders\"} 1\n")
            .expect("parses");
        let labels = &samples[0].labels;
        assert_eq!(
            (labels["a"].as_str(), labels["b"].as_str(), labels["c"].as_str()),
            ("x,y", "k=v", "/o/{id}")
        );
        assert_eq!(samples[0].service(), Some("orders"));
        assert!(parse("").expect("an empty text is no figures").is_empty());
        assert!(parse("<html>not metrics</html>").is_err());
    }

    #[test]
    fn sorting_by_a_figure_puts_the_largest_first_and_rows_without_it_last() {
        let overview = overview(Some(&reading(BEFORE)), &reading(AFTER), 2.0);
        let mut rows = overview.services.clone();
        let order = |rows: &[ServiceRow]| rows.iter().map(|r| r.service.clone()).collect::<Vec<_>>();
        Sort::by(Column::Requests).apply(&mut rows);
        assert_eq!(order(&rows), ["gateway", "orders", "payments"], "ties go by name");
        Sort::by(Column::Lag).apply(&mut rows);
        assert_eq!(order(&rows), ["orders", "payments", "gateway"]);
        Sort { column: Column::Lag, ascending: true }.apply(&mut rows);
        assert_eq!(order(&rows), ["payments", "orders", "gateway"], "no figure stays last");
        Sort::by(Column::Service).apply(&mut rows);
        assert_eq!(order(&rows), ["gateway", "orders", "payments"]);
        assert_eq!(Column::Lag.next(), Column::Service, "the cycle wraps");
    }

    #[test]
    fn the_plain_table_has_a_line_per_service_and_per_subscription() {
        let text = plain(&overview(Some(&reading(BEFORE)), &reading(AFTER), 2.0));
        let gateway: Vec<&str> = text
            .lines()
            .find(|l| l.starts_with("gateway"))
            .expect("gateway line")
            .split_whitespace()
            .collect();
        assert_eq!(gateway, ["gateway", "up", "10.0", "1.0", "50.0", "-", "-", "-"], "{text}");
        assert!(text.lines().any(|l| l.starts_with("payments__orders") && l.ends_with(" 3")), "{text}");
    }
}
