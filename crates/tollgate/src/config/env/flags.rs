//! `TOLLGATE_FLAG_<NAME>=on|off`: the value a runtime flag starts with on a database that has
//! never stored it (a first production deploy can start with payments off). Applied once at
//! start, only where the flag has no row, so it never undoes what an operator set later.
//!
//! Every variable with the prefix is read here: a misspelt flag name or a value other than
//! `on`/`off` is a configuration error (exit 2) naming the valid ones, not a silently ignored
//! seed.

use super::reader::Reader;
use crate::domain::flag::{ENV_PREFIX, Flag, parse_switch, switch_word};

/// The flags the environment seeds, in [`Flag::ALL`] order.
pub(super) fn read_flag_seeds(r: &mut Reader<'_>) -> Vec<(Flag, bool)> {
    let mut seeds = Vec::new();
    let named: Vec<String> = r
        .env
        .keys()
        .filter(|k| k.starts_with(ENV_PREFIX))
        .map(str::to_owned)
        .collect();
    for key in &named {
        if Flag::ALL.iter().all(|f| f.env_var() != *key) {
            r.fail(
                key,
                format!(
                    "names no runtime flag ({:?})",
                    key.trim_start_matches(ENV_PREFIX)
                ),
                &format!(
                    "use one of {} (the flag's name in capitals), or remove it",
                    Flag::ALL.map(Flag::env_var).join(", ")
                ),
            );
        }
    }
    for flag in Flag::ALL {
        let key = flag.env_var();
        let value = r.read(
            &key,
            None,
            &format!(
                "set {key} to on or off (the value {} starts with on a fresh database), or unset it",
                flag.name()
            ),
            parse_switch,
            |on: &bool| format!("{} (seed: applied only if the database has no value)", switch_word(*on)),
        );
        if let Some(on) = value {
            seeds.push((flag, on));
        }
    }
    seeds
}

#[cfg(test)]
mod tests {
    use crate::config::env::deployment;
    use crate::config::env::testing::{env, errors};
    use crate::domain::flag::Flag;

    #[test]
    fn seeds_are_read_and_shown() {
        let (d, report) = deployment(&env(&[
            ("TOLLGATE_FLAG_PAYMENTS", "off"),
            ("TOLLGATE_FLAG_AUTO_RENEWAL", "OFF"),
            ("TOLLGATE_FLAG_MAINTENANCE", "on"),
        ]))
        .unwrap();
        assert_eq!(
            d.flag_seeds,
            [
                (Flag::Payments, false),
                (Flag::AutoRenewal, false),
                (Flag::Maintenance, true)
            ]
        );
        assert!(report.iter().any(|l| l.key == "TOLLGATE_FLAG_PAYMENTS"
            && l.value.starts_with("off")
            && l.source == "set"));
        let (d, _) = deployment(&env(&[])).unwrap();
        assert!(d.flag_seeds.is_empty());
    }

    #[test]
    fn a_bad_value_or_name_is_an_error_listing_the_valid_ones() {
        let e = errors(&[("TOLLGATE_FLAG_PAYMENTS", "maybe")]);
        assert!(e.contains("TOLLGATE_FLAG_PAYMENTS"), "{e}");
        assert!(e.contains("\"maybe\" is not on or off"), "{e}");
        assert!(
            e.contains("fix: set TOLLGATE_FLAG_PAYMENTS to on or off"),
            "{e}"
        );
        let e = errors(&[("TOLLGATE_FLAG_PAYMENT", "off")]);
        assert!(
            e.contains("TOLLGATE_FLAG_PAYMENT: names no runtime flag"),
            "{e}"
        );
        assert!(e.contains("TOLLGATE_FLAG_AUTO_RENEWAL"), "{e}");
        // Reported once, by this group, not again as an unknown TOLLGATE_ variable.
        assert_eq!(e.matches("TOLLGATE_FLAG_PAYMENT:").count(), 1, "{e}");
    }
}
