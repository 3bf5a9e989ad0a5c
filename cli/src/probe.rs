//! `tessera probe --url http://127.0.0.1:8080/ready`: exit 0 when the address answers 2xx
//! within the timeout, 1 otherwise. The container image has no shell and no curl, so a compose
//! health check (deploy/compose.yaml) runs the binary itself.

use std::time::Duration;

use anyhow::{Context, bail};
use axum::http::Method;
use clap::Args;

use crate::api_client::ApiClient;

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// What to ask: a process's `/ready` or `/health`.
    #[arg(long, default_value = "http://127.0.0.1:8080/ready")]
    url: String,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 2.0)]
    timeout: f64,
    /// Ask again every half second until a 2xx comes or this many seconds have passed (for a
    /// script that starts a system and waits for it).
    #[arg(long, value_name = "SECONDS")]
    wait: Option<f64>,
}

pub async fn run(args: ProbeArgs) -> anyhow::Result<()> {
    let (origin, path) =
        split(&args.url).with_context(|| format!("--url {}: give http://host:port/path", args.url))?;
    let client = ApiClient::new(origin);
    let timeout = Duration::try_from_secs_f64(args.timeout).context("--timeout: give seconds")?;
    let wait = Duration::try_from_secs_f64(args.wait.unwrap_or(0.0)).context("--wait: give seconds")?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let asked = async {
            let (status, _) = tokio::time::timeout(timeout, client.call(Method::GET, path, None, None, None))
                .await
                .with_context(|| format!("{} did not answer within {timeout:?}", args.url))??;
            if !(200..300).contains(&status) {
                bail!("{} answered {status}", args.url);
            }
            Ok(())
        }
        .await;
        match asked {
            Ok(()) => return Ok(()),
            Err(error) if tokio::time::Instant::now() >= deadline => return Err(error),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// `http://host:port/path` → (`http://host:port`, `/path`).
fn split(url: &str) -> Option<(&str, &str)> {
    let after_scheme = url.find("://")? + 3;
    match url[after_scheme..].find('/') {
        Some(at) => Some(url.split_at(after_scheme + at)),
        None => Some((url, "/")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_url_splits_into_its_origin_and_path() {
        assert_eq!(super::split("http://127.0.0.1:8080/ready"), Some(("http://127.0.0.1:8080", "/ready")));
        assert_eq!(super::split("http://gateway:8080"), Some(("http://gateway:8080", "/")));
        assert_eq!(super::split("gateway:8080/ready"), None);
    }
}
