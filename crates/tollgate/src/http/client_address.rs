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

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

/// A set of addresses and ranges (`185.71.76.0/27, 77.75.156.11, 2a02:5180::/32`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddressSet(Vec<IpNet>);

impl AddressSet {
    /// Comma-separated addresses or CIDR ranges; an empty text or `none` is the empty set.
    /// The error names the entry that is neither.
    pub fn parse(text: &str) -> Result<AddressSet, String> {
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("none") {
            return Ok(AddressSet::default());
        }
        text.split(',')
            .map(str::trim)
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| {
                        format!(
                            "{entry:?} is neither an IP address nor a CIDR range (like 185.71.76.0/27)"
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(AddressSet)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

impl fmt::Display for AddressSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let entries: Vec<String> = self
            .0
            .iter()
            .map(|net| {
                if net.prefix_len() == net.max_prefix_len() {
                    net.addr().to_string()
                } else {
                    net.to_string()
                }
            })
            .collect();
        f.write_str(&entries.join(","))
    }
}

/// The client's address: the peer's, or — when the peer is one of `proxies` — the rightmost
/// `X-Forwarded-For` entry that is not a proxy. `None` when that entry is not an address (a
/// proxy that writes something else cannot be believed about anything).
pub fn client_address(
    peer: SocketAddr,
    headers: &HeaderMap,
    proxies: &AddressSet,
) -> Option<IpAddr> {
    let mut client = peer.ip().to_canonical();
    if !proxies.contains(client) {
        return Some(client);
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
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
    fn sets_parse_addresses_and_ranges_and_name_a_bad_entry() {
        let set = AddressSet::parse(" 185.71.76.0/27, 77.75.156.11 ,2a02:5180::/32").unwrap();
        assert!(set.contains("185.71.76.31".parse().unwrap()));
        assert!(!set.contains("185.71.76.32".parse().unwrap()));
        assert!(set.contains("77.75.156.11".parse().unwrap()));
        assert!(!set.contains("77.75.156.12".parse().unwrap()));
        assert!(set.contains("2a02:5180:0:2655::7".parse().unwrap()));
        assert!(
            set.contains("::ffff:77.75.156.11".parse().unwrap()),
            "a mapped IPv4 peer"
        );
        assert_eq!(
            set.to_string(),
            "185.71.76.0/27,77.75.156.11,2a02:5180::/32"
        );
        // A range written with host bits is the range.
        assert_eq!(
            AddressSet::parse("10.1.2.3/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        for empty in ["", "none", " NONE "] {
            assert_eq!(AddressSet::parse(empty).unwrap(), AddressSet::default());
        }
        assert_eq!(AddressSet::default().to_string(), "none");
        for (bad, named) in [
            ("1.2.3.4,,5.6.7.8", "\"\""),
            ("300.1.1.1", "300.1.1.1"),
            ("10.0.0.0/33", "10.0.0.0/33"),
            ("yookassa", "yookassa"),
        ] {
            let e = AddressSet::parse(bad).unwrap_err();
            assert!(e.contains(named) && e.contains("neither"), "{bad}: {e}");
        }
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
    }
}
