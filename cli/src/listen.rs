//! The address a command listens on, as a user writes it: `127.0.0.1:8080`, `[::1]:8080`, or a
//! host name such as `localhost:9103`, resolved once at start. Used by `up`'s flag and
//! configuration file and by `serve`'s flag, so each accepts the same forms.

use std::net::{SocketAddr, ToSocketAddrs};

/// Resolves `text` (`host:port`) to the one address to bind. A name with several addresses
/// binds its first IPv4 one: `localhost` is `::1` first on many systems, yet clients, the
/// README's curl lines included, try `127.0.0.1`, and a listener on `::1` alone would refuse them.
pub fn resolve(text: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    if text.rsplit_once(':').is_none_or(|(_, port)| port.parse::<u16>().is_err()) {
        return Err(format!("{text:?} is not host:port (for example 127.0.0.1:8080 or localhost:8080)"));
    }
    let addresses: Vec<SocketAddr> =
        text.to_socket_addrs().map_err(|error| format!("cannot resolve {text:?}: {error}"))?.collect();
    addresses
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addresses.first())
        .copied()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

/// For a configuration file's `listen` key: the same forms as the flag.
pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(deserializer)?;
    resolve(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::resolve;

    #[test]
    fn addresses_and_host_names_resolve_and_nonsense_is_named() {
        assert_eq!(resolve("127.0.0.1:0").expect("an address").to_string(), "127.0.0.1:0");
        assert_eq!(resolve("[::1]:80").expect("an IPv6 address").to_string(), "[::1]:80");
        let local = resolve("localhost:9103").expect("localhost resolves");
        assert!(local.ip().is_loopback() && local.port() == 9103, "{local}");
        assert!(resolve("nowhere").expect_err("no port").contains("host:port"));
        assert!(resolve("localhost:http").expect_err("a named port").contains("host:port"));
    }
}
