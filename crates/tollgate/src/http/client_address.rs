//! Where a request came from, for the one route that must know: YooKassa's notifications
//! carry no signature, so they are taken only from the addresses YooKassa publishes (the
//! payment they name is fetched from the API anyway; the check stops strangers from making us
//! call the API at their pace).
//!
//! Behind a reverse proxy the TCP peer is the proxy, and the client is in `X-Forwarded-For`.
//! Anyone can write that header, so it is read only when the peer is a proxy the operator
//! trusts, and then from the right: each trusted proxy appends the address it saw, so the
//! first entry from the right that is not a trusted proxy is the client. Entries left of it
//! were written by the client and are never believed.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

use crate::domain::address_set::AddressSet;

/// The client's address: the peer's, or — when the peer is one of `proxies` — the rightmost
/// `X-Forwarded-For` entry that is not a proxy. `None` when an entry read is not an address,
/// or a line of the header is not text: what cannot be read cannot be skipped either, since
/// the client may be hiding behind it.
pub fn client_address(
    peer: SocketAddr,
    headers: &HeaderMap,
    proxies: &AddressSet,
) -> Option<IpAddr> {
    let mut client = peer.ip().to_canonical();
    if !proxies.contains(client) {
        return Some(client);
    }
    let mut entries: Vec<&str> = Vec::new();
    for line in headers.get_all("x-forwarded-for") {
        entries.extend(line.to_str().ok()?.split(',').map(str::trim));
    }
    for entry in entries.iter().rev() {
        client = parse_entry(entry)?;
        if !proxies.contains(client) {
            break;
        }
    }
    Some(client)
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`,
/// `[2a02::1]:443`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40_000)
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn the_header_is_believed_only_from_a_trusted_proxy_and_read_from_the_right() {
        let proxies = AddressSet::parse("127.0.0.0/8,10.0.0.0/8").unwrap();
        let spoof = forwarded(&["185.71.76.5"]);
        // A stranger's header is ignored.
        assert_eq!(
            client_address(peer("203.0.113.7"), &spoof, &proxies),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_address(peer("203.0.113.7"), &spoof, &AddressSet::default()),
            ip("203.0.113.7")
        );
        // Through a trusted proxy: what it appended.
        assert_eq!(
            client_address(peer("127.0.0.1"), &spoof, &proxies),
            ip("185.71.76.5")
        );
        // A client that writes the header itself gets its own address appended after it.
        let chained = forwarded(&["185.71.76.5, 203.0.113.7"]);
        assert_eq!(
            client_address(peer("127.0.0.1"), &chained, &proxies),
            ip("203.0.113.7")
        );
        // Two proxies (an edge one at 10.0.0.2), headers split over lines, a port on an entry.
        let two = forwarded(&["198.51.100.1", "185.71.76.5:5555, 10.0.0.2"]);
        assert_eq!(
            client_address(peer("127.0.0.1"), &two, &proxies),
            ip("185.71.76.5")
        );
        // No header: the proxy itself; every entry a proxy: the leftmost.
        assert_eq!(
            client_address(peer("127.0.0.1"), &HeaderMap::new(), &proxies),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_address(
                peer("127.0.0.1"),
                &forwarded(&["10.0.0.9, 10.0.0.2"]),
                &proxies
            ),
            ip("10.0.0.9")
        );
        // A mapped IPv4 peer is its IPv4 address; an IPv6 entry in brackets with a port.
        assert_eq!(
            client_address(
                peer("::ffff:127.0.0.1"),
                &forwarded(&["[2a02:5180::1]:443"]),
                &proxies
            ),
            ip("2a02:5180::1")
        );
        // An entry that is not an address stops the reading.
        assert_eq!(
            client_address(
                peer("127.0.0.1"),
                &forwarded(&["185.71.76.5, unknown"]),
                &proxies
            ),
            None
        );
        // So does a line that is not text: it could hide the client's own address.
        let mut hidden = forwarded(&["185.71.76.5"]);
        hidden.append(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"\xff, 10.0.0.2").unwrap(),
        );
        assert_eq!(client_address(peer("127.0.0.1"), &hidden, &proxies), None);
    }
}
