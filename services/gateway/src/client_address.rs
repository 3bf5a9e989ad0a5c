//! Who the client is, as far as the network says: the connection's peer, or, when that peer is
//! a proxy the operator trusts (`trusted_proxies`), the last address in `X-Forwarded-For` that
//! is not itself a trusted proxy. Addresses a client wrote itself (the left of the header, past
//! the first untrusted hop) are never believed, so a client cannot pick its own rate limit.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

use crate::state::Gateway;

const FORWARDED_FOR: &str = "x-forwarded-for";

/// The client's address, given the connection's `peer` and the request's headers.
pub(crate) fn client_address(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = peer?;
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let hops: Vec<IpAddr> = headers
        .get_all(FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|hop| hop.trim().parse::<IpAddr>())
        .collect::<Result<_, _>>()
        // A header that does not parse says nothing trustworthy: the proxy is the client.
        .unwrap_or_default();
    Some(hops.into_iter().rev().find(|hop| !is_trusted(hop)).unwrap_or(peer))
}

/// The key rate limits and sign-in counts use for an address.
pub(crate) fn address_key(address: Option<IpAddr>) -> String {
    address.map_or_else(|| "local".to_owned(), |ip| ip.to_string())
}

/// The request's client address (extractor).
pub(crate) struct ClientAddress(pub Option<IpAddr>);

impl FromRequestParts<Gateway> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, gateway: &Gateway) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
        Ok(Self(client_address(peer, &parts.headers, &gateway.config.trusted_proxies)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(forwarded: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append(FORWARDED_FOR, value.parse().expect("a header value"));
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn a_forwarded_address_is_believed_only_from_a_trusted_proxy_and_only_its_last_untrusted_hop() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("a net")];
        let forwarded = headers(&["203.0.113.9, 198.51.100.7", "10.1.2.3"]);
        // From the ingress (trusted): the last hop that is not a proxy of ours.
        assert_eq!(client_address(Some(ip("10.0.0.5")), &forwarded, &trusted), Some(ip("198.51.100.7")));
        // From anyone else: the header is the client's own say, ignored.
        assert_eq!(client_address(Some(ip("192.0.2.1")), &forwarded, &trusted), Some(ip("192.0.2.1")));
        // Nothing trusted configured: the peer, always.
        assert_eq!(client_address(Some(ip("10.0.0.5")), &forwarded, &[]), Some(ip("10.0.0.5")));
        // A trusted proxy with no header, or a garbled one: the proxy itself.
        assert_eq!(client_address(Some(ip("10.0.0.5")), &headers(&[]), &trusted), Some(ip("10.0.0.5")));
        assert_eq!(
            client_address(Some(ip("10.0.0.5")), &headers(&["not an address"]), &trusted),
            Some(ip("10.0.0.5"))
        );
        assert_eq!(client_address(None, &forwarded, &trusted), None, "in process");
    }
}
