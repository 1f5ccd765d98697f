//! Strict parsing of what callers send: emails, UUIDs, flows.
//!
//! Why strict: the email becomes part of the core's counter names (`user>>>EMAIL>>>...`) and
//! is compared case-insensitively by the core, so it is normalized to lowercase and limited to
//! characters that can never form `>>>`. The id must be a real UUID because Xray silently turns
//! any other short string into a UUIDv5. Every rejection says what was wrong and what is
//! accepted, and nothing is stored before parsing succeeds.

use std::fmt;

use uuid::Uuid;

/// Longest accepted email (the core has no limit; counters and logs stay readable).
pub const MAX_EMAIL_LEN: usize = 64;

/// Emails under the reserved `.invalid` top-level domain (RFC 2606) belong to the agent: its
/// restart sentinel and the probes that check the inbound.
pub const RESERVED_EMAIL_SUFFIX: &str = ".invalid";

/// The user the agent keeps in the inbound to notice a core restart (see `crate::core`).
pub const SENTINEL_EMAIL: &str = "sentinel@tollgate-node.invalid";

/// A validated, lowercase email: 1–64 characters of `a-z 0-9 . _ @ + -`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

impl Email {
    /// Parses and normalizes (ASCII lowercase) an email.
    pub fn parse(raw: &str) -> Result<Email, String> {
        if raw.is_empty() {
            return Err("email is empty: give 1 to 64 characters of a-z 0-9 . _ @ + -".to_owned());
        }
        if raw.len() > MAX_EMAIL_LEN {
            return Err(format!(
                "email is {} bytes long: the limit is {MAX_EMAIL_LEN}",
                raw.len()
            ));
        }
        let normalized = raw.to_ascii_lowercase();
        if let Some(bad) = normalized
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "._@+-".contains(*c)))
        {
            return Err(format!(
                "email {raw:?} contains {bad:?}: only a-z 0-9 . _ @ + - are accepted"
            ));
        }
        if normalized.ends_with(RESERVED_EMAIL_SUFFIX) {
            return Err(format!(
                "email {raw:?} is under the reserved .invalid domain, which the agent uses for its own probes"
            ));
        }
        Ok(Email(normalized))
    }

    /// The normalized email.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps an email read back from our own database (validated when it was stored).
    pub(crate) fn from_trusted(stored: String) -> Email {
        Email(stored)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses a VLESS id: the canonical 36-character hyphenated form of a UUID, not nil or max.
pub fn parse_uuid(raw: &str) -> Result<Uuid, String> {
    let hyphens_ok = raw.len() == 36
        && raw
            .char_indices()
            .all(|(i, c)| matches!(i, 8 | 13 | 18 | 23) == (c == '-'));
    let parsed = if hyphens_ok {
        Uuid::try_parse(raw).ok()
    } else {
        None
    };
    match parsed {
        None => Err(format!(
            "uuid {raw:?} is not a UUID: give the 36-character form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (hex digits)"
        )),
        Some(uuid) if uuid.is_nil() || uuid.is_max() => Err(format!(
            "uuid {raw:?} is the nil/max UUID: generate a random one (v4)"
        )),
        Some(uuid) => Ok(uuid),
    }
}

/// The identity the core uses for a UUID: Xray's VLESS validator zeroes bytes 6–7 before the
/// lookup, so two UUIDs differing only there are the same user on Xray. The agent enforces
/// uniqueness on this key so a UUID can never be shared, on either core.
pub fn uuid_key(uuid: &Uuid) -> String {
    let mut bytes = *uuid.as_bytes();
    bytes[6] = 0;
    bytes[7] = 0;
    Uuid::from_bytes(bytes).simple().to_string()
}

/// The VLESS flow of a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Flow {
    /// No flow (plain VLESS; the only one V2Ray knows).
    #[default]
    None,
    /// `xtls-rprx-vision` (Xray only; V2Ray stores it and ignores it).
    Vision,
}

impl Flow {
    /// Parses `""` or `xtls-rprx-vision`.
    pub fn parse(raw: &str) -> Result<Flow, String> {
        match raw {
            "" => Ok(Flow::None),
            "xtls-rprx-vision" => Ok(Flow::Vision),
            other => Err(format!(
                "flow {other:?} is not supported: use \"\" or \"xtls-rprx-vision\""
            )),
        }
    }

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::None => "",
            Flow::Vision => "xtls-rprx-vision",
        }
    }
}

/// A fully validated user: what the agent stores and puts on the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserSpec {
    pub email: Email,
    pub uuid: Uuid,
    pub flow: Flow,
    pub level: u32,
}

impl UserSpec {
    /// Validates the parts of a user as they come over the wire.
    pub fn parse(email: &str, uuid: &str, flow: &str, level: u32) -> Result<UserSpec, String> {
        Ok(UserSpec {
            email: Email::parse(email)?,
            uuid: parse_uuid(uuid)?,
            flow: Flow::parse(flow)?,
            level,
        })
    }

    /// The core's view of this user.
    pub fn to_core_user(&self) -> xray_api::VlessUser {
        xray_api::VlessUser {
            email: self.email.as_str().to_owned(),
            id: self.uuid,
            flow: self.flow.as_str().to_owned(),
            level: self.level,
        }
    }

    /// True if the core entry of `self` and `other` would be identical.
    pub fn same_entry(&self, other: &UserSpec) -> bool {
        self.uuid == other.uuid && self.flow == other.flow && self.level == other.level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(
            Email::parse("Alice+VPN@Example.org").unwrap().as_str(),
            "alice+vpn@example.org"
        );
        assert_eq!(Email::parse("user_42.x-y").unwrap().as_str(), "user_42.x-y");
        let err = Email::parse("a>>>b").unwrap_err();
        assert!(err.contains("'>'") && err.contains("a-z 0-9"), "{err}");
        assert!(Email::parse("").unwrap_err().contains("empty"));
        assert!(Email::parse("with space@x").unwrap_err().contains("' '"));
        assert!(Email::parse("ünï@x").is_err());
        assert!(
            Email::parse(&"a".repeat(65))
                .unwrap_err()
                .contains("limit is 64")
        );
        assert!(Email::parse(&"a".repeat(64)).is_ok());
        assert!(
            Email::parse(SENTINEL_EMAIL)
                .unwrap_err()
                .contains("reserved")
        );
        assert!(
            Email::parse("x@Probe.INVALID")
                .unwrap_err()
                .contains("reserved")
        );
    }

    #[test]
    fn uuids_must_be_canonical_and_real() {
        let id = parse_uuid("86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9").unwrap();
        assert_eq!(id.to_string(), "86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9");
        assert!(parse_uuid("86DC2C8C-6D69-40AE-B0E4-8F4CE621FEB9").is_ok());
        for bad in [
            "not-a-uuid",
            "86dc2c8c6d6940aeb0e48f4ce621feb9",
            "{86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9}",
            "urn:uuid:86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9",
            "86dc2c8c-6d69-40ae-b0e4-8f4ce621feb",
            "86dc2c8c-6d69-40ae-b0e4-8f4ce621febg",
            "86dc2c8c-6d6940ae-b0e4--8f4ce621feb9",
            "",
        ] {
            let err = parse_uuid(bad).unwrap_err();
            assert!(err.contains("not a UUID"), "{bad}: {err}");
        }
        assert!(
            parse_uuid("00000000-0000-0000-0000-000000000000")
                .unwrap_err()
                .contains("nil")
        );
        assert!(
            parse_uuid("ffffffff-ffff-ffff-ffff-ffffffffffff")
                .unwrap_err()
                .contains("nil/max")
        );
    }

    #[test]
    fn uuid_key_ignores_the_bytes_xray_ignores() {
        let a = parse_uuid("86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9").unwrap();
        let b = parse_uuid("86dc2c8c-6d69-11ff-b0e4-8f4ce621feb9").unwrap();
        let c = parse_uuid("86dc2c8c-6d69-40ae-b0e4-8f4ce621feba").unwrap();
        assert_eq!(uuid_key(&a), uuid_key(&b));
        assert_ne!(uuid_key(&a), uuid_key(&c));
    }

    #[test]
    fn flows_are_limited_to_what_the_cores_accept() {
        assert_eq!(Flow::parse("").unwrap(), Flow::None);
        assert_eq!(Flow::parse("xtls-rprx-vision").unwrap(), Flow::Vision);
        assert!(
            Flow::parse("xtls-rprx-direct")
                .unwrap_err()
                .contains("xtls-rprx-vision")
        );
    }
}
