//! A set of IP addresses and CIDR ranges, parsed from the operator's comma-separated text
//! (`185.71.76.0/27, 77.75.156.11, 2a02:5180::/32`): where YooKassa's notifications may come
//! from, and which reverse proxies are trusted (`config::env::providers`). An IPv4 address
//! seen as IPv6 (`::ffff:a.b.c.d`, a dual-stack listener's peer) is matched as IPv4.

use std::fmt;
use std::net::IpAddr;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
