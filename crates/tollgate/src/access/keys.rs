//! The identities of a subscription's access: VPN UUID, feed token, node-side email.
//!
//! We generate every identity ourselves, before any node hears of it (docs/reliability.md E3):
//! - the **VPN UUID** is a UUID v4 from the operating system's CSPRNG — it *is* the VLESS
//!   credential;
//! - the **feed token** is 24 random bytes from the same source, base64url without padding
//!   (32 characters, 192 bits; H4 asks for ≥ 128): the secret part of `/sub/<token>`;
//! - the **node email** is `u<user id>-<8 hex of SHA-256(uuid)>@tollgate`. It is what the
//!   agent and the core key users by, so it must be stable per key (a retry, a reconcile and a
//!   provisioning pass all compute the same one), unique per key (a reissue's new key never
//!   collides with the old one, which stays on the node until the new one is live), readable
//!   in an operator's logs (the Telegram user id), and must not give away the credential: it
//!   carries a hash of the UUID, never the UUID itself. It fits the agent's rule (1–64 of
//!   `a-z 0-9 . _ @ + -`, lowercase).
//!
//! A failing random source is an error, never a panic and never a weaker fallback.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Random bytes in a feed token.
pub const TOKEN_BYTES: usize = 24;
/// Length of a token as text.
pub const TOKEN_LEN: usize = 32;

/// The operating system's random source did not answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub struct RandomUnavailable(pub String);

/// The secret in a subscription's feed URL. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FeedToken(String);

impl FeedToken {
    /// A fresh token from the OS CSPRNG.
    pub fn generate() -> Result<FeedToken, RandomUnavailable> {
        let mut bytes = [0u8; TOKEN_BYTES];
        OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| RandomUnavailable(e.to_string()))?;
        Ok(FeedToken(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// A token as stored or presented (no shape check: lookups treat any text alike).
    pub fn from_stored(text: String) -> FeedToken {
        FeedToken(text)
    }

    /// The token itself, for the feed URL and lookups. Call sites are easy to audit.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for FeedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FeedToken(<redacted>)")
    }
}

/// A UUID v4 from the OS CSPRNG (not `Uuid::new_v4`, which panics when the source fails).
pub fn new_vpn_uuid() -> Result<Uuid, RandomUnavailable> {
    let mut bytes = [0u8; 16];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| RandomUnavailable(e.to_string()))?;
    Ok(uuid::Builder::from_random_bytes(bytes).into_uuid())
}

/// The email a key is known by on every node.
pub fn node_email(user_id: i64, uuid: &Uuid) -> String {
    let digest = Sha256::digest(uuid.as_bytes());
    format!(
        "u{user_id}-{:02x}{:02x}{:02x}{:02x}@tollgate",
        digest[0], digest[1], digest[2], digest[3]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_192_random_bits_in_url_safe_text() {
        let a = FeedToken::generate().unwrap();
        let b = FeedToken::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), TOKEN_LEN);
        assert!(
            a.expose()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(a.expose()).unwrap().len() * 8, 192);
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn uuids_are_version_4() {
        let u = new_vpn_uuid().unwrap();
        assert_eq!(u.get_version_num(), 4);
        assert_ne!(u, new_vpn_uuid().unwrap());
    }

    #[test]
    fn emails_are_stable_per_key_and_hide_the_uuid() {
        let u = Uuid::parse_str("86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9").unwrap();
        let email = node_email(123456789, &u);
        assert_eq!(email, node_email(123456789, &u));
        assert!(email.starts_with("u123456789-") && email.ends_with("@tollgate"));
        assert_eq!(email.len(), "u123456789-".len() + 8 + "@tollgate".len());
        assert!(!email.contains("86dc2c8c"));
        assert_ne!(email, node_email(123456789, &new_vpn_uuid().unwrap()));
        // The agent's rule: 1-64 of a-z 0-9 . _ @ + -
        let longest = node_email(i64::MAX, &u);
        assert!(longest.len() <= 64);
        assert!(
            longest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._@+-".contains(&b))
        );
        assert!(tollgate_node::validate::Email::parse(&longest).is_ok());
    }
}
