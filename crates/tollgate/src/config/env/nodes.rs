//! Talking to node agents: the deadline of each call and the reconcile job's period and
//! removal limit. (Which nodes exist is the catalog's `[[nodes]]`.)

use std::time::Duration;

use super::reader::{Reader, duration_between};
use crate::config::duration::format_duration;

/// Talking to node agents.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// Deadline of every agent call.
    pub call_timeout: Duration,
    /// Period of the reconcile job per node.
    pub reconcile_interval: Duration,
    /// Reconcile's removal limit per pass: refused when over this count *and* the share.
    pub reconcile_max_removals: usize,
    /// The same limit in percent of the node's users.
    pub reconcile_max_removal_share: u8,
}

pub(super) fn read_nodes(r: &mut Reader<'_>) -> Option<NodeSettings> {
    let show = |d: &Duration| format_duration(*d);
    let call_timeout = r.read(
        "NODE_CALL_TIMEOUT",
        Some("10s"),
        "use a duration between 1s and 2m, e.g. 10s",
        duration_between(Duration::from_secs(1), Duration::from_secs(120)),
        show,
    );
    let reconcile_interval = r.read(
        "NODE_RECONCILE_INTERVAL",
        Some("5m"),
        "use a duration between 10s and 24h, e.g. 5m",
        duration_between(Duration::from_secs(10), Duration::from_secs(86_400)),
        show,
    );
    let reconcile_max_removals = r.read(
        "NODE_RECONCILE_MAX_REMOVALS",
        Some("10"),
        "set NODE_RECONCILE_MAX_REMOVALS to a number of users from 0 to 1000000, e.g. 10",
        |t| match t.parse::<usize>() {
            Ok(v) if v <= 1_000_000 => Ok(v),
            _ => Err(format!("{t:?} is not a number from 0 to 1000000")),
        },
        usize::to_string,
    );
    let reconcile_max_removal_share = r.read(
        "NODE_RECONCILE_MAX_REMOVAL_SHARE",
        Some("10"),
        "set NODE_RECONCILE_MAX_REMOVAL_SHARE to a percentage from 0 to 100, e.g. 10",
        |t| match t.trim_end_matches('%').trim().parse::<u8>() {
            Ok(v) if v <= 100 => Ok(v),
            _ => Err(format!("{t:?} is not a percentage from 0 to 100")),
        },
        |v| format!("{v}%"),
    );
    Some(NodeSettings {
        call_timeout: call_timeout?,
        reconcile_interval: reconcile_interval?,
        reconcile_max_removals: reconcile_max_removals?,
        reconcile_max_removal_share: reconcile_max_removal_share?,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::env::deployment;
    use crate::config::env::testing::{env, errors};

    #[test]
    fn node_settings_have_defaults_and_bounds() {
        let (d, _) = deployment(&env(&[])).unwrap();
        assert_eq!(d.nodes.call_timeout, Duration::from_secs(10));
        assert_eq!(d.nodes.reconcile_interval, Duration::from_secs(300));
        let (d, _) = deployment(&env(&[
            ("NODE_CALL_TIMEOUT", "2s"),
            ("NODE_RECONCILE_INTERVAL", "30s"),
        ]))
        .unwrap();
        assert_eq!(d.nodes.call_timeout, Duration::from_secs(2));
        assert_eq!(d.nodes.reconcile_interval, Duration::from_secs(30));
    }

    #[test]
    fn the_reconcile_removal_limit_defaults_to_ten_users_and_ten_percent() {
        let (d, _) = deployment(&env(&[])).unwrap();
        assert_eq!(
            (
                d.nodes.reconcile_max_removals,
                d.nodes.reconcile_max_removal_share
            ),
            (10, 10)
        );
        let (d, _) = deployment(&env(&[
            ("NODE_RECONCILE_MAX_REMOVALS", "0"),
            ("NODE_RECONCILE_MAX_REMOVAL_SHARE", "25%"),
        ]))
        .unwrap();
        assert_eq!(
            (
                d.nodes.reconcile_max_removals,
                d.nodes.reconcile_max_removal_share
            ),
            (0, 25)
        );
        for (key, bad) in [
            ("NODE_RECONCILE_MAX_REMOVALS", "-1"),
            ("NODE_RECONCILE_MAX_REMOVAL_SHARE", "101"),
        ] {
            let e = errors(&[(key, bad)]);
            assert!(e.contains(key), "{e}");
        }
    }
}
