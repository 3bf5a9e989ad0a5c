//! The one HTTP client every part of Tessera that calls another over the network builds on:
//! the gateway calling services, services fetching the gateway's keys, the CLI calling the
//! gateway. http:// inside a trusted network, https:// checked against the system's roots and,
//! for a private CA (a cluster's own), the CA certificate the operator gives.

use std::time::Duration;

/// How long a connection may take to open before the call fails (a service that is down is
/// known at once, not after the whole call's timeout).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error("the CA certificate is not PEM: {0}")]
    Ca(String),
    #[error("the HTTP client cannot be built: {0}")]
    Build(String),
}

/// A client that keeps idle connections for reuse, opens new ones within [`CONNECT_TIMEOUT`],
/// and also trusts `ca_pem` (one or more PEM certificates) when given.
pub fn client(ca_pem: Option<&[u8]>, https_only: bool) -> Result<reqwest::Client, ClientBuildError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_idle_timeout(Duration::from_secs(30))
        .https_only(https_only);
    if let Some(pem) = ca_pem {
        let roots =
            reqwest::Certificate::from_pem_bundle(pem).map_err(|e| ClientBuildError::Ca(e.to_string()))?;
        if roots.is_empty() {
            return Err(ClientBuildError::Ca("no certificate in it".into()));
        }
        for root in roots {
            builder = builder.add_root_certificate(root);
        }
    }
    builder.build().map_err(|e| ClientBuildError::Build(e.to_string()))
}
