//! Counter and runtime-statistics types, and the parsing of per-user counter names.
//!
//! Why parse here: the core names per-user counters `user>>>EMAIL>>>traffic>>>uplink` and
//! `...>>>downlink` (Xray adds `user>>>EMAIL>>>online`). Every consumer wants "bytes per email",
//! so the name format is handled once, next to the client that reads it.

use std::collections::BTreeMap;

use crate::proto;

/// One named counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counter {
    pub name: String,
    pub value: i64,
}

impl From<proto::Stat> for Counter {
    fn from(stat: proto::Stat) -> Self {
        Counter {
            name: stat.name,
            value: stat.value,
        }
    }
}

/// Bytes a user moved, as counted by the core since the counter was created or last reset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserTraffic {
    pub email: String,
    /// Client → core (what the user sent).
    pub uplink: u64,
    /// Core → client (what the user received).
    pub downlink: u64,
}

impl UserTraffic {
    /// Folds `user>>>EMAIL>>>traffic>>>(uplink|downlink)` counters into one entry per email,
    /// sorted by email. Other counters are ignored; negative values count as zero.
    pub fn from_counters(counters: &[Counter]) -> Vec<UserTraffic> {
        let mut by_email: BTreeMap<&str, UserTraffic> = BTreeMap::new();
        for counter in counters {
            let Some(rest) = counter.name.strip_prefix("user>>>") else {
                continue;
            };
            let value = u64::try_from(counter.value).unwrap_or(0);
            if let Some(email) = rest.strip_suffix(">>>traffic>>>uplink") {
                entry(&mut by_email, email).uplink += value;
            } else if let Some(email) = rest.strip_suffix(">>>traffic>>>downlink") {
                entry(&mut by_email, email).downlink += value;
            }
        }
        by_email.into_values().collect()
    }
}

fn entry<'m, 'a>(
    map: &'m mut BTreeMap<&'a str, UserTraffic>,
    email: &'a str,
) -> &'m mut UserTraffic {
    map.entry(email).or_insert_with(|| UserTraffic {
        email: email.to_owned(),
        ..UserTraffic::default()
    })
}

/// The core's runtime statistics (`GetSysStats`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SysStats {
    /// Seconds since the core started. It goes down only when the core restarted.
    pub uptime_secs: u32,
    pub num_goroutine: u32,
    pub num_gc: u32,
    pub alloc_bytes: u64,
    pub sys_bytes: u64,
    pub live_objects: u64,
}

impl From<proto::SysStatsResponse> for SysStats {
    fn from(r: proto::SysStatsResponse) -> Self {
        SysStats {
            uptime_secs: r.uptime,
            num_goroutine: r.num_goroutine,
            num_gc: r.num_gc,
            alloc_bytes: r.alloc,
            sys_bytes: r.sys,
            live_objects: r.live_objects,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(name: &str, value: i64) -> Counter {
        Counter {
            name: name.into(),
            value,
        }
    }

    #[test]
    fn user_counters_fold_per_email() {
        let traffic = UserTraffic::from_counters(&[
            counter("user>>>b@x>>>traffic>>>downlink", 10),
            counter("user>>>a@x>>>traffic>>>uplink", 3),
            counter("user>>>a@x>>>traffic>>>downlink", 7),
            counter("user>>>a@x>>>online", 1),
            counter("inbound>>>vless-in>>>traffic>>>uplink", 99),
            counter("user>>>c@x>>>traffic>>>uplink", -5),
        ]);
        assert_eq!(
            traffic,
            vec![
                UserTraffic {
                    email: "a@x".into(),
                    uplink: 3,
                    downlink: 7
                },
                UserTraffic {
                    email: "b@x".into(),
                    uplink: 0,
                    downlink: 10
                },
                UserTraffic {
                    email: "c@x".into(),
                    uplink: 0,
                    downlink: 0
                },
            ]
        );
    }
}
